import { CredentialCache } from '../devices/auth/credential-cache.js';

/** Ids of live (enrolled, not decommissioned) devices among the ones asked for, in one query. */
export interface LiveDeviceLookup {
  liveIds(ids: string[]): Promise<Set<string>>;
}

/** Positive answers are trusted this long: a decommissioned device loses its topics within it. */
export const LIVE_DEVICE_TTL_MS = 5_000;
const MAX_ENTRIES = 100_000;
const LOOKUP_BATCH = 1000;

/**
 * Is the device behind an ACL check still live? A broker asks for every publish and subscribe
 * (Mosquitto for every delivered message too), thousands a second, so every id asked for in one
 * event-loop turn is looked up in one query and positive answers are cached briefly; the
 * broker's own ACL cache sits in front of this as well.
 */
export class LiveDevices {
  private readonly cache: CredentialCache;
  private waiting = new Map<string, { resolve: (live: boolean) => void; reject: (err: unknown) => void }[]>();
  private scheduled = false;

  constructor(
    private readonly lookup: LiveDeviceLookup,
    ttlMs = LIVE_DEVICE_TTL_MS,
    now: () => number = Date.now,
  ) {
    this.cache = new CredentialCache(ttlMs, MAX_ENTRIES, now);
  }

  isLive(deviceId: string): Promise<boolean> {
    if (this.cache.get(deviceId) !== undefined) return Promise.resolve(true);
    return new Promise((resolve, reject) => {
      const list = this.waiting.get(deviceId);
      if (list) list.push({ resolve, reject });
      else this.waiting.set(deviceId, [{ resolve, reject }]);
      if (!this.scheduled) {
        this.scheduled = true;
        setImmediate(() => void this.flush());
      }
    });
  }

  private async flush(): Promise<void> {
    this.scheduled = false;
    const batch = this.waiting;
    this.waiting = new Map();
    const ids = [...batch.keys()];
    for (let i = 0; i < ids.length; i += LOOKUP_BATCH) {
      const chunk = ids.slice(i, i + LOOKUP_BATCH);
      try {
        const live = await this.lookup.liveIds(chunk);
        for (const id of chunk) {
          const ok = live.has(id);
          if (ok) this.cache.set(id, 'live');
          for (const w of batch.get(id) ?? []) w.resolve(ok);
        }
      } catch (err) {
        for (const id of chunk) for (const w of batch.get(id) ?? []) w.reject(err);
      }
    }
  }
}
