import type { FeatureSchema } from '../infra/database/feature-schema.js';

/** Entities and migrations of the devices feature (collected by infra/database/schema.registry.ts). */
export const devicesSchema: FeatureSchema = {
  entities: [],
  migrations: [],
};
