/**
 * The HTTP surface as one plain `(Request, info?) => Promise<Response>` built
 * from a route table: every route is a row (a matcher and a top-level
 * handler), tried in order, from CORS preflight and WebSocket upgrades on any
 * path to the SSE stream paths with Mastodon's error statuses and messages,
 * and the per-address connection limit checked before any database work.
 * Every failure is answered by {@link errorResponse}; every request gets its
 * one request-log record (at once, or when its stream closes). router.ts
 * never calls `Deno.serve` and never holds a connection.
 *
 * @module
 */
import type { Access } from "./access.ts";
import type { AddressLimit, Release } from "./address_limit.ts";
import { type Authenticator, findToken } from "./auth.ts";
import type { Clients } from "./clients.ts";
import { describeError } from "./errors.ts";
import type { Logger } from "./log.ts";
import type { Metrics } from "./metrics.ts";
import type { TrustProxy } from "./proxy_addr.ts";
import { type PeerInfo, RequestRecord } from "./request_log.ts";
import { sseHeaders } from "./sse.ts";
import { streamFromPath } from "./timeline.ts";
import { queryParams } from "./websocket.ts";

/** What the routes use, passed in by main.ts. */
export interface RouterOptions {
  auth: Authenticator;
  access: Access;
  clients: Pick<Clients, "openStream" | "acceptWebSocket">;
  metrics: Pick<Metrics, "render">;
  /** Receives the request records (pino-http's shape). */
  log: Logger;
  /** Which peers' X-Forwarded-For is believed (TRUSTED_PROXY_IP). */
  trustProxy: TrustProxy;
  /** Resolves when Redis and PostgreSQL are usable; throws with a reason otherwise. */
  ready: () => Promise<void>;
  /** SLUICE_MAX_CONNECTIONS_PER_IP; without it connections are not counted. */
  addressLimit?: Pick<AddressLimit, "admit">;
}

/** One request as the handlers see it. */
interface Exchange {
  readonly request: Request;
  readonly url: URL;
  readonly requestId: string;
  readonly options: RouterOptions;
  /** This request's log record; a stream defers it until it closes. */
  readonly record: RequestRecord;
}

/** A row of the table: the first row whose `matches` is true answers. */
interface Route {
  readonly name: string;
  matches(request: Request, url: URL): boolean;
  handle(exchange: Exchange): Response | Promise<Response>;
  /** How this route answers a thrown error (default {@link errorResponse}). */
  fail?(status: number, message: string, requestId: string): Response;
}

const READ: readonly string[] = ["GET", "HEAD"];

/** A row for GET/HEAD on a path (case-insensitive, optional trailing slash). */
function read(name: string, path: string, handle: Route["handle"]): Route {
  const pattern = new RegExp(`^${path.replaceAll(".", "\\.")}/?$`, "i");
  return {
    name,
    matches: (request, url) => READ.includes(request.method) && pattern.test(url.pathname),
    handle,
  };
}

/** The route table, in matching order. */
export const ROUTES: readonly Route[] = [
  { name: "preflight", matches: (request) => request.method === "OPTIONS", handle: preflight },
  {
    name: "upgrade",
    matches: (request) => request.headers.get("upgrade")?.toLowerCase() === "websocket",
    handle: upgrade,
    fail: upgradeError,
  },
  read("favicon", "/favicon.ico", ({ requestId }) => emptyResponse(404, requestId)),
  read("health", "/api/v1/streaming/health", ({ requestId }) => plain("OK", requestId)),
  read("ready", "/api/v1/streaming/health/ready", ready),
  read("metrics", "/metrics", metrics),
  { name: "stream", matches: () => true, handle: stream },
];

/** A request handler: `info` (Deno's) gives the peer address for the log. */
export type Handler = (request: Request, info?: PeerInfo) => Promise<Response>;

/** Builds the request handler over {@link ROUTES}. */
export function createHandler(options: RouterOptions): Handler {
  const { log, trustProxy } = options;
  return async (request, info) => {
    const requestId = crypto.randomUUID();
    const url = new URL(request.url);
    const record = new RequestRecord({ log, trustProxy, request, url, id: requestId, info });
    log.debug("request started", { req: record.req });
    const route = ROUTES.find((r) => r.matches(request, url))!;
    try {
      const response = await route.handle({ request, url, requestId, options, record });
      record.responded(response);
      return response;
    } catch (err) {
      const { status, message } = describeError(err);
      record.write({ status, err });
      return (route.fail ?? errorResponse)(status, message, requestId);
    }
  };
}

