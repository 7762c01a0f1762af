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
}
