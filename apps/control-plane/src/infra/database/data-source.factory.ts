import { mkdirSync } from 'node:fs';
import { DataSource, type DataSourceOptions, type MixedList, type EntitySchema } from 'typeorm';
import { PGliteDriver } from 'typeorm-pglite';
import type { AppConfig } from '../config/config.schema.js';
import { ExclusivePGlitePool } from './exclusive-pglite-pool.js';
import { ALL_ENTITIES, ALL_MIGRATIONS } from './schema.registry.js';
import { SnakeNamingStrategy } from './snake-naming.strategy.js';

// eslint-disable-next-line @typescript-eslint/no-unsafe-function-type
type EntityList = MixedList<Function | string | EntitySchema>;

/**
 * Builds DataSource options for PostgreSQL (DATABASE_URL) or the embedded PGlite under the
 * data dir. Both run the same migrations; `synchronize` is never used.
 */
export function buildDataSourceOptions(database: AppConfig['database'], entities: EntityList = ALL_ENTITIES, replicaId?: string): DataSourceOptions {
  const common = {
    type: 'postgres' as const,
    entities,
    migrations: ALL_MIGRATIONS,
    migrationsRun: false,
    synchronize: false,
    namingStrategy: new SnakeNamingStrategy(),
    logging: ['error' as const, 'warn' as const, 'migration' as const],
  };
  if (database.kind === 'postgres') {
    // The replica's name in pg_stat_activity tells operators (and the cluster tests) who holds which lock.
    const applicationName = replicaId ? `fleetline-cp:${replicaId}`.slice(0, 63) : 'fleetline-control-plane';
    return { ...common, url: database.url, applicationName, extra: { max: database.poolSize } };
  }
  mkdirSync(database.dir, { recursive: true });
  // PGliteDriver stores the PGlite options globally; its Pool class is replaced with one that
  // serialises query runners (see ExclusivePGlitePool).
  const driverModule = new PGliteDriver({ dataDir: database.dir }).driver as { Pool: unknown };
  driverModule.Pool = ExclusivePGlitePool;
  return { ...common, driver: driverModule };
}

/** Key of the advisory lock that serialises migrations across replicas starting together. */
const MIGRATION_LOCK_KEY = 7_214_001;

/**
 * Initialises a DataSource and brings the schema up to date. On PostgreSQL, replicas that
 * start together take turns through an advisory lock so each migration runs once.
 */
export async function initialiseDataSource(options: DataSourceOptions): Promise<DataSource> {
  const dataSource = new DataSource(options);
  await dataSource.initialize();
  if (isEmbedded(options)) {
    // One process owns a PGlite data dir, and its single backend cannot hold a lock on one
    // query runner while migrations use another (see ExclusivePGlitePool).
    await dataSource.runMigrations({ transaction: 'each' });
    return dataSource;
  }
  const runner = dataSource.createQueryRunner();
  try {
    await runner.connect();
    await runner.query('SELECT pg_advisory_lock($1)', [MIGRATION_LOCK_KEY]);
    try {
      await dataSource.runMigrations({ transaction: 'each' });
    } finally {
      await runner.query('SELECT pg_advisory_unlock($1)', [MIGRATION_LOCK_KEY]);
    }
  } finally {
    await runner.release();
  }
  return dataSource;
}

export function isEmbedded(options: DataSourceOptions): boolean {
  return 'driver' in options && options.driver !== undefined;
}
