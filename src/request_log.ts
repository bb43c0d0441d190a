/**
 * The request log: one record per request in pino-http's shape (`req` with
 * the request id, method, URL with the token redacted and client address;
 * `res.statusCode`; `responseTime` in ms), written when the response is
 * produced or, for an SSE stream or a WebSocket, when it closes. A 500 is an
 * error record carrying the error; every other status, 401 included, is info.
 * request_log.ts never decides a status and never logs headers.
 *
 * @module
 */
import { type Logger, redactUrl } from "./log.ts";
import { clientAddress, type TrustProxy } from "./proxy_addr.ts";

/** The part of `Deno.ServeHandlerInfo` the request log reads. */
export interface PeerInfo {
  readonly remoteAddr: Deno.Addr;
}

/** The `req` object of a record. */
export interface RequestFields {
  readonly id: string;
  readonly method: string;
  /** Path and query, the token redacted. */
  readonly url: string;
  /** The client address (see {@link clientAddress}); absent without a peer IP. */
  readonly remoteAddress?: string;
}

/** How a request ended. */
export interface Outcome {
  status: number;
  /** The thrown error behind a 500. */
  err?: unknown;
  /** A WebSocket's close code, when known. */
  closeCode?: number;
}

/** The one record of one request. */
export class RequestRecord {
  readonly req: RequestFields;
  readonly #log: Logger;
  readonly #start = performance.now();
  /** Whether the record waits for a stream to close. */
  #deferred = false;
  #written = false;

  constructor(options: {
    log: Logger;
    trustProxy: TrustProxy;
    request: Request;
    url: URL;
    id: string;
    info?: PeerInfo;
  }) {
    const { request, url, info } = options;
    this.#log = options.log;
    this.req = {
      id: options.id,
      method: request.method,
      url: redactUrl(url),
      remoteAddress: info && peerClient(info.remoteAddr, request.headers, options.trustProxy),
    };
  }

  /**
   * Defers the record until a stream answered with `status` closes; returns
   * what the stream calls then (a WebSocket with its close code). A request
   * that fails after all is recorded by an explicit {@link write}.
   */
  untilClosed(status: number): (closeCode?: number) => void {
    this.#deferred = true;
    return (closeCode) => this.write({ status, closeCode });
  }

  /** Writes the record for `response` now, unless a stream deferred it. */
  responded(response: Response): void {
    if (!this.#deferred) this.write({ status: response.status });
  }

  /** Writes the record (once; later calls are ignored). */
  write(outcome: Outcome): void {
    if (this.#written) return;
    this.#written = true;
    const { status, err, closeCode } = outcome;
    const fields = {
      req: this.req,
      res: { statusCode: status },
      err: status === 500 ? err : undefined,
      responseTime: Math.round(performance.now() - this.#start),
      closeCode,
    };
    if (status === 500) this.#log.error("request errored", fields);
    else this.#log.info("request completed", fields);
  }
}

/** The client address behind a peer: a unix-socket peer has no IP of its own. */
function peerClient(addr: Deno.Addr, headers: Headers, trust: TrustProxy): string | undefined {
  const peer = "hostname" in addr ? addr.hostname : undefined;
  return clientAddress(peer, headers.get("x-forwarded-for"), trust);
}
