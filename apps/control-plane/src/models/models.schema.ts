import { TufMetadata1764232000001 } from '../distribution/migrations/1764232000001-tuf-metadata.js';
import { TufBins1764241100000 } from '../distribution/migrations/1764241100000-tuf-bins.js';
import { TufMetadataEntity } from '../distribution/tuf-metadata.entity.js';
import type { FeatureSchema } from '../infra/database/feature-schema.js';
import { ArtifactEntity } from './artifact.entity.js';
import { Models1764232000000 } from './migrations/1764232000000-models.js';
import { ArtifactVariants1764236400000 } from './migrations/1764236400000-artifact-variants.js';
import { VersionStatus1764238000000 } from './migrations/1764238000000-version-status.js';
import { ModelVersionEntity } from './model-version.entity.js';
import { ModelEntity } from './model.entity.js';

/**
 * Entities and migrations of the models feature (collected by infra/database/schema.registry.ts),
 * including the TUF metadata table of distribution/, which publishes this feature's artifacts.
 */
export const modelsSchema: FeatureSchema = {
  entities: [ModelEntity, ModelVersionEntity, ArtifactEntity, TufMetadataEntity],
  migrations: [Models1764232000000, TufMetadata1764232000001, ArtifactVariants1764236400000, VersionStatus1764238000000, TufBins1764241100000],
};
