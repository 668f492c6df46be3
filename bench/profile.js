"use strict";
// --profile: runs "bcast 1/node 100B all" on each adapter with the receiving node (node 1) and
// the sender (node 0) under `node --cpu-prof`, then sums the self time of the profiles by
// function and by package, to tell where a receiving (and sending) process spends its time.

const fs = require("fs");
const path = require("path");
const { startCluster, runBroadcast, runRequest, scenarioGroups } = require("./scenarios");
const { table } = require("./report");
const { fmtNum } = require("./stats");

/** Self time (ms) by function and by "package" of one .cpuprofile. */
function summarizeProfile(file) {
  const prof = JSON.parse(fs.readFileSync(file, "utf8"));
  const byId = new Map(prof.nodes.map((n) => [n.id, n]));
  const self = new Map(); // node id -> µs
  for (let i = 0; i < prof.samples.length; i++) {
    const id = prof.samples[i];
    self.set(id, (self.get(id) || 0) + (prof.timeDeltas[i] || 0));
  }
  // Shares are of the busy time: "(idle)" samples are left out of the total.
  let total = 0;
  for (const [id, us] of self) if (byId.get(id).callFrame.functionName !== "(idle)") total += us;
  const fnTime = new Map();
  const pkgTime = new Map();
  for (const [id, us] of self) {
    const { callFrame } = byId.get(id);
    if (callFrame.functionName === "(idle)") continue;
    const url = callFrame.url || "";
    let pkg;
    if (!url)
      pkg = callFrame.functionName.startsWith("(")
        ? callFrame.functionName
        : "(native / V8 builtins)";
    else if (url.startsWith("node:")) pkg = "node core";
    else {
      const m = url.match(/node_modules\/((?:@[^/]+\/)?[^/]+)/);
      pkg = m ? m[1] : url.includes("/bench/") ? "bench harness" : "socket.io-redis-native (lib/)";
    }
    const fn =
      `${callFrame.functionName || "(anonymous)"} ${url ? path.basename(url) + ":" + (callFrame.lineNumber + 1) : ""}`.trim();
    fnTime.set(fn, (fnTime.get(fn) || 0) + us);
    pkgTime.set(pkg, (pkgTime.get(pkg) || 0) + us);
  }
  const top = (m, n) =>
    [...m.entries()]
      .sort((a, b) => b[1] - a[1])
      .slice(0, n)
      .map(([k, us]) => [k, fmtNum(us / 1000, 0), `${((100 * us) / total).toFixed(1)} %`]);
  return { totalMs: total / 1000, functions: top(fnTime, 15), packages: top(pkgTime, 12) };
}

function profiledScenario(only) {
  const fallback = { id: "bcast 1/node 100B all", kind: "broadcast", payload: "100B", room: null };
  if (!only) return { sc: fallback, socketsPerNode: 1 };
  const pattern = only;
  for (const group of scenarioGroups({ emitter: false })) {
    const sc = group.scenarios.find((s) => s.kind !== "raw" && pattern.test(s.id));
    if (sc) return { sc, socketsPerNode: group.socketsPerNode };
  }
  throw new Error(`--profile --only ${only}: no such scenario`);
}

async function runProfile(args, ctx, meta) {
  const dir = path.join(__dirname, "results", `profiles-${meta.date.replace(/[:.]/g, "-")}`);
  fs.mkdirSync(dir, { recursive: true });
  // --only REGEX picks another scenario (a request one profiles the asking node and a responder).
  const { sc, socketsPerNode } = profiledScenario(args.only);
  const timing = { ...ctx.timing, warmupMs: 500, durationMs: (args.duration || 5) * 1000 };
  const parts = [
    `Command: \`${meta.command}\`  \nDate: ${meta.date}  \nMachine: ${meta.machine}  \nAdapters: ${meta.adapters}`,
  ];
  const json = { meta, profiles: {} };
  for (const adapter of ["official", "ours"]) {
    const sub = path.join(dir, adapter);
    fs.mkdirSync(sub, { recursive: true });
    const cluster = await startCluster({
      kind: ctx.kind,
      adapter,
      redisUrl: ctx.redisUrl,
      socketsPerNode,
      wsClients: ctx.wsClients,
      execArgvFor: (i) =>
        i <= 1 ? ["--cpu-prof", "--cpu-prof-dir", path.join(sub, `node${i}`)] : [],
    });
    let r;
    try {
      r =
        sc.kind === "request"
          ? await runRequest(cluster, sc, { ...ctx, timing })
          : await runBroadcast(cluster, sc, { ...ctx, timing });
    } finally {
      await cluster.close(); // a normal exit writes the profiles
    }
    parts.push(
      `### ${adapter}: ${sc.id}: ${sc.kind === "request" ? `${fmtNum(r.opsRate)} ops/s, p50 ${fmtNum(r.p50, 2)} ms` : `${fmtNum(r.msgRate)} client msg/s`}, CPU ms/1k sender ${fmtNum(r.senderCpu)}, receiver ${fmtNum(r.receiverCpu)} (whole process lifetime is profiled, including start-up)`,
    );
    for (const [i, role] of [
      [1, "receiving node 1"],
      [0, "sending node 0"],
    ]) {
      const d = path.join(sub, `node${i}`);
      const files = fs.existsSync(d)
        ? fs.readdirSync(d).filter((f) => f.endsWith(".cpuprofile"))
        : [];
      if (!files.length) {
        parts.push(`${role}: no profile written`);
        continue;
      }
      const s = summarizeProfile(path.join(d, files[0]));
      json.profiles[`${adapter}-${role}`] = s;
      parts.push(
        `**${role}** (${fmtNum(s.totalMs, 0)} ms busy; ${path.relative(process.cwd(), path.join(d, files[0]))})`,
      );
      parts.push(table(["package", "self ms", "share"], s.packages));
      parts.push(table(["function (self time)", "self ms", "share"], s.functions));
    }
  }
  return { text: parts.join("\n\n") + "\n", json };
}

module.exports = { runProfile, summarizeProfile };
