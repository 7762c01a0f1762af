import { X509Certificate } from 'node:crypto';
import { normalizeFingerprint, x509Names } from '../../infra/mqtt/client-certificate.js';
import { pemCertificates } from '../../infra/tls/tls-material.js';

export type BindingDecision = { ok: true; fingerprint: string; subject: string; validTo: string } | { ok: false; reason: string };

/**
 * Whether `pem` may be registered as `deviceId`'s client certificate: it parses, is valid at
 * `now`, is issued and signed by a certificate of the client CA bundle, and names the device (CN
 * or a DNS/URI SAN). The broker checks the same at every CONNECT; checking here too makes a wrong
 * registration a 400 now rather than a device that cannot connect later.
 */
export function decideCertificateBinding(pem: string, deviceId: string, clientCaPem: string, now: Date): BindingDecision {
  const blocks = pemCertificates(pem);
  if (blocks.length !== 1) return { ok: false, reason: 'certificate must hold exactly one PEM certificate (the leaf)' };
  let cert: X509Certificate;
  try {
    cert = new X509Certificate(blocks[0]!);
  } catch (err) {
    return { ok: false, reason: `certificate does not parse: ${err instanceof Error ? err.message : String(err)}` };
  }
  if (cert.ca) return { ok: false, reason: 'certificate is a CA certificate, not a device certificate' };
  if (now < new Date(cert.validFrom) || now > new Date(cert.validTo))
    return { ok: false, reason: `certificate is not valid now (${cert.validFrom} to ${cert.validTo})` };
  const issuers = pemCertificates(clientCaPem).map((block) => new X509Certificate(block));
  if (!issuers.some((ca) => cert.checkIssued(ca) && cert.verify(ca.publicKey)))
    return { ok: false, reason: 'certificate is not issued by the client CA (MQTT_TLS_CLIENT_CA_FILE)' };
  if (!x509Names(cert).includes(deviceId)) return { ok: false, reason: `certificate does not name ${deviceId} (subject CN or DNS/URI SAN)` };
  return {
    ok: true,
    fingerprint: normalizeFingerprint(cert.fingerprint256),
    subject: cert.subject.replace(/\n/g, ', '),
    validTo: new Date(cert.validTo).toISOString(),
  };
}
