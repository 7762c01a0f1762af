import { type ArgumentsHost, Catch, type ExceptionFilter, HttpException, HttpStatus, Logger } from '@nestjs/common';
import type { Response } from 'express';
import { QueryFailedError } from 'typeorm';
import { DomainException } from './domain.exception.js';

/** One JSON error shape for every failure: `{ statusCode, code, message, details? }`. */
@Catch()
export class DomainExceptionFilter implements ExceptionFilter {
  private readonly logger = new Logger('Http');

  catch(exception: unknown, host: ArgumentsHost): void {
    const response = host.switchToHttp().getResponse<Response>();
    if (response.headersSent) {
      response.destroy();
      return;
    }
    if (exception instanceof DomainException) {
      response.status(exception.status).json({ statusCode: exception.status, code: exception.code, message: exception.message, details: exception.details });
      return;
    }
    if (exception instanceof HttpException) {
      const status = exception.getStatus();
      const body = exception.getResponse();
      const message = typeof body === 'string' ? body : ((body as { message?: unknown }).message ?? exception.message);
      response.status(status).json({ statusCode: status, code: httpCode(status), message });
      return;
    }
    if (exception instanceof QueryFailedError && (exception.driverError as { code?: string } | undefined)?.code === '22P02') {
      response.status(HttpStatus.BAD_REQUEST).json({ statusCode: 400, code: 'invalid-input', message: 'malformed identifier or value' });
      return;
    }
    this.logger.error(exception instanceof Error ? (exception.stack ?? exception.message) : String(exception));
    response.status(HttpStatus.INTERNAL_SERVER_ERROR).json({ statusCode: 500, code: 'internal', message: 'internal error' });
  }
}

function httpCode(status: number): string {
  switch (status) {
    case 400:
      return 'invalid-input';
    case 401:
      return 'unauthenticated';
    case 403:
      return 'forbidden';
    case 404:
      return 'not-found';
    case 409:
      return 'conflict';
    case 413:
      return 'payload-too-large';
    case 416:
      return 'range-not-satisfiable';
    default:
      return status >= 500 ? 'internal' : 'http-error';
  }
}
