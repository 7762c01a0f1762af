import type { Command } from 'commander';
import type { RequestBody } from '../api-client.js';
import { cliContext } from '../context.js';
import { UsageError } from '../exit-codes.js';
import { formatDetails, formatTable, parseKeyValue, printJson } from '../output.js';
import { integerFlag } from '../rollout-spec.js';

interface TokenView {
  id: string;
  name: string;
  tags: Record<string, string>;
  deviceTagKeys: string[];
  expiresAt: string | null;
  maxUses: number | null;
  uses: number;
  revokedAt: string | null;
  token?: string;
}

interface CreateOptions {
  tag: string[];
  deviceTag: string[];
  maxUses?: string;
  unlimited?: boolean;
  expiresIn?: string;
}

const collect = (value: string, previous: string[] = []): string[] => [...previous, value];

/** `30m`, `12h`, `7d` or plain seconds. */
export function parseDuration(text: string): number {
  const match = /^(\d+)([smhd]?)$/.exec(text.trim());
  if (!match) throw new UsageError(`--expires-in: "${text}" is not a duration (e.g. 3600, 30m, 12h, 7d)`);
  const factor = { '': 1, s: 1, m: 60, h: 3600, d: 86_400 }[match[2] as '' | 's' | 'm' | 'h' | 'd'];
  const seconds = Number(match[1]) * factor;
  if (seconds < 1) throw new UsageError('--expires-in must be at least one second');
  return seconds;
}

export function registerTokens(program: Command): void {
  const tokens = program.command('tokens').description('enrollment tokens devices enroll themselves with');

  tokens
    .command('create')
    .description('create a token (shown once); by default it enrolls one device and expires after 7 days')
    .argument('<name>', 'what the token is for, e.g. hamburg-batch-7')
    .option('--tag <key=value>', 'tag given to every device enrolled with it; repeat for several', collect, [])
    .option('--device-tag <key>', 'tag key a device may set itself at enrollment; repeat for several (default none)', collect, [])
    .option('--max-uses <n>', 'number of devices it may enroll (default 1)')
    .option('--unlimited', 'any number of devices (instead of --max-uses)')
    .option('--expires-in <duration>', 'lifetime: seconds, or 30m, 12h, 7d (default: the server’s, 7 days)')
    .action(async (name: string, options: CreateOptions, command: Command) => {
      const { client, out } = await cliContext(command);
      if (options.unlimited && options.maxUses !== undefined) throw new UsageError('--max-uses and --unlimited exclude each other');
      const body: RequestBody<'post', '/api/v1/enrollment-tokens'> = {
        name,
        ...(options.tag.length > 0 ? { tags: Object.fromEntries(options.tag.map((t) => parseKeyValue(t, '--tag'))) } : {}),
        ...(options.deviceTag.length > 0 ? { deviceTagKeys: options.deviceTag } : {}),
        ...(options.maxUses !== undefined ? { maxUses: integerFlag(options.maxUses, '--max-uses', 1, 10_000_000) } : {}),
        ...(options.unlimited ? { unlimited: true } : {}),
        ...(options.expiresIn !== undefined ? { expiresInSeconds: parseDuration(options.expiresIn) } : {}),
      };
      const created = await client.post<TokenView>('/api/v1/enrollment-tokens', body);
      if (out.json) return printJson(out, created);
      out.write(formatDetails({ ...created, tags: tagText(created.tags), deviceTagKeys: created.deviceTagKeys.join(',') || null }));
      out.error('the token is shown only now; store it where the devices get it');
    });

  tokens
    .command('list')
    .description('list enrollment tokens (never their secrets)')
    .action(async (_options: unknown, command: Command) => {
      const { client, out } = await cliContext(command);
      const page = await client.get<{ items: TokenView[] }>('/api/v1/enrollment-tokens');
      if (out.json) return printJson(out, page);
      out.write(
        formatTable(
          ['id', 'name', 'uses', 'expires', 'revoked', 'tags', 'device tags'],
          page.items.map((t) => [t.id, t.name, `${t.uses}/${t.maxUses ?? '∞'}`, t.expiresAt, t.revokedAt, tagText(t.tags), t.deviceTagKeys.join(',') || null]),
        ),
      );
    });

  tokens
    .command('revoke')
    .description('revoke a token; devices enrolled with it stay enrolled')
    .argument('<id>', 'token id')
    .action(async (id: string, _options: unknown, command: Command) => {
      const { client, out } = await cliContext(command);
      await client.raw('DELETE', `/api/v1/enrollment-tokens/${encodeURIComponent(id)}`);
      if (out.json) return printJson(out, { id, revoked: true });
      out.write(`revoked ${id}`);
    });
}

function tagText(tags: Record<string, string>): string | null {
  return (
    Object.entries(tags)
      .map(([k, v]) => `${k}=${v}`)
      .join(',') || null
  );
}
