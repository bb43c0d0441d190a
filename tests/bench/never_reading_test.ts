import assert from "node:assert/strict";
import { parseMetrics, parseSs } from "../../bench/never_reading.ts";

Deno.test("never_reading: ss lines give the connections and their unsent bytes", () => {
  const text = "0      3869705     127.0.0.1:8413    127.0.0.1:37468\n" +
    "0      0     127.0.0.1:8413    127.0.0.1:37470\n\n";
  assert.deepEqual(parseSs(text), { established: 2, unsentBytes: 3869705 });
  assert.deepEqual(parseSs(""), { established: 0, unsentBytes: 0 });
});

Deno.test("never_reading: /metrics gives clients per transport, cuts by reason and RSS", () => {
  const text = [
    'connected_clients{type="websocket"} 50',
    'connected_clients{type="eventsource"} 7',
    'sluice_slow_client_cuts_total{reason="stalled"} 3',
    'sluice_slow_client_cuts_total{reason="behind"} 147',
    "process_resident_memory_bytes 453000000",
  ].join("\n");
  assert.deepEqual(parseMetrics(text), {
    clients: { eventsource: 7, websocket: 50 },
    cuts: { stalled: 3, behind: 147 },
    rssBytes: 453000000,
  });
});

Deno.test("never_reading: a short real run samples the server and reports the load", async () => {
  const dir = await Deno.makeTempDir();
  const json = `${dir}/out.json`;
  const script = new URL("../../bench/never_reading.ts", import.meta.url).pathname;
  const args = ["--slow", "4", "--clients", "2", "--rate", "10", "--duration", "3", "--every", "1"];
  const run = await new Deno.Command(Deno.execPath(), {
    args: ["run", "--allow-all", script, ...args, "--json", json],
    stdout: "piped",
    stderr: "piped",
  }).output();
  assert.ok(run.success, new TextDecoder().decode(run.stderr));
  const result = JSON.parse(await Deno.readTextFile(json));
  assert.ok(result.samples.length >= 2, "sampled every second");
  assert.ok(result.samples[0].established >= 6, "readers and never-reading clients connected");
  assert.equal(result.loadgen.slow.opened, 4);
  assert.equal(result.loadgen.deliveries.missing, 0, "the readers got everything");
  await Deno.remove(dir, { recursive: true });
});
