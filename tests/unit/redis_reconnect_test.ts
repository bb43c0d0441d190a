import assert from "node:assert/strict";
import { reconnectDelay } from "../../src/redis/connection.ts";
import { parseSwitchMaster } from "../../src/redis/sentinel_watch.ts";

Deno.test("reconnectDelay: none before the first attempt, then full jitter of 100 ms doubling up to 5 s", () => {
  const rows: [attempt: number, random: number, delay: number][] = [
    [0, 1, 0],
    [0, 0.5, 0],
    [1, 1, 100],
    [1, 0.5, 50],
    [1, 0, 0],
    [2, 1, 200],
    [3, 0.25, 100],
    [6, 1, 3_200],
    [7, 1, 5_000],
    [7, 0.5, 2_500],
    [50, 1, 5_000],
    [1_000_000, 0.1, 500],
  ];
  for (const [attempt, random, delay] of rows) {
    assert.equal(
      reconnectDelay(attempt, () => random),
      delay,
      `attempt ${attempt}, random ${random}`,
    );
  }
});

Deno.test("reconnectDelay draws one random number per attempt after the first", () => {
  let draws = 0;
  const random = () => (draws++, 0.5);
  reconnectDelay(0, random);
  assert.equal(draws, 0);
  for (let attempt = 1; attempt <= 10; attempt++) reconnectDelay(attempt, random);
  assert.equal(draws, 10);
});

Deno.test("parseSwitchMaster reads the master's name and its old and new addresses", () => {
  assert.deepEqual(parseSwitchMaster("mymaster 10.0.0.1 6379 10.0.0.2 6380"), {
    master: "mymaster",
    from: { host: "10.0.0.1", port: 6379 },
    to: { host: "10.0.0.2", port: 6380 },
  });
  assert.deepEqual(parseSwitchMaster("m ::1 1 fe80::2 65535\n")?.to, {
    host: "fe80::2",
    port: 65535,
  });
});

Deno.test("parseSwitchMaster refuses payloads that are not a switch", () => {
  for (
    const payload of [
      "",
      "mymaster 10.0.0.1 6379 10.0.0.2",
      "mymaster 10.0.0.1 6379 10.0.0.2 6380 extra",
      "mymaster 10.0.0.1 6379 10.0.0.2 0",
      "mymaster 10.0.0.1 6379 10.0.0.2 65536",
      "mymaster 10.0.0.1 x 10.0.0.2 6380",
      "mymaster 10.0.0.1 6379 10.0.0.2 -1",
    ]
  ) {
    assert.equal(parseSwitchMaster(payload), undefined, JSON.stringify(payload));
  }
});
