import { describe, expect, it } from '@jest/globals';
import { LATENCY_BUCKET_COUNT, PROTOCOL_VERSION, type TelemetryMessage } from '@fleetline/protocol';
import fc from 'fast-check';
import {
  boundsProblem,
  countBin,
  DEFAULT_TELEMETRY_LIMITS,
  neighboursIn,
  sampleWeight,
  sequenceProblem,
  type StreamSample,
  weightCap,
} from './telemetry-bounds.js';

const NOW = Date.parse('2026-12-01T12:00:00Z');

function message(count: number, errors = 0): TelemetryMessage {
  const latencyBuckets = new Array<number>(LATENCY_BUCKET_COUNT).fill(0);
  latencyBuckets[3] = count;
  return {
    v: PROTOCOL_VERSION,
    seq: 1,
    model: 'm',
    version: '1.0.0',
    intervalStart: new Date(NOW - 60_000).toISOString(),
    intervalEnd: new Date(NOW).toISOString(),
    count,
    errors,
    latencyBuckets,
    latencySumMs: count,
    predictions: {},
    vitals: {},
    dropped: 0,
  };
}

describe('boundsProblem', () => {
  const limits = { ...DEFAULT_TELEMETRY_LIMITS, maxInferencesPerSecond: 10 };
  it('allows up to the rate times the interval, and refuses more', () => {
    expect(boundsProblem(message(600), NOW - 60_000, NOW, NOW, limits)).toBeUndefined();
    expect(boundsProblem(message(601), NOW - 60_000, NOW, NOW, limits)?.reason).toBe('rate');
    expect(boundsProblem(message(2_147_483_647), NOW - 60_000, NOW, NOW, DEFAULT_TELEMETRY_LIMITS)?.reason).toBe('rate');
    // A zero-length interval can claim nothing.
    expect(boundsProblem(message(1), NOW, NOW, NOW, limits)?.reason).toBe('rate');
    expect(boundsProblem(message(0), NOW, NOW, NOW, limits)).toBeUndefined();
  });
  it('refuses intervals longer than the maximum', () => {
    expect(boundsProblem(message(0), NOW - 3_600_000, NOW, NOW, limits)).toBeUndefined();
    expect(boundsProblem(message(0), NOW - 3_600_001, NOW, NOW, limits)?.reason).toBe('interval');
  });
  it('refuses more errors or latency observations than inferences', () => {
    expect(boundsProblem(message(10, 11), NOW - 60_000, NOW, NOW, limits)?.reason).toBe('counter');
    const m = message(10);
    m.latencyBuckets[0] = 1;
    expect(boundsProblem(m, NOW - 60_000, NOW, NOW, limits)?.reason).toBe('counter');
  });
  it('allows the clock skew into the future, not more', () => {
    expect(boundsProblem(message(0), NOW, NOW + 300_000, NOW, limits)).toBeUndefined();
    expect(boundsProblem(message(0), NOW, NOW + 300_001, NOW, limits)?.reason).toBe('future');
  });
});

