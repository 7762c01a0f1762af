import { describe, expect, it } from '@jest/globals';
import { PROTOCOL_VERSION, type UpdateReport } from '@fleetline/protocol';
import { type IncomingReport, planReportBatch, type ReportFloors, reportAppliesToAssignment } from './report-ordering.js';

function report(deviceId: string, seq: number, model = 'resnet', state: UpdateReport['state'] = 'downloading'): IncomingReport {
  return {
    deviceId,
    report: {
      v: PROTOCOL_VERSION,
      seq,
      model,
      version: '1.0.0',
      revision: 1,
      state,
      activeVersion: null,
      previousVersion: null,
      at: new Date(0).toISOString(),
    },
  };
}

/** Floors of live devices: device -> model -> last applied seq (a model without a row is absent). */
function floors(entries: Record<string, Record<string, number>>): ReportFloors {
  return new Map(Object.entries(entries).map(([device, models]) => [device, new Map(Object.entries(models))]));
}

/** What the repository does with a plan: the applied report per (device, model) and its seq becomes the floor. */
function applyPlan(state: Map<string, Map<string, IncomingReport>>, batch: readonly IncomingReport[]): ReturnType<typeof planReportBatch> {
  const current: ReportFloors = new Map([...state].map(([device, models]) => [device, new Map([...models].map(([m, r]) => [m, r.report.seq]))]));
  const plan = planReportBatch(batch, current);
  for (const item of plan.apply) state.get(item.deviceId)!.set(item.report.model, item);
  return plan;
}

/** Small deterministic PRNG (mulberry32), so a failing case is reproducible from its seed. */
function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

describe('planReportBatch', () => {
  it('accepts only seq above the (device, model) floor, counting duplicates and stale reports', () => {
    const plan = planReportBatch([report('a', 5), report('a', 4), report('a', 6), report('a', 6)], floors({ a: { resnet: 5 } }));
    expect(plan.accepted).toBe(1);
    expect(plan.duplicate).toBe(2); // seq 5 = stored, second seq 6 = repeated in the batch
    expect(plan.stale).toBe(1);
    expect(plan.apply.map((r) => r.report.seq)).toEqual([6]);
    expect(plan.deviceSeq.get('a')).toBe(6);
  });

  it('orders reports per (device, model): a newer seq of another model does not make an older one stale', () => {
    // Model B's seq 42 was applied before model A's seq 41 arrived (two batches, or two replicas).
    const plan = planReportBatch([report('a', 41, 'resnet', 'committed'), report('a', 42, 'bert', 'committed')], floors({ a: { resnet: 30, bert: 42 } }));
    expect(plan.accepted).toBe(1);
    expect(plan.duplicate).toBe(1);
    expect(plan.stale).toBe(0);
    expect(plan.apply.map((r) => [r.report.model, r.report.seq, r.report.state])).toEqual([['resnet', 41, 'committed']]);
    expect(plan.deviceSeq.get('a')).toBe(41);
  });

  it('starts a model without a row at no floor', () => {
    const plan = planReportBatch([report('a', 0, 'bert')], floors({ a: { resnet: 10 } }));
    expect(plan.accepted).toBe(1);
    expect(plan.apply.map((r) => r.report.model)).toEqual(['bert']);
  });

  it('applies the newest report per (device, model) whatever the arrival order', () => {
    const plan = planReportBatch(
      [report('a', 3, 'resnet', 'committed'), report('a', 1, 'resnet', 'downloading'), report('a', 2, 'bert', 'installing')],
      floors({ a: {} }),
    );
    expect(plan.accepted).toBe(3);
    expect(plan.apply.map((r) => [r.report.model, r.report.state])).toEqual([
      ['bert', 'installing'],
      ['resnet', 'committed'],
    ]);
    expect(plan.deviceSeq.get('a')).toBe(3);
  });

  it('counts reports of unknown (or decommissioned) devices and applies nothing for them', () => {
    const plan = planReportBatch([report('ghost', 1), report('a', 0)], floors({ a: {} }));
    expect(plan.unknownDevice).toBe(1);
    expect(plan.apply.map((r) => r.deviceId)).toEqual(['a']);
    expect(plan.deviceSeq.has('ghost')).toBe(false);
  });

  it('is idempotent: planning the same batch against its own result accepts nothing', () => {
    const state = new Map([
      ['a', new Map<string, IncomingReport>()],
      ['b', new Map<string, IncomingReport>([['resnet', report('b', 3)]])],
    ]);
    const batch = [report('a', 1), report('b', 7), report('a', 2, 'bert')];
    const first = applyPlan(state, batch);
    const second = applyPlan(state, batch);
    expect(first.accepted).toBe(3);
    expect(second.accepted).toBe(0);
    expect(second.duplicate).toBe(3);
    expect(second.apply).toEqual([]);
  });

  it('property: any interleaving, duplication and batching ends as each model applied in seq order', () => {
    const models = ['resnet', 'bert', 'yolo'];
    const states: UpdateReport['state'][] = ['downloading', 'downloaded', 'installing', 'committed', 'failed'];
    for (let seed = 1; seed <= 500; seed++) {
      const random = prng(seed);
      const pick = <T>(xs: readonly T[]): T => xs[Math.floor(random() * xs.length)]!;
      // One device, one rising seq shared by its models (the agent's counter), as the agent emits them.
      const emitted: IncomingReport[] = [];
      let seq = Math.floor(random() * 5);
      const count = 1 + Math.floor(random() * 12);
      for (let i = 0; i < count; i++) {
        emitted.push(report('d', seq, pick(models), pick(states)));
        seq += 1 + Math.floor(random() * 3);
      }
      // Arrival: shuffled, with redeliveries of random reports anywhere.
      const arrival = [...emitted];
      for (let i = 0, dups = Math.floor(random() * 6); i < dups; i++) arrival.push(pick(emitted));
      for (let i = arrival.length - 1; i > 0; i--) {
        const j = Math.floor(random() * (i + 1));
        [arrival[i], arrival[j]] = [arrival[j]!, arrival[i]!];
      }
      // Cut into batches of random sizes, applied one after the other.
      const state = new Map([['d', new Map<string, IncomingReport>()]]);
      for (let i = 0; i < arrival.length;) {
        const size = 1 + Math.floor(random() * 4);
        applyPlan(state, arrival.slice(i, i + size));
        i += size;
      }
      // Applying each model's reports in seq order leaves its highest-seq report.
      const expected = new Map<string, number>();
      for (const r of emitted) expected.set(r.report.model, Math.max(expected.get(r.report.model) ?? -1, r.report.seq));
      const actual = new Map([...state.get('d')!].map(([m, r]) => [m, r.report.seq]));
      expect([seed, actual]).toEqual([seed, expected]);
    }
  });
});

describe('reportAppliesToAssignment', () => {
  it('lets only the current (or a newer) revision move assignment progress', () => {
    expect(reportAppliesToAssignment(3, 3)).toBe(true);
    expect(reportAppliesToAssignment(4, 3)).toBe(true);
    expect(reportAppliesToAssignment(2, 3)).toBe(false);
  });
});
