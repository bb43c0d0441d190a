import assert from "node:assert/strict";
import { type Config, ConfigError, parseConfig, VARIABLES } from "../../src/config.ts";
import {
  missingPermissionLine,
  missingPermissions,
  type Permission,
  permissionFlags,
  requiredPermissions,
} from "../../src/permissions.ts";

const CWD = "/home/mastodon/live";

function config(vars: Record<string, string>, files: Record<string, string> = {}): Config {
  const env = new Map(Object.entries(vars));
  return parseConfig((name) => env.get(name), { readTextFile: (path) => files[path] });
}

/** Sluice's own directory, which worker threads read their modules from. */
const ROOT = decodeURIComponent(new URL("../..", import.meta.url).pathname).replace(/\/$/, "");

/**
 * The flags for `vars` (with the env file `envFile`), keyed by kind, env and
 * sys left out, and the read permission on Sluice's own directory (every
 * configuration has it) asserted and left out.
 */
function flags(vars: Record<string, string>, envFile?: string, files?: Record<string, string>) {
  const parsed = { ...config(vars, files), envFile };
  const required = requiredPermissions(parsed, { cwd: CWD });
  const own = required.filter((p) => p.kind === "read" && p.value === ROOT);
  assert.equal(own.length, 1, "the worker threads' modules are readable");
  const all = permissionFlags(required.filter((p) => !own.includes(p)));
  return Object.fromEntries(
    all.filter((f) => !/^--allow-(env|sys|run)\b/.test(f)).map((f) => {
      const [name, value] = f.split("=");
      return [name.slice("--allow-".length), value ?? "(any)"];
    }),
  );
}

const ENV_FLAG = `--allow-env=${[...VARIABLES, "PG*"].join(",")}`;

Deno.test("Every configuration needs its variables, PG*, the host name, and optionally ls and getconf", () => {
  const all = requiredPermissions(config({}), { cwd: CWD });
  const shown = permissionFlags(all);
  assert.ok(shown.includes(ENV_FLAG), shown.join(" "));
  assert.ok(shown.includes("--allow-sys=hostname"));
  assert.ok(shown.includes("--allow-run=ls,getconf"));
  const optional = all.filter((p) => p.optional).map((p) => `${p.kind}=${p.value}`);
  assert.deepEqual(optional, ["run=ls", "run=getconf"], "only the descriptor tools are optional");
  for (const permission of all) {
    assert.ok(permission.reason.length > 5, "every permission says why");
  }
});

Deno.test("The permissions follow the configuration", async (t) => {
  const rows: [string, Record<string, string>, string | undefined, Record<string, string>][] = [
    ["development defaults", {}, ".env", {
      net: "127.0.0.1:4000,localhost:5432,127.0.0.1:6379",
      read: `${CWD}/.env`,
    }],
    [
      "TCP everywhere, listening on all interfaces",
      {
        NODE_ENV: "production",
        BIND: "0.0.0.0",
        PORT: "4001",
        DB_HOST: "db.internal",
        DB_PORT: "6432",
        REDIS_HOST: "10.0.0.5",
        REDIS_PORT: "6380",
      },
      ".env.production",
      {
        net: "0.0.0.0:4001,db.internal:6432,10.0.0.5:6380",
        read: `${CWD}/.env.production`,
      },
    ],
    [
      "IPv6 addresses are bracketed",
      { BIND: "[::1]", REDIS_URL: "redis://[::1]:6379" },
      undefined,
      {
        net: "[::1]:4000,localhost:5432,[::1]:6379",
      },
    ],
    [
      "Mastodon's production recipe: unix sockets for everything",
      {
        NODE_ENV: "production",
        SOCKET: "tmp/sockets/streaming.sock",
        DB_HOST: "/var/run/postgresql/",
        REDIS_URL: "unix:///var/run/redis/redis-server.sock",
      },
      ".env.production",
      {
        net: [
          `unix:${CWD}/tmp/sockets/streaming.sock`,
          "unix:/var/run/postgresql/.s.PGSQL.5432",
          "unix:/var/run/redis/redis-server.sock",
        ].join(","),
        read: [
          `${CWD}/tmp/sockets/streaming.sock`,
          "/var/run/postgresql/.s.PGSQL.5432",
          "/var/run/redis/redis-server.sock",
          `${CWD}/.env.production`,
        ].join(","),
        write: [
          `${CWD}/tmp/sockets/streaming.sock`,
          "/var/run/postgresql/.s.PGSQL.5432",
          "/var/run/redis/redis-server.sock",
        ].join(","),
      },
    ],
    [
      "DATABASE_URL naming a host and port",
      {
        DATABASE_URL: "postgres://u:p@pg.example:5433/db",
      },
      "/etc/sluice.env",
      { net: "127.0.0.1:4000,pg.example:5433,127.0.0.1:6379", read: "/etc/sluice.env" },
    ],
    [
      "DATABASE_URL naming a socket directory",
      {
        DATABASE_URL: "postgresql:///mastodon?host=/run/postgresql&port=5434",
      },
      undefined,
      {
        net: "127.0.0.1:4000,unix:/run/postgresql/.s.PGSQL.5434,127.0.0.1:6379",
        read: "/run/postgresql/.s.PGSQL.5434",
        write: "/run/postgresql/.s.PGSQL.5434",
      },
    ],
    [
      "DATABASE_URL without a host: node-postgres's localhost:5432",
      {
        DATABASE_URL: "postgres:///mastodon",
      },
      undefined,
      { net: "127.0.0.1:4000,localhost:5432,127.0.0.1:6379" },
    ],
    [
      "rediss:// is TCP to its host and port",
      { REDIS_URL: "rediss://:pw@cache.example:6390/2" },
      undefined,
      {
        net: "127.0.0.1:4000,localhost:5432,cache.example:6390",
      },
    ],
    [
      "Sentinel: the master can be anywhere a failover puts it",
      {
        REDIS_SENTINELS: "10.0.0.1,10.0.0.2:26380",
        REDIS_SENTINEL_MASTER: "mymaster",
      },
      undefined,
      { net: "(any)" },
    ],
  ];
  for (const [name, vars, envFile, expected] of rows) {
    await t.step(name, () => assert.deepEqual(flags(vars, envFile), expected));
  }
  await t.step("certificate files named in DATABASE_URL are read", () => {
    const url = "postgres://h/d?sslmode=verify-full&sslrootcert=/etc/ssl/ca.pem&sslkey=certs/k.pem";
    const files = { "/etc/ssl/ca.pem": "CA", "certs/k.pem": "KEY" };
    assert.deepEqual(
      flags({ DATABASE_URL: url }, ".env", files).read,
      [
        `${CWD}/.env`,
        "/etc/ssl/ca.pem",
        `${CWD}/certs/k.pem`,
      ].join(","),
    );
  });
  await t.step("Sentinel: the sentinels are still listed, with why any address is needed", () => {
    const vars = { REDIS_SENTINELS: "10.0.0.1", REDIS_SENTINEL_MASTER: "m" };
    const net = requiredPermissions(config(vars), { cwd: CWD }).filter((p) => p.kind === "net");
    assert.deepEqual(net.map((p) => p.value), [
      "127.0.0.1:4000",
      "localhost:5432",
      "10.0.0.1:26379",
      undefined,
    ]);
    assert.match(net[3].reason, /failover/);
  });
});

