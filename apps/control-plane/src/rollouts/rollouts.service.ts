import { randomUUID } from 'node:crypto';
import { Injectable, Optional } from '@nestjs/common';
import type { ArtifactRef } from '@fleetline/protocol';
import type { Principal } from '../access/access.decorators.js';
import { DomainException } from '../infra/http/domain.exception.js';
import { decodeCursor, encodeCursor, type Page } from '../infra/http/keyset-page.js';
import { ModelsService } from '../models/models.service.js';
import { HealthGateService } from '../telemetry/gates/health-gate.contract.js';
import type { CreateRolloutDto } from './dto/create-rollout.dto.js';
import type { ListRolloutDevicesQueryDto, ListRolloutsQueryDto } from './dto/rollout-queries.dto.js';
import { allows, type RolloutOperation, transitionOf } from './lifecycle/rollout-transitions.js';
import { normaliseDefinition } from './planning/rollout-definition.js';
import { assessWave, type StateCounts, type WaveAssessment } from './planning/wave-conditions.js';
import { RolloutEngine } from './rollout-engine.js';
import { RolloutErrorCode, RolloutException } from './rollout.exception.js';
import { type RolloutDeviceRow, type RolloutEventRow, RolloutRepository, type RolloutRow } from './rollout.repository.js';
import type { RolloutState } from './rollout.types.js';

export interface RolloutSummary {
  id: string;
  model: string;
  version: string;
  state: RolloutState;
  stateReason: string | null;
  action: string;
  priority: number;
  targetCount: number;
  skippedCount: number;
  currentWave: number;
  waveCount: number;
  baselineVersion: string | null;
  startAt: Date;
  endAt: Date | null;
  startedAt: Date | null;
  finishedAt: Date | null;
  createdBy: string | null;
  createdAt: Date;
}

export interface WaveView {
  index: number;
  size: number;
  spec: RolloutRow['spec']['waves'][number];
  startedAt: Date | null;
  successSince: Date | null;
  finishedAt: Date | null;
  counts: StateCounts;
  assessment: WaveAssessment;
  gates: { results: unknown; evaluatedAt: Date | null; overridden: boolean } | null;
}

export interface RolloutDetail extends RolloutSummary {
  spec: RolloutRow['spec'];
  counts: StateCounts;
  waves: WaveView[];
  events: Page<RolloutEventRow>;
}

export interface CreatedRollout extends RolloutDetail {
  /** The first 100 unknown or decommissioned explicit ids. Empty while `preparing`: the `unknown-devices` event lists them. */
  unknownDeviceIds: string[];
  /** null while `preparing` (the engine counts them: `prepared` event). */
  unknownDeviceCount: number | null;
}

/**
 * Explicit id lists longer than this are not materialised in the request: the rollout is stored
 * as `preparing` with its raw list and the engine prepares it (preparation/rollout-preparer.ts),
 * so creating a rollout of 1,000,000 ids answers as fast as one of 10. Shorter lists (and
 * selector targets) are materialised in the request and refused there with 409 on a conflict.
 */
export const INLINE_EXPLICIT_IDS = 1_000;

const DEFAULT_LIMIT = 100;
const DETAIL_EVENTS = 20;

function summary(r: RolloutRow): RolloutSummary {
  return {
    id: r.id,
    model: r.model,
    version: r.version,
    state: r.state,
    stateReason: r.stateReason,
    action: r.action,
    priority: r.priority,
    targetCount: r.targetCount,
    skippedCount: r.skippedCount,
    currentWave: r.currentWave,
    waveCount: r.spec.waves.length,
    baselineVersion: r.baselineVersion,
    startAt: r.startAt,
    endAt: r.endAt,
    startedAt: r.startedAt,
    finishedAt: r.finishedAt,
    createdBy: r.createdBy,
    createdAt: r.createdAt,
  };
}

/** Rollout definitions, operator actions and read models. The engine (rollout-engine.ts) does the driving. */
@Injectable()
export class RolloutsService {
  constructor(
    private readonly repo: RolloutRepository,
    private readonly models: ModelsService,
    private readonly engine: RolloutEngine,
    @Optional() private readonly gates?: HealthGateService,
  ) {}

