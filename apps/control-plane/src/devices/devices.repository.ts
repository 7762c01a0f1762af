import { Injectable } from '@nestjs/common';
import { DataSource, type EntityManager } from 'typeorm';
import type { Inventory, Tags } from '@fleetline/protocol';
import { buildDeviceListQuery, type DeviceListFilter } from './device-filter.js';
import { toIso, toJson, toNullableNumber, toNumber, rowsOf } from '../infra/database/sql-values.js';

export interface DeviceModelState {
  model: string;
  desiredVersion: string | null;
  desiredRevision: number;
  desiredRolloutId: string | null;
  desiredAction: string | null;
  desiredAt: string | null;
  reportedVersion: string | null;
  reportedState: string | null;
  reportedRevision: number | null;
  reportedAt: string | null;
  activeVersion: string | null;
  previousVersion: string | null;
  failure: { code: string; message: string | null } | null;
  /** The build of desiredVersion chosen for the device (null: none chosen, the agent picks). */
  desiredVariant: string | null;
  /** The build of reportedVersion the device reported taking. */
  variant: string | null;
}

export interface DeviceSummary {
  id: string;
  name: string | null;
  tags: Tags;
  hardwareClass: string | null;
  agentVersion: string | null;
  online: boolean;
  lastSeenAt: string | null;
  presenceChangedAt: string | null;
  enrolledAt: string | null;
  decommissionedAt: string | null;
}

export interface DeviceDetail extends DeviceSummary {
  inventory: Inventory | null;
  enrollmentTokenId: string | null;
  lastReportSeq: number;
  models: DeviceModelState[];
}

export interface NewDevice {
  id: string;
  name: string | null;
  tags: Tags;
  credentialHash: string;
  enrollmentTokenId: string | null;
  inventory: Inventory | null;
}

const SUMMARY_COLUMNS =
  'd.id, d.name, d.tags, d.hardware_class, d.agent_version, d.online, d.last_seen_at, d.presence_changed_at, d.enrolled_at, d.decommissioned_at';

type Row = Record<string, unknown>;

function toSummary(row: Row): DeviceSummary {
  return {
    id: String(row['id']),
    name: (row['name'] as string | null) ?? null,
    tags: toJson<Tags>(row['tags']) ?? {},
    hardwareClass: (row['hardware_class'] as string | null) ?? null,
    agentVersion: (row['agent_version'] as string | null) ?? null,
    online: row['online'] === true,
    lastSeenAt: toIso(row['last_seen_at']),
    presenceChangedAt: toIso(row['presence_changed_at']),
    enrolledAt: toIso(row['enrolled_at']),
    decommissionedAt: toIso(row['decommissioned_at']),
  };
}

function toModelState(row: Row): DeviceModelState {
  const failureCode = (row['failure_code'] as string | null) ?? null;
  return {
    model: String(row['model']),
    desiredVersion: (row['desired_version'] as string | null) ?? null,
    desiredRevision: toNumber(row['desired_revision']),
    desiredRolloutId: (row['desired_rollout_id'] as string | null) ?? null,
    desiredAction: (row['desired_action'] as string | null) ?? null,
    desiredAt: toIso(row['desired_at']),
    reportedVersion: (row['report_version'] as string | null) ?? null,
    reportedState: (row['report_state'] as string | null) ?? null,
    reportedRevision: toNullableNumber(row['report_revision']),
    reportedAt: toIso(row['report_at']),
    activeVersion: (row['active_version'] as string | null) ?? null,
    previousVersion: (row['previous_version'] as string | null) ?? null,
    failure: failureCode ? { code: failureCode, message: (row['failure_message'] as string | null) ?? null } : null,
    desiredVariant: (row['desired_variant'] as string | null) ?? null,
    variant: (row['variant'] as string | null) ?? null,
  };
}

/** SQL of the devices table (and the device side of device_models). */
@Injectable()
export class DevicesRepository {
  constructor(private readonly dataSource: DataSource) {}

