import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';

/**
 * Secrets (API keys, device secrets, enrollment tokens) are 256-bit random values, so a fast
 * sha256 is a sound way to store them: there is no low-entropy password to brute-force, and a
 * slow KDF would cost ~50 ms per device connect, which a fleet reconnecting at once cannot afford.
 */
export function generateSecret(prefix = ''): string {
  return prefix + randomBytes(32).toString('base64url');
}

export function hashSecret(secret: string): string {
  return createHash('sha256').update(secret).digest('hex');
}

export function secretMatches(secret: string, hash: string): boolean {
  const a = Buffer.from(hashSecret(secret), 'hex');
  const b = Buffer.from(hash, 'hex');
  return a.length === b.length && timingSafeEqual(a, b);
}
