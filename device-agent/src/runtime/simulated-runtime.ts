import type { ArtifactRef } from '@fleetline/protocol';
import type { ModelRuntime, RuntimeFactory } from './model-runtime.js';

export interface SimulatedHealth {
  /** Probability in [0, 1] that the self-test fails for this version. */
  healthFail: number;
  /** Extra self-test time in ms (to exercise health-check timeouts). */
  healthDelayMs?: number;
}

/** Runtime for simulated devices: health is decided by the per-version behaviour. */
export class SimulatedRuntime implements ModelRuntime {
  readonly name = 'simulated';
  private version_: string | undefined;

  constructor(
    readonly version: string,
    private readonly behaviourFor: (modelVersion: string) => SimulatedHealth,
    private readonly random: () => number = Math.random,
  ) {}

  async load(path: string, _artifact: ArtifactRef): Promise<void> {
    this.version_ = path.split('/').filter(Boolean).at(-2) ?? '';
  }

  async selfTest(): Promise<void> {
    const b = this.behaviourFor(this.version_ ?? '');
    if (b.healthDelayMs) await new Promise((r) => setTimeout(r, b.healthDelayMs));
    if (this.random() < b.healthFail) throw new Error(`simulated health check failure for ${this.version_}`);
  }

  async unload(): Promise<void> {
    this.version_ = undefined;
  }
}

export function simulatedRuntimeFactory(behaviourFor: (modelVersion: string) => SimulatedHealth, version = '1.0.0'): RuntimeFactory {
  return { name: 'simulated', version, create: () => new SimulatedRuntime(version, behaviourFor) };
}
