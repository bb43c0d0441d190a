/**
 * What a Sluice process must do however it was built or started (a compiled
 * binary, `deno run --cached-only`): answer health and readiness, carry a
 * published event to an SSE stream and to a WebSocket, and exit 0 on SIGTERM. Sluice's SUBSCRIBEs
 * are awaited through Redis MONITOR, not a timer.
 *
 * @module
 */
import assert from "node:assert/strict";
import { SseReader, WsClient } from "./clients.ts";
import { spawnMain, stopping } from "./main_process.ts";
import { serviceEnv, type Services } from "./stack.ts";
import { freePort } from "../../scripts/free_port.ts";

const encoder = new TextEncoder();
const decoder = new TextDecoder();

/** A MONITOR connection to Redis: every command Redis executes, as text. */
class Monitor {
  #text = "";
  readonly #conn: Deno.Conn;
  readonly #reader: ReadableStreamDefaultReader<Uint8Array>;

  private constructor(conn: Deno.Conn) {
    this.#conn = conn;
    this.#reader = conn.readable.getReader();
  }

  static async open(port: number): Promise<Monitor> {
    const monitor = new Monitor(await Deno.connect({ hostname: "127.0.0.1", port }));
    await monitor.#conn.write(encoder.encode("MONITOR\r\n"));
    await monitor.#until((text) => text.startsWith("+OK\r\n"), "MONITOR's +OK");
    return monitor;
  }

  /** Resolves once Redis has run a SUBSCRIBE naming `channel`. */
  subscribed(channel: string): Promise<void> {
    return this.#until(
      (text) =>
        text.split("\r\n").some((l) => l.includes('"SUBSCRIBE"') && l.includes(`"${channel}"`)),
      `SUBSCRIBE ${channel}`,
    );
  }

  async #until(done: (text: string) => boolean, what: string): Promise<void> {
    const timer = setTimeout(() => this.#reader.cancel(), 20_000);
    try {
      while (!done(this.#text)) {
        const { value, done: ended } = await this.#reader.read();
        if (ended) throw new Error(`Redis MONITOR ended (or timed out) before ${what}`);
        this.#text += decoder.decode(value, { stream: true });
      }
    } finally {
      clearTimeout(timer);
    }
  }

  [Symbol.dispose](): void {
    this.#reader.releaseLock();
    try {
      this.#conn.close();
    } catch {
      // already closed: a timed-out wait cancelled the reader
    }
  }
}

async function getText(url: string): Promise<string> {
  const response = await fetch(url);
  return `${response.status} ${await response.text()}`;
}

/** Health and readiness answer OK on `port`. */
export async function assertHealthy(port: number): Promise<void> {
  const base = `http://127.0.0.1:${port}/api/v1/streaming`;
  assert.equal(await getText(`${base}/health`), "200 OK");
  assert.equal(await getText(`${base}/health/ready`), "200 OK", "Redis and PostgreSQL are reached");
}

/**
 * Health and readiness, then alice's public SSE stream and her user stream over
 * WebSocket each get the event published to their channel.
 */
export async function assertServesStreams(services: Services, port: number): Promise<void> {
  await assertHealthy(port);
  using monitor = await Monitor.open(services.redis.port);
  const base = `127.0.0.1:${port}/api/v1/streaming`;
  await using sse = await SseReader.open(`http://${base}/public?access_token=token-alice`);
  await using ws = await WsClient.open(`ws://${base}?access_token=token-alice&stream=user`);
  await monitor.subscribed("timeline:public");
  await monitor.subscribed("timeline:1");
  const publish = (channel: string, message: string) => services.client.publish(channel, message);
  assert.equal(await publish("timeline:public", '{"event":"delete","payload":"1"}'), 1);
  await sse.contains("event: delete\ndata: 1\n\n");
  assert.equal(await publish("timeline:1", '{"event":"delete","payload":"7"}'), 1);
  assert.equal(await ws.next(), '{"stream":["user"],"event":"delete","payload":"7"}');
}

/**
 * Starts `program` (Sluice as a command line, e.g. a compiled binary) against the services on
 * a free port with `env` added, checks it serves streams, then SIGTERM: it must exit 0.
 */
export async function assertProgramServes(
  services: Services,
  program: string[],
  env: Record<string, string> = {},
  port = freePort(),
): Promise<void> {
  const sluice = spawnMain({ ...serviceEnv(services), ...env, PORT: String(port) }, { program });
  await stopping(sluice, async () => {
    await sluice.listening();
    // Listening comes before Redis is connected: readiness is only promised after that.
    await sluice.logs.find((r) => r.msg === "Redis subscriber connected", "Redis connected");
    await assertServesStreams(services, port);
  });
}