  /**
   * Inserts a device, or takes over the row of a decommissioned device with the same id (its
   * per-model state was deleted at decommission). Returns false when a live device has the id.
   */
  async insert(device: NewDevice, manager: EntityManager = this.dataSource.manager): Promise<boolean> {
    const rows = rowsOf(
      await manager.query(
        `INSERT INTO devices (id, name, tags, credential_hash, enrollment_token_id, inventory, hardware_class, agent_version)
       VALUES ($1, $2, $3::jsonb, $4, $5, $6::jsonb, $7, $8)
       ON CONFLICT (id) DO UPDATE SET
         name = EXCLUDED.name, tags = EXCLUDED.tags, credential_hash = EXCLUDED.credential_hash, client_cert_sha256 = NULL,
         enrollment_token_id = EXCLUDED.enrollment_token_id, inventory = EXCLUDED.inventory,
         hardware_class = EXCLUDED.hardware_class, agent_version = EXCLUDED.agent_version,
         enrolled_at = now(), decommissioned_at = NULL, online = false, last_seen_at = NULL,
         presence_changed_at = NULL, last_report_seq = -1, inventory_seq = -1
       WHERE devices.decommissioned_at IS NOT NULL
       RETURNING id`,
        [
          device.id,
          device.name,
          JSON.stringify(device.tags),
          device.credentialHash,
          device.enrollmentTokenId,
          device.inventory ? JSON.stringify(device.inventory) : null,
          device.inventory?.hardwareClass ?? null,
          device.inventory?.agentVersion ?? null,
        ],
      ),
    );
    return rows.length === 1;
  }

  async list(filter: DeviceListFilter): Promise<DeviceSummary[]> {
    const { sql, params } = buildDeviceListQuery(filter, SUMMARY_COLUMNS);
    const rows = rowsOf(await this.dataSource.query(sql, params));
    return rows.map(toSummary);
  }

  /** Per-model state of a page of devices, in one query. */
  async modelsOf(deviceIds: string[]): Promise<Map<string, DeviceModelState[]>> {
    const out = new Map<string, DeviceModelState[]>();
    if (deviceIds.length === 0) return out;
    const rows = rowsOf(await this.dataSource.query(`SELECT * FROM device_models WHERE device_id = ANY($1::text[]) ORDER BY device_id, model`, [deviceIds]));
    for (const row of rows) {
      const id = String(row['device_id']);
      let list = out.get(id);
      if (!list) out.set(id, (list = []));
      list.push(toModelState(row));
    }
    return out;
  }

  async findDetail(id: string): Promise<DeviceDetail | undefined> {
    const rows = rowsOf(
      await this.dataSource.query(`SELECT ${SUMMARY_COLUMNS}, d.inventory, d.enrollment_token_id, d.last_report_seq FROM devices d WHERE d.id = $1`, [id]),
    );
    const row = rows[0];
    if (!row) return undefined;
    const models = (await this.modelsOf([id])).get(id) ?? [];
    return {
      ...toSummary(row),
      inventory: row['inventory'] ? toJson<Inventory>(row['inventory']) : null,
      enrollmentTokenId: (row['enrollment_token_id'] as string | null) ?? null,
      lastReportSeq: toNumber(row['last_report_seq']),
      models,
    };
  }

  async isLive(id: string): Promise<boolean> {
    const rows = rowsOf(await this.dataSource.query(`SELECT 1 FROM devices WHERE id = $1 AND decommissioned_at IS NULL`, [id]));
    return rows.length > 0;
  }

  /** `merge` adds/overwrites keys (jsonb ||); `replace` sets the whole tag set. Returns false for no live device. */
  async updateTags(id: string, tags: Tags, mode: 'merge' | 'replace'): Promise<boolean> {
    const expression = mode === 'merge' ? 'tags || $2::jsonb' : '$2::jsonb';
    const rows = rowsOf(
      await this.dataSource.query(`UPDATE devices SET tags = ${expression} WHERE id = $1 AND decommissioned_at IS NULL RETURNING id`, [
        id,
        JSON.stringify(tags),
      ]),
    );
    return rows.length === 1;
  }

  async updateName(id: string, name: string | null): Promise<boolean> {
    const rows = rowsOf(await this.dataSource.query(`UPDATE devices SET name = $2 WHERE id = $1 AND decommissioned_at IS NULL RETURNING id`, [id, name]));
    return rows.length === 1;
  }

  /**
   * Clears the credential, marks the device decommissioned and offline, and deletes its per-model
   * state; returns the models it had (their retained desired topics must be cleared), or
   * undefined when there was no live device with this id.
   */
  /** Clears the credential and the per-model state; answers the credential hash it had (commands are bound to it). */
  async decommission(id: string): Promise<{ credentialHash: string | null } | undefined> {
    return this.dataSource.transaction(async (manager) => {
      const updated = rowsOf(
        await manager.query(
          `WITH old AS (SELECT id, credential_hash FROM devices WHERE id = $1 AND decommissioned_at IS NULL FOR UPDATE)
           UPDATE devices d SET credential_hash = NULL, client_cert_sha256 = NULL, decommissioned_at = now(), online = false, presence_changed_at = now()
             FROM old WHERE d.id = old.id
           RETURNING old.credential_hash`,
          [id],
        ),
      );
      if (updated.length === 0) return undefined;
      await manager.query(`DELETE FROM device_models WHERE device_id = $1`, [id]);
      const hash = updated[0]!['credential_hash'];
      return { credentialHash: typeof hash === 'string' ? hash : null };
    });
  }

