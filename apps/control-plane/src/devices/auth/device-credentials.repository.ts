import { Injectable } from '@nestjs/common';
import { DataSource } from 'typeorm';
import { rowsOf } from '../../infra/database/sql-values.js';

/** Credential lookups for device authentication (MQTT CONNECT and HTTP Basic). */
@Injectable()
export class DeviceCredentialsRepository {
  constructor(private readonly dataSource: DataSource) {}

  /** Credential hashes of live devices, for a batch of ids in one query (reconnect storms). */
  async credentialHashes(ids: string[]): Promise<Map<string, string>> {
    const rows = rowsOf(
      await this.dataSource.query(
        `SELECT id, credential_hash FROM devices WHERE id = ANY($1::text[]) AND decommissioned_at IS NULL AND credential_hash IS NOT NULL`,
        [ids],
      ),
    );
    return new Map(rows.map((r) => [String(r['id']), String(r['credential_hash'])]));
  }

  /** Registered client-certificate fingerprints of live devices, for a batch of ids in one query. */
  async certificateFingerprints(ids: readonly string[]): Promise<Map<string, string>> {
    const rows = rowsOf(
      await this.dataSource.query(
        `SELECT id, client_cert_sha256 FROM devices WHERE id = ANY($1::text[]) AND decommissioned_at IS NULL AND client_cert_sha256 IS NOT NULL`,
        [ids],
      ),
    );
    return new Map(rows.map((r) => [String(r['id']), String(r['client_cert_sha256'])]));
  }

  /** Binds (or with null unbinds) a live device's client certificate; false when there is no live device with this id. */
  async setCertificateFingerprint(id: string, fingerprint: string | null): Promise<boolean> {
    const rows = rowsOf(
      await this.dataSource.query(`UPDATE devices SET client_cert_sha256 = $2 WHERE id = $1 AND decommissioned_at IS NULL RETURNING id`, [id, fingerprint]),
    );
    return rows.length > 0;
  }
}
