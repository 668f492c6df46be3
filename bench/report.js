"use strict";
// Renders the results of a run as Markdown: per-scenario tables (official vs ours, medians
// with [min–max] over rounds, and the ours/official ratio) and the target checks.

const { fmtSpread, fmtRatio, fmtNum } = require("./stats");
const { RAW_ROUND_TRIP, NATIVE_ROUND_TRIP, RAW_STREAM_SCENARIO } = require("./scenarios");

const MiB = 1048576;
const med = (s) => (s ? s.median : null);
const ratio = (a, b) => (a !== null && b !== null && b > 0 ? a / b : null);
const mib = (s) =>
  s ? { median: s.median / MiB, min: s.min / MiB, max: s.max / MiB, n: s.n } : null;

function table(header, rows) {
  const lines = [`| ${header.join(" | ")} |`, `| ${header.map(() => "---").join(" | ")} |`];
  for (const r of rows) lines.push(`| ${r.join(" | ")} |`);
  return lines.join("\n");
}

function flowRows(id, res) {
  const rows = [];
  const variants = res.raw ? ["raw"] : ["official", "ours"];
  for (const v of variants) {
    const s = res[v];
    if (!s) continue;
    rows.push([
      v === "raw" ? id : `${id}`,
      v,
      fmtSpread(s.msgRate),
      fmtSpread(s.bcastRate),
      fmtSpread(s.p50, 1),
      fmtSpread(s.p99, 1),
      fmtSpread(s.senderCpu, 1),
      fmtSpread(s.receiverCpu, 1),
      s.idleCpu ? fmtSpread(s.idleCpu, 2) : "–",
      fmtSpread(s.redisCpu, 1),
      v === "raw" || !s.counterCpu ? "–" : fmtSpread(s.counterCpu, 1),
      `${fmtNum(med(s.senderRss) / MiB, 0)} / ${fmtNum(med(s.receiverRss) / MiB, 0)}`,
      `${fmtNum(med(s.lost), 0)}`,
    ]);
  }
  if (res.official && res.ours) {
    const o = res.official;
    const u = res.ours;
    rows.push([
      `**${id}**`,
      "**ours/official**",
      `**${fmtRatio(ratio(med(u.msgRate), med(o.msgRate)))}**`,
      fmtRatio(ratio(med(u.bcastRate), med(o.bcastRate))),
      fmtRatio(ratio(med(u.p50), med(o.p50))),
      fmtRatio(ratio(med(u.p99), med(o.p99))),
      `**${fmtRatio(ratio(med(u.senderCpu), med(o.senderCpu)))}**`,
      `**${fmtRatio(ratio(med(u.receiverCpu), med(o.receiverCpu)))}**`,
      o.idleCpu ? fmtRatio(ratio(med(u.idleCpu), med(o.idleCpu))) : "–",
      fmtRatio(ratio(med(u.redisCpu), med(o.redisCpu))),
      o.counterCpu && u.counterCpu ? fmtRatio(ratio(med(u.counterCpu), med(o.counterCpu))) : "–",
      "",
      "",
    ]);
  }
  return rows;
}

function requestRows(id, res) {
  const rows = [];
  for (const v of ["official", "ours", "raw"]) {
    const s = res[v];
    if (!s) continue;
    rows.push([
      id,
      v,
      fmtSpread(s.opsRate),
      fmtSpread(s.p50, 2),
      fmtSpread(s.p99, 2),
      fmtSpread(s.senderCpu, 1),
      fmtSpread(s.receiverCpu, 1),
      fmtSpread(s.redisCpu, 1),
      `${fmtNum(med(s.senderRss) / MiB, 0)} / ${fmtNum(med(s.receiverRss) / MiB, 0)}`,
      `${fmtNum(med(s.errors), 0)} (${typeof s.result === "object" && s.result ? fmtNum(s.result.median, 0) : s.result})`,
    ]);
  }
  if (res.official && res.ours) {
    const o = res.official;
    const u = res.ours;
    rows.push([
      `**${id}**`,
      "**ours/official**",
      fmtRatio(ratio(med(u.opsRate), med(o.opsRate))),
      `**${fmtRatio(ratio(med(u.p50), med(o.p50)))}**`,
      fmtRatio(ratio(med(u.p99), med(o.p99))),
      fmtRatio(ratio(med(u.senderCpu), med(o.senderCpu))),
      fmtRatio(ratio(med(u.receiverCpu), med(o.receiverCpu))),
      fmtRatio(ratio(med(u.redisCpu), med(o.redisCpu))),
      "",
      "",
    ]);
  }
  return rows;
}

