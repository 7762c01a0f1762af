import type { FeatureSchema } from '../infra/database/feature-schema.js';

/** Entities and migrations of the models feature (collected by infra/database/schema.registry.ts). */
export const modelsSchema: FeatureSchema = {
  entities: [],
  migrations: [],
};
