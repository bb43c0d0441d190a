import assert from "node:assert/strict";
import {
  type Config,
  ConfigError,
  type Getter,
  loadConfig,
  parseConfig,
  VARIABLES,
} from "../../src/config.ts";

/** A getter over fixed variables, as the tests of every concern use it. */
function vars(entries: Record<string, string> = {}): Getter {
  const map = new Map(Object.entries(entries));
  return (name) => map.get(name);
}

function parse(entries: Record<string, string> = {}): Readonly<Config> {
  return parseConfig(vars(entries));
}

function assertConfigError(run: () => unknown, message: string): void {
  assert.throws(run, (error) => {
    assert.ok(error instanceof ConfigError, `expected a ConfigError, got ${error}`);
    assert.equal(error.message, message);
    return true;
  });
}

const DEVELOPMENT: Config = {
  nodeEnv: "development",
  logLevel: "debug",
  listen: { kind: "tcp", hostname: "127.0.0.1", port: 4000 },
  trustedProxyIp: ["loopback", "uniquelocal"],
  postgres: { host: "localhost", port: 5432, database: "mastodon_development", max: 10 },
  redis: { mode: "tcp", host: "127.0.0.1", port: 6379, tls: false, db: 0 },
  clientQueueBytes: 1048576,
  queueBudgetBytes: 1073741824,
  shutdownTimeoutMs: 10000,
  limits: { subscriptionsPerWebSocket: 1000, webSocketMessageBytes: 65536, connectionsPerIp: 0 },
  workers: "auto",
  ignoredVariables: [],
};

Deno.test("parseConfig uses Mastodon's development defaults when nothing is set", async (t) => {
  await t.step("no variables at all", () => assert.deepEqual(parse(), DEVELOPMENT));
  await t.step("an empty NODE_ENV means development", () => {
    assert.deepEqual(parse({ NODE_ENV: "" }), DEVELOPMENT);
  });
  await t.step("the database user defaults to USER, as node-postgres does", () => {
    assert.equal(parse({ USER: "alice" }).postgres.user, "alice");
  });
});

Deno.test("parseConfig uses Mastodon's production defaults with NODE_ENV=production", () => {
  assert.deepEqual(parse({ NODE_ENV: "production", USER: "root" }), {
    ...DEVELOPMENT,
    nodeEnv: "production",
    logLevel: "info",
    postgres: {
      user: "mastodon",
      password: "",
      host: "localhost",
      port: 5432,
      database: "mastodon_production",
      max: 10,
    },
  });
});

Deno.test("parseConfig returns a deeply frozen object", () => {
  const config = parse({
    REDIS_SENTINELS: "a:1,b:2",
    REDIS_SENTINEL_MASTER: "m",
    DATABASE_URL: "postgres://u@h/d?sslmode=require",
  });
  const parts = [
    config,
    config.listen,
    config.trustedProxyIp,
    config.postgres,
    config.postgres.ssl,
    config.redis,
    config.redis.sentinels,
    config.redis.sentinels?.[0],
    config.ignoredVariables,
  ];
  for (const part of parts) assert.ok(Object.isFrozen(part), JSON.stringify(part));
});

Deno.test("NODE_ENV other than production or development requires DATABASE_URL", async (t) => {
  await t.step("without DATABASE_URL start-up stops", () => {
    assertConfigError(
      () => parse({ NODE_ENV: "staging" }),
      "Unable to resolve postgresql database configuration. " +
        '(NODE_ENV is "staging": set DATABASE_URL, or NODE_ENV to production or development)',
    );
  });
  await t.step("with DATABASE_URL it is accepted and kept as given", () => {
    const config = parse({ NODE_ENV: "staging", DATABASE_URL: "postgres://h/d" });
    assert.equal(config.nodeEnv, "staging");
    assert.equal(config.logLevel, "info");
    assert.deepEqual(config.postgres, { host: "h", database: "d", max: 10 });
  });
});

