#!/usr/bin/env node
// Crash rounds: power cuts at random moments of model updates, many times over.
//
// One real `fleet-agent run` process (device-agent/dist/cli/main.js) enrolled with the real control
// plane process (apps/control-plane/dist/main.js: embedded broker, TUF repository, PGlite, or
// PostgreSQL when DATABASE_URL is set). Each round:
//   1. assigns a version other than the active one: usually a good one (alternating), sometimes one
//      whose health check fails, sometimes a second assignment supersedes the first a moment later;
//   2. SIGKILLs the agent at a random moment of that update (uniform over the measured update time);
//      every OUTAGE_EVERY-th round the device then stays off for longer than the update deadline
//      (agent updateTimeoutSeconds 10), so the restart finds an update past its deadline;
//   3. checks, with the agent dead, that `current` holds a complete version (its bytes hash to the
//      uploaded sha256 of the version directory it points at);
//   4. restarts the agent (it must log that it started), waits for the control plane to show the
//      device again, and checks within a bound that the update ended for the current desired
//      revision (committed, rolled-back, failed or incompatible), in the agent's journal and on
//      the control plane, and that `current` is again a complete, verified version.
// Counts: rounds, devices on a partial or unverified model, agents that failed to start, models
// stuck (all three must be 0). Prints a summary and writes JSON.
//
// Run after `npx tsc -b tsconfig.build.json`:  node test/crash/agent-crash-rounds.mjs
// Env: ROUNDS (default 1000), SEED (random), ARTIFACT_BYTES (default 2000000), STUCK_BOUND_SECONDS
// (default 60), OUTAGE_EVERY (default 20; 0 = never), RESULTS_FILE (default
// test/bench/results/agent-crash-rounds.json), DATABASE_URL (PostgreSQL instead of PGlite).
// Exit code 1 when any count is not 0.
import { execFileSync, spawn } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, readlinkSync, writeFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { basename, dirname, join } from 'node:path';
import { adminApi, agentMain, cleanEnv, log, median, resultsDir, sleep, startControlPlane } from '../bench/helpers/agent-bench-util.mjs';

const ROUNDS = Number(process.env.ROUNDS ?? 1000);
const SEED = Number(process.env.SEED ?? Math.floor(Math.random() * 2 ** 31));
const ARTIFACT_BYTES = Number(process.env.ARTIFACT_BYTES ?? 2_000_000);
const STUCK_BOUND_MS = Number(process.env.STUCK_BOUND_SECONDS ?? 60) * 1000;
const OUTAGE_EVERY = Number(process.env.OUTAGE_EVERY ?? 20);
const UPDATE_TIMEOUT_SECONDS = 10; // the agent's smallest allowed download deadline
const RESULTS_FILE = process.env.RESULTS_FILE ?? join(resultsDir, 'agent-crash-rounds.json');
const MODEL = 'detector';
const FILE = 'weights.bin';
const DEVICE = 'crash-rounds-1';
const ENDED = ['committed', 'rolled-back', 'failed', 'incompatible'];

if (!Number.isInteger(ROUNDS) || ROUNDS < 1) throw new Error(`ROUNDS must be a positive integer, got ${process.env.ROUNDS}`);
if (!existsSync(agentMain)) throw new Error(`${agentMain} is missing: run npx tsc -b tsconfig.build.json first`);

/** mulberry32: a small seeded PRNG, so a run can be repeated with SEED. */
function prng(seed) {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}
const random = prng(SEED);

const sha256 = (bytes) => createHash('sha256').update(bytes).digest('hex');

// The `command` runtime's health check: reads the artifact's first line; `health=fail` exits 1,
// `sleep=N` sleeps first (a slow self-test keeps the update in health-checking for a while).
const HEALTH_SCRIPT = `#!/bin/sh
header=$(head -n 1 "$1" | cut -c1-80)
case "$header" in
  *sleep=[0-9]*) s=\${header#*sleep=}; s=\${s%%[!0-9]*}; sleep "$s" ;;
esac
case "$header" in
  *health=fail*) echo "model $1 refused by the health check" >&2; exit 1 ;;
esac
exit 0
`;

function artifact(seed, health, sleepSeconds) {
  const header = Buffer.from(`fleetline-test ${seed} health=${health} sleep=${sleepSeconds}\n`);
  return Buffer.concat([header, randomBytes(Math.max(0, ARTIFACT_BYTES - header.length))]);
}

