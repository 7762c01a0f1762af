import { type Stats, unwatchFile, watchFile } from 'node:fs';
import type { SecureContextOptions } from 'node:tls';
import { Logger } from '@nestjs/common';
import { type TlsFiles, type TlsMaterial, mqttSecureContextOptions, readTlsMaterial, secureContextOptions } from './tls-material.js';

export interface TransportSecurityOptions extends TlsFiles {
  /** How often the files are polled for a change; 0: only SIGHUP (or reload()) re-reads them. */
  watchIntervalMs: number;
}

/**
 * The certificate the TLS listeners serve, re-read without a restart. Each listener registers
 * with onChange and swaps its secure context (tls.Server#setSecureContext): connections made
 * after a reload get the new certificate, open ones keep the session they have.
 *
 * Files are polled with fs.watchFile rather than fs.watch: a renewal usually replaces the file
 * (certbot, cert-manager's symlink swap), and an inotify watch on the old inode never sees that.
 * A reload that reads a bad set of files (half-written, key not matching) keeps serving the
 * previous certificate and says so in the log.
 */
export class TransportSecurity {
  private readonly logger = new Logger('Tls');
  private material: TlsMaterial;
  private readonly listeners: ((options: SecureContextOptions) => void)[] = [];
  private readonly onSighup = (): void => void this.reload('SIGHUP');
  private watching = false;
  private readonly watchers = new Map<string, (now: Stats, before: Stats) => void>();
  /** Reloads that failed since start (a metric would read it). */
  failedReloads = 0;

  constructor(private readonly options: TransportSecurityOptions) {
    this.material = readTlsMaterial(options);
  }

  current(): TlsMaterial {
    return this.material;
  }

  secureContextOptions(): SecureContextOptions {
    return secureContextOptions(this.material);
  }

  /** What the broker's TLS listeners use: the certificate, and the client CA when client certificates are on. */
  mqttSecureContextOptions(): SecureContextOptions {
    return mqttSecureContextOptions(this.material);
  }

  /** Client certificates are asked for (MQTT_TLS_CLIENT_CA_FILE). */
  get clientCertificates(): boolean {
    return this.options.clientCaFile !== undefined;
  }

  /** The CA bundle devices are given at enrollment to verify this server (TLS_CA_FILE). */
  deviceCa(): string | undefined {
    return this.material.ca;
  }

  onChange(listener: (options: SecureContextOptions) => void): void {
    this.listeners.push(listener);
  }

  /** Re-reads the files; true when the new material is served from now on. */
  reload(reason = 'reload'): boolean {
    let next: TlsMaterial;
    try {
      next = readTlsMaterial(this.options);
    } catch (err) {
      this.failedReloads++;
      this.logger.error(
        `${reason}: TLS files not reloaded, still serving ${this.material.fingerprint256}: ${err instanceof Error ? err.message : String(err)}`,
      );
      return false;
    }
    const changed = next.fingerprint256 !== this.material.fingerprint256 || next.ca !== this.material.ca || next.clientCa !== this.material.clientCa;
    this.material = next;
    const options = secureContextOptions(next);
    for (const listener of this.listeners) listener(options);
    if (changed)
      this.logger.log(`${reason}: serving certificate ${next.subject.replace(/\n/g, ', ')} (${next.fingerprint256}), valid to ${next.validTo.toISOString()}`);
    return true;
  }

  start(): void {
    if (this.watching) return;
    this.watching = true;
    process.on('SIGHUP', this.onSighup);
    if (this.options.watchIntervalMs > 0) {
      for (const file of this.files()) {
        const listener = (now: Stats, before: Stats): void => {
          if (now.mtimeMs === before.mtimeMs && now.ino === before.ino && now.size === before.size) return;
          this.reload(`${file} changed`);
        };
        this.watchers.set(file, listener);
        watchFile(file, { interval: this.options.watchIntervalMs, persistent: false }, listener);
      }
    }
    if (this.material.validTo.getTime() < Date.now()) this.logger.warn(`the TLS certificate expired on ${this.material.validTo.toISOString()}`);
  }

  stop(): void {
    if (!this.watching) return;
    this.watching = false;
    process.off('SIGHUP', this.onSighup);
    // With its listener: another watcher of the same file in this process (a second app in a test) stays.
    for (const [file, listener] of this.watchers) unwatchFile(file, listener);
    this.watchers.clear();
  }

  private files(): string[] {
    return [
      this.options.certFile,
      this.options.keyFile,
      ...(this.options.caFile ? [this.options.caFile] : []),
      ...(this.options.clientCaFile ? [this.options.clientCaFile] : []),
    ];
  }
}