/** `{"error":"…"}` with Mastodon's headers: the one error response of the HTTP surface. */
export function errorResponse(status: number, message: string, requestId?: string): Response {
  const headers = common(requestId, { "Content-Type": "application/json" });
  return new Response(JSON.stringify({ error: message }), { status, headers });
}

function common(requestId: string | undefined, extra: Record<string, string> = {}): Headers {
  const headers = new Headers({ "Access-Control-Allow-Origin": "*", ...extra });
  if (requestId !== undefined) headers.set("X-Request-Id", requestId);
  return headers;
}

function emptyResponse(status: number, requestId: string): Response {
  return new Response(null, { status, headers: common(requestId) });
}

function plain(body: string, requestId: string): Response {
  const headers = common(requestId, {
    "Content-Type": "text/plain",
    "Cache-Control": "private, no-store",
  });
  return new Response(body, { headers });
}

function preflight({ request, requestId }: Exchange): Response {
  const headers = common(requestId, {
    "Access-Control-Allow-Methods": "GET,HEAD,PUT,PATCH,POST,DELETE",
    "Vary": "Access-Control-Request-Headers",
  });
  const asked = request.headers.get("access-control-request-headers");
  if (asked) headers.set("Access-Control-Allow-Headers", asked);
  headers.set("Content-Length", "0");
  return new Response(null, { status: 204, headers });
}

async function ready({ options, requestId }: Exchange): Promise<Response> {
  try {
    await options.ready();
    return plain("OK", requestId);
  } catch (err) {
    return errorResponse(503, (err as Error).message, requestId);
  }
}

async function metrics({ options, requestId }: Exchange): Promise<Response> {
  return new Response(await options.metrics.render(), {
    headers: common(requestId, {
      "Content-Type": "text/plain; version=0.0.4; charset=utf-8",
      "Cache-Control": "private, no-store",
    }),
  });
}

/**
 * Counts a stream or WebSocket against its address's limit (throws a 429
 * when it is reached), then runs `open`, which hands `release` to the
 * connection; if `open` fails, the count ends at once.
 */
async function admitted(
  exchange: Exchange,
  open: (release: Release) => Promise<Response>,
): Promise<Response> {
  const release = exchange.options.addressLimit?.admit(exchange.record.req.remoteAddress);
  if (release === undefined) return open(() => {});
  try {
    return await open(release);
  } catch (err) {
    release();
    throw err;
  }
}

/** A closed-stream callback that ends the address count before writing the request record. */
function releasing(release: Release, closed: (code?: number) => void): (code?: number) => void {
  return (code) => {
    release();
    closed(code);
  };
}

/** An SSE stream path: channel, address limit, token, method, access, then the stream. */
function stream(exchange: Exchange): Promise<Response> {
  const { url, requestId } = exchange;
  const name = streamFromPath(url.pathname, url.searchParams);
  if (name === undefined) {
    return Promise.resolve(errorResponse(400, "Unknown channel requested", requestId));
  }
  return admitted(exchange, (release) => openStream(exchange, name, release));
}

async function openStream(exchange: Exchange, name: string, release: Release): Promise<Response> {
  const { request, url, requestId, options } = exchange;
  const viewer = await options.auth.authenticate(findToken(request.headers, url.searchParams));
  if (!READ.includes(request.method)) return errorResponse(404, "Not found", requestId);
  const resolved = await options.access.resolve(viewer, name, queryParams(url.searchParams));
  if (request.method === "HEAD") {
    release();
    return new Response(null, { headers: sseHeaders(requestId) });
  }
  const closed = releasing(release, exchange.record.untilClosed(200));
  const body = options.clients.openStream(viewer, resolved, closed);
  return new Response(body, { headers: sseHeaders(requestId) });
}

/** A WebSocket upgrade on any path: address limit, token, then the socket goes to the clients. */
function upgrade(exchange: Exchange): Promise<Response> {
  return admitted(exchange, async (release) => {
    const { request, url, requestId, options } = exchange;
    const viewer = await options.auth.authenticate(findToken(request.headers, url.searchParams));
    const closed = releasing(release, exchange.record.untilClosed(101));
    try {
      return options.clients.acceptWebSocket(request, viewer, requestId, closed);
    } catch {
      release();
      exchange.record.write({ status: 400 });
      return new Response("Bad WebSocket upgrade request", { status: 400 });
    }
  });
}

/** Mastodon answers a refused upgrade with a bare status and the message in a header. */
function upgradeError(status: number, message: string, requestId: string): Response {
  const headers = new Headers({
    "Connection": "close",
    "Content-Type": "text/plain",
    "X-Request-Id": requestId,
    "X-Error-Message": message,
  });
  return new Response(null, { status, headers });
}
