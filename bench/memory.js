"use strict";
// --memory: RSS of every node of a cluster over 1,000,000 cross-node broadcasts (100 B, to all,
// 1 socket per node), after a warmup. Flat = end and peak within 10 % of the RSS at the end of
// the warmup. Ours by default; --both runs the official adapter the same way, first.

const { startCluster, PAYLOADS } = require("./scenarios");
const { sleep } = require("./procs");
const { table } = require("./report");
const { fmtNum } = require("./stats");

const MiB = 1048576;
const SAMPLE_MS = 500;

async function measureMemory(adapter, ctx, { total, warmup, warmupMs, maxMs }) {
  const cluster = await startCluster({
    kind: ctx.kind,
    adapter,
    redisUrl: ctx.redisUrl,
    socketsPerNode: 1,
    wsClients: ctx.wsClients,
  });
  const [sender] = cluster.nodes;
  let latest = [0, 0, 0];
  const minSeen = () => Math.min(...latest);
  const off = cluster.clients.on((msg) => {
    if (msg.type !== "progress") return;
    latest = msg.probes;
    sender.send({ type: "credit", n: minSeen() });
  });
  const started = Date.now();
  const samples = []; // { n, rss: [..] }
  let base = null;
  const peak = [0, 0, 0];
  let lastN = -1;
  let lastChange = Date.now();
  try {
    await cluster.clients.request({ type: "reset" });
    await sender.request({
      type: "bcast-start",
      room: null,
      payload: PAYLOADS["100B"],
      pump: {
        ...ctx.timing.pump,
        window: ctx.timing.windowCap(adapter),
        // The time-bound warmup may take far more than `warmup` broadcasts at a fast sender.
        maxMessages: 5 * (warmup + total),
        maxMs,
      },
    });
    while (Date.now() - started < maxMs) {
      await sleep(SAMPLE_MS);
      const marks = await Promise.all(cluster.nodes.map((p) => p.mark()));
      const n = (await cluster.clients.mark()).counters.probes[1];
      const rss = marks.map((m) => m.rss);
      if (n >= warmup && Date.now() - started >= warmupMs) {
        if (!base) base = { n, rss, t: Date.now() };
        marks.forEach((m, i) => (peak[i] = Math.max(peak[i], m.rssPeak)));
        samples.push({
          n,
          rss,
          heap: marks.map((m) => m.heapUsed),
          heapTotal: marks.map((m) => m.heapTotal),
          arrayBuffers: marks.map((m) => m.arrayBuffers),
        });
      }
      const pct = Math.min(100, (100 * n) / (warmup + total)).toFixed(0);
      process.stdout.write(
        `\r  ${adapter}: ${n} broadcasts received (${pct} %), RSS MiB ${rss.map((r) => (r / MiB).toFixed(0)).join(" / ")}   `,
      );
      if (base && n >= base.n + total) break;
      if (n !== lastN) {
        lastN = n;
        lastChange = Date.now();
      } else if (Date.now() - lastChange > 10000) {
        process.stdout.write(`\n  ${adapter}: no broadcast received for 10 s, giving up`);
        break;
      }
    }
    process.stdout.write("\n");
    const stop = await sender.request({ type: "bcast-stop" });
    const end = samples[samples.length - 1];
    const seconds = base && end ? (Date.now() - base.t) / 1000 : 0;
    return {
      adapter,
      base,
      end,
      peak,
      samples,
      sent: stop.sent,
      stalls: stop.stalls,
      seconds,
      completed: end && end.n >= warmup + total,
    };
  } finally {
    off();
    await cluster.close();
  }
}

/** `field` (MiB, per node) every ~10 % of the run. */
function series(r, field = "rss") {
  const out = [];
  const span = r.end.n - r.base.n;
  for (let k = 0; k <= 10; k++) {
    const at = r.samples.find((x) => x.n >= r.base.n + (span * k) / 10) || r.end;
    out.push((at[field] || []).map((b) => (b / MiB).toFixed(0)).join("/"));
  }
  return out.join(", ");
}

