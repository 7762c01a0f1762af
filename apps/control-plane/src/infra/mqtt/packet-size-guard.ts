import type { Duplex } from 'node:stream';

/**
 * Follows the MQTT framing of one connection's inbound bytes and tells when a client announces a
 * control packet larger than `maxBytes`. aedes has no packet size option, and MQTT 3.1.1 has no
 * way to refuse a single packet, so closing the network connection is the answer (MQTT 3.1.1 §4.8:
 * a protocol violation ends the connection).
 *
 * Framing (MQTT 3.1.1 §2.2): one fixed-header byte, then the Remaining Length as a variable byte
 * integer of 1-4 bytes (§2.2.3), then that many bytes. Only those headers are tracked, in a few
 * numbers per connection (this runs for every device).
 */
export class PacketSizeMeter {
  private skip = 0; // bytes of the current packet body still to pass
  private headerBytes = 0; // bytes of the fixed header seen so far (type byte + length bytes)
  private length = 0;
  private multiplier = 1;

  constructor(private readonly maxBytes: number) {}

  /** Undefined while every packet fits; else the announced packet size (-1: malformed length). */
  feed(chunk: Buffer): number | undefined {
    let offset = 0;
    while (offset < chunk.length) {
      if (this.skip > 0) {
        const take = Math.min(this.skip, chunk.length - offset);
        this.skip -= take;
        offset += take;
        continue;
      }
      const byte = chunk[offset++]!;
      this.headerBytes++;
      if (this.headerBytes === 1) continue; // packet type and flags
      this.length += (byte & 0x7f) * this.multiplier;
      this.multiplier *= 128;
      if ((byte & 0x80) !== 0) {
        // §2.2.3: at most four length bytes, so a fourth one with the continuation bit is malformed.
        if (this.headerBytes >= 5) return -1;
        continue;
      }
      const packetBytes = this.headerBytes + this.length;
      if (packetBytes > this.maxBytes) return packetBytes;
      this.skip = this.length;
      this.headerBytes = 0;
      this.length = 0;
      this.multiplier = 1;
    }
    return undefined;
  }
}

/**
 * Watches a broker connection (a TCP socket, or the stream of a WebSocket) and destroys it as soon
 * as a fixed header announces an oversized packet. It listens to 'data' on the stream itself rather
 * than wrapping it: aedes reads with 'readable' + read(), which then also emits 'data' for every
 * chunk it takes, before it parses it; the broker sees at most the chunk holding the header.
 * No wrapper stream means the broker's writes reach the socket directly (and are batched into one
 * writev per turn), and nothing is allocated per connection beyond the meter.
 */
export function guardPacketSize(stream: Duplex, maxBytes: number, onOversize: (announced: number) => void): void {
  const meter = new PacketSizeMeter(maxBytes);
  const onData = (chunk: Buffer): void => {
    const announced = meter.feed(chunk);
    if (announced === undefined) return;
    stream.off('data', onData);
    onOversize(announced);
    stream.destroy();
  };
  stream.on('data', onData);
}
