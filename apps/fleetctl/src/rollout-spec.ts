import { readFile } from 'node:fs/promises';
import { extname } from 'node:path';
import { parse as parseYaml } from 'yaml';
import { UsageError } from './exit-codes.js';
import { parseKeyValue } from './output.js';

/** Body of POST /api/v1/rollouts (the control plane's CreateRolloutDto is the authority). */
export interface RolloutRequest {
  model: string;
  version: string;
  target: { tags?: Record<string, string>; deviceIds?: string[] };
  waves: WaveRequest[];
  onFailure?: 'pause' | 'rollback' | 'abort';
  onGateFailure?: 'pause' | 'rollback';
  [extra: string]: unknown;
}

/** One model-health gate of a wave (the control plane's GateDto). */
export interface GateRequest {
  metric: GateMetric;
  maxRatio?: number;
  maxIncrease?: number;
  max?: number;
  minSamples?: number;
}

/** The metrics the control plane gates install waves on (GATE_METRICS of its health-gate contract, less the shadow-wave ones). */
export const GATE_METRICS = ['latency_p50', 'latency_p95', 'latency_p99', 'error_rate', 'psi'] as const;
export type GateMetric = (typeof GATE_METRICS)[number];
const GATE_BOUNDS = ['maxRatio', 'maxIncrease', 'max', 'minSamples'] as const;

export interface WaveRequest {
  percent: number;
  bakeSeconds?: number;
  successPercent?: number;
  failure?: { percent?: number; minExecuted?: number };
  gates?: GateRequest[];
  minSamples?: number;
  windowSeconds?: number;
  [extra: string]: unknown;
}

export interface RolloutFlags {
  file?: string;
  model?: string;
  version?: string;
  tag?: string[];
  deviceIdsFile?: string;
  waves?: string;
  bake?: string;
  success?: string;
  failurePercent?: string;
  minExecuted?: string;
  onFailure?: string;
  gate?: string[];
  minSamples?: string;
  window?: string;
  onGateFailure?: string;
}

/**
 * Builds the create-rollout body from `--file` (YAML or JSON, sent as written) or from flags.
 * Flags given together with `--file` override the file's top-level fields, so one file can serve
 * several versions (`--file canary.yaml --version 2.1.1`). Wave flags (--bake, --success,
 * --failure-percent, --min-executed) apply to every wave.
 */
export async function buildRolloutRequest(flags: RolloutFlags): Promise<RolloutRequest> {
  const base: Partial<RolloutRequest> = flags.file ? await readRolloutFile(flags.file) : {};
  const request: Partial<RolloutRequest> = { ...base };
  if (flags.model !== undefined) request.model = flags.model;
  if (flags.version !== undefined) request.version = flags.version;

  const tags = flags.tag?.length ? Object.fromEntries(flags.tag.map((t) => parseKeyValue(t, '--tag'))) : undefined;
  const deviceIds = flags.deviceIdsFile ? await readDeviceIds(flags.deviceIdsFile) : undefined;
  if (tags || deviceIds) request.target = { ...(tags ? { tags } : {}), ...(deviceIds ? { deviceIds } : {}) };

  const waveFlags = flags.bake ?? flags.success ?? flags.failurePercent ?? flags.minExecuted;
  if (flags.waves !== undefined) request.waves = parseWaves(flags.waves).map((percent) => ({ percent }));
  if (waveFlags !== undefined && request.waves) {
    request.waves = request.waves.map((wave) => applyWaveFlags(wave, flags));
  }
  if (flags.gate?.length || flags.minSamples !== undefined || flags.window !== undefined) {
    if (!request.waves) throw new UsageError('--gate, --min-samples and --window need --waves (or "waves" in --file)');
    if (request.waves.length < 2) throw new UsageError('gates judge a wave before the next one starts: --waves needs at least two waves, e.g. 10,100');
    const gated = gateFlags(flags);
    // Gates decide whether the next wave may start, so the last wave (everyone left) has none.
    request.waves = request.waves.map((wave, i, all) => (i < all.length - 1 ? { ...wave, ...gated } : wave));
  }
  if (flags.onGateFailure !== undefined) {
    if (flags.onGateFailure !== 'pause' && flags.onGateFailure !== 'rollback') throw new UsageError('--on-gate-failure must be pause or rollback');
    request.onGateFailure = flags.onGateFailure;
  }
  if (flags.onFailure !== undefined) {
    // 'abort' is the old name of 'rollback' (the server accepts both and stores 'rollback').
    if (flags.onFailure !== 'pause' && flags.onFailure !== 'rollback' && flags.onFailure !== 'abort')
      throw new UsageError('--on-failure must be pause or rollback');
    request.onFailure = flags.onFailure;
  }

  if (!request.model) throw new UsageError('--model is required (or "model" in --file)');
  if (!request.version) throw new UsageError('--version is required (or "version" in --file)');
  if (!request.target) throw new UsageError('a target is required: --tag key=value, --device-ids-file F, or "target" in --file');
  if (!request.waves) throw new UsageError('--waves is required (e.g. --waves 1,10,100), or "waves" in --file');
  return request as RolloutRequest;
}

/** "1,10,100" -> [1, 10, 100]: cumulative percentages of the target, strictly increasing, ending at 100. */
export function parseWaves(text: string): number[] {
  const waves = text.split(',').map((part) => {
    const value = Number(part.trim());
    if (part.trim() === '' || !Number.isFinite(value) || value <= 0 || value > 100) {
      throw new UsageError(`--waves: "${part}" is not a percentage in (0, 100]`);
    }
    return value;
  });
  for (let i = 1; i < waves.length; i++) {
    if (waves[i]! <= waves[i - 1]!) throw new UsageError('--waves must be increasing (cumulative percentages, e.g. 1,10,100)');
  }
  return waves;
}

