import { randomBytes } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { stat } from 'node:fs/promises';
import { basename } from 'node:path';
import { Readable } from 'node:stream';

export interface MultipartField {
  name: string;
  value: string;
}

export interface MultipartFile {
  name: string;
  path: string;
  filename?: string;
  contentType?: string;
}

export interface MultipartBody {
  stream: Readable;
  contentType: string;
  /** Exact byte length, so the server can refuse an oversized upload before reading it. */
  contentLength: number;
}

/**
 * Builds a multipart/form-data body (RFC 7578) as a stream: the text fields first (the server
 * checks them before it stores a byte), then each file streamed from disk. Model artifacts can be
 * gigabytes, so no file is ever read into memory.
 */
export async function multipartBody(
  fields: MultipartField[],
  files: MultipartFile[],
  boundary = `----fleetline${randomBytes(16).toString('hex')}`,
): Promise<MultipartBody> {
  const sizes = await Promise.all(files.map(async (f) => (await stat(f.path)).size));
  const fieldBytes = Buffer.from(fields.map((f) => `--${boundary}\r\ncontent-disposition: form-data; name="${quote(f.name)}"\r\n\r\n${f.value}\r\n`).join(''));
  const fileHeads = files.map((file) =>
    Buffer.from(
      `--${boundary}\r\ncontent-disposition: form-data; name="${quote(file.name)}"; filename="${quote(file.filename ?? basename(file.path))}"\r\n` +
        `content-type: ${file.contentType ?? 'application/octet-stream'}\r\n\r\n`,
    ),
  );
  const crlf = Buffer.from('\r\n');
  const tail = Buffer.from(`--${boundary}--\r\n`);
  async function* parts(): AsyncGenerator<Buffer> {
    yield fieldBytes;
    for (const [i, file] of files.entries()) {
      yield fileHeads[i]!;
      for await (const chunk of createReadStream(file.path, { highWaterMark: 1024 * 1024 })) yield chunk as Buffer;
      yield crlf;
    }
    yield tail;
  }
  const contentLength = fieldBytes.length + fileHeads.reduce((n, h) => n + h.length, 0) + sizes.reduce((n, s) => n + s + crlf.length, 0) + tail.length;
  return {
    stream: Readable.from(parts(), { objectMode: false }),
    contentType: `multipart/form-data; boundary=${boundary}`,
    contentLength,
  };
}

/** RFC 7578 §4.2: names are quoted strings; escape the characters that would end them. */
function quote(value: string): string {
  return value.replace(/[\r\n"\\]/g, (c) => encodeURIComponent(c));
}
