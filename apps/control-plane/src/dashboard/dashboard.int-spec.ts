import { get } from 'node:http';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { type TestApp, apiClient, databaseBackends, startTestApp } from '../testing/test-app.fixture.js';

/** Reads Server-Sent Events from a streaming response until `count` events arrived. */
async function readEvents(response: Response, count: number): Promise<{ event: string; data: unknown }[]> {
  const reader = response.body!.pipeThrough(new TextDecoderStream()).getReader();
  const events: { event: string; data: unknown }[] = [];
  let buffer = '';
  try {
    while (events.length < count) {
      const { value, done } = await reader.read();
      if (done) break;
      buffer += value;
      let end: number;
      while ((end = buffer.indexOf('\n\n')) >= 0) {
        const block = buffer.slice(0, end);
        buffer = buffer.slice(end + 2);
        const event = /^event: (.*)$/m.exec(block)?.[1] ?? 'message';
        const data = block
          .split('\n')
          .filter((l) => l.startsWith('data: '))
          .map((l) => l.slice(6))
          .join('\n');
        if (data) events.push({ event, data: JSON.parse(data) });
      }
    }
  } finally {
    await reader.cancel();
  }
  return events;
}

describe.each(databaseBackends())('dashboard on %s', (backend) => {
  let t: TestApp;

  beforeAll(async () => {
    t = await startTestApp(backend);
  });
  afterAll(() => t.close());

  it('serves the page at / without a key, with a strict content security policy', async () => {
    const response = await fetch(`${t.baseUrl}/`);
    expect(response.status).toBe(200);
    expect(response.headers.get('content-type')).toMatch(/^text\/html/);
    const csp = response.headers.get('content-security-policy') ?? '';
    expect(csp).toContain("script-src 'self'");
    expect(csp).toContain("frame-ancestors 'none'");
    expect(response.headers.get('x-content-type-options')).toBe('nosniff');
    const html = await response.text();
    expect(html).toContain('<script type="module" src="/ui/js/main.js"></script>');
    // No asset may come from another origin.
    expect(html).not.toMatch(/(src|href)="https?:/);
  });

  it('serves its modules, styles and the chart.js bundle from this server', async () => {
    const main = await fetch(`${t.baseUrl}/ui/js/main.js`);
    expect(main.status).toBe(200);
    expect(main.headers.get('content-type')).toMatch(/javascript/);
    expect(await main.text()).toContain("from './api.js'");
    const css = await fetch(`${t.baseUrl}/ui/app.css`);
    expect(css.headers.get('content-type')).toMatch(/^text\/css/);
    const chart = await fetch(`${t.baseUrl}/ui/vendor/chart.umd.js`);
    expect(chart.status).toBe(200);
    expect(await chart.text()).toContain('window.Chart');
  });

  it('answers 304 to a revalidation with the ETag', async () => {
    const first = await fetch(`${t.baseUrl}/ui/app.css`);
    const etag = first.headers.get('etag');
    expect(etag).toBeTruthy();
    expect(first.headers.get('cache-control')).toBe('no-cache');
    // node:http, because fetch adds `Cache-Control: no-cache` to conditional requests (Fetch spec, HTTP-network-or-cache fetch).
    const status = await new Promise<number | undefined>((resolve, reject) => {
      get(`${t.baseUrl}/ui/app.css`, { headers: { 'if-none-match': etag! } }, (res) => {
        res.resume();
        resolve(res.statusCode);
      }).on('error', reject);
    });
    expect(status).toBe(304);
  });

  it.each(['/ui/../package.json', '/ui/%2e%2e/%2e%2e/package.json', '/ui/dashboard.controller.ts', '/ui/js/nope.js', '/ui/.hidden.js'])(
    'answers 404 for %s',
    async (path) => {
      const response = await fetch(`${t.baseUrl}${path}`);
      expect(response.status).toBe(404);
      await response.body?.cancel();
    },
  );

  it('refuses the fleet stream without a key', async () => {
    const response = await fetch(`${t.baseUrl}/api/v1/fleet/stream`);
    expect(response.status).toBe(401);
    await response.body?.cancel();
  });

  it('streams the fleet summary to a viewer key given as ?key=', async () => {
    const admin = apiClient(t.baseUrl, t.adminKey);
    const viewer = await admin.post<{ key: string }>('/api/v1/api-keys', { name: 'dashboard-viewer', role: 'viewer' });
    expect(viewer.status).toBe(201);
    const created = await admin.post('/api/v1/devices', { id: 'stream-dev-1', tags: { region: 'eu' } });
    expect(created.status).toBe(201);

    const response = await fetch(`${t.baseUrl}/api/v1/fleet/stream?key=${encodeURIComponent(viewer.body.key)}`);
    expect(response.status).toBe(200);
    expect(response.headers.get('content-type')).toMatch(/^text\/event-stream/);
    const started = Date.now();
    const events = await readEvents(response, 2);
    expect(events.map((e) => e.event)).toEqual(['summary', 'summary']);
    expect(events[0]!.data).toMatchObject({ devices: { total: 1, online: 0, offline: 1 }, models: [] });
    // One summary at once, then one every 2 s.
    expect(Date.now() - started).toBeGreaterThanOrEqual(1500);
  });

  it('lists the rollouts of a device, and refuses bad input', async () => {
    const viewer = apiClient(t.baseUrl, t.adminKey);
    const none = await viewer.get<{ items: unknown[] }>('/api/v1/devices/stream-dev-1/rollouts');
    expect(none.status).toBe(200);
    expect(none.body.items).toEqual([]);
    const badId = await viewer.get<{ code: string }>('/api/v1/devices/not%20an%20id/rollouts');
    expect(badId.status).toBe(400);
    expect(badId.body.code).toBe('invalid-device-id');
    expect((await viewer.get('/api/v1/devices/stream-dev-1/rollouts?limit=0')).status).toBe(400);
    expect((await viewer.get('/api/v1/devices/stream-dev-1/rollouts?limit=abc')).status).toBe(400);
    expect((await apiClient(t.baseUrl).get('/api/v1/devices/stream-dev-1/rollouts')).status).toBe(401);
  });
});