  async create(dto: CreateRolloutDto, principal: Principal | undefined): Promise<CreatedRollout> {
    const normalised = normaliseDefinition(dto, new Date());
    if (!normalised.ok) throw new RolloutException(RolloutErrorCode.InvalidDefinition, normalised.problems.join('; '), { problems: normalised.problems });
    const def = normalised.value;
    if (def.hasGates && !this.gates) {
      throw new RolloutException(
        RolloutErrorCode.InvalidDefinition,
        'health gates are not available in this deployment (no telemetry health gate service): remove "gates"',
      );
    }
    const artifacts = await this.artifactsOf(dto.model, dto.version);
    const id = randomUUID();
    const input = {
      id,
      model: dto.model,
      version: dto.version,
      action: def.action,
      priority: def.priority,
      spec: def.spec,
      startAt: def.startAt,
      endAt: def.endAt,
      createdBy: principal ? `${principal.kind}:${principal.name}` : null,
      artifacts,
    };
    const deviceIds = def.spec.target.deviceIds;
    if (deviceIds && deviceIds.length > INLINE_EXPLICIT_IDS) {
      const { rollout, event } = await this.repo.createPreparing(input, deviceIds);
      this.engine.wake();
      return {
        ...summary(rollout),
        spec: rollout.spec,
        counts: {},
        waves: [],
        events: { items: [event], next: null },
        unknownDeviceIds: [],
        unknownDeviceCount: null,
      };
    }
    const result = await this.repo.create(input);
    this.engine.wake();
    return { ...(await this.describe(id)), unknownDeviceIds: result.unknownDeviceIds, unknownDeviceCount: result.unknownDeviceCount };
  }

  private async artifactsOf(model: string, version: string): Promise<ArtifactRef[]> {
    try {
      return await this.models.artifactRefs(model, version);
    } catch (err) {
      if (err instanceof DomainException && err.status === 404) throw new RolloutException(RolloutErrorCode.ModelVersionNotFound, err.message);
      throw err;
    }
  }

  async describe(id: string, eventLimit = DETAIL_EVENTS): Promise<RolloutDetail> {
    const r = await this.repo.get(id);
    const [waves, counts, events] = [await this.repo.waves(id), await this.repo.waveCounts(id), await this.events(id, { limit: eventLimit })];
    const total: StateCounts = {};
    for (const c of counts.values())
      for (const [state, n] of Object.entries(c)) total[state as keyof StateCounts] = (total[state as keyof StateCounts] ?? 0) + (n ?? 0);
    return {
      ...summary(r),
      spec: r.spec,
      counts: total,
      waves: waves.map((w) => {
        const c = counts.get(w.idx) ?? {};
        return {
          index: w.idx,
          size: w.size,
          spec: w.spec,
          startedAt: w.startedAt,
          successSince: w.successSince,
          finishedAt: w.finishedAt,
          counts: c,
          assessment: assessWave(c, w.spec.successPercent, w.spec.failure, r.action, w.acceptedFailures),
          gates: w.spec.gates.length > 0 ? { results: w.gateResults, evaluatedAt: w.gatesEvaluatedAt, overridden: w.gatesOverridden } : null,
        };
      }),
      events,
    };
  }

  async list(query: ListRolloutsQueryDto): Promise<Page<RolloutSummary>> {
    const limit = query.limit ?? DEFAULT_LIMIT;
    let after: [string, string] | undefined;
    if (query.after) {
      const c = decodeCursor(query.after, 2);
      if (!c || typeof c[0] !== 'string' || typeof c[1] !== 'string') throw new RolloutException(RolloutErrorCode.InvalidCursor, 'invalid cursor');
      after = [c[0], c[1]];
    }
    const rows = await this.repo.list({ state: query.state, model: query.model, limit: limit + 1, after });
    const page = rows.slice(0, limit);
    const last = page[page.length - 1];
    return { items: page.map(summary), next: rows.length > limit && last ? encodeCursor([last.createdAt.toISOString(), last.id]) : null };
  }

  async devices(id: string, query: ListRolloutDevicesQueryDto): Promise<Page<RolloutDeviceRow>> {
    await this.repo.get(id);
    const limit = query.limit ?? DEFAULT_LIMIT;
    let afterOrdinal: number | undefined;
    if (query.after) {
      const c = decodeCursor(query.after, 1);
      if (!c || typeof c[0] !== 'number') throw new RolloutException(RolloutErrorCode.InvalidCursor, 'invalid cursor');
      afterOrdinal = c[0];
    }
    const rows = await this.repo.devices(id, { state: query.state, wave: query.wave, limit: limit + 1, afterOrdinal });
    const page = rows.slice(0, limit);
    const last = page[page.length - 1];
    return { items: page, next: rows.length > limit && last ? encodeCursor([last.ordinal]) : null };
  }

  async events(id: string, query: { limit?: number; after?: string }): Promise<Page<RolloutEventRow>> {
    const limit = query.limit ?? DEFAULT_LIMIT;
    let before: string | undefined;
    if (query.after) {
      const c = decodeCursor(query.after, 1);
      if (!c || typeof c[0] !== 'string' || !/^\d+$/.test(c[0])) throw new RolloutException(RolloutErrorCode.InvalidCursor, 'invalid cursor');
      before = c[0];
    }
    const rows = await this.repo.events(id, limit + 1, before);
    const page = rows.slice(0, limit);
    const last = page[page.length - 1];
    return { items: page, next: rows.length > limit && last ? encodeCursor([last.id]) : null };
  }

