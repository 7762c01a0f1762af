import { copyFile, mkdir, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import type { Browser } from 'playwright-core';
import { populationStabilityIndex } from '@fleetline/protocol';
import { type ApiClient, type TestApp, apiClient, eventually, startTestApp } from '../../apps/control-plane/src/testing/test-app.fixture.js';
import { launchBrowser, openDashboard, repoRoot, screenshot } from '../support/dashboard-browser.js';
import { type ScriptedDevice, commitSome, createFleet, registerModel } from '../support/dashboard-fleet.js';

interface RolloutView {
  id: string;
  state: string;
  currentWave: number;
  waves: { index: number; size: number; counts: Record<string, number> }[];
}

/**
 * The web dashboard in a real Chromium against the real control plane (embedded broker and
 * database), with devices that connect over MQTT with their own credentials and report versions
 * and telemetry as agents do. Set UPDATE_README_SCREENSHOT=1 to refresh docs/images/dashboard.png.
 */
describe('web dashboard', () => {
  let t: TestApp;
  let admin: ApiClient;
  let viewerKey: string;
  let browser: Browser;
  let fleet: ScriptedDevice[] = [];
  let eu: ScriptedDevice[] = [];
  let rolloutId: string;

  beforeAll(async () => {
    t = await startTestApp('pglite');
    admin = apiClient(t.baseUrl, t.adminKey);
    const viewer = await admin.post<{ key: string }>('/api/v1/api-keys', { name: 'wall-screen', role: 'viewer' });
    viewerKey = viewer.body.key;
    browser = await launchBrowser();
    await registerModel(t.baseUrl, t.adminKey, 'detector', ['1.0.0', '1.1.0', '2.0.0']);
    await registerModel(t.baseUrl, t.adminKey, 'classifier', ['0.3.0']);
    // 12 devices: 8 run detector 1.0.0, 4 run 1.1.0; every third also runs classifier 0.3.0; even ones are in the eu.
    fleet = await createFleet(admin, t.mqttUrl, 'cam', 12, (i) => ({
      tags: { region: i % 2 === 0 ? 'eu' : 'us' },
      models: { detector: i < 8 ? '1.0.0' : '1.1.0', ...(i % 3 === 0 ? { classifier: '0.3.0' } : {}) },
    }));
    eu = fleet.filter((_, i) => i % 2 === 0);
    await eventually(
      async () => {
        const summary = await admin.get<{ devices: { online: number }; models: { model: string; versions: { devices: number }[] }[] }>('/api/v1/fleet/summary');
        const detector = summary.body.models.find((m) => m.model === 'detector');
        const running = detector?.versions.reduce((a, v) => a + v.devices, 0);
        return summary.body.devices.online === 12 && running === 12 ? true : undefined;
      },
      20_000,
      'presence and version reports applied',
    );
  });

  afterAll(async () => {
    await Promise.all(fleet.map((d) => d.close()));
    await browser?.close();
    await t?.close();
  });

  it('refuses a wrong key at sign-in', async () => {
    const context = await browser.newContext();
    try {
      const page = await context.newPage();
      await page.goto(`${t.baseUrl}/`);
      await page.getByLabel('API key').fill('flk_not_a_real_key_at_all_000000');
      await page.getByRole('button', { name: 'Sign in' }).click();
      await page.getByRole('alert').filter({ hasText: 'not accepted' }).waitFor();
      await expect(page.locator('#nav').isHidden()).resolves.toBe(true);
      await screenshot(page, 'sign-in-refused');
    } finally {
      await context.close();
    }
  });

  it('shows the version distribution of the fleet on the overview', async () => {
    const { page, problems, close } = await openDashboard(browser, t.baseUrl, t.adminKey);
    try {
      const detector = page.locator('[data-model="detector"]');
      await detector.locator('[data-segment="1.0.0"][data-value="8"]').waitFor();
      await detector.locator('[data-segment="1.1.0"][data-value="4"]').waitFor();
      await page.locator('[data-model="classifier"] [data-segment="0.3.0"][data-value="4"]').waitFor();
      await expect(page.locator('[data-stat="total"] .value').textContent()).resolves.toBe('12');
      await expect(page.locator('[data-stat="online"] .value').textContent()).resolves.toBe('12');
      await screenshot(page, 'overview');
      // Narrow screens: everything still fits the width (tables scroll inside their panels).
      await page.setViewportSize({ width: 390, height: 844 });
      await expect(page.evaluate('document.documentElement.scrollWidth')).resolves.toBeLessThanOrEqual(390);
      await screenshot(page, 'overview-narrow');
      expect(problems).toEqual([]);
    } finally {
      await close();
    }
  });

  it('follows a rollout live as devices commit, and pauses it from the page', async () => {
    // A second tab stays on the overview the whole time: it must follow through the fleet stream alone.
    const watcher = await openDashboard(browser, t.baseUrl, viewerKey);
    const { page, problems, close } = await openDashboard(browser, t.baseUrl, t.adminKey);
    try {
      await watcher.page.locator('[data-model="detector"] [data-segment="1.0.0"][data-value="8"]').waitFor();
      await expect(watcher.page.locator('[data-model="detector"] [data-segment="2.0.0"]').count()).resolves.toBe(0);
      const created = await admin.post<RolloutView>('/api/v1/rollouts', {
        model: 'detector',
        version: '2.0.0',
        target: { tags: { region: 'eu' } },
        waves: [
          { percent: 50, bakeSeconds: 0, successPercent: 100 },
          {
            percent: 100,
            bakeSeconds: 0,
            successPercent: 100,
            gates: [
              { metric: 'latency_p95', maxRatio: 1.5 },
              { metric: 'error_rate', maxIncrease: 0.01 },
            ],
            minSamples: 100,
            windowSeconds: 300,
          },
        ],
        onFailure: 'pause',
      });
      expect(created.status).toBe(201);
      rolloutId = created.body.id;

      // The overview lists it among active rollouts (it polls), and links to the detail page.
      const row = page.locator(`[data-rollout="${rolloutId}"]`);
      await row.waitFor({ timeout: 15_000 });
      await row.getByRole('link').first().click();
      await page.waitForURL(`**/#/rollouts/${rolloutId}`);

      // Wave 0 (3 of the 6 eu devices) is told and reports downloading; nothing committed yet.
      const wave0 = page.locator('[data-wave="0"]');
      await wave0.locator('[data-segment="in-progress"][data-value="3"]').waitFor({ timeout: 15_000 });
      await expect(wave0.locator('[data-segment="committed"]').count()).resolves.toBe(0);
      await screenshot(page, 'rollout-wave0-downloading');

      // Devices commit over MQTT; the bars follow through the rollout's event stream.
      expect(await commitSome(eu, 'detector', 1)).toBe(1);
      await wave0.locator('[data-segment="committed"][data-value="1"]').waitFor();
      await wave0.locator('[data-segment="in-progress"][data-value="2"]').waitFor();
      expect(await commitSome(eu, 'detector', 2)).toBe(2);
      await wave0.locator('[data-segment="committed"][data-value="3"]').waitFor();
      // Wave 0 succeeded with no bake time: the engine starts wave 1.
      await page.locator('[data-wave="1"] [data-segment="in-progress"][data-value="3"]').waitFor({ timeout: 15_000 });
      await screenshot(page, 'rollout-wave1-started');

      // Pause from the page; the API agrees.
      await page.locator('button[data-action="pause"]').click();
      await page.locator('.page-head [data-state="paused"]').waitFor();
      const after = await admin.get<RolloutView>(`/api/v1/rollouts/${rolloutId}`);
      expect(after.body.state).toBe('paused');
      await page.locator('button[data-action="resume"]').waitFor();
      await expect(page.locator('button[data-action="pause"]').count()).resolves.toBe(0);
      await page.locator('[data-event-type="paused"]').waitFor();
      // The device list of the rollout filters by state.
      await page.getByLabel('Device state').selectOption('committed');
      await page.getByRole('button', { name: 'Show' }).click();
      await eventually(async () => ((await page.locator('tr[data-rollout-device]').count()) === 3 ? true : undefined), 10_000, 'committed devices listed');
      await screenshot(page, 'rollout-paused');
      expect(problems).toEqual([]);

      // The overview tab, never reloaded, shows the 3 devices of wave 0 on 2.0.0.
      await watcher.page.locator('[data-model="detector"] [data-segment="2.0.0"][data-value="3"]').waitFor();
      await watcher.page.locator(`[data-rollout="${rolloutId}"]`).waitFor();
      expect(watcher.problems).toEqual([]);
    } finally {
      await close();
      await watcher.close();
    }
  });

  it('shows the new version taking over on the overview', async () => {
    const { page, problems, close } = await openDashboard(browser, t.baseUrl, t.adminKey);
    try {
      // The 3 eu devices of wave 0 moved to 2.0.0 (from 1.0.0 or 1.1.0, as the wave hash picked them).
      const detector = page.locator('[data-model="detector"]');
      for (const version of ['1.0.0', '1.1.0', '2.0.0']) {
        const running = fleet.filter((d) => d.activeVersion('detector') === version).length;
        if (version === '2.0.0') expect(running).toBe(3);
        await detector.locator(`[data-segment="${version}"][data-value="${running}"]`).waitFor();
      }
      await page.locator(`[data-rollout="${rolloutId}"] [data-state="paused"]`).waitFor({ timeout: 15_000 });
      if (process.env['UPDATE_README_SCREENSHOT'] === '1') {
        const path = join(repoRoot, 'docs/images/dashboard.png');
        await mkdir(join(repoRoot, 'docs/images'), { recursive: true });
        // The top of the page down to the end of the content, no empty band below.
        const bottom = Number(await page.evaluate(`Math.ceil(document.getElementById('view').getBoundingClientRect().bottom)`));
        await page.screenshot({ path, clip: { x: 0, y: 0, width: 1280, height: Math.min(Math.max(bottom, 400), 900) } });
        expect((await stat(path)).size).toBeLessThan(300_000);
        await copyFile(path, join(repoRoot, 'test/output/screenshots/readme-dashboard.png')).catch(() => undefined);
      }
      expect(problems).toEqual([]);
    } finally {
      await close();
    }
  });

  it('gives a viewer key no rollout buttons, and the API refuses its operations', async () => {
    const { page, problems, close } = await openDashboard(browser, t.baseUrl, viewerKey, '#/rollouts');
    try {
      await expect(page.locator('#who').textContent()).resolves.toContain('viewer');
      // The rollouts list, filtered to paused ones, leads to the rollout.
      await page.getByLabel('State').selectOption('paused');
      const row = page.locator(`tr[data-rollout="${rolloutId}"]`);
      await row.locator('[data-state="paused"]').waitFor();
      await screenshot(page, 'rollouts-list');
      await row.getByRole('link').click();
      await page.waitForURL(`**/#/rollouts/${rolloutId}`);
      await page.locator('[data-wave="0"] [data-segment="committed"][data-value="3"]').waitFor();
      await page.locator('.page-head [data-state="paused"]').waitFor();
      await expect(page.locator('button[data-action]').count()).resolves.toBe(0);
      // Wave 1's health gates are listed with their thresholds.
      await expect(page.locator('tr[data-gate="latency_p95"][data-wave="1"]').textContent()).resolves.toContain('1.5× baseline');
      await page.locator('tr[data-gate="error_rate"][data-wave="1"]').waitFor();
      await screenshot(page, 'rollout-viewer');
      const refused = await apiClient(t.baseUrl, viewerKey).post(`/api/v1/rollouts/${rolloutId}/resume`);
      expect(refused.status).toBe(403);
      expect(problems).toEqual([]);
    } finally {
      await close();
    }
  });

  it('charts model health per version from device telemetry', async () => {
    // Baseline devices answer in ~20 ms, the canary (2.0.0) in ~60 ms with more errors and a shifted distribution.
    for (const d of fleet) {
      const canary = d.activeVersion('detector') === '2.0.0';
      await d.sendTelemetry('detector', {
        count: 200,
        errors: canary ? 6 : 1,
        latencyMs: canary ? 60 : 20,
        predictions: canary ? { person: 80, car: 120 } : { person: 140, car: 60 },
      });
    }
    await eventually(
      async () => {
        const answer = await admin.get<{ versions: { version: string; stats: { inferences: number } }[] }>('/api/v1/telemetry/models/detector');
        const canary = answer.body.versions?.find((v) => v.version === '2.0.0');
        return canary && canary.stats.inferences >= 600 ? true : undefined;
      },
      20_000,
      'telemetry ingested',
    );

    const { page, problems, close } = await openDashboard(browser, t.baseUrl, viewerKey, '#/models');
    try {
      await page.locator('tr[data-model="detector"]').waitFor();
      await screenshot(page, 'models-list');
      await page.locator('tr[data-model="detector"]').getByRole('link').click();
      await page.waitForURL('**/#/models/detector');
      await page.locator('tr[data-version="2.0.0"]').waitFor();
      await expect(page.locator('tr[data-version="2.0.0"] td').nth(1).textContent()).resolves.toBe('600');
      await page.locator('tr[data-version="1.0.0"]').waitFor();
      // The paused rollout defines canary and baseline cohorts.
      await page.locator('tr[data-cohort^="rollout:"]').first().waitFor();
      await page.locator('canvas[data-chart="ready"]').nth(2).waitFor();
      await expect(page.locator('canvas').count()).resolves.toBe(3);
      // chart.js came from this server (the page allows no other origin).
      await expect(page.evaluate(() => typeof (globalThis as { Chart?: unknown }).Chart)).resolves.toBe('function');
      // The page's drift chart computes PSI in the browser: same formula as the control plane's.
      const expected = { person: 140, car: 60, bike: 0 };
      const actual = { person: 80, car: 120, truck: 3 };
      const inBrowser = await page.evaluate(
        `import('/ui/js/pages/telemetry-data.js').then((m) => m.populationStabilityIndex(${JSON.stringify(expected)}, ${JSON.stringify(actual)}))`,
      );
      expect(inBrowser).toBeCloseTo(populationStabilityIndex(expected, actual)!, 12);
      await screenshot(page, 'model-health');
      expect(problems).toEqual([]);
    } finally {
      await close();
    }
  });

  it('searches devices by tag and model version, pages with next, and opens a device', async () => {
    const { page, problems, close } = await openDashboard(browser, t.baseUrl, viewerKey, '#/devices');
    const rows = page.locator('tr[data-device]');
    const listed = async () => Promise.all((await rows.all()).map((row) => row.getAttribute('data-device')));
    try {
      // Keyset pages of 10: 12 devices are 10 + 2, in id order.
      await rows.first().waitFor();
      await page.getByLabel('Per page').selectOption('10');
      await eventually(async () => ((await rows.count()) === 10 ? true : undefined), 10_000, 'first page of 10');
      const firstPage = await listed();
      await page.getByRole('button', { name: 'Next page' }).click();
      await eventually(async () => ((await rows.count()) === 2 ? true : undefined), 10_000, 'second page of 2');
      expect([...firstPage, ...(await listed())]).toEqual(fleet.map((d) => d.id).sort());
      await expect(page.getByRole('button', { name: 'Next page' }).isDisabled()).resolves.toBe(true);

      await page.getByLabel('Tags (key:value, comma-separated)').fill('region:eu');
      await page.getByLabel('Model').fill('detector');
      await page.getByLabel('Active version').fill('2.0.0');
      await page.getByRole('button', { name: 'Search' }).click();
      await eventually(async () => ((await rows.count()) === 3 ? true : undefined), 10_000, '3 devices listed');
      const ids = await listed();
      expect(ids).toEqual(
        eu
          .filter((d) => d.activeVersion('detector') === '2.0.0')
          .map((d) => d.id)
          .sort(),
      );

      await page.locator(`tr[data-device="${ids[0]}"] a`).click();
      await page.locator('tr[data-model="detector"]').waitFor();
      await expect(page.locator('tr[data-model="detector"]').textContent()).resolves.toContain('2.0.0');
      await page.locator(`tr[data-history-rollout="${rolloutId}"]`).waitFor();
      await expect(page.locator(`tr[data-history-rollout="${rolloutId}"]`).textContent()).resolves.toContain('committed');
      await screenshot(page, 'device');
      expect(problems).toEqual([]);
    } finally {
      await close();
    }
  });
});
