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
  // Multi-gigabyte artifact uploads and long Server-Sent Events streams outlive Node's 5-minute
  // default request timeout; idle connections are still reaped by headersTimeout/keepAliveTimeout.
  const server = app.getHttpServer() as import('node:http').Server;
  server.requestTimeout = 0;
  await app.listen(config.http.port, config.http.host);
  const url = await app.getUrl();
  Logger.log(`control plane listening on ${url} (database: ${config.database.kind}, mqtt: ${config.mqtt.kind})`, 'Fleetline');
}

main().catch((err: unknown) => {
  process.stderr.write(`fatal: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
  process.exit(1);
});