// good-a / good-b alternate; slow passes its health check after a second; bad fails it.
const VERSIONS = [
  { version: '1.0.0', kind: 'good', bytes: artifact('good-a', 'ok', 0) },
  { version: '1.1.0', kind: 'good', bytes: artifact('good-b', 'ok', 0) },
  { version: '1.2.0', kind: 'slow', bytes: artifact('slow', 'ok', 1) },
  { version: '1.3.0', kind: 'bad', bytes: artifact('bad', 'fail', 0) },
];
const SHA = new Map(VERSIONS.map((v) => [v.version, sha256(v.bytes)]));

const work = await mkdtemp(join(tmpdir(), 'fleetline-crash-rounds-'));
const dataDir = join(work, 'agent');
const agentEnv = cleanEnv({ FLEET_AGENT_LOCAL_API_TRANSPORT: 'tcp', FLEET_AGENT_LOCAL_API_PORT: '0', FLEET_AGENT_TELEMETRY_INTERVAL_SECONDS: '60' });

/** The agent as a child process; keeps the last 200 kB of its output. */
class Agent {
  child = null;
  output = '';
  exited = Promise.resolve();

  get running() {
    return this.child !== null && this.child.exitCode === null && this.child.signalCode === null;
  }

  /** Starts `fleet-agent run`; resolves true once it logged that it started, false if it exited or took over 30 s. */
  async start() {
    this.output = '';
    const child = spawn(process.execPath, [agentMain, 'run', '--data-dir', dataDir], { env: agentEnv, stdio: ['ignore', 'pipe', 'pipe'] });
    const append = (d) => {
      this.output += d.toString();
      if (this.output.length > 200_000) this.output = this.output.slice(-100_000);
    };
    child.stdout.on('data', append);
    child.stderr.on('data', append);
    this.child = child;
    this.exited = new Promise((resolve) => child.once('exit', resolve));
    const deadline = Date.now() + 30_000;
    while (Date.now() < deadline) {
      if (this.output.includes(' started as ')) return true;
      if (child.exitCode !== null) return false;
      await sleep(20);
    }
    return false;
  }

  /** SIGKILL: what a power cut looks like to the agent. */
  async kill() {
    if (this.running) this.child.kill('SIGKILL');
    await this.exited;
  }

  async stop() {
    if (!this.running) return;
    this.child.kill('SIGTERM');
    await Promise.race([this.exited, sleep(20_000)]);
    await this.kill();
  }
}

function journal() {
  try {
    return JSON.parse(readFileSync(join(dataDir, 'state', 'journal', `${MODEL}.json`), 'utf8'));
  } catch {
    return undefined;
  }
}

/**
 * What `current` holds: the version directory it points at and whether the bytes there are that
 * version, complete (sha256 of the uploaded artifact). No `current` at all counts as unverified:
 * the device had a committed version before the first round.
 */
function activeModel() {
  const link = join(dataDir, 'models', MODEL, 'current');
  let version;
  try {
    version = basename(readlinkSync(link));
  } catch {
    return { version: null, verified: false, reason: 'no current pointer' };
  }
  let bytes;
  try {
    bytes = readFileSync(join(link, FILE));
  } catch (err) {
    return { version, verified: false, reason: `cannot read ${FILE}: ${err.code ?? err}` };
  }
  const expected = SHA.get(version);
  if (!expected) return { version, verified: false, reason: `unknown version ${version}` };
  const actual = sha256(bytes);
  return actual === expected ? { version, verified: true } : { version, verified: false, reason: `sha256 ${actual} (${bytes.length} bytes) != ${expected}` };
}

async function until(check, timeoutMs, everyMs = 100) {
  const deadline = Date.now() + timeoutMs;
  let last;
  for (;;) {
    last = await check();
    if (last.ok) return last;
    if (Date.now() > deadline) return last;
    await sleep(everyMs);
  }
}

const cp = await startControlPlane();
const api = adminApi(cp.baseUrl, cp.adminKey);
const agent = new Agent();
const counts = { rounds: 0, partialOrUnverified: 0, failedStarts: 0, stuck: 0 };
const killedIn = {};
const outcomes = {};
const kinds = { good: 0, slow: 0, bad: 0, superseded: 0, outage: 0 };
const roundMs = [];
const problems = [];
const startedAt = new Date();
/** Longest warm-up update per kind of version, in ms. */
const updateMs = {};

