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

/** Starts serving `handler` on `listen`. */
export function startServer(options: {
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
}): RunningServer {
  const { listen, log } = options;
  const onError = unhandledError(log);
  const server = listen.kind === "unix"
    ? Deno.serve({ path: listen.path, onListen: () => {}, onError }, options.handler)
    : Deno.serve(
      {
        hostname: listen.hostname,
        port: listen.port,
        onListen: () => {},
        onError,
        ...(options.reusePort ? { reusePort: true } : {}),
      },
      options.handler,
    );
  const addr: Deno.Addr = server.addr;
  const address = addr.transport === "unix"
    ? addr.path
    : `${(addr as Deno.NetAddr).hostname}:${(addr as Deno.NetAddr).port}`;
  if (listen.kind === "unix") allowEveryone(listen.path, log);
  const url = `${listen.kind === "unix" ? "unix:" : "http://"}${address}`;
  if (options.announce === false) log.debug(`Listening on ${url}`);
  else log.info(`Streaming API now listening on ${url}`);

  let stopping: Promise<void> | undefined;
  const shutdown = () =>
    stopping ??= (async () => {
      const drained = server.shutdown(); // stops accepting at once
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
