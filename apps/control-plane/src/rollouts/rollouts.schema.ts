import type { FeatureSchema } from '../infra/database/feature-schema.js';

/** Entities and migrations of the rollouts feature (collected by infra/database/schema.registry.ts). */
export const rolloutsSchema: FeatureSchema = {
  entities: [],
  migrations: [],
};
