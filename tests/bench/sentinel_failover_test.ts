import assert from "node:assert/strict";

Deno.test("bench/sentinel_failover.ts as RESULTS.md runs it (one round): the subscriber is back on the new master and receives", async () => {
  const dir = await Deno.makeTempDir();
  const json = `${dir}/out.json`;
  const script = new URL("../../bench/sentinel_failover.ts", import.meta.url).pathname;
  const run = await new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "--allow-all",
      script,
      ...["--rounds", "1", "--rate", "100", "--down-after", "500", "--json", json],
    ],
    stdout: "piped",
    stderr: "piped",
  }).output();
  assert.ok(run.success, new TextDecoder().decode(run.stderr));
  const { rounds } = JSON.parse(await Deno.readTextFile(json));
  assert.equal(rounds.length, 1);
  const [round] = rounds;
  assert.ok(round.switchMs > 0, "a +switch-master was seen after the kill");
  assert.ok(round.resubscribedMs >= round.switchMs, "resubscribed on the new master after it");
  assert.ok(round.published > 0);
  // One trial run lost 4 of 267 at the switch: the figure is reported, not a target here.
  assert.ok(
    round.lost < round.published / 2,
    `events arrive on the new master: ${round.lost} lost`,
  );
  await Deno.remove(dir, { recursive: true });
});
