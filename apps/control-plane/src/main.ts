#!/usr/bin/env node
import { Logger } from '@nestjs/common';
import { AdminKeyRevokedError } from './access/access.service.js';
import { createApp } from './create-app.js';
import { ConfigError, loadConfig } from './infra/config/config.schema.js';
import { assertPortFree, listenError, PortInUseError } from './infra/port-in-use.js';

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
  // Before the database and the broker start: a taken HTTP port fails in a moment, not after the migrations.
  await assertPortFree(config.http.port, config.http.host, 'PORT');
  const app = await createApp(config);
  // Node's requestTimeout is one number for the whole server and would cut multi-gigabyte uploads,
  // so it is off; every other route is timed per request instead (HTTP_REQUEST_TIMEOUT_MS,
  // infra/http/request-timeout.ts). Slow headers are still cut by headersTimeout, idle sockets by keepAliveTimeout.
  const server = app.getHttpServer() as import('node:http').Server;
  server.requestTimeout = 0;
  try {
    await app.listen(config.http.port, config.http.host);
  } catch (err) {
    throw listenError(err, 'PORT', config.http.port, config.http.host);
  }
  const url = await app.getUrl();
  Logger.log(`control plane listening on ${url} (database: ${config.database.kind}, mqtt: ${config.mqtt.kind})`, 'Fleetline');
}

main().catch((err: unknown) => {
  // A refusal to start that names its fix: the message is the whole story, no stack.
  if (err instanceof PortInUseError) {
    process.stderr.write(`${err.message}\n`);
    process.exit(1);
  }
  if (err instanceof AdminKeyRevokedError) {
    process.stderr.write(`${err.message}\n`);
    process.exit(78); // EX_CONFIG
  }
  process.stderr.write(`fatal: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
  process.exit(1);
});
