import { describe, expect, it } from '@jest/globals';
import fc from 'fast-check';
import { buildsOf, checkBuild, checkCompatibility, DEFAULT_VARIANT, selectVariant, variantOf } from './compatibility.js';
import type { ArtifactRef, Compatibility } from './messages.js';

const device = { hardwareClass: 'jetson-orin', agentVersion: '0.3.1', runtimes: { onnx: '1.30.0' }, accelerators: ['cuda'] };

describe('checkCompatibility', () => {
  it('accepts a device that meets every constraint', () => {
    expect(
      checkCompatibility({ hardwareClasses: ['jetson-orin'], runtimeRange: '>=1.17', agentRange: '>=0.3.0', accelerators: ['cuda'] }, 'onnx', device),
    ).toEqual({
      compatible: true,
    });
    expect(checkCompatibility({}, 'onnx', device)).toEqual({ compatible: true });
  });

  it('names the first constraint a device fails', () => {
    expect(checkCompatibility({ hardwareClasses: ['rpi4'] }, 'onnx', device)).toMatchObject({ compatible: false, code: 'incompatible-hardware' });
    expect(checkCompatibility({ accelerators: ['tpu'] }, 'onnx', device)).toMatchObject({ compatible: false, code: 'incompatible-hardware' });
    expect(checkCompatibility({}, 'tflite', device)).toMatchObject({ compatible: false, code: 'incompatible-runtime' });
    expect(checkCompatibility({ runtimeRange: '>=2' }, 'onnx', device)).toMatchObject({ compatible: false, code: 'incompatible-runtime' });
    expect(checkCompatibility({ agentRange: '^1.0.0' }, 'onnx', device)).toMatchObject({ compatible: false, code: 'incompatible-agent' });
  });
});

const artifact = (variant: string | undefined, compatibility: Compatibility = {}, runtime = 'onnx'): ArtifactRef => ({
  targetPath: `m/1.0.0/${variant ?? 'x'}-${Math.random().toString(36).slice(2)}.bin`,
  sha256: 'a'.repeat(64),
  length: 10,
  runtime,
  compatibility,
  ...(variant === undefined ? {} : { variant }),
});

