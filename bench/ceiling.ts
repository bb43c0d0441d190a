/**
 * The reference broadcaster Sluice's throughput is measured against: the
 * simplest Deno server that speaks the same wire format. One Redis channel,
 * every client gets every message, no auth, no filtering, no heartbeats, no
 * bounded queues, no metrics. Each message is parsed once and encoded once
 * per transport, and the same bytes (SSE) or string (WebSocket) go to every
 * client. Deliberately minimal: anything Sluice does beyond this is the cost
 * the benchmark ratio exposes, so nothing may be added here that Sluice's
 * clients would not also see.
 *
 *   deno run --allow-net bench/ceiling.ts [--port 4100] [--hostname 127.0.0.1]
 *     [--redis redis://127.0.0.1:6379] [--channel timeline:public]
 *
 * @module
 */
import { parseArgs } from "node:util";
import { parseRedisUrl } from "../src/config.ts";
import { silentLogger } from "../src/log.ts";
import { RedisSubscriber } from "../src/redis/subscriber.ts";

/** Where to listen and what to relay. */
export interface CeilingOptions {
  /** 0 picks a free port. Default 4100. */
  port?: number;
  hostname?: string;
  redis?: string;
  channel?: string;
  /** Called each time a client starts receiving messages (lets tests publish without racing). */
  onClient?: (transport: "sse" | "websocket") => void;
}

/** A running ceiling server. */
export interface Ceiling {
  hostname: string;
  port: number;
  /** Ends every stream, stops the server and closes Redis. */
  close(): Promise<void>;
  [Symbol.asyncDispose](): Promise<void>;
}

const encoder = new TextEncoder();
const OPENING = encoder.encode(":)\n");
const SSE_HEADERS = { "Content-Type": "text/event-stream", "Cache-Control": "private, no-store" };

/** Starts serving and resolves once Redis has acknowledged the SUBSCRIBE. */
export async function startCeiling(options: CeilingOptions = {}): Promise<Ceiling> {
  const streams = new Set<ReadableStreamDefaultController<Uint8Array>>();
  const sockets = new Set<WebSocket>();
  const onClient = options.onClient ?? (() => {});
  const config = parseRedisUrl(options.redis ?? "redis://127.0.0.1:6379");
  const subscriber = new RedisSubscriber({
    config,
    log: silentLogger,
    onMessage: (_channel, message) => broadcast(message, streams, sockets),
  });
  subscriber.subscribe(options.channel ?? "timeline:public");
  const server = Deno.serve({
    port: options.port ?? 4100,
    hostname: options.hostname ?? "127.0.0.1",
    onListen() {},
  }, (request) => {
    if (request.headers.get("upgrade")?.toLowerCase() === "websocket") {
      return upgrade(request, sockets, onClient);
    }
    const { pathname } = new URL(request.url);
    if (request.method !== "GET" || !pathname.startsWith("/api/v1/streaming")) {
      return new Response("Not found", { status: 404 });
    }
    return new Response(sseBody(streams, onClient), { headers: SSE_HEADERS });
  });
  const close = async () => {
    await subscriber.close();
    for (const stream of streams) stream.close();
    streams.clear();
    for (const socket of sockets) socket.close(1001);
    await server.shutdown();
  };
  try {
    await subscriber.ready();
  } catch (err) {
    await close();
    throw err;
  }
  return {
    hostname: server.addr.hostname,
    port: server.addr.port,
    close,
    [Symbol.asyncDispose]: close,
  };
}

/** One Redis message → one SSE chunk and one WebSocket text, shared by every client. */
function broadcast(
  message: string,
  streams: Set<ReadableStreamDefaultController<Uint8Array>>,
  sockets: Set<WebSocket>,
): void {
  let event: string, payload: string;
  try {
    const parsed = JSON.parse(message);
    event = String(parsed.event);
    payload = typeof parsed.payload === "string" ? parsed.payload : JSON.stringify(parsed.payload);
  } catch {
    return; // not JSON: nothing to relay
  }
  if (streams.size > 0) {
    const bytes = encoder.encode(`event: ${event}\ndata: ${payload}\n\n`);
    for (const stream of streams) {
      try {
        stream.enqueue(bytes);
      } catch {
        streams.delete(stream); // errored by a vanished client before cancel() ran
      }
    }
  }
  if (sockets.size > 0) {
    const text = JSON.stringify({ stream: ["public"], event, payload });
    for (const socket of sockets) socket.send(text);
  }
}

function sseBody(
  streams: Set<ReadableStreamDefaultController<Uint8Array>>,
  onClient: (transport: "sse") => void,
): ReadableStream<Uint8Array> {
  let self: ReadableStreamDefaultController<Uint8Array>;
  return new ReadableStream({
    start(controller) {
      self = controller;
      controller.enqueue(OPENING);
      streams.add(controller);
      onClient("sse");
    },
    cancel() {
      streams.delete(self);
    },
  });
}

function upgrade(
  request: Request,
  sockets: Set<WebSocket>,
  onClient: (transport: "websocket") => void,
): Response {
  const offered = request.headers.get("sec-websocket-protocol")?.split(",")[0].trim();
  const { socket, response } = Deno.upgradeWebSocket(request, { protocol: offered || undefined });
  socket.onopen = () => {
    sockets.add(socket);
    onClient("websocket");
  };
  socket.onclose = () => sockets.delete(socket);
  socket.onerror = () => sockets.delete(socket);
  return response;
}

/** Parses the command line; throws RangeError on unknown flags or a bad port. */
export function parseCeilingArgs(args: string[]): CeilingOptions {
  const { values } = parseArgs({
    args,
    strict: true,
    options: {
      port: { type: "string", default: "4100" },
      hostname: { type: "string", default: "127.0.0.1" },
      redis: { type: "string", default: "redis://127.0.0.1:6379" },
      channel: { type: "string", default: "timeline:public" },
    },
  });
  const port = Number(values.port);
  if (!Number.isInteger(port) || port < 0 || port > 65535) {
    throw new RangeError(`--port: expected an integer from 0 to 65535, got "${values.port}"`);
  }
  return { port, hostname: values.hostname, redis: values.redis, channel: values.channel };
}

if (import.meta.main) {
  const ceiling = await startCeiling(parseCeilingArgs(Deno.args));
  const stop = () => {
    Deno.removeSignalListener("SIGINT", stop);
    Deno.removeSignalListener("SIGTERM", stop);
    // Deno waits for WebSocket close handshakes on shutdown; a benchmark server need not.
    const deadline = new Promise((resolve) => setTimeout(resolve, 2_000));
    Promise.race([ceiling.close(), deadline]).finally(() => Deno.exit(0));
  };
  Deno.addSignalListener("SIGINT", stop);
  Deno.addSignalListener("SIGTERM", stop);
  console.log(`ceiling listening on http://${ceiling.hostname}:${ceiling.port}`);
}