/** Target checks on the medians; each { target, measured, met }. */
function targets(results) {
  const out = [];
  const get = (id) => results[id];
  // The pub/sub reference of the target; the streams one (streams kind) is shown beside it.
  const raw = Object.entries(results).find(([id, r]) => r.raw && id !== RAW_STREAM_SCENARIO);
  const rawStream = results[RAW_STREAM_SCENARIO] && results[RAW_STREAM_SCENARIO].raw;
  const rawStreamRate = rawStream ? med(rawStream.bcastRate) : null;
  const rawRate = raw ? med(raw[1].raw.bcastRate) : null;
  const rawCommand = raw && /sharded/.test(raw[0]) ? "SPUBLISH" : "PUBLISH";
  for (const [id, r] of Object.entries(results)) {
    if (!r.official || !r.ours || r.kind !== "broadcast") continue;
    const o = r.official;
    const u = r.ours;
    if (id.includes("1/node")) {
      const tp = ratio(med(u.msgRate), med(o.msgRate));
      out.push({
        target: `${id}: throughput ≥ 3× official`,
        measured: fmtRatio(tp),
        met: tp !== null && tp >= 3,
      });
      const cs = ratio(med(u.senderCpu), med(o.senderCpu));
      const cr = ratio(med(u.receiverCpu), med(o.receiverCpu));
      out.push({
        target: `${id}: CPU/msg sender and receiver ≤ 1/3 of official`,
        measured: `sender ${fmtRatio(cs)}, receiver ${fmtRatio(cr)}`,
        met: cs !== null && cr !== null && cs <= 1 / 3 && cr <= 1 / 3,
      });
      if (id.includes("100B all") && rawRate) {
        const rr = ratio(med(u.bcastRate), rawRate);
        out.push({
          target: `${id}: ours ≥ ½ of raw pub/sub rate (${fmtNum(rawRate)} ${rawCommand}/s delivered)`,
          measured: `${fmtNum(med(u.bcastRate))} bcast/s = ${fmtRatio(rr)} of raw`,
          met: rr !== null && rr >= 0.5,
        });
      }
      if (id.includes("100B all") && rawStreamRate) {
        const rs = ratio(med(u.bcastRate), rawStreamRate);
        out.push({
          target: `${id}: against the raw streams rate (${fmtNum(rawStreamRate)} entries/s read by each of 2 XREAD readers), beside the pub/sub one: no target`,
          measured: `ours ${fmtNum(med(u.bcastRate))} bcast/s = ${fmtRatio(rs)}, official ${fmtRatio(ratio(med(o.bcastRate), rawStreamRate))}`,
          met: null,
        });
      }
    }
    if (id.includes("50/node 4KiB")) {
      const tp = ratio(med(u.msgRate), med(o.msgRate));
      const cs = ratio(med(u.senderCpu), med(o.senderCpu));
      const cr = ratio(med(u.receiverCpu), med(o.receiverCpu));
      out.push({
        target: `${id}: no slower, lower CPU`,
        measured: `throughput ${fmtRatio(tp)}, CPU sender ${fmtRatio(cs)}, receiver ${fmtRatio(cr)}`,
        met: tp !== null && tp >= 1 && cs < 1 && cr < 1,
      });
    }
  }
  const floor = results[RAW_ROUND_TRIP] && results[RAW_ROUND_TRIP].raw;
  const nativeFloor = results[NATIVE_ROUND_TRIP] && results[NATIVE_ROUND_TRIP].raw;
  for (const id of Object.keys(results)) {
    if (!/fetchSockets|serverSideEmit/.test(id)) continue;
    const r = get(id);
    if (!r.official || !r.ours) continue;
    const lr = ratio(med(r.ours.p50), med(r.official.p50));
    let measured = fmtRatio(lr);
    if (floor && /serverSideEmit/.test(id)) {
      // What the target asks for, next to the least the same exchange costs without Socket.IO.
      const f = med(floor.p50);
      measured +=
        ` (floor, ${RAW_ROUND_TRIP}: p50 ${fmtNum(f, 3)} ms = ${fmtRatio(ratio(f, med(r.official.p50)))} of official;` +
        ` ours ${fmtRatio(ratio(med(r.ours.p50), f))} of the floor)`;
    }
    if (nativeFloor && /serverSideEmit/.test(id)) {
      const f = med(nativeFloor.p50);
      measured += ` (no-JavaScript floor, ${NATIVE_ROUND_TRIP}: p50 ${fmtNum(f, 3)} ms = ${fmtRatio(ratio(f, med(r.official.p50)))} of official)`;
    }
    out.push({
      target: `${id}: p50 latency ≤ ½ of official`,
      measured,
      met: lr !== null && lr <= 0.5,
    });
  }
  return out;
}

function render({ results, meta }) {
  const parts = [];
  parts.push(
    `Command: \`${meta.command}\`  \nDate: ${meta.date}  \nMachine: ${meta.machine}  \nAdapters: ${meta.adapters}  \n${meta.timing}`,
  );
  if (meta.redisBenchmark)
    parts.push(`redis-benchmark PUBLISH (no subscribers): ${meta.redisBenchmark}`);
  const flow = Object.entries(results).filter(([, r]) => r.kind !== "request");
  if (flow.length) {
    parts.push("### Broadcasts (cross-node) and raw pub/sub");
    parts.push(
      table(
        [
          "scenario",
          "variant",
          "client msg/s",
          "bcast/s",
          "p50 ms",
          "p99 ms",
          "CPU ms/1k sender",
          "CPU ms/1k receiver",
          "CPU ms/1k no-member node",
          "CPU ms/1k redis",
          "CPU ms/1k clients",
          "peak RSS MiB send/recv",
          "lost",
        ],
        flow.flatMap(([id, r]) => flowRows(id, r)),
      ),
    );
  }
  const req = Object.entries(results).filter(([, r]) => r.kind === "request");
  if (req.length) {
    parts.push("### Request / response (sequential, one operation in flight)");
    parts.push(
      table(
        [
          "scenario",
          "adapter",
          "ops/s",
          "p50 ms",
          "p99 ms",
          "CPU ms/1k sender",
          "CPU ms/1k responder",
          "CPU ms/1k redis",
          "peak RSS MiB send/resp",
          "errors (last result)",
        ],
        req.flatMap(([id, r]) => requestRows(id, r)),
      ),
    );
  }
  const t = targets(results);
  if (t.length) {
    parts.push("### Targets (medians of this run)");
    parts.push(
      table(
        ["target", "measured", "met"],
        t.map((x) => [x.target, x.measured, x.met === null ? "–" : x.met ? "yes" : "**no**"]),
      ),
    );
  }
  if (meta.notes && meta.notes.length) parts.push(meta.notes.map((n) => `- ${n}`).join("\n"));
  return parts.join("\n\n") + "\n";
}

module.exports = { render, targets, table, mib };
