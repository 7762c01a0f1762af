import { describe, it, expect, beforeAll, afterAll } from '@jest/globals';
import { execFileSync } from 'node:child_process';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { ArtifactRef } from '@fleetline/protocol';
import { loadOnnxRuntimeFactory } from './onnx-runtime.js';
import type { RuntimeFactory } from './model-runtime.js';

const SCRIPT = fileURLToPath(new URL('../../scripts/make-test-model.mjs', import.meta.url));
const artifact: ArtifactRef = { targetPath: 'tiny/1.0.0/model.onnx', sha256: 'a'.repeat(64), length: 1, runtime: 'onnx', compatibility: {} };

// onnxruntime-node is an optional dependency: where it is not installed the adapter is not
// registered, and this suite has nothing to run against.
const factory: RuntimeFactory | undefined = await loadOnnxRuntimeFactory();
const maybe = factory ? describe : describe.skip;

maybe('onnx runtime adapter (onnxruntime-node)', () => {
  let dir: string;
  let modelPath: string;

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'fleet-onnx-'));
    modelPath = join(dir, 'model.onnx');
    execFileSync(process.execPath, [SCRIPT, modelPath]);
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('reports the onnxruntime version as a semver', () => {
    expect(factory!.version).toMatch(/^\d+\.\d+\.\d+/);
  });

  it('loads the hand-encoded model, self-tests on zero tensors and infers y = 2x + 1', async () => {
    // onnxruntime-node hands back tensors built with the main realm's typed arrays, which fail
    // instanceof checks inside Jest's vm sandbox. So this runs the adapter (compiled on the fly
    // with swc, it has no runtime imports) in a plain Node child process, as on a device.
    const { transformFileSync } = await import('@swc/core');
    const cacheRoot = fileURLToPath(new URL('../../node_modules/.cache/', import.meta.url));
    await mkdir(cacheRoot, { recursive: true });
    const work = await mkdtemp(join(cacheRoot, 'onnx-adapter-'));
    try {
      const compiled = transformFileSync(fileURLToPath(new URL('./onnx-runtime.ts', import.meta.url)), {
        jsc: { parser: { syntax: 'typescript' }, target: 'es2022' },
        module: { type: 'es6' },
        swcrc: false,
      });
      await writeFile(join(work, 'onnx-runtime.mjs'), compiled.code);
      await writeFile(
        join(work, 'harness.mjs'),
        `import { loadOnnxRuntimeFactory } from './onnx-runtime.mjs';
const f = await loadOnnxRuntimeFactory();
const rt = f.create();
await rt.load(process.argv[2], { runtime: 'onnx' });
await rt.selfTest();
const ort = await import('onnxruntime-node');
const out = await rt.infer({ x: new ort.Tensor('float32', Float32Array.from([1, 2, 3, 4]), [1, 4]) });
await rt.unload();
process.stdout.write(JSON.stringify({ version: f.version, y: Array.from(out.y.data) }));
`,
      );
      const result = JSON.parse(execFileSync(process.execPath, [join(work, 'harness.mjs'), modelPath], { encoding: 'utf8' })) as {
        version: string;
        y: number[];
      };
      expect(result.y).toEqual([3, 5, 7, 9]);
      expect(result.version).toBe(factory!.version);
    } finally {
      await rm(work, { recursive: true, force: true });
    }
  });

  it('fails to load a corrupt model (the health check would roll it back)', async () => {
    const bad = join(dir, 'bad.onnx');
    await writeFile(bad, Buffer.from('definitely not protobuf'));
    const rt = factory!.create();
    await expect(rt.load(bad, artifact)).rejects.toThrow();
    await rt.unload();
  });
});
