/**
 * The only place that calls `Deno.serve`: TCP or a unix socket (mode 0666,
 * like Mastodon), and the ordered graceful shutdown: stop accepting, close
 * WebSockets with 1001 and end SSE streams, then wait for the server to
 * drain, bounded by a deadline.
 *
 * @module
 */
import type { Listen } from "./config.ts";
import type { Logger } from "./log.ts";
import type { SseRegistry } from "./sse.ts";
import type { SessionRegistry } from "./websocket.ts";

/** A running HTTP server. */
export interface RunningServer {
  /** The TCP port or the socket path. */
  readonly address: string;
  /** Stops accepting, ends every stream and resolves when drained or at the deadline. */
  shutdown(): Promise<void>;
  [Symbol.asyncDispose](): Promise<void>;
}

/** Starts serving `handler` on `listen`. */
export function startServer(options: {
  listen: Listen;
  handler: (request: Request) => Promise<Response>;
  log: Logger;
  sse: SseRegistry;
  sessions: SessionRegistry;
  shutdownTimeoutMs: number;
}): RunningServer {
  const { listen, log } = options;
  const onError = (err: unknown) => {
    log.error("Unhandled error in request handler", { err: err as Error });
    return new Response(JSON.stringify({ error: "An unexpected error occurred" }), {
      status: 500,
      headers: { "Content-Type": "application/json", "Access-Control-Allow-Origin": "*" },
    });
  };
  const server = listen.kind === "unix"
    ? Deno.serve({ path: listen.path, onListen: () => {}, onError }, options.handler)
    : Deno.serve(
      { hostname: listen.hostname, port: listen.port, onListen: () => {}, onError },
      options.handler,
    );
  const addr: Deno.Addr = server.addr;
  const address = addr.transport === "unix"
    ? addr.path
    : `${(addr as Deno.NetAddr).hostname}:${(addr as Deno.NetAddr).port}`;
  if (listen.kind === "unix") allowEveryone(listen.path, log);
  log.info(
    `Streaming API now listening on ${listen.kind === "unix" ? "unix:" : "http://"}${address}`,
  );

  let stopping: Promise<void> | undefined;
  const shutdown = () =>
    stopping ??= (async () => {
      const drained = server.shutdown(); // stops accepting at once
      for (const session of [...options.sessions]) session.goAway();
      options.sse.endAll();
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
