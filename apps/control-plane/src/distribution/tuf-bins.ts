import { createHash } from 'node:crypto';
import { Metadata, type TargetFile, Targets } from '@tufjs/models';

/** @tufjs/models exports neither class from its index; their types are reached through Targets. */
type Delegations = NonNullable<Targets['delegations']>;
export type SuccinctRoles = NonNullable<Delegations['succinctRoles']>;
import type { RoleKey } from './tuf-keys.js';
import { expiry, seal, type SignedMetadata, type TargetInput, targetFileOf } from './tuf-signing.js';

/**
 * Succinct hash-bin delegations (TAP 15): top-level targets delegates every target path to one of
 * 2^bitLength bins, `bins-00` ... `bins-ff`, by the leftmost bits of sha256(path). A device
 * resolving one path downloads one bin, so what it fetches grows with the catalogue divided by
 * the bin count, not with the catalogue (docs/tuf.md "Hash bins").
 */
export const BIN_NAME_PREFIX = 'bins';

/** What `TUF_BIN_COUNT` may be: a power of two, 2 to 65,536 bins (bit length 1 to 16). */
export function isValidBinCount(count: number): boolean {
  return Number.isInteger(count) && count >= 2 && count <= 65_536 && (count & (count - 1)) === 0;
}

export function bitLengthOf(binCount: number): number {
  if (!isValidBinCount(binCount)) throw new Error(`bin count must be a power of two between 2 and 65536 (got ${binCount})`);
  return Math.log2(binCount);
}

/** Hex digits of a bin name's suffix, as SuccinctRoles pads it. */
function suffixLength(bitLength: number): number {
  return (2 ** bitLength - 1).toString(16).length;
}

export function binName(index: number, bitLength: number): string {
  return `${BIN_NAME_PREFIX}-${index.toString(16).padStart(suffixLength(bitLength), '0')}`;
}

/** Every bin name of a delegation, in index order. */
export function binNames(bitLength: number): string[] {
  return Array.from({ length: 2 ** bitLength }, (_, i) => binName(i, bitLength));
}

/** The bin a target path belongs to: the leftmost `bitLength` bits of sha256(path) (TAP 15, tuf-js getRoleForTarget). */
export function binOf(path: string, bitLength: number): string {
  const index = createHash('sha256').update(path).digest().readUInt32BE(0) >>> (32 - bitLength);
  return binName(index, bitLength);
}

/** Whether `name` could be a bin's role name (a metadata file name a device may ask for). */
export function isBinName(name: string): boolean {
  return /^bins-[0-9a-f]{1,4}$/.test(name);
}

/** TAP 15 `delegations` of top-level targets: every path to one of 2^bitLength bins, signed by `binsKey`. */
export function succinctDelegation(bitLength: number, binsKey: RoleKey): Delegations {
  const json = {
    keys: { [binsKey.key.keyID]: binsKey.key.toJSON() },
    succinct_roles: { keyids: [binsKey.key.keyID], threshold: 1, bit_length: bitLength, name_prefix: BIN_NAME_PREFIX },
  };
  const parsed = Targets.fromJSON({ spec_version: '1.0.31', version: 1, expires: '1970-01-01T00:00:00Z', targets: {}, delegations: json });
  return parsed.delegations!;
}

/** The hash-bin delegation of a top-level targets, if it has one. */
export function succinctRolesOf(targets: Metadata<Targets>): SuccinctRoles | undefined {
  return targets.signed.delegations?.succinctRoles;
}

/** Groups targets by the bin they belong to (one pass; each bin is then signed once). */
export function groupByBin(targets: readonly TargetInput[], bitLength: number): Map<string, TargetInput[]> {
  const groups = new Map<string, TargetInput[]>();
  for (const t of targets) {
    const bin = binOf(t.path, bitLength);
    const group = groups.get(bin);
    if (group) group.push(t);
    else groups.set(bin, [t]);
  }
  return groups;
}

/**
 * Bin `name` at `version` holding `files` (path to entry), signed by the bins key. A bin is a
 * delegated targets role: same format and lifetime as top-level targets.
 */
export function signBin(name: string, version: number, files: Record<string, TargetFile>, key: RoleKey, now: Date): SignedMetadata {
  const bin = new Targets({ version, specVersion: '1.0.31', expires: expiry('targets', now), targets: files });
  return seal(name, new Metadata(bin), key);
}

/** The next version of a bin: `previous`'s targets with `added` (re)placed. */
export function signNextBin(name: string, previous: Metadata<Targets>, added: readonly TargetInput[], key: RoleKey, now: Date): SignedMetadata {
  const files = { ...previous.signed.targets };
  for (const t of added) files[t.path] = targetFileOf(t);
  return signBin(name, previous.signed.version + 1, files, key, now);
}

/**
 * The layout a repository should have: top-level targets that list no target themselves and
 * delegate to `bitLength` bins signed by `binsKey`. Anything else (a flat repository from before
 * bins, another bin count, a replaced bins key) is moved by `relayout` at start-up.
 */
export function hasLayout(targets: Metadata<Targets>, bitLength: number, binsKey: RoleKey): boolean {
  const roles = succinctRolesOf(targets);
  return (
    roles !== undefined &&
    Object.keys(targets.signed.targets).length === 0 &&
    roles.bitLength === bitLength &&
    roles.namePrefix === BIN_NAME_PREFIX &&
    roles.threshold === 1 &&
    roles.keyIDs.length === 1 &&
    roles.keyIDs[0] === binsKey.key.keyID
  );
}

/** Versions of the bins a snapshot lists, by bin name (every `bins-*.json` entry). */
export function binVersionsOf(snapshotMeta: Record<string, { version: number }>): Map<string, number> {
  const out = new Map<string, number>();
  for (const [file, meta] of Object.entries(snapshotMeta)) {
    const name = file.replace(/\.json$/, '');
    if (isBinName(name)) out.set(name, meta.version);
  }
  return out;
}

/**
 * Every bin of a `bitLength` delegation signed anew with `files` spread over them (empty bins
 * included: a client resolving a path in an empty bin still needs it signed). Versions continue
 * after `previousVersions` (bins of an earlier layout may share names).
 */
export function signAllBins(
  files: Iterable<TargetFile>,
  bitLength: number,
  previousVersions: ReadonlyMap<string, number>,
  key: RoleKey,
  now: Date,
): { bins: SignedMetadata[]; versions: Map<string, number> } {
  const byBin = new Map<string, Record<string, TargetFile>>(binNames(bitLength).map((name) => [name, {}]));
  for (const file of files) byBin.get(binOf(file.path, bitLength))![file.path] = file;
  const bins: SignedMetadata[] = [];
  const versions = new Map<string, number>();
  for (const [name, binFiles] of byBin) {
    const version = (previousVersions.get(name) ?? 0) + 1;
    bins.push(signBin(name, version, binFiles, key, now));
    versions.set(name, version);
  }
  return { bins, versions };
}

/** Top-level targets `previous.version + 1` (or v1) that list nothing and delegate every path to the bins. */
export function signDelegatingTargets(previousVersion: number, bitLength: number, binsKey: RoleKey, targetsKey: RoleKey, now: Date): SignedMetadata {
  const targets = new Targets({
    version: previousVersion + 1,
    specVersion: '1.0.31',
    expires: expiry('targets', now),
    targets: {},
    delegations: succinctDelegation(bitLength, binsKey),
  });
  return seal('targets', new Metadata(targets), targetsKey);
}