  // ---------------------------------------------------------------- operator actions

  async pause(id: string, actor: string): Promise<RolloutDetail> {
    await this.transition(id, 'pause', `paused by ${actor}`, 'paused');
    return this.describe(id);
  }

  async resume(id: string, actor: string): Promise<RolloutDetail> {
    const r = await this.repo.get(id);
    if (r.state !== 'paused') throw this.invalid(r, 'resume', 'only a paused rollout can be resumed');
    const wave = (await this.repo.waves(id))[r.currentWave];
    if (wave) {
      // Failures seen so far were looked at by the operator: only new ones can pause again.
      const counts = (await this.repo.waveCounts(id, wave.idx)).get(wave.idx) ?? {};
      const failed = (counts.failed ?? 0) + (counts['timed-out'] ?? 0);
      const gatesFailed = (wave.gateResults ?? []).some((g) => g.passed === false);
      await this.repo.acceptCurrentWave(id, wave.idx, failed, gatesFailed);
    }
    const to: RolloutState = r.currentWave < 0 ? 'scheduled' : 'running';
    await this.transition(id, 'resume', null, 'resumed', { message: `resumed by ${actor}`, to });
    return this.describe(id);
  }

  async advance(id: string, actor: string): Promise<RolloutDetail> {
    const r = await this.repo.get(id);
    if (!allows('advance', r.state)) throw this.invalid(r, 'advance', 'the rollout is not active');
    const next = r.currentWave + 1;
    if (next >= r.spec.waves.length) throw this.invalid(r, 'advance', `wave ${r.currentWave + 1} is the last wave`);
    const ok = await this.repo.startWave(
      id,
      r.currentWave,
      next,
      { type: 'wave-started', wave: next, message: `wave ${next + 1} started by ${actor} (manual approval)`, data: { actor, manual: true } },
      'advance',
    );
    if (!ok) throw this.invalid(r, 'advance', 'the rollout changed meanwhile; try again');
    this.engine.wake();
    return this.describe(id);
  }

  async cancel(id: string, actor: string): Promise<RolloutDetail> {
    await this.transition(id, 'cancel', `cancelled by ${actor}`, 'cancelled', { finished: true });
    return this.describe(id);
  }

  async abort(id: string, actor: string): Promise<RolloutDetail> {
    await this.transition(id, 'abort', `aborted by ${actor}`, 'aborted', { message: `aborted by ${actor}: devices that took the version are reverted` });
    return this.describe(id);
  }

  async retry(id: string, actor: string): Promise<RolloutDetail> {
    const r = await this.repo.get(id);
    if (!allows('retry', r.state)) throw this.invalid(r, 'retry', 'the rollout is not active');
    const count = await this.repo.resetFailed(id);
    await this.repo.insertEvents(undefined, id, [
      { type: 'retry', wave: r.currentWave, message: `${actor} sent ${count} failed or timed-out devices back to pending`, data: { count, actor } },
    ]);
    this.engine.wake();
    return this.describe(id);
  }

  async install(id: string, actor: string): Promise<RolloutDetail> {
    const r = await this.repo.get(id);
    if (r.action !== 'download-only') throw this.invalid(r, 'install', 'only a download-only rollout takes an install command');
    if (!(await this.repo.requestInstall(id))) throw this.invalid(r, 'install', `allowed from ${transitionOf('install').from.join(', ')}`);
    await this.repo.insertEvents(undefined, id, [
      { type: 'install-requested', wave: r.currentWave, message: `${actor} commanded the downloaded devices to install`, data: { actor } },
    ]);
    this.engine.wake();
    return this.describe(id);
  }

  private async transition(
    id: string,
    op: RolloutOperation,
    reason: string | null,
    type: string,
    opts: { message?: string; finished?: boolean; to?: RolloutState } = {},
  ): Promise<void> {
    const ok = await this.repo.transition(id, op, reason, { type, message: opts.message ?? reason ?? type }, { finished: opts.finished, to: opts.to });
    if (!ok) {
      const r = await this.repo.get(id);
      throw this.invalid(r, op, `allowed from ${transitionOf(op).from.join(', ')}`);
    }
    this.engine.wake();
  }

  private invalid(r: RolloutRow, action: string, why: string): RolloutException {
    return new RolloutException(RolloutErrorCode.InvalidTransition, `cannot ${action} rollout ${r.id} in state ${r.state}: ${why}`, { state: r.state });
  }
}
