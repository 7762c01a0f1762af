import { Injectable } from '@nestjs/common';
import { DataSource } from 'typeorm';

/** One rollout a device took part in, newest first. */
export interface DeviceRolloutEntry {
  rolloutId: string;
  model: string;
  version: string;
  rolloutState: string;
  wave: number | null;
  state: string;
  reason: string | null;
  failureCode: string | null;
  fromVersion: string | null;
  attempts: number;
  notifiedAt: string | null;
  updatedAt: string;
  createdAt: string;
}

type Row = Record<string, unknown>;

const iso = (v: unknown): string | null => (v === null || v === undefined ? null : new Date(v as string).toISOString());

/**
 * A device's update history across rollouts, read from the rollouts feature's tables. The
 * `state <> 'skipped'` predicate lets PostgreSQL use rollout_devices_device_idx (device_id, model)
 * WHERE state <> 'skipped', so the lookup stays an index scan however many rollouts ran.
 */
@Injectable()
export class DeviceHistoryRepository {
  constructor(private readonly dataSource: DataSource) {}

  async rolloutsOf(deviceId: string, limit: number): Promise<DeviceRolloutEntry[]> {
    const rows = (await this.dataSource.query(
      `SELECT rd.rollout_id, r.model, r.version, r.state AS rollout_state, rd.wave, rd.state, rd.reason, rd.failure_code,
              rd.from_version, rd.attempts, rd.notified_at, rd.updated_at, r.created_at
         FROM rollout_devices rd
         JOIN rollouts r ON r.id = rd.rollout_id
        WHERE rd.device_id = $1 AND rd.state <> 'skipped'
        ORDER BY r.created_at DESC, r.id DESC
        LIMIT $2`,
      [deviceId, limit],
    )) as Row[];
    return rows.map((r) => ({
      rolloutId: String(r['rollout_id']),
      model: String(r['model']),
      version: String(r['version']),
      rolloutState: String(r['rollout_state']),
      wave: r['wave'] === null ? null : Number(r['wave']),
      state: String(r['state']),
      reason: (r['reason'] as string | null) ?? null,
      failureCode: (r['failure_code'] as string | null) ?? null,
      fromVersion: (r['from_version'] as string | null) ?? null,
      attempts: Number(r['attempts']),
      notifiedAt: iso(r['notified_at']),
      updatedAt: iso(r['updated_at'])!,
      createdAt: iso(r['created_at'])!,
    }));
  }
}
