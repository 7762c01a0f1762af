import { createHash } from 'node:crypto';
import { EventEmitter } from 'node:events';
import {
  commandSchema,
  credentialBindingOf,
  decodePayload,
  desiredMessageSchema,
  isDesiredCleared,
  parseDeviceTopic,
  PROTOCOL_VERSION,
  topics,
  type DesiredModel,
  type DeviceCredentials,
  type Inventory,
  type InventoryMessage,
  type TelemetryMessage,
  type UpdateReport,
} from '@fleetline/protocol';
import { artifactFileName, type ArtifactDownloader } from './download/downloader.js';
import type { StagedFile } from './install/model-store.js';
import type { ModelStore } from './install/model-store.js';
import { MqttLink } from './mqtt/mqtt-link.js';
import { Reconciler, type ActiveModel, type ReportDraft } from './reconcile/reconciler.js';
import { inventoryDigest, inventoryIsDue, type SentInventory } from './reports/inventory-due.logic.js';
import { Outbox } from './reports/outbox.js';
import type { RuntimeRegistry } from './runtime/model-runtime.js';
import type { Prediction } from './shadow/prediction.js';
import { ShadowSession } from './shadow/shadow-session.js';
import type { StateStore } from './storage/store.js';
import { TelemetryAggregator, type InferenceSample } from './telemetry/aggregator.js';
import type { Vitals } from './telemetry/vitals.js';
import type { JournalEntry } from './update/journal.js';
import type { Backoff } from './util/backoff.js';

/** Store key of the inventory last queued (inventory-due.logic.ts). */
const SENT_INVENTORY_KEY = 'inventory/sent';

export interface AgentOptions {
  credentials: DeviceCredentials;
  /** PEM CA bundle the broker's certificate must chain to (mqtts://, wss://). */
  tlsCa?: string;
  /** Client certificate and key presented on mqtts:// and wss:// (mTLS login instead of the secret, where the broker has it registered). */
  tlsClientCert?: { cert: string; key: string };
  store: StateStore;
  models: ModelStore;
  downloader: ArtifactDownloader;
  runtimes: RuntimeRegistry;
  /** Inventory minus runtimes (filled from the registry). */
  inventory: Omit<Inventory, 'runtimes'> & { runtimes?: Record<string, string> };
  telemetryIntervalMs?: number;
  healthCheckTimeoutMs?: number;
  updateTimeoutMs?: number;
  maxActivationRestarts?: number;
  /** How long after connecting a model the hello's answer did not mention waits to be re-stated (Reconciler.beginResync). */
  resyncFallbackMs?: number;
  reportQueue?: { maxItems: number; maxBytes: number };
  telemetryQueue?: { maxItems: number; maxBytes: number };
  /** Mirrored inputs waiting for a shadow candidate, per model; more are dropped and counted. */
  shadowQueue?: number;
  /** Samples vitals at each telemetry interval. */
  vitals?: () => Promise<Vitals>;
  localAddress?: string;
  mqttBackoff?: Backoff;
  /** Called after a decommission command wiped the credentials. */
  onDecommission?: () => Promise<void>;
  log?: (msg: string) => void;
}

export interface AgentStatus {
  deviceId: string;
  connected: boolean;
  models: ActiveModel[];
  updates: JournalEntry[];
  pendingReports: number;
  pendingTelemetry: number;
}

/**
 * One device: broker link, reconciler, durable outboxes and telemetry. The real agent (`run`) and
 * every simulated device use this same class with different storage, downloader and runtimes.
 *
 * Events: 'active-changed' (model, version | null), 'connected', 'disconnected', 'decommissioned'.
 */
