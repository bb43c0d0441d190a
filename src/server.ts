/**
 * The only place that calls `Deno.serve`: TCP or a unix socket (mode 0666,
 * like Mastodon), and the ordered graceful shutdown: stop accepting, close
 * WebSockets with 1001 and end SSE streams, then wait for the server to
 * drain, bounded by a deadline.
 *
 * @module
 */
import { clearStaleSocket } from "./_stale_socket.ts";
import type { Listen } from "./config.ts";
import { UNEXPECTED_ERROR } from "./errors.ts";
import type { Logger } from "./log.ts";
import type { Series } from "./metrics.ts";
import { errorResponse } from "./router.ts";

/** A running HTTP server. */
export interface RunningServer {
  /** The TCP port or the socket path. */
  readonly address: string;
  /** Stops accepting, ends every stream and resolves when drained or at the deadline. */
  shutdown(): Promise<void>;
  [Symbol.asyncDispose](): Promise<void>;
}

/**
 * Before `startServer`: a unix socket file left by a crash is removed when
 * nothing listens on it; a ConfigError when a process still does.
 */
export async function prepareListen(listen: Listen, log: Logger): Promise<void> {
  if (listen.kind === "unix") await clearStaleSocket(listen.path, log);
}

/** Options of {@link startServer}. */
export interface ServerOptions {
  listen: Listen;
  /** Called with Deno's `info` too: the request log reads the peer address from it. */
  handler: (request: Request, info: Deno.ServeHandlerInfo) => Promise<Response>;
  log: Logger;
  /** Ends every open stream (WebSockets with 1001) when shutdown starts. */
  goAway: () => void;
  shutdownTimeoutMs: number;
  /** TCP: share the address with other listeners (SO_REUSEPORT; Deno's --unstable-net). */
  reusePort?: boolean;
  /** false: log the address at debug level only (a worker: the supervisor announces it). */
  announce?: boolean;
  /** Counts each time the listener failed (`sluice_accept_errors_total`). */
  acceptErrors?: Series;
  /** First delay before listening again after the listener failed (250 ms, doubling to 5 s). */
  relistenMs?: number;
}

const MAX_RELISTEN_MS = 5000;
/** Without a failure for this long, an episode of listener failures is over. */
const CALM_MS = 10_000;

/**
 * Starts serving `handler` on `listen`. When the listener fails (Deno ends
 * its accept loop on an error such as "Too many open files"), the streams
 * already open go on, the failure is counted and logged once per episode,
 * and a new listener is opened on the same address after a delay, until
 * one accepts again.
 */
export function startServer(options: ServerOptions): RunningServer {
  const { log } = options;
  const servers = new Set<Deno.HttpServer>();
  const episode = new FailureEpisode(options);
  let stopping: Promise<void> | undefined;
  const handler = (request: Request, info: Deno.ServeHandlerInfo) => {
    episode.accepted();
    return options.handler(request, info);
  };
  const open = (listen: Listen): Deno.HttpServer => {
    const server = serve(listen, handler, unhandledError(log), options.reusePort === true);
    servers.add(server);
    server.finished.then(
      () => servers.delete(server),
      (err) => {
        if (stopping) return;
        episode.failed(err);
        setTimeout(relisten, episode.delayMs);
      },
    );
    return server;
  };
  const first = open(options.listen);
  const addr: Deno.Addr = first.addr;
  // The address actually bound: a new listener takes the same port even when 0 was asked.
  const bound: Listen = addr.transport === "unix"
    ? options.listen
    : { ...options.listen, port: (addr as Deno.NetAddr).port } as Listen;
  const relisten = () => {
    if (stopping) return;
    try {
      if (bound.kind === "unix") Deno.removeSync(bound.path); // ours: the failed listener's
      open(bound);
      if (bound.kind === "unix") allowEveryone(bound.path, log);
    } catch (err) {
      episode.failed(err);
      setTimeout(relisten, episode.delayMs);
    }
  };
  const address = addr.transport === "unix"
    ? addr.path
    : `${(addr as Deno.NetAddr).hostname}:${(addr as Deno.NetAddr).port}`;
  if (options.listen.kind === "unix") allowEveryone(options.listen.path, log);
  const url = `${options.listen.kind === "unix" ? "unix:" : "http://"}${address}`;
  if (options.announce === false) log.debug(`Listening on ${url}`);
  else log.info(`Streaming API now listening on ${url}`);

  const shutdown = () =>
    stopping ??= (async () => {
      // Stops accepting at once; a failed listener's connections drain too.
      const drained = Promise.allSettled([...servers].map((server) => server.shutdown()));
      options.goAway();
      let timer: ReturnType<typeof setTimeout> | undefined;
      const deadline = new Promise<"timeout">((resolve) => {
        timer = setTimeout(() => resolve("timeout"), options.shutdownTimeoutMs);
      });
      const outcome = await Promise.race([drained.then(() => "drained" as const), deadline]);
      clearTimeout(timer);
      if (outcome === "timeout") log.warn("Shutdown deadline reached with connections still open");
    })();
  return { address, shutdown, [Symbol.asyncDispose]: shutdown };
}

