import semver from 'semver';

/** Largest major/minor/patch stored (the columns are PostgreSQL integers). */
const MAX_COMPONENT = 2_147_483_647;

/** A release sorts after every pre-release of the same major.minor.patch (semver.org §11.3). */
const RELEASE_SORT = '2';

export interface VersionSortKey {
  major: number;
  minor: number;
  patch: number;
  prerelease: string | null;
  prereleaseSort: string;
}

export type ParsedVersion = { ok: true; key: VersionSortKey } | { ok: false; reason: string };

/**
 * Parses a strict semver version (no `v` prefix, no loose forms) into the columns that order
 * model versions. Build metadata is refused: semver.org §10 says it does not take part in
 * precedence, so `1.0.0+a` and `1.0.0+b` could not be told apart as "latest".
 */
export function parseModelVersion(version: string): ParsedVersion {
  if (version.length > 128) return { ok: false, reason: 'version is longer than 128 characters' };
  const parsed = semver.parse(version, { loose: false });
  const notStrict = `"${version}" is not a strict semver version (e.g. 1.4.0 or 2.0.0-rc.1)`;
  if (!parsed) return { ok: false, reason: notStrict };
  if (parsed.build.length > 0) return { ok: false, reason: 'build metadata (+...) is not allowed: it does not take part in version precedence' };
  // semver.parse accepts a leading "v" or "="; the stored version must be the canonical text.
  if (parsed.version !== version) return { ok: false, reason: notStrict };
  if (parsed.major > MAX_COMPONENT || parsed.minor > MAX_COMPONENT || parsed.patch > MAX_COMPONENT) {
    return { ok: false, reason: `major, minor and patch must be at most ${MAX_COMPONENT}` };
  }
  const identifiers = parsed.prerelease.map(String);
  return {
    ok: true,
    key: {
      major: parsed.major,
      minor: parsed.minor,
      patch: parsed.patch,
      prerelease: identifiers.length > 0 ? identifiers.join('.') : null,
      prereleaseSort: identifiers.length > 0 ? prereleaseSortKey(identifiers) : RELEASE_SORT,
    },
  };
}

/**
 * Encodes pre-release identifiers so that a bytewise comparison (COLLATE "C") follows
 * semver.org §11.4: numeric identifiers compare numerically ('0' + 3-digit length + digits) and
 * sort before alphanumeric ones ('1' + text, ASCII order); identifiers are joined with a space,
 * which sorts below every identifier character, so a shorter set of equal identifiers comes first.
 * Every key starts with '0' or '1', so it sorts below RELEASE_SORT.
 */
export function prereleaseSortKey(identifiers: readonly string[]): string {
  return identifiers.map((id) => (/^\d+$/.test(id) ? `0${String(id.length).padStart(3, '0')}${id}` : `1${id}`)).join(' ');
}
