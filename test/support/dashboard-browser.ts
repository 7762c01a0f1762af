import { existsSync } from 'node:fs';
import { mkdir } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { type Browser, type Page, chromium } from 'playwright-core';

export const repoRoot = resolve(fileURLToPath(new URL('.', import.meta.url)), '../..');
export const screenshotDir = join(repoRoot, 'test/output/screenshots');

/** Chromium from the distribution (no browser download at test time). */
export const CHROMIUM_PATH = process.env['CHROMIUM_PATH'] ?? '/usr/bin/chromium';

export async function launchBrowser(): Promise<Browser> {
  if (!existsSync(CHROMIUM_PATH)) {
    throw new Error(`no Chromium at ${CHROMIUM_PATH}: install it (Debian: apt-get install -y chromium) or set CHROMIUM_PATH`);
  }
  return chromium.launch({
    executablePath: CHROMIUM_PATH,
    args: [
      '--headless',
      '--no-sandbox',
      '--disable-gpu',
      '--disable-background-networking',
      '--disable-quic',
      '--no-first-run',
      '--disable-component-update',
      '--disable-sync',
    ],
  });
}

export interface DashboardPage {
  page: Page;
  /**
   * Script errors, console errors and 5xx answers seen so far (a clean page has none). 4xx answers
   * are not problems by themselves: the page handles them (e.g. a viewer's refused operation).
   */
  problems: string[];
  close(): Promise<void>;
}

/** Opens the dashboard in a fresh browser context (own sessionStorage) and signs in with `key`. */
export async function openDashboard(browser: Browser, baseUrl: string, key: string, hash = '#/overview'): Promise<DashboardPage> {
  const context = await browser.newContext({ viewport: { width: 1280, height: 900 }, deviceScaleFactor: 1 });
  const page = await context.newPage();
  const problems: string[] = [];
  page.on('console', (message) => {
    // Chromium logs every non-2xx fetch as "Failed to load resource"; statuses are checked below instead.
    if (message.type() === 'error' && !message.text().startsWith('Failed to load resource')) problems.push(`console: ${message.text()}`);
  });
  page.on('response', (response) => {
    if (response.status() >= 500) problems.push(`HTTP ${response.status()} ${response.request().method()} ${response.url()}`);
  });
  page.on('requestfailed', (request) => {
    // Closing an EventSource or leaving a page aborts requests; that is not a failure.
    if (!/ERR_ABORTED/.test(request.failure()?.errorText ?? '')) problems.push(`request failed: ${request.url()} ${request.failure()?.errorText}`);
  });
  page.on('pageerror', (err) => problems.push(`page error: ${err.message}`));
  await page.goto(`${baseUrl}/${hash}`);
  await page.getByLabel('API key').fill(key);
  await page.getByRole('button', { name: 'Sign in' }).click();
  await page.locator('#nav').waitFor({ state: 'visible' });
  return { page, problems, close: () => context.close() };
}

export async function screenshot(page: Page, name: string): Promise<string> {
  await mkdir(screenshotDir, { recursive: true });
  const path = join(screenshotDir, `${name}.png`);
  await page.screenshot({ path, fullPage: true });
  return path;
}
