#!/usr/bin/env node
// TUF metadata per device refresh: how many bytes of signed metadata one device downloads to
// resolve one target, with a small catalogue and with a large one (hash bins, TAP 15; docs/tuf.md
// "Hash bins"). Runs the built TufRepositoryService in-process on an embedded PGlite database:
// registers BENCH_TUF_SMALL targets, measures a cold device refresh (pinned root only, as after
// enrollment) through tuf-js, then registers targets up to BENCH_TUF_TARGETS (generated small
// entries, published BENCH_TUF_BATCH at a time, each batch one set-based publish) and measures again.
// Run after `npm run build`:  node test/bench/tuf-metadata.bench.mjs
// Env: BENCH_TUF_TARGETS (default 200000), BENCH_TUF_SMALL (default 10), BENCH_TUF_BATCH (default
//      50000), BENCH_TUF_BINS (TUF_BIN_COUNT, default the control plane's default).
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Logger } from '@nestjs/common';
import { BaseFetcher, Updater } from 'tuf-js';
import { DownloadHTTPError } from 'tuf-js/dist/error.js';
import { log, writeResult } from './helpers/agent-bench-util.mjs';

const dist = new URL('../../apps/control-plane/dist/', import.meta.url);
const { buildDataSourceOptions, initialiseDataSource } = await import(new URL('infra/database/data-source.factory.js', dist).href);
const { DEFAULT_TUF_BIN_COUNT } = await import(new URL('infra/config/config.schema.js', dist).href);
const { TufRepositoryService } = await import(new URL('distribution/tuf-repository.service.js', dist).href);
const { TufMetadataRepository } = await import(new URL('distribution/tuf-metadata.repository.js', dist).href);

const TARGETS = Number(process.env.BENCH_TUF_TARGETS ?? 200_000);
const SMALL = Number(process.env.BENCH_TUF_SMALL ?? 10);
const BATCH = Number(process.env.BENCH_TUF_BATCH ?? 50_000);
const BINS = Number(process.env.BENCH_TUF_BINS ?? DEFAULT_TUF_BIN_COUNT);
for (const [name, value] of Object.entries({ TARGETS, SMALL, BATCH, BINS })) {
  if (!Number.isInteger(value) || value < 1) throw new Error(`BENCH_TUF_${name} must be a positive integer`);
}
if (SMALL >= TARGETS) throw new Error('BENCH_TUF_SMALL must be below BENCH_TUF_TARGETS');

Logger.overrideLogger(['error']);

/** A catalogue entry shaped like an upload's: `{model}/{version}/{file}`, sha256, length, custom. */
function target(i) {
  const model = `model-${i % 1000}`;
  const version = `1.${Math.floor(i / 3000)}.${Math.floor(i / 3) % 1000}`;
  const file = ['model.onnx', 'model-int8.onnx', 'model-fp16.onnx'][i % 3];
  return {
    path: `${model}/${version}/${file}`,
    length: 1_000_000 + i,
    sha256: (BigInt(i) * 0x9e3779b97f4a7c15n).toString(16).padStart(64, '0').slice(-64),
    custom: { model, version, runtime: 'onnx', framework: 'pytorch' },
  };
}

/** Serves the repository straight from the service (no HTTP) and counts the bytes per file. */
class CountingFetcher extends BaseFetcher {
  files = [];
  constructor(tuf) {
    super();
    this.tuf = tuf;
  }

  async fetch(url) {
    const file = url.slice(url.lastIndexOf('/') + 1);
    const match = /^(?:(\d+)\.)?([a-z0-9-]+)\.json$/.exec(file);
    if (!match) throw new DownloadHTTPError(`no file ${file}`, 404);
    let json;
    try {
      json = (match[1] ? await this.tuf.byVersion(match[2], Number(match[1])) : await this.tuf.latest(match[2])).json;
    } catch {
      this.files.push({ file, bytes: 0, status: 404 });
      throw new DownloadHTTPError(`no file ${file}`, 404);
    }
    const bytes = Buffer.from(json, 'utf8');
    this.files.push({ file, bytes: bytes.length });
    return new ReadableStream({
      start(controller) {
        controller.enqueue(new Uint8Array(bytes));
        controller.close();
      },
    });
  }
}

