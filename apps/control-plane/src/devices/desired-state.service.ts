import { Inject, Injectable, Logger } from '@nestjs/common';
import { type ArtifactRef, type Command, commandSchema, encodePayload, topics } from '@fleetline/protocol';
import { MqttGateway } from '../infra/mqtt/mqtt-gateway.js';
import { DeviceModelsRepository, type DesiredRow } from './device-models.repository.js';
import { ModelCatalog } from './model-catalog.js';
import { clearedMessage, desiredMessage } from './sync/desired-messages.js';

export interface Assignment {
  deviceId: string;
  model: string;
  version: string;
  rolloutId?: string | null;
  action?: 'install' | 'download-only';
  timeoutSeconds?: number;
}

export interface AssignmentResult {
  deviceId: string;
  model: string;
  revision: number;
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
    const rows: DesiredRow[] = unique.map((a) => ({
      deviceId: a.deviceId,
      model: a.model,
      version: a.version,
      rolloutId: a.rolloutId ?? null,
      action: a.action ?? 'install',
      timeoutSeconds: a.timeoutSeconds ?? null,
    }));
    const assigned = await this.repository.upsertDesired(rows);
    const results = assigned.map(({ deviceId, model, revision }) => ({ deviceId, model, revision }));
    if (beforePublish) await beforePublish(results);
    const byKey = new Map(rows.map((r) => [`${r.deviceId}\u0000${r.model}`, r]));
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
    return cleared.map(({ deviceId, model, revision }) => ({ deviceId, model, revision }));
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
