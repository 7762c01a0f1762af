import mqtt, { type MqttClient } from 'mqtt';
import {
  type DesiredModel,
  type DeviceCredentials,
  LATENCY_BUCKET_COUNT,
  PROTOCOL_VERSION,
  type UpdateState,
  latencyBucketIndex,
  decodePayload,
  desiredModelSchema,
  encodePayload,
  parseDeviceTopic,
  topics,
} from '@fleetline/protocol';
import type { ApiClient } from '../../apps/control-plane/src/testing/test-app.fixture.js';

/**
 * A device for dashboard tests: real credentials from `POST /api/v1/devices`, a real mqtt.js
 * connection to the control plane's broker, and protocol messages (presence, inventory, update
 * reports). It answers desired-state assignments by reporting `downloading`, then waits until the
 * test calls commit() so the test decides when progress moves.
 */
export class ScriptedDevice {
  private seq = 0;
  private readonly active = new Map<string, string>();
  private readonly previous = new Map<string, string | null>();
  /** Assignments received and not yet committed, per model. */
  readonly pending = new Map<string, DesiredModel>();

  private constructor(
    readonly id: string,
    private readonly client: MqttClient,
  ) {}

  static async create(
    admin: ApiClient,
    mqttUrl: string,
    id: string,
    options: { tags?: Record<string, string>; models?: Record<string, string>; hardwareClass?: string } = {},
  ): Promise<ScriptedDevice> {
    const created = await admin.post<DeviceCredentials>('/api/v1/devices', { id, tags: options.tags ?? {} });
    if (created.status !== 201) throw new Error(`creating ${id}: ${created.status} ${JSON.stringify(created.body)}`);
    const credentials = created.body;
    const client = await mqtt.connectAsync(mqttUrl, {
      protocolVersion: 4,
      clientId: credentials.mqtt.clientId,
      username: credentials.mqtt.username,
      password: credentials.secret,
      reconnectPeriod: 0,
      will: { topic: topics.presence(id), payload: encodePayload({ v: PROTOCOL_VERSION, online: false }), qos: 1, retain: false },
    });
    const device = new ScriptedDevice(id, client);
    client.on('message', (topic, payload) => device.onMessage(topic, payload));
    await client.subscribeAsync(topics.desiredAll(id), { qos: 1 });
    await client.publishAsync(topics.presence(id), encodePayload({ v: PROTOCOL_VERSION, online: true, at: new Date().toISOString() }), {
      qos: 1,
    });
    await client.publishAsync(
      topics.inventory(id),
      encodePayload({
        v: PROTOCOL_VERSION,
        seq: device.nextSeq(),
        inventory: {
          hardwareClass: options.hardwareClass ?? 'sim-x86',
          os: 'linux',
          arch: 'x64',
          accelerators: [],
          agentVersion: '0.1.0',
          runtimes: { simulated: '1.0.0' },
        },
        at: new Date().toISOString(),
      }),
      { qos: 1 },
    );
    for (const [model, version] of Object.entries(options.models ?? {})) {
      device.active.set(model, version);
      await device.report(model, version, 0, 'committed');
    }
    return device;
  }

  private nextSeq(): number {
    this.seq += 1;
    return this.seq;
  }

  private onMessage(topic: string, payload: Buffer): void {
    const parsed = parseDeviceTopic(topic);
    if (parsed?.kind !== 'desired' || !parsed.model || payload.length === 0) return;
    const decoded = decodePayload(desiredModelSchema, payload);
    if (!decoded.ok) return;
    const desired = decoded.value;
    if (this.active.get(desired.model) === desired.version && !this.pending.has(desired.model)) {
      // Already running it (e.g. a rollback to the current version): confirm at once.
      void this.report(desired.model, desired.version, desired.revision, 'committed', desired.rolloutId);
      return;
    }
    this.pending.set(desired.model, desired);
    void this.report(desired.model, desired.version, desired.revision, 'downloading', desired.rolloutId);
  }

  /** Finishes the pending assignment of `model` (or every model): installs it and reports committed. */
  async commit(model?: string): Promise<boolean> {
    const entries = [...this.pending.entries()].filter(([m]) => model === undefined || m === model);
    for (const [m, desired] of entries) {
      this.pending.delete(m);
      this.previous.set(m, this.active.get(m) ?? null);
      this.active.set(m, desired.version);
      await this.report(m, desired.version, desired.revision, 'committed', desired.rolloutId, undefined, desired.variant);
    }
    return entries.length > 0;
  }

  /** Gives up the pending assignment of `model`, reporting it failed as an agent whose download broke does. */
  async fail(model: string, message = 'scripted download failure'): Promise<boolean> {
    const desired = this.pending.get(model);
    if (!desired) return false;
    this.pending.delete(model);
    await this.report(model, desired.version, desired.revision, 'failed', desired.rolloutId, { code: 'download-failed', message });
    return true;
  }

