import type { EntitySchema, MigrationInterface } from 'typeorm';

export interface FeatureSchema {
  // eslint-disable-next-line @typescript-eslint/no-unsafe-function-type
  entities: (Function | EntitySchema)[];
  migrations: (new () => MigrationInterface)[];
}
