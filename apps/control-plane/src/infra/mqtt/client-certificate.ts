import type { X509Certificate } from 'node:crypto';
import type { TLSSocket } from 'node:tls';

/**
 * Device client certificates (MQTT_TLS_CLIENT_CA_FILE): which names a certificate carries, and
 * the form its fingerprint is stored and compared in. Pure, shared by the broker (a peer
 * certificate of a TLS socket) and the registration route (a PEM an operator uploads).
 */

/** Names a certificate may bind a device id with: its subject CNs, and its DNS and URI subject alternative names. */
export function certificateNames(commonNames: string | string[] | undefined, subjectAltName: string | undefined): string[] {
  const names = commonNames === undefined ? [] : Array.isArray(commonNames) ? [...commonNames] : [commonNames];
  for (const entry of (subjectAltName ?? '').split(/,\s*/)) {
    const match = /^(DNS|URI):(.+)$/.exec(entry.trim());
    if (match) names.push(match[2]!);
  }
  return names;
}

/** The names of an X509Certificate (its `subject` is one `KEY=value` per line). */
export function x509Names(cert: X509Certificate): string[] {
  const cns = cert.subject
    .split('\n')
    .filter((line) => line.startsWith('CN='))
    .map((line) => line.slice(3));
  return certificateNames(cns, cert.subjectAltName);
}

/** SHA-256 fingerprints as stored: lowercase hex, no colons (Node prints `AB:CD:...`). */
export function normalizeFingerprint(fingerprint256: string): string {
  return fingerprint256.replace(/:/g, '').toLowerCase();
}

export type PeerCertificate =
  { presented: false } | { presented: true; trusted: false; reason: string } | { presented: true; trusted: true; names: string[]; fingerprint: string };

/**
 * What a TLS socket's client presented. Listeners ask for a certificate without requiring one
 * (rejectUnauthorized false), so devices with a secret only still connect; whether a presented
 * certificate chains to the client CA is read here and decided at CONNECT.
 */
export function peerCertificate(socket: TLSSocket): PeerCertificate {
  const cert = socket.getPeerCertificate();
  if (!cert || Object.keys(cert).length === 0 || !cert.fingerprint256) return { presented: false };
  if (!socket.authorized) return { presented: true, trusted: false, reason: String(socket.authorizationError ?? 'not trusted') };
  return {
    presented: true,
    trusted: true,
    names: certificateNames(cert.subject?.CN, cert.subjectaltname),
    fingerprint: normalizeFingerprint(cert.fingerprint256),
  };
}
