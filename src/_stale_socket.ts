/**
 * A unix socket file left behind by a Sluice that did not shut down (kill -9,
 * a crash): removed before listening when nothing answers on it; refused,
 * with one line, when a process still listens there. Private helper of
 * `server.ts`; it never listens itself.
 *
 * @module
 */
import { ConfigError } from "./errors.ts";
import type { Logger } from "./log.ts";

/** Removes a stale socket at `path`; throws a ConfigError when it is in use or not a socket. */
export async function clearStaleSocket(path: string, log: Logger): Promise<void> {
  let info: Deno.FileInfo;
  try {
    info = await Deno.lstat(path);
  } catch (err) {
    if (err instanceof Deno.errors.NotFound) return;
    throw err;
  }
  if (!info.isSocket) {
    throw new ConfigError(`Cannot listen on SOCKET=${path}: the file exists and is not a socket`);
  }
  let conn: Deno.UnixConn;
  try {
    conn = await Deno.connect({ transport: "unix", path });
  } catch (err) {
    if (!(err instanceof Deno.errors.ConnectionRefused)) throw err;
    await Deno.remove(path);
    log.info("Removed a stale unix socket nothing listened on", { path });
    return;
  }
  conn.close();
  throw new ConfigError(
    `Cannot listen on SOCKET=${path}: another process is listening on it (stop it, or set another SOCKET)`,
  );
}
