import { describe, expect, it } from '@jest/globals';
import { decodeFrame, encodeFrame, type RouterFrame } from './device-router.js';

describe('router frames', () => {
  it.each<RouterFrame>([
    { kind: 'publish', topic: 'fleet/v1/devices/cam-1/desired/resnet', payload: Buffer.from('{"v":1}') },
    { kind: 'publish', topic: 'fleet/v1/devices/cam-1/commands', payload: Buffer.alloc(0) },
    { kind: 'takeover', session: 'r1:abc:7' },
    { kind: 'disconnect' },
  ])('round-trips %o', (frame) => {
    expect(decodeFrame(encodeFrame(frame))).toEqual(frame);
  });

  it.each([Buffer.alloc(0), Buffer.of(9), Buffer.of(1, 0), Buffer.of(1, 0, 9, 65), Buffer.of(2), Buffer.of(3, 0)])('refuses malformed %o', (data) => {
    expect(decodeFrame(data)).toBeUndefined();
  });
});
