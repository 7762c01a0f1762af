import { Inject, Injectable, Logger } from '@nestjs/common';
import {
  type ArtifactRef,
  type Command,
  commandSchema,
  type DesiredModel,
  desiredModelSchema,
  encodePayload,
  PROTOCOL_VERSION,
  topics,
} from '@fleetline/protocol';
import { MqttGateway, type OutboundMessage } from '../infra/mqtt/mqtt-gateway.js';
import { DeviceModelsRepository, type DesiredRow } from './device-models.repository.js';
import { ModelCatalog } from './model-catalog.js';

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
 * Writes desired state (device_models) and publishes it retained, QoS1, on
 * `fleet/v1/devices/{id}/desired/{model}`, so a device that is offline now gets it on its next
 * subscribe (MQTT 3.1.1 §3.3.1.3). The database is written first: it is the source of truth,
 * and a lost publish is repaired by assigning again (the rollout engine re-publishes).
 *
 * Calls are serialised in this process so that the publish order of two assignments to the same
 * device and model follows their revision order (the retained message must be the newest).
 */
@Injectable()
export class DesiredStateService {
  private readonly logger = new Logger('DesiredState');
  private tail: Promise<unknown> = Promise.resolve();

  constructor(
    private readonly repository: DeviceModelsRepository,
    @Inject(MqttGateway) private readonly gateway: MqttGateway,
    private readonly catalog: ModelCatalog,
  ) {}

  /** Set-based: one upsert for the batch, then one publishMany. Unknown/decommissioned devices are skipped (not returned). */
  assign(assignments: Assignment[]): Promise<AssignmentResult[]> {
    return this.serialise(() => this.doAssign(assignments));
  }

  /** Clears the desired state of (device, model) pairs and the retained message (empty payload, MQTT 3.1.1 §3.3.1.3). */
  unassign(pairs: { deviceId: string; model: string }[]): Promise<AssignmentResult[]> {
    return this.serialise(async () => {
      const cleared = await this.repository.clearDesired(dedupe(pairs));
      await this.gateway.publishMany(cleared.map((c) => ({ topic: topics.desired(c.deviceId, c.model), payload: Buffer.alloc(0), qos: 1, retain: true })));
      return cleared.map(({ deviceId, model, revision }) => ({ deviceId, model, revision }));
    });
  }

  /** Publishes one command (QoS1, not retained: a command is only meaningful to a connected device). */
  async sendCommand(deviceId: string, command: Command): Promise<void> {
    const parsed = commandSchema.parse(command);
    await this.gateway.publish(topics.commands(deviceId), encodePayload(parsed), { qos: 1, retain: false });
  }

  /** Publishes an empty retained message on each model's desired topic (decommission). */
  async clearRetained(deviceId: string, models: string[]): Promise<void> {
    await this.gateway.publishMany(models.map((model) => ({ topic: topics.desired(deviceId, model), payload: Buffer.alloc(0), qos: 1, retain: true })));
  }

  private async doAssign(assignments: Assignment[]): Promise<AssignmentResult[]> {
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
    }));
    const assigned = await this.repository.upsertDesired(rows);
    const byKey = new Map(unique.map((a) => [`${a.deviceId}\u0000${a.model}`, a]));
    const messages: OutboundMessage[] = [];
    for (const row of assigned) {
      const a = byKey.get(`${row.deviceId}\u0000${row.model}`)!;
      const desired: DesiredModel = {
        v: PROTOCOL_VERSION,
        model: a.model,
        version: a.version,
        revision: row.revision,
        action: a.action ?? 'install',
        ...(a.rolloutId ? { rolloutId: a.rolloutId } : {}),
        ...(a.timeoutSeconds !== undefined ? { timeoutSeconds: a.timeoutSeconds } : {}),
        artifacts: artifacts.get(`${a.model}@${a.version}`)!,
        assignedAt: row.assignedAt,
      };
      messages.push({ topic: topics.desired(row.deviceId, row.model), payload: encodePayload(desiredModelSchema.parse(desired)), qos: 1, retain: true });
    }
    try {
      await this.gateway.publishMany(messages);
    } catch (err) {
      this.logger.error(`publishing ${messages.length} desired states failed (the database has them; assign again to re-publish): ${String(err)}`);
      throw err;
    }
    return assigned.map(({ deviceId, model, revision }) => ({ deviceId, model, revision }));
  }

  private serialise<T>(task: () => Promise<T>): Promise<T> {
    const run = this.tail.then(task, task);
    this.tail = run.catch(() => undefined);
    return run;
  }
}

/** Last entry per (device, model) wins: one upsert cannot touch a row twice. */
function dedupe<T extends { deviceId: string; model: string }>(items: T[]): T[] {
  const map = new Map<string, T>();
  for (const item of items) map.set(`${item.deviceId}\u0000${item.model}`, item);
  return [...map.values()];
}
