import { spawn } from 'node:child_process';
import { mkdtemp } from 'node:fs/promises';
import { createServer, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from '@jest/globals';
import { controlPlaneMain, freePort, removeDir } from '../support/control-plane.process.js';

/** A real listener on an ephemeral port, as another broker or server holding it would be. */
function occupy(): Promise<{ server: Server; port: number }> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      resolve({ server, port: typeof address === 'object' && address ? address.port : 0 });
    });
  });
}

async function start(env: Record<string, string>): Promise<{ code: number | null; stderr: string; stdout: string }> {
  const dataDir = await mkdtemp(join(tmpdir(), 'fleetline-ports-'));
  try {
    const child = spawn(process.execPath, [controlPlaneMain], {
      env: { ...process.env, HOST: '127.0.0.1', DATA_DIR: dataDir, DATABASE_URL: '', FLEET_ADMIN_KEY: `flk_ports_${'k'.repeat(24)}`, ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stderr = '';
    let stdout = '';
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
    const code = await new Promise<number | null>((resolve) => child.once('exit', resolve));
    return { code, stderr, stdout };
  } finally {
    await removeDir(dataDir);
  }
}

describe('control plane start-up on a port already in use', () => {
  const held: Server[] = [];
  afterAll(async () => {
    await Promise.all(held.map((s) => new Promise((resolve) => s.close(resolve))));
  });

  it.each([
    ['MQTT_PORT', 'PORT'],
    ['PORT', 'MQTT_PORT'],
  ])(
    'names %s in one line and exits non-zero without a stack trace',
    async (busyVariable, freeVariable) => {
      const busy = await occupy();
      held.push(busy.server);
      const run = await start({ [busyVariable]: String(busy.port), [freeVariable]: String(await freePort()) });
      expect(run.code).toBe(1);
      const line = `port ${busy.port} on 127.0.0.1 is already in use (${busyVariable}): stop what holds it, or set ${busyVariable} to a free port, e.g. ${busyVariable}=${busy.port + 1} npm start`;
      expect(run.stderr).toContain(`${line}\n`);
      expect(`${run.stdout}\n${run.stderr}`).not.toMatch(/\n\s+at .+:\d+:\d+/);
      expect(run.stderr).not.toContain('EADDRINUSE');
    },
    120_000,
  );
});
