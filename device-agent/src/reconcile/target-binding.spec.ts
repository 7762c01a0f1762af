import { describe, expect, it } from '@jest/globals';
import type { ArtifactRef } from '@fleetline/protocol';
import { checkTargetBinding } from './target-binding.js';

const artifact = (targetPath: string): ArtifactRef => ({ targetPath, sha256: 'a'.repeat(64), length: 1, runtime: 'command', compatibility: {} });

describe('checkTargetBinding', () => {
  it('accepts artifacts that are files of the assigned model version', () => {
    expect(
      checkTargetBinding({ model: 'detector', version: '2.0.0', artifacts: [artifact('detector/2.0.0/a.bin'), artifact('detector/2.0.0/b.bin')] }),
    ).toEqual({
      ok: true,
    });
  });

  it("refuses an assignment one of whose artifacts is another model's or version's target", () => {
    expect(
      checkTargetBinding({ model: 'detector', version: '2.0.0', artifacts: [artifact('detector/2.0.0/a.bin'), artifact('classifier/1.0.0/a.bin')] }),
    ).toMatchObject({ ok: false, code: 'target-mismatch', message: expect.stringContaining('classifier/1.0.0/a.bin') });
    expect(checkTargetBinding({ model: 'detector', version: '2.0.0', artifacts: [artifact('detector/1.0.0/a.bin')] })).toMatchObject({ ok: false });
  });
});
