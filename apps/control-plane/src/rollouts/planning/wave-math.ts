/**
 * Wave arithmetic. Wave sizes are CUMULATIVE: `{percent: 10}` means "10 % of the target is
 * covered once this wave is done", so percents 1, 10, 100 give waves of 1 %, 9 % and 90 %.
 * Counts work the same way (5, 50, then {percent: 100}: 5 devices, 45 more, then the rest).
 */
export interface WaveSize {
  percent?: number;
  count?: number;
}

/** Avoids 7 % of 100 becoming 7.000000000000001 and rounding up to 8. */
function cumulativeOf(size: WaveSize, targetSize: number): number {
  if (size.count !== undefined) return Math.min(size.count, targetSize);
  const exact = Math.round(((targetSize * (size.percent ?? 0)) / 100) * 1e6) / 1e6;
  return Math.min(Math.ceil(exact), targetSize);
}

/**
 * Cumulative number of devices covered after each wave, for a target of `targetSize` devices.
 * Percent slices round UP (a 1 % canary of 50 devices is 1 device, not 0); a non-empty target
 * always puts at least one device into the first wave; boundaries never decrease.
 */
export function waveBoundaries(waves: readonly WaveSize[], targetSize: number): number[] {
  const out: number[] = [];
  let previous = 0;
  for (let i = 0; i < waves.length; i++) {
    let boundary = Math.max(cumulativeOf(waves[i]!, targetSize), previous);
    if (i === 0 && targetSize > 0 && boundary === 0) boundary = 1;
    out.push(boundary);
    previous = boundary;
  }
  return out;
}

/** Devices in each wave (differences of the boundaries). */
export function waveSizes(boundaries: readonly number[]): number[] {
  return boundaries.map((b, i) => b - (i === 0 ? 0 : boundaries[i - 1]!));
}

/**
 * First 1-based ordinal of each wave, the thresholds for SQL `width_bucket(ordinal, lows) - 1`
 * (width_bucket counts the thresholds <= the operand, so an empty wave, whose low equals the
 * next wave's low, receives nobody).
 */
export function waveLowOrdinals(boundaries: readonly number[]): number[] {
  return boundaries.map((_, i) => (i === 0 ? 1 : boundaries[i - 1]! + 1));
}

/** Wave index of a 1-based ordinal (same rule as the SQL); -1 beyond the last wave. */
export function waveOfOrdinal(boundaries: readonly number[], ordinal: number): number {
  for (let i = 0; i < boundaries.length; i++) if (ordinal <= boundaries[i]!) return i;
  return -1;
}

/**
 * Problems with a wave list (empty when valid). Every wave gives exactly one of percent/count;
 * cumulative values strictly increase; counts may precede percents (never the reverse, their
 * order depends on the target size); the last wave is 100 % unless `coverAll` is false.
 */
export function validateWaveSizes(waves: readonly WaveSize[], coverAll: boolean): string[] {
  const problems: string[] = [];
  if (waves.length === 0) return ['at least one wave is required'];
  let lastPercent: number | undefined;
  let lastCount: number | undefined;
  waves.forEach((w, i) => {
    const where = `waves[${i}]`;
    if ((w.percent === undefined) === (w.count === undefined)) {
      problems.push(`${where}: give exactly one of percent or count`);
      return;
    }
    if (w.percent !== undefined) {
      if (!(w.percent > 0 && w.percent <= 100)) problems.push(`${where}.percent must be in (0, 100]`);
      if (lastPercent !== undefined && w.percent <= lastPercent)
        problems.push(`${where}.percent must be greater than the previous wave's (${lastPercent}); percents are cumulative`);
      lastPercent = w.percent;
    } else if (w.count !== undefined) {
      if (!Number.isInteger(w.count) || w.count < 1) problems.push(`${where}.count must be a positive integer`);
      if (lastPercent !== undefined) problems.push(`${where}: a count wave cannot follow a percent wave`);
      if (lastCount !== undefined && w.count <= lastCount)
        problems.push(`${where}.count must be greater than the previous wave's (${lastCount}); counts are cumulative`);
      lastCount = w.count;
    }
  });
  const last = waves[waves.length - 1]!;
  if (coverAll && last.percent !== 100) problems.push('the last wave must be {"percent": 100} (or set "coverAll": false to stop short of the whole target)');
  return problems;
}

/**
 * Exponential ramp schedule: minute i allows ratePerMinute·growthFactor^i notifications. Returns
 * how many devices a ramp that nothing held back has told after `elapsedMs` of ramping (a partial
 * minute contributes its share). Not a budget by itself: time the ramp is blocked (window closed,
 * paused, in-flight cap) must not count, which is what `rampBudget` (ramp.ts) takes care of.
 */
export function rampAllowance(elapsedMs: number, ramp: { ratePerMinute: number; growthFactor: number }): number {
  if (elapsedMs <= 0) return 1;
  const minutes = elapsedMs / 60_000;
  const full = Math.floor(minutes);
  const g = ramp.growthFactor;
  const r = ramp.ratePerMinute;
  const completed = g === 1 ? r * full : (r * (Math.pow(g, full) - 1)) / (g - 1);
  const partial = (minutes - full) * r * Math.pow(g, full);
  const total = completed + partial;
  if (!Number.isFinite(total) || total > Number.MAX_SAFE_INTEGER) return Number.MAX_SAFE_INTEGER;
  // At least one device as soon as the rollout starts, so a slow ramp does not look stuck.
  return Math.max(1, Math.floor(total));
}
