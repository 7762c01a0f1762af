import type { Level } from 'pino';

/** LOG_LEVEL as operators write it: Nest's names, plus pino's `info` and `trace`. */
export const LOG_LEVELS = ['error', 'warn', 'log', 'info', 'debug', 'verbose', 'trace'] as const;
export type LogLevelName = (typeof LOG_LEVELS)[number];

/** `json`: one JSON object a line (log shippers); `pretty`: short readable lines for a person. */
export type LogFormat = 'json' | 'pretty';

export function pinoLevel(level: LogLevelName): Level {
  switch (level) {
    case 'log':
      return 'info';
    case 'verbose':
      return 'trace';
    default:
      return level;
  }
}

/** LOG_FORMAT wins; otherwise production means JSON and anything else the readable form. */
export function resolveLogFormat(explicit: LogFormat | undefined, nodeEnv: string | undefined): LogFormat {
  return explicit ?? (nodeEnv === 'production' ? 'json' : 'pretty');
}

/**
 * Nest's own start-up chatter (one line per module and per route) says nothing an operator acts on,
 * and it would push the start-up summary off the screen: it goes to debug.
 */
const FRAMEWORK_CONTEXTS = new Set(['NestFactory', 'InstanceLoader', 'RoutesResolver', 'RouterExplorer', 'NestApplication']);

export function effectiveLevel(level: Level, context: string | undefined): Level {
  return level === 'info' && context !== undefined && FRAMEWORK_CONTEXTS.has(context) ? 'debug' : level;
}

const REQUEST_ID = /^[A-Za-z0-9._:@/+=-]{1,128}$/;

/** An incoming x-request-id is kept when it is a plain token (it ends up in log lines and a header). */
export function acceptRequestId(incoming: unknown): string | undefined {
  const value = Array.isArray(incoming) ? incoming[0] : incoming;
  return typeof value === 'string' && REQUEST_ID.test(value) ? value : undefined;
}

const SECRET_PARAMS = /([?&](?:key|token|access_token)=)[^&#]*/gi;

/** The URL as logged: Server-Sent Events streams take `?key=`, which must never reach a log. */
export function redactUrl(url: string): string {
  return url.includes('?') ? url.replace(SECRET_PARAMS, '$1[redacted]') : url;
}
