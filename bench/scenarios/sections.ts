/**
 * The sections of bench/RESULTS.md outside the fan-out ladders: case a
 * (idle memory per connection), d (latency), e (connection storm) and f
 * (slow clients), each comparing Sluice with the ceiling. Pure: no I/O, no
 * clock.
 *
 * @module
 */
import { deliveredShare, PLATEAU_GROWTH, ratio, slowPairs, verdict } from "./analysis.ts";
import type { RunRecord } from "./report.ts";
import {
  commandBlock,
  DASH,
  find,
  int,
  kb,
  mb,
  msText,
  pair,
  pct,
  ratioText,
  table,
  unique,
} from "./tables.ts";

/** Section a: idle memory per connection. */
export function sectionA(runs: RunRecord[]): string[] {
  const rows = unique(runs.map((run) => `${run.transport} ${run.clients}`)).map((key) => {
    const [transport, clients] = key.split(" ");
    const where = { transport: transport as RunRecord["transport"], clients: Number(clients) };
    const s = find(runs, "sluice", where);
    const c = find(runs, "ceiling", where);
    const per = (run?: RunRecord) => run?.report?.server?.rssPerConnectionBytes ?? null;
    const rss = (run?: RunRecord) =>
      `${mb(run?.report?.server?.rssBaselineBytes)} → ${mb(run?.report?.server?.rssIdleBytes)}`;
    const est = (run?: RunRecord) => int(run?.report?.connections.established);
    return [
      transport,
      int(Number(clients)),
      kb(per(s)),
      kb(per(c)),
      ratioText(ratio(per(s), per(c))),
      rss(s),
      rss(c),
      `${est(s)} / ${est(c)}`,
      [s?.id, c?.id].filter(Boolean).join(", "),
    ];
  });
  return [
    "## a. Idle memory per connection",
    "",
    "Server RSS after the warm-up minus RSS before connecting, divided by the connections " +
    "(`--idle`, stream `user`, token-alice).",
    "",
    ...table(
      "transport|connections|Sluice per conn|ceiling per conn|Sluice/ceiling|" +
        "Sluice RSS before → idle|ceiling RSS before → idle|established (S / C)|" +
        "runs",
      rows,
    ),
    ...commandBlock(runs),
  ];
}

function latencyText(run: RunRecord | undefined): string[] {
  const l = run?.report?.latencyMs;
  return [msText(l?.p50), msText(l?.p90), msText(l?.p99), msText(l?.max)];
}

/** Section d: latency percentiles. */
export function sectionD(runs: RunRecord[]): string[] {
  const keys = unique(runs.map((run) => `${run.transport} ${run.clients}`));
  const rows = keys.map((key) => {
    const [transport, clients] = key.split(" ");
    const where = { transport: transport as RunRecord["transport"], clients: Number(clients) };
    const s = find(runs, "sluice", where);
    const c = find(runs, "ceiling", where);
    return [
      `${int(Number(clients))} ${transport}`,
      ...latencyText(s),
      ...latencyText(c),
      ratioText(ratio(s?.report?.latencyMs.p99, c?.report?.latencyMs.p99)),
      pair(s, c, (run) => pct(deliveredShare(run))),
      [s?.id, c?.id].filter(Boolean).join(", "),
    ];
  });
  return [
    "## d. Latency",
    "",
    "Stream `user`, 10 messages/s of 1.5 KB; latency from PUBLISH to the client reading the marker.",
    "",
    ...table(
      "clients|Sluice p50|p90|p99|max|ceiling p50|p90|p99|max|" +
        "p99 Sluice/ceiling|delivered (S / C)|runs",
      rows,
    ),
    ...commandBlock(runs),
  ];
}

