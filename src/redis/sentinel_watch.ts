/**
 * Following Sentinel failovers: {@link SentinelWatch} keeps one connection to
 * a sentinel (each in turn until one answers, again whenever it drops),
 * subscribed to `+switch-master`, and tells its owner the new address of the
 * configured master the moment a sentinel announces it. Never talks to the
 * master itself and never throws because the sentinels are down.
 *
 * @module
 */
import type { RedisConfig } from "../config.ts";
import type { Logger } from "../log.ts";
import { masterEndpoint, type Opened, openSentinel } from "./_open.ts";
import { ConnectionLoop, type WatchFactory } from "./connection.ts";
import type { RespConnection, RespEndpoint, RespValue } from "./resp.ts";

const CHANNEL = "+switch-master";

/** What a `+switch-master` message says: `<master name> <old ip> <old port> <new ip> <new port>`. */
export interface SwitchMaster {
  master: string;
  from: { host: string; port: number };
  to: { host: string; port: number };
}

/** Parses the payload of a `+switch-master` message; undefined when it is not one. */
export function parseSwitchMaster(payload: string): SwitchMaster | undefined {
  const words = payload.trim().split(/\s+/);
  if (words.length !== 5) return undefined;
  const [master, fromHost, fromPort, toHost, toPort] = words;
  const ports = [fromPort, toPort].map((text) => /^\d{1,5}$/.test(text) ? Number(text) : NaN);
  if (ports.some((port) => !(port >= 1 && port <= 65535))) return undefined;
  return { master, from: { host: fromHost, port: ports[0] }, to: { host: toHost, port: ports[1] } };
}

/**
 * One sentinel connection subscribed to `+switch-master`; calls `onSwitch`
 * with the new address each time a sentinel moves the configured master.
 * Reconnecting (at once, then with backoff) is {@link ConnectionLoop}'s.
 */
export class SentinelWatch extends ConnectionLoop {
  readonly #config: RedisConfig;
  readonly #onSwitch: (master: RespEndpoint) => void;

  constructor(config: RedisConfig, log: Logger, onSwitch: (master: RespEndpoint) => void) {
    super({ config, log }, { name: "sentinel", select: false });
    this.#config = config;
    this.#onSwitch = onSwitch;
  }

  protected override open(signal: AbortSignal): Promise<Opened> {
    return openSentinel(this.#config, signal);
  }

  protected onConnect(conn: RespConnection): Record<string, unknown> {
    conn.send(["SUBSCRIBE", CHANNEL]);
    return { master: this.#config.sentinelMaster };
  }

  protected onDisconnect(): void {}

  protected onReply(reply: RespValue): void {
    if (!Array.isArray(reply) || reply[0] !== "message" || reply[1] !== CHANNEL) return;
    const switched = typeof reply[2] === "string" ? parseSwitchMaster(reply[2]) : undefined;
    if (switched === undefined) {
      this.log.warn("Cannot parse a +switch-master message", { message: reply[2] });
      return;
    }
    if (switched.master !== this.#config.sentinelMaster) return;
    this.#onSwitch(masterEndpoint(this.#config, switched.to.host, switched.to.port));
  }
}

/** A {@link SentinelWatch} in Sentinel mode, none otherwise (the `watch` of a connection role). */
export const watchSentinels: WatchFactory = (config, log, onSwitch) =>
  config.mode === "sentinel" ? new SentinelWatch(config, log, onSwitch) : undefined;
