import { Duplex } from 'node:stream';
import type { Socket } from 'node:net';

/**
 * Wraps a broker connection and destroys it when a client announces a control packet larger
 * than `maxBytes`, before the broker buffers it. aedes has no packet size option, and MQTT
 * 3.1.1 has no way to refuse a single packet, so closing the network connection is the answer
 * (MQTT 3.1.1 §4.8: a protocol violation ends the connection).
 *
 * Framing (MQTT 3.1.1 §2.2): one fixed-header byte, then the Remaining Length as a variable
 * byte integer of 1-4 bytes (§2.2.3), then that many bytes. The guard tracks only those headers.
 */
export class PacketSizeGuard extends Duplex {
  private skip = 0; // bytes of the current packet body still to pass through
  private header: number[] = []; // bytes of a fixed header split across chunks
  readonly remoteAddress: string | undefined;

  constructor(
    private readonly socket: Socket,
    private readonly maxBytes: number,
    private readonly onOversize: (announced: number) => void,
  ) {
    super({ allowHalfOpen: false });
    this.remoteAddress = (socket as Socket).remoteAddress;
    socket.on('data', (chunk: Buffer) => this.inspect(chunk));
    socket.on('end', () => this.push(null));
    socket.on('error', (err) => this.destroy(err));
    socket.on('close', () => this.destroy());
    socket.on('drain', () => this.emit('drain'));
  }

  private inspect(chunk: Buffer): void {
    let offset = 0;
    while (offset < chunk.length) {
      if (this.skip > 0) {
        const take = Math.min(this.skip, chunk.length - offset);
        this.skip -= take;
        offset += take;
        continue;
      }
      this.header.push(chunk[offset]!);
      offset++;
      if (this.header.length < 2) continue;
      const last = this.header[this.header.length - 1]!;
      if ((last & 0x80) !== 0) {
        // §2.2.3: at most four length bytes, so a fourth one with the continuation bit is malformed.
        if (this.header.length >= 5) return this.reject(-1);
        continue;
      }
      let length = 0;
      for (let i = this.header.length - 1; i >= 1; i--) length = length * 128 + (this.header[i]! & 0x7f);
      const packetBytes = this.header.length + length;
      this.header = [];
      if (packetBytes > this.maxBytes) return this.reject(packetBytes);
      this.skip = length;
    }
    if (!this.push(chunk)) this.socket.pause();
  }

  private reject(announced: number): void {
    this.onOversize(announced);
    this.socket.destroy();
    this.destroy();
  }

  override _read(): void {
    this.socket.resume();
  }

  override _write(chunk: Buffer, encoding: BufferEncoding, callback: (error?: Error | null) => void): void {
    if (this.socket.destroyed) return callback();
    this.socket.write(chunk, encoding, (err?: Error | null) => callback(err));
  }

  override _final(callback: (error?: Error | null) => void): void {
    this.socket.end(callback);
  }

  override _destroy(error: Error | null, callback: (error?: Error | null) => void): void {
    if (!this.socket.destroyed) this.socket.destroy();
    callback(error);
  }
}