Deno.test("permissionFlags merges one flag per kind, drops duplicates, refuses commas", () => {
  const p = (kind: Permission["kind"], value?: string): Permission => ({
    kind,
    value,
    reason: "r",
  });
  assert.deepEqual(
    permissionFlags([p("write", "/a"), p("net", "h:1"), p("write", "/b"), p("write", "/a")]),
    ["--allow-net=h:1", "--allow-write=/a,/b"],
  );
  assert.deepEqual(permissionFlags([p("net", "h:1"), p("net")]), ["--allow-net"]);
  assert.throws(() => permissionFlags([p("read", "/a,b")]), ConfigError);
});

Deno.test("missingPermissions asks about each required permission, not the optional ones", () => {
  const all = requiredPermissions(config({ SOCKET: "/run/sluice.sock" }), { cwd: CWD });
  const asked: Deno.PermissionDescriptor[] = [];
  const missing = missingPermissions(all, (descriptor) => {
    asked.push(descriptor);
    const denied = descriptor.name === "write" || descriptor.name === "sys";
    return { state: denied ? "prompt" : "granted" } as Deno.PermissionStatus;
  });
  assert.equal(asked.length, all.filter((p) => !p.optional).length);
  assert.ok(asked.some((d) => d.name === "net" && d.host === "unix:/run/sluice.sock"));
  assert.ok(asked.some((d) => d.name === "env" && d.variable === "PG*"));
  assert.deepEqual(missing.map((p) => `${p.kind}=${p.value}`), [
    "write=/run/sluice.sock",
    "sys=hostname",
  ]);
  assert.equal(
    missingPermissionLine(missing),
    "Missing permissions: add --allow-write=/run/sluice.sock (the listen socket (SOCKET)); " +
      "--allow-sys=hostname (the hostname field of log lines)",
  );
});

Deno.test("The missing-permission line names one flag and why", () => {
  const missing: Permission[] = [{
    kind: "write",
    value: "/var/run/postgresql/.s.PGSQL.5432",
    reason: "PostgreSQL's unix socket",
  }];
  assert.equal(
    missingPermissionLine(missing),
    "Missing permission: add --allow-write=/var/run/postgresql/.s.PGSQL.5432 (PostgreSQL's unix socket)",
  );
});

Deno.test("deno task start's own --allow-env covers every variable the configuration reads", async () => {
  const denoJson = JSON.parse(await Deno.readTextFile(new URL("../../deno.json", import.meta.url)));
  const flag = /--allow-env=(\S+)/.exec(denoJson.tasks.start)?.[1];
  assert.ok(flag, denoJson.tasks.start);
  const patterns = flag.split(",");
  const covered = (name: string) =>
    patterns.some((p) => p.endsWith("*") ? name.startsWith(p.slice(0, -1)) : p === name);
  assert.deepEqual(VARIABLES.filter((name) => !covered(name)), []);
  assert.ok(patterns.includes("INIT_CWD"), "the launcher reads INIT_CWD");
});