try {
  const healthScript = join(work, 'health-check.sh');
  writeFileSync(healthScript, HEALTH_SCRIPT, { mode: 0o755 });
  mkdirSync(dataDir, { recursive: true });
  writeFileSync(
    join(dataDir, 'agent.json'),
    JSON.stringify({
      runtimes: { onnx: { enabled: false }, command: { command: healthScript, timeoutSeconds: 30 } },
      healthCheckTimeoutSeconds: 30,
      updateTimeoutSeconds: UPDATE_TIMEOUT_SECONDS,
    }),
  );
  await api.createModel(MODEL);
  for (const v of VERSIONS) await api.upload(MODEL, v.version, FILE, v.bytes, { runtime: 'command' });
  const token = await api.token('crash-rounds');
  execFileSync(process.execPath, [agentMain, 'enroll', '--server', cp.baseUrl, '--token', token, '--data-dir', dataDir, '--id', DEVICE], { env: agentEnv });
  if (!(await agent.start())) throw new Error(`agent did not start:\n${agent.output}`);

  /** The control plane's view of the model on the device. */
  const view = async () => (await api.device(DEVICE)).models.find((m) => m.model === MODEL);

  /** Waits until the update of the current desired revision ended, on the device and on the control plane. */
  const settle = async (timeoutMs) =>
    until(async () => {
      const m = await view().catch(() => undefined);
      const j = journal();
      const ok =
        m !== undefined &&
        j !== undefined &&
        m.reportedRevision === m.desiredRevision &&
        ENDED.includes(m.reportedState) &&
        j.desired.revision === m.desiredRevision &&
        ENDED.includes(j.state);
      return { ok, view: m, journal: j && { state: j.state, version: j.desired.version, revision: j.desired.revision, restarts: j.restarts } };
    }, timeoutMs);

  // Warm-up without crashes: a first version committed, and how long each kind of update takes on
  // the device (from the assignment until the agent journals its end), which sets the kill window.
  for (const v of VERSIONS) {
    const t0 = Date.now();
    await api.assign(DEVICE, MODEL, v.version);
    await until(
      async () => {
        const j = journal();
        return { ok: j !== undefined && j.desired.version === v.version && ENDED.includes(j.state) };
      },
      60_000,
      5,
    );
    updateMs[v.kind] = Math.max(updateMs[v.kind] ?? 0, Date.now() - t0);
    const s = await settle(60_000);
    const expected = v.kind === 'bad' ? 'rolled-back' : 'committed';
    if (!s.ok || s.view.reportedState !== expected)
      throw new Error(`warm-up update to ${v.version} did not end ${expected}: ${JSON.stringify(s)}\n${agent.output.slice(-4000)}`);
  }
  log(`warm-up done; updates take ${JSON.stringify(updateMs)} ms; seed ${SEED}; ${ROUNDS} rounds`);

  for (let round = 1; round <= ROUNDS; round++) {
    const t0 = Date.now();
    const active = activeModel().version;
    const others = VERSIONS.filter((v) => v.version !== active);
    const pick = (kind) => others.find((v) => v.kind === kind) ?? others[0];
    const r = random();
    const target = r < 0.15 ? pick('bad') : r < 0.3 ? pick('slow') : pick('good');
    const supersede = random() < 0.2 ? others.filter((v) => v !== target)[Math.floor(random() * (others.length - 1))] : undefined;
    kinds[target.kind]++;
    if (supersede) kinds.superseded++;

    // Kill uniformly over the update (plus a margin: sometimes just after it ended).
    const window = Math.max(200, 1.25 * Math.max(updateMs[target.kind], supersede ? updateMs[supersede.kind] : 0));
    const outage = OUTAGE_EVERY > 0 && round % OUTAGE_EVERY === 0;
    // An outage round cuts the power early, while the update is most likely before activation.
    const killAt = Math.floor(random() * window * (outage ? 0.5 : 1));
    const supersedeAt = Math.floor(random() * window);
    const assigned = Date.now();
    await api.assign(DEVICE, MODEL, target.version);
    let supersedeError;
    const supersedeDone = supersede
      ? sleep(Math.max(0, supersedeAt - (Date.now() - assigned)))
          .then(() => api.assign(DEVICE, MODEL, supersede.version))
          .catch((err) => {
            supersedeError = err; // rethrown below: the rejection must not go unhandled while we wait
          })
      : Promise.resolve();
    await sleep(Math.max(0, killAt - (Date.now() - assigned)));
    await agent.kill();
    const atKill = journal();
    const killState = atKill
      ? `${atKill.state}${atKill.desired.version === target.version || atKill.desired.version === supersede?.version ? '' : ' (previous update)'}`
      : 'no entry';
    killedIn[killState] = (killedIn[killState] ?? 0) + 1;

    const problem = (what, detail) => {
      problems.push({ round, what, target: target.version, supersede: supersede?.version, killAt, killState, outage, ...detail });
      log(`round ${round}: ${what}: ${JSON.stringify(detail).slice(0, 2000)}`);
    };

    // Power is off: whatever `current` points at must be a complete, verified version.
    const dead = activeModel();
    let partial = !dead.verified;
    if (partial) problem('partial or unverified model while the agent was dead', { active: dead });

    await supersedeDone;
    if (supersedeError) throw supersedeError;
    if (outage) {
      kinds.outage++;
      await sleep(UPDATE_TIMEOUT_SECONDS * 1000 + 500 + Math.floor(random() * 1500));
    }
    let started = await agent.start();
    if (!started) {
      counts.failedStarts++;
      problem('agent failed to start', { output: agent.output.slice(-4000) });
      await agent.kill();
      started = await agent.start(); // keep going, so the remaining rounds still say something
      if (!started) throw new Error(`agent failed to start twice in a row:\n${agent.output.slice(-4000)}`);
    }
    // The control plane is reachable again once it shows the device online.
    await until(async () => ({ ok: (await api.device(DEVICE).catch(() => ({ online: false }))).online === true }), STUCK_BOUND_MS);
    const s = await settle(STUCK_BOUND_MS);
    if (!s.ok) {
      counts.stuck++;
      problem('model stuck', { view: s.view, journal: s.journal, output: agent.output.slice(-4000) });
    } else {
      outcomes[s.journal.state] = (outcomes[s.journal.state] ?? 0) + 1;
    }
    const after = activeModel();
    if (!after.verified) {
      partial = true;
      problem('partial or unverified model after recovery', { active: after });
    }
    if (partial) counts.partialOrUnverified++;
    counts.rounds = round;
    roundMs.push(Date.now() - t0);
    if (round % 10 === 0 || round === ROUNDS) {
      log(
        `round ${round}/${ROUNDS}: partial ${counts.partialOrUnverified}, failed starts ${counts.failedStarts}, stuck ${counts.stuck}; median round ${median(roundMs)} ms`,
      );
    }
  }
} finally {
  await agent.stop().catch(() => undefined);
  await cp.stop().catch(() => undefined);
  await rm(work, { recursive: true, force: true }).catch(() => undefined);
}

