/**
 * The SSE heartbeat schedule: a timer wheel that gives every member its own
 * phase (the first beat one period after it joined, then one every period)
 * while batching members whose phases fall into the same coarse slot, so
 * 100,000 streams cost one timer, not 100,000. A beat may come up to one slot
 * late, never early. The wheel holds no closure or timer per member, only its
 * entry in one bucket, and runs its one timer only while it has members.
 * heartbeat.ts never writes bytes itself: it calls each member's `heartbeat()`.
 *
 * @module
 */

/** What the wheel beats. */
export interface Beating {
  heartbeat(): void;
}

/** The clock the wheel reads and arms; tests pass a fake one. */
export interface WheelClock {
  now(): number;
  /** Returns a handle that only `clearTimeout` looks at. */
  setTimeout(callback: () => void, ms: number): unknown;
  clearTimeout(handle: unknown): void;
}

type Timer = ReturnType<typeof setTimeout>;

const REAL_CLOCK: WheelClock = {
  now: () => performance.now(),
  setTimeout: (callback, ms) => setTimeout(callback, ms),
  clearTimeout: (handle) => clearTimeout(handle as Timer),
};

/** The widest a slot may be: how late a beat may come at most. */
const MAX_SLOT_MS = 250;
/** At least this many slots per period, so short test periods keep their phases apart. */
const MIN_SLOTS = 8;

/** Members of one bucket: beating now, and those that joined and wait for their first round. */
interface Bucket<T> {
  armed: Set<T>;
  joining: Set<T>;
}

/**
 * A timer wheel of `period / slotMs` buckets. Slot number `s` covers the time
 * from `s * slotMs`; a member that joins at `t` belongs to the bucket of slot
 * `ceil(t / slotMs)` and first beats at slot `ceil(t / slotMs) + slots`, that
 * is at or after `t + period` and less than one slot later.
 */
export class HeartbeatWheel<T extends Beating> {
  /** Slots per period. */
  readonly slots: number;
  /** Width of one slot in ms (the period divided evenly). */
  readonly slotMs: number;
  readonly #buckets: Bucket<T>[];
  readonly #clock: WheelClock;
  /** Every slot before this one has been handled. */
  #nextSlot: number;
  #size = 0;
  #timer?: unknown;
  readonly #tick = () => this.#run();

  constructor(readonly periodMs: number, clock: WheelClock = REAL_CLOCK) {
    this.slots = Math.max(MIN_SLOTS, Math.ceil(periodMs / MAX_SLOT_MS));
    this.slotMs = periodMs / this.slots;
    this.#clock = clock;
    this.#buckets = Array.from({ length: this.slots }, () => ({
      armed: new Set<T>(),
      joining: new Set<T>(),
    }));
    this.#nextSlot = Math.floor(clock.now() / this.slotMs) + 1;
  }

  /** Members on the wheel. */
  get size(): number {
    return this.#size;
  }

  /** Puts a member on the wheel: its first beat comes one period from now. */
  add(member: T): void {
    const now = this.#clock.now();
    this.#advance(now); // every slot up to now handled: none can arm the newcomer early
    const first = Math.ceil(now / this.slotMs);
    const bucket = this.#buckets[first % this.slots];
    // The bucket's slot still to come in this round only arms the member.
    (first >= this.#nextSlot ? bucket.joining : bucket.armed).add(member);
    this.#size++;
    this.#arm();
  }

  /** Takes a member off the wheel (a no-op for one that is not on it). */
  delete(member: T): boolean {
    for (const { armed, joining } of this.#buckets) {
      if (armed.delete(member) || joining.delete(member)) {
        if (--this.#size === 0) this.#disarm();
        return true;
      }
    }
    return false;
  }

  /** Every member, in no particular order. */
  *[Symbol.iterator](): IterableIterator<T> {
    for (const { armed, joining } of this.#buckets) {
      yield* armed;
      yield* joining;
    }
  }

  /** Stops the timer; members stay but no longer beat until one is added. */
  close(): void {
    this.#disarm();
  }

  [Symbol.dispose](): void {
    this.close();
  }

  #run(): void {
    this.#timer = undefined;
    this.#advance(this.#clock.now());
    this.#arm();
  }

  /** Handles every slot whose time has come, each bucket at most once. */
  #advance(now: number): void {
    const due = Math.floor(now / this.slotMs);
    if (due < this.#nextSlot) return;
    const from = Math.max(this.#nextSlot, due - this.slots + 1);
    for (let slot = from; slot <= due; slot++) this.#beat(this.#buckets[slot % this.slots]);
    this.#nextSlot = due + 1;
  }

  /** Beats the armed members of a bucket (one may leave meanwhile), then arms its newcomers. */
  #beat(bucket: Bucket<T>): void {
    for (const member of bucket.armed) member.heartbeat();
    for (const member of bucket.joining) bucket.armed.add(member);
    bucket.joining.clear();
  }

  #arm(): void {
    if (this.#timer !== undefined || this.#size === 0) return;
    const wait = this.#nextSlot * this.slotMs - this.#clock.now();
    this.#timer = this.#clock.setTimeout(this.#tick, Math.max(0, Math.ceil(wait)));
  }

  #disarm(): void {
    if (this.#timer === undefined) return;
    this.#clock.clearTimeout(this.#timer);
    this.#timer = undefined;
  }
}