describe('selectVariant', () => {
  const cpu = { hardwareClass: 'x86_64', agentVersion: '0.3.1', runtimes: { onnx: '1.30.0' }, accelerators: [] };
  const npu = { ...cpu, hardwareClass: 'rk3588', accelerators: ['npu'] };
  const builds = [
    artifact('npu-int8', { accelerators: ['npu'] }),
    artifact('gpu-fp16', { accelerators: ['cuda'], runtimeRange: '>=1.17' }),
    artifact('cpu-fp32', { hardwareClasses: ['x86_64', 'rk3588'] }),
  ];

  it('picks the first build, in declared order, that fits the device', () => {
    expect(selectVariant(builds, npu)).toMatchObject({ ok: true, variant: 'npu-int8', rank: 0 });
    expect(selectVariant(builds, { ...cpu, accelerators: ['cuda'] })).toMatchObject({ ok: true, variant: 'gpu-fp16', rank: 1 });
    expect(selectVariant(builds, cpu)).toMatchObject({ ok: true, variant: 'cpu-fp32', rank: 2, artifacts: [builds[2]] });
  });

  it('says why no build fits, build by build', () => {
    const result = selectVariant(builds, { ...cpu, hardwareClass: 'mcu' });
    expect(result).toMatchObject({ ok: false, code: 'incompatible-hardware' });
    expect(!result.ok && result.reason).toBe(
      'no build fits: npu-int8 (needs npu); gpu-fp16 (needs cuda); cpu-fp32 (hardware class mcu not in [x86_64, rk3588])',
    );
    expect(selectVariant([artifact(undefined, { accelerators: ['npu'] })], cpu)).toMatchObject({ ok: false, reason: 'no build fits: needs npu' });
    expect(selectVariant([], cpu)).toMatchObject({ ok: false, code: 'internal' });
  });

  it('treats artifacts without a variant as one build of all its files (every file must fit)', () => {
    const files = [artifact(undefined), artifact(undefined, { agentRange: '>=9' })];
    expect(buildsOf(files)).toEqual([{ variant: DEFAULT_VARIANT, rank: 0, artifacts: files }]);
    expect(selectVariant(files, cpu)).toMatchObject({ ok: false, code: 'incompatible-agent' });
    expect(selectVariant([files[0]!], cpu)).toMatchObject({ ok: true, variant: 'default' });
  });

  it('checks only the named build when told which one', () => {
    expect(selectVariant(builds, npu, 'cpu-fp32')).toMatchObject({ ok: true, variant: 'cpu-fp32' });
    expect(selectVariant(builds, cpu, 'npu-int8')).toMatchObject({ ok: false, code: 'incompatible-hardware', reason: 'no build fits: needs npu' });
    expect(selectVariant(builds, cpu, 'tpu')).toMatchObject({ ok: false, code: 'internal' });
  });

  it('refuses invalid ranges instead of matching them', () => {
    expect(checkCompatibility({ runtimeRange: 'not a range!!' }, 'onnx', cpu)).toMatchObject({ compatible: false, code: 'incompatible-runtime' });
    expect(checkCompatibility({ agentRange: '>=0.3.0' }, 'onnx', { ...cpu, agentVersion: '0.4.0-rc.1' })).toEqual({ compatible: true });
  });

  // Random versions (1-6 builds of 1-2 files, constraints drawn from small pools) against random devices.
  const pick = <T>(values: readonly T[]): fc.Arbitrary<T> => fc.constantFrom(...values);
  const constraintsArb: fc.Arbitrary<Compatibility> = fc.record(
    {
      hardwareClasses: fc.subarray(['x86_64', 'rk3588', 'jetson', 'mcu']),
      accelerators: fc.subarray(['npu', 'cuda']),
      runtimeRange: pick(['>=1.17', '^2.0.0', '1.x', '*']),
      agentRange: pick(['>=0.1.0', '>=1.0.0']),
    },
    { requiredKeys: [] },
  );
  const versionArb = fc
    .array(fc.tuple(pick(['a', 'b', 'c', 'd', 'e', 'f']), constraintsArb, pick(['onnx', 'tflite'])), { minLength: 1, maxLength: 8 })
    .map((files) => files.map(([variant, c, runtime]) => artifact(variant, c, runtime)));
  const deviceArb = fc.record({
    hardwareClass: pick(['x86_64', 'rk3588', 'jetson', 'mcu']),
    agentVersion: pick(['0.3.1', '1.2.0']),
    runtimes: fc.dictionary(pick(['onnx', 'tflite']), pick(['1.20.0', '2.1.0'])),
    accelerators: fc.subarray(['npu', 'cuda']),
  });

  it('property: the chosen build always fits, and no build ranked above it does', () => {
    fc.assert(
      fc.property(versionArb, deviceArb, (artifacts, device) => {
        const result = selectVariant(artifacts, device);
        const builds = buildsOf(artifacts);
        if (result.ok) {
          expect(checkBuild({ artifacts: result.artifacts }, device)).toEqual({ compatible: true });
          expect(result.artifacts.every((a) => variantOf(a) === result.variant)).toBe(true);
          for (const higher of builds.filter((b) => b.rank < result.rank)) expect(checkBuild(higher, device).compatible).toBe(false);
        } else {
          for (const build of builds) expect(checkBuild(build, device).compatible).toBe(false);
          expect(result.rejected.map((r) => r.variant)).toEqual(builds.map((b) => b.variant));
        }
      }),
      { numRuns: 500 },
    );
  });

  it('property: re-selecting among the chosen build only gives the same build (what the agent re-checks)', () => {
    fc.assert(
      fc.property(versionArb, deviceArb, (artifacts, device) => {
        const result = selectVariant(artifacts, device);
        if (!result.ok) return;
        expect(selectVariant(result.artifacts, device, result.variant)).toMatchObject({ ok: true, variant: result.variant, artifacts: result.artifacts });
      }),
    );
  });
});
