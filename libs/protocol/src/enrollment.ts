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

export const enrollRequestSchema = z.object({
  token: z.string().min(16).max(256),
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
