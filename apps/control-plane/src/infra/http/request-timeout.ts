import type { IncomingMessage, ServerResponse } from 'node:http';
import { type CallHandler, type ExecutionContext, Injectable, type NestInterceptor, SetMetadata } from '@nestjs/common';
import { SSE_METADATA } from '@nestjs/common/constants.js';
import { Reflector } from '@nestjs/core';
import type { Observable } from 'rxjs';

export const UNTIMED_ROUTE = 'fleetline:untimed-route';

/**
 * The route may take longer than HTTP_REQUEST_TIMEOUT_MS (a streamed multi-gigabyte upload).
 * Server-Sent Events routes are exempt without it.
 */
export const Untimed = () => SetMetadata(UNTIMED_ROUTE, true);

const TIMER = Symbol('fleetline:request-timer');

interface TimedRequest extends IncomingMessage {
  [TIMER]?: NodeJS.Timeout;
}

/**
 * Express middleware, first in the chain: every request gets `timeoutMs` from its first byte to
 * its answer. Node's own `server.requestTimeout` cannot do this: it is one number for the whole
 * server and would cut uploads, which is why it was 0 (off) and a slow-body client could hold a
 * socket and a parser forever. On expiry an unanswered request gets 408 and its connection is
 * closed; a half-answered one is cut.
 */
export function requestTimeoutMiddleware(timeoutMs: number) {
  return (req: IncomingMessage, res: ServerResponse, next: () => void): void => {
    const timer = setTimeout(() => {
      if (res.writableEnded) return;
      if (!res.headersSent) {
        res.statusCode = 408;
        res.setHeader('content-type', 'application/json; charset=utf-8');
        res.setHeader('connection', 'close');
        res.end(JSON.stringify({ statusCode: 408, code: 'request-timeout', message: `request not completed within ${timeoutMs} ms` }));
      }
      // Whatever the client is still sending (or not) is not waited for.
      req.socket.destroySoon();
      setTimeout(() => req.socket.destroy(), 1000).unref();
    }, timeoutMs);
    timer.unref();
    (req as TimedRequest)[TIMER] = timer;
    const clear = (): void => clearTimeout(timer);
    res.once('finish', clear);
    res.once('close', clear);
    next();
  };
}

/** Lifts the timer once the route is known, for SSE streams and @Untimed() routes. */
export function exemptFromRequestTimeout(req: IncomingMessage): void {
  clearTimeout((req as TimedRequest)[TIMER]);
}

/**
 * Global interceptor that lifts the request timer on routes that are meant to outlive it. Runs
 * after the guards, so an unauthenticated slow request to such a route is still cut.
 */
@Injectable()
export class RequestTimeoutInterceptor implements NestInterceptor {
  constructor(private readonly reflector: Reflector) {}

  intercept(context: ExecutionContext, next: CallHandler): Observable<unknown> {
    if (context.getType() === 'http') {
      const handler = context.getHandler();
      if (this.reflector.get<boolean>(SSE_METADATA, handler) || this.reflector.getAllAndOverride<boolean>(UNTIMED_ROUTE, [handler, context.getClass()])) {
        exemptFromRequestTimeout(context.switchToHttp().getRequest<IncomingMessage>());
      }
    }
    return next.handle();
  }
}
