import type { Command } from 'commander';
import { ApiError, type ApiClient, type RequestBody } from '../api-client.js';
import { type CliContext, cliContext } from '../context.js';
import { CliError, ExitCode } from '../exit-codes.js';
import { formatDetails, formatTable, printJson } from '../output.js';
import { buildRolloutRequest, integerFlag, numberFlag, type RolloutFlags } from '../rollout-spec.js';
import { readEvents } from '../sse.js';
import { normalizeRollout, renderPlainLine, renderProgress, type RolloutProgress, TerminalBlock, watchOutcome } from '../watch.js';
import { collectPages, type Page } from './pages.js';

type RolloutView = Record<string, unknown> & { id: string; state: string };

const collect = (value: string, previous: string[] = []): string[] => [...previous, value];

const ACTIONS = [
  ['pause', 'pause: no new device is told until resumed'],
  ['resume', 'resume a paused rollout'],
  ['advance', 'start the next wave now (manual approval, or skip the bake time)'],
  ['abort', 'stop and roll the told devices back to their previous version'],
  ['cancel', 'stop telling new devices; devices already updated keep the new version'],
  ['retry', 'retry the failed devices of the rollout'],
] as const;

export function registerRollouts(program: Command): void {
  const rollouts = program.command('rollouts').description('create, follow and steer staged rollouts');

  rollouts
    .command('create')
    .description('create a rollout from flags or from a YAML/JSON file')
    .option('-f, --file <path>', 'rollout definition (YAML or JSON, the body of POST /api/v1/rollouts); flags override its fields')
    .option('--model <name>', 'model to roll out')
    .option('--version <semver>', 'version to roll out')
    .option('--tag <key=value>', 'target devices with this tag; repeat for several (all must match)', collect, [])
    .option('--device-ids-file <path>', 'target these device ids (one per line)')
    .option('--waves <list>', 'cumulative percentages of the target, e.g. 1,10,100')
    .option('--bake <seconds>', 'bake time of every wave before the next starts')
    .option('--success <percent>', 'share of a wave that must commit before the next wave')
    .option('--failure-percent <percent>', 'failure threshold: percent of executed devices')
    .option('--min-executed <n>', 'judge the failure threshold once this many devices finished')
    .option('--on-failure <action>', 'pause or rollback when the failure threshold is crossed')
    .option(
      '--gate <metric:bound=value>',
      'model-health gate of every wave but the last, canary against baseline; repeat for several. Metrics: latency_p50, latency_p95, latency_p99, error_rate, psi; bounds: maxRatio, maxIncrease, max, minSamples',
      collect,
      [],
    )
    .option('--min-samples <n>', 'gates decide only once each cohort has this many samples (server default 500)')
    .option('--window <seconds>', 'telemetry window the gates compare, 10-86400 (server default 300)')
    .option('--on-gate-failure <action>', 'pause or rollback when a gate fails (server default pause)')
    .option('--watch', 'watch the rollout after creating it (exit code as for "rollouts watch")')
    .addHelpText(
      'after',
      `
Examples:
  fleetctl rollouts create --model detector --version 2.1.0 --tag region=eu --waves 1,10,100 --bake 600 --success 95 \\
      --failure-percent 5 --min-executed 10 --on-failure pause
  fleetctl rollouts create --model detector --version 2.1.0 --tag region=eu --waves 10,50,100 --bake 60 \\
      --gate latency_p95:maxRatio=1.2 --gate error_rate:maxIncrease=0.01 --min-samples 500 --window 300 --on-gate-failure rollback
  fleetctl rollouts create --file rollout.yaml --version 2.1.1`,
    )
    .action(async (options: RolloutFlags & { tag: string[]; gate: string[]; watch?: boolean }, command: Command) => {
      const ctx = await cliContext(command);
      const body: RequestBody<'post', '/api/v1/rollouts'> = await buildRolloutRequest(options);
      const created = await ctx.client.post<RolloutView>('/api/v1/rollouts', body);
      if (options.watch) {
        if (!ctx.out.json) ctx.out.write(`rollout ${created.id} created`);
        return watchRollout(ctx, created.id, { intervalMs: 2000 });
      }
      if (ctx.out.json) return printJson(ctx.out, created);
      ctx.out.write(
        created.state === 'preparing'
          ? `rollout ${created.id} created (preparing: the control plane materialises its membership; follow it with "fleetctl rollouts watch ${created.id}")`
          : `rollout ${created.id} created (${created.state})`,
      );
      const progress = normalizeRollout(created);
      if (progress) ctx.out.write(renderProgress(progress).slice(1).join('\n'));
    });

  rollouts
    .command('list')
    .description('list rollouts, newest first')
    .option('--state <state>', 'preparing, scheduled, running, paused, completed, cancelled, aborted or rolled-back')
    .option('--model <name>', 'only rollouts of this model')
    .option('--limit <n>', 'page size (1-1000)', '50')
    .option('--all', 'follow every page')
    .action(async (options: { state?: string; model?: string; limit: string; all?: boolean }, command: Command) => {
      const { client, out } = await cliContext(command);
      const limit = integerFlag(options.limit, '--limit', 1, 1000);
      const items = await collectPages<RolloutView>(
        (after) => client.get<Page<RolloutView>>('/api/v1/rollouts', { state: options.state, model: options.model, limit, after }),
        options.all === true,
      );
      if (out.json) return printJson(out, items);
      out.write(
        formatTable(
          ['id', 'model', 'version', 'state', 'wave', 'devices', 'created'],
          items.map((r) => {
            const p = normalizeRollout(r);
            const waveCount = typeof r['waveCount'] === 'number' ? r['waveCount'] : (p?.waves.length ?? 0);
            return [
              r.id,
              p?.model,
              p?.version,
              r.state,
              waveCount ? `${Math.max(0, p?.currentWave ?? -1) + 1}/${waveCount}` : null,
              p?.targetCount,
              String(r['createdAt'] ?? ''),
            ];
          }),
        ),
      );
    });

  rollouts
    .command('show')
    .description('show a rollout: state, waves with per-state device counts, recent events')
    .argument('<id>', 'rollout id')
    .action(async (id: string, _options: unknown, command: Command) => {
      const { client, out } = await cliContext(command);
      const rollout = await client.get<RolloutView>(`/api/v1/rollouts/${encodeURIComponent(id)}`);
      if (out.json) return printJson(out, rollout);
      const progress = normalizeRollout(rollout);
      const { waves: _waves, events: rawEvents, spec: _spec, counts: _counts, ...rest } = rollout;
      out.write(formatDetails(rest));
      if (progress) out.write(`\n${renderProgress(progress).slice(1).join('\n')}`);
      // The detail carries the newest events as a page ({ items, next }).
      const events = Array.isArray(rawEvents)
        ? rawEvents
        : rawEvents && typeof rawEvents === 'object' && Array.isArray((rawEvents as Page<unknown>).items)
          ? (rawEvents as Page<unknown>).items
          : [];
      if (events.length > 0) {
        out.write('\nEvents:');
        out.write(
          formatTable(
            ['at', 'type', 'wave', 'message'],
            (events.slice(0, 20) as Record<string, unknown>[]).map((e) => [
              String(e['at'] ?? ''),
              String(e['type'] ?? ''),
              typeof e['wave'] === 'number' ? e['wave'] + 1 : null,
              String(e['message'] ?? ''),
            ]),
          ),
        );
      }
    });

  for (const [action, description] of ACTIONS) {
    rollouts
      .command(action)
      .description(description)
      .argument('<id>', 'rollout id')
      .action(async (id: string, _options: unknown, command: Command) => {
        const { client, out } = await cliContext(command);
        const result = await client.post<RolloutView | undefined>(`/api/v1/rollouts/${encodeURIComponent(id)}/${action}`, {});
        if (out.json) return printJson(out, result ?? { id, action });
        out.write(`rollout ${id}: ${action} accepted${result?.state ? ` (now ${result.state})` : ''}`);
      });
  }

  rollouts
    .command('watch')
    .description('follow a rollout live until it ends; exit 0 when completed, 4 when it ended badly')
    .argument('<id>', 'rollout id')
    .option('--interval <seconds>', 'poll interval when the event stream is not available', '2')
    .option('--no-stream', 'poll instead of using the event stream')
    .addHelpText(
      'after',
      `
Exit codes: 0 completed; 4 aborted, rolled back, cancelled, or paused by the failure policy;
2/3 API or connection errors. A pause requested by an operator keeps watching.
With --json, prints one JSON object per change (newline-delimited).`,
    )
    .action(async (id: string, options: { interval: string; stream: boolean }, command: Command) => {
      const ctx = await cliContext(command);
      const intervalMs = Math.round(numberFlag(options.interval, '--interval', 0.1, 3600) * 1000);
      await watchRollout(ctx, id, { intervalMs, stream: options.stream });
    });
}

