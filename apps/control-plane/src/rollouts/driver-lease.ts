import { Socket } from 'node:net';
import { Inject, Injectable, Logger, Optional } from '@nestjs/common';
import pg from 'pg';
import { APP_CONFIG, type AppConfig } from '../infra/config/app-config.js';
import { decideLease, DEFAULT_LEASE_TIMINGS, type LeaseCheck, leaseSessionSettings, type LeaseTimings, withDeadline } from './driver-lease-policy.js';

/** Key of the session advisory lock held by the replica that drives rollouts. */
export const ROLLOUT_DRIVER_LOCK_KEY = 7_214_002;

/** Optional override of the lease timings (tests use short ones); DEFAULT_LEASE_TIMINGS otherwise. */
export const DRIVER_LEASE_TIMINGS = Symbol('DRIVER_LEASE_TIMINGS');

/**
 * Decides which replica drives rollouts. On PostgreSQL the driver holds a session-level
 * pg_try_advisory_lock on its own long-lived connection, outside the pooled DataSource: a
 * pooled connection would hand the session (and the lock) to whatever query borrows it next.
 * If that connection dies, PostgreSQL releases the lock and another replica takes over.
 *
 * Every check on the connection has a deadline (driver-lease-policy.ts): a heartbeat that
 * fails or does not answer within `checkTimeoutMs` makes this replica stop driving at once
 * (the engine checks isDriver() before every tick and every rollout), destroys the connection
 * and tries to re-acquire later. The session carries server-side timeouts too, so PostgreSQL
 * ends a hung or abandoned lease session (and releases the lock) on its own.
 * On the embedded PGlite the process is the only one that can open the data dir, so it always drives.
 */
@Injectable()
export class DriverLease {
  private readonly logger = new Logger('RolloutDriver');
  private readonly timings: LeaseTimings;
  private client?: pg.Client;
  private socket?: Socket;
  /** Bumped whenever the connection is dropped: late answers and events of an old connection are ignored. */
  private generation = 0;
  private driver = false;
  private timer?: NodeJS.Timeout;
  private stopped = false;
  private busy = false;
  private readonly listeners: (() => void)[] = [];

  constructor(
    @Inject(APP_CONFIG) private readonly config: AppConfig,
    @Optional() @Inject(DRIVER_LEASE_TIMINGS) timings?: Partial<LeaseTimings>,
  ) {
    this.timings = { ...DEFAULT_LEASE_TIMINGS, ...timings };
  }

  isDriver(): boolean {
    return this.driver;
  }

  /** Called every time this replica becomes the driver (it then re-publishes unconfirmed notifications). */
  onAcquired(listener: () => void): void {
    this.listeners.push(listener);
  }

  async start(): Promise<void> {
    this.stopped = false;
    if (this.config.database.kind === 'pglite') {
      this.setDriver(true);
      return;
    }
    await this.attempt();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    clearTimeout(this.timer);
    this.driver = false;
    const client = this.client;
    const socket = this.socket;
    this.generation++;
    this.client = undefined;
    this.socket = undefined;
    // Ending the session releases the advisory lock; a hung link must not hold up shutdown.
    if (client)
      await withDeadline(
        client.end().catch(() => undefined),
        this.timings.checkTimeoutMs,
      );
    socket?.destroy();
  }

  /** Acquires the lock when not the driver, checks the session is alive when it is. Never throws. */
  private async attempt(): Promise<void> {
    if (this.stopped || this.config.database.kind !== 'postgres') return;
    if (this.busy) {
      // A check is still running (a lost() decided meanwhile): come back later rather than lose the schedule.
      this.schedule(this.timings.retryMs);
      return;
    }
    this.busy = true;
    const wasDriver = this.driver;
    const generation = this.generation;
    let check: LeaseCheck;
    try {
      const answer = await withDeadline(this.check(wasDriver), this.timings.checkTimeoutMs);
      check = answer === 'timed-out' ? { kind: 'timed-out' } : answer;
    } catch (err) {
      check = { kind: 'failed', reason: err instanceof Error ? err.message : String(err) };
    } finally {
      this.busy = false;
    }
    // The connection was lost (error/end event) or the lease stopped while the check ran: that already decided.
    if (this.stopped || generation !== this.generation) return;
    this.apply(wasDriver, check);
  }

