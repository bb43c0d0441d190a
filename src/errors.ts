/**
 * The error hierarchy: the errors shared by HTTP, SSE and WebSocket code, the
 * one mapping from an error to the status and message a client sees
 * (Mastodon's messages, byte for byte), and the configuration error that
 * stops start-up. Nothing here branches on message text.
 *
 * @module
 */

/** A client mistake in the request itself (400). */
export class RequestError extends Error {
  override name = "RequestError";
  readonly status = 400;
}

/** Missing, invalid or insufficient credentials (401). */
export class AuthenticationError extends Error {
  override name = "AuthenticationError";
  readonly status = 401;
}

/** A limit of SLUICE_MAX_* was reached (429); the message names what was refused. */
export class LimitError extends Error {
  override name = "LimitError";
  readonly status = 429;
}

/** A configuration value that cannot be used; start-up stops with its one-line message. */
export class ConfigError extends Error {
  override name = "ConfigError";
}

/** The message every other failure is reported with (500). */
export const UNEXPECTED_ERROR = "An unexpected error occurred";

/** The status and client-visible message for any thrown value. */
export function describeError(err: unknown): { status: number; message: string } {
  if (
    err instanceof RequestError || err instanceof AuthenticationError || err instanceof LimitError
  ) {
    return { status: err.status, message: err.message };
  }
  return { status: 500, message: UNEXPECTED_ERROR };
}