  /**
   * Applies coalesced presence events in one statement. The WHERE clause is the rule of
   * presence-buffer.ts `supersedes`, against the stored row: an online replaces anything older or an
   * offline of another session; an offline ends only its own session; without sessions, newer wins.
   */
  async applyPresence(ids: string[], online: boolean[], at: string[], session: (string | null)[], replica: (string | null)[]): Promise<number> {
    if (ids.length === 0) return 0;
    const rows = rowsOf(
      await this.dataSource.query(
        `UPDATE devices d
          SET online = u.online,
              presence_changed_at = CASE WHEN u.online THEN u.at ELSE GREATEST(COALESCE(d.presence_changed_at, u.at), u.at) END,
              presence_session = CASE WHEN u.online THEN u.session ELSE d.presence_session END,
              presence_replica = CASE WHEN u.online THEN u.replica ELSE d.presence_replica END,
              last_seen_at = GREATEST(d.last_seen_at, u.at)
         FROM unnest($1::text[], $2::bool[], $3::timestamptz[], $4::text[], $5::text[]) AS u(id, online, at, session, replica)
        WHERE d.id = u.id
          AND d.decommissioned_at IS NULL
          AND CASE
                WHEN u.online THEN d.presence_changed_at IS NULL OR d.presence_changed_at <= u.at
                                   OR (NOT d.online AND d.presence_session IS DISTINCT FROM u.session)
                WHEN u.session IS NOT NULL THEN d.presence_session = u.session
                                   OR (d.presence_session IS NULL AND (d.presence_changed_at IS NULL OR d.presence_changed_at <= u.at))
                ELSE d.presence_changed_at IS NULL OR d.presence_changed_at <= u.at
              END
      RETURNING d.id`,
        [ids, online, at, session, replica],
      ),
    );
    return rows.length;
  }

  /** Devices whose connection was held by a replica that is gone (crashed, or restarted under the same name). */
  async markReplicaOffline(replicaId: string): Promise<number> {
    const rows = rowsOf(
      await this.dataSource.query(`UPDATE devices SET online = false, presence_changed_at = now() WHERE online AND presence_replica = $1 RETURNING id`, [
        replicaId,
      ]),
    );
    return rows.length;
  }

  /**
   * Applies the newest inventory per device (seq > inventory_seq, so redelivered retained
   * inventories are ignored). Returns the ids that were updated.
   */
  async applyInventory(items: { deviceId: string; seq: number; inventory: Inventory; at: string }[]): Promise<Set<string>> {
    if (items.length === 0) return new Set();
    const rows = rowsOf(
      await this.dataSource.query(
        `UPDATE devices d
          SET inventory = u.inventory,
              hardware_class = u.inventory->>'hardwareClass',
              agent_version = u.inventory->>'agentVersion',
              inventory_seq = u.seq,
              last_seen_at = GREATEST(d.last_seen_at, u.at)
         FROM unnest($1::text[], $2::bigint[], $3::jsonb[], $4::timestamptz[]) AS u(id, seq, inventory, at)
        WHERE d.id = u.id AND d.decommissioned_at IS NULL AND d.inventory_seq < u.seq
      RETURNING d.id`,
        [items.map((i) => i.deviceId), items.map((i) => i.seq), items.map((i) => JSON.stringify(i.inventory)), items.map((i) => i.at)],
      ),
    );
    return new Set(rows.map((r) => String(r['id'])));
  }

  /** Everyone offline: used when the in-process broker starts (no connection survives a restart). */
  async markAllOffline(): Promise<void> {
    await this.dataSource.query(`UPDATE devices SET online = false, presence_changed_at = now() WHERE online`);
  }

  /** Ids among `ids` that belong to live devices. */
  async liveIds(ids: string[]): Promise<Set<string>> {
    if (ids.length === 0) return new Set();
    const rows = rowsOf(await this.dataSource.query(`SELECT id FROM devices WHERE id = ANY($1::text[]) AND decommissioned_at IS NULL`, [ids]));
    return new Set(rows.map((r) => String(r['id'])));
  }
}