Deno.test("LOG_LEVEL accepts pino's level names and otherwise keeps the default", async (t) => {
  for (const level of ["trace", "debug", "info", "warn", "error", "fatal", "silent"]) {
    await t.step(`${level} is used as given`, () => {
      assert.equal(parse({ LOG_LEVEL: level, NODE_ENV: "production" }).logLevel, level);
    });
  }
  const invalid: [string, Record<string, string>, string][] = [
    ["an unknown name in development gives debug", { LOG_LEVEL: "verbose" }, "debug"],
    [
      "an unknown name in production gives info",
      { LOG_LEVEL: "verbose", NODE_ENV: "production" },
      "info",
    ],
    ["names are case-sensitive", { LOG_LEVEL: "WARN", NODE_ENV: "production" }, "info"],
    ["empty gives the default", { LOG_LEVEL: "", NODE_ENV: "production" }, "info"],
  ];
  for (const [name, entries, expected] of invalid) {
    await t.step(name, () => assert.equal(parse(entries).logLevel, expected));
  }
});

Deno.test("PORT, BIND and SOCKET choose where to listen", async (t) => {
  const table: [string, Record<string, string>, Config["listen"]][] = [
    ["PORT and BIND", { PORT: "4001", BIND: "0.0.0.0" }, {
      kind: "tcp",
      hostname: "0.0.0.0",
      port: 4001,
    }],
    ["BIND in brackets is unwrapped", { BIND: "[::1]" }, {
      kind: "tcp",
      hostname: "::1",
      port: 4000,
    }],
    ["bare IPv6 BIND", { BIND: "::" }, { kind: "tcp", hostname: "::", port: 4000 }],
    ["empty PORT and BIND use the defaults", { PORT: "", BIND: "" }, DEVELOPMENT.listen],
    ["SOCKET wins over PORT and BIND", { SOCKET: "/run/s.sock", PORT: "1", BIND: "::" }, {
      kind: "unix",
      path: "/run/s.sock",
    }],
    ["empty SOCKET is unset", { SOCKET: "" }, DEVELOPMENT.listen],
  ];
  for (const [name, entries, expected] of table) {
    await t.step(name, () => assert.deepEqual(parse(entries).listen, expected));
  }
});

Deno.test("TRUSTED_PROXY_IP is split on commas and whitespace", async (t) => {
  const table: [string, string, string[]][] = [
    ["commas", "10.0.0.1,10.0.0.2", ["10.0.0.1", "10.0.0.2"]],
    ["whitespace", "loopback  192.168.0.0/16", ["loopback", "192.168.0.0/16"]],
    ["both, with stray separators", " ::1, \tfd00::/8 ,", ["::1", "fd00::/8"]],
    ["empty gives the default", "", ["loopback", "uniquelocal"]],
  ];
  for (const [name, value, expected] of table) {
    await t.step(name, () => {
      assert.deepEqual(parse({ TRUSTED_PROXY_IP: value }).trustedProxyIp, expected);
    });
  }
});

Deno.test("A TRUSTED_PROXY_IP entry that is no preset, address or range stops start-up", () => {
  for (const entry of ["loopbak", "10.0.0.0/33", "true"]) {
    assertConfigError(
      () => parse({ TRUSTED_PROXY_IP: `loopback, ${entry}` }),
      "Cannot parse TRUSTED_PROXY_IP: expected loopback, linklocal, uniquelocal, an IP address " +
        `or a CIDR range, got ${JSON.stringify(entry)}`,
    );
  }
});

