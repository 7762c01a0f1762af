import { describe, expect, it } from '@jest/globals';
import { PROTOCOL_VERSION, type UpdateReport } from '@fleetline/protocol';
import { type IncomingReport, planReportBatch, reportAppliesToAssignment } from './report-ordering.js';

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

describe('planReportBatch', () => {
  it('accepts only seq above last_report_seq, counting duplicates and stale reports', () => {
    const plan = planReportBatch([report('a', 5), report('a', 4), report('a', 6), report('a', 6)], new Map([['a', 5]]));
    expect(plan.accepted).toBe(1);
    expect(plan.duplicate).toBe(2); // seq 5 = stored, second seq 6 = repeated in the batch
    expect(plan.stale).toBe(1);
    expect(plan.apply.map((r) => r.report.seq)).toEqual([6]);
    expect(plan.deviceSeq.get('a')).toBe(6);
  });

  it('applies the newest report per (device, model) whatever the arrival order', () => {
    const plan = planReportBatch(
      [report('a', 3, 'resnet', 'committed'), report('a', 1, 'resnet', 'downloading'), report('a', 2, 'bert', 'installing')],
      new Map([['a', -1]]),
    );
    expect(plan.accepted).toBe(3);
    expect(plan.apply.map((r) => [r.report.model, r.report.state])).toEqual([
      ['bert', 'installing'],
      ['resnet', 'committed'],
    ]);
    expect(plan.deviceSeq.get('a')).toBe(3);
  });

  it('counts reports of unknown (or decommissioned) devices and applies nothing for them', () => {
    const plan = planReportBatch([report('ghost', 1), report('a', 0)], new Map([['a', -1]]));
    expect(plan.unknownDevice).toBe(1);
    expect(plan.apply.map((r) => r.deviceId)).toEqual(['a']);
    expect(plan.deviceSeq.has('ghost')).toBe(false);
  });

  it('is idempotent: planning the same batch against its own result accepts nothing', () => {
    const batch = [report('a', 1), report('b', 7)];
    const first = planReportBatch(
      batch,
      new Map([
        ['a', -1],
        ['b', 3],
      ]),
    );
    const second = planReportBatch(batch, first.deviceSeq);
    expect(first.accepted).toBe(2);
    expect(second.accepted).toBe(0);
    expect(second.duplicate).toBe(2);
    expect(second.apply).toEqual([]);
  });
});

describe('reportAppliesToAssignment', () => {
  it('lets only the current (or a newer) revision move assignment progress', () => {
    expect(reportAppliesToAssignment(3, 3)).toBe(true);
    expect(reportAppliesToAssignment(4, 3)).toBe(true);
    expect(reportAppliesToAssignment(2, 3)).toBe(false);
  });
});
