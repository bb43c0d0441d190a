/**
 * The HTTP surface as one plain `(Request) => Promise<Response>` built from a
 * route table: CORS preflight, WebSocket upgrades on any path, favicon,
 * health and readiness, metrics, and the SSE stream paths with Mastodon's
 * error statuses and messages. router.ts never calls `Deno.serve`.
 *
 * @module
 */
import type { Access } from "./access.ts";
import { type Authenticator, findToken, type Viewer } from "./auth.ts";
import type { ClientContext } from "./client.ts";
import { describeError } from "./errors.ts";
import { type Logger, redactUrl } from "./log.ts";
import type { Metrics } from "./metrics.ts";
import { SseClient, sseHeaders, type SseRegistry } from "./sse.ts";
import { streamFromPath } from "./timeline.ts";
import { queryParams, type SessionRegistry } from "./websocket.ts";
import { acceptWebSocket } from "./websocket_upgrade.ts";

/** Everything the handler needs, passed in by main.ts. */
export interface HandlerOptions extends ClientContext {
  auth: Authenticator;
  access: Access;
  log: Logger;
  metrics: Metrics;
  sse: SseRegistry;
  sessions: SessionRegistry;
  /** Resolves when Redis and PostgreSQL are usable; throws with a reason otherwise. */
  ready: () => Promise<void>;
  /** Seconds before an idle WebSocket is pinged and then cut (Mastodon: 30). */
  wsIdleTimeoutSeconds?: number;
  /** How long a closing WebSocket may take before its connection is dropped (5 s). */
  wsCloseGraceMs?: number;
}

type Route = {
  methods: readonly string[];
  pattern: RegExp;
  handle: (request: Request, url: URL, requestId: string) => Promise<Response> | Response;
};

const READ = ["GET", "HEAD"] as const;

function common(requestId: string, extra: Record<string, string> = {}): Headers {
  return new Headers({ "Access-Control-Allow-Origin": "*", "X-Request-Id": requestId, ...extra });
}

/** `{"error":"…"}` with Mastodon's headers. */
export function jsonError(status: number, message: string, requestId: string): Response {
  const headers = common(requestId, { "Content-Type": "application/json" });
  return new Response(JSON.stringify({ error: message }), { status, headers });
}

function preflight(request: Request, requestId: string): Response {
  const headers = common(requestId, {
    "Access-Control-Allow-Methods": "GET,HEAD,PUT,PATCH,POST,DELETE",
    "Vary": "Access-Control-Request-Headers",
  });
  const asked = request.headers.get("access-control-request-headers");
  if (asked) headers.set("Access-Control-Allow-Headers", asked);
  headers.set("Content-Length", "0");
  return new Response(null, { status: 204, headers });
}

function upgradeError(status: number, message: string, requestId: string): Response {
  const headers = new Headers({
    "Connection": "close",
    "Content-Type": "text/plain",
    "X-Request-Id": requestId,
    "X-Error-Message": message,
  });
  return new Response(null, { status, headers });
}

/** Builds the request handler. */
export function createHandler(options: HandlerOptions): (request: Request) => Promise<Response> {
  const { log } = options;
  const plain = (body: string, requestId: string, status = 200) =>
    new Response(body, {
      status,
      headers: common(requestId, {
        "Content-Type": "text/plain",
        "Cache-Control": "private, no-store",
      }),
    });

  const routes: Route[] = [
    {
      methods: READ,
      pattern: /^\/favicon\.ico\/?$/i,
      handle: (_r, _u, id) => new Response(null, { status: 404, headers: common(id) }),
    },
    {
      methods: READ,
      pattern: /^\/api\/v1\/streaming\/health\/?$/i,
      handle: (_r, _u, id) => plain("OK", id),
    },
    {
      methods: READ,
      pattern: /^\/api\/v1\/streaming\/health\/ready\/?$/i,
      handle: async (_r, _u, id) => {
        try {
          await options.ready();
          return plain("OK", id);
        } catch (err) {
          return jsonError(503, (err as Error).message, id);
        }
      },
    },
    {
      methods: READ,
      pattern: /^\/metrics\/?$/i,
      handle: (_r, _u, id) =>
        new Response(options.metrics.render(), {
          headers: common(id, {
            "Content-Type": "text/plain; version=0.0.4; charset=utf-8",
            "Cache-Control": "private, no-store",
          }),
        }),
    },
  ];

  const streamRequest = async (request: Request, url: URL, requestId: string) => {
    const stream = streamFromPath(url.pathname, url.searchParams);
    if (stream === undefined) return jsonError(400, "Unknown channel requested", requestId);
    const viewer = await options.auth.authenticate(findToken(request.headers, url.searchParams));
    if (request.method !== "GET" && request.method !== "HEAD") {
      return jsonError(404, "Not found", requestId);
    }
    const resolved = await options.access.resolve(viewer, stream, queryParams(url.searchParams));
    if (request.method === "HEAD") return new Response(null, { headers: sseHeaders(requestId) });
    return openStream(viewer, resolved, requestId);
  };

  const openStream = (
    viewer: Viewer,
    resolved: Awaited<ReturnType<Access["resolve"]>>,
    requestId: string,
  ) => {
    const client = new SseClient(viewer, options, options.sse);
    client.subscribe(resolved);
    return new Response(client.body, { headers: sseHeaders(requestId) });
  };

  const upgrade = async (request: Request, url: URL, requestId: string) => {
    let viewer: Viewer;
    try {
      viewer = await options.auth.authenticate(findToken(request.headers, url.searchParams));
    } catch (err) {
      const { status, message } = describeError(err);
      if (status === 500) log.error("Authentication failed", { err, requestId });
      return upgradeError(status, message, requestId);
    }
    try {
      return acceptWebSocket(request, {
        viewer,
        requestId,
        context: options,
        sessions: options.sessions,
        idleTimeoutSeconds: options.wsIdleTimeoutSeconds ?? 30,
        closeGraceMs: options.wsCloseGraceMs,
      });
    } catch {
      return new Response("Bad WebSocket upgrade request", { status: 400 });
    }
  };

  return async (request: Request): Promise<Response> => {
    const requestId = crypto.randomUUID();
    const url = new URL(request.url);
    log.debug("Request", {
      requestId,
      method: request.method,
      url: redactUrl(url.pathname + url.search),
    });
    if (request.method === "OPTIONS") return preflight(request, requestId);
    if (request.headers.get("upgrade")?.toLowerCase() === "websocket") {
      return upgrade(request, url, requestId);
    }
    for (const route of routes) {
      if (route.methods.includes(request.method) && route.pattern.test(url.pathname)) {
        return route.handle(request, url, requestId);
      }
    }
    try {
      return await streamRequest(request, url, requestId);
    } catch (err) {
      const { status, message } = describeError(err);
      if (status === 500) log.error("Stream request failed", { err, requestId });
      return jsonError(status, message, requestId);
    }
  };
}
