import { createHash, createPrivateKey, createPublicKey, generateKeyPairSync, type KeyObject, sign } from 'node:crypto';
import { Key, Metadata, MetadataKind, Root, Signature, Targets } from '@tufjs/models';
import { CliError, ExitCode } from '../exit-codes.js';

/**
 * The operator's side of TUF_KEYS=offline: root and targets are signed here, on the operator's
 * machine, never on the control plane (docs/tuf.md). Pure functions over @tufjs/models; the
 * commands (commands/keys.ts, commands/targets.ts) do the I/O.
 */

export type Role = 'root' | 'targets' | 'snapshot' | 'timestamp';
export const ROLES: readonly Role[] = ['root', 'targets', 'snapshot', 'timestamp'];

const DAY_MS = 86_400_000;
export const ROOT_LIFETIME_MS = 365 * DAY_MS;
export const TARGETS_LIFETIME_MS = 90 * DAY_MS;

type MetadataJson = Parameters<typeof Metadata.fromJSON>[1];

export interface SigningKey {
  key: Key;
  privateKey: KeyObject;
}

/** Something the operator was asked to trust or sign did not check out; nothing was signed. */
export class OfflineSigningError extends CliError {
  constructor(message: string) {
    super(message, ExitCode.Untrusted);
    this.name = 'OfflineSigningError';
  }
}

/** TUF wants `YYYY-MM-DDTHH:MM:SSZ` (TUF spec §4.1), without milliseconds. */
export function tufTime(at: Date): string {
  return at.toISOString().replace(/\.\d{3}Z$/, 'Z');
}

/**
 * The TUF key of an ed25519 key; KEYID = sha256 of the canonical JSON of the public key (TUF spec
 * §4.2), computed the same way as the control plane does.
 */
export function signingKeyFromPrivate(privateKey: KeyObject): SigningKey {
  const jwk = createPublicKey(privateKey).export({ format: 'jwk' });
  if (jwk.kty !== 'OKP' || jwk.crv !== 'Ed25519' || typeof jwk.x !== 'string') throw new OfflineSigningError('TUF keys must be ed25519');
  const publicHex = Buffer.from(jwk.x, 'base64url').toString('hex');
  const keyID = createHash('sha256')
    .update(JSON.stringify({ keytype: 'ed25519', keyval: { public: publicHex }, scheme: 'ed25519' }))
    .digest('hex');
  return { key: new Key({ keyID, keyType: 'ed25519', scheme: 'ed25519', keyVal: { public: publicHex } }), privateKey };
}

export function signingKeyFromPem(pem: string): SigningKey {
  return signingKeyFromPrivate(createPrivateKey(pem));
}

export function generateSigningKey(): SigningKey {
  return signingKeyFromPrivate(generateKeyPairSync('ed25519').privateKey);
}

export function privateKeyPem(key: SigningKey): string {
  return key.privateKey.export({ format: 'pem', type: 'pkcs8' }).toString();
}

/** A public key as the control plane hands it out (GET /api/v1/tuf/admin/online-keys). */
export function keyFromJson(keyId: string | undefined, json: unknown): Key {
  const parsed = Key.fromJSON(keyId ?? '', json as Parameters<typeof Key.fromJSON>[1]);
  const publicHex = parsed.keyVal['public'];
  if (parsed.keyType !== 'ed25519' || typeof publicHex !== 'string') throw new OfflineSigningError('the server sent a key that is not ed25519');
  // Recomputed, never trusted from the wire: the id is what root lists.
  const keyID = createHash('sha256')
    .update(JSON.stringify({ keytype: 'ed25519', keyval: { public: publicHex }, scheme: 'ed25519' }))
    .digest('hex');
  return new Key({ keyID, keyType: 'ed25519', scheme: 'ed25519', keyVal: { public: publicHex } });
}

function signWith(metadata: Metadata<Root | Targets>, key: SigningKey): void {
  // ed25519 signs the canonical JSON of `signed` itself, hence the null digest.
  metadata.sign((data) => new Signature({ keyID: key.key.keyID, sig: sign(null, data, key.privateKey).toString('hex') }), true);
}

export function parseRoot(json: unknown): Metadata<Root> {
  try {
    return Metadata.fromJSON(MetadataKind.Root, (typeof json === 'string' ? JSON.parse(json) : json) as MetadataJson);
  } catch (err) {
    throw new OfflineSigningError(`not valid root metadata: ${err instanceof Error ? err.message : String(err)}`);
  }
}

