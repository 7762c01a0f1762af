import type { FeatureSchema } from '../infra/database/feature-schema.js';

/** Entities and migrations of the telemetry feature (collected by infra/database/schema.registry.ts). */
export const telemetrySchema: FeatureSchema = {
  entities: [],
  migrations: [],
};
