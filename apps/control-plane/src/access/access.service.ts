import { randomUUID } from 'node:crypto';
import { existsSync } from 'node:fs';
import { chmod, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { Inject, Injectable, type OnApplicationBootstrap } from '@nestjs/common';
import { APP_CONFIG, type AppConfig } from '../infra/config/app-config.js';
import { AccessErrorCode, AccessException } from './access.exception.js';
import type { Principal } from './access.decorators.js';
import type { ApiKeyEntity } from './api-key.entity.js';
import { ApiKeyRepository } from './api-key.repository.js';
import type { Role } from './role.js';
import { generateSecret, hashSecret } from './secret.js';

const CACHE_TTL_MS = 10_000;
const TOUCH_EVERY_MS = 60_000;

/** How an admin gets in, as the start-up summary tells it. */
export type AdminSignIn =
  | { kind: 'env' }
  | { kind: 'generated'; key: string; file: string }
  /** Admin keys exist already; `file` is the first start's key file if it is still there. */
  | { kind: 'existing'; file?: string };

export interface CreatedApiKey {
  id: string;
  name: string;
  role: Role;
  /** Shown once; only its hash is stored. */
  key: string;
}

@Injectable()
export class AccessService implements OnApplicationBootstrap {
  /** keyHash -> principal; a revoked key stops working within CACHE_TTL_MS (revoke() also evicts locally). */
  private readonly cache = new Map<string, { principal: Principal; until: number }>();
  private readonly touched = new Map<string, number>();
  /** Where the first admin key came from, known once the application has bootstrapped. */
  adminSignIn: AdminSignIn = { kind: 'existing' };

  constructor(
    private readonly keys: ApiKeyRepository,
    @Inject(APP_CONFIG) private readonly config: AppConfig,
  ) {}

  /** Makes sure an admin can get in: FLEET_ADMIN_KEY if given, else a generated key printed once. */
  async onApplicationBootstrap(): Promise<void> {
    if (this.config.adminKey) {
      this.adminSignIn = { kind: 'env' };
      const keyHash = hashSecret(this.config.adminKey);
      const existing = await this.keys.findByHash(keyHash);
      // A revoked FLEET_ADMIN_KEY stays revoked: seeding it again would undo the revocation (and
      // its hash is UNIQUE). Refusing to start is what an operator who revoked it wants to see.
      if (existing?.revokedAt) throw new AdminKeyRevokedError(existing.revokedAt);
      if (!existing) await this.keys.insert({ id: randomUUID(), name: 'FLEET_ADMIN_KEY', role: 'admin', keyHash });
      return;
    }
    const file = join(this.config.dataDir, 'initial-admin-key');
    if ((await this.keys.countActiveAdmins()) > 0) {
      this.adminSignIn = { kind: 'existing', file: existsSync(file) ? file : undefined };
      return;
    }
    const created = await this.createKey('initial-admin', 'admin');
    await writeFile(file, `${created.key}\n`, { mode: 0o600 });
    await chmod(file, 0o600);
    // The start-up summary prints it exactly once, on the start that created it; the file lets scripts pick it up.
    this.adminSignIn = { kind: 'generated', key: created.key, file };
  }

  async authenticate(key: string): Promise<Principal> {
    const keyHash = hashSecret(key);
    const now = Date.now();
    const cached = this.cache.get(keyHash);
    if (cached && cached.until > now) return cached.principal;
    const entity = await this.keys.findActiveByHash(keyHash);
    if (!entity) throw new AccessException(AccessErrorCode.Unauthenticated, 'invalid or revoked API key');
    const principal = toPrincipal(entity);
    this.cache.set(keyHash, { principal, until: now + CACHE_TTL_MS });
    if ((this.touched.get(entity.id) ?? 0) + TOUCH_EVERY_MS < now) {
      this.touched.set(entity.id, now);
      await this.keys.touch(entity.id, new Date(now));
    }
    return principal;
  }

  async createKey(name: string, role: Role): Promise<CreatedApiKey> {
    const key = generateSecret('flk_');
    const id = randomUUID();
    await this.keys.insert({ id, name, role, keyHash: hashSecret(key) });
    return { id, name, role, key };
  }

  listKeys(): Promise<ApiKeyEntity[]> {
    return this.keys.list();
  }

  async revokeKey(id: string): Promise<void> {
    if (!(await this.keys.revoke(id))) throw new AccessException(AccessErrorCode.KeyNotFound, `no active API key ${id}`);
    for (const [hash, entry] of this.cache) if (entry.principal.id === id) this.cache.delete(hash);
  }
}

/** Start-up refusal: the configured FLEET_ADMIN_KEY is one an admin revoked. */
export class AdminKeyRevokedError extends Error {
  constructor(revokedAt: Date) {
    super(
      `FLEET_ADMIN_KEY was revoked (at ${revokedAt.toISOString()}); set a new one, or unset it if other admin keys exist. ` +
        'A revoked key is never made valid again.',
    );
    this.name = 'AdminKeyRevokedError';
  }
}

function toPrincipal(entity: ApiKeyEntity): Principal {
  return { kind: 'api-key', id: entity.id, name: entity.name, role: entity.role };
}
