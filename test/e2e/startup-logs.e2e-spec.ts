import { spawn } from 'node:child_process';
import { afterAll, describe, expect, it } from '@jest/globals';
import { controlPlaneMain, removeDir, startControlPlane, type ControlPlaneProcess } from '../support/control-plane.process.js';

/** Polls until the process output satisfies the check (log lines are written after the response). */
async function waitForOutput(cp: ControlPlaneProcess, check: (output: string) => boolean, what: string): Promise<string> {
  const deadline = Date.now() + 10_000;
  while (!check(cp.output())) {
    if (Date.now() > deadline) throw new Error(`${what} never appeared in:\n${cp.output()}`);
    await new Promise((r) => setTimeout(r, 50));
  }
  return cp.output();
}

/** What a person sees after `npm start`, and what a log shipper gets under NODE_ENV=production. */
describe('control plane start-up output and request logs', () => {
  const cleanups: (() => Promise<void>)[] = [];
  afterAll(async () => {
    for (const cleanup of cleanups.reverse()) await cleanup();
  });

  it('fits on one screen at the default level, says where the dashboard is and how to sign in', async () => {
    // The default level, a first start (no FLEET_ADMIN_KEY) and every address: the longest start there is.
    const cp = await startControlPlane({ adminKey: '', env: { LOG_LEVEL: '', LOG_FORMAT: '', NODE_ENV: 'development', HOST: '0.0.0.0' } });
    cleanups.push(
      () => removeDir(cp.dataDir),
      () => cp.stop(),
    );
    const output = await waitForOutput(cp, (o) => o.includes('Sign in'), 'the start-up summary');
    const lines = output.trimEnd().split('\n');
    expect(lines.length).toBeLessThanOrEqual(20);
    expect(output).toContain(`Dashboard  http://127.0.0.1:${cp.httpPort}/`);
    expect(output).toMatch(/Sign in {4}with this admin API key, generated on this first start/);
    expect(output).toContain('initial-admin-key, mode 0600');
    // The security warning stays, and the framework's per-route listing is gone (it is at debug).
    expect(output).toContain('PLAIN-TEXT LISTENERS REACHABLE FROM THE NETWORK');
    expect(output).not.toContain('Mapped {');
    expect(output).not.toContain('InstanceLoader');

    const echoed = await fetch(`${cp.baseUrl}/api/v1/fleet/summary`, { headers: { 'x-request-id': 'e2e-req-42' } });
    expect(echoed.status).toBe(401);
    expect(echoed.headers.get('x-request-id')).toBe('e2e-req-42');
    await waitForOutput(cp, (o) => /GET \/api\/v1\/fleet\/summary 401 \d+ms \[e2e-req-42\]/.test(o), 'the request line with its id');

    const generated = await fetch(`${cp.baseUrl}/api/v1/models?key=flk_never_logged`, { headers: { 'x-request-id': 'bad id with spaces' } });
    const id = generated.headers.get('x-request-id') ?? '';
    expect(id).toMatch(/^[0-9a-f-]{36}$/);
    const after = await waitForOutput(cp, (o) => o.includes(`[${id}]`), 'the generated request id');
    expect(after).toContain('GET /api/v1/models?key=[redacted] 401');
    expect(after).not.toContain('flk_never_logged');
  });

  it('writes one JSON object a line under NODE_ENV=production, request id included', async () => {
    const cp = await startControlPlane({ env: { LOG_LEVEL: '', LOG_FORMAT: '', NODE_ENV: 'production' } });
    cleanups.push(
      () => removeDir(cp.dataDir),
      () => cp.stop(),
    );
    const response = await fetch(`${cp.baseUrl}/api/v1/whoami`, { headers: { authorization: `Bearer ${cp.adminKey}`, 'x-request-id': 'json-req-7' } });
    expect(response.status).toBe(200);
    // A handler's own log line carries the id of the request it runs in.
    const auth = { authorization: `Bearer ${cp.adminKey}`, 'content-type': 'application/json' };
    const created = await fetch(`${cp.baseUrl}/api/v1/devices`, { method: 'POST', headers: auth, body: JSON.stringify({ id: 'log-dev-1' }) });
    expect(created.status).toBe(201);
    const deleted = await fetch(`${cp.baseUrl}/api/v1/devices/log-dev-1`, { method: 'DELETE', headers: { ...auth, 'x-request-id': 'json-del-9' } });
    expect(deleted.status).toBe(204);
    await waitForOutput(cp, (o) => o.includes('device log-dev-1 decommissioned'), 'the handler line');
    const output = await waitForOutput(cp, (o) => o.includes('"json-req-7"') && o.includes('DELETE /api/v1/devices/log-dev-1 204'), 'the JSON request lines');
    const records = output
      .split('\n')
      .filter((line) => line.trim() !== '')
      .map((line) => JSON.parse(line) as Record<string, unknown>);
    const ready = records.find((r) => r['msg'] === 'control plane ready');
    expect(ready).toMatchObject({ level: 'info', context: 'Fleetline', dashboardUrl: `http://127.0.0.1:${cp.httpPort}` });
    const request = records.find((r) => r['requestId'] === 'json-req-7');
    expect(request).toMatchObject({ level: 'info', req: { method: 'GET', url: '/api/v1/whoami' }, res: { statusCode: 200 } });
    expect(typeof request?.['responseTime']).toBe('number');
    expect(records.find((r) => r['msg'] === 'device log-dev-1 decommissioned')).toMatchObject({ context: 'Devices', requestId: 'json-del-9' });
  });

  it('refuses an unknown LOG_LEVEL at start-up, naming it', async () => {
    const child = spawn(process.execPath, [controlPlaneMain], {
      env: { ...process.env, LOG_LEVEL: 'chatty', DATA_DIR: '/tmp/fleetline-never-created' },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stderr = '';
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    const code = await new Promise<number | null>((resolve) => child.once('exit', resolve));
    expect(code).toBe(78);
    expect(stderr).toContain('LOG_LEVEL');
  });
});
