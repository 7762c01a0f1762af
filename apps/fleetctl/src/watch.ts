import { ExitCode } from './exit-codes.js';

/** What `rollouts watch` shows of a rollout, normalised from GET /api/v1/rollouts/{id} or a stream event. */
export interface RolloutProgress {
  id: string;
  model: string;
  version: string;
  state: string;
  stateReason: string | null;
  action: string;
  currentWave: number;
  targetCount: number;
  waves: WaveProgress[];
}

export interface WaveProgress {
  index: number;
  /** Cumulative percent of the target, when the wave was defined by percent. */
  percent: number | null;
  size: number;
  counts: Record<string, number>;
  startedAt: string | null;
  finishedAt: string | null;
  /** `shadow` for a wave that evaluates the version beside the active one (its devices are done once staged). */
  action?: 'shadow';
}

/** States in which a rollout no longer changes by itself. */
export const TERMINAL_ROLLOUT_STATES = ['completed', 'cancelled', 'aborted', 'rolled-back'] as const;

const FAILED_DEVICE_STATES = ['failed', 'timed-out', 'rolled-back'];
const IN_FLIGHT_DEVICE_STATES = ['notified', 'downloading', 'installing'];

type Json = Record<string, unknown>;

const isObject = (v: unknown): v is Json => typeof v === 'object' && v !== null && !Array.isArray(v);
const num = (v: unknown, fallback = 0): number =>
  typeof v === 'number' && Number.isFinite(v) ? v : typeof v === 'string' && v !== '' && Number.isFinite(Number(v)) ? Number(v) : fallback;
const strOrNull = (v: unknown): string | null => (typeof v === 'string' ? v : v instanceof Date ? v.toISOString() : null);

/**
 * Accepts a rollout view (or an event carrying one under `rollout`) and returns the progress,
 * or undefined when the value is not a rollout (e.g. a device-level stream event).
 */
export function normalizeRollout(raw: unknown): RolloutProgress | undefined {
  if (isObject(raw) && isObject(raw['rollout'])) return normalizeRollout(raw['rollout']);
  if (!isObject(raw) || typeof raw['state'] !== 'string' || typeof raw['id'] !== 'string') return undefined;
  const wavesRaw = Array.isArray(raw['waves']) ? raw['waves'] : [];
  const waves = wavesRaw.filter(isObject).map((w, i): WaveProgress => {
    const spec = isObject(w['spec']) ? w['spec'] : {};
    const countsRaw = [w['counts'], w['stateCounts'], w['devices']].find(isObject) ?? {};
    const counts: Record<string, number> = {};
    for (const [state, n] of Object.entries(countsRaw)) counts[state] = num(n);
    const percent = w['percent'] ?? spec['percent'];
    return {
      index: num(w['index'] ?? w['idx'], i),
      percent: typeof percent === 'number' ? percent : null,
      size: num(
        w['size'],
        Object.values(counts).reduce((a, b) => a + b, 0),
      ),
      counts,
      startedAt: strOrNull(w['startedAt']),
      finishedAt: strOrNull(w['finishedAt']),
      ...(spec['action'] === 'shadow' ? { action: 'shadow' as const } : {}),
    };
  });
  return {
    id: raw['id'],
    model: typeof raw['model'] === 'string' ? raw['model'] : '?',
    version: typeof raw['version'] === 'string' ? raw['version'] : '?',
    state: raw['state'],
    stateReason: strOrNull(raw['stateReason']),
    action: typeof raw['action'] === 'string' ? raw['action'] : 'install',
    currentWave: num(raw['currentWave'], -1),
    targetCount: num(
      raw['targetCount'],
      waves.reduce((a, w) => a + w.size, 0),
    ),
    waves,
  };
}

export interface WatchOutcome {
  done: boolean;
  exitCode: ExitCode;
  message: string;
}

/**
 * When watching stops and with which exit code: 0 for completed; 4 for aborted, rolled back,
 * cancelled, or paused by the failure policy (a failure threshold or a health gate). A pause an
 * operator asked for keeps the watch going, since someone will resume it.
 */
export function watchOutcome(p: RolloutProgress): WatchOutcome {
  const label = `rollout ${p.id} ${p.state}${p.stateReason ? `: ${p.stateReason}` : ''}`;
  if (p.state === 'completed') return { done: true, exitCode: ExitCode.Ok, message: label };
  if ((TERMINAL_ROLLOUT_STATES as readonly string[]).includes(p.state)) return { done: true, exitCode: ExitCode.RolloutFailed, message: label };
  if (p.state === 'paused' && isFailurePause(p.stateReason)) return { done: true, exitCode: ExitCode.RolloutFailed, message: label };
  return { done: false, exitCode: ExitCode.Ok, message: label };
}

/** The engine explains a pause; an operator's pause says so, everything else is the failure policy. */
export function isFailurePause(reason: string | null): boolean {
  if (!reason) return false;
  if (/\b(operator|manual(ly)?|requested|by [a-z0-9_.@-]+ via|paused by)\b/i.test(reason)) return false;
  return /fail|gate|threshold|breach|exceed|unhealthy|timed? ?out/i.test(reason);
}

