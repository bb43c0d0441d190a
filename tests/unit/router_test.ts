import assert from "node:assert/strict";
import { Access, type ResolvedStream } from "../../src/access.ts";
import { AddressLimit } from "../../src/address_limit.ts";
import { Authenticator, type Viewer } from "../../src/auth.ts";
import type { TokenRow } from "../../src/db.ts";
import { createLogger, silentLogger } from "../../src/log.ts";
import { Metrics } from "../../src/metrics.ts";
import { compileTrust } from "../../src/proxy_addr.ts";
import type { PeerInfo } from "../../src/request_log.ts";
import { createHandler, errorResponse, type RouterOptions, ROUTES } from "../../src/router.ts";
import { unhandledError } from "../../src/server.ts";
import { type AccessDb, accessDb, viewer } from "../_support/fakes.ts";

const BASE = "http://streaming.test";

/** One parsed log line. */
type LogRecord = { level: string; msg: string } & Record<string, unknown>;

/** A router over fakes; `tokens` maps tokens to viewers, "boom" makes the lookup fail. */
function setup(
  options: {
    ready?: () => Promise<void>;
    db?: AccessDb;
    upgradeThrows?: boolean;
    trust?: string[];
    addressLimit?: AddressLimit;
  } = {},
) {
  let lookups = 0;
  const tokens = new Map<string, TokenRow>([
    ["alice", viewer()],
    ["writer", viewer({ scopes: ["write"] })],
  ]);
  const opened: Array<{ viewer: Viewer; stream: ResolvedStream }> = [];
  const upgraded: Array<{ viewer: Viewer; requestId: string; ended?: (code: number) => void }> = [];
  const logs: LogRecord[] = [];
  const router: RouterOptions = {
    auth: new Authenticator({
      db: {
        tokenRows: (asked) =>
          ++lookups && asked.includes("boom")
            ? Promise.reject(new Error("database down"))
            : Promise.resolve(
              new Map(asked.flatMap((t) => tokens.has(t) ? [[t, tokens.get(t)!]] : [])),
            ),
      },
    }),
    access: new Access({ db: options.db ?? accessDb() }),
    clients: {
      openStream: (viewer, stream, closed) => {
        opened.push({ viewer, stream });
        return new ReadableStream({ // ends (and reports it) once read, or when cancelled
          start: (c) => c.enqueue(new TextEncoder().encode(":)\n")),
          pull: (c) => (c.close(), closed?.()),
          cancel: () => closed?.(),
        });
      },
      acceptWebSocket: (_request, viewer, requestId, ended) => {
        if (options.upgradeThrows) throw new TypeError("not an upgrade");
        upgraded.push({ viewer, requestId, ended });
        return new Response("upgraded");
      },
    },
    metrics: { render: () => Promise.resolve("connected_clients 0\n") },
    log: createLogger({ level: "debug", sink: (line) => logs.push(JSON.parse(line)) }),
    trustProxy: compileTrust(options.trust ?? ["loopback", "uniquelocal"]),
    ready: options.ready ?? (() => Promise.resolve()),
    addressLimit: options.addressLimit,
  };
  return { handle: createHandler(router), opened, upgraded, logs, lookups: () => lookups };
}

const get = (path: string, init: RequestInit = {}) => new Request(BASE + path, init);
const bearer = (token: string) => ({ headers: { Authorization: `Bearer ${token}` } });
const upgrade = (path: string, headers: Record<string, string> = {}) =>
  get(path, { headers: { Upgrade: "websocket", Connection: "Upgrade", ...headers } });

async function json(response: Response): Promise<unknown> {
  assert.equal(response.headers.get("content-type"), "application/json");
  return await response.json();
}

Deno.test("Every route of the table is a named row", () => {
  assert.deepEqual(ROUTES.map((r) => r.name), [
    "preflight",
    "upgrade",
    "favicon",
    "health",
    "ready",
    "metrics",
    "stream",
  ]);
});

