/**
 * The error hierarchy shared by HTTP, SSE and WebSocket code, and the one
 * mapping from an error to the status and message a client sees. Messages are
 * Mastodon's, byte for byte. Nothing here branches on message text.
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

/** The message every other failure is reported with (500). */
export const UNEXPECTED_ERROR = "An unexpected error occurred";

/** The status and client-visible message for any thrown value. */
export function describeError(err: unknown): { status: number; message: string } {
  if (err instanceof RequestError || err instanceof AuthenticationError) {
    return { status: err.status, message: err.message };
  }
  return { status: 500, message: UNEXPECTED_ERROR };
}