/**
 * Follows a rollout: the Server-Sent Events stream when the server offers it, polling otherwise
 * (or after the stream drops). Ends when the rollout reaches a state it will not leave by itself,
 * by throwing a CliError with exit code 4 when that state is a bad one.
 */
export async function watchRollout(ctx: CliContext, id: string, options: { intervalMs: number; stream?: boolean }): Promise<void> {
  const { client, out } = ctx;
  const block =
    ctx.tty && !out.json
      ? new TerminalBlock(
          (text) => process.stdout.write(text),
          () => process.stdout.columns,
        )
      : undefined;
  let lastPlain = '';
  const show = (p: RolloutProgress, raw: unknown): void => {
    if (out.json) {
      process.stdout.write(`${JSON.stringify(raw)}\n`);
    } else if (block) {
      block.draw(renderProgress(p));
    } else {
      const line = renderPlainLine(p);
      if (line !== lastPlain) out.write(`${new Date().toISOString()} ${line}`);
      lastPlain = line;
    }
  };
  const finish = (p: RolloutProgress): boolean => {
    const outcome = watchOutcome(p);
    if (!outcome.done) return false;
    if (outcome.exitCode !== ExitCode.Ok) throw new CliError(outcome.message, outcome.exitCode);
    if (!out.json) out.write(outcome.message);
    return true;
  };
  const fetchProgress = async (): Promise<{ progress: RolloutProgress; raw: unknown }> => {
    const raw = await client.get<unknown>(`/api/v1/rollouts/${encodeURIComponent(id)}`);
    const progress = normalizeRollout(raw);
    if (!progress) throw new CliError(`GET /api/v1/rollouts/${id} did not return a rollout`, ExitCode.ServerError);
    return { progress, raw };
  };

  const first = await fetchProgress();
  show(first.progress, first.raw);
  if (finish(first.progress)) return;

  if (options.stream !== false) {
    const ended = await followStream(client, id, async (data) => {
      let progress = normalizeRollout(data);
      let raw = data;
      // Events that are not a whole rollout (device or wave changes) are a cue to re-read it.
      if (!progress) ({ progress, raw } = await fetchProgress());
      show(progress, raw);
      return finish(progress);
    });
    if (ended) return;
  }

  for (;;) {
    await new Promise((resolve) => setTimeout(resolve, options.intervalMs));
    const { progress, raw } = await fetchProgress();
    show(progress, raw);
    if (finish(progress)) return;
  }
}

