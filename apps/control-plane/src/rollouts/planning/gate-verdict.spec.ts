import { describe, expect, it } from '@jest/globals';
import type { GateResult } from '../../telemetry/gates/health-gate.contract.js';
import { gateVerdict } from './gate-verdict.js';

const result = (passed: boolean | null, variant?: string): GateResult => ({
  metric: 'latency_p95',
  passed,
  value: null,
  baseline: null,
  threshold: null,
  samples: 0,
  baselineSamples: 0,
  reason: '',
  ...(variant === undefined ? {} : { variant }),
});

describe('gateVerdict', () => {
  it('fails on any breach, the version’s or one build’s', () => {
    expect(gateVerdict([result(true), result(false, 'npu-int8')], 1, true)).toBe('failed');
    expect(gateVerdict([result(false), result(true, 'npu-int8')], 1, false)).toBe('failed');
  });

  it('waits until every version-level gate has a result and all pass', () => {
    expect(gateVerdict([], 1, true)).toBe('pending');
    expect(gateVerdict([result(null)], 1, true)).toBe('pending');
    expect(gateVerdict([result(true)], 2, true)).toBe('pending');
    expect(gateVerdict([result(true), result(true)], 2, true)).toBe('passed');
  });

  it('lets an undecided build hold the wave only for its first gate window', () => {
    const results = [result(true), result(true, 'cpu-fp32'), result(null, 'npu-int8')];
    expect(gateVerdict(results, 1, false)).toBe('pending');
    expect(gateVerdict(results, 1, true)).toBe('passed');
  });
});
