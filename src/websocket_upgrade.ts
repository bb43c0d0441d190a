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

/** What every upgrade of an instance shares: built once, not per connection. */
export interface UpgradeOptions {
  context: SessionContext;
  idleTimeoutSeconds: number;
  /** Default {@link CLOSE_GRACE_MS}. */
  closeGraceMs?: number;
  /** Called when the socket opens and its session starts. */
  opened(session: WebSocketSession): void;
  /** Called once when the socket of a started session has closed. */
  closed(session: WebSocketSession): void;
}

/**
 * Called once when the socket closes, opened or not, with its close code:
 * the one Sluice sent if it started the close, else the client's.
 */
export type Ended = (code: number) => void;

/** Upgrades an authenticated request and runs its session. */
export function acceptWebSocket(
  request: Request,
  viewer: Viewer,
  requestId: string,
  options: UpgradeOptions,
  ended?: Ended,
): Response {
  const protocol = request.headers.get("sec-websocket-protocol")?.split(",")[0].trim();
  const { socket, response } = Deno.upgradeWebSocket(request, {
    protocol: protocol || undefined,
    idleTimeout: options.idleTimeoutSeconds,
  });
  response.headers.set("X-Request-Id", requestId);
  const query = new URL(request.url).searchParams;
  new SocketPort(socket, options, viewer, query, ended);
  return response;
}

/**
 * One socket's port and event handler in one object with prototype methods,
 * so an idle connection holds no closures. A close Sluice starts is followed
 * by an abort when the handshake stalls.
 */
class SocketPort implements ClientPort, EventListenerObject {
  #session?: WebSocketSession;
  /** Until the socket opens: who connected and the upgrade URL's query. */
  #pending?: { viewer: Viewer; query: URLSearchParams };
  /** The close code Sluice sent, if it started the close. */
  #sent?: number;
  #graceTimer?: ReturnType<typeof setTimeout>;

  constructor(
    readonly socket: WebSocket,
    readonly options: UpgradeOptions,
    viewer: Viewer,
    query: URLSearchParams,
    readonly ended?: Ended,
  ) {
    this.#pending = { viewer, query };
    socket.addEventListener("open", this, { once: true });
    socket.addEventListener("message", this);
    socket.addEventListener("close", this, { once: true });
    socket.addEventListener("error", this);
  }

  handleEvent(event: Event): void {
    switch (event.type) {
      case "open":
        return this.#open();
      case "message":
        this.#session?.receive((event as MessageEvent).data);
        return;
      case "close":
        return this.#closed(event as CloseEvent);
      case "error":
        this.options.context.log.debug("WebSocket error", { error: String(event) });
    }
  }

  send(text: string): void {
    this.socket.send(text);
  }

  get bufferedAmount(): number {
    return this.socket.bufferedAmount;
  }

  get open(): boolean {
    return this.socket.readyState === WebSocket.OPEN;
  }

  close(code?: number, reason?: string): void {
    this.#sent ??= code ?? NO_STATUS;
    this.socket.close(code, reason);
    if (this.#graceTimer !== undefined) return;
    const { metrics, log } = this.options.context;
    const socket = this.socket;
    this.#graceTimer = setTimeout(() => {
      if (socket.readyState === WebSocket.CLOSED) return;
      if (abortWebSocket(socket)) metrics.websocketAborts.inc();
      else log.warn("Cannot abort a WebSocket whose close handshake stalled");
    }, this.options.closeGraceMs ?? CLOSE_GRACE_MS);
  }

  #open(): void {
    const { viewer, query } = this.#pending!;
    this.#pending = undefined;
    const session = new WebSocketSession(viewer, this.options.context, this);
    this.#session = session;
    this.options.opened(session);
    session.start(query);
  }

  #closed(event: CloseEvent): void {
    clearTimeout(this.#graceTimer);
    this.#pending = undefined;
    this.ended?.(this.#sent ?? (event.code === 0 ? ABNORMAL : event.code)); // Deno: 0 for 1006
    const session = this.#session;
    if (session === undefined) return;
    this.options.closed(session);
    session.dispose();
  }
}