/**
 * Reads the rollout's event stream. Returns true when `onEvent` said the watch is over, false when
 * the stream is unavailable or ended first (the caller then polls). API errors other than
 * "no such stream" propagate.
 */
async function followStream(client: ApiClient, id: string, onEvent: (data: unknown) => Promise<boolean>): Promise<boolean> {
  const abort = new AbortController();
  let response: Response;
  try {
    response = await client.raw('GET', `/api/v1/rollouts/${encodeURIComponent(id)}/stream`, { headers: { accept: 'text/event-stream' }, signal: abort.signal });
  } catch (err) {
    if (err instanceof ApiError && (err.status === 404 || err.status === 405 || err.status === 406 || err.status === 501)) {
      // A 404 may also mean the rollout is gone; the next poll tells which.
      return false;
    }
    if (err instanceof CliError && err.exitCode === ExitCode.ServerError) return false;
    throw err;
  }
  if (!response.body || !(response.headers.get('content-type') ?? '').includes('text/event-stream')) {
    await response.body?.cancel();
    return false;
  }
  try {
    for await (const event of readEvents(response.body)) {
      let data: unknown;
      try {
        data = JSON.parse(event.data);
      } catch {
        data = undefined;
      }
      if (await onEvent(data)) return true;
    }
    return false;
  } catch (err) {
    if (err instanceof CliError) throw err;
    // The connection dropped mid-stream: fall back to polling.
    return false;
  } finally {
    abort.abort();
  }
}
