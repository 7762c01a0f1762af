import { randomUUID } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Logger } from 'pino';
import { pinoHttp } from 'pino-http';
import { acceptRequestId, redactUrl } from './log-format.js';
import { requestContext } from './logger.js';

/** Probes hit every few seconds; their lines would bury everything else at info. */
const PROBES = new Set(['/healthz', '/readyz', '/metrics']);

/** Where devices fetch TUF metadata and targets (not the operators' /api/v1/tuf/admin). */
const DEVICE_DOWNLOADS = /^\/api\/v1\/tuf\/(?:metadata|targets)\//;

type Next = (err?: unknown) => void;

/**
 * One line per finished request with its id, method, URL (secrets redacted), status and time.
 * The id is the caller's `x-request-id` when it is a plain token, a new UUID otherwise; it is
 * echoed in the response header and carried by every log line written while the request runs.
 */
export function requestLogging(logger: Logger): (req: IncomingMessage, res: ServerResponse, next: Next) => void {
  const http = pinoHttp({
    logger,
    quietReqLogger: true,
    customAttributeKeys: { reqId: 'requestId' },
    genReqId: (req, res) => {
      const id = acceptRequestId(req.headers['x-request-id']) ?? randomUUID();
      res.setHeader('x-request-id', id);
      return id;
    },
    customLogLevel: (req, res, err) => {
      // Load shed on purpose (503 with Retry-After: ARTIFACT_MAX_STREAMS): thousands a second in a
      // storm, counted in /metrics; an error line each would cost the CPU the shedding saves.
      if (res.statusCode === 503 && res.hasHeader('retry-after')) return 'debug';
      if (err || res.statusCode >= 500) return 'error';
      if (PROBES.has(pathOf(req))) return 'debug';
      // Devices fetching metadata and artifacts: a line per device per update, 100,000 in one
      // rollout wave; /metrics counts and times them (fleetline_http_request_duration_seconds).
      if (res.statusCode < 400 && DEVICE_DOWNLOADS.test(pathOf(req))) return 'debug';
      // A refused or malformed call is the caller's business (refusals are audited apart), not a
      // warning to whoever runs the server.
      return 'info';
    },
    customSuccessMessage: (req, res, ms) => `${req.method} ${urlOf(req)} ${res.statusCode} ${Math.round(ms)}ms`,
    customErrorMessage: (req, res, err) => `${req.method} ${urlOf(req)} ${res.statusCode} ${err.message}`,
    serializers: {
      req: (req: { method?: string; url?: string; remoteAddress?: string }): object => ({
        method: req.method,
        url: redactUrl(req.url ?? ''),
        remoteAddress: req.remoteAddress,
      }),
      res: (res: { statusCode?: number }): object => ({ statusCode: res.statusCode }),
    },
  });
  return (req, res, next) => {
    http(req, res);
    requestContext.run({ requestId: String(req.id) }, () => next());
  };
}

/**
 * Enters the request's context again once the body is parsed: the body parser resumes from the
 * socket's stream events, outside the context `requestLogging` entered.
 */
export function requestContextAfterBody(): (req: IncomingMessage, res: ServerResponse, next: Next) => void {
  return (req, _res, next) => {
    if (req.id === undefined) return next();
    requestContext.run({ requestId: String(req.id) }, () => next());
  };
}

function urlOf(req: IncomingMessage): string {
  return redactUrl((req as IncomingMessage & { originalUrl?: string }).originalUrl ?? req.url ?? '');
}

function pathOf(req: IncomingMessage): string {
  const url = (req as IncomingMessage & { originalUrl?: string }).originalUrl ?? req.url ?? '';
  const query = url.indexOf('?');
  return query < 0 ? url : url.slice(0, query);
}
