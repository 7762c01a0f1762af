import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import type { Browser } from 'playwright-core';
import { type ApiClient, type TestApp, apiClient, eventually, startTestApp } from '../../apps/control-plane/src/testing/test-app.fixture.js';
import { launchBrowser, openDashboard, screenshot } from '../support/dashboard-browser.js';
import { type ScriptedDevice, commitSome, createFleet, registerModel } from '../support/dashboard-fleet.js';

interface RolloutView {
  id: string;
  state: string;
  currentWave: number;
  counts: Record<string, number>;
}

/**
 * The rollout page's operation buttons in a real Chromium against the real control plane, with
 * devices that take (or fail) their updates over MQTT: retry, advance and abort, each checked
 * against what the API then says.
 */
describe('web dashboard: rollout operations', () => {
  let t: TestApp;
  let admin: ApiClient;
  let browser: Browser;
  let fleet: ScriptedDevice[] = [];

  beforeAll(async () => {
    t = await startTestApp('pglite');
    admin = apiClient(t.baseUrl, t.adminKey);
    browser = await launchBrowser();
    await registerModel(t.baseUrl, t.adminKey, 'detector', ['1.0.0', '2.0.0']);
    fleet = await createFleet(admin, t.mqttUrl, 'ops', 4, () => ({ tags: { site: 'lab' }, models: { detector: '1.0.0' } }));
    await eventually(
      async () => {
        const summary = await admin.get<{ devices: { online: number } }>('/api/v1/fleet/summary');
        return summary.body.devices.online === 4 ? true : undefined;
      },
      20_000,
      'devices online',
    );
  });

  afterAll(async () => {
    await Promise.all(fleet.map((d) => d.close()));
    await browser?.close();
    await t?.close();
  });

  const rollout = async (id: string): Promise<RolloutView> => (await admin.get<RolloutView>(`/api/v1/rollouts/${id}`)).body;

  it('retries failed devices, advances to the next wave and aborts with a roll-back, from the buttons', async () => {
    const created = await admin.post<RolloutView>('/api/v1/rollouts', {
      model: 'detector',
      version: '2.0.0',
      target: { tags: { site: 'lab' } },
      // The first wave bakes for an hour: only the Advance button moves the rollout on.
      waves: [
        // One failure must not pause it: the failure condition needs more devices than there are.
        { percent: 50, bakeSeconds: 3600, successPercent: 100, failure: { percent: 100, minExecuted: 10 } },
        { percent: 100, bakeSeconds: 0, successPercent: 100 },
      ],
      onFailure: 'pause',
    });
    expect(created.status).toBe(201);
    const id = created.body.id;
    const { page, problems, close } = await openDashboard(browser, t.baseUrl, t.adminKey, `#/rollouts/${id}`);
    try {
      // Waves are numbered from 1 for people; data-wave keeps the API's index.
      const first = page.locator('[data-wave="0"]');
      await first.locator('[data-segment="in-progress"][data-value="2"]').waitFor({ timeout: 15_000 });
      await expect(first.locator('.wave-head strong').textContent()).resolves.toBe('Wave 1');
      await page.getByText('1 of 2', { exact: true }).waitFor();

      // One device of the first wave fails its download; Retry sends it back and it is told again.
      const told = fleet.filter((d) => d.pending.has('detector'));
      expect(told).toHaveLength(2);
      expect(await told[0]!.fail('detector')).toBe(true);
      await first.locator('[data-segment="failed"][data-value="1"]').waitFor({ timeout: 15_000 });
      await page.locator('button[data-action="retry"]').click();
      await page.locator('[data-event-type="retry"]').waitFor({ timeout: 15_000 });
      await eventually(async () => (told[0]!.pending.has('detector') ? true : undefined), 15_000, 'the failed device told again');
      await expect(first.locator('[data-segment="failed"]').count()).resolves.toBe(0);
      expect((await rollout(id)).counts['failed'] ?? 0).toBe(0);
      expect(await commitSome(fleet, 'detector', 2)).toBe(2);
      await first.locator('[data-segment="committed"][data-value="2"]').waitFor({ timeout: 15_000 });
      await screenshot(page, 'rollout-ops-retried');

      // Advance: the second wave starts at once, and there is no wave left to advance to.
      await page.locator('button[data-action="advance"]').click();
      await page.locator('[data-wave="1"] [data-segment="in-progress"][data-value="2"]').waitFor({ timeout: 15_000 });
      await page.getByText('2 of 2', { exact: true }).waitFor();
      expect((await rollout(id)).currentWave).toBe(1);
      await expect(page.locator('button[data-action="advance"]').count()).resolves.toBe(0);

      // Abort asks first, then every device that was told goes back to 1.0.0.
      page.once('dialog', (dialog) => void dialog.accept());
      await page.locator('button[data-action="abort"]').click();
      await eventually(
        async () => ((await rollout(id)).state === 'rolling-back' || (await rollout(id)).state === 'rolled-back' ? true : undefined),
        15_000,
        'abort',
      );
      await eventually(
        async () => {
          // A device may finish 2.0.0 just before its revert arrives; the revert then follows.
          await commitSome(fleet, 'detector', 4);
          const back = fleet.every((d) => d.activeVersion('detector') === '1.0.0' && !d.pending.has('detector'));
          return back && (await rollout(id)).state === 'rolled-back' ? true : undefined;
        },
        30_000,
        'the roll-back finished',
      );
      await page.locator('.page-head [data-state="rolled-back"]').waitFor({ timeout: 15_000 });
      await expect(page.locator('button[data-action]').count()).resolves.toBe(0);
      await screenshot(page, 'rollout-ops-rolled-back');
      expect(problems).toEqual([]);
    } finally {
      await close();
    }
  });
  it('shows the build each device takes once a version ships several', async () => {
    // Two builds: one for NPU boards, one for plain CPUs (the scripted devices have no accelerator).
    const headers = { authorization: `Bearer ${t.adminKey}` };
    expect((await admin.post('/api/v1/models', { name: 'seg' })).status).toBe(201);
    const form = new FormData();
    form.append('version', '1.0.0');
    form.append(
      'metadata',
      JSON.stringify({
        runtime: 'simulated',
        variants: [
          { name: 'npu-int8', files: ['seg-int8.bin'], compatibility: { accelerators: ['npu'] } },
          { name: 'cpu-fp32', files: ['seg-fp32.bin'], compatibility: { hardwareClasses: ['sim-x86'] } },
        ],
      }),
    );
    form.append('file', new Blob(['int8 weights']), 'seg-int8.bin');
    form.append('file', new Blob(['fp32 weights']), 'seg-fp32.bin');
    const uploaded = await fetch(`${t.baseUrl}/api/v1/models/seg/versions`, { method: 'POST', headers, body: form });
    expect(uploaded.status).toBe(201);
    const created = await admin.post<RolloutView>('/api/v1/rollouts', {
      model: 'seg',
      version: '1.0.0',
      target: { tags: { site: 'lab' } },
      waves: [{ percent: 100, bakeSeconds: 0, successPercent: 100 }],
    });
    expect(created.status).toBe(201);
    const id = created.body.id;
    await eventually(async () => (fleet.every((d) => d.pending.has('seg')) ? true : undefined), 15_000, 'every device told');
    expect(await commitSome(fleet, 'seg', 4)).toBe(4);
    await eventually(async () => ((await rollout(id)).state === 'completed' ? true : undefined), 20_000, 'rollout completed');

    const { page, problems, close } = await openDashboard(browser, t.baseUrl, t.adminKey, `#/rollouts/${id}`);
    try {
      // The rollout's device list has a build column, every device on the CPU build.
      await page.locator('tr[data-rollout-device]').first().waitFor({ timeout: 15_000 });
      await expect(page.locator('th', { hasText: 'Build' }).count()).resolves.toBe(1);
      await expect(page.locator('tr[data-rollout-device] td[data-build="cpu-fp32"]').count()).resolves.toBe(4);
      await screenshot(page, 'rollout-builds');

      // The device search shows model, version and build in one badge.
      await page.goto(`${t.baseUrl}/#/devices`);
      const badge = page.locator('span.badge[data-build="cpu-fp32"]', { hasText: 'seg@1.0.0 · cpu-fp32' });
      await badge.first().waitFor({ timeout: 15_000 });
      await expect(badge.count()).resolves.toBe(4);
      // A model with one build (detector) shows no build name.
      await expect(page.locator('span.badge', { hasText: /^detector@1\.0\.0$/ }).count()).resolves.toBe(4);
      expect(problems).toEqual([]);
    } finally {
      await close();
    }
  });
});
