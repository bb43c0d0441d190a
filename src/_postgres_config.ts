/**
 * PostgreSQL settings from Mastodon's variables: DATABASE_URL (with its
 * sslmode and certificate parameters) or DB_HOST/DB_PORT/DB_USER/DB_PASS/
 * DB_NAME/DB_SSLMODE, and DB_POOL. Pure: files are read through the reader
 * it is given. Imported by config.ts only.
 *
 * @module
 */
import { defined, integer, nonEmpty, PORT, POSITIVE, toInteger } from "./_config_values.ts";
import { splitUrl } from "./_connection_url.ts";
import type { Getter, TextFileReader } from "./_env_file.ts";
import { ConfigError } from "./errors.ts";
import type { ExtraCa } from "./tls.ts";

/** Options handed to the PostgreSQL pool (node-postgres names). */
export interface PostgresConfig {
  user?: string;
  password?: string;
  /** Host name, or a directory holding the server's unix socket. */
  host?: string;
  port?: number;
  database?: string;
  /** false: no TLS; object: TLS with these options. Undefined: driver default. */
  ssl?: false | { rejectUnauthorized: boolean; ca?: string; cert?: string; key?: string };
  options?: string;
  /** DB_POOL */
  max: number;
  /**
   * NODE_EXTRA_CA_CERTS, named in errors; the runtime itself trusts it for
   * node:tls besides the built-in roots (unless `ssl.ca` replaces them).
   */
  extraCa?: ExtraCa;
}

/** The PostgreSQL settings for NODE_ENV. */
export function postgres(get: Getter, nodeEnv: string, read?: TextFileReader): PostgresConfig {
  const max = integer(get, "DB_POOL", 10, POSITIVE);
  const url = nonEmpty(get, "DATABASE_URL");
  if (url !== undefined) return defined({ ...postgresFromUrl(url, get, read), max });
  if (nodeEnv !== "production" && nodeEnv !== "development") {
    throw new ConfigError(
      "Unable to resolve postgresql database configuration. " +
        `(NODE_ENV is ${
          JSON.stringify(nodeEnv)
        }: set DATABASE_URL, or NODE_ENV to production or development)`,
    );
  }
  const production = nodeEnv === "production";
  return defined({
    user: nonEmpty(get, "DB_USER") ?? (production ? "mastodon" : nonEmpty(get, "USER")),
    password: nonEmpty(get, "DB_PASS") ?? (production ? "" : undefined),
    host: nonEmpty(get, "DB_HOST") ?? "localhost",
    port: integer(get, "DB_PORT", 5432, PORT),
    database: nonEmpty(get, "DB_NAME") ??
      (production ? "mastodon_production" : "mastodon_development"),
    ssl: dbSslMode(get("DB_SSLMODE")),
    max,
  });
}

function dbSslMode(mode: string | undefined): PostgresConfig["ssl"] {
  if (mode === undefined) return undefined;
  if (mode === "" || mode === "disable") return false;
  return { rejectUnauthorized: mode !== "no-verify" };
}

function postgresFromUrl(
  text: string,
  get: Getter,
  read?: TextFileReader,
): Omit<PostgresConfig, "max"> {
  // A `%` that starts no escape stands for itself, as pg-connection-string allows.
  const url = splitUrl("DATABASE_URL", text.replace(/%(?![0-9a-f]{2})/gi, "%25"));
  if (url.scheme !== "postgres" && url.scheme !== "postgresql") {
    throw new ConfigError(
      `Cannot parse DATABASE_URL: expected a postgres:// or postgresql:// URL, got "${url.scheme}:"`,
    );
  }
  const query = url.query;
  const portText = query.get("port") || url.port;
  const port = portText ? toInteger(portText, PORT) : undefined;
  if (portText && port === undefined) {
    throw new ConfigError(
      "Invalid port specified in DATABASE_URL environment variable: " +
        `expected ${PORT.what}, got ${JSON.stringify(portText)}`,
    );
  }
  return {
    user: query.get("user") || url.username || undefined,
    password: query.get("password") || url.password || nonEmpty(get, "DB_PASS"),
    host: query.get("host") || url.host || undefined,
    port,
    database: url.path.replace(/^\//, "") || undefined,
    ssl: urlSsl(query, read),
    options: query.get("options") ?? undefined,
  };
}

const SSL_MODES: Record<string, PostgresConfig["ssl"]> = {
  "disable": false,
  "allow": false,
  "prefer": { rejectUnauthorized: false },
  "require": { rejectUnauthorized: false },
  "no-verify": { rejectUnauthorized: false },
  "verify-ca": { rejectUnauthorized: true },
  "verify-full": { rejectUnauthorized: true },
};

function urlSsl(query: URLSearchParams, read?: TextFileReader): PostgresConfig["ssl"] {
  const flag = query.get("ssl");
  let ssl: PostgresConfig["ssl"] = flag === "true" || flag === "1"
    ? { rejectUnauthorized: true }
    : flag === "false" || flag === "0"
    ? false
    : undefined;
  const mode = query.get("sslmode");
  if (mode !== null) {
    if (!Object.hasOwn(SSL_MODES, mode)) {
      const modes = Object.keys(SSL_MODES).join(", ").replace(/, (?!.*, )/, " or ");
      throw new ConfigError(
        `Cannot parse DATABASE_URL: expected sslmode ${modes}, got ${JSON.stringify(mode)}`,
      );
    }
    ssl = SSL_MODES[mode];
  }
  const files = certificates(query, read);
  if (files === undefined || ssl === false) return ssl;
  return { rejectUnauthorized: ssl?.rejectUnauthorized ?? true, ...files };
}

function certificates(query: URLSearchParams, read?: TextFileReader) {
  const files: { ca?: string; cert?: string; key?: string } = {};
  const params = [["sslrootcert", "ca"], ["sslcert", "cert"], ["sslkey", "key"]] as const;
  for (const [param, field] of params) {
    const path = query.get(param);
    if (!path) continue;
    const text = read?.(path);
    if (text === undefined) {
      throw new ConfigError(`Cannot parse DATABASE_URL: cannot read ${param} file "${path}"`);
    }
    files[field] = text;
  }
  return Object.keys(files).length === 0 ? undefined : files;
}
