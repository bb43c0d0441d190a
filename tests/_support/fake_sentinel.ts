/**
 * A scripted stand-in for a Redis Sentinel on a free 127.0.0.1 port: answers
 * AUTH, PING and `SENTINEL get-master-addr-by-name`, accepts SUBSCRIBE, and
 * lets a test announce `+switch-master` (a real sentinel refuses PUBLISH) or
 * cut its subscribers.
 *
 * @module
 */
import { RespParser, type RespValue } from "../../src/redis/resp.ts";
import { Waiters } from "./clients.ts";

const encoder = new TextEncoder();

function bulk(text: string): string {
  return `$${encoder.encode(text).length}\r\n${text}\r\n`;
}

function array(items: string[]): string {
  return `*${items.length}\r\n${items.map(bulk).join("")}`;
}

/** A fake sentinel naming `master` as the address of `name`. */
export class FakeSentinel {
  readonly #listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  readonly #conns = new Set<Deno.Conn>();
  readonly #subscribers = new Set<Deno.Conn>();
  readonly #serving: Promise<void>;
  readonly #waiters = new Waiters();
  /** Commands received, in order (names upper-cased). */
  readonly commands: string[] = [];

  constructor(
    readonly name: string,
    public master: { host: string; port: number },
    readonly password?: string,
  ) {
    this.#serving = this.#accept();
  }

  get port(): number {
    return this.#listener.addr.port;
  }

  /** Resolves once the `n`-th SUBSCRIBE (counting from the start) has arrived. */
  subscribed(n: number): Promise<void> {
    const count = () => this.commands.filter((c) => c === "SUBSCRIBE").length;
    return this.#waiters.until(() => count() >= n || undefined, `SUBSCRIBE ${n}`, 10_000)
      .then(() => {});
  }

  /** Sends a `+switch-master` message to every subscriber; resolves with how many got it. */
  async announce(payload: string): Promise<number> {
    const message = encoder.encode(array(["message", "+switch-master", payload]));
    const conns = [...this.#subscribers];
    await Promise.all(conns.map((conn) => conn.write(message)));
    return conns.length;
  }

  /** Closes the subscribers' connections. */
  cutSubscribers(): void {
    for (const conn of this.#subscribers) this.#drop(conn);
  }

  async close(): Promise<void> {
    this.#listener.close();
    for (const conn of this.#conns) this.#drop(conn);
    await this.#serving;
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }

  async #accept(): Promise<void> {
    const serving: Promise<void>[] = [];
    for await (const conn of this.#listener) serving.push(this.#serve(conn));
    await Promise.all(serving);
  }

  async #serve(conn: Deno.Conn): Promise<void> {
    this.#conns.add(conn);
    const parser = new RespParser();
    const buffer = new Uint8Array(4096);
    try {
      for (let n = await conn.read(buffer); n !== null; n = await conn.read(buffer)) {
        const commands: RespValue[] = [];
        parser.push(buffer.subarray(0, n), commands);
        for (const command of commands) {
          await conn.write(encoder.encode(this.#answer(conn, command)));
        }
      }
    } catch {
      // cut by the test, or by the client
    } finally {
      this.#drop(conn);
    }
  }

  #answer(conn: Deno.Conn, command: RespValue): string {
    const [name, ...args] = (command as string[]).map(String);
    this.commands.push(name.toUpperCase());
    switch (name.toUpperCase()) {
      case "AUTH":
        return args.at(-1) === this.password ? "+OK\r\n" : "-WRONGPASS invalid password\r\n";
      case "PING":
        return "+PONG\r\n";
      case "SUBSCRIBE":
        this.#subscribers.add(conn);
        queueMicrotask(() => this.#waiters.notify());
        return `*3\r\n${bulk("subscribe")}${bulk(args[0])}:1\r\n`;
      case "SENTINEL":
        return args[1] === this.name
          ? array([this.master.host, String(this.master.port)])
          : "*-1\r\n";
      default:
        return `-ERR unknown command '${name}'\r\n`;
    }
  }

  #drop(conn: Deno.Conn): void {
    this.#subscribers.delete(conn);
    if (!this.#conns.delete(conn)) return;
    try {
      conn.close();
    } catch {
      // already closed
    }
  }
}
