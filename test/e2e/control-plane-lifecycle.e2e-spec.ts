import { spawn } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from '@jest/globals';
import { controlPlaneMain, removeDir, scratchDatabase, startControlPlane, type ScratchDatabase } from '../support/control-plane.process.js';

/** The README promise: one command starts the control plane with nothing installed, and it keeps its data. */
describe('control plane process lifecycle (embedded PGlite + embedded broker)', () => {
  const cleanups: (() => Promise<void>)[] = [];
  afterAll(async () => {
    for (const cleanup of cleanups.reverse()) await cleanup();
  });

  it('generates and prints an admin key once, and keeps its data across a restart', async () => {
    const first = await startControlPlane({ adminKey: '' });
    cleanups.push(() => removeDir(first.dataDir));
    const key = (await readFile(join(first.dataDir, 'initial-admin-key'), 'utf8')).trim();
    expect(key).toMatch(/^flk_/);
    // The summary follows the first answer to /readyz by a moment.
    for (let i = 0; i < 100 && !first.output().includes(key); i++) await new Promise((r) => setTimeout(r, 50));
    expect(first.output()).toContain(key);
    const headers = { authorization: `Bearer ${key}`, 'content-type': 'application/json' };
    const created = await fetch(`${first.baseUrl}/api/v1/models`, { method: 'POST', headers, body: JSON.stringify({ name: 'persisted' }) });
    expect(created.status).toBe(201);
    await first.stop();

    const second = await startControlPlane({ adminKey: '', dataDir: first.dataDir, httpPort: first.httpPort, mqttPort: first.mqttPort });
    cleanups.push(() => second.stop());
    for (let i = 0; i < 100 && !second.output().includes('Sign in'); i++) await new Promise((r) => setTimeout(r, 50));
    expect(second.output()).toContain('Sign in    with the admin API key in');
    expect(second.output()).not.toContain(key);
    const models = (await (await fetch(`${second.baseUrl}/api/v1/models`, { headers })).json()) as { items: { name: string }[] };
    expect(models.items.map((m) => m.name)).toContain('persisted');
  });

  it('survives SIGKILL with its data intact (PostgreSQL when DATABASE_URL is set)', async () => {
    const database: ScratchDatabase | undefined = await scratchDatabase();
    if (database) cleanups.push(() => database.drop());
    const first = await startControlPlane({ databaseUrl: database?.url });
    cleanups.push(() => removeDir(first.dataDir));
    const headers = { authorization: `Bearer ${first.adminKey}`, 'content-type': 'application/json' };
    expect((await fetch(`${first.baseUrl}/api/v1/models`, { method: 'POST', headers, body: JSON.stringify({ name: 'after-kill' }) })).status).toBe(201);
    await first.kill();
    const second = await startControlPlane({ dataDir: first.dataDir, databaseUrl: database?.url, adminKey: first.adminKey });
    cleanups.push(() => second.stop());
    const models = (await (await fetch(`${second.baseUrl}/api/v1/models`, { headers })).json()) as { items: { name: string }[] };
    expect(models.items.map((m) => m.name)).toContain('after-kill');
  });

  it('refuses to start on bad configuration, naming the variable', async () => {
    const child = spawn(process.execPath, [controlPlaneMain], {
      env: { ...process.env, PORT: 'eighty', MQTT_URL: 'http://not-a-broker', DATA_DIR: '/tmp/fleetline-never-created' },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stderr = '';
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    const code = await new Promise<number | null>((resolve) => child.once('exit', resolve));
    expect(code).toBe(78);
    expect(stderr).toContain('PORT');
    expect(stderr).toContain('MQTT_URL');
  });
});
