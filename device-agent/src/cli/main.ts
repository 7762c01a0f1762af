#!/usr/bin/env node
import { parseArgs } from 'node:util';
import os from 'node:os';
import { isTerminalUpdateState } from '@fleetline/protocol';
import { AGENT_VERSION } from '../agent-version.js';
import { ConfigError, loadAgentConfig, readCaFile } from '../config/config.js';
import { loadCredentials, saveCredentials } from '../config/credentials.js';
import { enroll } from '../config/enroll.js';
import { decideRootTrust, rootToPin } from '../config/root-trust.js';
import { FsModelStore } from '../install/model-store.js';
import { defaultRuntimes } from '../runtime/default-runtimes.js';
import { startAgent } from '../run-agent.js';
import { FileStateStore } from '../storage/store.js';
import { UpdateJournal } from '../update/journal.js';
import { startSimulation } from '../simulator/simulation.js';
import { join } from 'node:path';
import { readFile } from 'node:fs/promises';

const USAGE = `fleet-agent ${AGENT_VERSION}

Usage:
  fleet-agent enroll   --server URL --token T --data-dir DIR [--id ID] [--name NAME] [--tag k=v ...] [--ca-file PEM]
                       [--root-sha256 HEX | --root-file ROOT.JSON]
                       The TUF root to trust: the token's root pin (<secret>.<pin>), --root-sha256
                       or --root-file; a root that does not match is refused and nothing is written.
  fleet-agent run      --data-dir DIR
  fleet-agent status   --data-dir DIR [--json]
  fleet-agent simulate --server URL[,URL...] [--server URL ...] --token T --devices N [--workers W] [--tag k=v ...]
                       [--behaviour VERSION:key=value,... ...] [--telemetry-interval S]
                       [--download full|skip] [--duration S] [--id-prefix P] [--enroll-concurrency C]
                       [--download-concurrency C] [--hardware-class H] [--accelerator A ...] [--source-addresses N]
                       [--connect-concurrency C]
`;

class UsageError extends Error {}

function tags(values: string[] | undefined): Record<string, string> | undefined {
  if (!values || values.length === 0) return undefined;
  const out: Record<string, string> = {};
  for (const t of values) {
    const eq = t.indexOf('=');
    if (eq <= 0) throw new UsageError(`--tag ${t}: expected key=value`);
    out[t.slice(0, eq)] = t.slice(eq + 1);
  }
  return out;
}

function required(value: string | undefined, flag: string): string {
  if (!value) throw new UsageError(`${flag} is required`);
  return value;
}

function positiveInt(value: string | undefined, flag: string, fallback?: number): number {
  if (value === undefined) {
    if (fallback === undefined) throw new UsageError(`${flag} is required`);
    return fallback;
  }
  const n = Number(value);
  if (!Number.isInteger(n) || n < 0) throw new UsageError(`${flag} must be a non-negative integer`);
  return n;
}

async function cmdEnroll(argv: string[]): Promise<number> {
  const { values } = parseArgs({
    args: argv,
    options: {
      server: { type: 'string' },
      token: { type: 'string' },
      'data-dir': { type: 'string' },
      id: { type: 'string' },
      name: { type: 'string' },
      tag: { type: 'string', multiple: true },
      'root-sha256': { type: 'string' },
      'root-file': { type: 'string' },
      'ca-file': { type: 'string' },
    },
    strict: true,
  });
  const dataDir = required(values['data-dir'], '--data-dir');
  const server = required(values.server, '--server');
  // The root to trust is decided before anything is sent, and checked before anything is written.
  const rootFile = values['root-file'];
  const trust = decideRootTrust({
    token: required(values.token, '--token'),
    ...(values['root-sha256'] !== undefined ? { rootSha256: values['root-sha256'] } : {}),
    ...(rootFile !== undefined ? { rootFile: { path: rootFile, text: await readFile(rootFile, 'utf8') } } : {}),
  });
  const config = await loadAgentConfig(dataDir);
  // The CA this enrollment is verified with is the one the device keeps trusting.
  const caPath = values['ca-file'] ?? config.caFile;
  const ca = caPath ? await readCaFile(caPath, values['ca-file'] ? '--ca-file' : 'caFile') : undefined;
  const runtimes = await defaultRuntimes(config);
  const t = tags(values.tag);
  const answer = await enroll(
    server,
    {
      token: trust.secret,
      ...(trust.requestPin ? { rootSha256: trust.requestPin } : {}),
      ...(values.id ? { id: values.id } : {}),
      ...(values.name ? { name: values.name } : {}),
      ...(t ? { tags: t } : {}),
      inventory: {
        hardwareClass: config.hardwareClass,
        os: `${os.platform()} ${os.release()}`.slice(0, 64),
        arch: os.arch(),
        accelerators: config.accelerators,
        agentVersion: AGENT_VERSION,
        runtimes: runtimes.versions(),
      },
    },
    ca !== undefined ? { ca } : {},
  );
  const pinned = rootToPin(trust.trust, answer.tuf.root, server);
  if (pinned.note) process.stderr.write(`fleet-agent: ${pinned.note}\n`);
  const creds = { ...answer, tuf: { ...answer.tuf, root: pinned.root }, ...(ca !== undefined ? { tls: { ca } } : {}) };
  const target = new URL(server);
  // Plain HTTP to this machine is local development (or a proxy on the same host); anything else crossed a network.
  if (target.protocol === 'http:' && !/^(localhost|127\.[\d.]+|\[::1\])$/i.test(target.hostname)) {
    // Trust on first use of the CA: whoever answered this request chose the CA the device pins.
    process.stderr.write(
      'warning: enrolled over plain HTTP; the CA (and, without a root pin, the TUF root) were not authenticated. Enroll over https:// with --ca-file.\n',
    );
  }
  await saveCredentials(dataDir, creds);
  process.stdout.write(`enrolled as ${creds.deviceId}; credentials stored in ${dataDir}\n`);
  return 0;
}

