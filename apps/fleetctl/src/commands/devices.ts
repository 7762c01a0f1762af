import type { Command } from 'commander';
import { cliContext } from '../context.js';
import { UsageError } from '../exit-codes.js';
import { formatDetails, formatTable, parseKeyValue, printJson } from '../output.js';
import { integerFlag } from '../rollout-spec.js';
import type { Page } from './pages.js';

interface DeviceListItem {
  id: string;
  name: string | null;
  tags: Record<string, string>;
  hardwareClass: string | null;
  agentVersion: string | null;
  online: boolean;
  lastSeenAt: string | null;
  models: { model: string; desiredVersion: string | null; activeVersion: string | null; reportedState: string | null }[];
}

interface DeviceListOptions {
  tag: string[];
  model?: string;
  version?: string;
  online?: boolean;
  offline?: boolean;
  prefix?: string;
  limit: string;
  all?: boolean;
}

const collect = (value: string, previous: string[] = []): string[] => [...previous, value];

export function registerDevices(program: Command): void {
  const devices = program.command('devices').description('list and inspect devices');

  devices
    .command('list')
    .description('list devices in id order (one page, or every page with --all)')
    .option('--tag <key=value>', 'tag filter; repeat for several (all must match)', collect, [])
    .option('--model <name>', 'devices that have this model')
    .option('--version <semver>', 'with --model: devices whose active version is this one')
    .option('--online', 'only devices that are online')
    .option('--offline', 'only devices that are offline')
    .option('--prefix <id>', 'device id prefix')
    .option('--limit <n>', 'page size (1-1000)', '100')
    .option('--all', 'follow every keyset page (streams the output page by page)')
    .action(async (options: DeviceListOptions, command: Command) => {
      const { client, out } = await cliContext(command);
      if (options.online && options.offline) throw new UsageError('--online and --offline exclude each other');
      if (options.version && !options.model) throw new UsageError('--version needs --model');
      const limit = integerFlag(options.limit, '--limit', 1, 1000);
      const query = {
        // The API's tag filter is key:value; the CLI takes key=value like `rollouts create --tag`.
        tag: options.tag.map((t) => parseKeyValue(t, '--tag').join(':')),
        model: options.model,
        version: options.version,
        online: options.online ? 'true' : options.offline ? 'false' : undefined,
        q: options.prefix,
        limit,
      };
      // Pages are written as they arrive so `--all` over a large fleet never holds it in memory.
      let after: string | undefined;
      let first = true;
      if (out.json && options.all) process.stdout.write('[');
      for (;;) {
        const page = await client.get<Page<DeviceListItem>>('/api/v1/devices', { ...query, after });
        if (out.json && !options.all) return printJson(out, page);
        if (out.json) {
          const text = page.items.map((d) => JSON.stringify(d)).join(',\n');
          if (text) process.stdout.write(`${first ? '\n' : ',\n'}${text}`);
        } else if (page.items.length > 0 || first) {
          const table = formatTable(['id', 'online', 'last seen', 'models', 'tags'], page.items.map(deviceRow));
          out.write(first ? table : table.split('\n').slice(1).join('\n'));
        }
        first = first && page.items.length === 0;
        if (!options.all) {
          if (page.next) out.error(`more devices: --all, or continue with the API cursor ${page.next}`);
          return;
        }
        if (!page.next) break;
        after = page.next;
      }
      if (out.json) process.stdout.write('\n]\n');
    });

  devices
    .command('show')
    .description('show one device with its per-model state')
    .argument('<id>', 'device id')
    .action(async (id: string, _options: unknown, command: Command) => {
      const { client, out } = await cliContext(command);
      const device = await client.get<Record<string, unknown> & { models?: Record<string, unknown>[] }>(`/api/v1/devices/${encodeURIComponent(id)}`);
      if (out.json) return printJson(out, device);
      const { models, ...rest } = device;
      out.write(formatDetails(rest));
      if (models && models.length > 0) {
        out.write('');
        out.write(
          formatTable(
            ['model', 'desired', 'active', 'previous', 'state', 'failure'],
            models.map((m) => [
              str(m['model']),
              str(m['desiredVersion']),
              str(m['activeVersion']),
              str(m['previousVersion']),
              str(m['reportedState']),
              failureText(m['failure']),
            ]),
          ),
        );
      }
    });
}

function deviceRow(d: DeviceListItem): (string | boolean | null)[] {
  const models = d.models
    .map((m) => `${m.model}@${m.activeVersion ?? '-'}${m.desiredVersion && m.desiredVersion !== m.activeVersion ? `->${m.desiredVersion}` : ''}`)
    .join(' ');
  const tags = Object.entries(d.tags)
    .map(([k, v]) => `${k}=${v}`)
    .join(',');
  return [d.id, d.online ? 'yes' : 'no', d.lastSeenAt, models, tags];
}

function str(value: unknown): string | null {
  return value === null || value === undefined ? null : String(value);
}

function failureText(value: unknown): string | null {
  if (!value || typeof value !== 'object') return null;
  const { code, message } = value as { code?: unknown; message?: unknown };
  return [code, message].filter((v) => typeof v === 'string' && v.length > 0).join(': ') || null;
}
