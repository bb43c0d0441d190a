/**
 * dist/nginx.conf in front of two instances of dist/sluice@.service: a real
 * nginx (Debian package) with the site file as shipped, except for its
 * ports (the two upstream servers and one plain-HTTP listen address on
 * 127.0.0.1 instead of TLS on 443) and a throwaway prefix, pid and logs.
 * `deno task test` installs nginx (scripts/ensure_services.sh) when missing.
 */
import assert from "node:assert/strict";
import { SseReader, Waiters, WsClient } from "../_support/clients.ts";
import {
  demoMessage,
  fillCache,
  installPaths,
  RedisMonitor,
  ROOT,
  spawnTemplate,
  startDeployServices,
  type UnitProcess,
} from "../_support/deploy.ts";
import type { LogRecord } from "../_support/log_lines.ts";
import { freePort } from "../../scripts/free_port.ts";

const CLIENT_IP = "198.51.100.7";
/** Each SSE stream's first heartbeat comes 15 s after it opened (and at most 250 ms later). */
const HEARTBEAT_MS = 15_000;
/**
 * How long after opening the stream the heartbeat must have come through
 * nginx: a buffering proxy would hold the 7 bytes far longer than the 3 s of
 * slack this leaves (for a loaded machine).
 */
const HEARTBEAT_DEADLINE_MS = HEARTBEAT_MS + 3_000;

const NGINX = await findNginx();
if (!NGINX) console.log("nginx_test: skipped: nginx not found (apt-get install nginx)");

async function findNginx(): Promise<string | undefined> {
  for (const path of ["nginx", "/usr/sbin/nginx"]) {
    try {
      if ((await new Deno.Command(path, { args: ["-v"] }).output()).success) return path;
    } catch {
      // not here
    }
  }
  return undefined;
}

/** dist/nginx.conf with its upstream ports and its listen address swapped; TLS lines dropped. */
function siteConfig(text: string, listen: number, upstream: [number, number]): string {
  const swapOnce = (from: string, to: string) => {
    assert.equal(text.split(from).length, 2, `dist/nginx.conf has one "${from}"`);
    text = text.replace(from, to);
  };
  swapOnce("server 127.0.0.1:4000;", `server 127.0.0.1:${upstream[0]};`);
  swapOnce("server 127.0.0.1:4001;", `server 127.0.0.1:${upstream[1]};`);
  const lines = text.split("\n");
  const first = lines.findIndex((line) => /^\s*listen\s/.test(line));
  assert.ok(first >= 0, "dist/nginx.conf has a listen line");
  lines[first] = `  listen 127.0.0.1:${listen};`;
  return lines.filter((line, i) => i === first || !/^\s*(listen|ssl_)/.test(line)).join("\n");
}

/** A foreground nginx (master and two workers) with everything under one temporary prefix. */
async function startNginx(site: string): Promise<{ stop(): Promise<void> }> {
  const dir = await Deno.makeTempDir({ prefix: "sluice-nginx-" });
  await Deno.writeTextFile(`${dir}/sluice.conf`, site);
  const temp = ["client_body", "proxy", "fastcgi", "uwsgi", "scgi"]
    .map((kind) => `  ${kind}_temp_path ${dir}/${kind};`).join("\n");
  await Deno.writeTextFile(
    `${dir}/nginx.conf`,
    `daemon off;
master_process on;
worker_processes 2;
${Deno.uid() === 0 ? "user root;" : ""}
pid ${dir}/nginx.pid;
error_log stderr notice;
events { worker_connections 256; }
http {
  access_log ${dir}/access.log;
${temp}
  include ${dir}/sluice.conf;
}
`,
  );
  const child = new Deno.Command(NGINX!, {
    args: ["-e", "stderr", "-p", `${dir}/`, "-c", `${dir}/nginx.conf`],
    stdin: "null",
    stdout: "null",
    stderr: "piped",
  }).spawn();
  const stderr: string[] = [];
  const waiters = new Waiters();
  const pump = (async () => {
    for await (const chunk of child.stderr.pipeThrough(new TextDecoderStream())) {
      stderr.push(chunk);
      waiters.notify();
    }
    stderr.push("\n(nginx exited)");
    waiters.notify();
  })();
  const stop = async () => {
    try {
      child.kill("SIGTERM");
    } catch {
      // already exited
    }
    await child.status;
    await pump;
    await Deno.remove(dir, { recursive: true });
  };
  // The master opens the listening socket before it starts its workers.
  const started = await waiters.until(
    () => {
      const text = stderr.join("");
      return /start worker process/.test(text) || text.includes("(nginx exited)")
        ? text
        : undefined;
    },
    "nginx to start its workers",
    10_000,
  ).catch(async (error) => {
    await stop();
    throw error;
  });
  if (!/start worker process/.test(started)) {
    await stop();
    throw new Error(`nginx did not start: ${started}`);
  }
  return { stop };
}

/** connected_clients of one instance, all types together, read from its /metrics. */
async function connectedClients(port: number): Promise<number> {
  const text = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
  return text.split("\n").filter((line) => line.startsWith("connected_clients{"))
    .reduce((sum, line) => sum + Number(line.split(" ").pop()), 0);
}