export function parseTargets(json: unknown): Metadata<Targets> {
  try {
    return Metadata.fromJSON(MetadataKind.Targets, (typeof json === 'string' ? JSON.parse(json) : json) as MetadataJson);
  } catch (err) {
    throw new OfflineSigningError(`not valid targets metadata: ${err instanceof Error ? err.message : String(err)}`);
  }
}

function verifies(delegator: Metadata<Root>, role: Role, delegate: Metadata<Root | Targets>): boolean {
  try {
    delegator.verifyDelegate(role, delegate);
    return true;
  } catch {
    return false;
  }
}

/** Targets metadata the server sent, refused unless a threshold of the root's targets keys signed it. */
export function verifiedTargets(root: Metadata<Root>, json: unknown): Metadata<Targets> {
  const targets = parseTargets(json);
  if (!verifies(root, 'targets', targets)) {
    throw new OfflineSigningError(`the server's targets v${targets.signed.version} are not signed by the targets keys of root v${root.signed.version}`);
  }
  return targets;
}

/** Root v1 of a repository whose root and targets keys are these, trusting the server's snapshot and timestamp keys. */
export function firstRoot(keys: { root: SigningKey; targets: SigningKey; snapshot: Key; timestamp: Key }, now: Date): Metadata<Root> {
  const root = new Root({ version: 1, specVersion: '1.0.31', expires: tufTime(new Date(now.getTime() + ROOT_LIFETIME_MS)), consistentSnapshot: true });
  root.addKey(keys.root.key, 'root');
  root.addKey(keys.targets.key, 'targets');
  root.addKey(keys.snapshot, 'snapshot');
  root.addKey(keys.timestamp, 'timestamp');
  const metadata = new Metadata(root);
  signWith(metadata, keys.root);
  return metadata;
}

/** An empty targets v1, signed. */
export function firstTargets(targetsKey: SigningKey, now: Date): Metadata<Targets> {
  const metadata = new Metadata(new Targets({ version: 1, specVersion: '1.0.31', expires: tufTime(new Date(now.getTime() + TARGETS_LIFETIME_MS)) }));
  signWith(metadata, targetsKey);
  return metadata;
}

/**
 * Walks from the root the operator trusts to the newest one the server has (TUF spec §5.3): each
 * must be the next version, signed by a threshold of the previous root's root keys and of its own.
 * A server cannot make the operator sign against a root they never approved.
 */
export function followRootChain(trusted: Metadata<Root>, newer: readonly Metadata<Root>[]): Metadata<Root> {
  let current = trusted;
  for (const next of newer) {
    if (next.signed.version !== current.signed.version + 1) {
      throw new OfflineSigningError(`root v${next.signed.version} does not follow v${current.signed.version}`);
    }
    if (!verifies(current, 'root', next))
      throw new OfflineSigningError(`root v${next.signed.version} is not signed by the root keys of v${current.signed.version}`);
    if (!verifies(next, 'root', next)) throw new OfflineSigningError(`root v${next.signed.version} is not signed by its own root keys`);
    current = next;
  }
  return current;
}

/** The control plane's root is the one these root keys made (for taking an online repository offline). */
export function adoptRoot(serverRoot: Metadata<Root>, rootKey: SigningKey): Metadata<Root> {
  if (!serverRoot.signed.roles['root']?.keyIDs.includes(rootKey.key.keyID)) {
    throw new OfflineSigningError(`root v${serverRoot.signed.version} on the server does not trust the root key ${rootKey.key.keyID}`);
  }
  if (!verifies(serverRoot, 'root', serverRoot)) throw new OfflineSigningError(`root v${serverRoot.signed.version} is not signed by its own root keys`);
  return serverRoot;
}

export function trustsKey(root: Metadata<Root>, role: Role, key: SigningKey): boolean {
  return root.signed.roles[role]?.keyIDs.includes(key.key.keyID) ?? false;
}

export interface AddedTarget {
  path: string;
  sha256: string;
  length: number;
  model?: string;
  version?: string;
}

/**
 * Checks what the server asks the operator to sign: the baseline (current targets) verifies
 * against the trusted root, and the pending version only adds targets to it, never changes or
 * drops one. Returns the targets added, which the operator compares with what they uploaded.
 */
