import assert from "node:assert/strict";
import {
  type MemorySample,
  perConnection,
  renderSteps,
  renderTable,
  type ServerRun,
} from "../../bench/idle_memory/report.ts";

const KB = 1024;

function sample(heapUsed: number, newSpace: number, rss: number): MemorySample {
  return { heapUsed, heapTotal: heapUsed + newSpace, newSpace, rss, external: 0 };
}

function serverRun(server: ServerRun["server"], perConn: number, young: number): ServerRun {
  return {
    server,
    transport: "ws",
    samples: [
      { connections: 1000, memory: sample(1000 * perConn, 0, 10_000 * KB) },
      { connections: 5000, memory: sample(5000 * perConn, young, 10_000 * KB + 4000 * perConn) },
    ],
  };
}

Deno.test("Idle memory: per-connection bytes from first to last step, young generation apart", () => {
  const per = perConnection(serverRun("sluice", 6 * KB, 4000 * KB))!;
  assert.equal(per.heapUsed, 6 * KB);
  assert.equal(per.heapTotal, 7 * KB);
  assert.equal(per.oldTotal, 6 * KB);
  assert.equal(perConnection({ server: "sluice", transport: "sse", samples: [] }), undefined);
});

Deno.test("Idle memory: the table puts Sluice, the ceiling and Sluice's own share side by side", () => {
  const runs = [serverRun("sluice", 6 * KB, 0), serverRun("ceiling", 5 * KB, 0)];
  const table = renderTable(runs).join("\n");
  assert.match(table, /\| ws \| 1000 → 5000 \| heapUsed \| 6\.00 KB \| 5\.00 KB \| 1\.00 KB \|/);
  assert.doesNotMatch(table, /\| sse \|/);
  assert.match(renderSteps(runs).join("\n"), /\| ceiling \| ws \| 1000 → 5000 \| 5\.00 KB \|/);
});
