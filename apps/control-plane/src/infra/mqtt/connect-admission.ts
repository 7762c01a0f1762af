/**
 * Admission control for MQTT CONNECTs: at most `maxPending` connections of this replica may be
 * between CONNECT and CONNACK (authenticating) at once; past that a CONNECT is refused at once
 * with return code 3, "server unavailable" (MQTT 3.1.1 §3.2.2.3), which clients answer by backing
 * off and retrying.
 *
 * Why: when a whole fleet reconnects at once (a replica or the network came back), unbounded
 * admission queues every CONNECT behind the credential checks. Each waits longer than the client's
 * connect timeout, so the client gives up and retries while the replica still does the work of the
 * abandoned attempt: the herd keeps the replica busy with work nobody waits for, and the fleet
 * never comes back (a metastable failure). A refusal costs a few microseconds; the attempts that are
 * admitted finish in time, and the rest spread out over the devices' jittered backoff.
 */
export class ConnectAdmission {
  private inFlight = 0;
  /** CONNECTs refused because `maxPending` were in progress. */
  refusedBusy = 0;
  /** Most CONNECTs in progress at once since start (a sizing aid for MQTT_MAX_PENDING_CONNECTS). */
  peak = 0;

  constructor(readonly maxPending: number) {
    if (!Number.isInteger(maxPending) || maxPending < 1) throw new Error(`maxPending must be a positive integer, got ${maxPending}`);
  }

  get pending(): number {
    return this.inFlight;
  }

  /**
   * Takes a slot for one CONNECT, or answers false (refuse it now). A taken slot must be given back
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
