/**
 * One timer for the inference traffic of every simulated device in a process. A per-device
 * `setInterval` costs a Timeout object, a closure and its context per device (and 15,000 timer
 * callbacks a second); here a device is one entry in one slot's Set, and the wheel visits one
 * slot per tick, so each device is still visited once per period while the work is spread evenly
 * over the period instead of arriving in one burst.
 */
export class TrafficWheel<T> {
  private readonly slots: Array<Set<T>>;
  private readonly slotOf = new Map<T, number>();
  private timer: NodeJS.Timeout | undefined;
  private tick = 0;
  private next = 0;

  /**
   * @param visit called once per period for every member, with the period's length in seconds.
   * @param periodMs how often each member is visited.
   * @param slotCount ticks per period (periodMs / slotCount between ticks).
   */
  constructor(
    private readonly visit: (member: T, seconds: number) => void,
    private readonly periodMs = 1000,
    slotCount = 10,
  ) {
    this.slots = Array.from({ length: Math.max(1, slotCount) }, () => new Set<T>());
  }

  get size(): number {
    return this.slotOf.size;
  }

  /** Adds a member (idempotent); members are dealt round-robin over the slots. */
  add(member: T): void {
    if (this.slotOf.has(member)) return;
    const slot = this.next;
    this.next = (this.next + 1) % this.slots.length;
    this.slots[slot]!.add(member);
    this.slotOf.set(member, slot);
    this.ensureTimer();
  }

  delete(member: T): void {
    const slot = this.slotOf.get(member);
    if (slot === undefined) return;
    this.slots[slot]!.delete(member);
    this.slotOf.delete(member);
    if (this.slotOf.size === 0) this.stop();
  }

  /** Visits the members of the next slot (what the timer does; exposed for tests). */
  step(): void {
    const slot = this.slots[this.tick]!;
    this.tick = (this.tick + 1) % this.slots.length;
    const seconds = this.periodMs / 1000;
    for (const member of slot) this.visit(member, seconds);
  }

  stop(): void {
    clearInterval(this.timer);
    this.timer = undefined;
  }

  private ensureTimer(): void {
    if (this.timer) return;
    this.timer = setInterval(() => this.step(), this.periodMs / this.slots.length);
    this.timer.unref();
  }
}