function serve(
  listen: Listen,
  handler: Deno.ServeHandler,
  onError: (err: unknown) => Response,
  reusePort: boolean,
): Deno.HttpServer {
  if (listen.kind === "unix") {
    return Deno.serve({ path: listen.path, onListen: () => {}, onError }, handler);
  }
  const { hostname, port } = listen;
  return Deno.serve(
    { hostname, port, onListen: () => {}, onError, ...(reusePort ? { reusePort } : {}) },
    handler,
  );
}

/**
 * Listener failures, logged once per episode: the first failure is logged,
 * the next ones only counted; the first request accepted once no failure has
 * happened for {@link CALM_MS} ends the episode with one line. The delay
 * before listening again doubles while the episode lasts.
 */
class FailureEpisode {
  readonly #log: Logger;
  readonly #counter?: Series;
  readonly #firstDelayMs: number;
  #failures = 0;
  #lastFailure = 0;
  delayMs: number;

  constructor(options: { log: Logger; acceptErrors?: Series; relistenMs?: number }) {
    this.#log = options.log;
    this.#counter = options.acceptErrors;
    this.#firstDelayMs = this.delayMs = options.relistenMs ?? 250;
  }

  failed(err: unknown): void {
    if (this.#counter) this.#counter.value++;
    this.#lastFailure = Date.now();
    if (this.#failures++ === 0) {
      this.#log.error(
        "Cannot accept connections; the streams already open go on, and Sluice listens again " +
          "as soon as it can",
        { err: err as Error },
      );
    } else this.delayMs = Math.min(this.delayMs * 2, MAX_RELISTEN_MS);
  }

  accepted(): void {
    if (this.#failures === 0 || Date.now() - this.#lastFailure < CALM_MS) return;
    this.#log.info("Accepting connections again", { failures: this.#failures });
    this.#failures = 0;
    this.delayMs = this.#firstDelayMs;
  }
}

/** `Deno.serve`'s last resort when the handler itself throws: logged, answered 500. */
export function unhandledError(log: Logger): (err: unknown) => Response {
  return (err) => {
    log.error("Unhandled error in request handler", { err: err as Error });
    return errorResponse(500, UNEXPECTED_ERROR);
  };
}

function allowEveryone(path: string, log: Logger): void {
  try {
    Deno.chmodSync(path, 0o666);
  } catch (err) {
    log.warn("Could not chmod the unix socket to 0666 (grant --allow-write for it)", {
      path,
      err: err as Error,
    });
  }
}

/** Exposed for the port of a TCP listener in tests. */
export function portOf(server: RunningServer): number {
  return Number(server.address.split(":").pop());
}
