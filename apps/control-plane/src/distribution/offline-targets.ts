import type { Metadata, TargetFile, Targets } from '@tufjs/models';
import type { AwaitingArtifact } from './tuf-metadata.repository.js';
import { nextTargets, type TargetInput } from './tuf-signing.js';

/**
 * Pure decisions of the offline targets flow (TUF_KEYS=offline): what the operator is asked to
 * sign, and whether a targets version they uploaded may be published.
 */

export interface VersionRef {
  model: string;
  version: string;
}

export interface KnownArtifact {
  targetPath: string;
  sha256: string;
  size: number;
}

/** The TUF target entry of an uploaded artifact; its `custom` field is what devices read (docs/tuf.md). */
export function targetInputOf(a: AwaitingArtifact): TargetInput {
  return {
    path: a.targetPath,
    length: a.size,
    sha256: a.sha256,
    custom: {
      model: a.model,
      version: a.version,
      runtime: a.runtime,
      ...(a.framework ? { framework: a.framework } : {}),
      ...(a.variant ? { variant: a.variant } : {}),
    },
  };
}

function distinctVersions(artifacts: readonly VersionRef[]): VersionRef[] {
  const seen = new Map<string, VersionRef>();
  for (const a of artifacts) seen.set(`${a.model}@${a.version}`, { model: a.model, version: a.version });
  return [...seen.values()];
}

/**
 * The next targets version as the operator should sign it: the current targets plus every
 * artifact awaiting a signature. Unsigned; its `signatures` are empty.
 */
export function pendingTargets(
  current: Metadata<Targets>,
  awaiting: readonly AwaitingArtifact[],
  now: Date,
): { metadata: Metadata<Targets>; versions: VersionRef[] } {
  return { metadata: nextTargets(current, awaiting.map(targetInputOf), now), versions: distinctVersions(awaiting) };
}

export interface TargetsReview {
  /** Artifacts of published versions the targets do not list with the same sha256 and length. */
  missing: string[];
  /** Targets that are not an uploaded artifact, or list one with another sha256 or length. */
  unknown: string[];
  /** Awaiting versions whose every artifact the targets list: they become distributable. */
  published: VersionRef[];
}

/**
 * Checks signed targets against what this control plane stores. A signature alone is not enough:
 * targets that drop a published artifact would break devices that run it, and an entry the server
 * has no artifact for can never be installed (usually a sign of signing the wrong file).
 */
export function reviewTargets(
  targets: Metadata<Targets>,
  published: readonly KnownArtifact[],
  awaiting: readonly AwaitingArtifact[],
  delegated: Readonly<Record<string, TargetFile>> = {},
): TargetsReview {
  // What a device can resolve: the entries of the targets itself plus those of the hash bins it delegates to.
  const listed = { ...delegated, ...targets.signed.targets };
  const matches = (a: KnownArtifact): boolean => {
    const t = listed[a.targetPath];
    return t !== undefined && t.length === a.size && t.hashes['sha256'] === a.sha256;
  };
  const missing = published.filter((a) => !matches(a)).map((a) => a.targetPath);
  const known = new Map<string, KnownArtifact>([...published, ...awaiting].map((a) => [a.targetPath, a]));
  const unknown = Object.keys(listed).filter((path) => {
    const a = known.get(path);
    return a === undefined || !matches(a);
  });
  const incomplete = new Set(awaiting.filter((a) => !matches(a)).map((a) => `${a.model}@${a.version}`));
  return {
    missing,
    unknown: unknown.filter((path) => !missing.includes(path)),
    published: distinctVersions(awaiting).filter((v) => !incomplete.has(`${v.model}@${v.version}`)),
  };
}
