import { describe, expect, it } from '@jest/globals';
import { Metadata, TargetFile, Targets } from '@tufjs/models';
import {
  checkExpected,
  firstRoot,
  firstTargets,
  followRootChain,
  generateSigningKey,
  keyFromJson,
  OfflineSigningError,
  parseRoot,
  resignTargets,
  reviewPending,
  rotateRoot,
  signTargets,
} from './offline-signing.js';

const NOW = new Date('2026-12-01T10:00:00Z');

function repository() {
  const keys = { root: generateSigningKey(), targets: generateSigningKey(), snapshot: generateSigningKey(), timestamp: generateSigningKey() };
  const root = firstRoot({ root: keys.root, targets: keys.targets, snapshot: keys.snapshot.key, timestamp: keys.timestamp.key }, NOW);
  return { keys, root, targets: firstTargets(keys.targets, NOW) };
}

function withTarget(base: Metadata<Targets>, path: string, sha256: string, length: number, custom: Record<string, string>): Metadata<Targets> {
  const json = base.signed.toJSON();
  const next = Targets.fromJSON({ ...json, version: base.signed.version + 1 } as Parameters<typeof Targets.fromJSON>[0]);
  next.addTarget(new TargetFile({ path, length, hashes: { sha256 }, unrecognizedFields: { custom } }));
  return new Metadata(next);
}

describe('offline signing', () => {
  it('makes a self-signed root v1 trusting the given keys, and a targets v1 it verifies', () => {
    const { keys, root, targets } = repository();
    expect(root.signed.version).toBe(1);
    expect(root.signed.consistentSnapshot).toBe(true);
    expect(root.signed.roles['snapshot']?.keyIDs).toEqual([keys.snapshot.key.keyID]);
    expect(() => root.verifyDelegate('root', root)).not.toThrow();
    expect(() => root.verifyDelegate('targets', targets)).not.toThrow();
    expect(root.signed.expires).toBe('2027-12-01T10:00:00Z');
  });

  it('recomputes key ids of keys from the server instead of trusting them', () => {
    const key = generateSigningKey();
    expect(keyFromJson('f'.repeat(64), key.key.toJSON()).keyID).toBe(key.key.keyID);
  });

  it('reviews pending targets: returns what they add, refuses a changed or dropped entry and an unsigned baseline', () => {
    const { keys, root, targets } = repository();
    const v2 = withTarget(targets, 'detector/1.0.0/m.bin', 'a'.repeat(64), 5, { model: 'detector', version: '1.0.0' });
    const { added } = reviewPending(root, targets.toJSON(), v2.toJSON());
    expect(added).toEqual([{ path: 'detector/1.0.0/m.bin', sha256: 'a'.repeat(64), length: 5, model: 'detector', version: '1.0.0' }]);

    const current = signTargets(root, v2, keys.targets);
    const changed = Targets.fromJSON({ ...current.signed.toJSON(), version: 3 } as Parameters<typeof Targets.fromJSON>[0]);
    changed.addTarget(new TargetFile({ path: 'detector/1.0.0/m.bin', length: 5, hashes: { sha256: 'b'.repeat(64) } }));
    expect(() => reviewPending(root, current.toJSON(), new Metadata(changed).toJSON())).toThrow(/change detector\/1.0.0\/m.bin/);
    const dropped = new Metadata(Targets.fromJSON({ ...current.signed.toJSON(), version: 3, targets: {} } as Parameters<typeof Targets.fromJSON>[0]));
    expect(() => reviewPending(root, current.toJSON(), dropped.toJSON())).toThrow(/drop/);
    // A baseline the server signed itself (no targets key of root) is not trusted.
    const forged = new Metadata(v2.signed);
    const evil = generateSigningKey();
    expect(() => reviewPending(root, signTargets(parseRootTrusting(root, evil), forged, evil).toJSON(), v2.toJSON())).toThrow(OfflineSigningError);
  });

  it('refuses --expect mismatches both ways', () => {
    const added = [{ path: 'd/1/m', sha256: 'a', length: 1, model: 'd', version: '1' }];
    expect(() => checkExpected(added, ['d@1'])).not.toThrow();
    expect(() => checkExpected(added, ['d@2'])).toThrow(/not expected: d@1; expected but not pending: d@2/);
    expect(() => checkExpected(added, ['d@1', 'd@2'])).toThrow(/expected but not pending: d@2/);
  });

  it('signs targets only with a key root trusts for targets', () => {
    const { keys, root, targets } = repository();
    expect(() => signTargets(root, targets, keys.root)).toThrow(/does not trust the targets key/);
    expect(() => root.verifyDelegate('targets', signTargets(root, targets, keys.targets))).not.toThrow();
  });

  it('rotates keys: the next root revokes the old key, carries the old and new root signatures, and chains from v1', () => {
    const { keys, root, targets } = repository();
    const newTargets = generateSigningKey();
    const newTimestamp = generateSigningKey();
    const v2 = rotateRoot(root, keys.root, { targets: newTargets.key, timestamp: newTimestamp.key }, NOW);
    expect(v2.signed.version).toBe(2);
    expect(v2.signed.roles['targets']?.keyIDs).toEqual([newTargets.key.keyID]);
    expect(Object.keys(v2.signed.keys)).not.toContain(keys.targets.key.keyID);
    expect(Object.keys(v2.signed.keys)).not.toContain(keys.timestamp.key.keyID);
    expect(followRootChain(root, [v2])).toBe(v2);
    // Old targets no longer verify; re-signed with the new key they do.
    expect(() => v2.verifyDelegate('targets', targets)).toThrow();
    expect(() => v2.verifyDelegate('targets', resignTargets(targets, newTargets, NOW))).not.toThrow();

    const newRoot = generateSigningKey();
    const v3 = rotateRoot(v2, keys.root, { root: newRoot.key }, NOW, newRoot);
    expect(Object.keys(v3.signatures).sort()).toEqual([keys.root.key.keyID, newRoot.key.keyID].sort());
    expect(followRootChain(root, [v2, v3])).toBe(v3);
    // The revoked root key alone can no longer make a root devices follow.
    const v4 = rotateRoot(v3, newRoot, { snapshot: generateSigningKey().key }, NOW);
    expect(() => followRootChain(v3, [rotateRoot(parseRoot(v3.toJSON()), newRoot, {}, NOW)])).not.toThrow();
    expect(() => rotateRoot(v3, keys.root, {}, NOW)).toThrow(/does not trust the root key/);
    expect(followRootChain(root, [v2, v3, v4]).signed.version).toBe(4);
  });

  it('refuses a root chain with a gap or a root the previous root keys did not sign', () => {
    const { keys, root } = repository();
    const v2 = rotateRoot(root, keys.root, {}, NOW);
    const v3 = rotateRoot(v2, keys.root, {}, NOW);
    expect(() => followRootChain(root, [v3])).toThrow(/does not follow/);
    const other = repository();
    const foreign = rotateRoot(other.root, other.keys.root, {}, NOW);
    expect(() => followRootChain(root, [foreign])).toThrow(/not signed by the root keys of v1/);
  });
});

/** A root like `root` but trusting `key` for targets (what a compromised server could make up). */
function parseRootTrusting(root: ReturnType<typeof repository>['root'], key: ReturnType<typeof generateSigningKey>) {
  const json = root.toJSON() as { signed: { keys: Record<string, unknown>; roles: Record<string, { keyids: string[] }> } };
  json.signed.keys[key.key.keyID] = key.key.toJSON();
  json.signed.roles['targets']!.keyids = [key.key.keyID];
  return parseRoot(json);
}
