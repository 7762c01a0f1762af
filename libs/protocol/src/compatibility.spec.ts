import { describe, expect, it } from '@jest/globals';
import { checkCompatibility } from './compatibility.js';

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
