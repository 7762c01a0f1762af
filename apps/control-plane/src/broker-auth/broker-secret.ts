import { createHash, timingSafeEqual } from 'node:crypto';

/**
 * The broker proves itself with the shared secret, as `Authorization: Bearer <secret>` (EMQX:
 * `headers` of the HTTP source) or HTTP Basic with the secret as password (RFC 7617; the user
 * name is not checked). mosquitto-go-auth cannot set headers, but Go's HTTP client sends Basic
 * credentials written into the URL (`auth_opt_http_host broker:<secret>@control-plane`).
 */
export function presentedSecret(authorization: string | undefined): string | undefined {
  if (!authorization) return undefined;
  const bearer = /^Bearer\s+(\S+)$/i.exec(authorization);
  if (bearer) return bearer[1];
  const basic = /^Basic\s+([A-Za-z0-9+/=]+)$/i.exec(authorization);
  if (!basic) return undefined;
  const decoded = Buffer.from(basic[1]!, 'base64').toString('utf8');
  const colon = decoded.indexOf(':');
  return colon >= 0 ? decoded.slice(colon + 1) : undefined;
}

const digest = (text: string): Buffer => createHash('sha256').update(text, 'utf8').digest();

/**
 * Checks the presented secret in constant time (both sides hashed, so lengths do not leak);
 * the configured secret is hashed once, not per request.
 */
export class BrokerSecret {
  private readonly expected: Buffer;

  constructor(secret: string) {
    this.expected = digest(secret);
  }

  matches(authorization: string | undefined): boolean {
    const presented = presentedSecret(authorization);
    return presented !== undefined && timingSafeEqual(digest(presented), this.expected);
  }
}

export function brokerSecretMatches(authorization: string | undefined, secret: string): boolean {
  return new BrokerSecret(secret).matches(authorization);
}
