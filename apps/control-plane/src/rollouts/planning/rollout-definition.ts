import { isShadowMetric, type GateSpec } from '../../telemetry/gates/health-gate.contract.js';
import type { CreateRolloutDto } from '../dto/create-rollout.dto.js';
import { canonicalFailureAction, type RolloutAction, type RolloutSpec, type WaveSpec } from '../rollout.types.js';
import { validateMaintenanceWindow } from './maintenance-window.js';
import { isValidRange } from './target-filter.js';
import { validateWaveSizes } from './wave-math.js';

export const DEFAULTS = {
  bakeSeconds: 0,
  successPercent: 100,
  minExecuted: 1,
  minSamples: 500,
  windowSeconds: 300,
  timeoutSeconds: 3600,
  backoffSeconds: 30,
} as const;

export interface NormalisedDefinition {
  spec: RolloutSpec;
  action: RolloutAction;
  priority: number;
  startAt: Date;
  endAt: Date | null;
  hasGates: boolean;
}

const TAG_KEY = /^[A-Za-z0-9._-]{1,64}$/;

/**
 * Turns a validated request body into the stored spec with every default filled in, or the
 * list of problems (each a 400 message). Pure: the shape checks are done by the DTO; this is
 * the cross-field logic.
 */
export function normaliseDefinition(dto: CreateRolloutDto, now: Date): { ok: true; value: NormalisedDefinition } | { ok: false; problems: string[] } {
  const problems: string[] = [];
  const coverAll = dto.coverAll ?? true;
  problems.push(...validateWaveSizes(dto.waves, coverAll));
  const defaultGateFailure = dto.onGateFailure ?? 'pause';
  const waves: WaveSpec[] = dto.waves.map((w, i) => {
    if (w.failure && w.failure.percent === undefined && w.failure.count === undefined) problems.push(`waves[${i}].failure needs percent or count`);
    const shadowWave = w.action === 'shadow';
    if (shadowWave && !w.shadow) problems.push(`waves[${i}] is a shadow wave and needs shadow { samplePercent, durationSeconds }`);
    if (!shadowWave && w.shadow) problems.push(`waves[${i}].shadow is only for a wave with action shadow`);
    if (shadowWave && (dto.action ?? 'install') !== 'install') problems.push(`waves[${i}]: shadow waves need a rollout with action install`);
    // Once a wave installed the version it is the active one: nothing is left to shadow it against.
    if (shadowWave && dto.waves.slice(0, i).some((p) => p.action !== 'shadow')) problems.push(`waves[${i}]: shadow waves come before every install wave`);
    const gates: GateSpec[] = (w.gates ?? []).map((g, j) => {
      if (isShadowMetric(g.metric) !== shadowWave)
        problems.push(
          `waves[${i}].gates[${j}]: ${g.metric} ${shadowWave ? 'is not a shadow metric (a shadow wave has only shadow_* gates)' : 'needs a shadow wave'}`,
        );
      if (g.metric === 'shadow_agreement' ? g.min === undefined : g.maxRatio === undefined && g.maxIncrease === undefined && g.max === undefined)
        problems.push(`waves[${i}].gates[${j}] needs ${g.metric === 'shadow_agreement' ? 'min' : 'maxRatio, maxIncrease or max'}`);
      return {
        metric: g.metric,
        ...(g.min !== undefined ? { min: g.min } : {}),
        ...(g.tolerance !== undefined ? { tolerance: g.tolerance } : {}),
        ...(g.maxRatio !== undefined ? { maxRatio: g.maxRatio } : {}),
        ...(g.maxIncrease !== undefined ? { maxIncrease: g.maxIncrease } : {}),
        ...(g.max !== undefined ? { max: g.max } : {}),
        ...(g.minSamples !== undefined ? { minSamples: g.minSamples } : {}),
      };
    });
    return {
      ...(shadowWave && w.shadow
        ? {
            action: 'shadow' as const,
            shadow: {
              samplePercent: w.shadow.samplePercent,
              ...(w.shadow.maxSamples !== undefined ? { maxSamples: w.shadow.maxSamples } : {}),
              durationSeconds: w.shadow.durationSeconds,
            },
          }
        : {}),
      ...(w.percent !== undefined ? { percent: w.percent } : {}),
      ...(w.count !== undefined ? { count: w.count } : {}),
      bakeSeconds: w.bakeSeconds ?? DEFAULTS.bakeSeconds,
      successPercent: w.successPercent ?? DEFAULTS.successPercent,
      ...(w.failure
        ? {
            failure: {
              ...(w.failure.percent !== undefined ? { percent: w.failure.percent } : {}),
              ...(w.failure.count !== undefined ? { count: w.failure.count } : {}),
              minExecuted: w.failure.minExecuted ?? DEFAULTS.minExecuted,
            },
          }
        : {}),
      manualApproval: w.manualApproval ?? false,
      gates,
      minSamples: w.minSamples ?? DEFAULTS.minSamples,
      windowSeconds: w.windowSeconds ?? DEFAULTS.windowSeconds,
      onGateFailure: w.onGateFailure ?? defaultGateFailure,
    };
  });
  const target = dto.target;
  for (const [key, value] of Object.entries(target.tags ?? {})) {
    if (!TAG_KEY.test(key)) problems.push(`target.tags: key "${key}" must be 1-64 chars of [A-Za-z0-9._-]`);
    if (typeof value !== 'string') problems.push(`target.tags.${key} must be a string`);
  }
  if (target.inventory?.agentVersion !== undefined && !isValidRange(target.inventory.agentVersion))
    problems.push(`target.inventory.agentVersion "${target.inventory.agentVersion}" is not a semver range`);
  if (target.inventory?.runtime?.range !== undefined && !isValidRange(target.inventory.runtime.range))
    problems.push(`target.inventory.runtime.range "${target.inventory.runtime.range}" is not a semver range`);
  if (target.current?.notInstalled && target.current.versions && target.current.versions.length > 0)
    problems.push('target.current: versions and notInstalled exclude each other');
  if (dto.dynamic && target.deviceIds) problems.push('a dynamic rollout cannot use an explicit device list (new devices could never match it)');
  const windows = (dto.maintenanceWindows ?? []).map((w) => ({ cron: w.cron, durationSeconds: w.durationSeconds, timeZone: w.timeZone }));
  windows.forEach((w, i) => {
    const problem = validateMaintenanceWindow(w);
    if (problem) problems.push(`maintenanceWindows[${i}]: ${problem}`);
  });
  const startAt = dto.startAt ? new Date(dto.startAt) : now;
  const endAt = dto.endAt ? new Date(dto.endAt) : null;
  if (endAt && endAt.getTime() <= Math.max(startAt.getTime(), now.getTime())) problems.push('endAt must be after startAt and in the future');
  if (problems.length > 0) return { ok: false, problems };
  const spec: RolloutSpec = {
    target: {
      ...(target.tags ? { tags: target.tags } : {}),
      ...(target.current ? { current: { ...target.current } } : {}),
      ...(target.presence ? { presence: { ...target.presence } } : {}),
      ...(target.inventory ? { inventory: { ...target.inventory, ...(target.inventory.runtime ? { runtime: { ...target.inventory.runtime } } : {}) } } : {}),
      ...(target.deviceIds ? { deviceIds: target.deviceIds } : {}),
    },
    waves,
    onFailure: canonicalFailureAction(dto.onFailure),
    ...(dto.ramp ? { ramp: { ratePerMinute: dto.ramp.ratePerMinute, growthFactor: dto.ramp.growthFactor } } : {}),
    ...(dto.maxInFlight !== undefined ? { maxInFlight: dto.maxInFlight } : {}),
    maintenanceWindows: windows,
    timeoutSeconds: dto.timeoutSeconds ?? DEFAULTS.timeoutSeconds,
    retries: { max: dto.retries?.max ?? 0, backoffSeconds: dto.retries?.backoffSeconds ?? DEFAULTS.backoffSeconds },
    dynamic: dto.dynamic ?? false,
    coverAll,
  };
  return {
    ok: true,
    value: { spec, action: dto.action ?? 'install', priority: dto.priority ?? 0, startAt, endAt, hasGates: waves.some((w) => w.gates.length > 0) },
  };
}

/**
 * The spec as stored: an explicit id list (possibly 100,000 ids) is materialised in
 * rollout_devices and only its size is kept, so reading a rollout stays cheap.
 */
export function storedSpec(spec: RolloutSpec): RolloutSpec {
  const { deviceIds, ...target } = spec.target;
  return { ...spec, target: { ...target, ...(deviceIds ? { deviceIdCount: deviceIds.length } : {}) } };
}