/** Waits for `needle` in the stream for up to `ms` (SseReader's own wait is 5 s). */
async function eventually(sse: SseReader, needle: string, ms: number): Promise<void> {
  const deadline = Date.now() + ms;
  for (;;) {
    try {
      await sse.contains(needle);
      return;
    } catch (error) {
      if (Date.now() >= deadline) throw error;
    }
  }
}

function twoPorts(): [number, number] {
  const first = freePort();
  let second = freePort();
  while (second === first) second = freePort();
  return [first, second];
}

Deno.test({
  name: "nginx with dist/nginx.conf serves two instances of sluice@.service",
  ignore: !NGINX,
  async fn(t) {
    const services = await startDeployServices();
    const workDir = await Deno.makeTempDir({ prefix: "sluice-live-" });
    const monitor = await RedisMonitor.open(services.redis.port);
    const instances: UnitProcess[] = [];
    let nginx: { stop(): Promise<void> } | undefined;
    let sse: SseReader | undefined;
    let sseOpened = 0;
    let ws: WsClient | undefined;
    try {
      await Deno.writeTextFile(`${workDir}/.env.production`, services.envFile());
      const paths = await installPaths(services, workDir);
      await fillCache(paths);
      const ports = twoPorts();
      for (const port of ports) instances.push(await spawnTemplate(paths, port));
      await Promise.all(instances.map((instance) => instance.listening()));
      const listen = freePort();
      const site = siteConfig(await Deno.readTextFile(`${ROOT}/dist/nginx.conf`), listen, ports);
      nginx = await startNginx(site);
      const base = `127.0.0.1:${listen}/api/v1/streaming`;
      const problems = () => instances.map((i) => i.problems()).join("\n");

      await t.step("SSE through nginx gets an event", async () => {
        sseOpened = Date.now();
        sse = await SseReader.open(`http://${base}/public?access_token=token-alice`, {
          "X-Forwarded-For": CLIENT_IP,
        });
        assert.equal(sse.response.status, 200);
        assert.equal(sse.response.headers.get("content-type"), "text/event-stream");
        const { channel, message } = await demoMessage("01-public-update.json");
        await monitor.subscribed(channel).catch((error) => {
          throw new Error(`${error.message}; Sluice logged:\n${problems()}`);
        });
        await services.client.publish(channel, message);
        await sse.contains('event: update\ndata: {"id":"115000000000000001"');
      });

      await t.step("a short request through nginx is answered", async () => {
        const response = await fetch(`http://${base}/health`);
        assert.equal(await response.text(), "OK");
      });

      await t.step("a WebSocket through nginx subscribes and gets an event", async () => {
        ws = await WsClient.open(`ws://${base}?access_token=token-alice`);
        ws.send(JSON.stringify({ type: "subscribe", stream: "user" }));
        const { channel, message } = await demoMessage("03-home-update.json");
        await monitor.subscribed(channel);
        await services.client.publish(channel, message);
        const frame = JSON.parse(await ws.next());
        assert.deepEqual([frame.stream, frame.event], [["user"], "update"]);
        assert.equal(JSON.parse(frame.payload).id, "115000000000000001");
      });

      // Round-robin would have sent the health request to the other instance and
      // the WebSocket back to the SSE stream's; least_conn sends both to the idle one.
      await t.step("least_conn gives each instance one of the two streams", async () => {
        assert.deepEqual(await Promise.all(ports.map(connectedClients)), [1, 1]);
      });

      await t.step("the SSE heartbeat comes through nginx while the stream is open", async () => {
        const left = sseOpened + HEARTBEAT_DEADLINE_MS - Date.now();
        await eventually(sse!, ":thump\n", left);
        const after = Date.now() - sseOpened;
        assert.ok(after >= HEARTBEAT_MS, `not before 15 s after opening: ${after} ms`);
        assert.ok(after <= HEARTBEAT_DEADLINE_MS, `passed on at once, not buffered: ${after} ms`);
        assert.equal(sse!.ended, false);
        assert.ok(!sse!.text.includes(":thump\n\n"), "the heartbeat has no blank line");
      });

      // Needs the request log of the `logs` branch (issue 9, point 4): fails without it.
      await t.step("the request log shows the client address nginx forwarded", async () => {
        await sse!.close();
        const completed = (r: LogRecord) => {
          const req = r.req as { url?: string; remoteAddress?: string } | undefined;
          return r.msg === "request completed" &&
            !!req?.url?.startsWith("/api/v1/streaming/public");
        };
        const record = await Promise.any(
          instances.map((i) => i.logs.find(completed, "the SSE stream's request record")),
        ).catch(() => {
          throw new Error(
            `no "request completed" record of the SSE stream; Sluice logged:\n` +
              instances.flatMap((i) => i.logs.records).map((r) => JSON.stringify(r)).join("\n"),
          );
        });
        assert.equal((record.req as { remoteAddress?: string }).remoteAddress, CLIENT_IP);
        assert.equal(record.level, "info");
      });

      await t.step("both instances stop cleanly on SIGTERM", async () => {
        await ws?.close();
        await nginx?.stop();
        nginx = undefined;
        for (const { code, stderr } of await Promise.all(instances.map((i) => i.stop()))) {
          assert.equal(code, 0, stderr);
        }
      });
    } finally {
      await ws?.close();
      await sse?.close();
      await nginx?.stop();
      await Promise.all(instances.map((instance) => instance.stop()));
      await monitor.close();
      await services.close();
      await Deno.remove(workDir, { recursive: true });
    }
  },
});
