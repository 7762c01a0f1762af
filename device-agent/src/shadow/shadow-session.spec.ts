import { describe, expect, it } from '@jest/globals';
import type { ArtifactRef } from '@fleetline/protocol';
import { SimulatedRuntime, type SimulatedHealth } from '../runtime/simulated-runtime.js';
import { predictionOf } from './prediction.js';
import { ShadowSession } from './shadow-session.js';

const artifact: ArtifactRef = { targetPath: 'm/2.0.0/model.sim', sha256: 'a'.repeat(64), length: 1, runtime: 'simulated', compatibility: {} };

/** A deterministic random source (mulberry32), so shares are exact for a given seed. */
function seeded(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

async function candidate(behaviour: Partial<SimulatedHealth>, seed = 1): Promise<SimulatedRuntime> {
  const r = new SimulatedRuntime('1.0.0', () => ({ healthFail: 0, ...behaviour }), seeded(seed));
  await r.load('', artifact);
  return r;
}

async function until(condition: () => boolean, ms = 5000): Promise<void> {
  const end = Date.now() + ms;
  while (!condition()) {
    if (Date.now() > end) throw new Error('condition not met in time');
    await new Promise((r) => setTimeout(r, 5));
  }
}

describe('ShadowSession', () => {
  it('measures the agreement of a classifier candidate that disagrees on a known share', async () => {
    const s = new ShadowSession({
      model: 'm',
      version: '2.0.0',
      rolloutId: 'r1',
      directive: { samplePercent: 100, durationSeconds: 600 },
      runtime: await candidate({ disagreement: 0.2 }),
      maxQueue: 10_000,
    });
    for (let i = 0; i < 2000; i++) s.offer({ label: 'cat' }, { label: 'cat' });
    await s.whenIdle();
    const report = s.takeInterval()!;
    expect(report).toMatchObject({ version: '2.0.0', rolloutId: 'r1', mirrored: 2000, dropped: 0, count: 2000, errors: 0, compared: 2000, ended: false });
    expect(report.agreed! / report.compared).toBeGreaterThan(0.77);
    expect(report.agreed! / report.compared).toBeLessThan(0.83);
    expect(report.predictions['cat']).toBe(report.agreed);
    expect(report.diffBuckets).toBeUndefined();
    expect(s.takeInterval()).toBeUndefined();
    s.end('stopped');
    await s.closed();
  });

  it('mirrors the sampled share and counts candidate failures as errors', async () => {
    const s = new ShadowSession({
      model: 'm',
      version: '2.0.0',
      directive: { samplePercent: 25, durationSeconds: 600 },
      runtime: await candidate({ inferErrorRate: 0.5 }),
      maxQueue: 10_000,
      random: seeded(7),
    });
    for (let i = 0; i < 4000; i++) s.offer({ label: 'dog' }, { label: 'dog' });
    await s.whenIdle();
    const r = s.takeInterval()!;
    expect(r.mirrored).toBeGreaterThan(900);
    expect(r.mirrored).toBeLessThan(1100);
    expect(r.count).toBe(r.mirrored);
    expect(r.errors / r.count).toBeGreaterThan(0.4);
    expect(r.errors / r.count).toBeLessThan(0.6);
    expect(r.compared).toBe(r.count - r.errors);
    s.end('stopped');
  });

  it('never makes the caller wait: a full queue drops and counts, the candidate catches up later', async () => {
    const s = new ShadowSession({
      model: 'm',
      version: '2.0.0',
      directive: { samplePercent: 100, durationSeconds: 600 },
      runtime: await candidate({ inferLatencyMs: 20 }),
      maxQueue: 4,
    });
    const started = performance.now();
    for (let i = 0; i < 100; i++) s.offer({ label: 'cat' }, { label: 'cat' });
    expect(performance.now() - started).toBeLessThan(50);
    await s.whenIdle();
    const r = s.takeInterval()!;
    expect(r).toMatchObject({ mirrored: 100, dropped: 96, count: 4, compared: 4, agreed: 4 });
    // Measured latency is the candidate's own: every answer took at least its 20 ms.
    expect(r.latencySumMs).toBeGreaterThanOrEqual(4 * 19);
    s.end('stopped');
  });

  it('compares regressors in the bounded difference histogram', async () => {
    const s = new ShadowSession({
      model: 'm',
      version: '2.0.0',
      directive: { samplePercent: 100, durationSeconds: 600 },
      runtime: await candidate({ disagreement: 0.5 }),
      maxQueue: 1000,
    });
    for (let i = 0; i < 200; i++) s.offer({ value: 0.3 }, { value: 0.3 });
    await s.whenIdle();
    const r = s.takeInterval()!;
    expect(r.agreed).toBeUndefined();
    expect(r.compared).toBe(200);
    // Agreeing answers differ by 0 (first bucket), disagreeing ones by exactly 1 (the bucket of bound 1).
    expect(r.diffBuckets![0]! + r.diffBuckets![6]!).toBe(200);
    expect(r.diffBuckets![6]!).toBeGreaterThan(60);
  });

  it('ends at the sample count, unloads the candidate and reports the end once', async () => {
    const runtime = await candidate({});
    const s = new ShadowSession({ model: 'm', version: '2.0.0', directive: { samplePercent: 100, durationSeconds: 600, maxSamples: 10 }, runtime });
    for (let i = 0; i < 50; i++) s.offer({ label: 'cat' }, { label: 'cat' });
    await until(() => s.ended !== undefined);
    await s.closed();
    expect(s.ended).toBe('samples');
    await expect(runtime.infer({ label: 'cat' })).rejects.toThrow('no model loaded');
    const r = s.takeInterval()!;
    expect(r).toMatchObject({ mirrored: 10, count: 10, ended: true });
    expect(s.finished).toBe(true);
    s.offer({ label: 'cat' }, { label: 'cat' });
    expect(s.takeInterval()).toBeUndefined();
  });

  it('ends at the time limit even without traffic, and says so in an empty interval', async () => {
    let now = 1_000_000;
    const s = new ShadowSession({
      model: 'm',
      version: '2.0.0',
      directive: { samplePercent: 100, durationSeconds: 60 },
      runtime: await candidate({}),
      now: () => now,
    });
    s.offer({ label: 'cat' }, { label: 'cat' });
    await s.whenIdle();
    now += 60_000;
    s.offer({ label: 'cat' }, { label: 'cat' });
    expect(s.ended).toBe('time');
    expect(s.takeInterval()).toMatchObject({ mirrored: 1, count: 1, ended: true });
    await s.closed();
  });
});

describe('predictionOf', () => {
  it('reads a label or a number out of runtime answers', () => {
    expect(predictionOf('cat')).toEqual({ label: 'cat' });
    expect(predictionOf({ label: 'dog', p: 0.9 })).toEqual({ label: 'dog' });
    expect(predictionOf(0.25)).toEqual({ value: 0.25 });
    expect(predictionOf({ score: 0.5 })).toEqual({ value: 0.5 });
    expect(predictionOf({ value: 3 })).toEqual({ value: 3 });
    expect(predictionOf(Number.NaN)).toBeUndefined();
    expect(predictionOf({ tensor: [1, 2] })).toBeUndefined();
    expect(predictionOf(null)).toBeUndefined();
  });
});
