/**
 * The one place Sluice reaches into Deno's internals: closing a server
 * WebSocket's connection at once. `WebSocket.close()` writes the close frame
 * behind everything already queued and waits for the peer's answer, so a
 * client that stopped reading would keep its TCP connection, and the kernel
 * and Deno buffers behind it, for as long as it stays connected. Deno offers
 * no public way to drop that connection; its WebSocket keeps the resource id
 * under a `[[rid]]` symbol and `Deno[Deno.internal].core.tryClose` closes a
 * resource. Both are feature-detected: if a Deno release changes them,
 * {@link abortWebSocket} returns false and the graceful close stays the only
 * one (a test fails, so an upgrade of Deno notices).
 *
 * @module
 */

interface Core {
  tryClose(rid: number): void;
}

function internalCore(): Core | undefined {
  const deno = Deno as unknown as Record<PropertyKey, unknown>;
  const key = deno.internal;
  if (typeof key !== "symbol" && typeof key !== "string") return undefined;
  const internal = deno[key] as { core?: Partial<Core> } | undefined;
  const tryClose = internal?.core?.tryClose;
  return typeof tryClose === "function" ? { tryClose: (rid) => tryClose(rid) } : undefined;
}

const core = internalCore();

/** Closes the socket's connection without a close handshake; false when Deno does not allow it. */
export function abortWebSocket(socket: WebSocket): boolean {
  if (core === undefined) return false;
  const rid = ridOf(socket);
  if (rid === undefined) return false;
  core.tryClose(rid);
  return true;
}

function ridOf(socket: WebSocket): number | undefined {
  const holder = socket as unknown as Record<symbol, unknown>;
  for (const symbol of Object.getOwnPropertySymbols(socket)) {
    if (symbol.description === "[[rid]]") {
      const rid = holder[symbol];
      return typeof rid === "number" ? rid : undefined;
    }
  }
  return undefined;
}
