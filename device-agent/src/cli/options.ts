import { InvalidArgumentError } from 'commander';

/** Commander argument parsers shared by the sub-commands (pure: they only shape option values). */

/** Repeatable option: every occurrence is kept, in order. */
export function collect(value: string, previous: string[] | undefined): string[] {
  return [...(previous ?? []), value];
}

export function nonNegativeInt(value: string): number {
  const n = Number(value);
  if (value.trim() === '' || !Number.isInteger(n) || n < 0) throw new InvalidArgumentError('must be a non-negative integer');
  return n;
}

/** A day: an enrollment still refused after that needs a person, not another retry. */
export const MAX_ENROLL_TIMEOUT_SECONDS = 86_400;

export function enrollTimeoutSeconds(value: string): number {
  const n = nonNegativeInt(value);
  if (n > MAX_ENROLL_TIMEOUT_SECONDS) throw new InvalidArgumentError(`must be at most ${MAX_ENROLL_TIMEOUT_SECONDS} (a day)`);
  return n;
}

/** `--tag k=v` occurrences as a record (undefined when none were given). */
export function tagsOf(values: string[] | undefined): Record<string, string> | undefined {
  if (!values || values.length === 0) return undefined;
  const out: Record<string, string> = {};
  for (const t of values) {
    const eq = t.indexOf('=');
    if (eq <= 0) throw new InvalidArgumentError(`--tag ${t}: expected key=value`);
    out[t.slice(0, eq)] = t.slice(eq + 1);
  }
  return out;
}

/** Validates one `--tag` occurrence as it is parsed, so a bad tag is a usage error before anything runs. */
export function collectTag(value: string, previous: string[] | undefined): string[] {
  tagsOf([value]);
  return collect(value, previous);
}
