import { mkdtemp, readFile, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from '@jest/globals';
import { configPath, readSavedConfig, resolveConnection, saveConfig } from './config.js';
import { UsageError } from './exit-codes.js';

describe('config', () => {
  it('saves with mode 0600 and reads back', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'fleetctl-config-'));
    const path = join(dir, 'nested', 'config.json');
    await saveConfig(path, { server: 'http://cp:3000', key: 'k'.repeat(30) });
    expect((await stat(path)).mode & 0o777).toBe(0o600);
    expect(await readSavedConfig(path)).toEqual({ server: 'http://cp:3000', key: 'k'.repeat(30) });
    expect(JSON.parse(await readFile(path, 'utf8'))).toEqual({ server: 'http://cp:3000', key: 'k'.repeat(30) });
  });

  it('treats a missing file as empty and a broken one as a usage error', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'fleetctl-config-'));
    expect(await readSavedConfig(join(dir, 'none.json'))).toEqual({});
    await writeFile(join(dir, 'bad.json'), '{');
    await expect(readSavedConfig(join(dir, 'bad.json'))).rejects.toThrow(UsageError);
  });

  it('picks the path from FLEETCTL_CONFIG, then XDG_CONFIG_HOME', () => {
    expect(configPath({ FLEETCTL_CONFIG: '/x/c.json' })).toBe('/x/c.json');
    expect(configPath({ XDG_CONFIG_HOME: '/xdg' })).toBe('/xdg/fleetline/config.json');
  });

  it('resolves flags over environment over saved config', () => {
    const saved = { server: 'http://saved:1', key: 'saved-key' };
    expect(resolveConnection({}, {}, saved)).toEqual({ server: 'http://saved:1', key: 'saved-key' });
    expect(resolveConnection({}, { FLEET_SERVER: 'http://env:2/', FLEET_API_KEY: 'env-key' }, saved)).toEqual({ server: 'http://env:2', key: 'env-key' });
    expect(resolveConnection({ server: 'https://flag', key: 'flag-key' }, { FLEET_SERVER: 'http://env:2' }, saved)).toEqual({
      server: 'https://flag',
      key: 'flag-key',
    });
    expect(() => resolveConnection({}, {}, {})).toThrow('no server');
    expect(() => resolveConnection({ server: 'http://a' }, {}, {})).toThrow('no API key');
    expect(() => resolveConnection({ server: 'ftp://a', key: 'k' }, {}, {})).toThrow('http(s) URL');
  });
});
