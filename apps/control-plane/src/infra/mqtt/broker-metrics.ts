/** Why the embedded broker lost a device connection (fleetline_mqtt_disconnects_total{reason}). */
export type DisconnectReason =
  /** No packet within 1.5 × the device's keepalive (MQTT 3.1.1 §3.1.2.10): the broker closed it. */
  | 'keepalive-timeout'
  /** The device did not read what it was sent within MQTT_DRAIN_TIMEOUT_MS. */
  | 'drain-timeout'
  /** A socket or protocol error (reset by the peer, malformed packet). */
  | 'error'
  /** A newer connection of the same device, here or on another replica, replaced it (§3.1.4). */
  | 'takeover'
  /** The control plane closed it (decommission, revoked credential). */
  | 'control-plane'
  /** The device closed it, with or without DISCONNECT. */
  | 'closed';

export const DISCONNECT_REASONS: readonly DisconnectReason[] = ['keepalive-timeout', 'drain-timeout', 'error', 'takeover', 'control-plane', 'closed'];

/**
 * Counters the broker gateways keep for /metrics and for tests that prove each denial.
 * Plain numbers here; the metrics feature exports them to Prometheus.
 */
export class BrokerMetrics {
  readonly denials = new Map<string, number>();
  readonly disconnects = new Map<DisconnectReason, number>();
  lastDenial?: { kind: string; reason: string };
  /**
   * Called with the seconds from a device's PUBLISH reaching the broker to its acknowledgement
   * (commit-before-ack: the time to store it). Set by the metrics feature; a device whose
   * acknowledgements take longer than half its keepalive starts missing its PINGRESPs, because the
   * broker reads a device's next packet only after the current one is handled.
   */
  onAck: ((seconds: number) => void) | undefined;

  denied(kind: 'connect' | 'publish' | 'subscribe' | 'packet-size' | 'tls', reason: string): void {
    this.denials.set(kind, (this.denials.get(kind) ?? 0) + 1);
    this.lastDenial = { kind, reason };
  }

  disconnected(reason: DisconnectReason): void {
    this.disconnects.set(reason, (this.disconnects.get(reason) ?? 0) + 1);
  }

  count(kind: string): number {
    return this.denials.get(kind) ?? 0;
  }
}
