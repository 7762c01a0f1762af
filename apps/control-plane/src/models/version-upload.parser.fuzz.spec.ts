import { createHash } from 'node:crypto';
import type { IncomingMessage } from 'node:http';
import { PassThrough, type Readable } from 'node:stream';
import { describe, expect, it } from '@jest/globals';
import fc from 'fast-check';
import { ArtifactTooLargeError, type ArtifactStore, type StoredArtifact } from './artifact-store/artifact-store.js';
import { ModelException } from './models.exception.js';
import { parseVersionUpload } from './version-upload.parser.js';

/**
 * Property-based fuzzing of the multipart upload parser (security issue #11). For any body and
 * content type it settles (no hang), fails only with a ModelException (a 4xx), and then leaves
 * nothing in the artifact store; a generated valid upload round-trips byte for byte.
 */

/** In-memory ArtifactStore: what a failed upload leaves behind is visible. */
class MemoryStore implements ArtifactStore {
  readonly blobs = new Map<string, Buffer>();
  private n = 0;
  async put(source: Readable, options: { maxBytes: number }): Promise<StoredArtifact> {
    const chunks: Buffer[] = [];
    let size = 0;
    for await (const chunk of source) {
      size += (chunk as Buffer).length;
      if (size > options.maxBytes) {
        source.resume();
        throw new ArtifactTooLargeError(options.maxBytes);
      }
      chunks.push(chunk as Buffer);
    }
    const bytes = Buffer.concat(chunks);
    const key = `k${this.n++}`;
    this.blobs.set(key, bytes);
    return { key, size: bytes.length, sha256: createHash('sha256').update(bytes).digest('hex') };
  }
  async open(): Promise<Readable> {
    throw new Error('not used');
  }
  async stat(key: string): Promise<{ size: number } | undefined> {
    const b = this.blobs.get(key);
    return b ? { size: b.length } : undefined;
  }
  async delete(key: string): Promise<void> {
    this.blobs.delete(key);
  }
}

/** The request as parseVersionUpload sees it: a readable body with headers, complete once read to the end. */
function request(body: Buffer, contentType: string | undefined): IncomingMessage {
  const req = new PassThrough() as unknown as IncomingMessage & { complete: boolean };
  req.headers = contentType === undefined ? {} : { 'content-type': contentType };
  req.complete = false;
  req.on('end', () => {
    req.complete = true;
  });
  (req as unknown as PassThrough).end(body);
  return req;
}

const BOUNDARY = 'fuzzBoundary7MA4YWxk';
interface Part {
  name: string;
  fileName?: string;
  content: Buffer;
}
function multipart(parts: Part[], boundary = BOUNDARY): Buffer {
  const chunks: Buffer[] = [];
  for (const p of parts) {
    const disposition = `form-data; name="${p.name}"${p.fileName === undefined ? '' : `; filename="${p.fileName}"`}`;
    chunks.push(
      Buffer.from(
        `--${boundary}\r\nContent-Disposition: ${disposition}\r\n${p.fileName === undefined ? '' : 'Content-Type: application/octet-stream\r\n'}\r\n`,
      ),
    );
    chunks.push(p.content, Buffer.from('\r\n'));
  }
  chunks.push(Buffer.from(`--${boundary}--\r\n`));
  return Buffer.concat(chunks);
}

const fileName = fc.stringMatching(/^[A-Za-z0-9][A-Za-z0-9._-]{0,20}$/);
const validUpload = fc.record({
  version: fc.tuple(fc.nat(99), fc.nat(99), fc.nat(99)).map(([a, b, c]) => `${a}.${b}.${c}`),
  metadata: fc.option(fc.json({ maxDepth: 2 }), { nil: undefined }),
  files: fc.uniqueArray(fc.record({ fileName, content: fc.uint8Array({ minLength: 1, maxLength: 2048 }).map((b) => Buffer.from(b)) }), {
    minLength: 1,
    maxLength: 4,
    selector: (f) => f.fileName,
  }),
});
function uploadParts(u: { version: string; metadata?: string; files: { fileName: string; content: Buffer }[] }): Part[] {
  return [
    { name: 'version', content: Buffer.from(u.version) },
    ...(u.metadata === undefined ? [] : [{ name: 'metadata', content: Buffer.from(u.metadata) }]),
    ...u.files.map((f) => ({ name: 'file', fileName: f.fileName, content: f.content })),
  ];
}

