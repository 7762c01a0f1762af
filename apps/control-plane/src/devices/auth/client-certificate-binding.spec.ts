import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createTestCa, fingerprintOf, issueClientCert, requireOpenssl, type TestCa, type TestCert } from '../../testing/test-pki.js';
import { decideCertificateBinding } from './client-certificate-binding.js';

// Certificates made here with openssl (valid for 2 days from now); the decision itself is pure.
describe('decideCertificateBinding', () => {
  let dir: string;
  let ca: TestCa;
  let other: TestCa;
  let cert: TestCert;
  const now = new Date();

  beforeAll(() => {
    requireOpenssl();
    dir = mkdtempSync(join(tmpdir(), 'fleetline-binding-'));
    ca = createTestCa(dir, 'bind-ca');
    other = createTestCa(dir, 'bind-other');
    cert = issueClientCert(ca, dir, 'bind-dev', 'dev-1');
  });

  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('binds a leaf of the client CA that names the device, by its SHA-256', () => {
    const decision = decideCertificateBinding(cert.pem, 'dev-1', `${other.pem}${ca.pem}`, now);
    expect(decision).toMatchObject({ ok: true, fingerprint: fingerprintOf(cert.pem).replace(/:/g, '').toLowerCase(), subject: 'CN=dev-1' });
  });

  it.each([
    ['another device', () => [cert.pem, 'dev-2', ca.pem, now] as const, /does not name dev-2/],
    ['another CA', () => [cert.pem, 'dev-1', other.pem, now] as const, /not issued by the client CA/],
    ['a CA certificate', () => [ca.pem, 'bind-ca', ca.pem, now] as const, /is a CA certificate/],
    ['a chain instead of the leaf', () => [`${cert.pem}${ca.pem}`, 'dev-1', ca.pem, now] as const, /exactly one PEM certificate/],
    ['no certificate', () => ['not a pem', 'dev-1', ca.pem, now] as const, /exactly one PEM certificate/],
    ['an expired one', () => [cert.pem, 'dev-1', ca.pem, new Date(now.getTime() + 30 * 86_400_000)] as const, /not valid now/],
  ])('refuses %s', (_label, args, reason) => {
    const [pem, id, caPem, at] = args();
    const decision = decideCertificateBinding(pem, id, caPem, at);
    expect(decision.ok).toBe(false);
    expect(decision.ok ? '' : decision.reason).toMatch(reason);
  });
});
