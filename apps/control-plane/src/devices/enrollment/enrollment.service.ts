import { randomBytes } from 'node:crypto';
import { BadRequestException, Inject, Injectable, Logger, Optional, type OnModuleDestroy } from '@nestjs/common';
import { DataSource, type EntityManager } from 'typeorm';
import { type DeviceCredentials, type EnrollRequest, type Inventory, parseEnrollmentToken } from '@fleetline/protocol';
import { generateSecret, hashSecret } from '../../access/secret.js';
import { APP_CONFIG, type AppConfig } from '../../infra/config/app-config.js';
import { MqttGateway } from '../../infra/mqtt/mqtt-gateway.js';
import { TransportSecurity } from '../../infra/tls/transport-security.js';
import { DeviceCredentialVerifier } from '../auth/device-credential-verifier.service.js';
import { DeviceException } from '../devices.exception.js';
import { assertNotReserved } from '../auth/reserved-device-id.js';
import type { NewDevice } from '../devices.repository.js';
import { ModelCatalog } from '../model-catalog.js';
import { enrollmentCredentials } from './enrollment-credentials.js';
import { type EnrollDecision, decideEnrollments, type TokenSnapshot } from './enrollment-decision.js';
import { EnrollmentDevicesRepository } from './enrollment-devices.repository.js';
import { EnrollmentErrorCode, EnrollmentException } from './enrollment.exception.js';
import { EnrollmentTokensRepository } from './enrollment-tokens.repository.js';
import { GroupCommitQueue, type GroupCommitOptions, GroupCommitRefused } from './group-commit-queue.js';

/**
 * Batch bounds. 200 rows keep one transaction short (a few ms on PostgreSQL, low tens of ms on
 * PGlite, whose single backend MQTT authentication and ingest share), while a 10,000-device
 * burst still needs only ~50 transactions. The queue bound caps memory under a flood; past it a
 * request is answered 503 at once instead of waiting.
 */
export const ENROLLMENT_BATCH: GroupCommitOptions = { maxBatch: 200, maxDelayMs: 2, maxQueue: 20_000 };

/** A batch rolled back because a device id it inserted was taken by a concurrent transaction after the live-id check; it is decided again. */
const CONFLICT_RETRIES = 3;

interface PendingEnrollment {
  tokenHash: string;
  /** The device row without its token; the token id is known only once the batch has locked it. */
  device: Omit<NewDevice, 'enrollmentTokenId'>;
  /** Requested tags, only keys the token allows (else refused); the token's tags are merged over them (they win). */
  tags: NewDevice['tags'];
}

type EnrollOutcome = { decision: EnrollDecision; root: string };

class ConcurrentEnrollmentConflict extends Error {
  constructor(readonly ids: string[]) {
    super(`device ids taken by a concurrent transaction: ${ids.join(', ')}`);
  }
}

/**
 * Self-enrollment with a token, group-committed: concurrent requests are queued and committed in
 * batches, one transaction per batch that locks each token row once, decides every request in
 * arrival order (see decideEnrollments), inserts all accepted devices in one statement and bumps
 * each token's uses once. A refused request (e.g. id taken) does not use the token up; an id of a
 * live device is refused (409): re-enrolling must never hand out a second credential for a
 * device someone else holds. A database error fails that batch only (503), with nothing written.
 */
@Injectable()
export class EnrollmentService implements OnModuleDestroy {
  private readonly logger = new Logger('Enrollment');
  private readonly queue = new GroupCommitQueue<PendingEnrollment, EnrollOutcome>(ENROLLMENT_BATCH, (batch) => this.commit(batch));

  constructor(
    private readonly dataSource: DataSource,
    private readonly tokens: EnrollmentTokensRepository,
    private readonly devices: EnrollmentDevicesRepository,
    private readonly verifier: DeviceCredentialVerifier,
    private readonly catalog: ModelCatalog,
    @Inject(MqttGateway) private readonly gateway: MqttGateway,
    @Inject(APP_CONFIG) private readonly config: AppConfig,
    @Optional() @Inject(TransportSecurity) private readonly security?: TransportSecurity,
  ) {}

  async enroll(request: EnrollRequest, requestOrigin: string): Promise<DeviceCredentials> {
    // A NUL cannot be stored in text or jsonb; refused here, it cannot fail the batch it would join.
    if (containsNul(request)) throw new BadRequestException('strings must not contain NUL characters');
    // Secrets are made and hashed per device, outside the batch: only their hashes reach the database.
    const token = parseEnrollmentToken(request.token);
    // A pinned root is looked up before anything is queued: a device that will refuse our root
    // must not leave a device row (and a used token) behind.
    const pin = request.rootSha256 ?? token.rootPin;
    let pinnedRoot: string | undefined;
    if (pin !== undefined) {
      pinnedRoot = await this.catalog.rootByPin(pin);
      if (pinnedRoot === undefined)
        throw new EnrollmentException(
          EnrollmentErrorCode.RootUnknown,
          `this control plane has no TUF root whose sha256 starts with ${pin}; the token or --root-sha256 was made for another control plane (or mistyped). Nothing was created`,
        );
    }
    const secret = generateSecret('fld_');
    const id = request.id ?? `dev-${randomBytes(10).toString('hex')}`;
    assertNotReserved(id);
    const pending: PendingEnrollment = {
      tokenHash: hashSecret(token.secret),
      tags: request.tags ?? {},
      device: {
        id,
        name: request.name ?? null,
        tags: {},
        credentialHash: hashSecret(secret),
        inventory: (request.inventory as Inventory | undefined) ?? null,
      },
    };
    let outcome: EnrollOutcome;
    try {
      outcome = await this.queue.submit(pending);
    } catch (err) {
      throw unavailable(err);
    }
    if (!outcome.decision.accepted) throw new DeviceException(outcome.decision.code, outcome.decision.message);
    this.verifier.evict(id);
    return enrollmentCredentials({
      deviceId: id,
      secret,
      root: pinnedRoot ?? outcome.root,
      baseUrl: this.config.http.publicUrl ?? requestOrigin,
      mqttUrls: this.gateway.publicUrls(),
      ca: this.security?.deviceCa(),
    });
  }

