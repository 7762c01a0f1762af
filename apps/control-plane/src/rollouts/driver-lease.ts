import { Inject, Injectable, Logger } from '@nestjs/common';
import pg from 'pg';
import { APP_CONFIG, type AppConfig } from '../infra/config/app-config.js';

/** Key of the session advisory lock held by the replica that drives rollouts. */
export const ROLLOUT_DRIVER_LOCK_KEY = 7_214_002;
const RETRY_MS = 2_000;
const HEARTBEAT_MS = 5_000;

/**
 * Decides which replica drives rollouts. On PostgreSQL the driver holds a session-level
 * pg_try_advisory_lock on its own long-lived connection, outside the pooled DataSource: a
 * pooled connection would hand the session (and the lock) to whatever query borrows it next.
 * If that connection dies, PostgreSQL releases the lock and another replica takes over; this
 * one stops driving at once. On the embedded PGlite the process is the only one that can open
 * the data dir, so it always drives.
 */
@Injectable()
export class DriverLease {
  private readonly logger = new Logger('RolloutDriver');
  private client?: pg.Client;
  private driver = false;
  private timer?: NodeJS.Timeout;
  private stopped = false;
  private busy = false;
  private readonly listeners: (() => void)[] = [];

  constructor(@Inject(APP_CONFIG) private readonly config: AppConfig) {}

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
    this.timer = setInterval(() => void this.attempt(), this.driver ? HEARTBEAT_MS : RETRY_MS);
    this.timer.unref();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    clearInterval(this.timer);
    this.driver = false;
    const client = this.client;
    this.client = undefined;
    // Ending the session releases the advisory lock.
    if (client) await client.end().catch(() => undefined);
  }

  /** Acquires the lock when not the driver, checks the session is alive when it is. Never throws. */
  private async attempt(): Promise<void> {
    if (this.busy || this.stopped || this.config.database.kind !== 'postgres') return;
    this.busy = true;
    try {
      if (!this.client) {
        const client = new pg.Client({ connectionString: this.config.database.url, application_name: 'fleetline-rollout-driver' });
        client.on('error', (err) => this.lose(`driver connection error: ${err.message}`));
        client.on('end', () => this.lose('driver connection ended'));
        await client.connect();
        this.client = client;
      }
      if (this.driver) {
        await this.client.query('SELECT 1');
        return;
      }
      const result = await this.client.query<{ ok: boolean }>('SELECT pg_try_advisory_lock($1) AS ok', [ROLLOUT_DRIVER_LOCK_KEY]);
      if (result.rows[0]?.ok === true) {
        this.setDriver(true);
        this.logger.log('this replica drives rollouts');
        clearInterval(this.timer);
        this.timer = setInterval(() => void this.attempt(), HEARTBEAT_MS);
        this.timer.unref();
      }
    } catch (err) {
      this.lose(`driver lock check failed: ${err instanceof Error ? err.message : String(err)}`);
    } finally {
      this.busy = false;
    }
  }

  private lose(reason: string): void {
    const client = this.client;
    this.client = undefined;
    if (client) void client.end().catch(() => undefined);
    if (this.stopped) return;
    if (this.driver) this.logger.warn(`stopped driving rollouts: ${reason}`);
    this.driver = false;
    clearInterval(this.timer);
    this.timer = setInterval(() => void this.attempt(), RETRY_MS);
    this.timer.unref();
  }

  private setDriver(value: boolean): void {
    this.driver = value;
    if (value) for (const l of this.listeners) l();
  }
}
