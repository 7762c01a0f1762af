import type { FeatureSchema } from '../infra/database/feature-schema.js';
import { Telemetry1764234000000 } from './migrations/1764234000000-telemetry.js';
import { TelemetryGateWeights1764234100000 } from './migrations/1764234100000-telemetry-gate-weights.js';
import { TelemetryVariant1764236400003 } from './migrations/1764236400003-telemetry-variant.js';
import { TelemetryShadow1764241200001 } from './migrations/1764241200001-telemetry-shadow.js';
import { TelemetryReferenceEntity } from './telemetry-reference.entity.js';

/** Entities and migrations of the telemetry feature (collected by infra/database/schema.registry.ts). */
export const telemetrySchema: FeatureSchema = {
  entities: [TelemetryReferenceEntity],
  migrations: [Telemetry1764234000000, TelemetryGateWeights1764234100000, TelemetryVariant1764236400003, TelemetryShadow1764241200001],
};