async function runMemory(args, ctx, meta) {
  const total = args.messages || 1_000_000;
  const warmup = args.quick ? 20_000 : 100_000;
  // And at least this long: V8 sizes its young generation to the allocation rate within the
  // first seconds, a one-time step of RSS (a receiver at 250k broadcasts/s: heap total 16 ->
  // 24 MiB within 0.5 s after a 0.4 s warmup, flat after) that is no growth over the run.
  const warmupMs = args.quick ? 1000 : 3000;
  const maxMs = 6 * 60 * 1000;
  const adapters = args.both ? ["official", "ours"] : ["ours"];
  const runs = [];
  for (const a of adapters)
    runs.push(await measureMemory(a, ctx, { total, warmup, warmupMs, maxMs }));
  const rows = [];
  let allFlat = true;
  for (const r of runs) {
    if (!r.base) {
      rows.push([r.adapter, "–", "–", "–", "–", "–", "–", "warmup never completed", "**no**"]);
      allFlat = false;
      continue;
    }
    ["sender (node 0)", "receiver (node 1)", "receiver (node 2)"].forEach((name, i) => {
      const start = r.base.rss[i];
      const endRss = r.end.rss[i];
      const growth = (endRss - start) / start;
      const peakGrowth = (r.peak[i] - start) / start;
      const flat = r.completed && growth <= 0.1 && peakGrowth <= 0.1;
      if (r.adapter === "ours") allFlat = allFlat && flat;
      const mid = r.samples.find((x) => x.n >= r.base.n + (r.end.n - r.base.n) / 2) || r.end;
      const secondHalf = (endRss - mid.rss[i]) / mid.rss[i];
      rows.push([
        r.adapter,
        name,
        (start / MiB).toFixed(1),
        (endRss / MiB).toFixed(1),
        (r.peak[i] / MiB).toFixed(1),
        `${(growth * 100).toFixed(1)} % / ${(peakGrowth * 100).toFixed(1)} %`,
        `${(secondHalf * 100).toFixed(1)} %`,
        `${fmtNum(r.end.n - r.base.n, 0)} bcasts in ${r.seconds.toFixed(0)} s (${fmtNum((r.end.n - r.base.n) / r.seconds)}/s)${r.completed ? "" : ", NOT completed (time bound)"}`,
        flat ? "yes" : "**no**",
      ]);
    });
  }
  const parts = [
    `Command: \`${meta.command}\`  \nDate: ${meta.date}  \nMachine: ${meta.machine}  \nAdapters: ${meta.adapters}`,
    `### Memory: RSS over ${fmtNum(total, 0)} broadcasts (100 B, to all, 3 nodes x 1 socket) after a warmup of ${fmtNum(warmup, 0)} broadcasts and ${warmupMs / 1000} s`,
    table(
      [
        "adapter",
        "process",
        "start MiB",
        "end MiB",
        "peak MiB",
        "end / peak vs start",
        "end vs half-way",
        "measured",
        "flat (≤ 10 %)",
      ],
      rows,
    ),
    `Start = RSS when node 1's client had received ${fmtNum(warmup, 0)} broadcasts and ${warmupMs / 1000} s had passed; peak = highest RSS sampled every 200 ms after that; end = RSS after the last broadcast. Ours flat: ${allFlat ? "yes" : "no"}.`,
    ...runs
      .filter((r) => r.base)
      .flatMap((r) => [
        `RSS MiB of ${r.adapter} nodes 0 / 1 / 2 every ~10 % of the run: ${series(r)}`,
        `V8 heap total MiB of the same: ${series(r, "heapTotal")}`,
        `Buffers (arrayBuffers) MiB of the same: ${series(r, "arrayBuffers")}`,
      ]),
  ];
  return { text: parts.join("\n\n") + "\n", json: { meta, runs } };
}

module.exports = { runMemory };
