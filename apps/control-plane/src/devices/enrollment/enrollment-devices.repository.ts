import { Injectable } from '@nestjs/common';
import type { EntityManager } from 'typeorm';
import type { NewDevice } from '../devices.repository.js';
import { rowsOf } from '../../infra/database/sql-values.js';

/** The device side of an enrollment batch: set-based statements over the whole batch. */
@Injectable()
export class EnrollmentDevicesRepository {
  /** Ids among `ids` that belong to live devices (a decommissioned id may be enrolled again). */
  async liveIds(manager: EntityManager, ids: readonly string[]): Promise<Set<string>> {
    if (ids.length === 0) return new Set();
    const rows = rowsOf(await manager.query(`SELECT id FROM devices WHERE id = ANY($1::text[]) AND decommissioned_at IS NULL`, [ids]));
    return new Set(rows.map((r) => String(r['id'])));
  }

  /**
   * Inserts a batch of devices in one statement; a decommissioned device's row is taken over (its
   * per-model state was deleted at decommission), exactly as a single enrollment does. Returns the
   * ids written: an id missing from the answer belongs to a live device (nothing was changed for
   * it). The ids must be distinct within the batch (ON CONFLICT DO UPDATE cannot touch a row twice).
   */
  async insertMany(manager: EntityManager, devices: readonly NewDevice[]): Promise<Set<string>> {
    if (devices.length === 0) return new Set();
    const rows = rowsOf(
      await manager.query(
        `INSERT INTO devices (id, name, tags, credential_hash, enrollment_token_id, inventory, hardware_class, agent_version)
         SELECT u.id, u.name, u.tags, u.credential_hash, u.token_id, u.inventory, u.inventory->>'hardwareClass', u.inventory->>'agentVersion'
           FROM unnest($1::text[], $2::text[], $3::jsonb[], $4::text[], $5::uuid[], $6::jsonb[]) AS u(id, name, tags, credential_hash, token_id, inventory)
         ON CONFLICT (id) DO UPDATE SET
           name = EXCLUDED.name, tags = EXCLUDED.tags, credential_hash = EXCLUDED.credential_hash, client_cert_sha256 = NULL,
           enrollment_token_id = EXCLUDED.enrollment_token_id, inventory = EXCLUDED.inventory,
           hardware_class = EXCLUDED.hardware_class, agent_version = EXCLUDED.agent_version,
           enrolled_at = now(), decommissioned_at = NULL, online = false, last_seen_at = NULL,
           presence_changed_at = NULL, last_report_seq = -1, inventory_seq = -1
         WHERE devices.decommissioned_at IS NOT NULL
         RETURNING id`,
        [
          devices.map((d) => d.id),
          devices.map((d) => d.name),
          devices.map((d) => JSON.stringify(d.tags)),
          devices.map((d) => d.credentialHash),
          devices.map((d) => d.enrollmentTokenId),
          devices.map((d) => (d.inventory ? JSON.stringify(d.inventory) : null)),
        ],
      ),
    );
    return new Set(rows.map((r) => String(r['id'])));
  }
}