async function deviceRefresh(tuf, path, dir) {
  const metadataDir = await mkdtemp(join(dir, 'device-'));
  await writeFile(join(metadataDir, 'root.json'), await tuf.trustedRoot());
  const fetcher = new CountingFetcher(tuf);
  const updater = new Updater({ metadataDir, targetDir: metadataDir, metadataBaseUrl: 'http://repo/metadata', targetBaseUrl: 'http://repo/targets', fetcher });
  const started = performance.now();
  await updater.refresh();
  const info = await updater.getTargetInfo(path);
  if (!info) throw new Error(`${path} did not resolve`);
  const ms = performance.now() - started;
  const bytes = fetcher.files.reduce((n, f) => n + f.bytes, 0);
  return { bytes, ms: Math.round(ms), files: fetcher.files };
}

async function publish(tuf, dataSource, from, to) {
  const started = performance.now();
  for (let start = from; start < to; start += BATCH) {
    const batch = Array.from({ length: Math.min(BATCH, to - start) }, (_, k) => target(start + k));
    await dataSource.transaction((manager) => tuf.publishTargets(manager, batch));
    tuf.forgetCached();
  }
  return Math.round(performance.now() - started);
}

const dir = await mkdtemp(join(tmpdir(), 'fleetline-tuf-bench-'));
const config = { dataDir: dir, tufKeys: 'online', tufBinCount: BINS, http: {}, database: { kind: 'pglite', dir: join(dir, 'pglite') } };
const dataSource = await initialiseDataSource(buildDataSourceOptions(config.database));
try {
  const tuf = new TufRepositoryService(config, dataSource, new TufMetadataRepository(dataSource));
  await tuf.initialise();
  log(`${BINS} bins; registering ${SMALL} targets`);
  const smallPublishMs = await publish(tuf, dataSource, 0, SMALL);
  const small = await deviceRefresh(tuf, target(SMALL - 1).path, dir);
  log(`${SMALL} targets: a device refresh downloads ${small.bytes} bytes (${small.files.map((f) => `${f.file} ${f.bytes}`).join(', ')})`);
  log(`registering up to ${TARGETS} targets, ${BATCH} per publish`);
  const largePublishMs = await publish(tuf, dataSource, SMALL, TARGETS);
  const large = await deviceRefresh(tuf, target(TARGETS - 1).path, dir);
  log(`${TARGETS} targets: a device refresh downloads ${large.bytes} bytes (${large.files.map((f) => `${f.file} ${f.bytes}`).join(', ')})`);
  const [{ bytes: allBins }] = await dataSource.query(
    `SELECT sum(length(json))::bigint AS bytes FROM tuf_metadata t
      WHERE role LIKE 'bins-%' AND version = (SELECT max(version) FROM tuf_metadata m WHERE m.role = t.role)`,
  );
  const ratio = large.bytes / small.bytes;
  const result = {
    bins: BINS,
    small: { targets: SMALL, refreshBytes: small.bytes, refreshMs: small.ms, publishMs: smallPublishMs, files: small.files },
    large: { targets: TARGETS, refreshBytes: large.bytes, refreshMs: large.ms, publishMs: largePublishMs, files: large.files },
    ratio: Number(ratio.toFixed(2)),
    ratioTarget: 2,
    // What one flat targets.json (the layout before bins) would weigh with the large catalogue.
    flatTargetsBytesApprox: Number(allBins),
  };
  log(`ratio ${result.ratio}x (target <= 2x); a flat targets.json would be about ${Number(allBins)} bytes`);
  writeResult('tuf-metadata', result);
  process.stdout.write(`${JSON.stringify({ bins: BINS, small: small.bytes, large: large.bytes, ratio: result.ratio })}\n`);
} finally {
  await dataSource.destroy();
  await rm(dir, { recursive: true, force: true });
}