export class Agent extends EventEmitter {
  readonly deviceId: string;
  readonly reconciler: Reconciler;
  readonly link: MqttLink;
  private readonly reports: Outbox;
  private readonly telemetryOut: Outbox;
  private readonly inventoryOut: Outbox;
  private readonly aggregator = new TelemetryAggregator();
  private readonly active = new Map<string, string>();
  /** Build of each active model (telemetry is kept per build); absent for versions installed without one. */
  private readonly activeVariant = new Map<string, string>();
  /** Candidates evaluated beside the active version, per model (at most one each). */
  private readonly shadows = new Map<string, ShadowSession>();
  private telemetryTimer: NodeJS.Timeout | undefined;
  private flushing: Promise<void> | undefined;
  private flushAgain = false;
  private started = false;
  /** Bad MQTT payloads refused (decoded with the protocol schemas before any side effect). */
  invalidMessages = 0;
  /** What commands meant for this credential carry (protocol `credentialBindingOf`). */
  private readonly credentialBinding: string;

  constructor(private readonly opts: AgentOptions) {
    super();
    const c = opts.credentials;
    this.deviceId = c.deviceId;
    this.credentialBinding = credentialBindingOf(createHash('sha256').update(c.secret).digest('hex'));
    this.reports = new Outbox(opts.store, 'outbox/reports', opts.reportQueue ?? { maxItems: 1000, maxBytes: 1_000_000 });
    this.telemetryOut = new Outbox(opts.store, 'outbox/telemetry', opts.telemetryQueue ?? { maxItems: 2000, maxBytes: 4_000_000 });
    this.inventoryOut = new Outbox(opts.store, 'outbox/inventory', { maxItems: 1, maxBytes: 1_000_000 });
    this.reconciler = new Reconciler({
      store: opts.store,
      models: opts.models,
      downloader: opts.downloader,
      runtimes: opts.runtimes,
      capabilities: {
        hardwareClass: opts.inventory.hardwareClass,
        accelerators: opts.inventory.accelerators ?? [],
        agentVersion: opts.inventory.agentVersion,
        runtimes: opts.runtimes.versions(),
      },
      report: (draft) => this.queueReport(draft),
      ...(opts.healthCheckTimeoutMs !== undefined ? { healthCheckTimeoutMs: opts.healthCheckTimeoutMs } : {}),
      ...(opts.updateTimeoutMs !== undefined ? { updateTimeoutMs: opts.updateTimeoutMs } : {}),
      ...(opts.maxActivationRestarts !== undefined ? { maxActivationRestarts: opts.maxActivationRestarts } : {}),
      ...(opts.resyncFallbackMs !== undefined ? { resyncFallbackMs: opts.resyncFallbackMs } : {}),
      ...(opts.log ? { log: opts.log } : {}),
    });
    this.reconciler.on('active-changed', (model: string, version: string | null, variant?: string) => {
      if (version) this.active.set(model, version);
      else this.active.delete(model);
      if (version && variant) this.activeVariant.set(model, variant);
      else this.activeVariant.delete(model);
      this.aggregator.switchBuild(model, version ?? undefined, version ? variant : undefined);
      this.emit('active-changed', model, version);
    });
    this.reconciler.on('staged', (model: string, desired: DesiredModel, files: StagedFile[]) => {
      if (desired.action !== 'shadow') return;
      void this.startShadow(model, desired, files).catch((err: unknown) => this.log(`shadow ${model}@${desired.version}: ${String(err)}`));
    });
    this.link = new MqttLink({
      urls: c.mqtt.urls && c.mqtt.urls.length > 0 ? c.mqtt.urls : [c.mqtt.url],
      clientId: c.mqtt.clientId,
      username: c.mqtt.username,
      password: c.secret,
      will: (session) => ({ topic: topics.presence(c.deviceId), payload: Buffer.from(JSON.stringify(presence(false, session))), qos: 1 }),
      ...(opts.localAddress ? { localAddress: opts.localAddress } : {}),
      ...(opts.tlsCa !== undefined ? { ca: opts.tlsCa } : {}),
      ...(opts.tlsClientCert ? { clientCert: opts.tlsClientCert } : {}),
      ...(opts.mqttBackoff ? { backoff: opts.mqttBackoff } : {}),
      ...(opts.log ? { log: opts.log } : {}),
    });
    this.link.on('connect', () => void this.onConnect().catch((err: unknown) => this.log(`on-connect: ${String(err)}`)));
    this.link.on('close', () => {
      this.reconciler.endResync();
      this.emit('disconnected');
    });
    this.link.on(
      'message',
      (topic: string, payload: Buffer) => void this.onMessage(topic, payload).catch((err: unknown) => this.log(`message ${topic}: ${String(err)}`)),
    );
  }

