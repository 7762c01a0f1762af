import { z } from 'zod';
import { deviceIdSchema } from './messages.js';
import { inventorySchema } from './messages.js';

/**
 * HTTP contract between the agent and the control plane for enrollment
 * (`POST /api/v1/enroll`) and for pre-registration (`POST /api/v1/devices`), which both
 * answer with DeviceCredentials. The secret is shown exactly once.
 */
export const tagsSchema = z
  .record(z.string().regex(/^[A-Za-z0-9._-]{1,64}$/, 'tag keys: 1-64 chars of [A-Za-z0-9._-]'), z.string().max(256))
  .refine((t) => Object.keys(t).length <= 64, 'at most 64 tags');
export type Tags = z.infer<typeof tagsSchema>;

/**
 * Out-of-band TUF root. An enrollment token as the control plane hands it out is
 * `<secret>.<rootPin>`: the secret, then the first ROOT_PIN_HEX_DIGITS hex digits of the sha256 of
 * the root.json that was current when the token was made. The agent refuses an enrollment answer
 * whose root does not hash to the pin, so the network path the device enrolls over cannot choose
 * the keys the device will trust. Only the secret authenticates; the pin is not secret.
 */
export const ROOT_PIN_HEX_DIGITS = 32;
/** A root pin: 32 to 64 lower-case hex digits of sha256(root.json), a prefix of the full hash. */
export const rootPinSchema = z.string().regex(/^[0-9a-f]{32,64}$/, 'root sha256: 32-64 lower-case hex digits');

export interface ParsedEnrollmentToken {
  secret: string;
  rootPin?: string;
}

/** The token string an operator copies: `<secret>.<first 32 hex digits of sha256(root.json)>`. */
export function formatEnrollmentToken(secret: string, rootSha256: string): string {
  return `${secret}.${rootSha256.slice(0, ROOT_PIN_HEX_DIGITS)}`;
}

/**
 * Splits a token into its secret and its root pin. A token without a pin (made before pins, or
 * typed by hand) is all secret. Secrets are base64url, so they never contain a `.`. Pure.
 */
export function parseEnrollmentToken(token: string): ParsedEnrollmentToken {
  const dot = token.lastIndexOf('.');
  if (dot > 0) {
    const pin = token.slice(dot + 1);
    if (rootPinSchema.safeParse(pin).success) return { secret: token.slice(0, dot), rootPin: pin };
  }
  return { secret: token };
}

/** True when the lower-case hex sha256 `rootSha256` starts with `pin`. */
export function rootMatchesPin(rootSha256: string, pin: string): boolean {
  return pin.length >= ROOT_PIN_HEX_DIGITS && rootSha256.toLowerCase().startsWith(pin.toLowerCase());
}

export const enrollRequestSchema = z.object({
  token: z.string().min(16).max(256),
  /**
   * The root the device will pin (`--root-sha256`, or the pin of its token). The control plane
   * answers with that root version (the device then walks the root chain forward on its first
   * update, TUF §5.3), and refuses the enrollment, before creating anything, when it has no root
   * with that hash.
   */
  rootSha256: rootPinSchema.optional(),
  id: deviceIdSchema.optional(),
  name: z.string().max(256).optional(),
  tags: tagsSchema.optional(),
  inventory: inventorySchema.optional(),
});
export type EnrollRequest = z.infer<typeof enrollRequestSchema>;

export const deviceCredentialsSchema = z.object({
  deviceId: deviceIdSchema,
  /** Random secret; the server keeps only its hash. Used as MQTT password and HTTP Basic password. */
  secret: z.string().min(32),
  mqtt: z.object({
    /** Broker URL the device should connect to, e.g. mqtt://host:1883. */
    url: z.string().min(1),
    /**
     * Every broker endpoint the device may use (several control-plane replicas, or a broker
     * cluster's nodes), `url` first. The device starts at a place chosen by its id, so a fleet
     * spreads over them, and moves to the next one when a connection attempt fails.
     */
    urls: z.array(z.string().min(1)).min(1).max(64).optional(),
    clientId: z.string().min(1),
    username: z.string().min(1),
  }),
  http: z.object({
    /** Base URL of the control plane, e.g. http://host:3000. */
    baseUrl: z.string().min(1),
  }),
  tuf: z.object({
    /** Trusted root metadata (JSON text) the device pins at enrollment. */
    root: z.string().min(2),
    metadataUrl: z.string().min(1),
    targetsUrl: z.string().min(1),
  }),
  /**
   * Present when the control plane serves TLS with a CA bundle (TLS_CA_FILE): the PEM certificates
   * the device verifies the control plane with, on HTTPS and on mqtts:// / wss://. An agent given
   * its own CA at enrollment (--ca-file) keeps that one. Older agents ignore the field.
   */
  tls: z
    .object({
      ca: z.string().min(1).max(65_536),
    })
    .optional(),
  protocolVersion: z.number().int(),
});
export type DeviceCredentials = z.infer<typeof deviceCredentialsSchema>;