const sorted = [...roundMs].sort((a, b) => a - b);
const result = {
  name: 'agent-crash-rounds',
  startedAt: startedAt.toISOString(),
  seconds: Math.round((Date.now() - startedAt.getTime()) / 1000),
  seed: SEED,
  database: cp.database,
  node: process.version,
  artifactBytes: ARTIFACT_BYTES,
  stuckBoundSeconds: STUCK_BOUND_MS / 1000,
  warmUpUpdateMs: updateMs,
  ...counts,
  roundMs: {
    median: median(roundMs),
    p95: sorted[Math.floor(sorted.length * 0.95)] ?? null,
    max: sorted.at(-1) ?? null,
    mean: roundMs.length ? Math.round(roundMs.reduce((a, b) => a + b, 0) / roundMs.length) : null,
  },
  assignments: kinds,
  killedIn,
  outcomes,
  problems,
};
mkdirSync(dirname(RESULTS_FILE), { recursive: true });
writeFileSync(RESULTS_FILE, `${JSON.stringify(result, null, 2)}\n`);
process.stdout.write(
  [
    `rounds: ${counts.rounds}`,
    `devices on a partial or unverified model: ${counts.partialOrUnverified}`,
    `agents that failed to start: ${counts.failedStarts}`,
    `models stuck: ${counts.stuck}`,
    `round duration: median ${result.roundMs.median} ms, p95 ${result.roundMs.p95} ms, max ${result.roundMs.max} ms`,
    `killed in: ${JSON.stringify(killedIn)}`,
    `outcomes: ${JSON.stringify(outcomes)}`,
    `results: ${RESULTS_FILE}`,
    '',
  ].join('\n'),
);
process.exitCode = counts.partialOrUnverified + counts.failedStarts + counts.stuck === 0 && counts.rounds === ROUNDS ? 0 : 1;
