import 'reflect-metadata';
import { mkdirSync } from 'node:fs';
import type { Server as HttpsServer } from 'node:https';
import { type INestApplication, ShutdownSignal, ValidationPipe } from '@nestjs/common';
import { NestFactory, Reflector } from '@nestjs/core';
import type { NestExpressApplication } from '@nestjs/platform-express';
import { SwaggerModule } from '@nestjs/swagger';
import { AppModule } from './app.module.js';
import type { AppConfig } from './infra/config/config.schema.js';
import { bodyParserErrors } from './infra/http/body-parser-errors.js';
import { DomainExceptionFilter } from './infra/http/domain-exception.filter.js';
import { buildOpenApiDocument } from './infra/http/openapi-document.js';
import { TransportSecurity } from './infra/tls/transport-security.js';
import { RequestTimeoutInterceptor, requestTimeoutMiddleware } from './infra/http/request-timeout.js';
import { createRootLogger, PinoNestLogger, type RootLogger } from './infra/logging/logger.js';
import { requestContextAfterBody, requestLogging } from './infra/logging/request-logging.js';

/** Builds the control plane (used by main.ts and by integration tests, so both run the same wiring). */
export async function createApp(
  config: AppConfig,
  root: RootLogger = createRootLogger({ level: config.logLevel, format: config.logFormat }),
): Promise<INestApplication> {
  mkdirSync(config.dataDir, { recursive: true });
  // Read before Nest starts: the HTTPS server is created with its certificate.
  const security = config.tls ? new TransportSecurity(config.tls) : undefined;
  const app = await NestFactory.create<NestExpressApplication>(AppModule.forRoot(config, security), {
    logger: new PinoNestLogger(root.pino),
    bodyParser: false,
    ...(security ? { httpsOptions: security.secureContextOptions() } : {}),
  });
  if (security) {
    // New HTTPS connections get a reloaded certificate; open keep-alive connections keep theirs.
    const server = app.getHttpServer() as unknown as HttpsServer;
    security.onChange((options) => server.setSecureContext(options));
  }
  if (config.httpLimits.trustProxy !== undefined) app.set('trust proxy', trustProxyValue(config.httpLimits.trustProxy));
  // Before everything else, so every request, refused or not, has an id and a log line.
  app.use(requestLogging(root.pino));
  // First in the chain after that, so a slow body or a slow handler is cut whatever route it aims at.
  app.use(requestTimeoutMiddleware(config.httpLimits.requestTimeoutMs));
  // JSON bodies are parsed before any guard runs, so their limit is what an anonymous caller can
  // make the process buffer; uploads (multipart) stream through busboy untouched, under MAX_ARTIFACT_BYTES.
  app.useBodyParser('json', { limit: config.httpLimits.jsonBytes });
  app.use(bodyParserErrors);
  app.use(requestContextAfterBody());
  app.useGlobalInterceptors(new RequestTimeoutInterceptor(app.get(Reflector)));
  app.useGlobalPipes(new ValidationPipe({ whitelist: true, forbidNonWhitelisted: true, transform: true }));
  app.useGlobalFilters(new DomainExceptionFilter());
  // With TLS on, SIGHUP re-reads the certificate files (the usual daemon convention) instead of
  // stopping the process like every other shutdown signal Nest listens to.
  app.enableShutdownHooks(security ? Object.values(ShutdownSignal).filter((signal) => signal !== ShutdownSignal.SIGHUP) : undefined);
  SwaggerModule.setup('api/docs', app, () => buildOpenApiDocument(app, { publicUrl: config.http.publicUrl }), { jsonDocumentUrl: 'api/openapi.json' });
  return app;
}

/** HTTP_TRUST_PROXY as Express reads it: a hop count, true/false, or addresses/subnets. */
function trustProxyValue(raw: string): boolean | number | string {
  if (raw === 'true') return true;
  if (raw === 'false') return false;
  return /^\d+$/.test(raw) ? Number(raw) : raw;
}
