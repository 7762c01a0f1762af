import { Inject, Injectable } from '@nestjs/common';
import type { Request, Response } from 'express';
import type { z } from 'zod';
import { APP_CONFIG, type AppConfig } from '../infra/config/app-config.js';
import { type BrokerCheckKind, DenyReason, goAuthAction, type Verdict } from './broker-auth.decision.js';
import { BrokerAuthErrorCode, BrokerAuthException } from './broker-auth.exception.js';
import {
  emqxAuthnBody,
  emqxAuthzBody,
  goAuthAclBody,
  goAuthResponseMode,
  type GoAuthResponseMode,
  goAuthSuperuserBody,
  goAuthUserBody,
} from './broker-auth.schema.js';
import { BrokerAuthService } from './broker-auth.service.js';
import { BrokerSecret } from './broker-secret.js';

export const BROKER_AUTH_PATHS = {
  emqxAuthn: '/api/v1/broker-auth/emqx/authn',
  emqxAuthz: '/api/v1/broker-auth/emqx/authz',
  goAuthUser: '/api/v1/broker-auth/mosquitto/user',
  goAuthSuperuser: '/api/v1/broker-auth/mosquitto/superuser',
  goAuthAcl: '/api/v1/broker-auth/mosquitto/acl',
} as const;

/** Form bodies (mosquitto-go-auth `http_params_mode form`) are a few hundred bytes. */
const FORM_LIMIT_BYTES = 16 * 1024;

type Answer = { status: number; json: unknown } | { status: number; text: string };

/** One broker-facing route: an express handler the module mounts as a POST-only Nest middleware. */
export interface BrokerAuthRoute {
  path: string;
  handler: (req: Request, res: Response) => void;
}

/**
 * The HTTP endpoints an external broker calls for every CONNECT and ACL check (EMQX 5 HTTP
 * authenticator/authorizer, mosquitto-go-auth HTTP backend), in exactly the shapes those
 * brokers read.
 *
 * Served as POST-bound middleware (BrokerAuthModule.configure), not through a Nest @Controller:
 * brokers call these thousands of times a second, and the global API-key guard and audit
 * interceptor (one database row per state-changing call) must not run for them; nor should each
 * request walk every controller route first. They are authenticated by the broker secret instead
 * and counted in fleetline_broker_auth_total; the request-timing middleware, registered before
 * them, still labels them by path (Express binds a method-bound middleware as a route).
 */
@Injectable()
export class BrokerAuthController {
  private readonly secret: BrokerSecret | undefined;

  constructor(
    @Inject(APP_CONFIG) config: AppConfig,
    private readonly service: BrokerAuthService,
  ) {
    this.secret = config.brokerAuthSecret ? new BrokerSecret(config.brokerAuthSecret) : undefined;
  }

  routes(): BrokerAuthRoute[] {
    const route = (path: string, kind: BrokerCheckKind, handle: (body: unknown, req: Request) => Promise<Answer> | Answer): BrokerAuthRoute => ({
      path,
      handler: (req: Request, res: Response) => {
        this.serve(req, res, kind, handle).catch((err: unknown) => {
          if (!res.headersSent) res.status(500).json({ statusCode: 500, code: 'internal', message: err instanceof Error ? err.message : 'internal error' });
        });
      },
    });
    return [
      route(BROKER_AUTH_PATHS.emqxAuthn, 'connect', (body) => this.emqxAuthn(body)),
      route(BROKER_AUTH_PATHS.emqxAuthz, 'request', (body) => this.emqxAuthz(body)),
      route(BROKER_AUTH_PATHS.goAuthUser, 'connect', (body, req) => this.goAuthUser(body, responseMode(req))),
      route(BROKER_AUTH_PATHS.goAuthSuperuser, 'superuser', (body, req) => this.goAuthSuperuser(body, responseMode(req))),
      route(BROKER_AUTH_PATHS.goAuthAcl, 'request', (body, req) => this.goAuthAcl(body, responseMode(req))),
    ];
  }

  private async serve(req: Request, res: Response, kind: BrokerCheckKind, handle: (body: unknown, req: Request) => Promise<Answer> | Answer): Promise<void> {
    let answer: Answer;
    try {
      if (!this.secret) throw new BrokerAuthException(BrokerAuthErrorCode.Disabled, 'broker authentication is off (set BROKER_AUTH_SECRET)');
      if (!this.secret.matches(req.headers.authorization)) {
        this.service.refused('request', DenyReason.BrokerSecret, `request without the broker secret from ${req.socket.remoteAddress ?? 'unknown'}`);
        res.setHeader('www-authenticate', 'Basic realm="fleetline-broker-auth"');
        throw new BrokerAuthException(BrokerAuthErrorCode.Unauthenticated, 'missing or wrong broker secret (Authorization: Bearer <BROKER_AUTH_SECRET>)');
      }
      answer = await handle(await bodyOf(req), req);
    } catch (err) {
      if (!(err instanceof BrokerAuthException)) throw err;
      if (err.code === BrokerAuthErrorCode.InvalidInput) this.service.refused(kind, DenyReason.Malformed, err.message);
      answer = { status: err.status, json: { statusCode: err.status, code: err.code, message: err.message } };
    }
    // Written directly rather than through res.json(): no ETag hashing or charset negotiation for
    // answers no cache may keep, on the hottest route of the app.
    const [type, text] = 'json' in answer ? ['application/json; charset=utf-8', JSON.stringify(answer.json)] : ['text/plain; charset=utf-8', answer.text];
    res.writeHead(answer.status, { 'content-type': type, 'content-length': Buffer.byteLength(text), 'cache-control': 'no-store' });
    res.end(text);
  }