async function cmdRun(argv: string[]): Promise<number> {
  const { values } = parseArgs({ args: argv, options: { 'data-dir': { type: 'string' } }, strict: true });
  const dataDir = required(values['data-dir'], '--data-dir');
  const running = await startAgent(dataDir);
  return new Promise<number>((resolve) => {
    let stopping = false;
    const stop = (signal: string): void => {
      if (stopping) return;
      stopping = true;
      process.stderr.write(`${signal}: stopping\n`);
      void running.stop().then(
        () => resolve(0),
        () => resolve(1),
      );
    };
    process.on('SIGTERM', () => stop('SIGTERM'));
    process.on('SIGINT', () => stop('SIGINT'));
    running.agent.once('decommissioned', () => {
      process.stderr.write('decommissioned: credentials wiped\n');
      void running.stop().then(() => resolve(0));
    });
  });
}

async function cmdStatus(argv: string[]): Promise<number> {
  const { values } = parseArgs({ args: argv, options: { 'data-dir': { type: 'string' }, json: { type: 'boolean' } }, strict: true });
  const dataDir = required(values['data-dir'], '--data-dir');
  const creds = await loadCredentials(dataDir);
  const models = new FsModelStore(join(dataDir, 'models'));
  const state = new FileStateStore(join(dataDir, 'state'));
  const journal = new UpdateJournal(state);
  const entries = await journal.all();
  const names = new Set([...(await models.models()), ...entries.map((e) => e.model)]);
  const rows = [];
  for (const model of [...names].sort()) {
    const p = await models.pointers(model);
    const e = entries.find((x) => x.model === model);
    // The build installed for the active version (recorded by the reconciler at install).
    const variant = p.active ? ((await state.read<{ variant: string }>(`variant/${model}/${p.active}`))?.variant ?? null) : null;
    rows.push({
      model,
      activeVersion: p.active,
      activeVariant: variant,
      lastKnownGood: p.previous,
      path: p.active ? models.versionPath(model, p.active) : null,
      update: e
        ? {
            version: e.desired.version,
            revision: e.desired.revision,
            variant: e.desired.variant ?? null,
            state: e.state,
            inFlight: !isTerminalUpdateState(e.state),
            restarts: e.restarts,
            failure: e.failure ?? null,
            updatedAt: e.updatedAt,
          }
        : null,
    });
  }
  const status = { deviceId: creds?.deviceId ?? null, enrolled: creds !== undefined, agentVersion: AGENT_VERSION, models: rows };
  if (values.json) {
    process.stdout.write(`${JSON.stringify(status, null, 2)}\n`);
    return 0;
  }
  process.stdout.write(`device: ${status.deviceId ?? '(not enrolled)'}   agent ${AGENT_VERSION}\n`);
  if (rows.length === 0) process.stdout.write('no models\n');
  for (const r of rows) {
    const u = r.update
      ? `${r.update.state} ${r.update.version} (rev ${r.update.revision})${r.update.failure ? ` ${r.update.failure.code}: ${r.update.failure.message}` : ''}`
      : '-';
    process.stdout.write(
      `${r.model}: active ${r.activeVersion ?? '-'}${r.activeVariant ? ` (${r.activeVariant})` : ''}  last-known-good ${r.lastKnownGood ?? '-'}  update ${u}\n`,
    );
  }
  return 0;
}