  private async check(wasDriver: boolean): Promise<LeaseCheck> {
    const client = this.client ?? (await this.open());
    if (wasDriver) {
      await client.query('SELECT 1');
      return { kind: 'alive' };
    }
    const result = await client.query<{ ok: boolean }>('SELECT pg_try_advisory_lock($1) AS ok', [ROLLOUT_DRIVER_LOCK_KEY]);
    return result.rows[0]?.ok === true ? { kind: 'acquired' } : { kind: 'not-acquired' };
  }

  private async open(): Promise<pg.Client> {
    if (this.config.database.kind !== 'postgres') throw new Error('the driver lease needs PostgreSQL');
    const generation = this.generation;
    const settings = leaseSessionSettings(this.timings);
    // Our own socket, so a hung link can be destroyed at once (client.end() waits for the server).
    const socket = new Socket();
    const client = new pg.Client({
      connectionString: this.config.database.url,
      // Names the replica in pg_stat_activity: who drives rollouts is one query away.
      application_name: `fleetline-driver:${this.config.replicaId}`.slice(0, 63),
      connectionTimeoutMillis: this.timings.checkTimeoutMs,
      statement_timeout: settings.statementTimeoutMs,
      keepAlive: true,
      stream: () => socket,
    });
    client.on('error', (err) => {
      if (generation === this.generation) this.lost(`driver connection error: ${err.message}`);
    });
    client.on('end', () => {
      if (generation === this.generation) this.lost('driver connection ended');
    });
    this.client = client;
    this.socket = socket;
    await client.connect();
    try {
      // PostgreSQL 14+: end a session nobody heart-beats any more, and notice a vanished client
      // during a statement. Older servers lack them; statement_timeout and TCP keepalive remain.
      await client.query(`SET idle_session_timeout = ${settings.idleSessionTimeoutMs}`);
      await client.query(`SET client_connection_check_interval = ${settings.connectionCheckMs}`);
    } catch (err) {
      this.logger.warn(`driver lease session without idle/connection-check timeouts: ${err instanceof Error ? err.message : String(err)}`);
    }
    return client;
  }

  private apply(wasDriver: boolean, check: LeaseCheck): void {
    const decision = decideLease(wasDriver, check, this.timings);
    if (decision.dropConnection) this.drop();
    if (decision.lost) this.logger.warn(`stopped driving rollouts: ${decision.lost}`);
    if (decision.driver && !wasDriver) this.logger.log('this replica drives rollouts');
    this.setDriver(decision.driver, wasDriver);
    this.schedule(decision.nextCheckMs);
  }

  /** The connection reported an error or ended outside a check: same as a failed check, at once. */
  private lost(reason: string): void {
    if (this.stopped) return;
    this.apply(this.driver, { kind: 'failed', reason });
  }

  /** Destroys the lease connection without waiting for the server: ending the session releases the lock. */
  private drop(): void {
    this.generation++;
    const client = this.client;
    const socket = this.socket;
    this.client = undefined;
    this.socket = undefined;
    if (client) void client.end().catch(() => undefined);
    socket?.destroy();
  }

  private schedule(ms: number): void {
    clearTimeout(this.timer);
    if (this.stopped) return;
    this.timer = setTimeout(() => void this.attempt(), ms);
    this.timer.unref();
  }

  private setDriver(value: boolean, wasDriver = false): void {
    this.driver = value;
    if (value && !wasDriver) for (const l of this.listeners) l();
  }
}
