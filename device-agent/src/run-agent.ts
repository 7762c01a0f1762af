import { statfs } from 'node:fs/promises';
import { join } from 'node:path';
import os from 'node:os';
import { Agent } from './agent.js';
import { AGENT_VERSION } from './agent-version.js';
import { ConfigError, loadAgentConfig, localApiListen, readCaFile, readClientCertificate, type AgentConfig } from './config/config.js';
import { loadCredentials, tufMetadataDir, wipeCredentials } from './config/credentials.js';
import { LazyDownloader } from './download/lazy-downloader.js';
import { FsModelStore } from './install/model-store.js';
import { LocalApiServer } from './local-api/local-api-server.js';
import { defaultRuntimes } from './runtime/default-runtimes.js';
import { FileStateStore } from './storage/store.js';
import { VitalsSampler } from './telemetry/vitals.js';
import { HeapCompactor } from './util/heap-compactor.js';
import { createLogger, type Logger } from './util/logger.js';

export interface RunningAgent {
  agent: Agent;
  config: AgentConfig;
  localApi: LocalApiServer | undefined;
  stop(): Promise<void>;
}

/** Builds and starts the real agent for a data dir (what `fleet-agent run` does). */
export async function startAgent(dataDir: string, opts: { env?: NodeJS.ProcessEnv; logger?: Logger } = {}): Promise<RunningAgent> {
  const config = await loadAgentConfig(dataDir, opts.env ?? process.env);
  const log = opts.logger ?? createLogger(config.logLevel);
  const credentials = await loadCredentials(dataDir);
  // A configuration problem too (exit 78): restarting will not help until the device is enrolled.
  if (!credentials) throw new ConfigError('credentials', `no credentials in ${dataDir}: run "fleet-agent enroll" first`);
  // The operator's file wins; else what enrollment stored; else the system's trust store.
  const ca = config.caFile ? await readCaFile(config.caFile) : credentials.tls?.ca;
  const clientCert =
    config.mqttClientCertFile && config.mqttClientKeyFile ? await readClientCertificate(config.mqttClientCertFile, config.mqttClientKeyFile) : undefined;
  const runtimes = await defaultRuntimes(config);
  let diskFreeBytes: number | undefined;
  try {
    const s = await statfs(dataDir);
    diskFreeBytes = Number(s.bavail) * Number(s.bsize);
  } catch {
    diskFreeBytes = undefined;
  }
  const vitals = new VitalsSampler();
  const agent = new Agent({
    credentials,
    ...(ca !== undefined ? { tlsCa: ca } : {}),
    ...(clientCert ? { tlsClientCert: clientCert } : {}),
    store: new FileStateStore(join(dataDir, 'state')),
    models: new FsModelStore(join(dataDir, 'models')),
    downloader: new LazyDownloader(async () => {
      const { TufDownloader } = await import('./download/tuf-downloader.js');
      return new TufDownloader({
        deviceId: credentials.deviceId,
        secret: credentials.secret,
        metadataUrl: credentials.tuf.metadataUrl,
        targetsUrl: credentials.tuf.targetsUrl,
        metadataDir: tufMetadataDir(dataDir),
        downloadDir: join(dataDir, 'downloads'),
        ...(ca !== undefined ? { ca } : {}),
      });
    }),
    runtimes,
    inventory: {
      hardwareClass: config.hardwareClass,
      os: `${os.platform()} ${os.release()}`.slice(0, 64),
      arch: os.arch(),
      accelerators: config.accelerators,
      agentVersion: AGENT_VERSION,
      cpuCount: os.cpus().length,
      memoryBytes: os.totalmem(),
      ...(diskFreeBytes !== undefined ? { diskFreeBytes } : {}),
    },
    telemetryIntervalMs: config.telemetryIntervalSeconds * 1000,
    healthCheckTimeoutMs: config.healthCheckTimeoutSeconds * 1000,
    updateTimeoutMs: config.updateTimeoutSeconds * 1000,
    maxActivationRestarts: config.maxActivationRestarts,
    reportQueue: { maxItems: config.queues.reportsMaxItems, maxBytes: config.queues.reportsMaxItems * 2048 },
    telemetryQueue: { maxItems: config.queues.telemetryMaxItems, maxBytes: config.queues.telemetryMaxBytes },
    vitals: () => vitals.sample(),
    onDecommission: () => wipeCredentials(dataDir),
    log: (m) => log.info(m),
  });
  let localApi: LocalApiServer | undefined;
  if (config.localApi.enabled) {
    const listen = localApiListen(config.localApi, dataDir, process.platform, opts.env ?? process.env);
    localApi = new LocalApiServer(
      agent,
      listen.transport === 'unix' ? { socketPath: listen.socketPath, socketMode: listen.socketMode } : { port: listen.port, host: listen.host },
    );
    await localApi.start();
    log.info(`local API on ${localApi.address}`);
  }
  await agent.start();
  // Memory taken by start-up and by each update goes back once the agent is quiet again.
  const compactor = new HeapCompactor();
  agent.reconciler.on('idle', () => compactor.schedule());
  agent.on('connected', () => compactor.schedule());
  compactor.schedule();
  log.info(`agent ${AGENT_VERSION} started as ${credentials.deviceId}; runtimes ${JSON.stringify(runtimes.versions())}`);
  return {
    agent,
    config,
    localApi,
    async stop(): Promise<void> {
      compactor.stop();
      await localApi?.stop();
      await agent.stop();
    },
  };
}
