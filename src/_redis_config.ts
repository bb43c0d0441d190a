/**
 * Redis settings from Mastodon's variables: REDIS_URL (redis://, rediss://,
 * unix://) or REDIS_HOST/REDIS_PORT/REDIS_DB/REDIS_USER/REDIS_PASSWORD, and
 * Sentinel (REDIS_SENTINELS, REDIS_SENTINEL_*). Pure. Imported by config.ts
 * only.
 *
 * @module
 */
import {
  deepFreeze,
  defined,
  integer,
  NON_NEGATIVE,
  nonEmpty,
  PORT,
  toInteger,
} from "./_config_values.ts";
import { splitUrl } from "./_connection_url.ts";
import type { Getter } from "./_env_file.ts";
import { ConfigError } from "./errors.ts";
import type { ExtraCa } from "./tls.ts";

export interface RedisEndpoint {
  host: string;
  port: number;
}

/** How to reach Redis. */
export interface RedisConfig {
  /** tcp: host/port (tls for rediss://); unix: socket path; sentinel: ask the sentinels. */
  mode: "tcp" | "unix" | "sentinel";
  host: string;
  port: number;
  path?: string;
  tls: boolean;
  db: number;
  username?: string;
  password?: string;
  sentinels?: RedisEndpoint[];
  sentinelMaster?: string;
  sentinelUsername?: string;
  sentinelPassword?: string;
  /** NODE_EXTRA_CA_CERTS, trusted besides the built-in roots for rediss://. */
  extraCa?: ExtraCa;
}

const REDIS_HOST = "127.0.0.1";
const REDIS_PORT = 6379;

/** The Redis settings. */
export function redis(get: Getter): RedisConfig {
  const url = nonEmpty(get, "REDIS_URL");
  if (url !== undefined) return defined(redisFromUrl(url));
  const base = {
    host: nonEmpty(get, "REDIS_HOST") ?? REDIS_HOST,
    port: integer(get, "REDIS_PORT", REDIS_PORT, PORT),
    tls: false,
    db: integer(get, "REDIS_DB", 0, NON_NEGATIVE),
    username: nonEmpty(get, "REDIS_USER") ?? nonEmpty(get, "REDIS_USERNAME"),
    password: nonEmpty(get, "REDIS_PASSWORD"),
  };
  const sentinels = nonEmpty(get, "REDIS_SENTINELS");
  const master = nonEmpty(get, "REDIS_SENTINEL_MASTER");
  if (sentinels === undefined || master === undefined) return defined({ mode: "tcp", ...base });
  const sentinelPort = integer(get, "REDIS_SENTINEL_PORT", 26379, PORT);
  // Like `??`: a variable set to "" means "none", not "use the fallback".
  const or = (raw: string | undefined, fallback: string | undefined) =>
    raw === undefined ? fallback : raw || undefined;
  return defined({
    mode: "sentinel",
    ...base,
    sentinels: sentinels.split(",").map((entry) => entry.trim()).filter((entry) => entry !== "")
      .map((entry) => sentinel(entry, sentinelPort)),
    sentinelMaster: master,
    sentinelUsername: or(get("REDIS_SENTINEL_USERNAME"), base.username),
    sentinelPassword: or(get("REDIS_SENTINEL_PASSWORD"), base.password),
  });
}

function sentinel(entry: string, defaultPort: number): RedisEndpoint {
  const bracketed = /^\[([^\]]*)\](?::(.*))?$/.exec(entry);
  const colons = entry.split(":").length - 1;
  const [host, portText] = bracketed
    ? [bracketed[1], bracketed[2]]
    : colons > 1
    ? [entry, undefined] // a bare IPv6 address
    : entry.split(":");
  const port = portText === undefined ? defaultPort : toInteger(portText, PORT);
  if (!host || port === undefined) {
    throw new ConfigError(
      `Cannot parse REDIS_SENTINELS: expected host[:port] with a port from 1 to 65535, got ${
        JSON.stringify(entry)
      }`,
    );
  }
  return { host, port };
}

/** Parses a `redis://`, `rediss://` or `unix://` URL as REDIS_URL is parsed; throws ConfigError. */
export function parseRedisUrl(text: string): Readonly<RedisConfig> {
  return deepFreeze(defined(redisFromUrl(text)));
}

function redisFromUrl(text: string): RedisConfig {
  const url = splitUrl("REDIS_URL", text);
  const query = url.query;
  const credentials = {
    tls: url.scheme === "rediss",
    username: url.username || query.get("username") || undefined,
    password: url.password || query.get("password") || undefined,
  };
  if (url.scheme === "unix") {
    if (!url.path) {
      throw new ConfigError("Cannot parse REDIS_URL: expected a socket path after unix://");
    }
    const db = redisDb(query.get("db"));
    return { mode: "unix", host: REDIS_HOST, port: REDIS_PORT, path: url.path, db, ...credentials };
  }
  if (url.scheme !== "redis" && url.scheme !== "rediss") {
    throw new ConfigError(
      `Cannot parse REDIS_URL: expected a redis://, rediss:// or unix:// URL, got "${url.scheme}:"`,
    );
  }
  const port = url.port ? toInteger(url.port, PORT) : REDIS_PORT;
  if (port === undefined) {
    throw new ConfigError(
      `Cannot parse REDIS_URL: expected a port from 1 to 65535, got ${JSON.stringify(url.port)}`,
    );
  }
  const db = redisDb(url.path.replace(/^\//, "") || query.get("db"));
  return { mode: "tcp", host: url.host || REDIS_HOST, port, db, ...credentials };
}

function redisDb(text: string | null): number {
  if (!text) return 0;
  const db = toInteger(text, NON_NEGATIVE);
  if (db === undefined) {
    throw new ConfigError(
      `Cannot parse REDIS_URL: expected a non-negative integer as the database, got ${
        JSON.stringify(text)
      }`,
    );
  }
  return db;
}
