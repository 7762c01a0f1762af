import { readFileSync } from 'node:fs';
import { X509Certificate, createPrivateKey, type KeyObject } from 'node:crypto';
import { createSecureContext, type SecureContextOptions } from 'node:tls';

/** Paths of the PEM files the TLS listeners (HTTPS, MQTT over TLS, secure WebSocket) serve. */
export interface TlsFiles {
  certFile: string;
  keyFile: string;
  /** CA bundle handed to devices at enrollment so they can verify this server. */
  caFile?: string;
  /** CA bundle device client certificates must chain to (MQTT_TLS_CLIENT_CA_FILE); set: the MQTT TLS listeners ask for one. */
  clientCaFile?: string;
}

/** What was read from TlsFiles, checked: the key matches the certificate, every PEM parses. */
export interface TlsMaterial {
  cert: string;
  key: string;
  ca?: string;
  clientCa?: string;
  /** SHA-256 fingerprint of the leaf certificate (what a reload is logged and tested by). */
  fingerprint256: string;
  subject: string;
  validTo: Date;
}

/** One bad file: `setting` names the configuration variable that points at it. */
export class TlsMaterialError extends Error {
  constructor(
    readonly setting: string,
    message: string,
  ) {
    super(`${setting}: ${message}`);
    this.name = 'TlsMaterialError';
  }
}

const PEM_CERT = /-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g;

/** Every certificate of a PEM bundle, in order (Node's X509Certificate reads only the first). */
export function pemCertificates(pem: string): string[] {
  return pem.match(PEM_CERT) ?? [];
}

function read(path: string, setting: string): string {
  try {
    return readFileSync(path, 'utf8');
  } catch (err) {
    throw new TlsMaterialError(setting, `cannot read ${path}: ${err instanceof Error ? err.message : String(err)}`);
  }
}

function parseCertificates(pem: string, path: string, setting: string): X509Certificate[] {
  const blocks = pemCertificates(pem);
  if (blocks.length === 0) throw new TlsMaterialError(setting, `${path} holds no PEM certificate`);
  return blocks.map((block, i) => {
    try {
      return new X509Certificate(block);
    } catch (err) {
      throw new TlsMaterialError(setting, `certificate ${i + 1} of ${path} does not parse: ${err instanceof Error ? err.message : String(err)}`);
    }
  });
}

/**
 * Reads and checks the files synchronously: at start-up a bad file must stop the process before
 * anything listens, and on a reload it must leave the serving certificate in place.
 */
export function readTlsMaterial(files: TlsFiles): TlsMaterial {
  const cert = read(files.certFile, 'TLS_CERT_FILE');
  const key = read(files.keyFile, 'TLS_KEY_FILE');
  const ca = files.caFile ? read(files.caFile, 'TLS_CA_FILE') : undefined;
  const clientCa = files.clientCaFile ? read(files.clientCaFile, 'MQTT_TLS_CLIENT_CA_FILE') : undefined;
  const [leaf] = parseCertificates(cert, files.certFile, 'TLS_CERT_FILE');
  let privateKey: KeyObject;
  try {
    privateKey = createPrivateKey(key);
  } catch (err) {
    throw new TlsMaterialError(
      'TLS_KEY_FILE',
      `${files.keyFile} is not a PEM private key (or is encrypted): ${err instanceof Error ? err.message : String(err)}`,
    );
  }
  if (!leaf!.checkPrivateKey(privateKey)) {
    throw new TlsMaterialError('TLS_KEY_FILE', `${files.keyFile} does not match the certificate in ${files.certFile}`);
  }
  if (ca !== undefined && files.caFile) parseCertificates(ca, files.caFile, 'TLS_CA_FILE');
  if (clientCa !== undefined && files.clientCaFile) parseCertificates(clientCa, files.clientCaFile, 'MQTT_TLS_CLIENT_CA_FILE');
  try {
    // What the listeners will do with it: catches what the checks above do not (e.g. an unusable key type).
    createSecureContext({ cert, key });
  } catch (err) {
    throw new TlsMaterialError('TLS_CERT_FILE', `OpenSSL refuses the certificate and key: ${err instanceof Error ? err.message : String(err)}`);
  }
  return {
    cert,
    key,
    ...(ca !== undefined ? { ca } : {}),
    ...(clientCa !== undefined ? { clientCa } : {}),
    fingerprint256: leaf!.fingerprint256,
    subject: leaf!.subject,
    validTo: new Date(leaf!.validTo),
  };
}

/** Options for tls.createServer / setSecureContext. The CA file is for devices, not for the handshake. */
export function secureContextOptions(material: TlsMaterial): SecureContextOptions {
  return { cert: material.cert, key: material.key };
}

/** Options of the broker's TLS listeners: with a client CA, the CAs client certificates are verified against. */
export function mqttSecureContextOptions(material: TlsMaterial): SecureContextOptions {
  return { cert: material.cert, key: material.key, ...(material.clientCa !== undefined ? { ca: material.clientCa } : {}) };
}
