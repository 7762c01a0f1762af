import { describe, it, expect } from '@jest/globals';
import { checkBuild, checkCompatibility, type DeviceCapabilities } from './compatibility.js';
import type { ArtifactRef } from './messages.js';

// The cases the agent's own compatibility check had before it was folded into this one rule.
const checkArtifactCompatibility = (a: ArtifactRef, d: DeviceCapabilities): { ok: boolean; code?: string; message?: string } => {
  const r = checkCompatibility(a.compatibility, a.runtime, d);
  return r.compatible ? { ok: true } : { ok: false, code: r.code, message: r.reason };
};

const device: DeviceCapabilities = {
  hardwareClass: 'jetson-orin',
  accelerators: ['cuda'],
  agentVersion: '0.3.1',
  runtimes: { onnx: '1.30.0', command: '1.0.0' },
};
const artifact = (compatibility: ArtifactRef['compatibility'], runtime = 'onnx'): ArtifactRef => ({
  targetPath: 'm/1.0.0/m.onnx',
  sha256: 'a'.repeat(64),
  length: 1,
  runtime,
  compatibility,
});

describe('compatibility (cases from the agent)', () => {
  it('accepts an artifact without constraints when the runtime exists', () => {
    expect(checkArtifactCompatibility(artifact({}), device)).toEqual({ ok: true });
  });

  it('matches hardware classes', () => {
    expect(checkArtifactCompatibility(artifact({ hardwareClasses: ['jetson-orin', 'x86_64'] }), device).ok).toBe(true);
    expect(checkArtifactCompatibility(artifact({ hardwareClasses: ['rpi5'] }), device)).toMatchObject({ ok: false, code: 'incompatible-hardware' });
    expect(checkArtifactCompatibility(artifact({ hardwareClasses: [] }), device).ok).toBe(true);
  });

  it('requires every accelerator (a missing one is a hardware mismatch)', () => {
    expect(checkArtifactCompatibility(artifact({ accelerators: ['cuda'] }), device).ok).toBe(true);
    expect(checkArtifactCompatibility(artifact({ accelerators: ['cuda', 'tensorrt'] }), device)).toMatchObject({
      ok: false,
      code: 'incompatible-hardware',
      message: expect.stringContaining('tensorrt'),
    });
  });

  it('checks the runtime exists and its version range', () => {
    expect(checkArtifactCompatibility(artifact({}, 'tflite'), device)).toMatchObject({ ok: false, code: 'incompatible-runtime' });
    expect(checkArtifactCompatibility(artifact({ runtimeRange: '>=1.17' }), device).ok).toBe(true);
    expect(checkArtifactCompatibility(artifact({ runtimeRange: '^2' }), device)).toMatchObject({ ok: false, code: 'incompatible-runtime' });
    expect(checkArtifactCompatibility(artifact({ runtimeRange: 'not a range!!' }), device)).toMatchObject({ ok: false, code: 'incompatible-runtime' });
  });

  it('checks the agent version range, pre-releases included', () => {
    expect(checkArtifactCompatibility(artifact({ agentRange: '>=0.3.0' }), device).ok).toBe(true);
    expect(checkArtifactCompatibility(artifact({ agentRange: '>=0.4.0' }), device)).toMatchObject({ ok: false, code: 'incompatible-agent' });
    expect(checkArtifactCompatibility(artifact({ agentRange: '>=0.3.0' }), { ...device, agentVersion: '0.4.0-rc.1' }).ok).toBe(true);
  });

  it('reports the first mismatching artifact of an assignment', () => {
    expect(checkBuild({ artifacts: [artifact({}), artifact({ agentRange: '>=9' })] }, device)).toMatchObject({ compatible: false, code: 'incompatible-agent' });
  });
});
