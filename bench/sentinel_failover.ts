/**
 * Sentinel failover after `kill -9` of the Redis master: how long Sluice's
 * subscriber takes to be back on the new master, and how many events it
 * loses. The figures behind the "Sentinel failover" section of RESULTS.md.
 *
 *   deno run --allow-all bench/sentinel_failover.ts [--rounds 3] [--rate 100]
 *     [--down-after 500] [--after 2000] [--json out.json]
 *
 * Each round starts a master, a replica and three sentinels (quorum 2,
 * `down-after-milliseconds` from `--down-after`; tests/_support/sentinels.ts),
 * then Sluice's `RedisSubscriber` in Sentinel mode subscribed to one channel,
 * and a publisher: Sluice's `RedisClient` in Sentinel mode (so it follows
 * `+switch-master` too) sending a numbered message every 1000/`--rate` ms.
 * An observer subscribes to `+switch-master` on all three sentinels. After a
 * second of traffic the master gets SIGKILL. Reported per round: kill →
 * first `+switch-master` seen on any sentinel; `+switch-master` → subscriber
 * resubscribed (its SUBSCRIBE acknowledged on the new master: `ready()`),
 * the gap issue 11 asks to keep within 0.5 s; `+switch-master` → first event
 * received on the new master; events lost (accepted by a master, never received); events
 * the publisher could not publish while there was no master.
 *
 * @module
 */
import { parseArgs } from "node:util";
import { silentLogger } from "../src/log.ts";
import { RedisClient } from "../src/redis/client.ts";
import { RedisSubscriber } from "../src/redis/subscriber.ts";
import { type Sentinels, startSentinels } from "../tests/_support/sentinels.ts";
import { machine } from "./scenarios/machine.ts";

const CHANNEL = "timeline:public";

/** One round's figures, in ms (times relative to the kill). */
export interface Round {
  switchMs: number;
  resubscribedMs: number;
  firstEventMs: number;
  gapMs: number;
  firstEventGapMs: number;
  published: number;
  lost: number;
  unpublished: number;
}

/** Resolves with the time of the first `+switch-master` any sentinel announces. */
function observeSwitch(setup: Sentinels): {
  ready: Promise<unknown>;
  seen: Promise<number>;
  close(): Promise<void>;
} {
  const seen = Promise.withResolvers<number>();
  const observers = setup.sentinels.map((sentinel) => {
    const config = { mode: "tcp" as const, host: "127.0.0.1", port: sentinel.port, tls: false };
    const observer = new RedisSubscriber({
      config: { ...config, db: 0 },
      log: silentLogger,
      onMessage: () => seen.resolve(performance.now()),
    });
    observer.subscribe("+switch-master");
    return observer;
  });
  return {
    ready: Promise.all(observers.map((o) => o.ready())),
    seen: seen.promise,
    close: async () => void await Promise.all(observers.map((o) => o.close())),
  };
}

/** One kill -9 of the master under `rate` messages/s. */
async function round(rate: number, downAfterMs: number, afterMs: number): Promise<Round> {
  await using setup = await startSentinels({ downAfterMs });
  const received = new Set<number>();
  let firstAfterKill: number | undefined;
  let killedAt = Infinity;
  let back = false;
  const up = Promise.withResolvers<void>();
  await using subscriber = new RedisSubscriber({
    config: setup.config,
    log: silentLogger,
    onMessage: (_channel, message) => {
      received.add(Number(message));
      if (back) firstAfterKill ??= performance.now();
    },
    onStateChange: (connected) => {
      back = connected && subscriber.reconnects > 0;
      if (back) up.resolve();
    },
  });
  subscriber.subscribe(CHANNEL);
  await using publisher = new RedisClient({ config: setup.config, log: silentLogger });
  await Promise.all([subscriber.ready(), publisher.ready()]);
  const observer = observeSwitch(setup);
  await observer.ready;
  const accepted = new Set<number>();
  let sent = 0;
  let unpublished = 0;
  const timer = setInterval(() => {
    const n = sent++;
    publisher.publish(CHANNEL, String(n)).then(() => accepted.add(n), () => unpublished++);
  }, 1000 / rate);
  try {
    await new Promise((resolve) => setTimeout(resolve, 1000));
    killedAt = performance.now();
    const killed = setup.master.crash();
    const switched = await observer.seen;
    await up.promise;
    await subscriber.ready();
    const resubscribed = performance.now();
    await killed;
    await new Promise((resolve) => setTimeout(resolve, afterMs));
    clearInterval(timer);
    await publisher.ping();
    await subscriber.ready();
    const lost = [...accepted].filter((n) => !received.has(n)).length;
    const first = firstAfterKill ?? NaN;
    return {
      switchMs: switched - killedAt,
      resubscribedMs: resubscribed - killedAt,
      firstEventMs: first - killedAt,
      gapMs: resubscribed - switched,
      firstEventGapMs: first - switched,
      published: accepted.size,
      lost,
      unpublished,
    };
  } finally {
    clearInterval(timer);
    await observer.close();
  }
}

const ms = (value: number) => `${Math.round(value)} ms`;

/** A Markdown table of the rounds. */
export function render(rounds: Round[]): string {
  const rows = rounds.map((r, i) =>
    `| ${i + 1} | ${ms(r.switchMs)} | ${ms(r.gapMs)} | ${ms(r.firstEventGapMs)} | ${
      ms(r.resubscribedMs)
    } | ${r.lost} of ${r.published} | ${r.unpublished} |`
  );
  return [
    "| round | kill → +switch-master | +switch-master → resubscribed | +switch-master → first event | kill → resubscribed | events lost | not published (no master) |",
    "| --- | --- | --- | --- | --- | --- | --- |",
    ...rows,
  ].join("\n");
}

if (import.meta.main) {
  const { values } = parseArgs({
    args: Deno.args,
    options: {
      rounds: { type: "string", default: "3" },
      rate: { type: "string", default: "100" },
      "down-after": { type: "string", default: "500" },
      after: { type: "string", default: "2000" },
      json: { type: "string" },
    },
  });
  const rounds: Round[] = [];
  for (let i = 0; i < Number(values.rounds); i++) {
    rounds.push(
      await round(Number(values.rate), Number(values["down-after"]), Number(values.after)),
    );
    console.log(`round ${i + 1}: ${JSON.stringify(rounds.at(-1))}`);
  }
  const info = await machine();
  console.log(`\n${info.cpuModel}, ${info.cores} cores, Deno ${info.deno}, ${info.commit}\n`);
  console.log(render(rounds));
  if (values.json) {
    await Deno.writeTextFile(values.json, JSON.stringify({ machine: info, rounds }, null, 2));
  }
}