function gateFlags(flags: RolloutFlags): Pick<WaveRequest, 'gates' | 'minSamples' | 'windowSeconds'> {
  const out: Pick<WaveRequest, 'gates' | 'minSamples' | 'windowSeconds'> = {};
  if (flags.gate?.length) out.gates = flags.gate.map(parseGate);
  if (flags.minSamples !== undefined) out.minSamples = integerFlag(flags.minSamples, '--min-samples', 1);
  if (flags.window !== undefined) out.windowSeconds = integerFlag(flags.window, '--window', 10, 86_400);
  return out;
}

/**
 * `latency_p95:maxRatio=1.2`, `error_rate:maxIncrease=0.01`, `psi:max=0.2,minSamples=200`: a metric,
 * then one or more bounds (the fields of the API's gate).
 */
export function parseGate(text: string): GateRequest {
  const colon = text.indexOf(':');
  const metric = colon < 0 ? text : text.slice(0, colon);
  if (!(GATE_METRICS as readonly string[]).includes(metric)) {
    throw new UsageError(`--gate ${text}: metric must be one of ${GATE_METRICS.join(', ')} (e.g. latency_p95:maxRatio=1.2)`);
  }
  const gate: GateRequest = { metric: metric as GateMetric };
  const bounds = colon < 0 ? [] : text.slice(colon + 1).split(',');
  for (const bound of bounds) {
    const eq = bound.indexOf('=');
    const name = bound.slice(0, eq);
    if (eq <= 0 || !(GATE_BOUNDS as readonly string[]).includes(name)) {
      throw new UsageError(`--gate ${text}: "${bound}" is not one of ${GATE_BOUNDS.map((b) => `${b}=N`).join(', ')}`);
    }
    const value = bound.slice(eq + 1);
    gate[name as (typeof GATE_BOUNDS)[number]] =
      name === 'minSamples' ? integerFlag(value, `--gate ${metric} minSamples`, 1) : numberFlag(value, `--gate ${metric} ${name}`, 0, Number.MAX_VALUE);
  }
  if (gate.maxRatio === undefined && gate.maxIncrease === undefined && gate.max === undefined) {
    throw new UsageError(`--gate ${text}: needs a bound, e.g. ${metric}:maxRatio=1.2, ${metric}:maxIncrease=0.01 or ${metric}:max=0.2`);
  }
  return gate;
}

function applyWaveFlags(wave: WaveRequest, flags: RolloutFlags): WaveRequest {
  const next: WaveRequest = { ...wave };
  if (flags.bake !== undefined) next.bakeSeconds = integerFlag(flags.bake, '--bake', 0);
  if (flags.success !== undefined) next.successPercent = numberFlag(flags.success, '--success', 0, 100);
  if (flags.failurePercent !== undefined || flags.minExecuted !== undefined) {
    next.failure = { ...wave.failure };
    if (flags.failurePercent !== undefined) next.failure.percent = numberFlag(flags.failurePercent, '--failure-percent', 0, 100);
    if (flags.minExecuted !== undefined) next.failure.minExecuted = integerFlag(flags.minExecuted, '--min-executed', 0);
  }
  return next;
}

export function integerFlag(text: string, flag: string, min: number, max = Number.MAX_SAFE_INTEGER): number {
  const value = Number(text);
  if (!Number.isInteger(value) || value < min || value > max) throw new UsageError(`${flag} must be an integer between ${min} and ${max}`);
  return value;
}

export function numberFlag(text: string, flag: string, min: number, max: number): number {
  const value = Number(text);
  if (text.trim() === '' || !Number.isFinite(value) || value < min || value > max) throw new UsageError(`${flag} must be a number between ${min} and ${max}`);
  return value;
}

async function readRolloutFile(path: string): Promise<Partial<RolloutRequest>> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (err) {
    throw new UsageError(`cannot read ${path}: ${(err as Error).message}`);
  }
  let parsed: unknown;
  try {
    // YAML 1.2 is a superset of JSON, but JSON.parse gives better messages for .json files.
    parsed = extname(path).toLowerCase() === '.json' ? JSON.parse(text) : parseYaml(text);
  } catch (err) {
    throw new UsageError(`${path} does not parse: ${(err as Error).message}`);
  }
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) throw new UsageError(`${path} must contain an object`);
  return parsed as Partial<RolloutRequest>;
}

/** One device id per line; blank lines and `#` comments are ignored. */
export async function readDeviceIds(path: string): Promise<string[]> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (err) {
    throw new UsageError(`cannot read ${path}: ${(err as Error).message}`);
  }
  const ids = text
    .split(/\r?\n/)
    .map((line) => line.replace(/#.*$/, '').trim())
    .filter((line) => line.length > 0);
  if (ids.length === 0) throw new UsageError(`${path} lists no device ids`);
  return [...new Set(ids)];
}

/** `--metadata '{"a":1}'` or `--metadata @meta.json`. */
export async function readJsonArgument(value: string, flag: string): Promise<unknown> {
  let text = value;
  if (value.startsWith('@')) {
    try {
      text = await readFile(value.slice(1), 'utf8');
    } catch (err) {
      throw new UsageError(`${flag}: cannot read ${value.slice(1)}: ${(err as Error).message}`);
    }
  }
  try {
    return JSON.parse(text);
  } catch (err) {
    throw new UsageError(`${flag} is not valid JSON: ${(err as Error).message}`);
  }
}