/** Ways to break a valid body: cut it, flip bytes, shuffle its parts, rename them, drop the boundary. */
const brokenBody = fc.oneof(
  fc.tuple(validUpload, fc.nat()).map(([u, cut]) => {
    const b = multipart(uploadParts(u));
    return b.subarray(0, cut % b.length);
  }),
  fc.tuple(validUpload, fc.array(fc.tuple(fc.nat(), fc.nat(255)), { minLength: 1, maxLength: 8 })).map(([u, flips]) => {
    const b = Buffer.from(multipart(uploadParts(u)));
    for (const [at, byte] of flips) b[at % b.length] = byte;
    return b;
  }),
  fc
    .tuple(validUpload, fc.constantFrom('version', 'file', 'metadata', 'other', '', '"'))
    .map(([u, name]) => multipart(uploadParts(u).map((p, i) => (i === 0 ? { ...p, name } : p)))),
  validUpload.map((u) => multipart(uploadParts(u).reverse())),
  validUpload.map((u) => multipart([...uploadParts(u), ...uploadParts(u)])),
  fc
    .tuple(validUpload, fc.constantFrom('', '../etc/passwd', 'a/b', '.hidden', 'x'.repeat(200), 'nul\u0000'))
    .map(([u, name]) => multipart(uploadParts(u).map((p) => (p.fileName === undefined ? p : { ...p, fileName: name })))),
  fc.uint8Array({ maxLength: 4096 }).map((b) => Buffer.from(b)),
);
const contentType = fc.oneof(
  fc.constant(`multipart/form-data; boundary=${BOUNDARY}`),
  fc.constant(undefined),
  fc.constantFrom(
    'application/json',
    'multipart/form-data',
    'multipart/form-data; boundary=',
    'multipart/mixed; boundary=x',
    'text/plain; boundary=fuzzBoundary7MA4YWxk',
  ),
  fc.string({ maxLength: 80 }),
);

async function parse(body: Buffer, type: string | undefined, store: MemoryStore) {
  return parseVersionUpload(request(body, type), { store, maxBytes: 1536, onFields: async () => undefined, prepareFile: () => undefined });
}

describe('parseVersionUpload (fuzzed)', () => {
  it('settles on any body, fails only with a ModelException, and then leaves nothing stored', async () => {
    await fc.assert(
      fc.asyncProperty(brokenBody, contentType, async (body, type) => {
        const store = new MemoryStore();
        try {
          const { files } = await parse(body, type, store);
          // A mutation may still be a valid upload: then everything it returned is stored.
          expect(store.blobs.size).toBe(files.length);
        } catch (err) {
          expect(err).toBeInstanceOf(ModelException);
          expect(store.blobs.size).toBe(0);
        }
      }),
      // A body that never settles fails at once (no shrinking through one timeout after another).
      { numRuns: 300, timeout: 3_000, endOnFailure: true },
    );
  });

  it('round-trips generated valid uploads byte for byte', async () => {
    await fc.assert(
      fc.asyncProperty(validUpload, async (u) => {
        const store = new MemoryStore();
        const small = { ...u, files: u.files.map((f) => ({ ...f, content: f.content.subarray(0, 1536) })) };
        const { fields, files } = await parse(multipart(uploadParts(small)), `multipart/form-data; boundary=${BOUNDARY}`, store);
        expect(fields).toEqual({ version: small.version, metadata: small.metadata });
        expect(files.map((f) => [f.fileName, store.blobs.get(f.key)])).toEqual(small.files.map((f) => [f.fileName, f.content]));
      }),
      { numRuns: 200, timeout: 5_000 },
    );
  });

  // Counterexamples fuzzing found, kept as fixed cases.
  it('answers (does not hang) when a malformed part header is followed by another file part', async () => {
    const store = new MemoryStore();
    const body = multipart([
      { name: 'version', content: Buffer.from('1.0.0') },
      { name: 'file', fileName: 'a.bin', content: Buffer.from('aaaa') },
      { name: 'file', fileName: 'b.bin', content: Buffer.from('bbbb') },
    ]);
    const at = body.indexOf('Content-Type');
    body[at + 4] = 0x81; // "Cont\x81nt-Type": busboy errors, then still announces the next part,
    body[body.lastIndexOf(BOUNDARY) + 3] = 0x0b; // whose stream never ends (no closing boundary)
    const settledIn = await Promise.race([
      parse(body, `multipart/form-data; boundary=${BOUNDARY}`, store).then(
        () => 'resolved',
        (err: unknown) => (err instanceof ModelException ? 'refused' : 'other error'),
      ),
      new Promise((resolve) => setTimeout(() => resolve('hung'), 2000).unref()),
    ]);
    expect(settledIn).toBe('refused');
    expect(store.blobs.size).toBe(0);
  });

  it('answers when the form is cut short while a file part is still queued', async () => {
    const store = new MemoryStore();
    const body = multipart([
      { name: 'version', content: Buffer.from('1.0.0') },
      { name: 'file', fileName: 'a.bin', content: Buffer.alloc(100, 1) },
      { name: 'file', fileName: 'b.bin', content: Buffer.alloc(100, 2) },
    ]);
    await expect(parse(body.subarray(0, body.length - 60), `multipart/form-data; boundary=${BOUNDARY}`, store)).rejects.toBeInstanceOf(ModelException);
    expect(store.blobs.size).toBe(0);
  });
});
