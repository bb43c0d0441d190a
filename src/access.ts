/**
 * What a viewer may subscribe to: scopes per stream, stream parameters, list
 * ownership and feed-access settings, resolved into the Redis channels of
 * one subscription. Shared by SSE and WebSocket. access.ts never touches a
 * socket.
 *
 * @module
 */
import { Interner } from "./_interner.ts";
import type { Viewer } from "./auth.ts";
import type { Database, FeedAccess } from "./db.ts";
import { AuthenticationError } from "./errors.ts";
import {
  feedKind,
  hasRequiredScope,
  parseTimeline,
  redisChannels,
  streamLabel,
  subscriptionKey,
  type Timeline,
} from "./timeline.ts";

/** The `view live and topic feeds` role permission (docs/protocol.md §8.2). */
export const PERMISSION_VIEW_FEEDS = 0x100000;

/** A stream a viewer may receive, with everything needed to deliver it. */
export interface ResolvedStream {
  readonly timeline: Timeline;
  /** Redis channels, without namespace. */
  readonly channels: readonly string[];
  /** Channels joined with `;`: equal keys are the same subscription. */
  readonly key: string;
  /** JSON text of the WebSocket `stream` array. */
  readonly label: string;
  /** Feed access for filtered (public/hashtag) streams. */
  readonly filter?: { access: FeedAccess };
}

const UNRESTRICTED: FeedAccess = Object.freeze({ localDisabled: false, remoteDisabled: false });

/** Resolves stream requests for authenticated viewers. */
export class Access {
  readonly #db: Pick<Database, "ownsList" | "feedAccess">;
  /** Equal resolutions are one object, shared by every connection holding it. */
  readonly #resolved = new Interner<ResolvedStream>();

  constructor(options: { db: Pick<Database, "ownsList" | "feedAccess"> }) {
    this.#db = options.db;
  }

  /**
   * Resolves `stream` with its parameters for `viewer` (docs/protocol.md §2.3, §3.2–§3.5, §8.2).
   * Throws RequestError/AuthenticationError with Mastodon's messages; other
   * errors (database) mean 500. `checkScopes: false` is for unsubscribe.
   */
  async resolve(
    viewer: Viewer,
    stream: unknown,
    params: Record<string, unknown>,
    options: { checkScopes?: boolean } = {},
  ): Promise<ResolvedStream> {
    const resolved = await this.#resolve(viewer, stream, params, options);
    return this.#resolved.intern(JSON.stringify(resolved), resolved);
  }

  async #resolve(
    viewer: Viewer,
    stream: unknown,
    params: Record<string, unknown>,
    options: { checkScopes?: boolean } = {},
  ): Promise<ResolvedStream> {
    if (options.checkScopes !== false && !hasRequiredScope(viewer.scopes, stream)) {
      throw new AuthenticationError("Access token does not have the required scopes");
    }
    const timeline = parseTimeline(stream, params);
    if (timeline.kind === "list" && !(await this.#db.ownsList(timeline.list, viewer.accountId))) {
      throw new AuthenticationError("Not authorized to stream this list");
    }
    const channels = redisChannels(timeline, viewer);
    const resolved = {
      timeline,
      channels,
      key: subscriptionKey(channels),
      label: streamLabel(timeline),
    };
    const kind = feedKind(timeline);
    if (kind === undefined) return resolved;
    const access = (viewer.permissions & PERMISSION_VIEW_FEEDS) !== 0
      ? UNRESTRICTED
      : await this.#db.feedAccess(kind);
    return { ...resolved, filter: { access } };
  }
}
