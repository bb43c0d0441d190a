/**
 * Shutdown against clients that do not cooperate. A WebSocket client that
 * never answers Sluice's close frame cannot hold a real main.ts process up:
 * it exits 0 within SLUICE_SHUTDOWN_TIMEOUT_MS (plus slack). Deno.serve does
 * not wait for upgraded connections, so what the deadline actually bounds is
 * a response that cannot be written: an SSE client that stopped reading.
 */
import assert from "node:assert/strict";
import { WsClient } from "../_support/clients.ts";
import { LogLines } from "../_support/log_lines.ts";
import { type MainProcess, spawnMain } from "../_support/main_process.ts";
import { serviceEnv, startServices, startSluice } from "../_support/stack.ts";
import { decodeFrames, type Frame } from "../_support/transcript.ts";
import { freePort } from "../../scripts/free_port.ts";

const DEADLINE_MS = 500;
/** Start-up of the exit path on a loaded machine; still less than the 5 s close grace. */
const SLACK_MS = 4000;

/** A raw WebSocket client: handshake done, reads frames, never writes again. */
class MuteWebSocket {
  #bytes = new Uint8Array(0);
  private constructor(readonly conn: Deno.Conn) {}

  static async open(port: number, path: string): Promise<MuteWebSocket> {
    const conn = await Deno.connect({ hostname: "127.0.0.1", port });
    await conn.write(new TextEncoder().encode(
      `GET ${path} HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n` +
        "Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n",
    ));
    const socket = new MuteWebSocket(conn);
    const head = await socket.#readUntil((bytes) => {
      const text = new TextDecoder().decode(bytes);
      const end = text.indexOf("\r\n\r\n");
      return end < 0 ? undefined : text.slice(0, end);
    });
    assert.match(head, /^HTTP\/1\.1 101 /);
    return socket;
  }

  /** The next frames, once at least one complete frame has arrived after the handshake. */
  frames(): Promise<Frame[]> {
    return this.#readUntil((bytes) => {
      const start = new TextDecoder().decode(bytes).indexOf("\r\n\r\n") + 4;
      const { frames } = decodeFrames(bytes.subarray(start));
      return frames.length > 0 ? frames : undefined;
    });
  }

  async #readUntil<T>(check: (bytes: Uint8Array) => T | undefined): Promise<T> {
    const buffer = new Uint8Array(4096);
    for (let found = check(this.#bytes); found === undefined; found = check(this.#bytes)) {
      const n = await this.conn.read(buffer);
      if (n === null) throw new Error("the server closed the connection");
      this.#bytes = new Uint8Array([...this.#bytes, ...buffer.subarray(0, n)]);
      if (this.#bytes.length > 65536) throw new Error("too many bytes without the frame");
    }
    return check(this.#bytes)!;
  }
}

Deno.test("A WebSocket client that never answers the close frame cannot hold up SIGTERM", async () => {
  const services = await startServices();
  const port = freePort();
  const main = spawnMain({
    ...serviceEnv(services),
    PORT: String(port),
    SLUICE_SHUTDOWN_TIMEOUT_MS: String(DEADLINE_MS),
  });
  await main.listening();
  const mute = await MuteWebSocket.open(port, "/api/v1/streaming?access_token=token-alice");
  try {
    main.child.kill("SIGTERM");
    const [close] = await mute.frames();
    assert.equal(close.opcode, 0x8, "Sluice sends a close frame");
    assert.equal((close.payload[0] << 8) | close.payload[1], 1001);
    // The client never answers.
    const { code, stderr } = await exitsWithin(main, DEADLINE_MS + SLACK_MS);
    assert.equal(code, 0, stderr);
  } finally {
    mute.conn.close();
    await services.close();
  }
});

/** What `promise` resolves to, or a failure naming `what` if that takes longer than `ms`. */
async function within<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const late = new Promise<"late">((resolve) => timer = setTimeout(() => resolve("late"), ms));
  const outcome = await Promise.race([promise, late]);
  clearTimeout(timer);
  if (outcome === "late") throw new Error(`${what} took longer than ${ms} ms`);
  return outcome as T;
}

/** The exit status; a failure (and SIGKILL) if the process runs for longer than `ms`. */
async function exitsWithin(main: MainProcess, ms: number) {
  try {
    return await within(main.exited(), ms, "exiting after SIGTERM");
  } catch (error) {
    main.child.kill("SIGKILL");
    await main.exited();
    throw error;
  }
}

/** More bytes than the kernel can buffer on one loopback connection (both ends). */
async function beyondSocketBuffers(): Promise<number> {
  const max = async (file: string) =>
    Number((await Deno.readTextFile(`/proc/sys/net/ipv4/${file}`)).trim().split(/\s+/)[2]);
  return await max("tcp_rmem") + await max("tcp_wmem") + (4 << 20);
}

Deno.test("The shutdown deadline ends the wait for an SSE client that stopped reading", async () => {
  const services = await startServices();
  const logs = new LogLines();
  const app = await startSluice(
    services,
    {
      SLUICE_SHUTDOWN_TIMEOUT_MS: String(DEADLINE_MS),
      SLUICE_CLIENT_QUEUE_BYTES: String(1 << 30), // never cut off: the bytes stay queued
    },
    {},
    logs.logger("info"),
  );
  const stalled = await Deno.connect({ hostname: "127.0.0.1", port: app.port });
  await stalled.write(new TextEncoder().encode(
    "GET /api/v1/streaming/user HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer token-alice\r\n\r\n",
  ));
  const healthy = await WsClient.open(
    `${app.ws}/api/v1/streaming?access_token=token-alice&stream=user`,
  );
  try {
    await app.listeners("timeline:1", 2);
    const chunk = "x".repeat(1 << 16);
    const count = Math.ceil(await beyondSocketBuffers() / chunk.length);
    for (let i = 0; i < count; i++) {
      await services.client.publish("timeline:1", `{"event":"delete","payload":"${chunk}"}`);
    }
    await services.client.publish("timeline:1", '{"event":"delete","payload":"last"}');
    // Once the healthy client has everything, the stalled one has bytes Sluice cannot write.
    for (let i = 0; i < count; i++) await healthy.next();
    assert.equal(JSON.parse(await healthy.next()).payload, "last");
    // Resolves only at the deadline: the stalled response never drains.
    await within(app.close(), DEADLINE_MS + SLACK_MS, "shutting down");
    const warnings = logs.filter((r) => r.level === "warn" && /deadline/i.test(String(r.msg)));
    assert.equal(warnings.length, 1, "the deadline is logged once");
    assert.equal((await healthy.closed()).code, 1001);
  } finally {
    stalled.close();
    await healthy.close();
    await app.close();
    await services.close();
  }
});