Deno.test("integer variables stop start-up naming the variable and the value", async (t) => {
  const PORT = "an integer from 1 to 65535";
  const table: [string, string, string][] = [
    ["PORT", "abc", PORT],
    ["PORT", "0", PORT],
    ["PORT", "65536", PORT],
    ["PORT", "80.5", PORT],
    ["DB_PORT", "x5432", PORT],
    ["DB_POOL", "0", "a positive integer"],
    ["DB_POOL", "-3", "a positive integer"],
    ["REDIS_PORT", "abc", PORT],
    ["REDIS_DB", "-1", "a non-negative integer"],
    ["SLUICE_CLIENT_QUEUE_BYTES", "1MB", "a positive integer"],
    ["SLUICE_SHUTDOWN_TIMEOUT_MS", "2147483648", "an integer from 1 to 2147483647"],
    ["SLUICE_SHUTDOWN_TIMEOUT_MS", "0", "an integer from 1 to 2147483647"],
    ["SLUICE_WORKERS", "0", '"auto" or an integer from 1 to 256'],
    ["SLUICE_MAX_SUBSCRIPTIONS_PER_WEBSOCKET", "0", "a positive integer"],
    ["SLUICE_MAX_WEBSOCKET_MESSAGE_BYTES", "64k", "a positive integer"],
    ["SLUICE_MAX_CONNECTIONS_PER_IP", "-1", "a non-negative integer"],
    ["SLUICE_WORKERS", "all", '"auto" or an integer from 1 to 256'],
    ["SLUICE_WORKERS", "257", '"auto" or an integer from 1 to 256'],
  ];
  for (const [name, value, what] of table) {
    await t.step(`${name}=${value}`, () => {
      assertConfigError(
        () => parse({ [name]: value }),
        `Cannot parse ${name}: expected ${what}, got ${JSON.stringify(value)}`,
      );
    });
  }
  await t.step("REDIS_SENTINEL_PORT is checked in sentinel mode", () => {
    assertConfigError(
      () => parse({ REDIS_SENTINELS: "s", REDIS_SENTINEL_MASTER: "m", REDIS_SENTINEL_PORT: "x" }),
      `Cannot parse REDIS_SENTINEL_PORT: expected ${PORT}, got "x"`,
    );
  });
  await t.step("surrounding whitespace is tolerated", () => {
    assert.deepEqual(parse({ PORT: " 4002 " }).listen, {
      kind: "tcp",
      hostname: "127.0.0.1",
      port: 4002,
    });
  });
});

Deno.test("DB_* variables configure PostgreSQL when DATABASE_URL is not set", async (t) => {
  await t.step("every variable is used", () => {
    const config = parse({
      NODE_ENV: "production",
      DB_HOST: "db.example",
      DB_PORT: "5433",
      DB_USER: "masto",
      DB_PASS: "secret",
      DB_NAME: "social",
      DB_POOL: "25",
    });
    assert.deepEqual(config.postgres, {
      user: "masto",
      password: "secret",
      host: "db.example",
      port: 5433,
      database: "social",
      max: 25,
    });
  });
  await t.step("DB_HOST may be the directory of a unix socket (peer auth)", () => {
    const config = parse({
      NODE_ENV: "production",
      DB_HOST: "/var/run/postgresql",
      DB_USER: "mastodon",
      DB_NAME: "mastodon_production",
    });
    assert.equal(config.postgres.host, "/var/run/postgresql");
    assert.equal(config.postgres.password, "");
  });
  await t.step("empty values use the defaults", () => {
    const empty = { DB_HOST: "", DB_PORT: "", DB_USER: "", DB_PASS: "", DB_NAME: "", DB_POOL: "" };
    assert.deepEqual(parse(empty).postgres, DEVELOPMENT.postgres);
  });
  await t.step("DB_USER wins over USER in development", () => {
    assert.equal(parse({ USER: "alice", DB_USER: "bob" }).postgres.user, "bob");
  });
});

Deno.test("DB_SSLMODE chooses TLS for PostgreSQL", async (t) => {
  const table: [string, string | undefined, Config["postgres"]["ssl"]][] = [
    ["unset leaves the driver default", undefined, undefined],
    ["empty disables TLS", "", false],
    ["disable disables TLS", "disable", false],
    ["no-verify skips certificate checks", "no-verify", { rejectUnauthorized: false }],
    ["require verifies certificates", "require", { rejectUnauthorized: true }],
    ["verify-full verifies certificates", "verify-full", { rejectUnauthorized: true }],
  ];
  for (const [name, mode, expected] of table) {
    await t.step(name, () => {
      const config = parse(mode === undefined ? {} : { DB_SSLMODE: mode });
      assert.deepEqual(config.postgres.ssl, expected);
    });
  }
});