  private log(msg: string): void {
    this.opts.log?.(msg);
  }

  async start(): Promise<void> {
    if (this.started) return;
    this.started = true;
    for (const m of await this.reconciler.activeModels()) {
      this.active.set(m.model, m.version);
      if (m.variant) this.activeVariant.set(m.model, m.variant);
    }
    await this.reconciler.recover();
    this.link.start();
    const interval = this.opts.telemetryIntervalMs ?? 60_000;
    if (interval > 0) {
      this.telemetryTimer = setInterval(() => void this.emitTelemetry().catch((err: unknown) => this.log(`telemetry: ${String(err)}`)), interval);
      this.telemetryTimer.unref();
    }
  }

  /** Stops cleanly: finishes the running step, publishes offline presence, disconnects. */
  async stop(): Promise<void> {
    if (!this.started) return;
    this.started = false;
    clearInterval(this.telemetryTimer);
    await this.reconciler.stop();
    for (const s of this.shadows.values()) s.end('stopped');
    await Promise.all([...this.shadows.values()].map(async (s) => s.closed()));
    if (this.link.connected) {
      // Best effort: hand queued messages to the broker before leaving (they stay queued otherwise).
      this.flush();
      await Promise.race([this.flushed(), new Promise((r) => setTimeout(r, 5000).unref())]);
      await this.link.publish(topics.presence(this.deviceId), JSON.stringify(presence(false, this.link.session, new Date()))).catch(() => undefined);
    }
    await this.link.stop(true);
  }

  get connected(): boolean {
    return this.link.connected;
  }

  private async onConnect(): Promise<void> {
    this.emit('connected');
    await this.link.subscribe([topics.desiredAll(this.deviceId), topics.commands(this.deviceId)]);
    // Before the hello: its answer may arrive before the hello's own acknowledgement does.
    await this.reconciler.beginResync();
    // Only now, with the subscription in place, say hello: the control plane answers it with every
    // desired state its database holds for this device (nothing is retained in the broker), each
    // with the report it stored for that model, so only what it lacks is re-stated.
    await this.link.publish(topics.presence(this.deviceId), JSON.stringify(presence(true, this.link.session, new Date())));
    await this.queueInventory();
    this.flush();
  }

  private async onMessage(topic: string, payload: Buffer): Promise<void> {
    const parsed = parseDeviceTopic(topic);
    if (!parsed || parsed.deviceId !== this.deviceId) {
      this.invalidMessages++;
      this.log(`refused message on unexpected topic ${topic}`);
      return;
    }
    if (parsed.kind === 'desired' && parsed.model) {
      if (payload.length === 0) {
        await this.reconciler.resyncModel(parsed.model, undefined);
        await this.reconciler.setDesired(parsed.model, null);
        return;
      }
      const d = decodePayload(desiredMessageSchema, payload);
      if (!d.ok || d.value.model !== parsed.model) {
        this.invalidMessages++;
        this.log(`refused desired state for ${parsed.model}: ${d.ok ? 'model does not match topic' : d.error}`);
        return;
      }
      // Before the new state is applied, so a re-statement says what the device ran until now.
      await this.reconciler.resyncModel(parsed.model, d.value.stored);
      if (isDesiredCleared(d.value)) await this.reconciler.setDesired(parsed.model, null, d.value.revision);
      else await this.reconciler.setDesired(parsed.model, d.value);
      this.withdrawShadow(parsed.model, isDesiredCleared(d.value) ? undefined : d.value);
      return;
    }
    if (parsed.kind === 'commands') {
      const c = decodePayload(commandSchema, payload);
      if (!c.ok) {
        this.invalidMessages++;
        this.log(`refused command: ${c.error}`);
        return;
      }
      if (c.value.credential !== undefined && c.value.credential !== this.credentialBinding) {
        // Issued for an earlier credential of this device id (decommissioned, then enrolled again).
        this.invalidMessages++;
        this.log(`refused ${c.value.type} command bound to another credential`);
        return;
      }
      switch (c.value.type) {
        case 'install':
          await this.reconciler.requestInstall(c.value.model, c.value.version, c.value.revision);
          return;
        case 'report-inventory':
          await this.queueInventory(true);
          this.flush();
          return;
        case 'decommission':
          this.log('decommission command received');
          await this.stop();
          await this.opts.onDecommission?.();
          this.emit('decommissioned');
          return;
      }
    }
  }

