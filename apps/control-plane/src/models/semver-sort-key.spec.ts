import { describe, expect, it } from '@jest/globals';
import semver from 'semver';
import { parseModelVersion, type VersionSortKey } from './semver-sort-key.js';

function key(version: string): VersionSortKey {
  const parsed = parseModelVersion(version);
  if (!parsed.ok) throw new Error(parsed.reason);
  return parsed.key;
}

/** Same comparison the database does: integer columns, then prerelease_sort bytewise. */
function compareKeys(a: VersionSortKey, b: VersionSortKey): number {
  for (const field of ['major', 'minor', 'patch'] as const) {
    if (a[field] !== b[field]) return a[field] < b[field] ? -1 : 1;
  }
  const x = Buffer.from(a.prereleaseSort);
  const y = Buffer.from(b.prereleaseSort);
  return Buffer.compare(x, y);
}

describe('parseModelVersion', () => {
  it('orders versions exactly like semver precedence', () => {
    const versions = [
      '1.0.0-alpha',
      '1.0.0-alpha.1',
      '1.0.0-alpha.beta',
      '1.0.0-beta',
      '1.0.0-beta.2',
      '1.0.0-beta.11',
      '1.0.0-rc.1',
      '1.0.0',
      '1.0.1',
      '1.2.0',
      '1.10.0',
      '2.0.0-0',
      '2.0.0-9',
      '2.0.0-10',
      '2.0.0-a.x',
      '2.0.0-a-',
      '2.0.0-ab',
      '2.0.0',
      '10.0.0',
    ];
    const shuffled = [...versions].reverse();
    const byKey = [...shuffled].sort((a, b) => compareKeys(key(a), key(b)));
    const bySemver = [...shuffled].sort(semver.compare);
    expect(byKey).toEqual(bySemver);
    expect(byKey).toEqual(versions);
  });

  it('refuses malformed, loose and build-metadata versions with a reason', () => {
    for (const bad of ['1.0', 'v1.0.0', '01.0.0', '1.0.0-01', ' 1.0.0', '1.0.0+build.1', 'latest', '']) {
      const parsed = parseModelVersion(bad);
      expect(parsed.ok).toBe(false);
    }
    const build = parseModelVersion('1.0.0+abc');
    expect(build).toEqual({ ok: false, reason: expect.stringContaining('build metadata') });
  });

  it('keeps the prerelease text and marks releases', () => {
    expect(key('3.1.4-rc.2')).toMatchObject({ major: 3, minor: 1, patch: 4, prerelease: 'rc.2' });
    expect(key('3.1.4')).toMatchObject({ prerelease: null, prereleaseSort: '2' });
  });
});
