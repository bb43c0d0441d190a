/**
 * The Deno permissions one configuration needs, each as narrow as the
 * configuration allows and with the reason an admin reads: the listen
 * address or socket, PostgreSQL and Redis (host:port, or a unix socket's
 * `unix:` net scope plus read and write on its path), the env file and the
 * certificate files, the variables Sluice and node-postgres read, the host
 * name for log lines, and (optional) the two programs that count file
 * descriptors. Turns them into merged `--allow-*` flags and checks them
 * against what the process was granted. Everything here is pure except
 * {@link missingPermissions}, which only asks `Deno.permissions`; it never
 * opens a connection, reads a file or touches `Deno.env`.
 *
 * @module
 */
import { resolve } from "node:path";
import { type Config, ConfigError, type RedisConfig, VARIABLES } from "./config.ts";
import { DESCRIPTOR_TOOLS } from "./process_metrics.ts";

/** The kinds of Deno permission Sluice uses, in the order their flags are printed. */
export const KINDS = ["net", "read", "write", "env", "sys", "run"] as const;
export type PermissionKind = (typeof KINDS)[number];

/** One permission Sluice needs. */
export interface Permission {
  kind: PermissionKind;
  /** host:port or unix:/path (net), a path, a variable (`PG*`: a prefix), a sys API or a program; undefined: unrestricted. */
  value?: string;
  /** Why Sluice needs it. */
  reason: string;
  /** Missing, it disables a feature (logged) instead of stopping start-up. */
  optional?: boolean;
}

/** The directory of main.ts: worker threads load Sluice's modules from it. */
const SLUICE_ROOT = decodeURIComponent(new URL("..", import.meta.url).pathname).replace(/\/$/, "");

const VARIABLES_REASON = "the variables Sluice's configuration reads";
/** node-postgres falls back to libpq's variables for every empty setting, and throws without them. */
const PG_VARIABLES = "PG*";
const PG_REASON = "node-postgres's fallbacks (PGPASSWORD, PGAPPNAME, PGSSLMODE, …)";

/** The variables `loadConfig` reads: checked before anything else. */
export function variablePermissions(): Permission[] {
  return VARIABLES.map((value) => ({ kind: "env", value, reason: VARIABLES_REASON }));
}

/** Reading the env file (whether or not it exists): checked before it is read. */
export function envFilePermission(envFile: string, cwd: string): Permission {
  return { kind: "read", value: resolve(cwd, envFile), reason: "the env file" };
}

/** Every permission Sluice needs for `config`; relative paths are taken from `cwd`. */
export function requiredPermissions(
  config: Readonly<Config>,
  options: { cwd: string },
): Permission[] {
  const { cwd } = options;
  const listen = config.listen;
  return [
    ...(listen.kind === "unix"
      ? unixSocket(resolve(cwd, listen.path), "the listen socket (SOCKET)")
      : [net(listen.hostname, listen.port, "the listen address (BIND, PORT)")]),
    ...postgres(config),
    ...redis(config.redis, cwd),
    ...(config.envFile === undefined ? [] : [envFilePermission(config.envFile, cwd)]),
    ...(config.files ?? []).map((path): Permission => ({
      kind: "read",
      value: resolve(cwd, path),
      reason: "a certificate or key file the configuration names",
    })),
    { kind: "read", value: SLUICE_ROOT, reason: "Sluice's modules, which its worker threads load" },
    ...variablePermissions(),
    { kind: "env", value: PG_VARIABLES, reason: PG_REASON },
    { kind: "sys", value: "hostname", reason: "the hostname field of log lines" },
    ...DESCRIPTOR_TOOLS.map((value): Permission => ({
      kind: "run",
      value,
      reason: "process_open_fds and process_max_fds",
      optional: true,
    })),
  ];
}

function net(host: string, port: number, reason: string): Permission {
  return { kind: "net", value: `${host.includes(":") ? `[${host}]` : host}:${port}`, reason };
}

/** Connecting to or listening on a unix socket takes all three. */
function unixSocket(path: string, reason: string): Permission[] {
  return [
    { kind: "net", value: `unix:${path}`, reason },
    { kind: "read", value: path, reason },
    { kind: "write", value: path, reason },
  ];
}