  // ---- EMQX 5 ------------------------------------------------------------------------------------

  /** Always 200 with a result: a 4xx/5xx would mean "ignore" to EMQX, and a refusal must not fall through the chain. */
  private async emqxAuthn(body: unknown): Promise<Answer> {
    const parsed = emqxAuthnBody.safeParse(body);
    const verdict = parsed.success
      ? await this.service.connect({ clientId: parsed.data.clientid, username: parsed.data.username, password: parsed.data.password })
      : this.service.refused('connect', DenyReason.Malformed, issues(parsed.error));
    return { status: 200, json: { result: verdict.allow ? 'allow' : 'deny', is_superuser: verdict.allow && verdict.superuser } };
  }

  private async emqxAuthz(body: unknown): Promise<Answer> {
    const parsed = emqxAuthzBody.safeParse(body);
    const verdict = parsed.success
      ? await this.service.access({
          clientId: parsed.data.clientid,
          username: parsed.data.username,
          topic: parsed.data.topic,
          action: parsed.data.action,
          retain: parsed.data.retain,
        })
      : this.service.refused(actionOf(body), DenyReason.Malformed, issues(parsed.error));
    return { status: 200, json: { result: verdict.allow ? 'allow' : 'deny' } };
  }

  // ---- mosquitto-go-auth ---------------------------------------------------------------------------

  private async goAuthUser(body: unknown, mode: GoAuthResponseMode): Promise<Answer> {
    const parsed = goAuthUserBody.safeParse(body);
    const verdict = parsed.success
      ? await this.service.connect({ clientId: parsed.data.clientid, username: parsed.data.username, password: parsed.data.password })
      : this.service.refused('connect', DenyReason.Malformed, issues(parsed.error));
    return goAuthAnswer(verdict, mode);
  }

  private goAuthSuperuser(body: unknown, mode: GoAuthResponseMode): Answer {
    const parsed = goAuthSuperuserBody.safeParse(body);
    const verdict = parsed.success
      ? this.service.superuser(parsed.data.username)
      : this.service.refused('superuser', DenyReason.Malformed, issues(parsed.error));
    return goAuthAnswer(verdict, mode);
  }

  private async goAuthAcl(body: unknown, mode: GoAuthResponseMode): Promise<Answer> {
    const parsed = goAuthAclBody.safeParse(body);
    if (!parsed.success) return goAuthAnswer(this.service.refused('request', DenyReason.Malformed, issues(parsed.error)), mode);
    const { username, clientid, topic, acc } = parsed.data;
    const action = goAuthAction(acc);
    if (action === undefined) return goAuthAnswer(this.service.refused('request', DenyReason.Malformed, `unknown acc ${acc}`), mode);
    if (action === 'readwrite') {
      // Mosquitto asks for read|write only for legacy ACL checks; a device topic is never both.
      return goAuthAnswer(this.service.refused('request', DenyReason.AccessNotAllowed, `readwrite access to ${topic}`), mode);
    }
    // go-auth does not pass the retain flag: Mosquitto's `retain_available false` refuses retained messages broker-wide.
    return goAuthAnswer(await this.service.access({ clientId: clientid, username, topic, action }), mode);
  }
}

/**
 * mosquitto-go-auth reads any non-2xx status as "no" in every response mode; `json` mode also
 * wants `{"ok":true}` and `text` mode the body "ok" (select it with `?response=text` on the URI).
 * 503 when the credential store is down: go-auth logs it as an error rather than a refusal.
 */
function goAuthAnswer(verdict: Verdict, mode: GoAuthResponseMode): Answer {
  if (mode === 'text') return verdict.allow ? { status: 200, text: 'ok' } : { status: statusOf(verdict), text: verdict.reason };
  return verdict.allow ? { status: 200, json: { ok: true, error: '' } } : { status: statusOf(verdict), json: { ok: false, error: verdict.reason } };
}

function statusOf(verdict: Verdict & { allow: false }): number {
  return verdict.reason === DenyReason.Unavailable ? 503 : 403;
}

function responseMode(req: Request): GoAuthResponseMode {
  const parsed = goAuthResponseMode.safeParse(req.query['response']);
  return parsed.success ? parsed.data : 'json';
}

function actionOf(body: unknown): BrokerCheckKind {
  const action = typeof body === 'object' && body !== null ? (body as Record<string, unknown>)['action'] : undefined;
  return action === 'publish' || action === 'subscribe' ? action : 'request';
}

function issues(error: z.ZodError): string {
  return error.issues.map((i) => `${i.path.join('.') || '(body)'}: ${i.message}`).join('; ');
}

/**
 * JSON bodies are already parsed by the app's JSON parser; form bodies (go-auth `http_params_mode
 * form`) are read here, bounded, so the app needs no form parser of its own.
 */
async function bodyOf(req: Request): Promise<unknown> {
  if (req.body !== undefined) return req.body as unknown;
  const type = req.headers['content-type'] ?? '';
  if (!/^application\/x-www-form-urlencoded\b/i.test(type)) return {};
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req as AsyncIterable<Buffer>) {
    size += chunk.length;
    if (size > FORM_LIMIT_BYTES) throw new BrokerAuthException(BrokerAuthErrorCode.InvalidInput, `form body above ${FORM_LIMIT_BYTES} bytes`);
    chunks.push(chunk);
  }
  return Object.fromEntries(new URLSearchParams(Buffer.concat(chunks).toString('utf8')));
}