describe('sequenceProblem', () => {
  const at = (seq: number, intervalStart: number, intervalEnd: number): StreamSample => ({ seq, intervalStart, intervalEnd });
  // Stored: seq 10 over [0, 1000) and seq 12 over [2000, 3000); seq 11 (over [1000, 2000)) has not arrived yet.
  const s10 = at(10, 0, 1000);
  const s12 = at(12, 2000, 3000);

  it('passes a first sample, a redelivery, the next interval and a late one that fills its hole', () => {
    expect(sequenceProblem(at(5, 0, 1), {}, 100)).toBeUndefined();
    expect(sequenceProblem(at(10, 0, 1000), { last: s10, next: s12 }, 100)).toBeUndefined();
    expect(sequenceProblem(at(13, 3000, 4000), { last: s12 }, 100)).toBeUndefined();
    // Lower than the newest stored seq, arriving after it: checking against the newest alone refused it as an overlap.
    expect(sequenceProblem(at(11, 1000, 2000), { last: s10, next: s12 }, 100)).toBeUndefined();
    // A late redelivery of a stored sample is a duplicate, not a refusal.
    expect(sequenceProblem(at(10, 0, 1000), { last: s10, next: at(11, 1000, 2000) }, 100)).toBeUndefined();
    // A restarted agent (data dir wiped) starts its seq again: fine while the intervals move on.
    expect(sequenceProblem(at(0, 3000, 4000), { last: s12 }, 100)).toBeUndefined();
  });

  it('refuses a seq far past the one before it, and a fresh seq for time already stored on either side', () => {
    expect(sequenceProblem(at(113, 3000, 4000), { last: s12 }, 100)).toBe('seq');
    expect(sequenceProblem(at(112, 3000, 4000), { last: s12 }, 100)).toBeUndefined();
    expect(sequenceProblem(at(13, 2000, 3000), { last: s12 }, 100)).toBe('overlap');
    expect(sequenceProblem(at(13, 2999, 4000), { last: s12 }, 100)).toBe('overlap');
    // Into the hole, but reaching over the next stored interval.
    expect(sequenceProblem(at(11, 1000, 2001), { last: s10, next: s12 }, 100)).toBe('overlap');
    // Before everything stored, over its time.
    expect(sequenceProblem(at(3, 0, 500), { next: s10 }, 100)).toBe('overlap');
  });

  it("finds a sample's neighbours in (interval end, seq) order, itself when redelivered", () => {
    const sorted = [s10, at(11, 1000, 2000), s12];
    expect(neighboursIn(sorted, at(11, 1000, 2000))).toEqual({ index: 2, last: sorted[1], next: s12 });
    expect(neighboursIn(sorted, at(9, 0, 500))).toEqual({ index: 0, last: undefined, next: s10 });
    expect(neighboursIn(sorted, at(13, 3000, 4000))).toEqual({ index: 3, last: s12, next: undefined });
    expect(neighboursIn([], at(1, 0, 1))).toEqual({ index: 0, last: undefined, next: undefined });
  });

  /** An agent's stream: increasing seqs (gaps are messages of other streams), intervals that follow one another. */
  const stream = fc
    .array(fc.record({ seqStep: fc.integer({ min: 1, max: 5 }), gap: fc.nat({ max: 3 }), length: fc.nat({ max: 4 }) }), { minLength: 1, maxLength: 30 })
    .map((steps) => {
      let seq = 0;
      let time = 0;
      return steps.map(({ seqStep, gap, length }) => {
        seq += seqStep;
        const s = at(seq, time + gap, time + gap + length);
        time = s.intervalEnd;
        return s;
      });
    });

  /** Each sample checked against its neighbours among those accepted so far, as the ingest does. */
  function ingest(arrivals: readonly StreamSample[]): { stored: StreamSample[]; refused: StreamSample[] } {
    const stored: StreamSample[] = [];
    const refused: StreamSample[] = [];
    for (const s of arrivals) {
      const around = neighboursIn(stored, s);
      // A gap no stream here can reach: holes of samples still on their way never trip it.
      if (sequenceProblem(s, around, 1000)) refused.push(s);
      else if (!(around.last?.seq === s.seq && around.last.intervalEnd === s.intervalEnd)) stored.splice(around.index, 0, s);
    }
    return { stored, refused };
  }

  it("stores an agent's samples whatever order they arrive in and however often, and refuses every replay under a fresh seq", () => {
    fc.assert(
      fc.property(
        stream.chain((samples) =>
          fc.tuple(
            fc.constant(samples),
            // Each sample once or twice (a redelivery), in any order.
            fc.array(fc.boolean(), { minLength: samples.length, maxLength: samples.length }).chain((twice) => {
              const all = samples.flatMap((s, i) => (twice[i] ? [s, s] : [s]));
              return fc.shuffledSubarray(all, { minLength: all.length, maxLength: all.length });
            }),
            // Replays: the interval of a sample with positive length under a seq of its own (above or below every seq).
            fc.array(fc.tuple(fc.nat({ max: samples.length - 1 }), fc.boolean()), { maxLength: 5 }),
          ),
        ),
        ([samples, arrivals, replays]) => {
          const fresh = replays
            .map(([i, below]) => ({ of: samples[i]!, below }))
            .filter(({ of }) => of.intervalEnd > of.intervalStart)
            .map(({ of, below }, k) => at(below ? -1 - k : samples[samples.length - 1]!.seq + 1 + k, of.intervalStart, of.intervalEnd));
          const { stored, refused } = ingest([...arrivals, ...fresh]);
          expect(stored).toEqual(samples);
          expect(refused).toEqual(fresh);
        },
      ),
    );
  });
});

describe('device weight cap', () => {
  it('bins counts by powers of two', () => {
    expect([0, 1, 2, 3, 4, 100, 128, 2 ** 31 - 1].map(countBin)).toEqual([0, 0, 1, 1, 2, 6, 7, 30]);
  });
  it('caps at factor x the upper bound of the median bin, whatever one device claims', () => {
    const hist = new Array<number>(32).fill(0);
    expect(weightCap(hist, 10)).toBeNull();
    hist[countBin(100)] = 20;
    hist[countBin(2_000_000_000)] = 1;
    expect(weightCap(hist, 10)).toBe(1280);
    expect(sampleWeight(100, 1280)).toBe(1);
    expect(sampleWeight(5000, 1280) * 5000).toBeCloseTo(1280);
    expect(sampleWeight(5000, null)).toBe(1);
  });
});