Deno.test("The router answers every status it can give", async (t) => {
  await t.step("200 OK on health, with no-store, any case and a trailing slash", async () => {
    const { handle } = setup();
    for (const path of ["/api/v1/streaming/health", "/API/v1/streaming/Health/"]) {
      const response = await handle(get(path));
      assert.equal(response.status, 200);
      assert.equal(await response.text(), "OK");
      assert.equal(response.headers.get("cache-control"), "private, no-store");
      assert.equal(response.headers.get("access-control-allow-origin"), "*");
      assert.match(response.headers.get("x-request-id") ?? "", /^[0-9a-f-]{36}$/);
    }
  });

  await t.step("200 on readiness while ready, 503 with the reason otherwise", async () => {
    assert.equal((await setup().handle(get("/api/v1/streaming/health/ready"))).status, 200);
    const { handle } = setup({ ready: () => Promise.reject(new Error("Redis is not connected")) });
    const response = await handle(get("/api/v1/streaming/health/ready"));
    assert.equal(response.status, 503);
    assert.deepEqual(await json(response), { error: "Redis is not connected" });
  });

  await t.step("200 with Prometheus text on /metrics", async () => {
    const response = await setup().handle(get("/metrics"));
    assert.equal(response.status, 200);
    assert.equal(response.headers.get("content-type"), "text/plain; version=0.0.4; charset=utf-8");
    assert.equal(await response.text(), "connected_clients 0\n");
  });

  await t.step("204 on a CORS preflight of any path, without a token", async () => {
    const response = await setup().handle(get("/api/v1/streaming/user", {
      method: "OPTIONS",
      headers: { "Access-Control-Request-Headers": "authorization" },
    }));
    assert.equal(response.status, 204);
    assert.equal(response.headers.get("access-control-allow-headers"), "authorization");
    assert.equal(
      response.headers.get("access-control-allow-methods"),
      "GET,HEAD,PUT,PATCH,POST,DELETE",
    );
  });

  await t.step("404 with an empty body on the favicon", async () => {
    const response = await setup().handle(get("/favicon.ico"));
    assert.equal(response.status, 404);
    assert.equal(await response.text(), "");
  });

  await t.step("400 on an unknown stream path, before the token is looked at", async () => {
    const response = await setup().handle(get("/api/v1/streaming/nothing"));
    assert.equal(response.status, 400);
    assert.deepEqual(await json(response), { error: "Unknown channel requested" });
  });

  await t.step("401 without a token, with a bad one, or without the scope", async () => {
    const { handle, opened } = setup();
    const cases: Array<[Request, string]> = [
      [get("/api/v1/streaming/public"), "Missing access token"],
      [get("/api/v1/streaming/public", bearer("nobody")), "Invalid access token"],
      [
        get("/api/v1/streaming/public", bearer("writer")),
        "Access token does not have the required scopes",
      ],
    ];
    for (const [request, message] of cases) {
      const response = await handle(request);
      assert.equal(response.status, 401);
      assert.deepEqual(await json(response), { error: message });
    }
    assert.equal(opened.length, 0);
  });

  await t.step("401 for a list the viewer does not own", async () => {
    const response = await setup().handle(get("/api/v1/streaming/list?list=2", bearer("alice")));
    assert.equal(response.status, 401);
    assert.deepEqual(await json(response), { error: "Not authorized to stream this list" });
  });

  await t.step("404 for an authenticated POST to a stream path", async () => {
    const response = await setup().handle(get("/api/v1/streaming/public", {
      method: "POST",
      ...bearer("alice"),
    }));
    assert.equal(response.status, 404);
    assert.deepEqual(await json(response), { error: "Not found" });
  });

  await t.step("200 event-stream for a stream, the token from the query", async () => {
    const { handle, opened } = setup();
    const response = await handle(get("/api/v1/streaming/hashtag?tag=Foo&access_token=alice"));
    assert.equal(response.status, 200);
    assert.equal(response.headers.get("content-type"), "text/event-stream");
    assert.equal(await response.text(), ":)\n");
    assert.deepEqual(opened.map((o) => o.stream.channels), [["timeline:hashtag:foo"]]);
  });

  await t.step("200 with headers and no stream for HEAD", async () => {
    const { handle, opened } = setup();
    const response = await handle(get("/api/v1/streaming/public", {
      method: "HEAD",
      ...bearer("alice"),
    }));
    assert.equal(response.status, 200);
    assert.equal(response.headers.get("content-type"), "text/event-stream");
    assert.equal(opened.length, 0);
  });

  await t.step("500 with Mastodon's message when the database fails, logged", async () => {
    const { handle, logs } = setup({
      db: accessDb({ feedAccess: () => Promise.reject(new Error("database down")) }),
    });
    const boom = await handle(get("/api/v1/streaming/public", bearer("boom")));
    assert.equal(boom.status, 500);
    assert.deepEqual(await json(boom), { error: "An unexpected error occurred" });
    const access = await handle(get("/api/v1/streaming/public", bearer("alice")));
    assert.equal(access.status, 500);
    assert.deepEqual(await json(access), { error: "An unexpected error occurred" });
    assert.equal(logs.filter((l) => l.level === "error").length, 2);
  });
});

