import { AsyncLocalStorage } from 'node:async_hooks';
import type { LoggerService } from '@nestjs/common';
import { type DestinationStream, type Level, type Logger, pino } from 'pino';
import pretty from 'pino-pretty';
import { effectiveLevel, type LogFormat, type LogLevelName, pinoLevel } from './log-format.js';

/** The request a log line was written in, so a handler's own log lines carry its request id too. */
export const requestContext = new AsyncLocalStorage<{ requestId: string }>();

export interface RootLogger {
  pino: Logger;
  format: LogFormat;
}

/**
 * One pino logger for the process. Writes are synchronous: the lines just before a crash or a
 * refusal to start are the ones an operator needs, and a buffered writer would lose them at exit.
 */
export function createRootLogger(options: { level: LogLevelName; format: LogFormat; destination?: DestinationStream }): RootLogger {
  const level = pinoLevel(options.level);
  const destination =
    options.destination ??
    (options.format === 'json'
      ? pino.destination({ dest: 1, sync: true })
      : pretty({
          sync: true,
          colorize: process.stdout.isTTY === true,
          translateTime: 'SYS:HH:MM:ss',
          ignore: 'pid,hostname,context,requestId,req,res,responseTime',
          // "12:00:01 INFO: Tls: message [request id]": one short line a person reads at a glance.
          messageFormat: '{if context}{context}: {end}{msg}{if requestId} [{requestId}]{end}',
          // An error's stack and any other structured fields still print, below their line.
          singleLine: false,
        }));
  const logger = pino(
    {
      level,
      base: options.format === 'json' ? { pid: process.pid } : {},
      timestamp: pino.stdTimeFunctions.isoTime,
      // pino-http's own line carries the id already (as a binding); every other line gets it here.
      mixin: (merge) => ('responseTime' in merge ? {} : (requestContext.getStore() ?? {})),
      formatters: { level: (label) => ({ level: label }) },
    },
    destination,
  );
  return { pino: logger, format: options.format };
}

/** Nest's LoggerService over pino: Nest and every `new Logger(context)` in the app write through it. */
export class PinoNestLogger implements LoggerService {
  constructor(private readonly logger: Logger) {}

  log(message: unknown, ...params: unknown[]): void {
    this.write('info', message, params);
  }
  error(message: unknown, ...params: unknown[]): void {
    this.write('error', message, params);
  }
  warn(message: unknown, ...params: unknown[]): void {
    this.write('warn', message, params);
  }
  debug(message: unknown, ...params: unknown[]): void {
    this.write('debug', message, params);
  }
  verbose(message: unknown, ...params: unknown[]): void {
    this.write('trace', message, params);
  }
  fatal(message: unknown, ...params: unknown[]): void {
    this.write('fatal', message, params);
  }

  private write(level: Level, message: unknown, params: unknown[]): void {
    // Nest appends the context (a Logger's name) as the last string argument; error() puts a
    // stack before it.
    const rest = [...params];
    let context: string | undefined;
    if (rest.length > 0 && typeof rest[rest.length - 1] === 'string' && !looksLikeStack(rest[rest.length - 1] as string)) {
      context = rest.pop() as string;
    }
    const target = effectiveLevel(level, context);
    if (!this.logger.isLevelEnabled(target)) return;
    const fields: Record<string, unknown> = context ? { context } : {};
    for (const param of rest) {
      if (param instanceof Error) fields['err'] = param;
      else if (typeof param === 'string') fields['stack'] = param;
      else if (param !== undefined) fields['detail'] = param;
    }
    if (message instanceof Error) {
      fields['err'] = message;
      this.logger[target](fields, message.message);
    } else if (typeof message === 'object' && message !== null) {
      this.logger[target]({ ...fields, ...message });
    } else {
      this.logger[target](fields, String(message));
    }
  }
}

function looksLikeStack(value: string): boolean {
  return /\n\s+at /.test(value);
}
