import { timingSafeEqual, createHash } from 'node:crypto';
import { isValidDeviceId, parseDeviceFilter, parseDeviceTopic } from '@fleetline/protocol';
import { authorizeDevicePublish, authorizeDeviceSubscribe } from '../infra/mqtt/device-acl.js';

/**
 * What an external broker asks, decided by pure functions: the same rules as the embedded
 * broker (device-acl.ts), plus the broker's own control-plane user. The effects (the credential
 * lookup, the liveness lookup) happen in BrokerAuthService; everything decided here is unit-tested.
 */

/** Operations a broker asks about. `read` is Mosquitto's per-message delivery check (MOSQ_ACL_READ). */
export type BrokerCheckKind = 'connect' | 'superuser' | 'publish' | 'subscribe' | 'read' | 'unsubscribe' | 'request';
export const BROKER_CHECK_KINDS: readonly BrokerCheckKind[] = ['connect', 'superuser', 'publish', 'subscribe', 'read', 'unsubscribe', 'request'];

/** Why a check was refused. A closed set: these are metric label values. */
export enum DenyReason {
  /** The request itself did not have the documented shape (placeholders missing, unknown acc). */
  Malformed = 'malformed',
  /** The broker did not present BROKER_AUTH_SECRET. */
  BrokerSecret = 'broker-secret',
  ClientIdMismatch = 'client-id-mismatch',
  InvalidDeviceId = 'invalid-device-id',
  /** A device id naming the control plane's own broker user or its client ids. */
  ReservedId = 'reserved-id',
  /** Unknown device, wrong secret or decommissioned device: the credential store does not tell them apart. */
  BadCredentials = 'bad-credentials',
  ControlPlanePassword = 'control-plane-password',
  NotSuperuser = 'not-superuser',
  /** An ACL check for a device that is not (or no longer) live. */
  UnknownDevice = 'unknown-device',
  ForeignTopic = 'foreign-topic',
  Wildcard = 'wildcard',
  BrokerTopic = 'broker-topic',
  SharedSubscription = 'shared-subscription',
  Retain = 'retain',
  TopicNotAllowed = 'topic-not-allowed',
  /** Mosquitto's combined read|write access: no device topic is both. */
  AccessNotAllowed = 'access-not-allowed',
  /** The credential store could not be asked; fail closed. */
  Unavailable = 'unavailable',
}
export const DENY_REASONS: readonly DenyReason[] = Object.values(DenyReason);

export type Verdict = { allow: true; superuser: boolean } | { allow: false; reason: DenyReason; detail: string };

export const allowVerdict = (superuser = false): Verdict => ({ allow: true, superuser });
export const denyVerdict = (reason: DenyReason, detail: string): Verdict => ({ allow: false, reason, detail });

/** The control plane's own broker account (MQTT_USERNAME / MQTT_PASSWORD), when it has one. */
export interface ControlPlaneAccount {
  username: string;
  password: string;
}

/** Prefix of the client ids the control plane connects with (ExternalBrokerGateway). */
export const CONTROL_PLANE_CLIENT_ID_PREFIX = 'fleetline-cp-';

/** Constant-time string equality: both sides are hashed first, so lengths do not leak either. */
export function constantTimeEquals(a: string, b: string): boolean {
  const ha = createHash('sha256').update(a, 'utf8').digest();
  const hb = createHash('sha256').update(b, 'utf8').digest();
  return timingSafeEqual(ha, hb);
}

export interface ConnectRequest {
  clientId?: string;
  username?: string;
  password?: string;
}

/**
 * What a CONNECT needs: the control plane's own account is decided here (constant-time password
 * comparison); a device still needs its secret checked against the credential store.
 */
export type ConnectPlan = { kind: 'decided'; verdict: Verdict } | { kind: 'verify-device'; deviceId: string; secret: string };

export function planConnect(request: ConnectRequest, account: ControlPlaneAccount | undefined): ConnectPlan {
  const { clientId, username, password } = request;
  const decided = (verdict: Verdict): ConnectPlan => ({ kind: 'decided', verdict });
  if (username === undefined || username === '') return decided(denyVerdict(DenyReason.Malformed, 'no username'));
  if (account && username === account.username) {
    // Only with its own password; its client ids are random, so no client-id binding here.
    if (password !== undefined && constantTimeEquals(password, account.password)) return decided(allowVerdict(true));
    return decided(denyVerdict(DenyReason.ControlPlanePassword, 'wrong password for the control-plane user'));
  }
  // A device: client id = username = device id, the binding that makes per-device ACLs sound.
  if (clientId === undefined || clientId !== username)
    return decided(denyVerdict(DenyReason.ClientIdMismatch, `client id must equal the username (${username})`));
  if (!isValidDeviceId(username)) return decided(denyVerdict(DenyReason.InvalidDeviceId, 'username is not a device id'));
  if (isReservedId(username, account)) return decided(denyVerdict(DenyReason.ReservedId, `${username} is reserved for the control plane`));
  if (password === undefined || password === '') return decided(denyVerdict(DenyReason.BadCredentials, `no password for ${username}`));
  return { kind: 'verify-device', deviceId: username, secret: password };
}