Deno.test("Upgrades on any path are authenticated and answered bare on failure", async (t) => {
  await t.step(
    "an authenticated upgrade is handed to the clients with its request id",
    async () => {
      const { handle, upgraded } = setup();
      const response = await handle(upgrade("/anything?access_token=alice"));
      assert.equal(await response.text(), "upgraded");
      assert.equal(upgraded.length, 1);
      assert.equal(upgraded[0].viewer.accountId, "1");
    },
  );

  await t.step("401 and 500 are bare, with the message in X-Error-Message", async () => {
    const { handle, logs } = setup();
    const cases: Array<[Request, number, string]> = [
      [upgrade("/api/v1/streaming"), 401, "Missing access token"],
      [
        upgrade("/api/v1/streaming", { "Sec-WebSocket-Protocol": "nobody" }),
        401,
        "Invalid access token",
      ],
      [upgrade("/api/v1/streaming?access_token=boom"), 500, "An unexpected error occurred"],
    ];
    for (const [request, status, message] of cases) {
      const response = await handle(request);
      assert.equal(response.status, status);
      assert.equal(response.headers.get("x-error-message"), message);
      assert.equal(response.headers.get("content-type"), "text/plain");
      assert.equal(await response.text(), "");
    }
    assert.deepEqual(logs.filter((l) => l.level === "error").length, 1, "only the 500 is an error");
  });

  await t.step("400 when the request cannot be upgraded", async () => {
    const response = await setup({ upgradeThrows: true }).handle(upgrade("/?access_token=alice"));
    assert.equal(response.status, 400);
    assert.equal(await response.text(), "Bad WebSocket upgrade request");
  });
});

const tcp = (hostname: string): PeerInfo => ({
  remoteAddr: { transport: "tcp", hostname, port: 50123 },
});
const unix: PeerInfo = { remoteAddr: { transport: "unix", path: "/run/sluice/sluice.sock" } };
/** The request records ("request completed" / "request errored"), not the debug lines. */
const records = (logs: LogRecord[]) =>
  logs.filter((l) => l.msg === "request completed" || l.msg === "request errored");
const req = (record: LogRecord) => record.req as Record<string, unknown>;

Deno.test("Each request gets one record in pino-http's shape", async () => {
  const { handle, logs } = setup();
  const response = await handle(get("/api/v1/streaming/health"), tcp("203.0.113.9"));
  assert.equal(await response.text(), "OK");
  const [record, ...more] = records(logs);
  assert.equal(more.length, 0);
  assert.deepEqual(Object.keys(record), [
    "level",
    "time",
    "pid",
    "hostname",
    "name",
    "req",
    "res",
    "responseTime",
    "msg",
  ]);
  const { time, pid, hostname, responseTime, ...rest } = record;
  assert.equal(typeof time, "number");
  assert.equal(pid, Deno.pid);
  assert.equal(hostname, Deno.hostname());
  assert.ok(Number.isInteger(responseTime) && (responseTime as number) >= 0);
  assert.deepEqual(rest, {
    level: "info",
    name: "sluice",
    req: {
      id: response.headers.get("x-request-id"),
      method: "GET",
      url: "/api/v1/streaming/health",
      remoteAddress: "203.0.113.9",
    },
    res: { statusCode: 200 },
    msg: "request completed",
  });
});

Deno.test("No log line has the token, however the query names it", async (t) => {
  const table: Array<[query: string, status: number, url: string]> = [
    ["access_token=alice", 200, "access_token=[Redacted]"],
    ["access%5Ftoken=alice", 200, "access%5Ftoken=[Redacted]"],
    ["%61ccess%5ftoken=alice&local=1", 200, "%61ccess%5ftoken=[Redacted]&local=1"],
    [
      "access_token=alice&access%5Ftoken=alice",
      401,
      "access_token=[Redacted]&access%5Ftoken=[Redacted]",
    ],
  ];
  for (const [query, status, url] of table) {
    await t.step(query, async () => {
      const { handle, logs } = setup();
      const response = await handle(get(`/api/v1/streaming/public?${query}`), tcp("127.0.0.1"));
      assert.equal(response.status, status);
      await response.body?.cancel();
      assert.deepEqual(records(logs).map((r) => req(r).url), [`/api/v1/streaming/public?${url}`]);
      const started = logs.find((l) => l.msg === "request started")!;
      assert.equal(started.level, "debug");
      assert.equal(req(started).url, `/api/v1/streaming/public?${url}`);
      assert.ok(!JSON.stringify(logs).includes("alice"), JSON.stringify(logs));
    });
  }
});

