/**
 * Coalesces presence events between flushes: the newest event per device wins, and on equal
 * timestamps the later arrival wins (a reconnect replacing a session, MQTT 3.1.1 §3.1.4, emits
 * the old session's disconnect before the new one's connect within the same millisecond).
 */
export interface PresenceEvent {
  deviceId: string;
  online: boolean;
  at: Date;
}

export class PresenceBuffer {
  private pending = new Map<string, PresenceEvent>();

  add(event: PresenceEvent): void {
    const current = this.pending.get(event.deviceId);
    if (current && current.at.getTime() > event.at.getTime()) return;
    this.pending.set(event.deviceId, event);
  }

  get size(): number {
    return this.pending.size;
  }

  /** Takes everything buffered so far, as column arrays for `unnest`. */
  drain(): { ids: string[]; online: boolean[]; at: string[] } {
    const events = [...this.pending.values()];
    this.pending = new Map();
    return { ids: events.map((e) => e.deviceId), online: events.map((e) => e.online), at: events.map((e) => e.at.toISOString()) };
  }
}

/**
 * Time of a presence message: the device's own `at` when present (so a stale retained message
 * redelivered after a restart cannot override newer state), clamped to the receive time (a device
 * clock running ahead must not pin its state); the receive time when absent (last wills carry no time).
 */
export function presenceTime(messageAt: string | undefined, receivedAt: Date): Date {
  if (!messageAt) return receivedAt;
  const at = new Date(messageAt);
  if (Number.isNaN(at.getTime()) || at.getTime() > receivedAt.getTime()) return receivedAt;
  return at;
}
