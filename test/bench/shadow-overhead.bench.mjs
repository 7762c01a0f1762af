// Local API latency of the application with and without a shadow candidate (issue #12: overhead
// <= 10 % at p95). One LocalApiServer on loopback TCP; each request is one POST /v1/inferences of
// a single result with an input, sent one after the other as an application reporting each
// inference would. What serves it is the path Agent.recordInference takes: the telemetry
// aggregator, then (with a shadow) ShadowSession.offer, whose candidate (the simulated runtime,
// answering after CANDIDATE_MS off the event loop as a native runtime's thread pool would) runs
// from its bounded queue. Built code only: run `npm run build` first.
//
//   node test/bench/shadow-overhead.bench.mjs [requests=5000] [samplePercent=100]
import { performance } from 'node:perf_hooks';
import { request, Agent as HttpAgent } from 'node:http';
import { LocalApiServer } from '../../device-agent/dist/local-api/local-api-server.js';
import { TelemetryAggregator } from '../../device-agent/dist/telemetry/aggregator.js';
import { ShadowSession } from '../../device-agent/dist/shadow/shadow-session.js';
import { SimulatedRuntime } from '../../device-agent/dist/runtime/simulated-runtime.js';

const REQUESTS = Number(process.argv[2] ?? 5000);
const SAMPLE_PERCENT = Number(process.argv[3] ?? 100);
const CANDIDATE_MS = 2;
const ROUNDS = 4;
const artifact = { targetPath: 'clf/2.0.0/model.sim', sha256: 'a'.repeat(64), length: 1, runtime: 'simulated', compatibility: {} };

function stand(session) {
  const aggregator = new TelemetryAggregator();
  return {
    on() {},
    off() {},
    async activeModels() {
      return [{ model: 'clf', version: '1.0.0', previousVersion: null, path: '/nowhere' }];
    },
    recordInference(sample) {
      aggregator.record(sample, '1.0.0');
      if (session && sample.input !== undefined && sample.ok) session.offer(sample.input, sample.label !== undefined ? { label: sample.label } : undefined);
      return true;
    },
  };
}

async function run(session) {
  const server = new LocalApiServer(stand(session), { port: 0 });
  await server.start();
  const url = new URL(server.address);
  const agent = new HttpAgent({ keepAlive: true, maxSockets: 1 });
  const post = (body) =>
    new Promise((resolve, reject) => {
      const req = request(
        {
          host: url.hostname,
          port: url.port,
          path: '/v1/inferences',
          method: 'POST',
          agent,
          headers: { 'content-type': 'application/json', host: `127.0.0.1:${url.port}` },
        },
        (res) => {
          res.resume();
          res.on('end', () => (res.statusCode === 202 ? resolve() : reject(new Error(`status ${res.statusCode}`))));
        },
      );
      req.on('error', reject);
      req.end(body);
    });
  const body = JSON.stringify({ model: 'clf', latencyMs: 3, ok: true, label: 'cat', input: { label: 'cat', pixels: new Array(64).fill(0.5) } });
  for (let i = 0; i < 200; i++) await post(body); // warm-up
  const times = [];
  for (let i = 0; i < REQUESTS / ROUNDS; i++) {
    const t = performance.now();
    await post(body);
    times.push(performance.now() - t);
  }
  agent.destroy();
  await server.stop();
  return times;
}

function quantiles(times) {
  const sorted = [...times].sort((a, b) => a - b);
  const q = (p) => Math.round(sorted[Math.min(sorted.length - 1, Math.floor(p * sorted.length))] * 1000) / 1000;
  return { p50: q(0.5), p95: q(0.95), p99: q(0.99) };
}

const runtime = new SimulatedRuntime('1.0.0', () => ({ healthFail: 0, inferLatencyMs: CANDIDATE_MS, disagreement: 0.1 }));
await runtime.load('', artifact);
const session = new ShadowSession({ model: 'clf', version: '2.0.0', directive: { samplePercent: SAMPLE_PERCENT, durationSeconds: 3600 }, runtime });
// Rounds alternate, so a noisy neighbour on the machine weighs on both sides alike.
const plain = [];
const shadowed = [];
for (let r = 0; r < ROUNDS; r++) {
  // Which side goes first alternates too, so warm-up and order effects cancel out.
  if (r % 2 === 0) {
    plain.push(...(await run(undefined)));
    shadowed.push(...(await run(session)));
  } else {
    shadowed.push(...(await run(session)));
    plain.push(...(await run(undefined)));
  }
}
const without = quantiles(plain);
const withShadow = quantiles(shadowed);
await session.whenIdle();
const report = session.takeInterval();
session.end('stopped');
await session.closed();
const overhead = (withShadow.p95 / without.p95 - 1) * 100;
console.log(
  JSON.stringify(
    {
      requests: REQUESTS,
      samplePercent: SAMPLE_PERCENT,
      candidateMs: CANDIDATE_MS,
      withoutMs: without,
      withShadowMs: withShadow,
      p95OverheadPercent: Math.round(overhead * 10) / 10,
      shadow: report && { mirrored: report.mirrored, dropped: report.dropped, count: report.count, compared: report.compared, agreed: report.agreed },
    },
    null,
    2,
  ),
);
// The bound: a shadow may cost the application at most 10 % at p95 (meaningful on a quiet machine).
if (overhead > 10) {
  console.error(`p95 overhead ${overhead.toFixed(1)} % exceeds 10 %`);
  process.exitCode = 1;
}
