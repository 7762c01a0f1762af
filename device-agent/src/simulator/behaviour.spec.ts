import { describe, it, expect } from '@jest/globals';
import { behaviourFor, DEFAULT_BEHAVIOUR, labelDistribution, parseBehaviours, sampleLabel } from './behaviour.js';

describe('simulator behaviours', () => {
  it('parses per-version behaviours over the defaults', () => {
    const t = parseBehaviours(['1.2.0:latencyMs=80,errorRate=0.05,shift=0.5,healthFail=1,downloadFail=0.1']);
    expect(behaviourFor(t, '1.2.0')).toEqual({ ...DEFAULT_BEHAVIOUR, latencyMs: 80, errorRate: 0.05, shift: 0.5, healthFail: 1, downloadFail: 0.1 });
    expect(behaviourFor(t, '9.9.9')).toEqual(DEFAULT_BEHAVIOUR);
  });

  it('uses * as the default for unlisted versions', () => {
    const t = parseBehaviours(['*:rate=5', '2.0.0:latencyMs=1']);
    expect(behaviourFor(t, '1.0.0').rate).toBe(5);
    expect(behaviourFor(t, '2.0.0')).toMatchObject({ rate: 5, latencyMs: 1 });
  });

  it('refuses malformed specs naming the problem', () => {
    expect(() => parseBehaviours(['1.0.0'])).toThrow(/VERSION:key=value/);
    expect(() => parseBehaviours(['1.0.0:speed=3'])).toThrow(/unknown key speed/);
    expect(() => parseBehaviours(['1.0.0:errorRate=2'])).toThrow(/0..1/);
    expect(() => parseBehaviours(['1.0.0:latencyMs=-1'])).toThrow(/non-negative/);
    expect(() => parseBehaviours(['2.0.0:disagreement=1.5'])).toThrow(/0..1/);
  });

  it('takes the disagreement of a shadow candidate', () => {
    expect(behaviourFor(parseBehaviours(['2.0.0:disagreement=0.2']), '2.0.0').disagreement).toBe(0.2);
    expect(DEFAULT_BEHAVIOUR.disagreement).toBe(0);
  });

  it('shift moves the label distribution and keeps it normalised', () => {
    for (const s of [0, 0.3, 1]) expect(labelDistribution(s).reduce((a, b) => a + b, 0)).toBeCloseTo(1, 9);
    expect(labelDistribution(0)[0]).toBeGreaterThan(labelDistribution(1)[0]!);
    expect(sampleLabel(0, () => 0)).toBe('cat');
    expect(sampleLabel(1, () => 0)).toBe('cat'); // smallest mass, but still first
    expect(sampleLabel(0, () => 0.999)).toBe('person');
  });
});
