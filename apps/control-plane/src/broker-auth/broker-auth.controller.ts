import type { IncomingMessage, ServerResponse } from 'node:http';
import { Inject, Injectable, Logger } from '@nestjs/common';
import type { z } from 'zod';
import { APP_CONFIG, type AppConfig } from '../infra/config/app-config.js';
import { MetricsService } from '../metrics/metrics.service.js';
import { type BrokerCheckKind, DenyReason, goAuthAction, type Verdict } from './broker-auth.decision.js';
import { BrokerAuthErrorCode, BrokerAuthException } from './broker-auth.exception.js';
import { emqxAuthnBody, emqxAuthzBody, goAuthAclBody, type GoAuthResponseMode, goAuthSuperuserBody, goAuthUserBody } from './broker-auth.schema.js';
import { BrokerAuthService } from './broker-auth.service.js';
import { BrokerSecret } from './broker-secret.js';

export const BROKER_AUTH_PATHS = {
  emqxAuthn: '/api/v1/broker-auth/emqx/authn',
  emqxAuthz: '/api/v1/broker-auth/emqx/authz',
  goAuthUser: '/api/v1/broker-auth/mosquitto/user',
  goAuthSuperuser: '/api/v1/broker-auth/mosquitto/superuser',
  goAuthAcl: '/api/v1/broker-auth/mosquitto/acl',
} as const;

/** Broker requests are a few hundred bytes (JSON or form). */
const BODY_LIMIT_BYTES = 16 * 1024;

type Answer = { status: number; json: unknown } | { status: number; text: string };

interface BrokerAuthRoute {
  kind: BrokerCheckKind;
  handle: (body: unknown, mode: GoAuthResponseMode) => Promise<Answer> | Answer;
}

/**
 * The HTTP endpoints an external broker calls for every CONNECT and ACL check (EMQX 5 HTTP
 * authenticator/authorizer, mosquitto-go-auth HTTP backend), in exactly the shapes those
 * brokers read.
 *
 * Served on the app's own HTTP server but ahead of Express (BrokerAuthModule puts `dispatch` in
 * front of it): brokers call these thousands of times a second, and the app's per-request
 * pipeline (router walk, JSON parser, global API-key guard, audit interceptor writing one database
 * row per state-changing call) costs several times the check itself. These requests are
 * authenticated by the broker secret instead, counted in fleetline_broker_auth_total and timed in
 * fleetline_http_request_duration_seconds under their path, like every route.
 */
@Injectable()
export class BrokerAuthController {
  private readonly logger = new Logger('BrokerAuth');
  private readonly secret: BrokerSecret | undefined;
  private readonly routes: ReadonlyMap<string, BrokerAuthRoute>;

  constructor(
    @Inject(APP_CONFIG) config: AppConfig,
    private readonly service: BrokerAuthService,
    private readonly metrics: MetricsService,
  ) {
    this.secret = config.brokerAuthSecret ? new BrokerSecret(config.brokerAuthSecret) : undefined;
    this.routes = new Map<string, BrokerAuthRoute>([
      [BROKER_AUTH_PATHS.emqxAuthn, { kind: 'connect', handle: (body) => this.emqxAuthn(body) }],
      [BROKER_AUTH_PATHS.emqxAuthz, { kind: 'request', handle: (body) => this.emqxAuthz(body) }],
      [BROKER_AUTH_PATHS.goAuthUser, { kind: 'connect', handle: (body, mode) => this.goAuthUser(body, mode) }],
      [BROKER_AUTH_PATHS.goAuthSuperuser, { kind: 'superuser', handle: (body, mode) => this.goAuthSuperuser(body, mode) }],
      [BROKER_AUTH_PATHS.goAuthAcl, { kind: 'request', handle: (body, mode) => this.goAuthAcl(body, mode) }],
    ]);
  }

