import { Injectable } from '@nestjs/common';
import { DataSource } from 'typeorm';
import { FleetCountsRepository } from '../fleet/fleet-counts.repository.js';
import { ACTIVE_ROLLOUT_STATES } from '../rollouts/lifecycle/rollout-transitions.js';

/** Everything the fleet gauges show, from the running fleet counts and two small aggregate queries. */
export interface FleetSnapshot {
  devices: { online: number; offline: number; decommissioned: number };
  /** Devices per active version of each model; `version` null = assigned but nothing active yet. */
  modelVersions: { model: string; version: string | null; devices: number }[];
  rolloutsByState: { state: string; rollouts: number }[];
  /** Active rollouts only (scheduled, running, paused): devices per rollout-device state. */
  activeRolloutDevices: { rolloutId: string; model: string; version: string; state: string; devices: number }[];
}

// Rollouts in ACTIVE_ROLLOUT_STATES still move: the only ones labelled by id (bounded cardinality).

type Count = number | string;

/**
 * SQL behind the fleet gauges: the running fleet counts for devices and versions, and GROUP BYs
 * answered from an index for rollouts (see the rollouts migrations), never a row per device in Node.
 */
@Injectable()
export class FleetMetricsRepository {
  constructor(
    private readonly dataSource: DataSource,
    private readonly fleetCounts: FleetCountsRepository,
  ) {}

  async snapshot(): Promise<FleetSnapshot> {
    // Sequential on purpose: the embedded database is a single connection anyway, and short
    // queries in a row keep a scrape from holding several pooled connections on PostgreSQL.
    // Devices and versions come from the running counts (fleet-counts.repository.ts), not from the device rows.
    const counts = await this.fleetCounts.read();
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
    return {
      devices: counts.presence,
      modelVersions: counts.versions,
      rolloutsByState: rollouts.map((r) => ({ state: r.state, rollouts: Number(r.rollouts) })),
      activeRolloutDevices: progress.map((r) => ({ rolloutId: r.rollout_id, model: r.model, version: r.version, state: r.state, devices: Number(r.devices) })),
    };
  }
}
