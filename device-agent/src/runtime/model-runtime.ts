import type { ArtifactRef } from '@fleetline/protocol';

/**
 * Adapter for one way of running a model. The agent only loads a model to prove it works
 * (health check after activation); serving inferences is the on-device application's job.
 */
export interface ModelRuntime {
  readonly name: string;
  readonly version: string;
  /** `path` is the artifact file inside the active version directory. */
  load(path: string, artifact: ArtifactRef): Promise<void>;
  /** Throws when the loaded model is not healthy. */
  selfTest(): Promise<void>;
  infer?(input: unknown): Promise<unknown>;
  unload(): Promise<void>;
}

export interface RuntimeFactory {
  readonly name: string;
  /** Semver of the runtime; compared with artifacts' runtimeRange. */
  readonly version: string;
  create(): ModelRuntime;
}

export class RuntimeRegistry {
  private readonly factories = new Map<string, RuntimeFactory>();

  register(factory: RuntimeFactory): this {
    this.factories.set(factory.name, factory);
    return this;
  }

  get(name: string): RuntimeFactory | undefined {
    return this.factories.get(name);
  }

  /** Runtime name -> version, as reported in the inventory and used for compatibility. */
  versions(): Record<string, string> {
    return Object.fromEntries([...this.factories.values()].map((f) => [f.name, f.version]));
  }
}
