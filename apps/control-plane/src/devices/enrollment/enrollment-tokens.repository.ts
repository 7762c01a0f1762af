import { Injectable } from '@nestjs/common';
import { DataSource, type EntityManager } from 'typeorm';
import type { Tags } from '@fleetline/protocol';
import { toIso, toJson, toNumber, toNullableNumber, rowsOf } from '../../infra/database/sql-values.js';

export interface EnrollmentTokenView {
  id: string;
  name: string;
  tags: Tags;
  /** Tag keys an enrolling device may set itself (none by default). */
  deviceTagKeys: string[];
  expiresAt: string | null;
  maxUses: number | null;
  uses: number;
  createdAt: string | null;
  revokedAt: string | null;
}

/** A token row locked by an enrollment batch. */
export interface LockedEnrollmentToken extends EnrollmentTokenView {
  expired: boolean;
}

type Row = Record<string, unknown>;

/** text[] as node-postgres (an array) or PGlite (an array, or '{a,b}' on older drivers) returns it. */
function toTextArray(value: unknown): string[] {
  if (Array.isArray(value)) return value.map(String);
  if (typeof value === 'string' && value.startsWith('{') && value.endsWith('}')) return value.length > 2 ? value.slice(1, -1).split(',') : [];
  return [];
}

function toView(row: Row): EnrollmentTokenView {
  return {
    id: String(row['id']),
    name: String(row['name']),
    tags: toJson<Tags>(row['tags']) ?? {},
    deviceTagKeys: toTextArray(row['device_tag_keys']),
    expiresAt: toIso(row['expires_at']),
    maxUses: toNullableNumber(row['max_uses']),
    uses: toNumber(row['uses']),
    createdAt: toIso(row['created_at']),
    revokedAt: toIso(row['revoked_at']),
  };
}

const COLUMNS = 'id, name, tags, device_tag_keys, expires_at, max_uses, uses, created_at, revoked_at';

@Injectable()
export class EnrollmentTokensRepository {
  constructor(private readonly dataSource: DataSource) {}

  async insert(token: {
    id: string;
    name: string;
    tokenHash: string;
    tags: Tags;
    deviceTagKeys: string[];
    expiresAt: Date | null;
    maxUses: number | null;
  }): Promise<EnrollmentTokenView> {
    const rows = rowsOf(
      await this.dataSource.query(
        `INSERT INTO enrollment_tokens (id, name, token_hash, tags, device_tag_keys, expires_at, max_uses)
         VALUES ($1, $2, $3, $4::jsonb, $5::text[], $6, $7) RETURNING ${COLUMNS}`,
        [token.id, token.name, token.tokenHash, JSON.stringify(token.tags), token.deviceTagKeys, token.expiresAt?.toISOString() ?? null, token.maxUses],
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
   * Locks the rows of the given token hashes for the rest of the transaction (one statement for a
   * whole enrollment batch, each row once) and returns them keyed by hash, with `expired` decided
   * by the database clock. Locking in id order keeps two batches that share tokens from
   * deadlocking each other (they queue on the first shared row instead).
   */
  async lockByHashes(manager: EntityManager, tokenHashes: readonly string[]): Promise<Map<string, LockedEnrollmentToken>> {
    const out = new Map<string, LockedEnrollmentToken>();
    if (tokenHashes.length === 0) return out;
    const rows = rowsOf(
      await manager.query(
        `SELECT ${COLUMNS}, token_hash, (expires_at IS NOT NULL AND expires_at <= now()) AS expired
           FROM enrollment_tokens WHERE token_hash = ANY($1::text[]) ORDER BY id FOR UPDATE`,
        [tokenHashes],
      ),
    );
    for (const row of rows) out.set(String(row['token_hash']), { ...toView(row), expired: row['expired'] === true });
    return out;
  }

  /** Adds the uses a batch granted, one row update per token, in one statement. */
  async addUses(manager: EntityManager, grants: ReadonlyMap<string, number>): Promise<void> {
    if (grants.size === 0) return;
    await manager.query(
      `UPDATE enrollment_tokens t SET uses = t.uses + g.n
         FROM unnest($1::uuid[], $2::int[]) AS g(id, n)
        WHERE t.id = g.id`,
      [[...grants.keys()], [...grants.values()]],
    );
  }
}
