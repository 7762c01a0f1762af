import type { ArtifactRef } from '@fleetline/protocol';

/**
 * What the devices feature needs from the models feature: the artifacts of a model version
 * (for desired states) and the TUF trusted root (handed to devices at enrollment). An abstract
 * class so it is an injection token; devices.module.ts binds it to ModelsService and
 * TufRepositoryService.
 */
export abstract class ModelCatalog {
  /** Throws the models feature's not-found exception (a 404) for an unknown model or version. */
  abstract artifactRefs(model: string, version: string): Promise<ArtifactRef[]>;
  /** Current root.json text. */
  abstract trustedRoot(): Promise<string>;
  /** The root.json text (any version) whose sha256 starts with `pin` (see parseEnrollmentToken), or undefined. */
  abstract rootByPin(pin: string): Promise<string | undefined>;
}
