import { createHash } from 'node:crypto';
import { Metadata, MetadataKind, MetaFile, Root, Snapshot, TargetFile, Targets, Timestamp } from '@tufjs/models';
import type { RoleKey, TopLevelRole } from './tuf-keys.js';

/** JSON value as @tufjs/models types it (its utils/types module is not exported). */
export type JsonValue = null | boolean | number | string | JsonValue[] | { [key: string]: JsonValue };

const DAY_MS = 24 * 3600 * 1000;

/** Lifetimes of freshly signed metadata per role. */
export const EXPIRY_MS: Record<TopLevelRole, number> = {
  root: 365 * DAY_MS,
  targets: 90 * DAY_MS,
  snapshot: 7 * DAY_MS,
  timestamp: DAY_MS,
};

/** A role is re-signed by the periodic job once less than this much of its lifetime is left. */
export const RENEW_BEFORE_MS: Record<TopLevelRole, number> = {
  root: 60 * DAY_MS,
  targets: 30 * DAY_MS,
  snapshot: 3 * DAY_MS,
  timestamp: 12 * 3600 * 1000,
};

/** One signed metadata file as stored in tuf_metadata and served verbatim. */
export interface SignedMetadata {
  /** A top-level role, or a hash bin (`bins-0a`, docs/tuf.md "Hash bins"). */
  role: string;
  version: number;
  json: string;
  expiresAt: Date;
}

export interface TargetInput {
  /** `{model}/{version}/{fileName}` */
  path: string;
  length: number;
  sha256: string;
  /** Free-form "custom" field of the target (TUF spec §4.5): runtime and friends. */
  custom: { [key: string]: JsonValue };
}

/** TUF wants `YYYY-MM-DDTHH:MM:SSZ` (TUF spec §4.1 "expires"), without milliseconds. */
export function tufTime(at: Date): string {
  return at.toISOString().replace(/\.\d{3}Z$/, 'Z');
}

export function expiry(role: TopLevelRole, now: Date): string {
  return tufTime(new Date(now.getTime() + EXPIRY_MS[role]));
}

export function seal(role: string, metadata: Metadata<Root | Targets | Snapshot | Timestamp>, key: RoleKey): SignedMetadata {
  metadata.sign(key.sign, false);
  return { role, version: metadata.signed.version, json: JSON.stringify(metadata.toJSON()), expiresAt: new Date(metadata.signed.expires) };
}

export function parseRoot(json: string): Metadata<Root> {
  return Metadata.fromJSON(MetadataKind.Root, JSON.parse(json) as Parameters<typeof Metadata.fromJSON>[1]);
}
export function parseTargets(json: string): Metadata<Targets> {
  return Metadata.fromJSON(MetadataKind.Targets, JSON.parse(json) as Parameters<typeof Metadata.fromJSON>[1]);
}
export function parseSnapshot(json: string): Metadata<Snapshot> {
  return Metadata.fromJSON(MetadataKind.Snapshot, JSON.parse(json) as Parameters<typeof Metadata.fromJSON>[1]);
}
export function parseTimestamp(json: string): Metadata<Timestamp> {
  return Metadata.fromJSON(MetadataKind.Timestamp, JSON.parse(json) as Parameters<typeof Metadata.fromJSON>[1]);
}

/**
 * Root v1 of a new repository: one ed25519 key per top-level role, threshold 1, and
 * consistent_snapshot so clients fetch `{N}.targets.json`/`{N}.snapshot.json` and hash-prefixed
 * targets (TUF spec §5.5.2, §5.7.3): a replica answering mid-publish never mixes versions.
 */
export function signInitialRoot(keys: Record<TopLevelRole, RoleKey>, now: Date): SignedMetadata {
  const root = new Root({ version: 1, specVersion: '1.0.31', expires: expiry('root', now), consistentSnapshot: true });
  for (const role of ['root', 'targets', 'snapshot', 'timestamp'] as const) root.addKey(keys[role].key, role);
  return seal('root', new Metadata(root), keys.root);
}

/** Root `previous.version + 1` with the same keys and roles and a new expiry. */
export function signNextRoot(previous: Metadata<Root>, key: RoleKey, now: Date): SignedMetadata {
  const json = previous.signed.toJSON();
  const root = Root.fromJSON({ ...json, version: previous.signed.version + 1, expires: expiry('root', now) });
  return seal('root', new Metadata(root), key);
}

/** Targets `previous.version + 1` (or v1) with `added` (re)placed and a new expiry, not signed yet. */
export function nextTargets(previous: Metadata<Targets> | undefined, added: readonly TargetInput[], now: Date): Metadata<Targets> {
  const targets = new Targets({
    version: (previous?.signed.version ?? 0) + 1,
    specVersion: '1.0.31',
    expires: expiry('targets', now),
    targets: { ...(previous?.signed.targets ?? {}) },
    delegations: previous?.signed.delegations,
  });
  for (const t of added) targets.addTarget(targetFileOf(t));
  return new Metadata(targets);
}

export function targetFileOf(t: TargetInput): TargetFile {
  return new TargetFile({ path: t.path, length: t.length, hashes: { sha256: t.sha256 }, unrecognizedFields: { custom: t.custom } });
}

/** Targets `previous.version + 1` (or v1) with `added` (re)placed and a new expiry. */
export function signNextTargets(previous: Metadata<Targets> | undefined, added: readonly TargetInput[], key: RoleKey, now: Date): SignedMetadata {
  return seal('targets', nextTargets(previous, added, now), key);
}

/**
 * Snapshot `previous.version + 1` (or v1) pointing at targets version `targetsVersion` and at
 * the version of every hash bin (by name), which clients need to fetch `{N}.{bin}.json`.
 */
export function signNextSnapshot(
  previousVersion: number,
  targetsVersion: number,
  key: RoleKey,
  now: Date,
  bins: ReadonlyMap<string, number> = new Map(),
): SignedMetadata {
  const meta: Record<string, MetaFile> = { 'targets.json': new MetaFile({ version: targetsVersion }) };
  for (const [name, version] of bins) meta[`${name}.json`] = new MetaFile({ version });
  const snapshot = new Snapshot({ version: previousVersion + 1, specVersion: '1.0.31', expires: expiry('snapshot', now), meta });
  return seal('snapshot', new Metadata(snapshot), key);
}

/**
 * Timestamp `previous.version + 1` (or v1) pinning the snapshot by version, length and sha256
 * (TUF spec §4.6), so a client detects a swapped snapshot before parsing it.
 */
export function signNextTimestamp(previousVersion: number, snapshot: SignedMetadata, key: RoleKey, now: Date): SignedMetadata {
  const bytes = Buffer.from(snapshot.json, 'utf8');
  const timestamp = new Timestamp({
    version: previousVersion + 1,
    specVersion: '1.0.31',
    expires: expiry('timestamp', now),
    snapshotMeta: new MetaFile({ version: snapshot.version, length: bytes.length, hashes: { sha256: createHash('sha256').update(bytes).digest('hex') } }),
  });
  return seal('timestamp', new Metadata(timestamp), key);
}

/** Whether metadata expiring at `expiresAt` is due for re-signing. */
export function needsRenewal(role: TopLevelRole, expiresAt: Date, now: Date): boolean {
  return expiresAt.getTime() - now.getTime() < RENEW_BEFORE_MS[role];
}
