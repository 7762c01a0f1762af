import { describe, expect, it } from '@jest/globals';
import { ApiClient } from '../api-client.js';
import type { CliContext } from '../context.js';
import { CliError, ExitCode } from '../exit-codes.js';
import type { Output } from '../output.js';
import { watchRollout } from './rollouts.js';

const ID = '5d0c6a3e-0000-4000-8000-000000000001';

function rollout(state: string, committed: number, stateReason: string | null = null) {
  return {
    id: ID,
    model: 'detector',
    version: '2.0.0',
    state,
    stateReason,
    action: 'install',
    currentWave: 0,
    targetCount: 2,
    waves: [{ index: 0, size: 2, spec: { percent: 100 }, counts: { committed, pending: 2 - committed }, startedAt: null, finishedAt: null }],
  };
}

function sse(events: unknown[]): Response {
  const text = events.map((e) => `event: progress\ndata: ${JSON.stringify(e)}\n\n`).join('');
  return new Response(new Blob([text]).stream(), { status: 200, headers: { 'content-type': 'text/event-stream' } });
}

function harness(routes: { get: () => unknown; stream: () => Response }) {
  const calls: string[] = [];
  const fetchImpl = (async (input: string | URL | Request) => {
    const url = new URL(String(input));
    calls.push(url.pathname);
    if (url.pathname.endsWith('/stream')) return routes.stream();
    return new Response(JSON.stringify(routes.get()), { status: 200, headers: { 'content-type': 'application/json' } });
  }) as typeof fetch;
  const lines: string[] = [];
  const out: Output = { json: false, write: (t) => lines.push(t), error: (t) => lines.push(t) };
  const ctx: CliContext = { client: new ApiClient({ server: 'http://cp.test', key: 'k' }, fetchImpl), out, env: {}, tty: false };
  return { ctx, calls, lines };
}

describe('watchRollout', () => {
  it('follows the event stream to completion without polling', async () => {
    const { ctx, calls, lines } = harness({ get: () => rollout('running', 0), stream: () => sse([rollout('running', 1), rollout('completed', 2)]) });
    await watchRollout(ctx, ID, { intervalMs: 10 });
    expect(calls).toEqual([`/api/v1/rollouts/${ID}`, `/api/v1/rollouts/${ID}/stream`]);
    expect(lines.some((l) => l.includes('running wave 1/1 w1:1/2'))).toBe(true);
    expect(lines.at(-1)).toBe(`rollout ${ID} completed`);
  });

  it('re-reads the rollout on events that do not carry it', async () => {
    let reads = 0;
    const { ctx } = harness({ get: () => (++reads > 1 ? rollout('completed', 2) : rollout('running', 0)), stream: () => sse([{ type: 'tick' }]) });
    await watchRollout(ctx, ID, { intervalMs: 10 });
    expect(reads).toBe(2);
  });

  it('falls back to polling when the stream is unavailable, and exits 4 on a failure pause', async () => {
    let reads = 0;
    const { ctx, calls } = harness({
      get: () => (++reads >= 3 ? rollout('paused', 1, 'failure condition met in wave 0: 1 failed of 2 executed') : rollout('running', 1)),
      stream: () => new Response(JSON.stringify({ statusCode: 404, code: 'not-found', message: 'no stream' }), { status: 404 }),
    });
    const result = watchRollout(ctx, ID, { intervalMs: 5 });
    await expect(result).rejects.toBeInstanceOf(CliError);
    await expect(result).rejects.toMatchObject({ exitCode: ExitCode.RolloutFailed });
    expect(calls.filter((c) => c.endsWith('/stream'))).toHaveLength(1);
    expect(reads).toBe(3);
  });

  it('maps API errors to exit code 2', async () => {
    const { ctx } = harness({ get: () => ({}), stream: () => sse([]) });
    const client = new ApiClient(
      { server: 'http://cp.test', key: 'k' },
      (async () => new Response(JSON.stringify({ statusCode: 404, code: 'rollout-not-found', message: 'no rollout' }), { status: 404 })) as typeof fetch,
    );
    await expect(watchRollout({ ...ctx, client }, ID, { intervalMs: 5 })).rejects.toMatchObject({
      exitCode: ExitCode.ApiError,
      message: 'rollout-not-found: no rollout (HTTP 404)',
    });
  });
});
