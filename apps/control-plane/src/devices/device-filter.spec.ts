import { describe, expect, it } from '@jest/globals';
import { encodeCursor } from '../infra/http/keyset-page.js';
import { buildDeviceListQuery, deviceCursor, likePrefix, parseDeviceListQuery, parseTagFilter } from './device-filter.js';
import { DeviceErrorCode, DeviceException } from './devices.exception.js';

function codeOf(fn: () => unknown): string | undefined {
  try {
    fn();
  } catch (err) {
    return err instanceof DeviceException ? err.code : 'other';
  }
  return undefined;
}

describe('parseTagFilter', () => {
  it('splits at the first colon so values may contain colons', () => {
    expect(parseTagFilter('region:eu')).toEqual({ region: 'eu' });
    expect(parseTagFilter('url:http://x')).toEqual({ url: 'http://x' });
    expect(parseTagFilter('empty:')).toEqual({ empty: '' });
  });

  it('refuses missing keys, bad keys and long values', () => {
    expect(codeOf(() => parseTagFilter('region'))).toBe(DeviceErrorCode.InvalidFilter);
    expect(codeOf(() => parseTagFilter(':eu'))).toBe(DeviceErrorCode.InvalidFilter);
    expect(codeOf(() => parseTagFilter('re gion:eu'))).toBe(DeviceErrorCode.InvalidFilter);
    expect(codeOf(() => parseTagFilter(`k:${'x'.repeat(257)}`))).toBe(DeviceErrorCode.InvalidFilter);
  });
});

describe('parseDeviceListQuery', () => {
  it('defaults to live devices, 100 per page', () => {
    expect(parseDeviceListQuery({})).toEqual({
      tags: [],
      model: undefined,
      version: undefined,
      online: undefined,
      idPrefix: undefined,
      decommissioned: false,
      limit: 100,
      afterId: undefined,
    });
  });

  it('accepts repeated tags, booleans, limit and a cursor', () => {
    const filter = parseDeviceListQuery({
      tag: ['region:eu', 'site:hh'],
      online: 'false',
      limit: '1000',
      after: deviceCursor('cam-9'),
      q: 'cam',
      decommissioned: 'true',
    });
    expect(filter.tags).toEqual([{ region: 'eu' }, { site: 'hh' }]);
    expect(filter.online).toBe(false);
    expect(filter.limit).toBe(1000);
    expect(filter.afterId).toBe('cam-9');
    expect(filter.idPrefix).toBe('cam');
    expect(filter.decommissioned).toBe(true);
  });

  it.each([
    [{ limit: '0' }, DeviceErrorCode.InvalidFilter],
    [{ limit: '1001' }, DeviceErrorCode.InvalidFilter],
    [{ limit: 'ten' }, DeviceErrorCode.InvalidFilter],
    [{ online: 'yes' }, DeviceErrorCode.InvalidFilter],
    [{ version: '1.0.0' }, DeviceErrorCode.InvalidFilter],
    [{ model: 'Bad Model' }, DeviceErrorCode.InvalidFilter],
    [{ model: 'resnet', version: 'latest' }, DeviceErrorCode.InvalidFilter],
    [{ q: 'a%' }, DeviceErrorCode.InvalidFilter],
    [{ after: 'not-a-cursor' }, DeviceErrorCode.InvalidCursor],
    [{ after: encodeCursor([1]) }, DeviceErrorCode.InvalidCursor],
    [{ after: encodeCursor(['a', 'b']) }, DeviceErrorCode.InvalidCursor],
  ])('refuses %j', (query, code) => {
    expect(codeOf(() => parseDeviceListQuery(query))).toBe(code);
  });
});

describe('likePrefix', () => {
  it('escapes LIKE wildcards that are legal in device ids', () => {
    expect(likePrefix('cam_1')).toBe('cam\\_1%');
    expect(likePrefix('a.b:c')).toBe('a.b:c%');
  });
});

describe('buildDeviceListQuery', () => {
  const base = parseDeviceListQuery({});

  it('walks live devices in id order and fetches one extra row', () => {
    const { sql, params } = buildDeviceListQuery(base);
    expect(sql).toBe('SELECT d.id FROM devices d WHERE d.decommissioned_at IS NULL ORDER BY d.id LIMIT $1');
    expect(params).toEqual([101]);
  });

  it('uses one containment predicate per tag pair (GIN) and the keyset bound', () => {
    const { sql, params } = buildDeviceListQuery({ ...base, tags: [{ region: 'eu' }, { site: 'hh' }], online: true, afterId: 'x' });
    expect(sql).toContain('d.tags @> $1::jsonb AND d.tags @> $2::jsonb AND d.online = $3 AND d.id > $4');
    expect(params).toEqual(['{"region":"eu"}', '{"site":"hh"}', true, 'x', 101]);
  });

  it('drives a model+version filter from device_models in device id order', () => {
    const { sql, params } = buildDeviceListQuery({ ...base, model: 'resnet', version: '1.0.0', afterId: 'x' });
    expect(sql).toContain('FROM device_models m CROSS JOIN LATERAL (SELECT * FROM devices d0 WHERE d0.id = m.device_id OFFSET 0) d');
    expect(sql).toContain('m.device_id > $3');
    expect(sql).toContain('ORDER BY m.device_id');
    expect(params).toEqual(['resnet', '1.0.0', 'x', 101]);
  });

  it('uses EXISTS for a model without version and the decommissioned index when asked', () => {
    const { sql } = buildDeviceListQuery({ ...base, model: 'resnet', decommissioned: true });
    expect(sql).toContain('d.decommissioned_at IS NOT NULL');
    expect(sql).toContain('EXISTS (SELECT 1 FROM device_models m WHERE m.device_id = d.id AND m.model = $1)');
    const paged = buildDeviceListQuery({ ...base, model: 'resnet', afterId: 'x' });
    expect(paged.sql).toContain('m.model = $1 AND m.device_id > $2)');
    expect(paged.sql).toContain('d.id > $3');
    expect(paged.params).toEqual(['resnet', 'x', 'x', 101]);
  });
});
