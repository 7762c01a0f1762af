import mqtt, { type MqttClient } from 'mqtt';
import {
  type DesiredCleared,
  type DesiredModel,
  desiredMessageSchema,
  decodePayload,
  type FailureCode,
  isDesiredCleared,
  PROTOCOL_VERSION,
  type ReportState,
  topics,
} from '@fleetline/protocol';

/** What a fake device does with an assignment. */
export type FakeOutcome = 'commit' | 'ignore' | { fail: FailureCode } | { commitAfterMs: number };

export interface FakeAgent {
  id: string;
  received: DesiredModel[];
  active: Map<string, string>;
  /** Publishes a telemetry message as this device (QoS 1); `seq` is filled in from the device's counter. */
  publishTelemetry(message: Record<string, unknown>): Promise<void>;
  close(): Promise<void>;
}

/**
 * A minimal device for integration tests: a real MQTT client with the device's credentials that
 * follows the protocol (desired -> reports with the echoed revision and a rising seq; cleared ->
 * the model is removed and `removed` reported) without downloading anything. The real agent and
 * its simulator are exercised by the end-to-end tests.
 */
export async function startFakeAgent(
  mqttUrl: string,
  credentials: { deviceId: string; secret: string },
  decide: (desired: DesiredModel, attempt: number) => FakeOutcome = () => 'commit',
): Promise<FakeAgent> {
  const id = credentials.deviceId;
  const client: MqttClient = await mqtt.connectAsync(mqttUrl, {
    clientId: id,
    username: id,
    password: credentials.secret,
    protocolVersion: 4,
    reconnectPeriod: 0,
  });
  const received: DesiredModel[] = [];
  const active = new Map<string, string>();
  const attempts = new Map<string, number>();
  let seq = Date.now();
  let queue: Promise<void> = Promise.resolve();

  const report = async (
    d: Pick<DesiredModel, 'model' | 'version' | 'revision' | 'rolloutId'>,
    state: ReportState,
    extra: Record<string, unknown> = {},
  ): Promise<void> => {
    const message = {
      v: PROTOCOL_VERSION,
      seq: seq++,
      model: d.model,
      version: d.version,
      revision: d.revision,
      state,
      activeVersion: active.get(d.model) ?? null,
      previousVersion: null,
      ...(d.rolloutId ? { rolloutId: d.rolloutId } : {}),
      at: new Date().toISOString(),
      ...extra,
    };
    await client.publishAsync(topics.reported(id), JSON.stringify(message), { qos: 1 });
  };

  /** Revisions already acted on per model: like the real agent, a redelivered assignment is not redone. */
  const handled = new Map<string, number>();
  const handle = async (d: DesiredModel): Promise<void> => {
    if ((handled.get(d.model) ?? -1) >= d.revision) return;
    handled.set(d.model, d.revision);
    const key = `${d.model}@${d.version}`;
    const attempt = (attempts.get(key) ?? 0) + 1;
    attempts.set(key, attempt);
    const outcome = decide(d, attempt);
    if (outcome === 'ignore') return;
    await report(d, 'downloading');
    if (typeof outcome === 'object' && 'commitAfterMs' in outcome) {
      // Installing in the background, so assignments for other models are not held up.
      await report(d, 'installing');
      setTimeout(() => {
        const previous = active.get(d.model) ?? null;
        active.set(d.model, d.version);
        report(d, 'committed', { previousVersion: previous }).catch(() => undefined);
      }, outcome.commitAfterMs);
      return;
    }
    if (typeof outcome === 'object') {
      await report(d, 'failed', { failure: { code: outcome.fail, message: 'simulated failure' } });
      return;
    }
    // A shadow candidate is staged like a download-only one; its telemetry is the test's to publish (publishTelemetry).
    if (d.action === 'download-only' || d.action === 'shadow') {
      await report(d, 'downloaded');
      return;
    }
    await report(d, 'installing');
    const previous = active.get(d.model) ?? null;
    active.set(d.model, d.version);
    await report(d, 'committed', { previousVersion: previous });
  };

  /** Like the real agent: an unassigned model that runs is removed, and the removal reported. */
  const clear = async (c: DesiredCleared): Promise<void> => {
    if ((handled.get(c.model) ?? -1) >= c.revision) return;
    handled.set(c.model, c.revision);
    const version = active.get(c.model);
    if (version === undefined) return;
    active.delete(c.model);
    await report({ model: c.model, version, revision: c.revision }, 'removed', { activeVersion: null, previousVersion: null });
  };

  client.on('message', (_topic, payload) => {
    if (payload.length === 0) return;
    const decoded = decodePayload(desiredMessageSchema, payload);
    if (!decoded.ok) return;
    const message = decoded.value;
    if (isDesiredCleared(message)) {
      queue = queue.then(() => clear(message)).catch(() => undefined);
      return;
    }
    received.push(message);
    queue = queue.then(() => handle(message)).catch(() => undefined);
  });
  await client.subscribeAsync(topics.desiredAll(id), { qos: 1 });
  // Hello: the control plane answers with what its database says this device should run.
  await client.publishAsync(topics.presence(id), JSON.stringify({ v: PROTOCOL_VERSION, online: true, session: `fake-${seq}`, at: new Date().toISOString() }), {
    qos: 1,
  });
  return {
    id,
    received,
    active,
    publishTelemetry: async (message) => {
      await client.publishAsync(topics.telemetry(id), JSON.stringify({ v: PROTOCOL_VERSION, seq: seq++, ...message }), { qos: 1 });
    },
    close: async () => {
      await queue;
      await client.endAsync(true);
    },
  };
}
