import { describe, expect, it } from '@jest/globals';
import { startupSummary } from './startup-summary.js';

const base = { dashboardUrl: 'http://127.0.0.1:3000', database: 'pglite', mqtt: 'embedded', cwd: '/srv/fleetline' };

describe('start-up summary', () => {
  it('shows a generated key once, with its file relative to the working directory', () => {
    const lines = startupSummary({ ...base, signIn: { kind: 'generated', key: 'flk_abc', file: '/srv/fleetline/.data/initial-admin-key' } });
    expect(lines[1]).toBe('  Dashboard  http://127.0.0.1:3000/   API docs  http://127.0.0.1:3000/api/docs');
    expect(lines.join('\n')).toContain('flk_abc');
    expect(lines.join('\n')).toContain('(also in .data/initial-admin-key, mode 0600)');
  });

  it('points at the key file on later starts, and at FLEET_ADMIN_KEY when that is set', () => {
    const later = startupSummary({ ...base, signIn: { kind: 'existing', file: '/var/lib/fleetline/initial-admin-key' } });
    expect(later.at(-1)).toBe('  Sign in    with the admin API key in /var/lib/fleetline/initial-admin-key (written on the first start)');
    expect(startupSummary({ ...base, signIn: { kind: 'env' } }).at(-1)).toContain('FLEET_ADMIN_KEY');
    expect(startupSummary({ ...base, signIn: { kind: 'existing' } }).at(-1)).toContain('printed on the first start');
  });

  it('takes PUBLIC_URL with or without a trailing slash', () => {
    const lines = startupSummary({ ...base, dashboardUrl: 'https://fleet.example.com/', signIn: { kind: 'env' } });
    expect(lines[1]).toContain('https://fleet.example.com/   API docs  https://fleet.example.com/api/docs');
  });
});
