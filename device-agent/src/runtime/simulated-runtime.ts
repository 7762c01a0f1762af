import type { ArtifactRef } from '@fleetline/protocol';
import type { ModelRuntime, RuntimeFactory } from './model-runtime.js';

export interface SimulatedHealth {
  /** Probability in [0, 1] that the self-test fails for this version. */
  healthFail: number;
  /** Extra self-test time in ms (to exercise health-check timeouts). */
  healthDelayMs?: number;
  /** Shadow evaluation: probability in [0, 1] that an inference answers differently from the input's label (or value). */
  disagreement?: number;
  /** Shadow evaluation: time one inference takes, in ms. */
  inferLatencyMs?: number;
  /** Shadow evaluation: probability in [0, 1] that an inference fails. */
  inferErrorRate?: number;
}

/**
 * What a simulated inference is given: the answer of the model it is compared with (the simulator
 * mirrors the active model's answer as the input), so a candidate's disagreement is exact.
 */
export interface SimulatedInput {
  label?: string;
  value?: number;
}

/** Labels a disagreeing simulated classifier answers with (it never answers the input's own). */
const FALLBACK_LABELS = ['cat', 'dog', 'bird', 'car', 'person'];

/** Runtime for simulated devices: health and inferences are decided by the per-version behaviour. */
export class SimulatedRuntime implements ModelRuntime {
  readonly name = 'simulated';
  private version_: string | undefined;

  constructor(
    readonly version: string,
    private readonly behaviourFor: (modelVersion: string) => SimulatedHealth,
    private readonly random: () => number = Math.random,
  ) {}

  async load(path: string, artifact: ArtifactRef): Promise<void> {
    // Target paths are `model/version/file`; a staged candidate has no version directory to tell.
    const target = artifact.targetPath.split('/');
    this.version_ = (target.length >= 3 ? target.at(-2) : path.split('/').filter(Boolean).at(-2)) ?? '';
  }

  async selfTest(): Promise<void> {
    const b = this.behaviourFor(this.version_ ?? '');
    if (b.healthDelayMs) await new Promise((r) => setTimeout(r, b.healthDelayMs));
    if (this.random() < b.healthFail) throw new Error(`simulated health check failure for ${this.version_}`);
  }

  async infer(input: unknown): Promise<unknown> {
    if (this.version_ === undefined) throw new Error('no model loaded');
    const b = this.behaviourFor(this.version_);
    if (b.inferLatencyMs) await new Promise((r) => setTimeout(r, b.inferLatencyMs));
    if (this.random() < (b.inferErrorRate ?? 0)) throw new Error(`simulated inference failure for ${this.version_}`);
    const given = (input ?? {}) as SimulatedInput;
    const disagree = this.random() < (b.disagreement ?? 0);
    if (typeof given.value === 'number') return { value: disagree ? given.value + 1 : given.value };
    const label = given.label ?? FALLBACK_LABELS[0]!;
    if (!disagree) return { label };
    const others = FALLBACK_LABELS.filter((l) => l !== label);
    return { label: others[Math.floor(this.random() * others.length)] ?? `${label}-other` };
  }

  async unload(): Promise<void> {
    this.version_ = undefined;
  }
}

export function simulatedRuntimeFactory(behaviourFor: (modelVersion: string) => SimulatedHealth, version = '1.0.0'): RuntimeFactory {
  return { name: 'simulated', version, create: () => new SimulatedRuntime(version, behaviourFor) };
}
