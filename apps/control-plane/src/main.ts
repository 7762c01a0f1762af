#!/usr/bin/env node
import { Logger } from '@nestjs/common';
import { createApp } from './create-app.js';
import { ConfigError, loadConfig } from './infra/config/config.schema.js';

async function main(): Promise<void> {
  let config;
  try {
    config = loadConfig();
  } catch (err) {
    if (err instanceof ConfigError) {
      process.stderr.write(`${err.message}\n`);
      process.exit(78); // EX_CONFIG
    }
    throw err;
  }
  const app = await createApp(config);
  await app.listen(config.http.port, config.http.host);
  const url = await app.getUrl();
  Logger.log(`control plane listening on ${url} (database: ${config.database.kind}, mqtt: ${config.mqtt.kind})`, 'Fleetline');
}

main().catch((err: unknown) => {
  process.stderr.write(`fatal: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
  process.exit(1);
});
