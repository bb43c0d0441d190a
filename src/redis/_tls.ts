/**
 * TLS for one Redis connection (`rediss://`): the handshake over an open TCP
 * connection, checked against the URL's host and the built-in roots plus
 * NODE_EXTRA_CA_CERTS; a rejected certificate becomes a TlsCertificateError
 * that names the server and the fix. Private to `src/redis/`; never retries.
 *
 * @module
 */
import { certificateError, type ExtraCa } from "../tls.ts";

/** The server to verify: its certificate must be valid for `host`. */
export interface TlsPeer {
  host: string;
  port: number;
  extraCa?: ExtraCa;
}

/** Starts TLS on `tcp` and completes the handshake; `signal` aborts it. */
export async function startTls(
  tcp: Deno.TcpConn,
  peer: TlsPeer,
  signal: AbortSignal,
): Promise<Deno.TlsConn> {
  const caCerts = peer.extraCa === undefined ? undefined : [peer.extraCa.pem];
  const conn = await Deno.startTls(tcp, { hostname: peer.host, caCerts });
  const abort = () => closeQuietly(conn);
  signal.addEventListener("abort", abort);
  try {
    await conn.handshake();
    return conn;
  } catch (err) {
    closeQuietly(conn);
    if (signal.aborted) throw signal.reason;
    throw certificateError(err, peer, { kind: "default", extraCa: peer.extraCa }) ?? err;
  } finally {
    signal.removeEventListener("abort", abort);
  }
}

function closeQuietly(conn: Deno.Conn): void {
  try {
    conn.close();
  } catch {
    // Already closed.
  }
}
