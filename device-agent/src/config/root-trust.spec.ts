import { describe, expect, it } from '@jest/globals';
import { formatEnrollmentToken } from '@fleetline/protocol';
import { TufRepoFixture } from '../testing/tuf-repo.fixture.js';
import { decideRootTrust, RootTrustError, rootToPin, sha256Hex } from './root-trust.js';

const SECRET = 'fle_' + 'x'.repeat(43);
const SERVER = 'https://fleet.example.com';

describe('root trust at enrollment', () => {
  const repo = new TufRepoFixture();
  const root = repo.rootJson;
  const impostor = new TufRepoFixture().rootJson;

  it("pins the token's root: the secret alone is sent, with the pin; the right root is accepted, any other refused", () => {
    const decided = decideRootTrust({ token: formatEnrollmentToken(SECRET, sha256Hex(root)) });
    expect(decided).toEqual({
      secret: SECRET,
      requestPin: sha256Hex(root).slice(0, 32),
      trust: { kind: 'pin', pin: sha256Hex(root).slice(0, 32), source: 'token' },
    });
    expect(rootToPin(decided.trust, root, SERVER)).toEqual({ root });
    expect(() => rootToPin(decided.trust, impostor, SERVER)).toThrow(RootTrustError);
    expect(() => rootToPin(decided.trust, impostor, SERVER)).toThrow(
      /refusing to enroll: https:\/\/fleet\.example\.com answered with a TUF root whose sha256 is [0-9a-f]{64}, but the token's root pin is/,
    );
    // One byte more (e.g. a re-serialised root) is another root.
    expect(() => rootToPin(decided.trust, `${root} `, SERVER)).toThrow(RootTrustError);
  });

  it('--root-sha256 (any case, full or 32+ digits) pins too; one that contradicts the token is a usage error before anything is sent', () => {
    const full = sha256Hex(root);
    const decided = decideRootTrust({ token: SECRET, rootSha256: full.toUpperCase() });
    expect(decided).toMatchObject({ secret: SECRET, requestPin: full, trust: { kind: 'pin', pin: full, source: '--root-sha256' } });
    expect(rootToPin(decided.trust, root, SERVER)).toEqual({ root });
    expect(() => rootToPin(decided.trust, impostor, SERVER)).toThrow(/but the --root-sha256 is/);
    // The full hash refines the token's 32-digit pin.
    expect(decideRootTrust({ token: formatEnrollmentToken(SECRET, full), rootSha256: full }).requestPin).toBe(full);
    expect(() => decideRootTrust({ token: formatEnrollmentToken(SECRET, full), rootSha256: sha256Hex(impostor) })).toThrow(/they name different roots/);
    expect(() => decideRootTrust({ token: SECRET, rootSha256: 'abc' })).toThrow(/32 to 64 hex digits/);
  });

  it('without a pin or a root file, trusts the answer on first use and says so', () => {
    const decided = decideRootTrust({ token: SECRET });
    expect(decided).toEqual({ secret: SECRET, trust: { kind: 'tofu' } });
    expect(rootToPin(decided.trust, impostor, SERVER)).toEqual({
      root: impostor,
      note: expect.stringMatching(/^warning: trusting the TUF root https:\/\/fleet\.example\.com sent on first use/),
    });
  });

  it('--root-file pins the file: the same root (even re-formatted) or a newer version is accepted, an older or a different one refused', () => {
    const v1 = root;
    const pretty = JSON.stringify(JSON.parse(v1), null, 2);
    const decided = decideRootTrust({ token: formatEnrollmentToken(SECRET, sha256Hex(impostor)), rootFile: { path: 'root.json', text: pretty } });
    // The file decides: the token's pin is not sent.
    expect(decided).toEqual({ secret: SECRET, trust: { kind: 'file', path: 'root.json', root: pretty, version: 1 } });
    expect(rootToPin(decided.trust, v1, SERVER)).toEqual({ root: pretty });
    expect(() => rootToPin(decided.trust, impostor, SERVER)).toThrow(/serves a TUF root version 1 that differs from version 1 in root\.json/);

    const v2 = repo.renewRoot();
    expect(rootToPin(decided.trust, v2, SERVER)).toEqual({ root: pretty, note: expect.stringContaining("chain to the server's version 2") });
    const fromV2 = decideRootTrust({ token: SECRET, rootFile: { path: 'root.json', text: v2 } });
    expect(() => rootToPin(fromV2.trust, v1, SERVER)).toThrow(/serves TUF root version 1, older than version 2/);
  });

  it('refuses a root file that is not self-signed root metadata, and a root file together with --root-sha256', () => {
    expect(() => decideRootTrust({ token: SECRET, rootFile: { path: 'x.json', text: '{"signed":{}}' } })).toThrow(/x\.json is not TUF root metadata/);
    const forged = JSON.parse(root) as { signed: { expires: string } };
    forged.signed.expires = '2099-01-01T00:00:00Z';
    expect(() => decideRootTrust({ token: SECRET, rootFile: { path: 'x.json', text: JSON.stringify(forged) } })).toThrow(/not signed by its own root keys/);
    expect(() => decideRootTrust({ token: SECRET, rootSha256: sha256Hex(root), rootFile: { path: 'r.json', text: root } })).toThrow(/not both/);
  });
});
