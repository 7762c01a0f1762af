import { mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from '@jest/globals';
import busboy from 'busboy';
import { multipartBody } from './multipart.js';

describe('multipartBody', () => {
  it('streams fields then files in a body that a multipart parser reads back, with an exact length', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'fleetctl-mp-'));
    const a = join(dir, 'model.onnx');
    const b = join(dir, 'labels.txt');
    const big = Buffer.alloc(3 * 1024 * 1024 + 7, 0xab);
    await writeFile(a, big);
    await writeFile(b, 'cat\ndog\n');
    const body = await multipartBody(
      [
        { name: 'version', value: '2.1.0' },
        { name: 'metadata', value: '{"runtime":"onnx"}' },
      ],
      [
        { name: 'file', path: a },
        { name: 'file', path: b, contentType: 'text/plain' },
      ],
    );
    const chunks: Buffer[] = [];
    for await (const chunk of body.stream) chunks.push(chunk as Buffer);
    const raw = Buffer.concat(chunks);
    expect(raw.length).toBe(body.contentLength);

    const fields: Record<string, string> = {};
    const files: { name: string; filename: string; mimeType: string; size: number; first: number }[] = [];
    await new Promise<void>((resolve, reject) => {
      const parser = busboy({ headers: { 'content-type': body.contentType } });
      parser.on('field', (name, value) => (fields[name] = value));
      parser.on('file', (name, stream, info) => {
        const parts: Buffer[] = [];
        stream.on('data', (d: Buffer) => parts.push(d));
        stream.on('end', () => {
          const data = Buffer.concat(parts);
          files.push({ name, filename: info.filename ?? '', mimeType: info.mimeType, size: data.length, first: data[0] ?? -1 });
        });
      });
      parser.on('close', resolve);
      parser.on('error', reject);
      parser.end(raw);
    });
    expect(fields).toEqual({ version: '2.1.0', metadata: '{"runtime":"onnx"}' });
    expect(files).toEqual([
      { name: 'file', filename: 'model.onnx', mimeType: 'application/octet-stream', size: big.length, first: 0xab },
      { name: 'file', filename: 'labels.txt', mimeType: 'text/plain', size: 8, first: 'c'.charCodeAt(0) },
    ]);
  });
});
