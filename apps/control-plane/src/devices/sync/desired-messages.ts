import {
  type ArtifactRef,
  type DesiredCleared,
  desiredClearedSchema,
  type DesiredModel,
  desiredModelSchema,
  encodePayload,
  PROTOCOL_VERSION,
  type ShadowDirective,
  type StoredReport,
  topics,
  variantOf,
} from '@fleetline/protocol';
import type { OutboundMessage } from '../../infra/mqtt/mqtt-gateway.js';

/** What device_models says one device should run for one model (or that nothing is assigned). */
export interface DesiredStateRow {
  deviceId: string;
  model: string;
  /** Null: unassigned. */
  version: string | null;
  revision: number;
  rolloutId: string | null;
  action: DesiredModel['action'] | null;
  /** The directive of action shadow (device_models.desired_shadow). */
  shadow?: ShadowDirective | null;
  timeoutSeconds: number | null;
  /** The build chosen for the device (device_models.desired_variant); null: none chosen. */
  variant: string | null;
  assignedAt: string;
  /** Hello answers only: the latest report stored for this device and model (StoredReport). */
  stored?: StoredReport;
}

/**
 * The one place a desired-state message is built, for an assignment and for a hello alike, so a
 * re-sent state is byte-for-byte what was sent first. QoS 1, never retained.
 */
export function desiredMessage(row: DesiredStateRow, artifacts: ArtifactRef[]): OutboundMessage {
  if (row.version === null) return clearedMessage(row);
  // A chosen build goes alone, so the device (an older agent too, which installs every artifact it
  // is sent) gets exactly its files. No build chosen (no inventory yet, or none fits): all of
  // them, and the agent picks with the same rule or refuses before downloading.
  const build = row.variant === null ? [] : artifacts.filter((a) => variantOf(a) === row.variant);
  const desired: DesiredModel = {
    v: PROTOCOL_VERSION,
    model: row.model,
    version: row.version,
    revision: row.revision,
    action: row.action ?? 'install',
    ...(row.action === 'shadow' && row.shadow ? { shadow: row.shadow } : {}),
    ...(row.rolloutId ? { rolloutId: row.rolloutId } : {}),
    ...(row.timeoutSeconds !== null ? { timeoutSeconds: row.timeoutSeconds } : {}),
    ...(build.length > 0 ? { variant: row.variant!, artifacts: build } : { artifacts }),
    assignedAt: row.assignedAt,
    ...(row.stored ? { stored: row.stored } : {}),
  };
  return { topic: topics.desired(row.deviceId, row.model), payload: encodePayload(desiredModelSchema.parse(desired)), qos: 1, retain: false };
}

/** "No longer assigned", with the revision of the unassignment (an older desired state cannot revive it). */
export function clearedMessage(row: Pick<DesiredStateRow, 'deviceId' | 'model' | 'revision' | 'assignedAt' | 'stored'>): OutboundMessage {
  const cleared: DesiredCleared = {
    v: PROTOCOL_VERSION,
    model: row.model,
    revision: row.revision,
    cleared: true,
    at: row.assignedAt,
    ...(row.stored ? { stored: row.stored } : {}),
  };
  return { topic: topics.desired(row.deviceId, row.model), payload: encodePayload(desiredClearedSchema.parse(cleared)), qos: 1, retain: false };
}