  /** Commits what is queued; new requests are answered 503 from here on. */
  async onModuleDestroy(): Promise<void> {
    await this.queue.close();
  }

  private async commit(batch: readonly PendingEnrollment[]): Promise<EnrollOutcome[]> {
    try {
      return await this.commitBatch(batch);
    } catch (err) {
      // Logged once per batch; each request of it is answered 503 (see unavailable()).
      this.logger.error(`enrollment batch of ${batch.length} requests failed, nothing of it was written: ${err instanceof Error ? err.message : String(err)}`);
      throw err;
    }
  }

  private async commitBatch(batch: readonly PendingEnrollment[]): Promise<EnrollOutcome[]> {
    const started = performance.now();
    // The same for every request, so fetched once per batch; fetched before anything is written,
    // since once a device row exists the answer must not fail (its secret would be lost).
    const root = await this.catalog.trustedRoot();
    let decisions: EnrollDecision[] | undefined;
    for (let attempt = 1; !decisions; attempt++) {
      try {
        decisions = await this.dataSource.transaction((manager) => this.commitIn(manager, batch));
      } catch (err) {
        if (!(err instanceof ConcurrentEnrollmentConflict) || attempt >= CONFLICT_RETRIES) throw err;
        this.logger.debug(`enrollment batch decided again: ${err.message}`);
      }
    }
    const accepted = decisions.filter((d) => d.accepted).length;
    this.logger.log(`enrolled ${accepted} of ${batch.length} devices in ${(performance.now() - started).toFixed(1)} ms`);
    return decisions.map((decision) => ({ decision, root }));
  }

  /** One batch, one transaction: lock the tokens, check live ids, insert the accepted devices, add the uses. */
  private async commitIn(manager: EntityManager, batch: readonly PendingEnrollment[]): Promise<EnrollDecision[]> {
    const locked = await this.tokens.lockByHashes(manager, [...new Set(batch.map((p) => p.tokenHash))]);
    const tokens = new Map<string, TokenSnapshot>();
    for (const [hash, t] of locked) tokens.set(hash, { ...t, revoked: t.revokedAt !== null });
    // Only requests whose token is known can be accepted; their ids are the ones worth checking.
    const candidateIds = [...new Set(batch.filter((p) => tokens.has(p.tokenHash)).map((p) => p.device.id))];
    const live = await this.devices.liveIds(manager, candidateIds);
    const { decisions, grants } = decideEnrollments(
      tokens,
      batch.map((p) => ({ tokenHash: p.tokenHash, deviceId: p.device.id, tagKeys: Object.keys(p.tags) })),
      live,
    );
    const rows: NewDevice[] = [];
    batch.forEach((p, i) => {
      const decision = decisions[i]!;
      if (!decision.accepted) return;
      const token = locked.get(p.tokenHash)!;
      rows.push({ ...p.device, tags: { ...p.tags, ...token.tags }, enrollmentTokenId: decision.tokenId });
    });
    const written = await this.devices.insertMany(manager, rows);
    if (written.size !== rows.length) {
      // Another transaction (a pre-registration, or a batch on another replica using another
      // token) created one of these ids after the live-id check: roll back and decide again.
      throw new ConcurrentEnrollmentConflict(rows.filter((r) => !written.has(r.id)).map((r) => r.id));
    }
    await this.tokens.addUses(manager, grants);
    return decisions;
  }
}

function unavailable(err: unknown): EnrollmentException {
  if (err instanceof GroupCommitRefused)
    return new EnrollmentException(EnrollmentErrorCode.EnrollmentUnavailable, `enrollment is unavailable: ${err.message}; retry later`, {
      reason: err.reason,
    });
  return new EnrollmentException(
    EnrollmentErrorCode.EnrollmentUnavailable,
    'enrollment could not be committed (database error); nothing was stored for this request, retry later',
  );
}

function containsNul(value: unknown): boolean {
  if (typeof value === 'string') return value.includes('\u0000');
  if (Array.isArray(value)) return value.some(containsNul);
  if (value !== null && typeof value === 'object') return Object.entries(value).some(([k, v]) => k.includes('\u0000') || containsNul(v));
  return false;
}
