import { describe, expect, it } from '@jest/globals';
import { Metadata, TargetFile, Targets } from '@tufjs/models';
import { pendingTargets, reviewTargets } from './offline-targets.js';
import type { AwaitingArtifact } from './tuf-metadata.repository.js';

const NOW = new Date('2026-12-01T10:00:00Z');

function targets(entries: Record<string, { sha256: string; length: number }>, version = 3): Metadata<Targets> {
  const t = new Targets({ version, specVersion: '1.0.31', expires: '2027-03-01T00:00:00Z' });
  for (const [path, e] of Object.entries(entries)) t.addTarget(new TargetFile({ path, length: e.length, hashes: { sha256: e.sha256 } }));
  return new Metadata(t);
}

function awaiting(model: string, version: string, file: string, sha256: string, size: number): AwaitingArtifact {
  return { model, version, targetPath: `${model}/${version}/${file}`, sha256, size, runtime: 'onnx', framework: null, variant: null };
}

const published = { targetPath: 'detector/1.0.0/model.onnx', sha256: 'a'.repeat(64), size: 10 };

describe('pendingTargets', () => {
  it('adds every awaiting artifact to the next version, unsigned, keeping the current entries', () => {
    const current = targets({ [published.targetPath]: { sha256: published.sha256, length: published.size } });
    const { metadata, versions } = pendingTargets(
      current,
      [awaiting('detector', '2.0.0', 'model.onnx', 'b'.repeat(64), 20), awaiting('detector', '2.0.0', 'labels.txt', 'c'.repeat(64), 5)],
      NOW,
    );
    expect(metadata.signed.version).toBe(4);
    expect(metadata.signatures).toEqual({});
    expect(Object.keys(metadata.signed.targets).sort()).toEqual(['detector/1.0.0/model.onnx', 'detector/2.0.0/labels.txt', 'detector/2.0.0/model.onnx']);
    expect(metadata.signed.targets['detector/2.0.0/model.onnx']?.custom).toEqual({ model: 'detector', version: '2.0.0', runtime: 'onnx' });
    expect(versions).toEqual([{ model: 'detector', version: '2.0.0' }]);
    expect(metadata.signed.expires).toBe('2027-03-01T10:00:00Z');
  });
});

describe('reviewTargets', () => {
  const two = [awaiting('detector', '2.0.0', 'a.bin', 'b'.repeat(64), 20), awaiting('detector', '2.0.0', 'b.bin', 'c'.repeat(64), 5)];

  it('publishes an awaiting version only when every one of its artifacts is listed with the same digest and length', () => {
    const all = targets({
      [published.targetPath]: { sha256: published.sha256, length: published.size },
      'detector/2.0.0/a.bin': { sha256: 'b'.repeat(64), length: 20 },
      'detector/2.0.0/b.bin': { sha256: 'c'.repeat(64), length: 5 },
    });
    expect(reviewTargets(all, [published], two)).toEqual({ missing: [], unknown: [], published: [{ model: 'detector', version: '2.0.0' }] });
    const half = targets({
      [published.targetPath]: { sha256: published.sha256, length: published.size },
      'detector/2.0.0/a.bin': { sha256: 'b'.repeat(64), length: 20 },
    });
    expect(reviewTargets(half, [published], two)).toEqual({ missing: [], unknown: [], published: [] });
  });

  it('reports a published artifact dropped or listed with another digest as missing', () => {
    expect(reviewTargets(targets({}), [published], []).missing).toEqual([published.targetPath]);
    const changed = targets({ [published.targetPath]: { sha256: 'f'.repeat(64), length: published.size } });
    expect(reviewTargets(changed, [published], [])).toEqual({ missing: [published.targetPath], unknown: [], published: [] });
  });

  it('reports entries the server has no artifact for, or that differ from the upload, as unknown', () => {
    const extra = targets({
      [published.targetPath]: { sha256: published.sha256, length: published.size },
      'detector/9.0.0/evil.bin': { sha256: 'e'.repeat(64), length: 1 },
      'detector/2.0.0/a.bin': { sha256: 'b'.repeat(64), length: 21 },
    });
    const review = reviewTargets(extra, [published], two);
    expect(review.unknown.sort()).toEqual(['detector/2.0.0/a.bin', 'detector/9.0.0/evil.bin']);
    expect(review.published).toEqual([]);
  });
});
