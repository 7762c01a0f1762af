/**
 * Admission control: at most `maxPending` units of one kind of work in progress at once on this
 * replica; past that the work is refused at once, and the caller tells the client to come back
 * (CONNACK 3 for MQTT, HTTP 503 with Retry-After for downloads).
 *
 * Why: when a whole fleet comes back at once (a replica or the network came back), unbounded
 * admission queues every request behind the ones before it. Each waits longer than the client's
 * timeout, so the client gives up and retries while the replica still does the work of the
 * abandoned attempt: the herd keeps the replica busy with work nobody waits for, and the fleet
 * never comes back (a metastable failure). A refusal costs a few microseconds; the work that is
 * admitted finishes in time, and the rest spreads out over the clients' jittered backoff.
 */
export class AdmissionBound {
  private inFlight = 0;
  /** Requests refused because `maxPending` were in progress. */
  refusedBusy = 0;
  /** Most in progress at once since start (a sizing aid for the bound's setting). */
  peak = 0;

  constructor(readonly maxPending: number) {
    if (!Number.isInteger(maxPending) || maxPending < 1) throw new Error(`maxPending must be a positive integer, got ${maxPending}`);
  }

  get pending(): number {
    return this.inFlight;
  }

  /**
   * Takes a slot for one request, or answers false (refuse it now). A taken slot must be given back
   * with the returned release function exactly once; calling it again does nothing.
   */
  tryEnter(): (() => void) | false {
    if (this.inFlight >= this.maxPending) {
      this.refusedBusy++;
      return false;
    }
    this.inFlight++;
    if (this.inFlight > this.peak) this.peak = this.inFlight;
    let released = false;
    return () => {
      if (released) return;
      released = true;
      this.inFlight--;
    };
  }
}
