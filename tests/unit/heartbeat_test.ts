import assert from "node:assert/strict";
import { HeartbeatWheel, type WheelClock } from "../../src/heartbeat.ts";

/** A clock whose time moves only when the test says so; its one timer fires on `advance`. */
class FakeClock implements WheelClock {
  time = 0;
  timers = new Map<number, { at: number; callback: () => void }>();
  #next = 0;
  now(): number {
    return this.time;
  }
  setTimeout(callback: () => void, ms: number): number {
    this.timers.set(++this.#next, { at: this.time + ms, callback });
    return this.#next;
  }
  clearTimeout(handle: unknown): void {
    this.timers.delete(handle as number);
  }
  /** Moves time forward 1 ms at a time, firing timers when they are due. */
  advance(ms: number): void {
    for (const end = this.time + ms; this.time < end;) {
      this.time++;
      for (const [id, timer] of [...this.timers]) {
        if (timer.at > this.time) continue;
        this.timers.delete(id);
        timer.callback();
      }
    }
  }
}

/** A member that records when it beat. */
class Member {
  beats: number[] = [];
  constructor(readonly clock: FakeClock) {}
  heartbeat(): void {
    this.beats.push(this.clock.time);
  }
}

Deno.test("HeartbeatWheel: the first beat comes one period after joining, within one slot", () => {
  const clock = new FakeClock();
  clock.time = 1_234;
  using wheel = new HeartbeatWheel<Member>(15_000, clock);
  assert.equal(wheel.slotMs, 250);
  for (const offset of [0, 1, 125, 249, 250, 14_999]) {
    const member = new Member(clock);
    clock.advance(offset === 0 ? 0 : 1); // joins at various phases
    const joined = clock.time;
    wheel.add(member);
    clock.advance(15_000 + 250);
    assert.equal(member.beats.length, 1, `one beat within a period and a slot (${offset})`);
    const late = member.beats[0] - joined - 15_000;
    assert.ok(late >= 0 && late <= 250, `never early, at most one slot late: ${late} ms`);
    wheel.delete(member);
  }
});

Deno.test("HeartbeatWheel: each member beats every period on its own phase", () => {
  const clock = new FakeClock();
  using wheel = new HeartbeatWheel<Member>(1_000, clock);
  const a = new Member(clock);
  const b = new Member(clock);
  wheel.add(a);
  clock.advance(500); // half a period later
  wheel.add(b);
  clock.advance(3_600);
  assert.equal(a.beats.length, 4);
  assert.equal(b.beats.length, 3);
  for (let i = 0; i < 3; i++) assert.equal(b.beats[i] - a.beats[i], 500, "half a period apart");
  for (let i = 1; i < 4; i++) assert.equal(a.beats[i] - a.beats[i - 1], 1_000, "every period");
});

Deno.test("HeartbeatWheel: a member taken off gets no beat and is forgotten; no timer is left", () => {
  const clock = new FakeClock();
  using wheel = new HeartbeatWheel<Member>(1_000, clock);
  const gone = new Member(clock);
  const kept = new Member(clock);
  wheel.add(gone);
  wheel.add(kept);
  assert.equal(wheel.size, 2);
  clock.advance(400);
  assert.equal(wheel.delete(gone), true);
  assert.equal(wheel.delete(gone), false, "not on the wheel any more");
  assert.deepEqual([...wheel], [kept]);
  clock.advance(2_000);
  assert.deepEqual(gone.beats, []);
  assert.equal(kept.beats.length, 2);
  wheel.delete(kept);
  assert.equal(wheel.size, 0);
  assert.equal(clock.timers.size, 0, "an empty wheel runs no timer");
});

Deno.test("HeartbeatWheel: a member joining after an idle spell is not beaten early", () => {
  const clock = new FakeClock();
  using wheel = new HeartbeatWheel<Member>(1_000, clock);
  const first = new Member(clock);
  wheel.add(first);
  wheel.delete(first);
  clock.advance(10_437); // nothing on the wheel: no timer ran, slots went by unhandled
  const member = new Member(clock);
  wheel.add(member);
  clock.advance(999);
  assert.deepEqual(member.beats, []);
  clock.advance(126);
  assert.equal(member.beats.length, 1);
});

Deno.test("HeartbeatWheel: a stalled timer catches up without beating anyone early", () => {
  const clock = new FakeClock();
  using wheel = new HeartbeatWheel<Member>(1_000, clock);
  const early = new Member(clock);
  wheel.add(early);
  clock.time += 2_500; // the event loop stalls: the timer is overdue and has not fired
  const late = new Member(clock);
  wheel.add(late); // catches up first
  assert.equal(early.beats.length, 1, "the overdue beat comes once, not once per missed period");
  clock.advance(999);
  assert.deepEqual(late.beats, []);
  clock.advance(126);
  assert.equal(late.beats.length, 1);
});