/**
 * A device may never take the control plane's name, nor one of its client ids (an MQTT session
 * takeover, §3.1.4, would disconnect a replica).
 */
function isReservedId(id: string, account: ControlPlaneAccount | undefined): boolean {
  return (account !== undefined && id === account.username) || id.startsWith(CONTROL_PLANE_CLIENT_ID_PREFIX);
}

export function decideSuperuser(username: string, account: ControlPlaneAccount | undefined): Verdict {
  // The broker asks this only for a user it has already authenticated (with the password above).
  if (account && username === account.username) return allowVerdict(true);
  return denyVerdict(DenyReason.NotSuperuser, `${username} is not a superuser`);
}

export type AccessAction = 'publish' | 'subscribe' | 'read' | 'unsubscribe';

export interface AccessRequest {
  clientId?: string;
  username: string;
  topic: string;
  action: AccessAction;
  /** Undefined when the broker does not say (mosquitto-go-auth): its own retain_available setting decides. */
  retain?: boolean;
}

/**
 * An ACL check. `allow` for a device is still subject to the device being live (the caller
 * checks); the control plane's account may do anything (it is the superuser).
 */
export type AccessPlan = { kind: 'decided'; verdict: Verdict } | { kind: 'check-live'; deviceId: string };

export function planAccess(request: AccessRequest, account: ControlPlaneAccount | undefined): AccessPlan {
  const decided = (verdict: Verdict): AccessPlan => ({ kind: 'decided', verdict });
  const { username, clientId, topic, action } = request;
  if (account && username === account.username) return decided(allowVerdict(true));
  if (clientId !== undefined && clientId !== username)
    return decided(denyVerdict(DenyReason.ClientIdMismatch, `client id must equal the username (${username})`));
  if (!isValidDeviceId(username)) return decided(denyVerdict(DenyReason.InvalidDeviceId, 'username is not a device id'));
  if (isReservedId(username, account)) return decided(denyVerdict(DenyReason.ReservedId, `${username} is reserved for the control plane`));
  const decision =
    action === 'publish'
      ? authorizeDevicePublish(username, topic, request.retain ?? false)
      : // What a device may receive (read) or drop (unsubscribe) is exactly what it may subscribe to.
        authorizeDeviceSubscribe(username, topic);
  if (!decision.allowed) return decided(denyVerdict(classifyTopicDenial(username, request), decision.reason));
  return { kind: 'check-live', deviceId: username };
}

/** The bounded label of a refused topic, from the request itself rather than the ACL's message text. */
export function classifyTopicDenial(deviceId: string, request: Pick<AccessRequest, 'topic' | 'action' | 'retain'>): DenyReason {
  const { topic, action } = request;
  if (topic.startsWith('$share/')) return DenyReason.SharedSubscription;
  if (topic.startsWith('$')) return DenyReason.BrokerTopic;
  const parsed = action === 'publish' ? parseDeviceTopic(topic) : parseDeviceFilter(topic);
  if (parsed && parsed.deviceId !== deviceId) return DenyReason.ForeignTopic;
  if (topic.includes('+') || topic.includes('#')) return DenyReason.Wildcard;
  if (action === 'publish' && request.retain === true && authorizeDevicePublish(deviceId, topic, false).allowed) return DenyReason.Retain;
  return DenyReason.TopicNotAllowed;
}

/** mosquitto-go-auth's `acc` values (mosquitto_plugin.h: MOSQ_ACL_READ 1, WRITE 2, SUBSCRIBE 4, UNSUBSCRIBE 8). */
export function goAuthAction(acc: number): AccessAction | 'readwrite' | undefined {
  switch (acc) {
    case 1:
      return 'read';
    case 2:
      return 'publish';
    case 3:
      return 'readwrite';
    case 4:
      return 'subscribe';
    case 8:
      return 'unsubscribe';
    default:
      return undefined;
  }
}