/** node-postgres: a host starting with "/" is the directory of the socket `.s.PGSQL.<port>`. */
function postgres(config: Readonly<Config>): Permission[] {
  const host = config.postgres.host ?? "localhost";
  const port = config.postgres.port ?? 5432;
  if (host.startsWith("/")) {
    return unixSocket(`${host.replace(/\/+$/, "")}/.s.PGSQL.${port}`, "PostgreSQL's unix socket");
  }
  return [net(host, port, "PostgreSQL (DB_HOST, DB_PORT or DATABASE_URL)")];
}

function redis(config: Readonly<RedisConfig>, cwd: string): Permission[] {
  if (config.mode === "unix") {
    return unixSocket(resolve(cwd, config.path ?? ""), "Redis's unix socket");
  }
  if (config.mode === "tcp") {
    return [net(config.host, config.port, "Redis (REDIS_URL or REDIS_HOST, REDIS_PORT)")];
  }
  return [
    ...(config.sentinels ?? []).map(({ host, port }) => net(host, port, "a Redis Sentinel")),
    // The master's address is only known when a Sentinel names it, and a
    // failover may promote any replica: a narrower list would turn a failover
    // into an outage.
    { kind: "net", reason: "the Redis master a Sentinel names (any address a failover may pick)" },
  ];
}

/** The `--allow-*` flags granting `permissions`: one per kind, values merged, bare when one is unrestricted. */
export function permissionFlags(permissions: readonly Permission[]): string[] {
  const flags: string[] = [];
  for (const kind of KINDS) {
    const mine = permissions.filter((p) => p.kind === kind);
    if (mine.length === 0) continue;
    if (mine.some((p) => p.value === undefined)) {
      flags.push(`--allow-${kind}`);
      continue;
    }
    const values = [...new Set(mine.map((p) => p.value!))];
    const comma = values.find((value) => value.includes(","));
    if (comma !== undefined) {
      throw new ConfigError(`Cannot grant ${JSON.stringify(comma)} in a Deno flag: it has a comma`);
    }
    flags.push(`--allow-${kind}=${values.join(",")}`);
  }
  return flags;
}

/** The `Deno.permissions.querySync` descriptor of one permission. */
export function descriptor(permission: Permission): Deno.PermissionDescriptor {
  const { kind, value } = permission;
  switch (kind) {
    case "net":
      return { name: kind, host: value };
    case "read":
    case "write":
      return { name: kind, path: value };
    case "env":
      return { name: kind, variable: value };
    case "sys":
      return { name: kind, kind: value as Deno.SysPermissionDescriptor["kind"] };
    case "run":
      return { name: kind, command: value };
  }
}

/** The required (not optional) permissions the process was not granted. */
export function missingPermissions(
  permissions: readonly Permission[],
  query: (d: Deno.PermissionDescriptor) => Deno.PermissionStatus = (d) =>
    Deno.permissions.querySync(d),
): Permission[] {
  return permissions.filter((p) => !p.optional && query(descriptor(p)).state !== "granted");
}

/** One line naming the flags to add and why, grouped by reason. */
export function missingPermissionLine(missing: readonly Permission[]): string {
  const reasons = [...new Set(missing.map((p) => p.reason))];
  const groups = reasons.map((reason) => {
    const flags = permissionFlags(missing.filter((p) => p.reason === reason));
    return `${flags.join(" ")} (${reason})`;
  });
  return `Missing permission${missing.length > 1 ? "s" : ""}: add ${groups.join("; ")}`;
}

/** A permission the configuration needs was not granted; its message is {@link missingPermissionLine}. */
export class MissingPermissionError extends ConfigError {
  override name = "MissingPermissionError";
}

/** Throws a {@link MissingPermissionError} unless every required permission is granted. */
export function checkPermissions(permissions: readonly Permission[]): void {
  const missing = missingPermissions(permissions);
  if (missing.length > 0) throw new MissingPermissionError(missingPermissionLine(missing));
}
