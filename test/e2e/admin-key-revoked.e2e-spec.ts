import { afterAll, describe, expect, it } from '@jest/globals';
import { removeDir, scratchDatabase, startControlPlane, type ScratchDatabase } from '../support/control-plane.process.js';

/** docs/security.md: a revoked FLEET_ADMIN_KEY stops the next start with a message that names the fix. */
describe('restart of the real process after FLEET_ADMIN_KEY was revoked', () => {
  const cleanups: (() => Promise<void>)[] = [];
  afterAll(async () => {
    for (const cleanup of cleanups.reverse()) await cleanup();
  });

  it('exits 78 with a clear message, and starts again with a new key', async () => {
    const db: ScratchDatabase | undefined = await scratchDatabase();
    if (db) cleanups.push(() => db.drop());
    const adminKey = `flk_e2e_revoked_${'k'.repeat(24)}`;
    const first = await startControlPlane({ adminKey, databaseUrl: db?.url });
    cleanups.push(() => removeDir(first.dataDir));
    const headers = { authorization: `Bearer ${adminKey}`, 'content-type': 'application/json' };
    const second = (await (
      await fetch(`${first.baseUrl}/api/v1/api-keys`, { method: 'POST', headers, body: JSON.stringify({ name: 'second', role: 'admin' }) })
    ).json()) as {
      key: string;
    };
    const keys = (await (await fetch(`${first.baseUrl}/api/v1/api-keys`, { headers })).json()) as { items: { id: string; name: string }[] };
    const seeded = keys.items.find((k) => k.name === 'FLEET_ADMIN_KEY')!;
    expect((await fetch(`${first.baseUrl}/api/v1/api-keys/${seeded.id}`, { method: 'DELETE', headers })).status).toBe(204);
    await first.stop();

    const same = { dataDir: first.dataDir, databaseUrl: db?.url, httpPort: first.httpPort, mqttPort: first.mqttPort };
    const refused = startControlPlane({ ...same, adminKey });
    await expect(refused).rejects.toThrow(/exited with 78[\s\S]*FLEET_ADMIN_KEY was revoked .*set a new one/);

    const restarted = await startControlPlane({ ...same, adminKey: `flk_e2e_new_${'n'.repeat(24)}` });
    cleanups.push(() => restarted.stop());
    expect((await fetch(`${restarted.baseUrl}/api/v1/whoami`, { headers: { authorization: `Bearer ${second.key}` } })).status).toBe(200);
  });
});
