/**
 * Reuses one asynchronous result for `ttlMs`, and shares the in-flight load between concurrent
 * callers. Every fleet gauge's collect() asks for the same snapshot during a scrape, so the
 * database sees one set of GROUP BY queries per scrape at most, and none between scrapes that
 * come faster than the TTL (several Prometheus servers, dashboards).
 */
export class CachedSnapshot<T> {
  private value?: { data: T; at: number };
  private inFlight?: Promise<T>;

  constructor(
    private readonly load: () => Promise<T>,
    private readonly ttlMs: number,
    private readonly now: () => number = Date.now,
  ) {}

  get(): Promise<T> {
    if (this.value && this.now() - this.value.at < this.ttlMs) return Promise.resolve(this.value.data);
    if (!this.inFlight) {
      this.inFlight = this.load().then(
        (data) => {
          this.value = { data, at: this.now() };
          this.inFlight = undefined;
          return data;
        },
        (err: unknown) => {
          this.inFlight = undefined;
          throw err;
        },
      );
    }
    return this.inFlight;
  }

  /** The last successful result, whatever its age (served when a reload fails). */
  last(): T | undefined {
    return this.value?.data;
  }
}
