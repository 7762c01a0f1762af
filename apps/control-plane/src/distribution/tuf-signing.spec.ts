import { createHash, generateKeyPairSync } from 'node:crypto';
import { describe, expect, it } from '@jest/globals';
import { keyIdOf, roleKeyFromPrivate, type RoleKey, type TopLevelRole } from './tuf-keys.js';
import {
  needsRenewal,
  parseRoot,
  parseSnapshot,
  parseTargets,
  parseTimestamp,
  signInitialRoot,
  signNextRoot,
  signNextSnapshot,
  signNextTargets,
  signNextTimestamp,
  tufTime,
} from './tuf-signing.js';

function keys(): Record<TopLevelRole, RoleKey> {
  const make = () => roleKeyFromPrivate(generateKeyPairSync('ed25519').privateKey);
  return { root: make(), targets: make(), snapshot: make(), timestamp: make() };
}

describe('TUF signing', () => {
  const now = new Date('2026-01-01T00:00:00.123Z');

  it('signs a root that verifies itself and delegates every role', () => {
    const k = keys();
    const root = parseRoot(signInitialRoot(k, now).json);
    expect(root.signed.consistentSnapshot).toBe(true);
    expect(root.signed.expires).toBe('2027-01-01T00:00:00Z');
    expect(() => root.verifyDelegate('root', root)).not.toThrow();
    const next = parseRoot(signNextRoot(root, k.root, now).json);
    expect(next.signed.version).toBe(2);
    expect(() => root.verifyDelegate('root', next)).not.toThrow();
  });

  it('chains targets, snapshot and timestamp', () => {
    const k = keys();
    const root = parseRoot(signInitialRoot(k, now).json);
    const t1 = signNextTargets(undefined, [], k.targets, now);
    const t2 = signNextTargets(
      parseTargets(t1.json),
      [{ path: 'm/1.0.0/a.onnx', length: 3, sha256: 'ab'.repeat(32), custom: { runtime: 'onnx' } }],
      k.targets,
      now,
    );
    const targets = parseTargets(t2.json);
    expect(targets.signed.version).toBe(2);
    expect(targets.signed.targets['m/1.0.0/a.onnx']?.custom).toEqual({ runtime: 'onnx' });
    expect(() => root.verifyDelegate('targets', targets)).not.toThrow();
    const snapshot = signNextSnapshot(4, t2.version, k.snapshot, now);
    expect(parseSnapshot(snapshot.json).signed.meta['targets.json']?.version).toBe(2);
    const timestamp = parseTimestamp(signNextTimestamp(9, snapshot, k.timestamp, now).json);
    expect(timestamp.signed.version).toBe(10);
    expect(timestamp.signed.snapshotMeta.hashes?.['sha256']).toBe(createHash('sha256').update(snapshot.json).digest('hex'));
    expect(() => root.verifyDelegate('timestamp', timestamp)).not.toThrow();
    // Signed by the wrong role's key: refused.
    const forged = parseTargets(signNextTargets(undefined, [], k.snapshot, now).json);
    expect(() => root.verifyDelegate('targets', forged)).toThrow();
  });

  it('computes key ids and renewal windows', () => {
    expect(keyIdOf('00')).toBe(createHash('sha256').update('{"keytype":"ed25519","keyval":{"public":"00"},"scheme":"ed25519"}').digest('hex'));
    expect(tufTime(now)).toBe('2026-01-01T00:00:00Z');
    const expires = new Date(now.getTime() + 24 * 3600 * 1000);
    expect(needsRenewal('timestamp', expires, now)).toBe(false);
    expect(needsRenewal('timestamp', expires, new Date(now.getTime() + 13 * 3600 * 1000))).toBe(true);
  });
});
