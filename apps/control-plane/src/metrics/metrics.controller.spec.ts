import { describe, expect, it } from '@jest/globals';
import type { Response } from 'express';
import { AccessErrorCode, AccessException } from '../access/access.exception.js';
import type { AccessService } from '../access/access.service.js';
import { MetricsController } from './metrics.controller.js';
import type { MetricsService } from './metrics.service.js';

function fakeResponse() {
  const sent: { status?: number; headers: Record<string, string>; body?: string } = { headers: {} };
  const res = {
    status(code: number) {
      sent.status = code;
      return res;
    },
    setHeader(name: string, value: string) {
      sent.headers[name] = value;
      return res;
    },
    send(body: string) {
      sent.body = body;
      return res;
    },
  };
  return { res: res as unknown as Response, sent };
}

const metrics = { render: async () => 'fleetline_devices 1\n', contentType: 'text/plain; version=0.0.4; charset=utf-8' } as unknown as MetricsService;
const access = {
  authenticate: async (key: string) => {
    if (key !== 'good-key') throw new AccessException(AccessErrorCode.Unauthenticated, 'unknown or revoked API key');
    return { kind: 'api-key', id: '1', name: 'prometheus', role: 'viewer' };
  },
} as unknown as AccessService;

describe('MetricsController', () => {
  it('answers without a key by default', async () => {
    const { res, sent } = fakeResponse();
    await new MetricsController(metrics, access, { requireKey: false, fleetCacheMs: 0 }).scrape(undefined, res);
    expect(sent).toMatchObject({ status: 200, body: 'fleetline_devices 1\n', headers: { 'content-type': expect.stringContaining('text/plain') } });
  });

  it('with METRICS_REQUIRE_KEY needs a valid key of any role', async () => {
    const controller = new MetricsController(metrics, access, { requireKey: true, fleetCacheMs: 0 });
    await expect(controller.scrape(undefined, fakeResponse().res)).rejects.toMatchObject({ code: 'unauthenticated', status: 401 });
    await expect(controller.scrape('Bearer bad-key', fakeResponse().res)).rejects.toMatchObject({ code: 'unauthenticated' });
    const { res, sent } = fakeResponse();
    await controller.scrape('Bearer good-key', res);
    expect(sent.status).toBe(200);
  });
});