Deno.test("remoteAddress is the peer, or X-Forwarded-For's client behind a trusted proxy", async (t) => {
  const xff = { "X-Forwarded-For": "6.6.6.6, 203.0.113.7" };
  const table: Array<[string, PeerInfo | undefined, Record<string, string>, string?, string[]?]> = [
    ["peer alone", tcp("198.51.100.1"), {}, "198.51.100.1"],
    ["loopback proxy: the forwarded client", tcp("127.0.0.1"), xff, "203.0.113.7"],
    ["uniquelocal proxy, IPv4-mapped", tcp("::ffff:10.0.0.3"), xff, "203.0.113.7"],
    ["untrusted peer: header ignored", tcp("198.51.100.1"), xff, "198.51.100.1"],
    ["peer outside TRUSTED_PROXY_IP", tcp("127.0.0.1"), xff, "127.0.0.1", ["10.0.0.1"]],
    ["unix socket peer: the forwarded client", unix, xff, "203.0.113.7"],
    ["unix socket peer without a header: none", unix, {}, undefined],
    ["no connection info (a test): none", undefined, xff, undefined],
  ];
  for (const [name, info, headers, expected, trust] of table) {
    await t.step(name, async () => {
      const { handle, logs } = setup({ trust });
      await (await handle(get("/api/v1/streaming/health", { headers }), info)).text();
      const [record] = records(logs);
      assert.equal(req(record).remoteAddress, expected);
      assert.equal("remoteAddress" in req(record), expected !== undefined);
    });
  }
});

Deno.test("Refused requests are info records; only a 500 is an error, with its error", async () => {
  const { handle, logs } = setup({
    ready: () => Promise.reject(new Error("Redis is not connected")),
  });
  const requests = [
    get("/api/v1/streaming/public"),
    get("/api/v1/streaming/public", bearer("nobody")),
    upgrade("/api/v1/streaming"),
    get("/api/v1/streaming/health/ready"),
    get("/api/v1/streaming/nothing"),
    get("/api/v1/streaming/public", bearer("boom")),
  ];
  for (const request of requests) await (await handle(request)).body?.cancel();
  assert.deepEqual(
    records(logs).map((r) => [r.level, (r.res as { statusCode: number }).statusCode, r.msg]),
    [
      ["info", 401, "request completed"],
      ["info", 401, "request completed"],
      ["info", 401, "request completed"],
      ["info", 503, "request completed"],
      ["info", 400, "request completed"],
      ["error", 500, "request errored"],
    ],
  );
  assert.deepEqual(records(logs).map((r) => r.err), [
    ...Array(5).fill(undefined),
    { type: "Error", message: "database down" },
  ]);
  assert.equal(logs.filter((l) => l.level === "error").length, 1);
});

Deno.test("An SSE stream's record is written when the stream closes", async (t) => {
  await t.step("cancelled by the client", async () => {
    const { handle, logs } = setup();
    const response = await handle(get("/api/v1/streaming/public", bearer("alice")));
    assert.equal(response.status, 200);
    assert.equal(records(logs).length, 0, "nothing while the stream is open");
    await response.body!.cancel();
    assert.deepEqual(records(logs).map((r) => [r.level, r.res]), [["info", { statusCode: 200 }]]);
  });

  await t.step("ended by the server, recorded once", async () => {
    const { handle, logs } = setup();
    const response = await handle(get("/api/v1/streaming/public", bearer("alice")));
    assert.equal(await response.text(), ":)\n");
    assert.equal(records(logs).length, 1);
  });

  await t.step("HEAD opens no stream and is recorded at once", async () => {
    const { handle, logs } = setup();
    await handle(get("/api/v1/streaming/public", { method: "HEAD", ...bearer("alice") }));
    assert.deepEqual(records(logs).map((r) => r.res), [{ statusCode: 200 }]);
  });
});