async function cmdSimulate(argv: string[]): Promise<number> {
  const { values } = parseArgs({
    args: argv,
    options: {
      server: { type: 'string', multiple: true },
      token: { type: 'string' },
      devices: { type: 'string' },
      workers: { type: 'string' },
      tag: { type: 'string', multiple: true },
      behaviour: { type: 'string', multiple: true },
      'telemetry-interval': { type: 'string' },
      download: { type: 'string' },
      duration: { type: 'string' },
      'id-prefix': { type: 'string' },
      'enroll-concurrency': { type: 'string' },
      'download-concurrency': { type: 'string' },
      'hardware-class': { type: 'string' },
      accelerator: { type: 'string', multiple: true },
      'source-addresses': { type: 'string' },
      'connect-concurrency': { type: 'string' },
    },
    strict: true,
  });
  const download = values.download ?? 'full';
  if (download !== 'full' && download !== 'skip') throw new UsageError('--download must be full or skip');
  const t = tags(values.tag);
  const duration = values.duration ? positiveInt(values.duration, '--duration') : undefined;
  const sim = startSimulation({
    // Repeated and/or comma-separated: enrollment is spread over every server given.
    server: required(values.server?.join(','), '--server'),
    token: required(values.token, '--token'),
    devices: positiveInt(values.devices, '--devices'),
    workers: positiveInt(values.workers, '--workers', 0),
    ...(t ? { tags: t } : {}),
    behaviours: values.behaviour ?? [],
    telemetryIntervalSeconds: positiveInt(values['telemetry-interval'], '--telemetry-interval', 60),
    download,
    enrollConcurrency: positiveInt(values['enroll-concurrency'], '--enroll-concurrency', 50),
    downloadConcurrency: Math.max(1, positiveInt(values['download-concurrency'], '--download-concurrency', 200)),
    ...(values['id-prefix'] ? { idPrefix: values['id-prefix'] } : {}),
    ...(values['hardware-class'] ? { hardwareClass: values['hardware-class'] } : {}),
    // Simulated hardware: which builds (variants) of a version the devices get.
    ...(values.accelerator ? { accelerators: values.accelerator } : {}),
    ...(values['source-addresses'] ? { sourceAddresses: positiveInt(values['source-addresses'], '--source-addresses') } : {}),
    ...(values['connect-concurrency'] ? { connectConcurrency: positiveInt(values['connect-concurrency'], '--connect-concurrency') } : {}),
    log: (m) => process.stderr.write(`${m}\n`),
  });
  const started = Date.now();
  const progress = setInterval(() => {
    const s = sim.stats();
    process.stderr.write(
      `[${Math.round((Date.now() - started) / 1000)}s] enrolled ${s.enrolled}/${s.devices} (failed ${s.enrollFailed}) connected ${s.connected} active ${JSON.stringify(s.active)} reports ${JSON.stringify(s.reports)} telemetry ${s.telemetryMessages}\n`,
    );
  }, 2000);
  return new Promise<number>((resolve) => {
    let stopping = false;
    const stop = (why: string): void => {
      if (stopping) return;
      stopping = true;
      clearInterval(progress);
      process.stderr.write(`${why}: stopping simulation\n`);
      void sim.stop().then((summary) => {
        process.stdout.write(`${JSON.stringify({ ...summary, elapsedSeconds: Math.round((Date.now() - started) / 1000) }, null, 2)}\n`);
        resolve(summary.enrolled === 0 && summary.devices > 0 ? 1 : 0);
      });
    };
    process.on('SIGTERM', () => stop('SIGTERM'));
    process.on('SIGINT', () => stop('SIGINT'));
    if (duration !== undefined) setTimeout(() => stop('duration reached'), duration * 1000);
  });
}

export async function main(argv: string[]): Promise<number> {
  const [command, ...rest] = argv;
  try {
    switch (command) {
      case 'enroll':
        return await cmdEnroll(rest);
      case 'run':
        return await cmdRun(rest);
      case 'status':
        return await cmdStatus(rest);
      case 'simulate':
        return await cmdSimulate(rest);
      case '--version':
      case 'version':
        process.stdout.write(`${AGENT_VERSION}\n`);
        return 0;
      case undefined:
      case '--help':
      case 'help':
        process.stdout.write(USAGE);
        return command === undefined ? 2 : 0;
      default:
        throw new UsageError(`unknown command ${command}`);
    }
  } catch (err: unknown) {
    if (err instanceof UsageError || (err instanceof TypeError && 'code' in err && String((err as { code: unknown }).code).startsWith('ERR_PARSE_ARGS'))) {
      process.stderr.write(`fleet-agent: ${err.message}\n\n${USAGE}`);
      return 2;
    }
    if (err instanceof ConfigError) {
      process.stderr.write(`fleet-agent: ${err.message}\n`);
      return 78; // EX_CONFIG (sysexits.h): systemd can tell a config error from a crash
    }
    process.stderr.write(`fleet-agent: ${err instanceof Error ? err.message : String(err)}\n`);
    return 1;
  }
}

// Only when executed as the CLI (not when imported by tests).
if (process.argv[1] && import.meta.url === (await import('node:url')).pathToFileURL((await import('node:fs')).realpathSync(process.argv[1])).href) {
  process.exit(await main(process.argv.slice(2)));
}
