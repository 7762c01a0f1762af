import { Module } from '@nestjs/common';
import { TypeOrmModule } from '@nestjs/typeorm';
import { APP_CONFIG, type AppConfig } from '../config/app-config.js';
import { buildDataSourceOptions, initialiseDataSource } from './data-source.factory.js';

/**
 * The one TypeORM DataSource of the app: PostgreSQL when DATABASE_URL is set, else PGlite
 * under DATA_DIR. Migrations run before any feature module touches the database.
 */
@Module({
  imports: [
    TypeOrmModule.forRootAsync({
      inject: [APP_CONFIG],
      useFactory: (config: AppConfig) => buildDataSourceOptions(config.database, undefined, config.replicaId),
      dataSourceFactory: async (options) => {
        if (!options) throw new Error('DataSource options missing');
        return initialiseDataSource(options);
      },
    }),
  ],
})
export class DatabaseModule {}
