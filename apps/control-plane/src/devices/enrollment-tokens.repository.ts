import { Injectable } from '@nestjs/common';
import { DataSource, type EntityManager } from 'typeorm';
import type { Tags } from '@fleetline/protocol';
import { toIso, toJson, toNumber, toNullableNumber, rowsOf } from './sql-values.js';

export interface EnrollmentTokenView {
  id: string;
  name: string;
  tags: Tags;
  expiresAt: string | null;
  maxUses: number | null;
  uses: number;
  createdAt: string | null;
  revokedAt: string | null;
}

type Row = Record<string, unknown>;

function toView(row: Row): EnrollmentTokenView {
  return {
    id: String(row['id']),
    name: String(row['name']),
    tags: toJson<Tags>(row['tags']) ?? {},
    expiresAt: toIso(row['expires_at']),
    maxUses: toNullableNumber(row['max_uses']),
    uses: toNumber(row['uses']),
    createdAt: toIso(row['created_at']),
    revokedAt: toIso(row['revoked_at']),
  };
}

const COLUMNS = 'id, name, tags, expires_at, max_uses, uses, created_at, revoked_at';

@Injectable()
export class EnrollmentTokensRepository {
  constructor(private readonly dataSource: DataSource) {}

  async insert(token: {
    id: string;
    name: string;
    tokenHash: string;
    tags: Tags;
    expiresAt: Date | null;
    maxUses: number | null;
  }): Promise<EnrollmentTokenView> {
    const rows = rowsOf(
      await this.dataSource.query(
        `INSERT INTO enrollment_tokens (id, name, token_hash, tags, expires_at, max_uses) VALUES ($1, $2, $3, $4::jsonb, $5, $6) RETURNING ${COLUMNS}`,
        [token.id, token.name, token.tokenHash, JSON.stringify(token.tags), token.expiresAt?.toISOString() ?? null, token.maxUses],
      ),
    );
    return toView(rows[0]!);
  }

  async list(): Promise<EnrollmentTokenView[]> {
    // Few tokens per installation (one per batch of devices being flashed), so no pagination.
    const rows = rowsOf(await this.dataSource.query(`SELECT ${COLUMNS} FROM enrollment_tokens ORDER BY created_at DESC, id LIMIT 1000`));
    return rows.map(toView);
  }

  async revoke(id: string): Promise<boolean> {
    const rows = rowsOf(await this.dataSource.query(`UPDATE enrollment_tokens SET revoked_at = now() WHERE id = $1 AND revoked_at IS NULL RETURNING id`, [id]));
    return rows.length === 1;
  }

  /**
   * Takes one use of a valid token atomically (concurrent enrollments cannot exceed max_uses).
   * Returns undefined when the token is unknown, revoked, expired or used up.
   */
  async consume(manager: EntityManager, tokenHash: string): Promise<EnrollmentTokenView | undefined> {
    const rows = rowsOf(
      await manager.query(
        `UPDATE enrollment_tokens SET uses = uses + 1
        WHERE token_hash = $1 AND revoked_at IS NULL
          AND (expires_at IS NULL OR expires_at > now())
          AND (max_uses IS NULL OR uses < max_uses)
      RETURNING ${COLUMNS}`,
        [tokenHash],
      ),
    );
    return rows[0] ? toView(rows[0]) : undefined;
  }

  async findByHash(manager: EntityManager, tokenHash: string): Promise<(EnrollmentTokenView & { expired: boolean }) | undefined> {
    const rows = rowsOf(
      await manager.query(`SELECT ${COLUMNS}, (expires_at IS NOT NULL AND expires_at <= now()) AS expired FROM enrollment_tokens WHERE token_hash = $1`, [
        tokenHash,
      ]),
    );
    const row = rows[0];
    return row ? { ...toView(row), expired: row['expired'] === true } : undefined;
  }
}
