import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from '@jest/globals';
import { dashboardPaths, findPackageRoot, resolveAssetPath } from './dashboard-assets.js';

describe('resolveAssetPath', () => {
  const root = '/srv/public';

  it('maps served files below the public folder', () => {
    expect(resolveAssetPath(root, 'app.css')).toBe('/srv/public/app.css');
    expect(resolveAssetPath(root, 'js/pages/overview.js')).toBe('/srv/public/js/pages/overview.js');
  });

  it.each([
    ['../package.json'],
    ['js/../../secret.js'],
    ['%2e%2e/package.json'],
    ['..%2fpackage.json'],
    ['/etc/passwd.js'],
    ['js//main.js'],
    ['.env.js'],
    ['js/.hidden.js'],
    ['js\\main.js'],
    [''],
  ])('refuses %p', (path) => {
    expect(resolveAssetPath(root, path)).toBeUndefined();
  });

  it('refuses file types it does not serve', () => {
    expect(resolveAssetPath(root, 'dashboard.controller.ts')).toBeUndefined();
    expect(resolveAssetPath(root, 'notes.md')).toBeUndefined();
    expect(resolveAssetPath(root, 'js')).toBeUndefined();
  });
});

describe('findPackageRoot', () => {
  it('walks up to the package.json with the given name', () => {
    const dir = mkdtempSync(join(tmpdir(), 'fleetline-pkg-'));
    writeFileSync(join(dir, 'package.json'), JSON.stringify({ name: 'pkg-under-test' }));
    const nested = join(dir, 'a', 'b');
    expect(findPackageRoot(nested, 'pkg-under-test')).toBe(dir);
  });

  it('throws when no such package is above', () => {
    expect(() => findPackageRoot(tmpdir(), 'no-such-package-anywhere')).toThrow(/not found/);
  });

  it('finds the public folder and the chart.js bundle of this installation', () => {
    const paths = dashboardPaths();
    const here = fileURLToPath(new URL('.', import.meta.url));
    expect(paths.publicDir).toBe(join(here, 'public'));
    expect(paths.chartJs).toMatch(/chart\.js[/\\]dist[/\\]chart\.umd\.js$/);
  });
});
