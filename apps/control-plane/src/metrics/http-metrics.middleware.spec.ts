import { describe, expect, it } from '@jest/globals';
import { routeLabel } from './http-metrics.middleware.js';

describe('routeLabel', () => {
  it('uses the matched route pattern, never the raw path', () => {
    expect(routeLabel({ baseUrl: '', route: { path: '/api/v1/devices/:id' } })).toBe('/api/v1/devices/:id');
    expect(routeLabel({ baseUrl: '/ui', route: { path: '/*path' } })).toBe('/ui/*path');
  });
  it('labels requests that matched no route "unmatched"', () => {
    expect(routeLabel({ baseUrl: '' })).toBe('unmatched');
    expect(routeLabel({ baseUrl: '', route: { path: /regex/ } })).toBe('unmatched');
  });
});
