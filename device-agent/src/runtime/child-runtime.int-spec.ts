import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import type { ArtifactRef } from '@fleetline/protocol';
import { probeChildRuntime, type ChildRuntimeOptions } from './child-runtime.js';

// The child is a plain Node process, so it runs the compiled files (npm run build).
const dist = fileURLToPath(new URL('../../dist/', import.meta.url));
const childScript = join(dist, 'runtime/runtime-child.js');
const fixture = pathToFileURL(join(dist, 'testing/health-runtime.fixture.js')).href;
const artifact: ArtifactRef = { targetPath: 'm/1.0.0/model.bin', sha256: 'a'.repeat(64), length: 1, runtime: 'fixture', compatibility: {} };

/** Pids of the runtime children of this process still alive (by their command line). */
function liveChildren(): number[] {
  const out = spawnSync('ps', ['-o', 'pid=,args=', '--ppid', String(process.pid)], { encoding: 'utf8' }).stdout;
  return out
    .split('\n')
    .filter((l) => l.includes('runtime-child.js'))
    .map((l) => Number(l.trim().split(/\s+/)[0]));
}

describe('runtime in a child process', () => {
  let dir: string;
  const opts: ChildRuntimeOptions = { name: 'fixture', module: fixture, childScript };

  beforeAll(async () => {
    if (!existsSync(childScript) || !existsSync(fileURLToPath(fixture))) throw new Error(`${childScript} missing: run "npm run build" first`);
    dir = await mkdtemp(join(tmpdir(), 'fleet-child-runtime-'));
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  async function model(word: string): Promise<string> {
    const path = join(dir, `${word}.bin`);
    await writeFile(path, word);
    return path;
  }

  it('probe: a factory with the version the child reports; none when the runtime is not available', async () => {
    const f = await probeChildRuntime(opts);
    expect(f?.name).toBe('fixture');
    expect(f?.version).toBe('2.3.4');
    expect(await probeChildRuntime({ ...opts, module: `${fixture}?unavailable` })).toBeUndefined();
    expect(await probeChildRuntime({ ...opts, module: pathToFileURL(join(dir, 'no-such-module.js')).href })).toBeUndefined();
    expect(liveChildren()).toEqual([]);
  });

  it('check: passes a healthy model, fails with the self-test message, and the child is gone after each', async () => {
    const f = (await probeChildRuntime(opts))!;
    const ok = f.create();
    await ok.load(await model('ok'), artifact);
    await expect(ok.selfTest()).resolves.toBeUndefined();
    await ok.unload();

    const bad = f.create();
    await bad.load(await model('bad'), artifact);
    await expect(bad.selfTest()).rejects.toThrow('model says bad');
    await bad.unload();
    expect(liveChildren()).toEqual([]);
  });

  it('a child that dies before answering is a failed check', async () => {
    const rt = (await probeChildRuntime(opts))!.create();
    await rt.load(await model('exit'), artifact);
    await expect(rt.selfTest()).rejects.toThrow(/exited with 7 before answering/);
  });

  it('unload during a hanging check (health-check timeout) kills the child', async () => {
    const rt = (await probeChildRuntime(opts))!.create();
    await rt.load(await model('hang'), artifact);
    const check = rt.selfTest();
    const started = Date.now();
    while (liveChildren().length === 0) {
      if (Date.now() - started > 10_000) throw new Error('runtime child never started');
      await new Promise((r) => setTimeout(r, 20));
    }
    await rt.unload();
    await expect(check).rejects.toThrow(/SIGKILL/);
    expect(liveChildren()).toEqual([]);
  });

  it('without selfTest after load nothing is started', async () => {
    const rt = (await probeChildRuntime(opts))!.create();
    await expect(rt.selfTest()).rejects.toThrow('no model loaded');
  });
});

// onnxruntime-node is optional: where it is installed the real adapter runs in the child.
const onnxInstalled = spawnSync(process.execPath, ['--input-type=module', '-e', "await import('onnxruntime-node')"], { cwd: dist }).status === 0;
(onnxInstalled ? describe : describe.skip)('onnx runtime in a child process (onnxruntime-node installed)', () => {
  const onnx: ChildRuntimeOptions = { name: 'onnx', module: pathToFileURL(join(dist, 'runtime/onnx-runtime.js')).href, childScript };
  let dir: string;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'fleet-child-onnx-'));
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('probes the onnxruntime version, passes the test model and fails a corrupt one', async () => {
    const f = await probeChildRuntime(onnx);
    expect(f?.version).toMatch(/^\d+\.\d+\.\d+/);
    const good = join(dir, 'model.onnx');
    execFileSync(process.execPath, [fileURLToPath(new URL('../../scripts/make-test-model.mjs', import.meta.url)), good]);
    const rt = f!.create();
    await rt.load(good, { ...artifact, runtime: 'onnx' });
    await expect(rt.selfTest()).resolves.toBeUndefined();
    const corrupt = join(dir, 'corrupt.onnx');
    await writeFile(corrupt, 'not a model');
    const bad = f!.create();
    await bad.load(corrupt, { ...artifact, runtime: 'onnx' });
    await expect(bad.selfTest()).rejects.toThrow();
  });
});
