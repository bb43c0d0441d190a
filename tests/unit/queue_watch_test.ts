import assert from "node:assert/strict";
import { type CutReason, type Queued, QueueWatch } from "../../src/_queue_watch.ts";

/** A client whose queue the test moves by hand. */
class FakeClient implements Queued {
  queued = 0;
  sentBytes = 0;
  closed = false;
  cut?: CutReason;
  queuedBytes(): number {
    return this.queued;
  }
  /** The server hands it `bytes`; the socket accepts `drained` of what waits. */
  step(bytes: number, drained: number): void {
    this.sentBytes += bytes;
    this.queued = Math.max(0, this.queued + bytes - drained);
  }
  cutOff(reason: CutReason): void {
    this.cut = reason;
    this.closed = true;
  }
}

function setup(options: { budgetBytes?: number; clientQueueBytes?: number } = {}) {
  let now = 0;
  const watch = new QueueWatch({
    budgetBytes: options.budgetBytes ?? 1 << 30,
    clientQueueBytes: options.clientQueueBytes ?? 1000,
    stallMs: 10_000,
    tickMs: 0,
    now: () => now,
  });
  const tick = () => {
    now += 1000;
    watch.tick();
  };
  return { watch, tick };
}

Deno.test("A client whose socket accepts nothing while bytes wait is cut after the stall time, whatever the rate", () => {
  const { watch, tick } = setup();
  const slow = new FakeClient(); // 50 bytes a second, never read: under SLUICE_CLIENT_QUEUE_BYTES for 20 s
  slow.step(50, 0);
  watch.waiting(slow);
  for (let second = 1; second <= 9; second++) {
    tick();
    assert.equal(slow.cut, undefined, `not before 10 s (${second} s)`);
  }
  tick();
  assert.equal(slow.cut, "stalled");
  assert.equal(watch.size, 0);
});

Deno.test("Bytes handed over are not progress; bytes reaching the socket are", () => {
  const { watch, tick } = setup();
  const growing = new FakeClient();
  growing.step(10, 0);
  watch.waiting(growing);
  for (let second = 0; second < 10; second++) {
    growing.step(100, 0); // only new bytes, none drained
    tick();
  }
  assert.equal(growing.cut, "stalled");
});

Deno.test("A client that keeps reading is not cut during a short overload, even far past SLUICE_CLIENT_QUEUE_BYTES", () => {
  const { watch, tick } = setup({ clientQueueBytes: 1000 });
  const reader = new FakeClient();
  reader.step(5000, 0);
  watch.waiting(reader);
  for (let second = 0; second < 30; second++) {
    reader.step(3000, 2000); // the server sends faster than the client reads, for 30 s
    tick();
  }
  assert.equal(reader.cut, undefined);
  assert.ok(reader.queued > 30_000);
  for (let second = 0; second < 40 && reader.queued > 0; second++) {
    reader.step(0, 2000); // the overload ends: it catches up
    tick();
  }
  assert.equal(reader.queued, 0);
  assert.equal(watch.size, 0, "caught up: no longer followed");
});

Deno.test("Over SLUICE_CLIENT_QUEUE_BYTES with nothing drained in a second: cut as behind", () => {
  const { watch, tick } = setup({ clientQueueBytes: 1000 });
  const client = new FakeClient();
  client.step(1500, 0);
  watch.waiting(client);
  tick();
  assert.equal(client.cut, "behind");
});

Deno.test("Over the budget, the clients furthest behind are cut first, until the rest fit", () => {
  const { watch, tick } = setup({ budgetBytes: 3500, clientQueueBytes: 100_000 });
  const queues = [3000, 2000, 1000].map((bytes) => {
    const client = new FakeClient();
    client.step(bytes, 0);
    watch.waiting(client);
    return client;
  });
  for (const client of queues) client.step(100, 100); // all of them reading
  tick();
  assert.deepEqual(queues.map((c) => c.cut), ["budget", undefined, undefined]);
  assert.equal(watch.size, 2);
});

Deno.test("Closed clients and emptied queues are forgotten; close() stops everything", () => {
  const { watch, tick } = setup();
  const gone = new FakeClient();
  gone.step(10, 0);
  watch.waiting(gone);
  gone.closed = true;
  tick();
  assert.equal(gone.cut, undefined);
  assert.equal(watch.size, 0);
  const later = new FakeClient();
  later.step(10, 0);
  watch.close();
  watch.waiting(later);
  assert.equal(watch.size, 0);
});
