import { accessSchema } from '../../access/access.schema.js';
import { devicesSchema } from '../../devices/devices.schema.js';
import { fleetSchema } from '../../fleet/fleet.schema.js';
import { modelsSchema } from '../../models/models.schema.js';
import { rolloutsSchema } from '../../rollouts/rollouts.schema.js';
import { telemetrySchema } from '../../telemetry/telemetry.schema.js';
import type { FeatureSchema } from './feature-schema.js';

/**
 * Every feature declares its entities and migrations in its own `<feature>.schema.ts`;
 * this is the one place that collects them. Migrations run in timestamp order across features.
 */
const features: FeatureSchema[] = [accessSchema, devicesSchema, fleetSchema, modelsSchema, rolloutsSchema, telemetrySchema];

export const ALL_ENTITIES = features.flatMap((f) => f.entities);
export const ALL_MIGRATIONS = features.flatMap((f) => f.migrations);
