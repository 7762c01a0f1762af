import { execFileSync } from 'node:child_process';
import { X509Certificate } from 'node:crypto';
import { request as httpsRequestRaw } from 'node:https';
import { connect as tlsConnect, type TLSSocket } from 'node:tls';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

/**
 * Throwaway certificates made at test time with the openssl CLI (no key or certificate is checked
 * in, nothing is downloaded). EC P-256 keys: generated in milliseconds.
 */

export interface TestCa {
  name: string;
  certFile: string;
  keyFile: string;
  pem: string;
}

export interface TestCert {
  certFile: string;
  keyFile: string;
  pem: string;
}

/** The openssl CLI is there (tests that need it fail with this message rather than obscurely). */
export function requireOpenssl(): void {
  try {
    execFileSync('openssl', ['version'], { stdio: 'pipe' });
  } catch {
    throw new Error('these tests make their certificates with the openssl CLI: install openssl');
  }
}

function openssl(args: string[]): void {
  execFileSync('openssl', args, { stdio: 'pipe' });
}

const EC_KEY = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes'];

export function createTestCa(dir: string, name: string): TestCa {
  const certFile = join(dir, `${name}.pem`);
  const keyFile = join(dir, `${name}.key`);
  openssl(['req', '-x509', ...EC_KEY, '-keyout', keyFile, '-out', certFile, '-days', '2', '-subj', `/CN=${name}`]);
  return { name, certFile, keyFile, pem: readFileSync(certFile, 'utf8') };
}

/** A server certificate for localhost and 127.0.0.1 (or `sans`), signed by `ca`. */
export function issueServerCert(ca: TestCa, dir: string, name: string, sans = ['DNS:localhost', 'IP:127.0.0.1']): TestCert {
  const certFile = join(dir, `${name}.pem`);
  const keyFile = join(dir, `${name}.key`);
  const csr = join(dir, `${name}.csr`);
  const ext = join(dir, `${name}.ext`);
  writeFileSync(ext, `subjectAltName=${sans.join(',')}\nextendedKeyUsage=serverAuth\nbasicConstraints=CA:FALSE\n`);
  openssl(['req', ...EC_KEY, '-keyout', keyFile, '-out', csr, '-subj', `/CN=${name}`]);
  openssl(['x509', '-req', '-in', csr, '-CA', ca.certFile, '-CAkey', ca.keyFile, '-CAcreateserial', '-out', certFile, '-days', '2', '-extfile', ext]);
  return { certFile, keyFile, pem: readFileSync(certFile, 'utf8') };
}

/** A device (client) certificate with subject CN `cn`, signed by `ca`. */
export function issueClientCert(ca: TestCa, dir: string, name: string, cn: string): TestCert {
  const certFile = join(dir, `${name}.pem`);
  const keyFile = join(dir, `${name}.key`);
  const csr = join(dir, `${name}.csr`);
  const ext = join(dir, `${name}.ext`);
  writeFileSync(ext, 'extendedKeyUsage=clientAuth\nbasicConstraints=CA:FALSE\n');
  openssl(['req', ...EC_KEY, '-keyout', keyFile, '-out', csr, '-subj', `/CN=${cn}`]);
  openssl(['x509', '-req', '-in', csr, '-CA', ca.certFile, '-CAkey', ca.keyFile, '-CAcreateserial', '-out', certFile, '-days', '2', '-extfile', ext]);
  return { certFile, keyFile, pem: readFileSync(certFile, 'utf8') };
}

export interface HttpsAnswer {
  status: number;
  body: string;
  /** SHA-256 fingerprint of the certificate the server presented. */
  fingerprint256: string;
}

/**
 * One HTTPS request verified against `ca` (fetch cannot be given a CA without undici), on a fresh
 * connection so that it sees the server's current certificate.
 */
export function httpsRequest(
  url: string,
  options: { ca?: string; method?: string; headers?: Record<string, string>; body?: string } = {},
): Promise<HttpsAnswer> {
  return new Promise((resolve, reject) => {
    const req = httpsRequestRaw(
      url,
      { method: options.method ?? 'GET', headers: options.headers ?? {}, agent: false, ...(options.ca !== undefined ? { ca: options.ca } : {}) },
      (res) => {
        const fingerprint256 = (res.socket as TLSSocket).getPeerCertificate().fingerprint256;
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString('utf8'), fingerprint256 }));
        res.on('error', reject);
      },
    );
    req.on('error', reject);
    req.end(options.body);
  });
}

/** The fingerprint of the certificate a TLS server presents to a new connection (verified against `ca`). */
export function peerFingerprint(port: number, ca: string, host = '127.0.0.1'): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = tlsConnect({ host, port, ca }, () => {
      const fingerprint = socket.getPeerCertificate().fingerprint256;
      socket.end();
      resolve(fingerprint);
    });
    socket.on('error', reject);
  });
}

/** The fingerprint of a PEM certificate file. */
export function fingerprintOf(pem: string): string {
  return new X509Certificate(pem).fingerprint256;
}
