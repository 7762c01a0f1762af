/**
 * Presence events and the one rule that orders them, applied twice: here, to coalesce events
 * between flushes, and in SQL (DevicesRepository.applyPresence), against what is stored.
 *
 * Every event names the connection it belongs to (`session`). The rule:
 *  - online replaces anything older, and also an offline of another session whatever its time (a
 *    device that reconnected elsewhere is online even if its old replica's clock runs ahead);
 *  - offline ends only its own session (the last will of a connection that was already replaced,
 *    by a reconnect to another replica, must not mark the device offline);
 *  - without a session (older agents, or a stored row from before sessions), the newer time wins.
 */
export interface PresenceEvent {
  deviceId: string;
  online: boolean;
  at: Date;
  session: string | null;
  /** Replica holding the connection (clustered embedded brokers), else null. */
  replica: string | null;
}

export type PresenceState = Pick<PresenceEvent, 'online' | 'at' | 'session'>;

/** Whether `incoming` replaces `current`. Mirrors the WHERE clause of DevicesRepository.applyPresence. */
export function supersedes(current: PresenceState, incoming: PresenceState): boolean {
  const newer = incoming.at.getTime() >= current.at.getTime();
  if (incoming.online) return newer || (!current.online && current.session !== incoming.session);
  if (incoming.session !== null) return current.session === incoming.session || (current.session === null && newer);
  return newer;
}

export class PresenceBuffer {
  private pending = new Map<string, PresenceEvent>();

  add(event: PresenceEvent): void {
    const current = this.pending.get(event.deviceId);
    if (current && !supersedes(current, event)) return;
    this.pending.set(event.deviceId, event);
  }

  get size(): number {
    return this.pending.size;
  }

  /** Takes everything buffered so far, as column arrays for `unnest`. */
  drain(): { ids: string[]; online: boolean[]; at: string[]; session: (string | null)[]; replica: (string | null)[] } {
    const events = [...this.pending.values()];
    this.pending = new Map();
    return {
      ids: events.map((e) => e.deviceId),
      online: events.map((e) => e.online),
      at: events.map((e) => e.at.toISOString()),
      session: events.map((e) => e.session),
      replica: events.map((e) => e.replica),
    };
  }
}

/**
 * Time of a presence message: the device's own `at` when present (so a stale message redelivered
 * late cannot override newer state), clamped to the receive time (a device clock running ahead
 * must not pin its state); the receive time when absent (last wills carry no time).
 */
export function presenceTime(messageAt: string | undefined, receivedAt: Date): Date {
  if (!messageAt) return receivedAt;
  const at = new Date(messageAt);
  if (Number.isNaN(at.getTime()) || at.getTime() > receivedAt.getTime()) return receivedAt;
  return at;
}