Deno.test("DATABASE_URL configures PostgreSQL", async (t) => {
  type Pg = Config["postgres"];
  const table: [string, Record<string, string>, Pg][] = [
    ["every part", { DATABASE_URL: "postgres://u:p@db.example:5433/social" }, {
      user: "u",
      password: "p",
      host: "db.example",
      port: 5433,
      database: "social",
      max: 10,
    }],
    ["postgresql:// scheme", { DATABASE_URL: "postgresql://db/x" }, {
      host: "db",
      database: "x",
      max: 10,
    }],
    ["percent-encoded user and password", {
      DATABASE_URL: "postgres://m%40ster:p%40ss%3Aw%2Ford@h/d",
    }, { user: "m@ster", password: "p@ss:w/ord", host: "h", database: "d", max: 10 }],
    ["a stray % stands for itself", { DATABASE_URL: "postgres://u:100%@h/d" }, {
      user: "u",
      password: "100%",
      host: "h",
      database: "d",
      max: 10,
    }],
    ["an @ in the password before the last @", { DATABASE_URL: "postgres://u:a@b@h/d" }, {
      user: "u",
      password: "a@b",
      host: "h",
      database: "d",
      max: 10,
    }],
    ["empty host with ?host= socket directory", {
      DATABASE_URL: "postgres://mastodon@/mastodon_production?host=/var/run/postgresql",
    }, { user: "mastodon", host: "/var/run/postgresql", database: "mastodon_production", max: 10 }],
    ["percent-encoded socket directory as host", {
      DATABASE_URL: "postgres://mastodon@%2Fvar%2Frun%2Fpostgresql/mastodon_production",
    }, { user: "mastodon", host: "/var/run/postgresql", database: "mastodon_production", max: 10 }],
    ["bracketed IPv6 host", { DATABASE_URL: "postgres://u@[::1]:6432/d" }, {
      user: "u",
      host: "::1",
      port: 6432,
      database: "d",
      max: 10,
    }],
    ["options parameter", { DATABASE_URL: "postgres://h/d?options=-c%20search_path%3Dx" }, {
      host: "h",
      database: "d",
      options: "-c search_path=x",
      max: 10,
    }],
    ["DB_PASS fills a missing password", { DATABASE_URL: "postgres://u@h/d", DB_PASS: "fill" }, {
      user: "u",
      password: "fill",
      host: "h",
      database: "d",
      max: 10,
    }],
    ["the URL's password wins over DB_PASS", {
      DATABASE_URL: "postgres://u:url@h/d",
      DB_PASS: "env",
    }, { user: "u", password: "url", host: "h", database: "d", max: 10 }],
    ["other DB_* are ignored, DB_POOL is kept", {
      DATABASE_URL: "postgres://h/d",
      DB_HOST: "x",
      DB_PORT: "not checked",
      DB_USER: "x",
      DB_NAME: "x",
      DB_SSLMODE: "disable",
      DB_POOL: "3",
    }, { host: "h", database: "d", max: 3 }],
    ["empty DATABASE_URL is unset", { DATABASE_URL: "" }, DEVELOPMENT.postgres],
  ];
  for (const [name, entries, expected] of table) {
    await t.step(name, () => assert.deepEqual(parse(entries).postgres, expected));
  }
});

Deno.test("DATABASE_URL's sslmode and ssl parameters choose TLS", async (t) => {
  const table: [string, string, Config["postgres"]["ssl"]][] = [
    ["no parameter", "", undefined],
    ["sslmode=disable", "?sslmode=disable", false],
    ["sslmode=allow", "?sslmode=allow", false],
    ["sslmode=prefer", "?sslmode=prefer", { rejectUnauthorized: false }],
    ["sslmode=require", "?sslmode=require", { rejectUnauthorized: false }],
    ["sslmode=no-verify", "?sslmode=no-verify", { rejectUnauthorized: false }],
    ["sslmode=verify-ca", "?sslmode=verify-ca", { rejectUnauthorized: true }],
    ["sslmode=verify-full", "?sslmode=verify-full", { rejectUnauthorized: true }],
    ["ssl=true", "?ssl=true", { rejectUnauthorized: true }],
    ["ssl=0", "?ssl=0", false],
    ["sslmode wins over ssl", "?ssl=true&sslmode=disable", false],
  ];
  for (const [name, query, expected] of table) {
    await t.step(name, () => {
      assert.deepEqual(parse({ DATABASE_URL: `postgres://h/d${query}` }).postgres.ssl, expected);
    });
  }
  await t.step("certificate files are read through the given reader", () => {
    const files = new Map([["/ca.pem", "CA"], ["/c.pem", "CERT"], ["/k.pem", "KEY"]]);
    const url =
      "postgres://h/d?sslmode=verify-full&sslrootcert=/ca.pem&sslcert=/c.pem&sslkey=/k.pem";
    const config = parseConfig(vars({ DATABASE_URL: url }), { readTextFile: (p) => files.get(p) });
    assert.deepEqual(config.postgres.ssl, {
      rejectUnauthorized: true,
      ca: "CA",
      cert: "CERT",
      key: "KEY",
    });
  });
});

