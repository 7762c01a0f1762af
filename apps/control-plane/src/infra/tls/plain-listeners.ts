import { isIP } from 'node:net';
import type { AppConfig } from '../config/config.schema.js';

/** A listening socket of the control plane, as the configuration describes it. */
export interface ListenerSpec {
  name: string;
  host: string;
  port: number;
  tls: boolean;
}

/** True for addresses only this machine can reach: 127.0.0.0/8, ::1, localhost. */
export function isLoopbackHost(host: string): boolean {
  const h = host
    .trim()
    .toLowerCase()
    .replace(/^\[|\]$/g, '');
  if (h === 'localhost' || h.endsWith('.localhost')) return true;
  if (isIP(h) === 4) return h.startsWith('127.');
  if (isIP(h) === 6) return h === '::1' || h.startsWith('::ffff:127.');
  return false;
}

/**
 * The listeners that carry device secrets, desired states and artifacts in clear to other
 * machines: plain ones on an address that is not loopback (0.0.0.0 and :: included). A plain
 * listener on loopback is the local-development layout, or one behind a TLS-terminating proxy on
 * the same host, and is not reported.
 */
export function exposedPlainListeners(listeners: readonly ListenerSpec[]): ListenerSpec[] {
  return listeners.filter((l) => !l.tls && !isLoopbackHost(l.host));
}

/** The start-up warning for exposed plain listeners, or undefined when there is none. */
export function plainListenerWarning(listeners: readonly ListenerSpec[]): string | undefined {
  const exposed = exposedPlainListeners(listeners);
  if (exposed.length === 0) return undefined;
  const list = exposed.map((l) => `${l.name} on ${l.host}:${l.port}`).join(', ');
  return (
    `PLAIN-TEXT LISTENERS REACHABLE FROM THE NETWORK: ${list}. Device secrets, desired states and artifacts cross them unencrypted. ` +
    `Set TLS_CERT_FILE and TLS_KEY_FILE (and MQTT_PLAIN=false), bind them to 127.0.0.1 behind a TLS-terminating proxy, or see docs/deployment.md.`
  );
}

/** The listeners a configuration opens (the external-broker layout opens only HTTP). */
export function configuredListeners(config: Pick<AppConfig, 'http' | 'mqtt' | 'tls'>): ListenerSpec[] {
  const tls = config.tls !== undefined;
  const out: ListenerSpec[] = [{ name: tls ? 'HTTPS' : 'HTTP', host: config.http.host, port: config.http.port, tls }];
  const mqtt = config.mqtt;
  if (mqtt.kind !== 'embedded') return out;
  // The broker binds the HTTP server's address (HOST).
  const host = config.http.host;
  if (mqtt.plain) {
    out.push({ name: 'MQTT', host, port: mqtt.port, tls: false });
    if (mqtt.wsPort !== undefined) out.push({ name: 'MQTT over WebSocket', host, port: mqtt.wsPort, tls: false });
  }
  if (mqtt.tlsPort !== undefined) out.push({ name: 'MQTT over TLS', host, port: mqtt.tlsPort, tls: true });
  if (mqtt.wssPort !== undefined) out.push({ name: 'MQTT over secure WebSocket', host, port: mqtt.wssPort, tls: true });
  return out;
}

/** Addresses handed to devices that are plain although this server speaks TLS: they would not use it. */
export function plainPublicUrls(config: Pick<AppConfig, 'http' | 'mqtt' | 'tls'>): string[] {
  if (!config.tls) return [];
  const urls = [...(config.mqtt.publicUrls ?? []), ...(config.http.publicUrl ? [config.http.publicUrl] : [])];
  return urls.filter((u) => /^(mqtt|tcp|ws|http):/i.test(u));
}
