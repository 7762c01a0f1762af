import type pg from 'pg';

/** Per device, how many distinct telemetry seqs are stored and the highest one. */
export type StoredSeqs = Map<string, { n: number; max: number }>;

/**
 * What the control plane stored of each device's telemetry (devices whose id starts with `prefix`).
 * An agent sends seqs 0, 1, 2, ... and deletes a message only once acknowledged, so a device whose
 * count is not max + 1 lost an acknowledged sample.
 */
export async function storedSeqs(db: pg.Pool | pg.Client, prefix: string): Promise<StoredSeqs> {
  const rows = (
    await db.query<{ device_id: string; n: number; max: number }>(
      `SELECT device_id, count(DISTINCT seq)::int AS n, max(seq)::int AS max FROM telemetry_samples WHERE device_id LIKE $1 GROUP BY device_id`,
      [`${prefix}%`],
    )
  ).rows;
  return new Map(rows.map((r) => [r.device_id, { n: r.n, max: r.max }]));
}

/** Devices with a hole in their stored seqs, described for a failure message. */
export function seqHoles(seqs: StoredSeqs): string[] {
  return [...seqs].filter(([, d]) => d.n !== d.max + 1).map(([id, d]) => `${id}: ${d.n} of seqs 0..${d.max}`);
}
