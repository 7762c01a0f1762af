import type { Command } from 'commander';
import type { ApiClient } from '../api-client.js';
import { cliContext } from '../context.js';
import { CliError, ExitCode } from '../exit-codes.js';
import { formatTable, printJson } from '../output.js';
import { KeyDir, refreshTrustedRoot } from '../tuf/key-dir.js';
import { type AddedTarget, checkExpected, reviewPending, signTargets } from '../tuf/offline-signing.js';

interface PendingAnswer {
  rootVersion: number;
  targets: unknown;
  pending: unknown;
  versions: { model: string; version: string }[];
}

const collect = (value: string, previous: string[] = []): string[] => [...previous, value];

/** Fetches and checks what awaits a signature; undefined when nothing does. */
async function reviewed(
  client: ApiClient,
  keyDir: KeyDir,
): Promise<{ review: ReturnType<typeof reviewPending>; root: Awaited<ReturnType<typeof refreshTrustedRoot>> } | undefined> {
  const root = await refreshTrustedRoot(client, keyDir);
  const answer = await client.get<PendingAnswer>('/api/v1/tuf/admin/targets/pending');
  if (answer.pending === null) return undefined;
  return { root, review: reviewPending(root, answer.targets, answer.pending) };
}

function addedTable(added: readonly AddedTarget[]): string {
  return formatTable(
    ['model', 'version', 'target', 'sha256', 'bytes'],
    added.map((a) => [a.model, a.version, a.path, a.sha256, a.length]),
  );
}

export function registerTargets(program: Command): void {
  const targets = program
    .command('targets')
    .description('sign uploaded versions with the offline targets key (TUF_KEYS=offline, docs/tuf.md)')
    .addHelpText(
      'after',
      `
With TUF_KEYS=offline an uploaded version is "awaiting-signature" until signed targets list it.
"pending" shows what the server asks you to sign, checked against root.json in --key-dir; compare
the sha256 of each file with the one you uploaded. "sign" signs exactly that and publishes it.

Examples:
  fleetctl targets pending --key-dir ./fleet-keys
  fleetctl targets sign --key-dir ./fleet-keys --expect detector@2.1.0`,
    );

  targets
    .command('pending')
    .description('list the targets awaiting a signature (verified against root.json in --key-dir)')
    .requiredOption('--key-dir <dir>', 'key directory made by fleetctl keys init')
    .action(async (options: { keyDir: string }, command: Command) => {
      const { client, out } = await cliContext(command);
      const result = await reviewed(client, new KeyDir(options.keyDir));
      const added = result?.review.added ?? [];
      if (out.json) return printJson(out, { targetsVersion: result?.review.pending.signed.version ?? null, added });
      if (!result) return out.write('nothing awaits a signature');
      out.write(`targets v${result.review.pending.signed.version} would add:\n${addedTable(added)}`);
    });

  targets
    .command('sign')
    .description('sign the pending targets with targets.key.pem from --key-dir and publish them')
    .requiredOption('--key-dir <dir>', 'key directory made by fleetctl keys init')
    .option('--expect <model@version>', 'a version you uploaded and mean to sign (repeatable); anything else pending refuses the signature', collect)
    .action(async (options: { keyDir: string; expect?: string[] }, command: Command) => {
      const { client, out } = await cliContext(command);
      const keyDir = new KeyDir(options.keyDir);
      const targetsKey = await keyDir.requireKey('targets');
      const result = await reviewed(client, keyDir);
      if (!result) throw new CliError('nothing awaits a signature', ExitCode.ApiError);
      if (options.expect) checkExpected(result.review.added, options.expect);
      const signed = signTargets(result.root, result.review.pending, targetsKey);
      const published = await client.request<{ targetsVersion: number }>('PUT', '/api/v1/tuf/admin/targets', { json: signed.toJSON() });
      if (out.json) return printJson(out, { targetsVersion: published.targetsVersion, added: result.review.added });
      out.write(`signed and published targets v${published.targetsVersion}:\n${addedTable(result.review.added)}`);
    });
}
