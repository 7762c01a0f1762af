import type { Provider } from '@nestjs/common';
import type { ArtifactRef } from '@fleetline/protocol';
import { TufRepositoryService } from '../distribution/tuf-repository.service.js';
import { ModelsModule } from '../models/models.module.js';
import { ModelsService } from '../models/models.service.js';
import { ModelCatalog } from './model-catalog.js';

/** Binds the devices feature's ModelCatalog port to the models feature (ModelsModule re-exports TufRepositoryService). */
export const ModelCatalogImports = [ModelsModule];

export const modelCatalogProvider: Provider = {
  provide: ModelCatalog,
  inject: [ModelsService, TufRepositoryService],
  useFactory: (models: ModelsService, tuf: TufRepositoryService): ModelCatalog => ({
    artifactRefs: (model: string, version: string): Promise<ArtifactRef[]> => models.artifactRefs(model, version),
    trustedRoot: (): Promise<string> => tuf.trustedRoot(),
    rootByPin: (pin: string): Promise<string | undefined> => tuf.rootByPin(pin),
  }),
};
