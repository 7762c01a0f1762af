import { TOPIC_ROOT } from './version.js';

/**
 * Topic layout (docs/protocol.md is the reference for QoS rules). Nothing is ever retained: the
 * control plane's database is the source of truth, and a device is sent its desired state when it
 * says hello (presence online), so no subscription costs a scan of a broker's retained store.
 *
 *   fleet/v1/devices/{deviceId}/desired/{model}   control plane -> device, QoS1
 *   fleet/v1/devices/{deviceId}/commands          control plane -> device, QoS1
 *   fleet/v1/devices/{deviceId}/reported          device -> control plane, QoS1
 *   fleet/v1/devices/{deviceId}/inventory         device -> control plane, QoS1
 *   fleet/v1/devices/{deviceId}/presence          device -> control plane, QoS1 (online = sync request; offline = last will)
 *   fleet/v1/devices/{deviceId}/telemetry         device -> control plane, QoS1
 */
export const DEVICE_TOPIC_KINDS = ['desired', 'commands', 'reported', 'inventory', 'presence', 'telemetry'] as const;
export type DeviceTopicKind = (typeof DEVICE_TOPIC_KINDS)[number];

/** Kinds a device may publish on (its own id only). */
export const DEVICE_PUBLISH_KINDS: readonly DeviceTopicKind[] = ['reported', 'inventory', 'presence', 'telemetry'];
/** Kinds a device may subscribe to (its own id only). */
export const DEVICE_SUBSCRIBE_KINDS: readonly DeviceTopicKind[] = ['desired', 'commands'];

/**
 * Device ids appear inside topic names, so they must not contain MQTT wildcards or separators
 * (MQTT 3.1.1 §4.7.1: '+', '#' and '/' are significant). Kept to a conservative charset.
 */
export const DEVICE_ID_PATTERN = /^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$/;
/** Model names appear in topics and TUF target paths: same rule, lower case. */
export const MODEL_NAME_PATTERN = /^[a-z0-9][a-z0-9._-]{0,63}$/;

export function isValidDeviceId(id: string): boolean {
  return DEVICE_ID_PATTERN.test(id);
}

export function isValidModelName(name: string): boolean {
  return MODEL_NAME_PATTERN.test(name);
}

const devicesRoot = `${TOPIC_ROOT}/devices`;

export const topics = {
  desired: (deviceId: string, model: string): string => `${devicesRoot}/${deviceId}/desired/${model}`,
  /** What a device subscribes to for all of its models. */
  desiredAll: (deviceId: string): string => `${devicesRoot}/${deviceId}/desired/+`,
  commands: (deviceId: string): string => `${devicesRoot}/${deviceId}/commands`,
  reported: (deviceId: string): string => `${devicesRoot}/${deviceId}/reported`,
  inventory: (deviceId: string): string => `${devicesRoot}/${deviceId}/inventory`,
  presence: (deviceId: string): string => `${devicesRoot}/${deviceId}/presence`,
  telemetry: (deviceId: string): string => `${devicesRoot}/${deviceId}/telemetry`,
  /** Control-plane subscription filter for one device->server kind across the fleet. */
  fleetFilter: (kind: 'reported' | 'inventory' | 'presence' | 'telemetry'): string => `${devicesRoot}/+/${kind}`,
} as const;

export interface ParsedDeviceTopic {
  deviceId: string;
  kind: DeviceTopicKind;
  /** Set for `desired` topics only. */
  model?: string;
}

/**
 * Parses a concrete (wildcard-free) device topic. Returns undefined for anything that is not
 * exactly one of the layouts above, so callers can refuse it.
 */
export function parseDeviceTopic(topic: string): ParsedDeviceTopic | undefined {
  const parts = topic.split('/');
  if (parts.length < 5 || parts[0] !== 'fleet' || parts[1] !== 'v1' || parts[2] !== 'devices') return undefined;
  const deviceId = parts[3]!;
  const kind = parts[4] as DeviceTopicKind;
  if (!isValidDeviceId(deviceId) || !DEVICE_TOPIC_KINDS.includes(kind)) return undefined;
  if (kind === 'desired') {
    if (parts.length !== 6 || !isValidModelName(parts[5]!)) return undefined;
    return { deviceId, kind, model: parts[5]! };
  }
  if (parts.length !== 5) return undefined;
  return { deviceId, kind };
}

/**
 * Parses a subscription filter a device asks for. A device may only use the single-level
 * wildcard in the model position of its own desired topic (MQTT 3.1.1 §4.7.1.3); everything
 * else must be a concrete topic of its own.
 */
export function parseDeviceFilter(filter: string): ParsedDeviceTopic | undefined {
  const parts = filter.split('/');
  if (parts.length === 6 && parts[4] === 'desired' && parts[5] === '+') {
    const parsed = parseDeviceTopic(parts.slice(0, 5).concat('x').join('/'));
    return parsed ? { deviceId: parsed.deviceId, kind: 'desired' } : undefined;
  }
  if (filter.includes('+') || filter.includes('#')) return undefined;
  return parseDeviceTopic(filter);
}