  /** Answers the request if it is a broker check (POST to one of the paths) and says so; anything else is left to the app. */
  dispatch(req: IncomingMessage, res: ServerResponse): boolean {
    if (req.method !== 'POST') return false;
    const url = req.url ?? '';
    const q = url.indexOf('?');
    const path = q < 0 ? url : url.slice(0, q);
    const route = this.routes.get(path);
    if (!route) return false;
    const started = process.hrtime.bigint();
    res.once('close', () => {
      this.metrics.httpDuration.observe({ method: 'POST', route: path, status: String(res.statusCode) }, Number(process.hrtime.bigint() - started) / 1e9);
    });
    // mosquitto-go-auth `http_response_mode text`: selected with ?response=text on the URIs.
    const mode: GoAuthResponseMode = q >= 0 && new URLSearchParams(url.slice(q + 1)).get('response') === 'text' ? 'text' : 'json';
    this.serve(req, res, route, mode).catch((err: unknown) => {
      this.logger.error(`broker auth ${path}: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}`);
      if (!res.headersSent) write(res, { status: 500, json: { statusCode: 500, code: 'internal', message: 'internal error' } });
      else res.destroy();
    });
    return true;
  }

  private async serve(req: IncomingMessage, res: ServerResponse, route: BrokerAuthRoute, mode: GoAuthResponseMode): Promise<void> {
    let answer: Answer;
    try {
      if (!this.secret) throw new BrokerAuthException(BrokerAuthErrorCode.Disabled, 'broker authentication is off (set BROKER_AUTH_SECRET)');
      if (!this.secret.matches(req.headers.authorization)) {
        this.service.refused('request', DenyReason.BrokerSecret, `request without the broker secret from ${req.socket.remoteAddress ?? 'unknown'}`);
        res.setHeader('www-authenticate', 'Basic realm="fleetline-broker-auth"');
        throw new BrokerAuthException(BrokerAuthErrorCode.Unauthenticated, 'missing or wrong broker secret (Authorization: Bearer <BROKER_AUTH_SECRET>)');
      }
      answer = await route.handle(await bodyOf(req), mode);
    } catch (err) {
      if (!(err instanceof BrokerAuthException)) throw err;
      if (err.code === BrokerAuthErrorCode.InvalidInput) this.service.refused(route.kind, DenyReason.Malformed, err.message);
      answer = { status: err.status, json: { statusCode: err.status, code: err.code, message: err.message } };
      // Whatever is left of a refused body is not read: close rather than keep a half-read connection.
      if (!req.complete) res.setHeader('connection', 'close');
    }
    write(res, answer);
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

function actionOf(body: unknown): BrokerCheckKind {
  const action = typeof body === 'object' && body !== null ? (body as Record<string, unknown>)['action'] : undefined;
  return action === 'publish' || action === 'subscribe' ? action : 'request';
}

function issues(error: z.ZodError): string {
  return error.issues.map((i) => `${i.path.join('.') || '(body)'}: ${i.message}`).join('; ');
}

function write(res: ServerResponse, answer: Answer): void {
  const [type, text] = 'json' in answer ? ['application/json; charset=utf-8', JSON.stringify(answer.json)] : ['text/plain; charset=utf-8', answer.text];
  res.writeHead(answer.status, { 'content-type': type, 'content-length': Buffer.byteLength(text), 'cache-control': 'no-store' });
  res.end(text);
}

/**
 * The body, bounded: JSON (EMQX; go-auth `http_params_mode json`) or a form (go-auth `form`).
 * Anything that does not parse is `undefined`, which every schema refuses as malformed.
 */
async function bodyOf(req: IncomingMessage): Promise<unknown> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req as AsyncIterable<Buffer>) {
    size += chunk.length;
    if (size > BODY_LIMIT_BYTES) throw new BrokerAuthException(BrokerAuthErrorCode.InvalidInput, `body above ${BODY_LIMIT_BYTES} bytes`);
    chunks.push(chunk);
  }
  const text = Buffer.concat(chunks).toString('utf8');
  const type = req.headers['content-type'] ?? '';
  if (/^application\/x-www-form-urlencoded\b/i.test(type)) return Object.fromEntries(new URLSearchParams(text));
  if (/^application\/json\b/i.test(type)) {
    try {
      return JSON.parse(text) as unknown;
    } catch {
      return undefined;
    }
  }
  return undefined;
}