Deno.test("a bad DATABASE_URL stops start-up without revealing the password", async (t) => {
  const table: [string, string, string][] = [
    [
      "non-numeric port",
      "postgres://u:hunter2@h:abc/d",
      'Invalid port specified in DATABASE_URL environment variable: expected an integer from 1 to 65535, got "abc"',
    ],
    [
      "port 0",
      "postgres://u:hunter2@h:0/d",
      'Invalid port specified in DATABASE_URL environment variable: expected an integer from 1 to 65535, got "0"',
    ],
    [
      "another scheme",
      "mysql://u:hunter2@h/d",
      'Cannot parse DATABASE_URL: expected a postgres:// or postgresql:// URL, got "mysql:"',
    ],
    [
      "not a URL",
      "hunter2",
      "Cannot parse DATABASE_URL: expected scheme://[user[:password]@]host[:port][/path]",
    ],
    [
      "unknown sslmode",
      "postgres://u:hunter2@h/d?sslmode=always",
      "Cannot parse DATABASE_URL: expected sslmode disable, allow, prefer, require, no-verify, " +
      'verify-ca or verify-full, got "always"',
    ],
    [
      "invalid UTF-8 in percent-encoding",
      "postgres://u:hunter2%C3@h/d",
      "Cannot parse DATABASE_URL: invalid percent-encoding",
    ],
    [
      "unreadable certificate file",
      "postgres://u:hunter2@h/d?sslrootcert=/missing.pem",
      'Cannot parse DATABASE_URL: cannot read sslrootcert file "/missing.pem"',
    ],
  ];
  for (const [name, url, message] of table) {
    await t.step(name, () => {
      assertConfigError(() => parse({ DATABASE_URL: url }), message);
      assert.ok(!message.includes("hunter2"));
    });
  }
});

Deno.test("REDIS_* variables configure a plain Redis connection", async (t) => {
  await t.step("every variable is used", () => {
    const config = parse({
      REDIS_HOST: "redis.example",
      REDIS_PORT: "6380",
      REDIS_DB: "2",
      REDIS_USER: "streaming",
      REDIS_PASSWORD: "secret",
    });
    assert.deepEqual(config.redis, {
      mode: "tcp",
      host: "redis.example",
      port: 6380,
      tls: false,
      db: 2,
      username: "streaming",
      password: "secret",
    });
  });
  await t.step("REDIS_USERNAME (Mastodon 4.3.0's name) is the fallback for REDIS_USER", () => {
    assert.equal(parse({ REDIS_USERNAME: "old" }).redis.username, "old");
    assert.equal(parse({ REDIS_USERNAME: "old", REDIS_USER: "new" }).redis.username, "new");
  });
  await t.step("empty values use the defaults", () => {
    const empty = {
      REDIS_HOST: "",
      REDIS_PORT: "",
      REDIS_DB: "",
      REDIS_USER: "",
      REDIS_PASSWORD: "",
    };
    assert.deepEqual(parse(empty).redis, DEVELOPMENT.redis);
  });
  await t.step("a lone REDIS_SENTINELS or REDIS_SENTINEL_MASTER keeps plain mode", () => {
    assert.equal(parse({ REDIS_SENTINELS: "s:1" }).redis.mode, "tcp");
    assert.equal(parse({ REDIS_SENTINEL_MASTER: "m" }).redis.mode, "tcp");
  });
});

