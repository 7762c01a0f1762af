import { describe, expect, it } from '@jest/globals';
import { isTargetOfModelVersion, modelTargetPath } from './targets.js';

describe('TUF target naming', () => {
  it('names a model version file and recognises it as that model version', () => {
    const path = modelTargetPath('detector', '2.0.0', 'weights.onnx');
    expect(path).toBe('detector/2.0.0/weights.onnx');
    expect(isTargetOfModelVersion(path, 'detector', '2.0.0')).toBe(true);
  });

  it('refuses the target of another model, another version, or a name that escapes its directory', () => {
    expect(isTargetOfModelVersion('classifier/2.0.0/weights.onnx', 'detector', '2.0.0')).toBe(false);
    expect(isTargetOfModelVersion('detector/1.0.0/weights.onnx', 'detector', '2.0.0')).toBe(false);
    // A version that is a prefix of another must not match it.
    expect(isTargetOfModelVersion('detector/2.0.0-rc.1/weights.onnx', 'detector', '2.0.0')).toBe(false);
    expect(isTargetOfModelVersion('detector/2.0.0/../../classifier/2.0.0/w.onnx', 'detector', '2.0.0')).toBe(false);
    expect(isTargetOfModelVersion('detector/2.0.0/sub/weights.onnx', 'detector', '2.0.0')).toBe(false);
    expect(isTargetOfModelVersion('detector/2.0.0/', 'detector', '2.0.0')).toBe(false);
    expect(isTargetOfModelVersion('detector/2.0.0/..', 'detector', '2.0.0')).toBe(false);
    expect(isTargetOfModelVersion('detectorx/2.0.0/weights.onnx', 'detector', '2.0.0')).toBe(false);
    expect(isTargetOfModelVersion('/detector/2.0.0/weights.onnx', 'detector', '2.0.0')).toBe(false);
  });
});
