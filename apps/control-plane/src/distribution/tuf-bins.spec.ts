import { generateKeyPairSync } from 'node:crypto';
import { describe, expect, it } from '@jest/globals';
import {
  binNames,
  binOf,
  bitLengthOf,
  groupByBin,
  hasLayout,
  isValidBinCount,
  signAllBins,
  signDelegatingTargets,
  signNextBin,
  succinctRolesOf,
} from './tuf-bins.js';
import { roleKeyFromPrivate } from './tuf-keys.js';
import { parseTargets, type TargetInput } from './tuf-signing.js';

const key = () => roleKeyFromPrivate(generateKeyPairSync('ed25519').privateKey);
const target = (i: number): TargetInput => ({
  path: `model-${i % 97}/1.${i}.0/model.onnx`,
  length: 100 + i,
  sha256: i.toString(16).padStart(64, '0'),
  custom: { model: `model-${i % 97}`, version: `1.${i}.0`, runtime: 'onnx' },
});

describe('hash bins (TAP 15)', () => {
  it('accepts powers of two from 2 to 65536 as a bin count', () => {
    expect([2, 256, 4096, 65_536].every(isValidBinCount)).toBe(true);
    expect([0, 1, 3, 1000, 131_072, 2.5].some(isValidBinCount)).toBe(false);
    expect(bitLengthOf(256)).toBe(8);
    expect(() => bitLengthOf(1000)).toThrow(/power of two/);
  });

  it.each([1, 4, 8, 10, 12, 16])('assigns every path the bin tuf-js resolves it to (bit length %i)', (bitLength) => {
    const binsKey = key();
    const top = parseTargets(signDelegatingTargets(0, bitLength, binsKey, key(), new Date()).json);
    const roles = succinctRolesOf(top)!;
    expect(roles.bitLength).toBe(bitLength);
    const paths = Array.from({ length: 2000 }, (_, i) => target(i).path).concat(['', 'a', 'détecteur/2.0.0/modèle.onnx']);
    for (const path of paths) expect(binOf(path, bitLength)).toBe(roles.getRoleForTarget(path));
    expect(binNames(bitLength)).toEqual([...roles.getRoles()]);
  });

  it('spreads targets over the bins roughly evenly', () => {
    const counts = [
      ...groupByBin(
        Array.from({ length: 25_600 }, (_, i) => target(i)),
        8,
      ).values(),
    ].map((g) => g.length);
    expect(counts).toHaveLength(256);
    expect(Math.min(...counts)).toBeGreaterThan(50);
    expect(Math.max(...counts)).toBeLessThan(160);
  });

  it('signs every bin, empty ones included, each holding exactly its targets, verifiable through the delegation', () => {
    const binsKey = key();
    const top = parseTargets(signDelegatingTargets(3, 4, binsKey, key(), new Date()).json);
    expect(top.signed.version).toBe(4);
    expect(hasLayout(top, 4, binsKey)).toBe(true);
    expect(hasLayout(top, 5, binsKey)).toBe(false);
    expect(hasLayout(top, 4, key())).toBe(false);
    const inputs = Array.from({ length: 40 }, (_, i) => target(i));
    const files = Object.values(
      parseTargets(signNextBin('bins-0', parseTargets(signAllBins([], 4, new Map(), binsKey, new Date()).bins[0]!.json), inputs, binsKey, new Date()).json)
        .signed.targets,
    );
    const { bins, versions } = signAllBins(files, 4, new Map([['bins-3', 7]]), binsKey, new Date());
    expect(bins.map((b) => b.role)).toEqual(binNames(4));
    expect(versions.get('bins-3')).toBe(8);
    expect(versions.get('bins-0')).toBe(1);
    let listed = 0;
    for (const bin of bins) {
      const parsed = parseTargets(bin.json);
      top.verifyDelegate(bin.role, parsed);
      for (const path of Object.keys(parsed.signed.targets)) expect(binOf(path, 4)).toBe(bin.role);
      listed += Object.keys(parsed.signed.targets).length;
    }
    expect(listed).toBe(40);
    expect(() => top.verifyDelegate('bins-0', parseTargets(signAllBins([], 4, new Map(), key(), new Date()).bins[0]!.json))).toThrow();
  });

  it('adds targets to a bin keeping the ones it had', () => {
    const binsKey = key();
    const first = parseTargets(
      signNextBin('bins-0', parseTargets(signAllBins([], 1, new Map(), binsKey, new Date()).bins[0]!.json), [target(1)], binsKey, new Date()).json,
    );
    const second = parseTargets(signNextBin('bins-0', first, [target(2), { ...target(1), length: 5 }], binsKey, new Date()).json);
    expect(first.signed.version).toBe(2);
    expect(second.signed.version).toBe(3);
    expect(Object.keys(second.signed.targets).sort()).toEqual([target(1).path, target(2).path].sort());
    expect(second.signed.targets[target(1).path]!.length).toBe(5);
  });
});
