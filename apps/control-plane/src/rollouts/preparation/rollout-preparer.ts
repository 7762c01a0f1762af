import { Injectable, Logger } from '@nestjs/common';
import type { ArtifactRef } from '@fleetline/protocol';
import { DomainException } from '../../infra/http/domain.exception.js';
import { ModelsService } from '../../models/models.service.js';
import { RolloutRepository } from '../rollout.repository.js';

/** Rollouts prepared per call (one engine tick); the rest wait for the next tick. */
const PREPARE_PER_TICK = 4;

export interface PreparationOutcome {
  rolloutId: string;
  outcome: 'prepared' | 'refused' | 'gone' | 'error';
}

/**
 * Materialises the membership of `preparing` rollouts (created with a large explicit id list:
 * the request only stored the row and the raw list). Run by the driver-lease holder once per
 * engine tick (RolloutEngine.tick). Each rollout is prepared in one transaction of
 * RolloutRepository.prepare, which re-checks `preparing` under the row lock: a crash half-way
 * leaves it preparing for the next driver, and running this twice prepares it once.
 * What an inline creation answers with 409/404 (a conflict with an equal or higher priority
 * rollout, a version deleted meanwhile) ends it as `cancelled` (op `prepare-failed`) with the
 * reason and a `preparation-failed` event.
 */
@Injectable()
export class RolloutPreparer {
  private readonly logger = new Logger('RolloutPreparer');

  constructor(
    private readonly repo: RolloutRepository,
    private readonly models: ModelsService,
  ) {}

  /** Prepares the oldest waiting rollouts; returns what happened to each. Never throws. */
  async prepareWaiting(): Promise<PreparationOutcome[]> {
    const outcomes: PreparationOutcome[] = [];
    try {
      await this.repo.dropStaleTargetIds();
      for (const r of await this.repo.listPreparing(PREPARE_PER_TICK)) {
        outcomes.push({ rolloutId: r.id, outcome: await this.prepareOne(r.id, r.model, r.version) });
      }
    } catch (err) {
      // Database trouble outside one rollout's transaction: the next tick tries again.
      this.logger.error(`preparation pass failed, retried next tick: ${String(err)}`);
    }
    return outcomes;
  }

  private async prepareOne(id: string, model: string, version: string): Promise<PreparationOutcome['outcome']> {
    const started = Date.now();
    try {
      const artifacts = await this.artifactsOf(model, version);
      if (!artifacts.ok) return await this.refuse(id, 'model-version-not-found', artifacts.message, {});
      const result = await this.repo.prepare(id, artifacts.refs);
      if (!result) return 'gone';
      this.logger.log(
        `rollout ${id} prepared in ${Date.now() - started} ms: ${result.targetCount} devices, ${result.skippedCount} skipped, ${result.unknownDeviceCount} unknown ids`,
      );
      return 'prepared';
    } catch (err) {
      if (err instanceof DomainException && err.status >= 400 && err.status < 500) {
        return this.refuse(id, err.code, err.message, err.details ?? {});
      }
      // Database trouble: left preparing, the next tick (or the next driver) tries again.
      this.logger.error(`rollout ${id}: preparation failed, retried next tick: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}`);
      return 'error';
    }
  }

  private async refuse(id: string, code: string, message: string, details: Record<string, unknown>): Promise<PreparationOutcome['outcome']> {
    const reason = `preparation failed: ${message}`.slice(0, 1000);
    const moved = await this.repo.transition(
      id,
      'prepare-failed',
      reason,
      { type: 'preparation-failed', message: reason, data: { code, ...details } },
      { finished: true },
    );
    if (moved) this.logger.warn(`rollout ${id}: ${reason}`);
    return moved ? 'refused' : 'gone';
  }

  private async artifactsOf(model: string, version: string): Promise<{ ok: true; refs: ArtifactRef[] } | { ok: false; message: string }> {
    try {
      return { ok: true, refs: await this.models.artifactRefs(model, version) };
    } catch (err) {
      if (err instanceof DomainException && err.status === 404) return { ok: false, message: err.message };
      throw err;
    }
  }
}
