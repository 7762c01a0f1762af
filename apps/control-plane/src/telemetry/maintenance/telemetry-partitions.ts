/**
 * Daily RANGE partitions of telemetry_samples on interval_end (UTC days). Retention drops whole
 * partitions (no DELETE, no vacuum debt); partitions are created ahead by the maintenance job
 * and on demand at ingest for late data still inside the retention window.
 */
const DAY_MS = 86_400_000;
const PARTITION_PREFIX = 'telemetry_samples_p';

/** UTC day (YYYY-MM-DD) of an instant. */
export function partitionDay(at: Date): string {
  return at.toISOString().slice(0, 10);
}

export function partitionName(day: string): string {
  if (!/^\d{4}-\d{2}-\d{2}$/.test(day)) throw new Error(`not a day: ${day}`);
  return `${PARTITION_PREFIX}${day.replaceAll('-', '')}`;
}

/** Day of a partition table name, or undefined for a table that is not a daily partition. */
export function dayOfPartition(name: string): string | undefined {
  const match = /^telemetry_samples_p(\d{4})(\d{2})(\d{2})$/.exec(name);
  return match ? `${match[1]}-${match[2]}-${match[3]}` : undefined;
}

export function partitionBounds(day: string): { from: string; to: string } {
  const from = new Date(`${day}T00:00:00.000Z`);
  return { from: from.toISOString(), to: new Date(from.getTime() + DAY_MS).toISOString() };
}

/** Days from `back` days before `now` to `ahead` days after it (inclusive). */
export function daysAround(now: Date, back: number, ahead: number): string[] {
  const days: string[] = [];
  for (let d = -back; d <= ahead; d++) days.push(partitionDay(new Date(now.getTime() + d * DAY_MS)));
  return days;
}

/**
 * Window of interval_end values the store accepts: not older than the retention (the partition
 * would be dropped at once), and not more than `aheadMs` in the future (a device with a wrong
 * clock must not create partitions far ahead).
 */
export function acceptedWindow(now: Date, retentionDays: number, aheadMs = DAY_MS): { from: Date; to: Date } {
  const from = new Date(`${partitionDay(new Date(now.getTime() - retentionDays * DAY_MS))}T00:00:00.000Z`);
  return { from, to: new Date(now.getTime() + aheadMs) };
}

/** Partitions entirely older than the retention: their upper bound is at or before the window start. */
export function expiredPartitions(names: readonly string[], now: Date, retentionDays: number): string[] {
  const { from } = acceptedWindow(now, retentionDays);
  return names.filter((name) => {
    const day = dayOfPartition(name);
    return day !== undefined && new Date(partitionBounds(day).to).getTime() <= from.getTime();
  });
}
