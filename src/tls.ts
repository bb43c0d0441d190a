/**
 * Why a TLS connection to Redis or PostgreSQL was refused, in one line an
 * admin can act on: which server, what is wrong with its certificate, and
 * what to set (`NODE_EXTRA_CA_CERTS`, the CA file Sluice reads like Node
 * does). Recognises the rejections of `Deno.startTls` (rustls, which reports
 * them only as text) and of `node:tls` (error codes, used by node-postgres).
 * Never opens a connection, never reads a file or the environment.
 *
 * @module
 */

/** A CA file trusted in addition to the built-in roots (NODE_EXTRA_CA_CERTS). */
export interface ExtraCa {
  file: string;
  /** The file's PEM text. */
  pem: string;
}

/** What is wrong (HOST: the server's name); `untrusted` when the issuer may be unknown. */
interface Rejection {
  problem: string;
  untrusted: boolean;
}

/** A server certificate was rejected; the message names the server and the fix. */
export class TlsCertificateError extends Error {
  override name = "TlsCertificateError";
  /** The problem without the server's address, e.g. "not trusted (unknown issuer)". */
  readonly problem: string;

  constructor(message: string, problem: string) {
    super(message);
    this.problem = problem;
  }
}

/** rustls's wording for a rejected peer certificate (Deno.startTls), by the problem it names. */
const RUSTLS: [RegExp, Rejection][] = [
  [/UnknownIssuer/, { problem: "is not trusted (unknown issuer)", untrusted: true }],
  [/BadSignature/, { problem: "is not trusted (bad signature)", untrusted: true }],
  [/not valid for name|NotValidForName/, { problem: "is not valid for HOST", untrusted: false }],
  [/expired|Expired/, { problem: "has expired", untrusted: false }],
  [/not valid yet|NotValidYet/, { problem: "is not valid yet", untrusted: false }],
];

const LEAF = "is not trusted (unknown issuer or expired)";

/** node:tls error codes for a rejected certificate. */
const NODE_CODES: Record<string, Rejection> = {
  // Deno 2.9 reports an unknown issuer and an expired certificate alike with this one.
  UNABLE_TO_VERIFY_LEAF_SIGNATURE: { problem: LEAF, untrusted: true },
  SELF_SIGNED_CERT_IN_CHAIN: { problem: "is not trusted (unknown issuer)", untrusted: true },
  DEPTH_ZERO_SELF_SIGNED_CERT: { problem: "is not trusted (self-signed)", untrusted: true },
  UNABLE_TO_GET_ISSUER_CERT: { problem: "is not trusted (unknown issuer)", untrusted: true },
  UNABLE_TO_GET_ISSUER_CERT_LOCALLY: {
    problem: "is not trusted (unknown issuer)",
    untrusted: true,
  },
  ERR_TLS_CERT_ALTNAME_INVALID: { problem: "is not valid for HOST", untrusted: false },
  CERT_HAS_EXPIRED: { problem: "has expired", untrusted: false },
  CERT_NOT_YET_VALID: { problem: "is not valid yet", untrusted: false },
};

const RUSTLS_PREFIX = "invalid peer certificate";

function rejection(err: unknown): Rejection | undefined {
  if (!(err instanceof Error)) return undefined;
  const code = (err as { code?: unknown }).code;
  if (typeof code === "string" && Object.hasOwn(NODE_CODES, code)) return NODE_CODES[code];
  if (!(err instanceof Deno.errors.InvalidData) || !err.message.includes(RUSTLS_PREFIX)) {
    return undefined;
  }
  const known = RUSTLS.find(([pattern]) => pattern.test(err.message));
  return known?.[1] ?? { problem: `is not accepted (${err.message})`, untrusted: false };
}

/** Where the trusted CAs come from, for the hint after an untrusted certificate. */
export type TrustSource =
  | { kind: "default"; extraCa?: ExtraCa }
  /** DATABASE_URL's sslrootcert replaced the trusted CAs. */
  | { kind: "sslrootcert" };

function hint(trust: TrustSource): string {
  if (trust.kind === "sslrootcert") {
    return "DATABASE_URL's sslrootcert does not hold the CA that signed it";
  }
  const file = trust.extraCa?.file;
  return file === undefined
    ? "set NODE_EXTRA_CA_CERTS to the CA's PEM file"
    : `NODE_EXTRA_CA_CERTS (${file}) does not hold the CA that signed it`;
}

/**
 * A {@link TlsCertificateError} for `err` when it is a certificate rejection
 * by the server at host:port, else undefined.
 */
export function certificateError(
  err: unknown,
  server: { host: string; port: number },
  trust: TrustSource,
): TlsCertificateError | undefined {
  const found = rejection(err);
  if (found === undefined) return undefined;
  const problem = found.problem.replace("HOST", server.host);
  const peer = server.host.includes(":")
    ? `[${server.host}]:${server.port}`
    : `${server.host}:${server.port}`;
  const message = `TLS certificate of ${peer} ${problem}` +
    (found.untrusted ? `; ${hint(trust)}` : "");
  return new TlsCertificateError(message, problem);
}

/** ": TLS certificate …" to add to a readiness reason when `err` is a certificate rejection, else "". */
export function readinessDetail(err: unknown): string {
  return err instanceof TlsCertificateError ? `: TLS certificate ${err.problem}` : "";
}
