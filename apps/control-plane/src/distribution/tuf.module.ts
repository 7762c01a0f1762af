import { Module } from '@nestjs/common';
import { TufMetadataRepository } from './tuf-metadata.repository.js';
import { TufRenewalJob } from './tuf-renewal.job.js';
import { TufRepositoryService } from './tuf-repository.service.js';

/** The signed TUF repository (metadata + keys). ModelsModule publishes into it; DistributionModule serves it. */
@Module({
  providers: [TufMetadataRepository, TufRepositoryService, TufRenewalJob],
  exports: [TufRepositoryService],
})
export class TufModule {}
