import { type FleetApi, waitFor } from './agent-fleet.js';

/** Read models of the rollouts API, as far as the end-to-end tests look at them. */

export interface GateResultView {
  metric: string;
  passed: boolean | null;
  value: number | null;
  baseline: number | null;
  threshold: number | null;
  samples: number;
  baselineSamples: number;
  reason: string;
}

export interface WaveView {
  index: number;
  size: number;
  startedAt: string | null;
  finishedAt: string | null;
  counts: Record<string, number>;
  gates: { results: GateResultView[] | null; evaluatedAt: string | null; overridden: boolean } | null;
}

export interface RolloutEventView {
  id: string;
  type: string;
  wave: number | null;
  message: string;
  data: Record<string, unknown>;
  at: string;
}

export interface RolloutView {
  id: string;
  model: string;
  version: string;
  state: string;
  stateReason: string | null;
  targetCount: number;
  skippedCount: number;
  currentWave: number;
  waveCount: number;
  baselineVersion: string | null;
  finishedAt: string | null;
  counts: Record<string, number>;
  waves: WaveView[];
}

export interface RolloutDeviceView {
  deviceId: string;
  wave: number | null;
  ordinal: number;
  state: string;
  reason: string | null;
  failureCode: string | null;
  /** desired_revision of the last assignment; it grows each time the device is told again. */
  revision: number | null;
  attempts: number;
  notifiedAt: string | null;
  /** The build of the version the device was sent, then the one it reported taking. */
  variant: string | null;
}

export async function createRollout(api: FleetApi, definition: Record<string, unknown>): Promise<RolloutView> {
  return (await api.request<RolloutView>('POST', '/api/v1/rollouts', definition, 201)).body;
}

export async function getRollout(api: FleetApi, id: string): Promise<RolloutView> {
  return (await api.request<RolloutView>('GET', `/api/v1/rollouts/${id}`, undefined, 200)).body;
}

export async function rolloutAction(api: FleetApi, id: string, action: string): Promise<RolloutView> {
  return (await api.request<RolloutView>('POST', `/api/v1/rollouts/${id}/${action}`, undefined, 200)).body;
}

/** The whole decision log, oldest first. */
export async function rolloutEvents(api: FleetApi, id: string): Promise<RolloutEventView[]> {
  const out: RolloutEventView[] = [];
  let after: string | null = null;
  do {
    const query: URLSearchParams = new URLSearchParams({ limit: '500', ...(after ? { after } : {}) });
    const page: { items: RolloutEventView[]; next: string | null } = (
      await api.request<{ items: RolloutEventView[]; next: string | null }>('GET', `/api/v1/rollouts/${id}/events?${query.toString()}`, undefined, 200)
    ).body;
    out.push(...page.items);
    after = page.next;
  } while (after);
  return out.reverse();
}

/** Every member of the rollout in membership order. */
export async function rolloutDevices(api: FleetApi, id: string): Promise<RolloutDeviceView[]> {
  const out: RolloutDeviceView[] = [];
  let after: string | null = null;
  do {
    const query: URLSearchParams = new URLSearchParams({ limit: '1000', ...(after ? { after } : {}) });
    const page: { items: RolloutDeviceView[]; next: string | null } = (
      await api.request<{ items: RolloutDeviceView[]; next: string | null }>('GET', `/api/v1/rollouts/${id}/devices?${query.toString()}`, undefined, 200)
    ).body;
    out.push(...page.items);
    after = page.next;
  } while (after);
  return out;
}

/** Waits until `done(rollout)` holds; the error shows the last state and the latest events. */
export async function waitForRollout(api: FleetApi, id: string, what: string, done: (r: RolloutView) => boolean, timeoutMs = 60_000): Promise<RolloutView> {
  let last: RolloutView | undefined;
  try {
    return await waitFor(
      what,
      async () => {
        last = await getRollout(api, id);
        return done(last) ? last : undefined;
      },
      timeoutMs,
      250,
    );
  } catch (err: unknown) {
    const events = await rolloutEvents(api, id).catch(() => []);
    throw new Error(
      `${err instanceof Error ? err.message : String(err)}\nlast: ${JSON.stringify({ state: last?.state, wave: last?.currentWave, counts: last?.counts, reason: last?.stateReason })}\nevents:\n${events
        .slice(-15)
        .map((e) => `  ${e.type} w${e.wave}: ${e.message}`)
        .join('\n')}`,
      { cause: err },
    );
  }
}

export const waitForState = (api: FleetApi, id: string, states: string[], timeoutMs = 60_000): Promise<RolloutView> =>
  waitForRollout(api, id, `rollout ${id} in ${states.join('|')}`, (r) => states.includes(r.state), timeoutMs);

/** Number of events of each type (e.g. `wave-started` per wave). */
export function countEvents(events: RolloutEventView[], type: string): Map<number | null, number> {
  const out = new Map<number | null, number>();
  for (const e of events) if (e.type === type) out.set(e.wave, (out.get(e.wave) ?? 0) + 1);
  return out;
}
