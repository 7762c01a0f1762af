import type { FeatureSchema } from '../infra/database/feature-schema.js';
import { FleetCounts1764239400000 } from './migrations/1764239400000-fleet-counts.js';

/**
 * Migrations of the fleet read model (collected by infra/database/schema.registry.ts). Its tables
 * are written by triggers and read with SQL only, so no entity maps them.
 */
export const fleetSchema: FeatureSchema = {
  entities: [],
  migrations: [FleetCounts1764239400000],
};