/** Section e: connection storm. */
export function sectionE(runs: RunRecord[]): string[] {
  const keys = unique(runs.map((run) => `${run.transport}|${run.variant}`));
  const rows = keys.map((key) => {
    const [transport, variant] = key.split("|");
    const where = { transport: transport as RunRecord["transport"], variant };
    const s = find(runs, "sluice", where);
    const c = find(runs, "ceiling", { transport: where.transport });
    const cell = (run?: RunRecord) => {
      const k = run?.report?.connections;
      if (!k) return [DASH, DASH, DASH, DASH];
      const failures = Object.entries(k.failures).map(([why, n]) => `${n}× ${why}`).join("; ");
      return [
        msText(k.establishAllMs),
        msText(k.connectMs.p50),
        msText(k.connectMs.p99),
        `${k.failed}${failures ? ` (${failures})` : ""}`,
      ];
    };
    return [
      transport,
      variant,
      ...cell(s),
      ...cell(c),
      ratioText(ratio(
        s?.report?.connections.establishAllMs,
        c?.report?.connections.establishAllMs,
      )),
      [s?.id, c?.id].filter(Boolean).join(", "),
    ];
  });
  return [
    "## e. Connection storm",
    "",
    "Authenticated connections opened at once (no ramp, 500 attempts in flight), stream `user`; " +
    "the ceiling does not authenticate, so its same-token run is the reference for both rows.",
    "",
    ...table(
      "transport|tokens|Sluice all established|connect p50|p99|failures|" +
        "ceiling all established|connect p50|p99|failures|Sluice/ceiling|runs",
      rows,
    ),
    ...commandBlock(runs),
  ];
}

/** Section f: slow clients beside normal ones. */
export function sectionF(runs: RunRecord[]): string[] {
  const detail = runs.map((run) => {
    const r = run.report;
    const s = r?.server;
    return [
      run.id,
      run.server,
      run.transport,
      run.variant === "slow" ? `${int(r?.slow.opened)} slow` : "none",
      mb(s?.rssIdleBytes),
      mb(s?.rssPeakBytes),
      mb(s?.rssEndBytes),
      run.rssHalves ? `${mb(run.rssHalves.first)} → ${mb(run.rssHalves.second)}` : DASH,
      msText(r?.latencyMs.p99),
      pct(deliveredShare(run)),
      run.variant === "slow" ? `${int(r?.slow.cutByServer)} of ${int(r?.slow.opened)}` : DASH,
      int(r?.disconnects.total),
    ];
  });
  const summary = slowPairs(runs).map((p) => [
    p.server,
    p.transport,
    mb(
      p.slow?.report?.server?.rssPeakBytes && p.plain?.report?.server?.rssPeakBytes
        ? p.slow.report.server.rssPeakBytes - p.plain.report.server.rssPeakBytes
        : null,
    ),
    p.growth === null ? DASH : `${(100 * p.growth).toFixed(1)} %`,
    verdict(p.growth, PLATEAU_GROWTH, "max"),
    ratioText(p.p99Ratio),
    verdict(p.p99Ratio, 2, "max"),
    int(p.slow?.report?.slow.cutByServer),
  ]);
  return [
    "## f. Slow clients",
    "",
    "Normal clients beside clients that never read (`--slow`), stream `user`, against the same " +
    "run without slow clients. The RSS halves are the largest server RSS sampled (every 250 ms) " +
    "in the first and in the second half of publishing; the publishing window is located from " +
    "the load generator's progress lines (once a second), so its edges are approximate. These " +
    "runs keep the progress lines, so they have no `--quiet`.",
    "",
    ...table(
      "server|transport|peak RSS added by slow clients|RSS growth, 2nd vs 1st half|" +
        `plateau (≤ ${100 * PLATEAU_GROWTH} %)|normal p99 with/without|within 2×|slow clients cut`,
      summary,
    ),
    ...table(
      "run|server|transport|slow|RSS idle|peak|end|RSS 1st → 2nd half|" +
        "normal p99|delivered|slow cut|normal cut",
      detail,
    ),
    ...commandBlock(runs),
  ];
}
