import assert from "node:assert/strict";
import { AddressLimit } from "../../src/address_limit.ts";
import { LimitError } from "../../src/errors.ts";
import { silentLogger } from "../../src/log.ts";

function limit(max: number, workers?: number) {
  const refusals = { value: 0 };
  return {
    refusals,
    limit: new AddressLimit({ limit: max, workers, refusals, log: silentLogger }),
  };
}

Deno.test("AddressLimit refuses the connection one over the limit and counts it", () => {
  const { limit: l, refusals } = limit(2);
  const releases = [l.admit("203.0.113.7"), l.admit("203.0.113.7")];
  assert.throws(() => l.admit("203.0.113.7"), LimitError);
  assert.equal(refusals.value, 1);
  l.admit("203.0.113.8"); // another address has its own count
  releases[0]();
  releases[0](); // a second release does nothing
  assert.equal(l.count("203.0.113.7"), 1);
  l.admit("203.0.113.7");
  assert.throws(() => l.admit("203.0.113.7"), LimitError);
});

Deno.test("AddressLimit: each worker allows its share of the limit, rounded up", () => {
  assert.equal(limit(10, 4).limit.perWorker, 3);
  assert.equal(limit(1, 4).limit.perWorker, 1);
  assert.equal(limit(8, 2).limit.perWorker, 4);
});

Deno.test("AddressLimit off (0) or a unix-socket peer: nothing is counted or refused", () => {
  const off = limit(0).limit;
  for (let i = 0; i < 100; i++) off.admit("203.0.113.7");
  assert.equal(off.count("203.0.113.7"), 0);
  const on = limit(1).limit;
  for (let i = 0; i < 3; i++) on.admit(undefined);
});