Deno.test("REDIS_URL configures Redis and overrides every other REDIS_* variable", async (t) => {
  type Redis = Config["redis"];
  const plain = { mode: "tcp", host: "127.0.0.1", port: 6379, tls: false, db: 0 } as const;
  const table: [string, string, Redis][] = [
    ["host only", "redis://cache", { ...plain, host: "cache" }],
    ["every part", "redis://user:p%40ss@cache:6380/3", {
      ...plain,
      host: "cache",
      port: 6380,
      db: 3,
      username: "user",
      password: "p@ss",
    }],
    ["password only", "redis://:secret@cache", { ...plain, host: "cache", password: "secret" }],
    ["rediss:// turns on TLS", "rediss://cache:6380", {
      ...plain,
      host: "cache",
      port: 6380,
      tls: true,
    }],
    ["bracketed IPv6 host", "redis://[::1]:6380", { ...plain, host: "::1", port: 6380 }],
    ["empty host uses the default", "redis:///1", { ...plain, db: 1 }],
    ["database and password as query parameters", "redis://cache?db=4&password=pw", {
      ...plain,
      host: "cache",
      db: 4,
      password: "pw",
    }],
    ["unix socket", "unix:///var/run/redis/redis.sock", {
      ...plain,
      mode: "unix",
      path: "/var/run/redis/redis.sock",
    }],
    ["unix socket with database and password", "unix:///run/r.sock?db=2&password=pw", {
      ...plain,
      mode: "unix",
      path: "/run/r.sock",
      db: 2,
      password: "pw",
    }],
  ];
  const others = {
    REDIS_HOST: "ignored",
    REDIS_PORT: "not checked",
    REDIS_DB: "9",
    REDIS_USER: "ignored",
    REDIS_PASSWORD: "ignored",
    REDIS_SENTINELS: "s",
    REDIS_SENTINEL_MASTER: "m",
  };
  for (const [name, url, expected] of table) {
    await t.step(
      name,
      () => assert.deepEqual(parse({ ...others, REDIS_URL: url }).redis, expected),
    );
  }
  await t.step("empty REDIS_URL is unset", () => {
    assert.deepEqual(parse({ REDIS_URL: "", REDIS_HOST: "h" }).redis, { ...plain, host: "h" });
  });
});

Deno.test("a bad REDIS_URL stops start-up without revealing the password", async (t) => {
  const table: [string, string, string][] = [
    [
      "non-numeric port",
      "redis://:hunter2@h:abc",
      'Cannot parse REDIS_URL: expected a port from 1 to 65535, got "abc"',
    ],
    [
      "bad database",
      "redis://:hunter2@h/x",
      'Cannot parse REDIS_URL: expected a non-negative integer as the database, got "x"',
    ],
    [
      "another scheme",
      "http://:hunter2@h",
      'Cannot parse REDIS_URL: expected a redis://, rediss:// or unix:// URL, got "http:"',
    ],
    [
      "unix:// without a path",
      "unix://",
      "Cannot parse REDIS_URL: expected a socket path after unix://",
    ],
    [
      "not a URL",
      "hunter2",
      "Cannot parse REDIS_URL: expected scheme://[user[:password]@]host[:port][/path]",
    ],
  ];
  for (const [name, url, message] of table) {
    await t.step(name, () => {
      assertConfigError(() => parse({ REDIS_URL: url }), message);
      assert.ok(!message.includes("hunter2"));
    });
  }
});

