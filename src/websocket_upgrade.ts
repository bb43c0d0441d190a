/**
 * Deno's side of a WebSocket session: the upgrade (the first offered
 * subprotocol is echoed, browsers require it when the token travels that
 * way), Deno's idle timeout that pings a quiet socket and closes it when no
 * pong comes, and the port a {@link WebSocketSession} talks to. Every close
 * Sluice starts (kill, 1013 for a slow client, 1001 at shutdown) is followed,
 * if the close handshake has not finished within the grace period, by an
 * abortive close of the connection: a client that stopped reading never
 * answers, and would otherwise hold its connection and buffers forever.
 *
 * @module
 */
import { abortWebSocket } from "./_deno_internals.ts";
import type { Viewer } from "./auth.ts";
import { type ClientPort, type SessionContext, WebSocketSession } from "./websocket.ts";

/** How long a closing socket may take to finish the close handshake. */
const CLOSE_GRACE_MS = 5_000;
/** Close codes: no status in the close frame; closed without a close frame. */
const [NO_STATUS, ABNORMAL] = [1005, 1006];

/** What an upgrade needs besides the request. */
export interface UpgradeOptions {
  viewer: Viewer;
  requestId: string;
  context: SessionContext;
  idleTimeoutSeconds: number;
  /** Default {@link CLOSE_GRACE_MS}. */
  closeGraceMs?: number;
  /** Called when the socket opens and its session starts. */
  opened(session: WebSocketSession): void;
  /** Called once when the socket of a started session has closed. */
  closed(session: WebSocketSession): void;
  /**
   * Called once when the socket closes, opened or not, with its close code:
   * the one Sluice sent if it started the close, else the client's.
   */
  ended?(code: number): void;
}

/** Upgrades an authenticated request and runs its session. */
export function acceptWebSocket(request: Request, options: UpgradeOptions): Response {
  const protocol = request.headers.get("sec-websocket-protocol")?.split(",")[0].trim();
  const { socket, response } = Deno.upgradeWebSocket(request, {
    protocol: protocol || undefined,
    idleTimeout: options.idleTimeoutSeconds,
  });
  response.headers.set("X-Request-Id", options.requestId);
  let query: URLSearchParams | undefined = new URL(request.url).searchParams;
  let session: WebSocketSession | undefined;
  let sent: number | undefined;
  const port = closingPort(socket, options, (code) => sent ??= code ?? NO_STATUS);
  socket.onopen = () => {
    session = new WebSocketSession(options.viewer, options.context, port);
    options.opened(session);
    session.start(query!);
    query = undefined;
  };
  socket.onmessage = (e) => session?.receive(e.data);
  socket.onclose = (e) => {
    options.ended?.(sent ?? (e.code === 0 ? ABNORMAL : e.code)); // Deno reports 0 for 1006
    if (session === undefined) return;
    options.closed(session);
    session.dispose();
  };
  socket.onerror = (e) => options.context.log.debug("WebSocket error", { error: String(e) });
  return response;
}

/** The session's port: a close is followed by an abort when the handshake stalls. */
function closingPort(
  socket: WebSocket,
  options: UpgradeOptions,
  closing: (code?: number) => void,
): ClientPort {
  const grace = options.closeGraceMs ?? CLOSE_GRACE_MS;
  const { metrics, log } = options.context;
  return {
    send: (text) => socket.send(text),
    get bufferedAmount() {
      return socket.bufferedAmount;
    },
    close(code?: number, reason?: string) {
      closing(code);
      socket.close(code, reason);
      const timer = setTimeout(() => {
        if (socket.readyState === WebSocket.CLOSED) return;
        if (abortWebSocket(socket)) metrics.websocketAborts.inc();
        else log.warn("Cannot abort a WebSocket whose close handshake stalled");
      }, grace);
      socket.addEventListener("close", () => clearTimeout(timer), { once: true });
    },
  };
}
