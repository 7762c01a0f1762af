import { PassThrough } from 'node:stream';
import type { Socket } from 'node:net';
import { describe, expect, it } from '@jest/globals';
import { PacketSizeGuard } from './packet-size-guard.js';

/** A socket stand-in: bytes written to `wire` arrive at the guard as socket 'data'. */
function setup(maxBytes: number): { wire: PassThrough; guard: PacketSizeGuard; oversize: number[]; received: () => Buffer } {
  const wire = new PassThrough();
  const oversize: number[] = [];
  const guard = new PacketSizeGuard(wire as unknown as Socket, maxBytes, (n) => oversize.push(n));
  const chunks: Buffer[] = [];
  guard.on('data', (c: Buffer) => chunks.push(c));
  guard.on('error', () => undefined);
  return { wire, guard, oversize, received: () => Buffer.concat(chunks) };
}

const tick = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

/** An MQTT PUBLISH-shaped packet: fixed header byte, variable byte integer length (§2.2.3), body. */
function packet(bodyLength: number): Buffer {
  const length: number[] = [];
  let x = bodyLength;
  do {
    let byte = x % 128;
    x = Math.floor(x / 128);
    if (x > 0) byte |= 0x80;
    length.push(byte);
  } while (x > 0);
  return Buffer.concat([Buffer.from([0x30, ...length]), Buffer.alloc(bodyLength, 1)]);
}

describe('PacketSizeGuard', () => {
  it('passes packets up to the limit through unchanged, however they are split', async () => {
    const { wire, oversize, received } = setup(1024);
    const bytes = Buffer.concat([packet(10), packet(1021), packet(200)]); // 1021 + 3 header bytes = 1024
    for (let i = 0; i < bytes.length; i += 7) wire.write(bytes.subarray(i, i + 7));
    await tick();
    expect(oversize).toEqual([]);
    expect(received().equals(bytes)).toBe(true);
  });

  it('destroys the connection when a header announces more than the limit, before the body arrives', async () => {
    const { wire, guard, oversize, received } = setup(1024);
    wire.write(packet(10));
    wire.write(packet(5000).subarray(0, 3)); // only the fixed header: enough to refuse
    await tick();
    expect(oversize).toEqual([5003]);
    expect(guard.destroyed).toBe(true);
    expect(wire.destroyed).toBe(true);
    expect(received().length).toBe(12);
  });

  it('refuses a Remaining Length of more than four bytes (malformed, §2.2.3)', async () => {
    const { wire, guard, oversize } = setup(1 << 28);
    wire.write(Buffer.from([0x30, 0xff, 0xff, 0xff, 0xff]));
    await tick();
    expect(oversize).toEqual([-1]);
    expect(guard.destroyed).toBe(true);
  });

  it('accepts the largest legal four-byte length when the limit allows it', async () => {
    const { wire, guard, oversize } = setup(268_435_460);
    wire.write(Buffer.from([0x30, 0xff, 0xff, 0xff, 0x7f]));
    await tick();
    expect(oversize).toEqual([]);
    expect(guard.destroyed).toBe(false);
    guard.destroy();
  });
});
