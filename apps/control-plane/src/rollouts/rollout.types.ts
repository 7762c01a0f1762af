import type { ShadowDirective } from '@fleetline/protocol';
import type { GateSpec } from '../telemetry/gates/health-gate.contract.js';

/**
 * Lifecycle of a rollout (its edges: lifecycle/rollout-transitions.ts). `preparing` is a rollout
 * with a large explicit id list whose membership the engine has not materialised yet (it holds no
 * devices and notifies nobody). `scheduled`, `running` and `paused` are the active states;
 * `rolling-back` is the transient state of an abort while devices are reverted, which ends in
 * `rolled-back` (at least one device reverted) or `aborted` (nothing had to be reverted).
 */
export const ROLLOUT_STATES = ['preparing', 'scheduled', 'running', 'paused', 'rolling-back', 'completed', 'cancelled', 'aborted', 'rolled-back'] as const;
export type RolloutState = (typeof ROLLOUT_STATES)[number];

/** Per-device state inside a rollout (protocol UpdateStates map onto these, see planning/device-state.ts). */
export const ROLLOUT_DEVICE_STATES = [
  'pending',
  'notified',
  'downloading',
  'downloaded',
  'installing',
  'committed',
  'failed',
  'timed-out',
  'rolled-back',
  'skipped',
] as const;
export type RolloutDeviceState = (typeof ROLLOUT_DEVICE_STATES)[number];

/** Device states in which the device has been told and has not finished yet. */
export const IN_FLIGHT_DEVICE_STATES: readonly RolloutDeviceState[] = ['notified', 'downloading', 'installing'];

export type RolloutAction = 'install' | 'download-only';
/**
 * What a failed wave does, for a failure threshold (onFailure) and a failed gate (onGateFailure)
 * alike: stop where it is, or roll back every told device (the API's abort).
 */
export type FailureAction = 'pause' | 'rollback';
export type GateFailureAction = FailureAction;
/** onFailure's old spelling of `rollback`, still accepted by the API and found in stored specs. */
export const LEGACY_FAILURE_ACTION = 'abort';

export function canonicalFailureAction(action: FailureAction | typeof LEGACY_FAILURE_ACTION | undefined): FailureAction {
  return action === 'rollback' || action === LEGACY_FAILURE_ACTION ? 'rollback' : 'pause';
}

/** A failure threshold: `percent` of executed devices or an absolute `count`, judged once `minExecuted` devices finished. */
export interface FailureCondition {
  percent?: number;
  count?: number;
  minExecuted: number;
}

/**
 * What a wave's devices are told: `install` the version (the rollout's action), or `shadow`:
 * download and verify it, then evaluate it beside their active version as `shadow` says, without
 * switching (docs/protocol.md, "Shadow evaluation"). A shadow wave's devices are done once staged.
 */
export type WaveAction = 'install' | 'shadow';

export interface WaveSpec {
  /** Absent: install (the rollout's own action). */
  action?: WaveAction;
  /** Set exactly when `action` is shadow. */
  shadow?: ShadowDirective;
  /** Cumulative share of the target covered once this wave is done (1, 10, 100 → waves of 1 %, 9 %, 90 %). */
  percent?: number;
  /** Cumulative device count covered once this wave is done. */
  count?: number;
  bakeSeconds: number;
  /** Share of the wave's devices that must have committed (download-only: downloaded) before the next wave. */
  successPercent: number;
  failure?: FailureCondition;
  /** The next wave never starts by itself after this one: an operator approves it (POST .../advance). */
  manualApproval: boolean;
  gates: GateSpec[];
  minSamples: number;
  windowSeconds: number;
  onGateFailure: GateFailureAction;
}

export interface TargetSelector {
  tags?: Record<string, string>;
  /** What the device currently runs. `model` defaults to the rollout's model. */
  current?: { model?: string; versions?: string[]; notInstalled?: boolean };
  presence?: { online?: boolean; seenWithinSeconds?: number };
  inventory?: { hardwareClasses?: string[]; runtime?: { name: string; range?: string }; agentVersion?: string };
  /** Explicit device ids (combined with the other criteria with AND). Not stored: see storedSpec. */
  deviceIds?: string[];
  /** Size of the explicit id list, as stored. */
  deviceIdCount?: number;
}

export interface MaintenanceWindow {
  cron: string;
  durationSeconds: number;
  timeZone: string;
}

export interface RampSpec {
  /** Devices notified during the first minute. */
  ratePerMinute: number;
  /** Each following minute allows growthFactor times more than the previous one (AWS IoT Jobs exponential rollout). */
  growthFactor: number;
}

/** The stored, normalised definition of a rollout (rollouts.spec). */
export interface RolloutSpec {
  target: TargetSelector;
  waves: WaveSpec[];
  onFailure: FailureAction;
  ramp?: RampSpec;
  maxInFlight?: number;
  maintenanceWindows: MaintenanceWindow[];
  timeoutSeconds: number;
  retries: { max: number; backoffSeconds: number };
  dynamic: boolean;
  /** false only when the last wave deliberately stops short of 100 % of the target. */
  coverAll: boolean;
}