  inventory(): Inventory {
    return {
      ...this.opts.inventory,
      accelerators: this.opts.inventory.accelerators ?? [],
      runtimes: { ...this.opts.runtimes.versions(), ...(this.opts.inventory.runtimes ?? {}) },
    };
  }

  /**
   * Queues the inventory when due (inventory-due.logic.ts) or when asked for. What was queued is
   * recorded only once the outbox holds it: the outbox keeps it across restarts until acknowledged.
   */
  private async queueInventory(asked = false): Promise<void> {
    const inventory = this.inventory();
    const digest = inventoryDigest(inventory);
    const now = Date.now();
    if (!asked && !inventoryIsDue(await this.opts.store.read<SentInventory>(SENT_INVENTORY_KEY), digest, now)) return;
    await this.inventoryOut.enqueue(topics.inventory(this.deviceId), (seq): InventoryMessage => ({
      v: PROTOCOL_VERSION,
      seq,
      inventory,
      at: new Date(now).toISOString(),
    }));
    await this.opts.store.write(SENT_INVENTORY_KEY, { digest, at: now } satisfies SentInventory);
  }

  private async queueReport(draft: ReportDraft): Promise<void> {
    await this.reports.enqueue(topics.reported(this.deviceId), (seq): UpdateReport => ({ v: PROTOCOL_VERSION, seq, ...draft }));
    this.emit('report', draft);
    this.flush();
  }

  /** Publishes the outboxes in order (reports first: rollouts wait on them). Coalesces calls. */
  flush(): void {
    if (this.flushing) {
      this.flushAgain = true;
      return;
    }
    this.flushing = (async (): Promise<void> => {
      do {
        this.flushAgain = false;
        if (!this.link.connected) break;
        const publish = async (item: { topic: string; payload: string }): Promise<void> => this.link.publish(item.topic, item.payload);
        await this.inventoryOut.flush(publish);
        await this.reports.flush(publish);
        await this.telemetryOut.flush(publish);
      } while (this.flushAgain);
    })()
      .catch((err: unknown) => this.log(`flush: ${String(err)}`))
      .finally(() => {
        this.flushing = undefined;
        // A flush() that arrived between the loop's last check and here must not be lost.
        if (this.flushAgain && this.link.connected) this.flush();
      });
  }

  /** Resolves when the current flush (if any) finished. */
  async flushed(): Promise<void> {
    while (this.flushing) await this.flushing;
  }

  /**
   * An inference result from the on-device application (local API) or the simulator. With an
   * `input`, and a shadow running for the model, a sample of inputs is mirrored to the candidate:
   * queued here, run later, so the caller never waits for it.
   */
  recordInference(sample: InferenceSample): boolean {
    const version = this.active.get(sample.model);
    if (!version) return false;
    this.aggregator.record(sample, version, this.activeVariant.get(sample.model));
    if (sample.input !== undefined && sample.ok) this.shadows.get(sample.model)?.offer(sample.input, activePrediction(sample));
    return true;
  }

  /** Whether a candidate is evaluated beside `model` now (callers may skip building inputs when not). */
  shadowing(model: string): boolean {
    return this.shadows.get(model)?.accepting ?? false;
  }

  /** The shadow of `model`, if one runs or has not reported its end yet. */
  shadowOf(model: string): ShadowSession | undefined {
    return this.shadows.get(model);
  }

