import { Injectable, Logger, type OnApplicationBootstrap, type OnModuleDestroy } from '@nestjs/common';
import { type AppliedReport, ReportIngestService } from '../devices/reports/report-ingest.service.js';
import { type NewEvent, RolloutRepository, type RolloutReport } from './rollout.repository.js';

/**
 * Reports wait this long to be applied together. Rollout rows are bookkeeping, not the device's
 * acknowledgement (that waited for device_models to commit), so a short delay costs nothing and
 * turns a flood of reports into a few statements and a few events per second.
 */
const LINGER_MS = 100;
/** Largest statement; a larger backlog is applied in several. */
const MAX_BATCH = 5_000;

/**
 * Moves rollout rows as their devices' reports are stored, on the replica that stored them.
 * Each report costs one row of a set-based UPDATE, so following a rollout costs O(reports) for any
 * number of devices in flight; the engine's periodic sweep (RolloutRepository.syncReports) repairs
 * whatever this missed (a crash between the report's commit and this update, a report that
 * arrived before its revision was recorded). Applications are serialised, so the rows of one
 * device move in the order its reports were stored.
 */
@Injectable()
export class RolloutReportFollower implements OnApplicationBootstrap, OnModuleDestroy {
  private readonly logger = new Logger('RolloutReportFollower');
  /** Latest report per (device, model) not applied yet. */
  private pending = new Map<string, RolloutReport>();
  private timer?: NodeJS.Timeout;
  private running?: Promise<void>;
  private stopped = false;
  private readonly listeners: ((rolloutIds: string[]) => void)[] = [];

  constructor(
    private readonly repo: RolloutRepository,
    private readonly reports: ReportIngestService,
  ) {}

  onApplicationBootstrap(): void {
    this.reports.onReportsApplied((applied) => this.add(applied));
  }

  async onModuleDestroy(): Promise<void> {
    this.stopped = true;
    clearTimeout(this.timer);
    this.timer = undefined;
    await this.flush();
  }

  /** Listeners told which rollouts had rows moved (the engine wakes on it). */
  onApplied(listener: (rolloutIds: string[]) => void): void {
    this.listeners.push(listener);
  }

  add(applied: readonly AppliedReport[]): void {
    for (const r of applied) {
      // A report about an older revision than the current assignment changed only active/previous
      // versions (report-ingest), and the sweep ignores it for the same reason.
      if (!r.currentAssignment) continue;
      this.pending.set(`${r.deviceId}\u0000${r.model}`, {
        deviceId: r.deviceId,
        model: r.model,
        revision: r.revision,
        state: r.state,
        failureCode: r.failureCode,
        failureMessage: r.failureMessage,
      });
    }
    if (this.pending.size > 0 && !this.timer && !this.running && !this.stopped) this.timer = setTimeout(() => void this.flush(), LINGER_MS);
  }

  /** Applies everything pending now (and what arrives meanwhile). Exposed for shutdown and tests. */
  async flush(): Promise<void> {
    clearTimeout(this.timer);
    this.timer = undefined;
    while (this.running) await this.running;
    if (this.pending.size === 0) return;
    this.running = this.applyPending().finally(() => (this.running = undefined));
    await this.running;
    if (this.pending.size > 0 && !this.stopped) this.timer ??= setTimeout(() => void this.flush(), LINGER_MS);
  }

  private async applyPending(): Promise<void> {
    const all = [...this.pending.values()];
    this.pending = new Map();
    const touched = new Set<string>();
    for (let i = 0; i < all.length; i += MAX_BATCH) {
      const batch = all.slice(i, i + MAX_BATCH);
      try {
        const moved = await this.repo.applyReports(batch);
        for (const [rolloutId, events] of eventsOf(moved)) {
          touched.add(rolloutId);
          await this.repo.insertEvents(undefined, rolloutId, events);
        }
      } catch (err) {
        // Not lost: device_models holds these reports and the engine's sweep applies them.
        this.logger.warn(`applying ${batch.length} reports to rollouts failed (the engine's sweep repairs them): ${String(err)}`);
      }
    }
    if (touched.size > 0) for (const l of this.listeners) l([...touched]);
  }
}

/** The events a batch of moved rows is worth: failures (with their codes) and refusals, per rollout. */
export function eventsOf(moved: readonly { rolloutId: string; wave: number; state: string; failureCode: string | null }[]): Map<string, NewEvent[]> {
  const byRollout = new Map<string, { wave: number; failed: number; codes: Record<string, number>; refused: number; moved: number }>();
  for (const m of moved) {
    const agg = byRollout.get(m.rolloutId) ?? { wave: m.wave, failed: 0, codes: {}, refused: 0, moved: 0 };
    agg.wave = Math.max(agg.wave, m.wave);
    agg.moved++;
    if (m.state === 'failed') {
      agg.failed++;
      const code = m.failureCode ?? 'unknown';
      agg.codes[code] = (agg.codes[code] ?? 0) + 1;
    } else if (m.state === 'skipped') agg.refused++;
    byRollout.set(m.rolloutId, agg);
  }
  const out = new Map<string, NewEvent[]>();
  for (const [rolloutId, a] of byRollout) {
    const events: NewEvent[] = [];
    if (a.failed > 0)
      events.push({ type: 'devices-failed', wave: a.wave, message: `${a.failed} devices reported failure`, data: { count: a.failed, codes: a.codes } });
    if (a.refused > 0)
      events.push({
        type: 'devices-incompatible',
        wave: a.wave,
        message: `${a.refused} devices refused the version as incompatible (skipped)`,
        data: { count: a.refused },
      });
    out.set(rolloutId, events);
  }
  return out;
}
