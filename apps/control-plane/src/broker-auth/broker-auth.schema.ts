import { z } from 'zod';

/**
 * The bodies brokers send, as the operator configures them (docs/deployment.md has the exact
 * templates). Unknown fields are ignored: an operator may add `${peerhost}` and the like.
 *
 * EMQX 5 renders every `${placeholder}` inside a JSON string, so `qos` arrives as "1" and
 * `retain` as "true"; a missing value renders as "". mosquitto-go-auth sends JSON (`acc` a number)
 * or, with `http_params_mode form`, a form body where every value is a string.
 */
const text = z.string().max(1024);
/** An EMQX placeholder with no value renders as "": treated as absent. */
const optionalText = z.preprocess((v) => (v === '' || v === null ? undefined : v), text.optional());

const retainFlag = z.preprocess((v) => {
  if (v === 'true' || v === true) return true;
  if (v === 'false' || v === false) return false;
  return v === '' || v === null ? undefined : v;
}, z.boolean().optional());

const qosLevel = z.preprocess((v) => (v === '' || v === null ? undefined : typeof v === 'string' ? Number(v) : v), z.number().int().min(0).max(2).optional());

/** EMQX 5 HTTP authenticator: `{"clientid":"${clientid}","username":"${username}","password":"${password}"}`. */
export const emqxAuthnBody = z.object({
  clientid: optionalText,
  username: optionalText,
  password: optionalText,
});
export type EmqxAuthnBody = z.infer<typeof emqxAuthnBody>;

/**
 * EMQX 5 HTTP authorizer: `{"clientid":..,"username":..,"topic":"${topic}","action":"${action}",
 * "qos":"${qos}","retain":"${retain}"}`. `retain` is required for publish: without it a device
 * could plant a retained message unseen.
 */
export const emqxAuthzBody = z
  .object({
    clientid: optionalText,
    username: text.min(1),
    topic: text.min(1),
    action: z.enum(['publish', 'subscribe']),
    qos: qosLevel,
    retain: retainFlag,
  })
  .refine((b) => b.action !== 'publish' || b.retain !== undefined, { message: 'retain is required for publish (add "retain": "${retain}")', path: ['retain'] });
export type EmqxAuthzBody = z.infer<typeof emqxAuthzBody>;

/** mosquitto-go-auth HTTP backend, `http_getuser_uri`. */
export const goAuthUserBody = z.object({
  username: text.min(1),
  password: text,
  clientid: text,
});
export type GoAuthUserBody = z.infer<typeof goAuthUserBody>;

/** mosquitto-go-auth HTTP backend, `http_superuser_uri`. */
export const goAuthSuperuserBody = z.object({ username: text.min(1) });
export type GoAuthSuperuserBody = z.infer<typeof goAuthSuperuserBody>;

/** mosquitto-go-auth HTTP backend, `http_aclcheck_uri`; `acc` is a string in form mode. */
export const goAuthAclBody = z.object({
  username: text.min(1),
  clientid: text,
  topic: text.min(1),
  acc: z.preprocess((v) => (typeof v === 'string' && /^\d+$/.test(v) ? Number(v) : v), z.number().int()),
});
export type GoAuthAclBody = z.infer<typeof goAuthAclBody>;

/** mosquitto-go-auth `http_response_mode`: status and json are answered alike; text needs a plain "ok". */
export const goAuthResponseMode = z.enum(['status', 'json', 'text']).default('json');
export type GoAuthResponseMode = z.infer<typeof goAuthResponseMode>;
