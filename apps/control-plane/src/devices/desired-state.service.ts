import { Inject, Injectable, Logger } from '@nestjs/common';
import {
  type ArtifactRef,
  type Command,
  type DesiredModel,
  type ShadowDirective,
  commandSchema,
  encodePayload,
  selectVariant,
  topics,
  type VariantSelection,
} from '@fleetline/protocol';
import { MqttGateway } from '../infra/mqtt/mqtt-gateway.js';
import { capabilitiesOf } from './device-capabilities.js';
import { DeviceModelsRepository, type DesiredRow } from './device-models.repository.js';
import { ModelCatalog } from './model-catalog.js';
import { clearedMessage, desiredMessage } from './sync/desired-messages.js';

export interface Assignment {
  deviceId: string;
  model: string;
  version: string;
  rolloutId?: string | null;
  action?: DesiredModel['action'];
  /** Required with action shadow: what the device evaluates, and for how long. */
  shadow?: ShadowDirective;
  timeoutSeconds?: number;
  /**
   * The build to send. Absent: chosen here from the device's stored inventory (selectVariant).
   * null: none; the device is sent every build and chooses (or refuses) itself.
   */
  variant?: string | null;
}

export interface AssignmentResult {
  deviceId: string;
  model: string;
  revision: number;
  /** The build the device was sent (null: all of them, its agent chooses). */
  variant: string | null;
}

/**
 * Writes desired state (device_models) and tells the devices that are connected now, QoS 1, not
 * retained, on `fleet/v1/devices/{id}/desired/{model}`. The database is written first: it is the
 * source of truth, and a device that misses the message (offline, or connected to a replica that
 * just died) is sent the same state from the database when it says hello (sync/desired-sync.service.ts).
 * Two assignments racing to one device need no ordering here: the device keeps the higher revision.
 */
@Injectable()
export class DesiredStateService {
  private readonly logger = new Logger('DesiredState');

  constructor(
    private readonly repository: DeviceModelsRepository,
    @Inject(MqttGateway) private readonly gateway: MqttGateway,
    private readonly catalog: ModelCatalog,
  ) {}

  /**
   * The build of `artifacts` each device gets, by the protocol's one rule over its stored
   * inventory: one grouped query for the batch and one selectVariant per distinct inventory
   * projection. Devices without an inventory (or unknown) are not in the map.
   */
  async selectBuilds(deviceIds: readonly string[], artifacts: readonly ArtifactRef[]): Promise<Map<string, VariantSelection>> {
    const out = new Map<string, VariantSelection>();
    if (deviceIds.length === 0) return out;
    for (const group of await this.repository.compatibilityGroups(deviceIds)) {
      const selection = selectVariant(artifacts, capabilitiesOf(group.projection));
      for (const id of group.deviceIds) out.set(id, selection);
    }
    return out;
  }

  /**
   * Set-based: one upsert for the batch, then one publishMany. Unknown/decommissioned devices are
   * skipped (not returned). `beforePublish` sees the revisions once they are stored and before any
   * device is told (the rollout engine records them there).
   */
  async assign(assignments: Assignment[], beforePublish?: (assigned: AssignmentResult[]) => Promise<void>): Promise<AssignmentResult[]> {
    const unique = dedupe(assignments);
    if (unique.length === 0) return [];
    // Artifacts once per (model, version): a rollout wave assigns one version to thousands of devices.
    const artifacts = new Map<string, ArtifactRef[]>();
    for (const a of unique) {
      const key = `${a.model}@${a.version}`;
      if (!artifacts.has(key)) artifacts.set(key, await this.catalog.artifactRefs(a.model, a.version));
    }
    // Builds for the assignments that do not name one, once per (model, version) group.
    const chosen = new Map<string, string | null>();
    for (const [key, refs] of artifacts) {
      const open = unique.filter((a) => a.variant === undefined && `${a.model}@${a.version}` === key);
      if (open.length === 0) continue;
      const selections = await this.selectBuilds(
        open.map((a) => a.deviceId),
        refs,
      );
      for (const a of open) {
        const s = selections.get(a.deviceId);
        chosen.set(`${a.deviceId}\u0000${a.model}`, s?.ok ? s.variant : null);
      }
    }
    const rows: DesiredRow[] = unique.map((a) => ({
      deviceId: a.deviceId,
      model: a.model,
      version: a.version,
      rolloutId: a.rolloutId ?? null,
      action: a.action ?? 'install',
      shadow: a.action === 'shadow' ? (a.shadow ?? null) : null,
      timeoutSeconds: a.timeoutSeconds ?? null,
      variant: a.variant !== undefined ? a.variant : (chosen.get(`${a.deviceId}\u0000${a.model}`) ?? null),
    }));
    const assigned = await this.repository.upsertDesired(rows);
    const byKey = new Map(rows.map((r) => [`${r.deviceId}\u0000${r.model}`, r]));
    const results = assigned.map(({ deviceId, model, revision }) => ({ deviceId, model, revision, variant: byKey.get(`${deviceId}\u0000${model}`)!.variant }));
    if (beforePublish) await beforePublish(results);
    const messages = assigned.map((row) => {
      const r = byKey.get(`${row.deviceId}\u0000${row.model}`)!;
      return desiredMessage({ ...r, revision: row.revision, assignedAt: row.assignedAt }, artifacts.get(`${r.model}@${r.version}`)!);
    });
    try {
      await this.gateway.publishMany(messages);
    } catch (err) {
      this.logger.error(`publishing ${messages.length} desired states failed (the database has them; devices get them on their next hello): ${String(err)}`);
      throw err;
    }
    return results;
  }

  /** Clears the desired state of (device, model) pairs and tells connected devices, with the revision of the clear. */
  async unassign(pairs: { deviceId: string; model: string }[]): Promise<AssignmentResult[]> {
    const cleared = await this.repository.clearDesired(dedupe(pairs));
    await this.gateway.publishMany(cleared.map((c) => clearedMessage(c)));
    return cleared.map(({ deviceId, model, revision }) => ({ deviceId, model, revision, variant: null }));
  }

  /** Publishes one command (QoS1, not retained: a command is only meaningful to a connected device). */
  async sendCommand(deviceId: string, command: Command): Promise<void> {
    const parsed = commandSchema.parse(command);
    await this.gateway.publish(topics.commands(deviceId), encodePayload(parsed), { qos: 1, retain: false });
  }
}

/** Last entry per (device, model) wins: one upsert cannot touch a row twice. */
function dedupe<T extends { deviceId: string; model: string }>(items: T[]): T[] {
  const map = new Map<string, T>();
  for (const item of items) map.set(`${item.deviceId}\u0000${item.model}`, item);
  return [...map.values()];
}
