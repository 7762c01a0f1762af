#!/usr/bin/env node
import { AdminKeyRevokedError, AccessService } from './access/access.service.js';
import { createApp } from './create-app.js';
import { ConfigError, loadConfig } from './infra/config/config.schema.js';
import { createRootLogger } from './infra/logging/logger.js';
import { startupSummary } from './infra/logging/startup-summary.js';
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
  const root = createRootLogger({ level: config.logLevel, format: config.logFormat });
  const app = await createApp(config, root);
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
  const signIn = app.get(AccessService).adminSignIn;
  const dashboardUrl = config.http.publicUrl ?? (await app.getUrl());
  const lines = startupSummary({
    dashboardUrl,
    database: config.database.kind,
    mqtt: config.mqtt.kind,
    signIn,
    cwd: process.cwd(),
  });
  if (root.format === 'pretty') {
    // For a person at a terminal: a block to read, not a log line to parse. Printed even at
    // LOG_LEVEL=warn, because a generated admin key is shown on this start only.
    process.stdout.write(`\n${lines.join('\n')}\n\n`);
  } else {
    // A log shipper gets one line. A generated key still appears exactly once, whatever LOG_LEVEL says.
    const fields = { context: 'Fleetline', dashboardUrl, database: config.database.kind, mqtt: config.mqtt.kind };
    if (signIn.kind === 'generated') {
      const level = root.pino.isLevelEnabled('info') ? 'info' : 'warn';
      root.pino[level]({ ...fields, adminKey: signIn.key, adminKeyFile: signIn.file }, 'control plane ready; first start: admin API key generated');
    } else {
      root.pino.info({ ...fields, adminKeyFile: signIn.kind === 'existing' ? signIn.file : undefined }, 'control plane ready');
    }
  }
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
