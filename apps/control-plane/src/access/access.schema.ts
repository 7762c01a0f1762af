import type { FeatureSchema } from '../infra/database/feature-schema.js';
import { ApiKeyEntity } from './api-key.entity.js';
import { AuditLogEntity } from './audit-log.entity.js';
import { Access1764230000000 } from './migrations/1764230000000-access.js';

export const accessSchema: FeatureSchema = {
  entities: [ApiKeyEntity, AuditLogEntity],
  migrations: [Access1764230000000],
};