  /** Loads a staged shadow candidate beside the active version (never instead of it) and starts mirroring. */
  private async startShadow(model: string, desired: DesiredModel, files: readonly StagedFile[]): Promise<void> {
    const directive = desired.shadow;
    if (!directive) return;
    const current = this.shadows.get(model);
    if (current && current.version === desired.version && current.rolloutId === desired.rolloutId && current.accepting) return;
    current?.end('withdrawn');
    const artifact = desired.artifacts.find((a) => this.opts.runtimes.get(a.runtime) !== undefined);
    if (!artifact) throw new Error('no runtime on this device loads the candidate');
    const runtime = this.opts.runtimes.get(artifact.runtime)!.create();
    const file = files.find((f) => f.fileName === artifactFileName(artifact.targetPath));
    await runtime.load(file?.path ?? artifact.targetPath, artifact);
    const session = new ShadowSession({
      model,
      version: desired.version,
      ...(desired.rolloutId !== undefined ? { rolloutId: desired.rolloutId } : {}),
      directive,
      runtime,
      ...(this.opts.shadowQueue !== undefined ? { maxQueue: this.opts.shadowQueue } : {}),
      ...(this.opts.log ? { log: this.opts.log } : {}),
    });
    this.shadows.set(model, session);
    this.log(`shadow of ${model}@${desired.version} started (${directive.samplePercent} % of inferences, ${directive.durationSeconds} s)`);
  }

  /** A new desired state for `model` that is not its running shadow's ends that shadow. */
  private withdrawShadow(model: string, desired: DesiredModel | undefined): void {
    const s = this.shadows.get(model);
    if (!s || !s.accepting) return;
    if (desired && desired.action === 'shadow' && desired.version === s.version && desired.rolloutId === s.rolloutId) return;
    s.end('withdrawn');
  }

  /** Closes the telemetry interval: one message per active model version (per build segment when a build changed). */
  async emitTelemetry(): Promise<number> {
    // Vitals first: closing the interval and queueing its messages then happen in one turn, so the
    // outbox assigns seqs in the order the intervals were closed even when two ticks overlap (a
    // slow probe, or a store that waits behind a flush stuck on an unacknowledged publish).
    const vitals = (await this.opts.vitals?.().catch(() => ({}))) ?? {};
    const aggregates = this.aggregator.flush(
      new Date(),
      [...this.active.entries()].map(([model, version]) => ({ model, version, variant: this.activeVariant.get(model) })),
    );
    for (const [model, session] of this.shadows) {
      const report = session.takeInterval();
      // The shadow rides on the active version's last aggregate of the interval: the same device's baseline.
      const host = aggregates.findLast((a) => a.model === model && a.version === this.active.get(model));
      if (report && host) host.shadow = report;
      if (session.finished || (report?.ended ?? false)) this.shadows.delete(model);
    }
    if (aggregates.length === 0) return 0;
    const topic = topics.telemetry(this.deviceId);
    await this.telemetryOut.enqueueAll(
      aggregates.map((a) => ({ topic, build: (seq: number, dropped: number): TelemetryMessage => ({ v: PROTOCOL_VERSION, seq, ...a, vitals, dropped }) })),
    );
    this.emit('telemetry', aggregates.length);
    this.flush();
    return aggregates.length;
  }

  async activeModels(): Promise<ActiveModel[]> {
    return this.reconciler.activeModels();
  }

  async status(): Promise<AgentStatus> {
    return {
      deviceId: this.deviceId,
      connected: this.link.connected,
      models: await this.reconciler.activeModels(),
      updates: await this.reconciler.journalEntries(),
      pendingReports: (await this.reports.pending()).length,
      pendingTelemetry: (await this.telemetryOut.pending()).length,
    };
  }
}

function activePrediction(sample: InferenceSample): Prediction | undefined {
  if (sample.label !== undefined) return { label: sample.label.slice(0, 64) };
  if (sample.score !== undefined && Number.isFinite(sample.score)) return { value: sample.score };
  return undefined;
}

function presence(online: boolean, session: string, at?: Date): { v: typeof PROTOCOL_VERSION; online: boolean; session: string; at?: string } {
  return { v: PROTOCOL_VERSION, online, session, ...(at ? { at: at.toISOString() } : {}) };
}
