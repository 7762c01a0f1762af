/**
 * Bounded, time-limited map for positive credential checks: a fleet reconnecting at once after
 * a broker restart asks for the same devices again and again. Insertion order doubles as
 * recency (a hit re-inserts), so the oldest entry is evicted first when full.
 */
export class CredentialCache {
  private readonly entries = new Map<string, { credentialHash: string; until: number }>();

  constructor(
    private readonly ttlMs: number,
    private readonly maxEntries: number,
    private readonly now: () => number = Date.now,
  ) {}

  get(deviceId: string): string | undefined {
    const entry = this.entries.get(deviceId);
    if (!entry) return undefined;
    if (entry.until <= this.now()) {
      this.entries.delete(deviceId);
      return undefined;
    }
    this.entries.delete(deviceId);
    this.entries.set(deviceId, entry);
    return entry.credentialHash;
  }

  set(deviceId: string, credentialHash: string): void {
    this.entries.delete(deviceId);
    this.entries.set(deviceId, { credentialHash, until: this.now() + this.ttlMs });
    while (this.entries.size > this.maxEntries) {
      const oldest = this.entries.keys().next().value;
      if (oldest === undefined) break;
      this.entries.delete(oldest);
    }
  }

  delete(deviceId: string): void {
    this.entries.delete(deviceId);
  }

  get size(): number {
    return this.entries.size;
  }
}
