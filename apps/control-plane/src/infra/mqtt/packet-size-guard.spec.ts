import { PassThrough } from 'node:stream';
import { describe, expect, it } from '@jest/globals';
import fc from 'fast-check';
import { guardPacketSize, PacketSizeMeter } from './packet-size-guard.js';

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

const headerLength = (bodyLength: number): number => 1 + (bodyLength < 128 ? 1 : bodyLength < 16_384 ? 2 : bodyLength < 2_097_152 ? 3 : 4);

describe('PacketSizeMeter', () => {
  it('lets packets up to the limit pass, however they are split', () => {
    const meter = new PacketSizeMeter(1024);
    const bytes = Buffer.concat([packet(10), packet(1021), packet(200)]); // 1021 + 3 header bytes = 1024
    for (let i = 0; i < bytes.length; i += 7) expect(meter.feed(bytes.subarray(i, i + 7))).toBeUndefined();
  });

  it('reports the announced size as soon as the fixed header is complete', () => {
    const meter = new PacketSizeMeter(1024);
    expect(meter.feed(packet(10))).toBeUndefined();
    expect(meter.feed(packet(5000).subarray(0, 3))).toBe(5003);
  });

  it('refuses a Remaining Length of more than four bytes (malformed, §2.2.3)', () => {
    expect(new PacketSizeMeter(1 << 28).feed(Buffer.from([0x30, 0xff, 0xff, 0xff, 0xff]))).toBe(-1);
  });

  it('accepts the largest legal four-byte length when the limit allows it', () => {
    expect(new PacketSizeMeter(268_435_460).feed(Buffer.from([0x30, 0xff, 0xff, 0xff, 0x7f]))).toBeUndefined();
  });

  it('finds the first oversized packet of any sequence, split anywhere', () => {
    fc.assert(
      fc.property(fc.array(fc.integer({ min: 0, max: 3000 }), { minLength: 1, maxLength: 12 }), fc.integer({ min: 1, max: 97 }), (bodies, step) => {
        const limit = 2000;
        const meter = new PacketSizeMeter(limit);
        const bytes = Buffer.concat(bodies.map(packet));
        const firstTooBig = bodies.find((b) => b + headerLength(b) > limit);
        let seen: number | undefined;
        for (let i = 0; i < bytes.length && seen === undefined; i += step) seen = meter.feed(bytes.subarray(i, i + step));
        return firstTooBig === undefined ? seen === undefined : seen === firstTooBig + headerLength(firstTooBig);
      }),
    );
  });
});

describe('guardPacketSize', () => {
  /** Reads like aedes does: 'readable' + read(), with the guard's 'data' listener attached first. */
  function setup(maxBytes: number): { wire: PassThrough; oversize: number[]; received: () => Buffer } {
    const wire = new PassThrough();
    const oversize: number[] = [];
    guardPacketSize(wire, maxBytes, (n) => oversize.push(n));
    const chunks: Buffer[] = [];
    wire.on('readable', () => {
      let chunk: Buffer | null;
      while ((chunk = wire.read() as Buffer | null) !== null) chunks.push(chunk);
    });
    wire.on('error', () => undefined);
    return { wire, oversize, received: () => Buffer.concat(chunks) };
  }
  const tick = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

  it('passes every byte to the reader unchanged', async () => {
    const { wire, oversize, received } = setup(1024);
    const bytes = Buffer.concat([packet(10), packet(1021), packet(200)]);
    for (let i = 0; i < bytes.length; i += 7) wire.write(bytes.subarray(i, i + 7));
    await tick();
    expect(oversize).toEqual([]);
    expect(received().equals(bytes)).toBe(true);
  });

  it('destroys the connection on an oversized header, before its body arrives', async () => {
    const { wire, oversize } = setup(1024);
    wire.write(packet(10));
    await tick();
    wire.write(packet(5000).subarray(0, 3));
    await tick();
    expect(oversize).toEqual([5003]);
    expect(wire.destroyed).toBe(true);
  });
});