export function reviewPending(root: Metadata<Root>, currentJson: unknown, pendingJson: unknown): { pending: Metadata<Targets>; added: AddedTarget[] } {
  const current = verifiedTargets(root, currentJson);
  const pending = parseTargets(pendingJson);
  if (pending.signed.version !== current.signed.version + 1) {
    throw new OfflineSigningError(`pending targets v${pending.signed.version} do not follow the current v${current.signed.version}`);
  }
  for (const [path, target] of Object.entries(current.signed.targets)) {
    const next = pending.signed.targets[path];
    if (!next) throw new OfflineSigningError(`pending targets drop ${path}`);
    if (!next.equals(target)) throw new OfflineSigningError(`pending targets change ${path}`);
  }
  const added: AddedTarget[] = [];
  for (const [path, target] of Object.entries(pending.signed.targets)) {
    if (current.signed.targets[path]) continue;
    const custom = target.custom as Record<string, unknown>;
    const sha256 = target.hashes['sha256'];
    if (typeof sha256 !== 'string') throw new OfflineSigningError(`pending target ${path} has no sha256`);
    added.push({
      path,
      sha256,
      length: target.length,
      ...(typeof custom?.['model'] === 'string' ? { model: custom['model'] } : {}),
      ...(typeof custom?.['version'] === 'string' ? { version: custom['version'] } : {}),
    });
  }
  return { pending, added };
}

/**
 * `--expect model@version`: the versions the operator uploaded must be exactly the ones the
 * pending targets add, so a version slipped in by someone else is not signed along.
 */
export function checkExpected(added: readonly AddedTarget[], expected: readonly string[]): void {
  const actual = new Set(added.map((a) => `${a.model ?? '?'}@${a.version ?? '?'}`));
  const wanted = new Set(expected);
  const unexpected = [...actual].filter((v) => !wanted.has(v));
  const absent = [...wanted].filter((v) => !actual.has(v));
  if (unexpected.length > 0 || absent.length > 0) {
    const parts = [
      ...(unexpected.length > 0 ? [`not expected: ${unexpected.join(', ')}`] : []),
      ...(absent.length > 0 ? [`expected but not pending: ${absent.join(', ')}`] : []),
    ];
    throw new OfflineSigningError(`pending targets do not match --expect (${parts.join('; ')}); nothing was signed`);
  }
}

/** Signs the reviewed pending targets with the targets key; the key must be one root trusts. */
export function signTargets(root: Metadata<Root>, pending: Metadata<Targets>, targetsKey: SigningKey): Metadata<Targets> {
  if (!trustsKey(root, 'targets', targetsKey)) {
    throw new OfflineSigningError(`root v${root.signed.version} does not trust the targets key ${targetsKey.key.keyID} for targets`);
  }
  const signed = new Metadata(pending.signed);
  signWith(signed, targetsKey);
  return signed;
}

/** Targets `current.version + 1` with the same entries and a new expiry, signed with `key` (after a targets key rotation). */
export function resignTargets(current: Metadata<Targets>, key: SigningKey, now: Date): Metadata<Targets> {
  const json = current.signed.toJSON();
  const next = new Metadata(
    Targets.fromJSON({ ...json, version: current.signed.version + 1, expires: tufTime(new Date(now.getTime() + TARGETS_LIFETIME_MS)) } as Parameters<
      typeof Targets.fromJSON
    >[0]),
  );
  signWith(next, key);
  return next;
}

/**
 * Root `current.version + 1` in which each role of `replace` trusts only the given key (the old
 * ones are revoked), signed by the current root key and, when root itself rotates, also by the
 * new one: devices check both thresholds (TUF spec §5.3.4-5.3.5).
 */
export function rotateRoot(
  current: Metadata<Root>,
  currentRootKey: SigningKey,
  replace: Partial<Record<Role, Key>>,
  now: Date,
  newRootKey?: SigningKey,
): Metadata<Root> {
  if (!trustsKey(current, 'root', currentRootKey)) {
    throw new OfflineSigningError(`root v${current.signed.version} does not trust the root key ${currentRootKey.key.keyID}`);
  }
  const json = current.signed.toJSON() as { keys: Record<string, unknown>; roles: Record<string, { keyids: string[]; threshold: number }> };
  for (const [role, key] of Object.entries(replace) as [Role, Key][]) {
    const entry = json.roles[role];
    if (!entry) throw new OfflineSigningError(`root has no ${role} role`);
    json.keys[key.keyID] = key.toJSON();
    entry.keyids = [key.keyID];
    entry.threshold = 1;
  }
  // Keys no role lists any more are dropped, so a revoked key is gone from root entirely.
  const used = new Set(Object.values(json.roles).flatMap((r) => r.keyids));
  for (const id of Object.keys(json.keys)) if (!used.has(id)) delete json.keys[id];
  const next = new Metadata(
    Root.fromJSON({ ...json, version: current.signed.version + 1, expires: tufTime(new Date(now.getTime() + ROOT_LIFETIME_MS)) } as Parameters<
      typeof Root.fromJSON
    >[0]),
  );
  signWith(next, currentRootKey);
  if (newRootKey) signWith(next, newRootKey);
  return next;
}