Deno.test("REDIS_SENTINELS with REDIS_SENTINEL_MASTER selects Sentinel mode", async (t) => {
  await t.step("credentials and database come from the plain variables", () => {
    const config = parse({
      REDIS_SENTINELS: "s1:26380, s2",
      REDIS_SENTINEL_MASTER: "mymaster",
      REDIS_DB: "1",
      REDIS_USER: "u",
      REDIS_PASSWORD: "p",
    });
    assert.deepEqual(config.redis, {
      mode: "sentinel",
      host: "127.0.0.1",
      port: 6379,
      tls: false,
      db: 1,
      username: "u",
      password: "p",
      sentinels: [{ host: "s1", port: 26380 }, { host: "s2", port: 26379 }],
      sentinelMaster: "mymaster",
      sentinelUsername: "u",
      sentinelPassword: "p",
    });
  });
  const sentinels: [string, Record<string, string>, Config["redis"]["sentinels"]][] = [
    ["REDIS_SENTINEL_PORT is the default port", {
      REDIS_SENTINELS: "a,b:1",
      REDIS_SENTINEL_PORT: "5000",
    }, [
      { host: "a", port: 5000 },
      { host: "b", port: 1 },
    ]],
    ["bracketed IPv6 with and without port", { REDIS_SENTINELS: "[::1]:26380,[fd00::2]" }, [
      { host: "::1", port: 26380 },
      { host: "fd00::2", port: 26379 },
    ]],
    ["bare IPv6 uses the default port", { REDIS_SENTINELS: "fd00::3" }, [
      { host: "fd00::3", port: 26379 },
    ]],
    ["empty entries are skipped", { REDIS_SENTINELS: "a,, b ," }, [
      { host: "a", port: 26379 },
      { host: "b", port: 26379 },
    ]],
  ];
  for (const [name, entries, expected] of sentinels) {
    await t.step(name, () => {
      assert.deepEqual(parse({ REDIS_SENTINEL_MASTER: "m", ...entries }).redis.sentinels, expected);
    });
  }
  const credentials: [string, Record<string, string>, [string?, string?]][] = [
    ["REDIS_SENTINEL_USERNAME and _PASSWORD win", {
      REDIS_SENTINEL_USERNAME: "su",
      REDIS_SENTINEL_PASSWORD: "sp",
    }, ["su", "sp"]],
    ["set but empty means no sentinel credentials", {
      REDIS_SENTINEL_USERNAME: "",
      REDIS_SENTINEL_PASSWORD: "",
    }, [undefined, undefined]],
  ];
  for (const [name, entries, [user, password]] of credentials) {
    await t.step(name, () => {
      const { redis } = parse({
        REDIS_SENTINELS: "s",
        REDIS_SENTINEL_MASTER: "m",
        REDIS_USER: "u",
        REDIS_PASSWORD: "p",
        ...entries,
      });
      assert.equal(redis.sentinelUsername, user);
      assert.equal(redis.sentinelPassword, password);
    });
  }
  for (const entry of ["s:abc", "s:", ":26379", "[::1]:0"]) {
    await t.step(`a bad entry "${entry}" stops start-up`, () => {
      assertConfigError(
        () => parse({ REDIS_SENTINELS: `ok,${entry}`, REDIS_SENTINEL_MASTER: "m" }),
        "Cannot parse REDIS_SENTINELS: expected host[:port] with a port from 1 to 65535, got " +
          JSON.stringify(entry),
      );
    });
  }
});

Deno.test("REDIS_NAMESPACE, SLUICE_* and obsolete variables", async (t) => {
  await t.step("REDIS_NAMESPACE is kept when set and absent when empty", () => {
    assert.equal(parse({ REDIS_NAMESPACE: "mastodon" }).redisNamespace, "mastodon");
    assert.equal("redisNamespace" in parse({ REDIS_NAMESPACE: "" }), false);
  });
  await t.step("SLUICE_CLIENT_QUEUE_BYTES and SLUICE_SHUTDOWN_TIMEOUT_MS", () => {
    const config = parse({
      SLUICE_CLIENT_QUEUE_BYTES: "65536",
      SLUICE_SHUTDOWN_TIMEOUT_MS: "2500",
    });
    assert.equal(config.clientQueueBytes, 65536);
    assert.equal(config.shutdownTimeoutMs, 2500);
  });
  await t.step("the SLUICE_MAX_* limits", () => {
    const config = parse({
      SLUICE_MAX_SUBSCRIPTIONS_PER_WEBSOCKET: "50",
      SLUICE_MAX_WEBSOCKET_MESSAGE_BYTES: "1024",
      SLUICE_MAX_CONNECTIONS_PER_IP: "20",
    });
    assert.deepEqual(config.limits, {
      subscriptionsPerWebSocket: 50,
      webSocketMessageBytes: 1024,
      connectionsPerIp: 20,
    });
  });
  await t.step("SLUICE_WORKERS: auto (any case, the default) or a count", () => {
    assert.equal(parse({}).workers, "auto");
    assert.equal(parse({ SLUICE_WORKERS: "AUTO" }).workers, "auto");
    assert.equal(parse({ SLUICE_WORKERS: " 3 " }).workers, 3);
  });
  await t.step("obsolete variables that are set are listed, empty ones are not", () => {
    const config = parse({
      STREAMING_CLUSTER_NUM: "4",
      LIMITED_FEDERATION_MODE: "",
      WHITELIST_MODE: "true",
      AUTHORIZED_FETCH: "false",
    });
    assert.deepEqual(config.ignoredVariables, [
      "STREAMING_CLUSTER_NUM",
      "WHITELIST_MODE",
      "AUTHORIZED_FETCH",
    ]);
  });
});

