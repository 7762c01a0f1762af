import { Injectable } from '@nestjs/common';
import { DataSource } from 'typeorm';

/** Everything the fleet gauges show, from five small aggregate queries. */
export interface FleetSnapshot {
  devices: { online: number; offline: number; decommissioned: number };
  /** Devices per active version of each model; `version` null = assigned but nothing active yet. */
  modelVersions: { model: string; version: string | null; devices: number }[];
  rolloutsByState: { state: string; rollouts: number }[];
  /** Active rollouts only (scheduled, running, paused): devices per rollout-device state. */
  activeRolloutDevices: { rolloutId: string; model: string; version: string; state: string; devices: number }[];
}

/** Rollout states in which a rollout still moves; the only ones labelled by id (bounded cardinality). */
export const ACTIVE_ROLLOUT_STATES = ['scheduled', 'running', 'paused'] as const;

type Count = number | string;

/**
 * SQL behind the fleet gauges. Each query is a GROUP BY answered from an index (see the devices
 * and rollouts migrations), never a row per device in Node: a scrape costs the same for ten
 * devices and for a million rows, give or take the index scan.
 */
@Injectable()
export class FleetMetricsRepository {
  constructor(private readonly dataSource: DataSource) {}

  async snapshot(): Promise<FleetSnapshot> {
    // Sequential on purpose: the embedded database is a single connection anyway, and five
    // short queries in a row keep a scrape from holding several pooled connections on PostgreSQL.
    // Both presence counts come from partial indexes (devices_presence_idx, devices_decommissioned_idx).
    const presence = (await this.dataSource.query(`SELECT online, count(*) AS devices FROM devices WHERE decommissioned_at IS NULL GROUP BY online`)) as {
      online: boolean;
      devices: Count;
    }[];
    const [retired] = (await this.dataSource.query(`SELECT count(*) AS devices FROM devices WHERE decommissioned_at IS NOT NULL`)) as {
      devices: Count;
    }[];
    const versions = (await this.dataSource.query(
      `SELECT model, active_version AS version, count(*) AS devices
         FROM device_models GROUP BY model, active_version`,
    )) as { model: string; version: string | null; devices: Count }[];
    const rollouts = (await this.dataSource.query(`SELECT state, count(*) AS rollouts FROM rollouts GROUP BY state`)) as {
      state: string;
      rollouts: Count;
    }[];
    const progress = (await this.dataSource.query(
      `SELECT r.id AS rollout_id, r.model, r.version, d.state, count(*) AS devices
         FROM rollouts r JOIN rollout_devices d ON d.rollout_id = r.id
        WHERE r.state = ANY($1::text[])
        GROUP BY r.id, r.model, r.version, d.state`,
      [[...ACTIVE_ROLLOUT_STATES]],
    )) as { rollout_id: string; model: string; version: string; state: string; devices: Count }[];
    const count = (online: boolean) => Number(presence.find((r) => r.online === online)?.devices ?? 0);
    return {
      devices: { online: count(true), offline: count(false), decommissioned: Number(retired?.devices ?? 0) },
      modelVersions: versions.map((r) => ({ model: r.model, version: r.version, devices: Number(r.devices) })),
      rolloutsByState: rollouts.map((r) => ({ state: r.state, rollouts: Number(r.rollouts) })),
      activeRolloutDevices: progress.map((r) => ({ rolloutId: r.rollout_id, model: r.model, version: r.version, state: r.state, devices: Number(r.devices) })),
    };
  }
}
