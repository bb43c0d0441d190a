/**
 * The optional per-address connection limit (`SLUICE_MAX_CONNECTIONS_PER_IP`):
 * open SSE streams and WebSockets counted by client address (the one the
 * request log shows, through `TRUSTED_PROXY_IP`), a new one refused with a
 * 429 {@link LimitError} at the limit, before any database work. Each worker
 * counts its own connections and allows its share of the limit, rounded up.
 * address_limit.ts never reads headers itself and never holds a connection.
 *
 * @module
 */
import { LimitError } from "./errors.ts";
import type { Logger } from "./log.ts";
import type { Series } from "./metrics.ts";

/** The message of the 429 answer. */
export const TOO_MANY_CONNECTIONS = "Too many connections from this address";

/** Ends one admitted connection's count; calling it again does nothing. */
export type Release = () => void;

const NOTHING_TO_RELEASE: Release = () => {};

/** What {@link AddressLimit} needs. */
export interface AddressLimitOptions {
  /** SLUICE_MAX_CONNECTIONS_PER_IP for the instance; 0 turns the limit off. */
  limit: number;
  /** Worker threads of the instance (default 1): each allows `ceil(limit / workers)`. */
  workers?: number;
  /** sluice_limit_refusals_total{limit="connections_per_ip"}. */
  refusals: Series;
  log: Logger;
}

/** Open connections per client address, and the refusal of one too many. */
export class AddressLimit {
  /** Connections this worker allows per address; 0 when the limit is off. */
  readonly perWorker: number;
  readonly #open = new Map<string, number>();
  readonly #refusals: Series;
  readonly #log: Logger;

  constructor(options: AddressLimitOptions) {
    const workers = Math.max(1, options.workers ?? 1);
    this.perWorker = options.limit === 0 ? 0 : Math.ceil(options.limit / workers);
    this.#refusals = options.refusals;
    this.#log = options.log;
  }

  /** Open connections counted for `address`. */
  count(address: string): number {
    return this.#open.get(address) ?? 0;
  }

  /**
   * Counts a new connection from `address` and returns what ends its count;
   * throws a {@link LimitError} at the limit. Unix-socket peers (no address)
   * and an instance without the limit are not counted.
   */
  admit(address: string | undefined): Release {
    if (this.perWorker === 0 || address === undefined) return NOTHING_TO_RELEASE;
    const open = this.count(address);
    if (open >= this.perWorker) {
      this.#refusals.value++;
      this.#log.info("Refusing a connection: too many from this address", {
        remoteAddress: address,
        limit: this.perWorker,
      });
      throw new LimitError(TOO_MANY_CONNECTIONS);
    }
    this.#open.set(address, open + 1);
    let released = false;
    return () => {
      if (released) return;
      released = true;
      const left = this.count(address) - 1;
      if (left > 0) this.#open.set(address, left);
      else this.#open.delete(address);
    };
  }
}