Deno.test("VARIABLES names every variable parseConfig reads", async (t) => {
  const scenarios: [string, Record<string, string>][] = [
    ["development", {}],
    ["production", { NODE_ENV: "production" }],
    ["DATABASE_URL and REDIS_URL", { DATABASE_URL: "postgres://h/d", REDIS_URL: "redis://h" }],
    ["sentinel", { REDIS_SENTINELS: "s", REDIS_SENTINEL_MASTER: "m", SOCKET: "/s" }],
  ];
  for (const [name, entries] of scenarios) {
    await t.step(name, () => {
      const read = new Set<string>();
      const get = vars(entries);
      parseConfig((variable) => (read.add(variable), get(variable)));
      const missing = [...read].filter((variable) => !VARIABLES.includes(variable));
      assert.deepEqual(missing, []);
    });
  }
});

/**
 * Sets aside every variable Sluice reads, so a test of `loadConfig` does not
 * depend on the environment the tests run in; disposing restores them.
 */
function isolatedEnv(): Disposable {
  const saved = new Map(VARIABLES.map((name) => [name, Deno.env.get(name)]));
  for (const name of VARIABLES) Deno.env.delete(name);
  return {
    [Symbol.dispose]() {
      for (const [name, value] of saved) {
        if (value === undefined) Deno.env.delete(name);
        else Deno.env.set(name, value);
      }
    },
  };
}

Deno.test("loadConfig reads the process environment and the env file given", async (t) => {
  const dir = Deno.makeTempDirSync();
  using _env = isolatedEnv();
  try {
    const path = `${dir}/sluice.env`;
    Deno.writeTextFileSync(
      path,
      "NODE_ENV=production\nSLUICE_CLIENT_QUEUE_BYTES=1\nREDIS_NAMESPACE=file_ns\n",
    );
    await t.step("the file fills in, the process environment wins", () => {
      Deno.env.set("SLUICE_CLIENT_QUEUE_BYTES", "4242");
      const config = loadConfig({ envFile: path });
      assert.equal(config.clientQueueBytes, 4242);
      assert.equal(config.redisNamespace, "file_ns");
      Deno.env.delete("SLUICE_CLIENT_QUEUE_BYTES");
    });
    await t.step("NODE_ENV from the file selects the production defaults", () => {
      const config = loadConfig({ envFile: path });
      assert.equal(config.nodeEnv, "production");
      assert.equal(config.postgres.database, "mastodon_production");
    });
    await t.step("a missing explicit file stops start-up", () => {
      assertConfigError(
        () => loadConfig({ envFile: `${dir}/missing.env` }),
        `Cannot read env file "${dir}/missing.env": no such file`,
      );
    });
    await t.step("an unreadable explicit file stops start-up naming the path", () => {
      assert.throws(() => loadConfig({ envFile: dir }), (error) => {
        assert.ok(error instanceof ConfigError);
        assert.ok(error.message.startsWith(`Cannot read "${dir}": `), error.message);
        return true;
      });
    });
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
});

Deno.test(".env.sample documents every variable in VARIABLES", async () => {
  const sample = await Deno.readTextFile(new URL("../../.env.sample", import.meta.url));
  // A KEY= line, or a mention in the comments (USER, the REDIS_USERNAME alias).
  const words = new Set(sample.match(/\b[A-Z][A-Z0-9_]*\b/g));
  assert.deepEqual(VARIABLES.filter((name) => !words.has(name)), []);
  for (const name of VARIABLES.filter((n) => !["USER", "REDIS_USERNAME"].includes(n))) {
    assert.match(sample, new RegExp(`^#?${name}=`, "m"), `${name} has a line of its own`);
  }
});
