import type { NextFunction, Request, Response } from 'express';

interface BodyParserError {
  status?: number;
  statusCode?: number;
  type?: string;
  limit?: number;
}

/**
 * Errors of the JSON body parser (too large, malformed, wrong charset) in the API's one error
 * shape. Without it Express answers them with an HTML page. A body over the limit leaves the
 * connection closed: the rest of it is not read.
 */
export function bodyParserErrors(err: unknown, _req: Request, res: Response, next: NextFunction): void {
  const e = err as BodyParserError | undefined;
  const status = e?.status ?? e?.statusCode;
  if (!e || typeof e.type !== 'string' || typeof status !== 'number' || status < 400 || status >= 500) {
    next(err);
    return;
  }
  if (status === 413) {
    res.setHeader('connection', 'close');
    res
      .status(413)
      .json({ statusCode: 413, code: 'payload-too-large', message: `JSON body larger than ${e.limit ?? 'the limit'} bytes (HTTP_JSON_LIMIT_BYTES)` });
    return;
  }
  res.status(status).json({ statusCode: status, code: 'invalid-input', message: status === 400 ? 'malformed JSON body' : `unreadable body (${e.type})` });
}