Deno.test("A WebSocket's record is written when it closes, with 101 and the close code", async () => {
  const { handle, logs, upgraded } = setup();
  const response = await handle(upgrade("/api/v1/streaming?access%5Ftoken=alice"), tcp("::1"));
  await response.body?.cancel();
  assert.equal(records(logs).length, 0, "nothing while the socket is open");
  upgraded[0].ended!(1006);
  upgraded[0].ended!(1000); // a second close report is ignored
  const [record, ...more] = records(logs);
  assert.equal(more.length, 0);
  assert.equal(record.level, "info");
  assert.deepEqual(record.res, { statusCode: 101 });
  assert.equal(record.closeCode, 1006);
  assert.deepEqual(req(record), {
    id: upgraded[0].requestId,
    method: "GET",
    url: "/api/v1/streaming?access%5Ftoken=[Redacted]",
    remoteAddress: "::1",
  });
});

Deno.test("A refused upgrade is recorded at once with its 400", async () => {
  const { handle, logs } = setup({ upgradeThrows: true });
  await (await handle(upgrade("/?access_token=alice"))).text();
  assert.deepEqual(records(logs).map((r) => r.res), [{ statusCode: 400 }]);
});

Deno.test("The server's last-resort error is the router's 500 response, logged", async () => {
  const logs: string[] = [];
  const onError = unhandledError(createLogger({ level: "error", sink: (l) => logs.push(l) }));
  const response = onError(new Error("handler blew up"));
  assert.equal(response.status, 500);
  assert.deepEqual(await json(response), { error: "An unexpected error occurred" });
  assert.equal(response.headers.get("access-control-allow-origin"), "*");
  assert.equal(logs.length, 1);
  const same = errorResponse(500, "An unexpected error occurred");
  assert.deepEqual([...response.headers], [...same.headers]);
});

Deno.test("SLUICE_MAX_CONNECTIONS_PER_IP: one too many is a 429 before the token is looked up", async (t) => {
  const metrics = new Metrics();
  const refusals = metrics.limitRefusals.series({ limit: "connections_per_ip" });
  const addressLimit = new AddressLimit({ limit: 2, refusals, log: silentLogger });
  const { handle, lookups, upgraded } = setup({ addressLimit });
  const client = tcp("127.0.0.1");
  const xff = (ip: string) => ({ "X-Forwarded-For": ip, Authorization: "Bearer alice" });
  const sse = await handle(
    get("/api/v1/streaming/public", { headers: xff("203.0.113.7") }),
    client,
  );
  await handle(upgrade("/api/v1/streaming", xff("203.0.113.7")), client);
  const looked = lookups();

  await t.step("SSE: Mastodon's JSON error, no database work", async () => {
    const response = await handle(
      get("/api/v1/streaming/user", { headers: xff("203.0.113.7") }),
      client,
    );
    assert.equal(response.status, 429);
    assert.deepEqual(await json(response), { error: "Too many connections from this address" });
    assert.equal(refusals.value, 1);
  });
  await t.step("upgrade: a bare 429 with X-Error-Message", async () => {
    const response = await handle(upgrade("/api/v1/streaming", xff("203.0.113.7")), client);
    assert.equal(response.status, 429);
    assert.equal(response.headers.get("x-error-message"), "Too many connections from this address");
    assert.equal(refusals.value, 2);
    assert.equal(lookups(), looked, "no token lookup for a refused connection");
  });
  await t.step("another client address behind the same proxy is not affected", async () => {
    const response = await handle(
      get("/api/v1/streaming/public", { headers: xff("203.0.113.8") }),
      client,
    );
    assert.equal(response.status, 200);
    await response.body!.cancel();
  });
  await t.step("a closed stream makes room", async () => {
    await sse.body!.cancel();
    upgraded[0].ended!(1000);
    const response = await handle(
      get("/api/v1/streaming/public", { headers: xff("203.0.113.7") }),
      client,
    );
    assert.equal(response.status, 200);
    await response.body!.cancel();
  });
  await t.step("a refused token frees its place at once", async () => {
    for (let i = 0; i < 3; i++) {
      const headers = { "X-Forwarded-For": "203.0.113.9", Authorization: "Bearer nobody" };
      const response = await handle(get("/api/v1/streaming/public", { headers }), client);
      assert.equal(response.status, 401);
      await response.body?.cancel();
    }
    assert.equal(addressLimit.count("203.0.113.9"), 0);
  });
});