  /**
   * Publishes one telemetry interval for the active version of `model`: `count` inferences with
   * latencies around `latencyMs`, `errors` failures and a prediction distribution.
   */
  async sendTelemetry(model: string, sample: { count: number; errors: number; latencyMs: number; predictions: Record<string, number> }): Promise<void> {
    const version = this.active.get(model);
    if (!version) throw new Error(`${this.id} runs no ${model}`);
    const buckets = new Array<number>(LATENCY_BUCKET_COUNT).fill(0);
    // Spread over three neighbouring buckets so p50 and p95 differ.
    const index = latencyBucketIndex(sample.latencyMs);
    buckets[index] = Math.round(sample.count * 0.8);
    buckets[Math.min(index + 1, LATENCY_BUCKET_COUNT - 1)]! += Math.round(sample.count * 0.15);
    buckets[Math.min(index + 2, LATENCY_BUCKET_COUNT - 1)]! += sample.count - Math.round(sample.count * 0.8) - Math.round(sample.count * 0.15);
    const end = new Date();
    await this.client.publishAsync(
      topics.telemetry(this.id),
      encodePayload({
        v: PROTOCOL_VERSION,
        seq: this.nextSeq(),
        model,
        version,
        intervalStart: new Date(end.getTime() - 10_000).toISOString(),
        intervalEnd: end.toISOString(),
        count: sample.count,
        errors: sample.errors,
        latencyBuckets: buckets,
        latencySumMs: sample.latencyMs * sample.count,
        predictions: sample.predictions,
        vitals: { cpuPercent: 35, temperatureC: 51 },
        dropped: 0,
      }),
      { qos: 1 },
    );
  }

  activeVersion(model: string): string | undefined {
    return this.active.get(model);
  }

  private async report(
    model: string,
    version: string,
    revision: number,
    state: UpdateState,
    rolloutId?: string,
    failure?: { code: 'download-failed'; message: string },
    variant?: string,
  ): Promise<void> {
    await this.client.publishAsync(
      topics.reported(this.id),
      encodePayload({
        v: PROTOCOL_VERSION,
        seq: this.nextSeq(),
        model,
        version,
        revision,
        state,
        activeVersion: state === 'committed' ? version : (this.active.get(model) ?? null),
        previousVersion: this.previous.get(model) ?? null,
        ...(rolloutId ? { rolloutId } : {}),
        ...(failure ? { failure } : {}),
        ...(variant ? { variant } : {}),
        at: new Date().toISOString(),
      }),
      { qos: 1 },
    );
  }

  async close(): Promise<void> {
    await this.client.endAsync(true);
  }
}

/** Creates `count` devices `${prefix}-000..` with the given tags and running versions, a few at a time. */
export async function createFleet(
  admin: ApiClient,
  mqttUrl: string,
  prefix: string,
  count: number,
  options: (index: number) => { tags?: Record<string, string>; models?: Record<string, string> },
): Promise<ScriptedDevice[]> {
  const devices: ScriptedDevice[] = [];
  for (let start = 0; start < count; start += 10) {
    const batch = await Promise.all(
      Array.from({ length: Math.min(10, count - start) }, (_, k) => {
        const i = start + k;
        return ScriptedDevice.create(admin, mqttUrl, `${prefix}-${String(i).padStart(3, '0')}`, options(i));
      }),
    );
    devices.push(...batch);
  }
  return devices;
}

/** Commits the pending assignment on up to `max` devices; returns how many moved. */
export async function commitSome(devices: readonly ScriptedDevice[], model: string, max: number): Promise<number> {
  let moved = 0;
  for (const d of devices) {
    if (moved >= max) break;
    if (d.pending.has(model) && (await d.commit(model))) moved += 1;
  }
  return moved;
}

/** Registers `model` and uploads each version with a small artifact for the simulated runtime. */
export async function registerModel(baseUrl: string, key: string, model: string, versions: string[]): Promise<void> {
  const created = await fetch(`${baseUrl}/api/v1/models`, {
    method: 'POST',
    headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json' },
    body: JSON.stringify({ name: model, description: `${model} (dashboard test)` }),
  });
  if (created.status !== 201) throw new Error(`creating model ${model}: ${created.status} ${await created.text()}`);
  for (const version of versions) {
    const form = new FormData();
    form.append('version', version);
    form.append('metadata', JSON.stringify({ runtime: 'simulated' }));
    form.append('file', new Blob([`${model} ${version} weights`]), `${model}.bin`);
    const uploaded = await fetch(`${baseUrl}/api/v1/models/${model}/versions`, { method: 'POST', headers: { authorization: `Bearer ${key}` }, body: form });
    if (uploaded.status !== 201) throw new Error(`uploading ${model} ${version}: ${uploaded.status} ${await uploaded.text()}`);
  }
}
