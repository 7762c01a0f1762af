import type { FeatureSchema } from '../infra/database/feature-schema.js';
import { Rollouts1764233000000 } from './migrations/1764233000000-rollouts.js';
import { RolloutDeviceVariant1764236400002 } from './migrations/1764236400002-rollout-device-variant.js';
import { RolloutPreparing1764240500000 } from './migrations/1764240500000-rollout-preparing.js';
import { RolloutEntity, RolloutEventEntity } from './rollout.entity.js';

/** Entities and migrations of the rollouts feature (collected by infra/database/schema.registry.ts). */
export const rolloutsSchema: FeatureSchema = {
  entities: [RolloutEntity, RolloutEventEntity],
  migrations: [Rollouts1764233000000, RolloutDeviceVariant1764236400002, RolloutPreparing1764240500000],
};