interface WaveTotals {
  success: number;
  failed: number;
  inFlight: number;
  pending: number;
  skipped: number;
}

export function waveTotals(wave: WaveProgress, rolloutAction: string): WaveTotals {
  const c = (state: string): number => wave.counts[state] ?? 0;
  // A shadow wave's device is done once the candidate is staged, as in a download-only rollout.
  const action = wave.action === 'shadow' ? 'download-only' : rolloutAction;
  const successStates = action === 'download-only' ? ['committed', 'downloaded'] : ['committed'];
  const success = successStates.reduce((n, s) => n + c(s), 0);
  const failed = FAILED_DEVICE_STATES.reduce((n, s) => n + c(s), 0);
  const inFlight = IN_FLIGHT_DEVICE_STATES.reduce((n, s) => n + c(s), 0) + (action === 'download-only' ? 0 : c('downloaded'));
  return { success, failed, inFlight, pending: c('pending'), skipped: c('skipped') };
}

function waveStatus(p: RolloutProgress, w: WaveProgress): string {
  if (w.finishedAt) return 'done';
  if (w.index < p.currentWave) return 'done';
  if (w.index === p.currentWave) return p.state === 'paused' ? 'paused' : 'running';
  return 'waiting';
}

/** A fixed-width bar: '=' succeeded, 'x' failed, '-' in flight, ' ' not started. */
export function progressBar(t: WaveTotals, size: number, width = 30): string {
  if (size <= 0) return `[${' '.repeat(width)}]`;
  const cells = (n: number) => Math.round((n / size) * width);
  const ok = Math.min(width, cells(t.success));
  const bad = Math.min(width - ok, cells(t.failed));
  const busy = Math.min(width - ok - bad, cells(t.inFlight));
  return `[${'='.repeat(ok)}${'x'.repeat(bad)}${'-'.repeat(busy)}${' '.repeat(width - ok - bad - busy)}]`;
}

/** The block redrawn on a terminal: one header line and one line per wave. */
export function renderProgress(p: RolloutProgress): string[] {
  // While preparing, the engine has not materialised the membership yet: there is nothing to count.
  const devices = p.state === 'preparing' ? 'preparing its membership' : `${p.targetCount} devices`;
  const header = `rollout ${p.id}  ${p.model} ${p.version}  ${p.state.toUpperCase()}${p.stateReason ? ` (${p.stateReason})` : ''}  ${devices}`;
  const lines = [header];
  for (const w of p.waves) {
    const t = waveTotals(w, p.action);
    const pct = w.size > 0 ? Math.floor(((t.success + t.failed) * 100) / w.size) : 0;
    const label = `wave ${w.index + 1}/${p.waves.length}${w.percent !== null ? ` (${w.percent}%)` : ''}${w.action === 'shadow' ? ' shadow' : ''}`;
    const detail = [
      `${t.success}/${w.size} ok`,
      t.failed ? `${t.failed} failed` : '',
      t.inFlight ? `${t.inFlight} in flight` : '',
      t.skipped ? `${t.skipped} skipped` : '',
    ]
      .filter(Boolean)
      .join(', ');
    lines.push(`  ${label.padEnd(16)} ${progressBar(t, w.size)} ${String(pct).padStart(3)}%  ${detail}  ${waveStatus(p, w)}`);
  }
  return lines;
}

/** One line for logs and pipes (no redraw): printed whenever it changes. */
export function renderPlainLine(p: RolloutProgress): string {
  if (p.state === 'preparing') return 'preparing (the control plane is materialising its membership)';
  const waves = p.waves
    .map((w) => {
      const t = waveTotals(w, p.action);
      return `w${w.index + 1}:${t.success}/${w.size}${t.failed ? `(${t.failed} failed)` : ''}`;
    })
    .join(' ');
  return `${p.state}${p.stateReason ? ` (${p.stateReason})` : ''} wave ${Math.max(0, p.currentWave) + 1}/${p.waves.length} ${waves}`;
}

/** Redraws a block of lines in place on an ANSI terminal (ECMA-48 CPL "ESC [ n F" and ED "ESC [ J"). */
export class TerminalBlock {
  private drawn = 0;

  /** `columns()`: the terminal width now; lines are cut to it, since a wrapped line would break the cursor-up count. */
  constructor(
    private readonly write: (text: string) => void,
    private readonly columns: () => number | undefined = () => undefined,
  ) {}

  draw(lines: string[]): void {
    const width = this.columns();
    const fitted = width && width > 1 ? lines.map((line) => (line.length >= width ? line.slice(0, width - 1) : line)) : lines;
    const up = this.drawn > 0 ? `\x1b[${this.drawn}F\x1b[J` : '';
    this.write(`${up}${fitted.join('\n')}\n`);
    this.drawn = fitted.length;
  }
}
