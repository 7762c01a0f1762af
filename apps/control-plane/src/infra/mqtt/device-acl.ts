import { DEVICE_PUBLISH_KINDS, DEVICE_SUBSCRIBE_KINDS, parseDeviceFilter, parseDeviceTopic } from '@fleetline/protocol';

/**
 * Per-device topic rules of the embedded broker, as pure functions so every denial is unit-tested.
 * A device (client id == device id, bound at authentication) may:
 *  - publish only `reported`, `inventory`, `presence`, `telemetry` under its own id;
 *  - retain nothing: the protocol keeps no state in the broker (the database is the source of
 *    truth), so a retained message from a device could only plant state for others to read;
 *  - subscribe only to its own `desired/+` (or one model) and `commands`; no `#`, no other
 *    device, no `$SYS` (MQTT 3.1.1 §4.7.2: `$` topics are broker-specific);
 *  - register as last will only its own `presence`, not retained.
 */
export type AclDecision = { allowed: true } | { allowed: false; reason: string };

const allow: AclDecision = { allowed: true };
const deny = (reason: string): AclDecision => ({ allowed: false, reason });

export function authorizeDevicePublish(deviceId: string, topic: string, retain: boolean): AclDecision {
  const parsed = parseDeviceTopic(topic);
  if (!parsed) return deny(`not a device topic: ${topic}`);
  if (parsed.deviceId !== deviceId) return deny(`topic of another device: ${topic}`);
  if (!DEVICE_PUBLISH_KINDS.includes(parsed.kind)) return deny(`devices may not publish on ${parsed.kind}`);
  if (retain) return deny(`retained messages are not allowed (${parsed.kind})`);
  return allow;
}

export function authorizeDeviceSubscribe(deviceId: string, filter: string): AclDecision {
  if (filter.startsWith('$')) return deny('broker topics ($SYS, $share) are not available to devices');
  const parsed = parseDeviceFilter(filter);
  if (!parsed) return deny(`filter not allowed: ${filter}`);
  if (parsed.deviceId !== deviceId) return deny(`filter of another device: ${filter}`);
  if (!DEVICE_SUBSCRIBE_KINDS.includes(parsed.kind)) return deny(`devices may not subscribe to ${parsed.kind}`);
  return allow;
}

export function authorizeDeviceWill(deviceId: string, topic: string, retain = false): AclDecision {
  const parsed = parseDeviceTopic(topic);
  if (!parsed || parsed.deviceId !== deviceId || parsed.kind !== 'presence') return deny(`last will allowed only on the device's own presence topic`);
  // A retained will would leave one retained message per device in the broker (MQTT 3.1.1 §3.1.2.7).
  if (retain) return deny('a last will must not be retained');
  return allow;
}
