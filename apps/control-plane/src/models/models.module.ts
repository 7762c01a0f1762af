import { join } from 'node:path';
import { Module } from '@nestjs/common';
import { TufModule } from '../distribution/tuf.module.js';
import { APP_CONFIG, type AppConfig } from '../infra/config/app-config.js';
import { ARTIFACT_STORE } from './artifact-store/artifact-store.js';
import { LocalDirectoryArtifactStore } from './artifact-store/local-directory-artifact-store.js';
import { ModelsController } from './models.controller.js';
import { ModelsRepository } from './models.repository.js';
import { ModelsService } from './models.service.js';

/**
 * Model registry: models, semver-ordered versions and their artifacts. Artifacts live in an
 * ArtifactStore (a local directory by default: replicas need a shared volume or another store)
 * and are published as TUF targets on upload. Re-exports TufModule (TufRepositoryService).
 */
@Module({
  imports: [TufModule],
  controllers: [ModelsController],
  providers: [
    ModelsRepository,
    ModelsService,
    {
      provide: ARTIFACT_STORE,
      inject: [APP_CONFIG],
      useFactory: (config: AppConfig) => new LocalDirectoryArtifactStore(join(config.dataDir, 'artifacts')),
    },
  ],
  exports: [ModelsService, ARTIFACT_STORE, TufModule],
})
export class ModelsModule {}
