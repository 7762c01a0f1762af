#!/usr/bin/env node
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createApp } from './create-app.js';
import { loadConfig } from './infra/config/config.schema.js';
import { buildOpenApiDocument } from './infra/http/openapi-document.js';

/**
 * Writes the OpenAPI document the control plane serves at /api/openapi.json to the file named by
 * the first argument, without listening on anything: the app is built (on a throw-away PGlite
 * database) but never started. `npm run lint:openapi` and `npm run openapi:types` use it.
 */
async function main(): Promise<void> {
  const out = process.argv[2];
  if (!out) throw new Error('usage: write-openapi.js <output.json>');
  const dataDir = await mkdtemp(join(tmpdir(), 'fleetline-openapi-'));
  try {
    const config = loadConfig({ DATA_DIR: dataDir, DATABASE_URL: '', LOG_LEVEL: 'error', PORT: '0', MQTT_PORT: '0', HOST: '127.0.0.1' });
    const app = await createApp(config);
    const document = buildOpenApiDocument(app);
    await writeFile(out, `${JSON.stringify(document, null, 2)}\n`);
    await app.close();
  } finally {
    await rm(dataDir, { recursive: true, force: true });
  }
}

main().catch((err: unknown) => {
  process.stderr.write(`${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
  process.exit(1);
});
