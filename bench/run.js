#!/usr/bin/env node
"use strict";
// Bench orchestrator: the official Socket.IO Redis adapter vs socket.io-redis-native (ours),
// side by side in one run, alternating official / ours in every round, each Socket.IO server
// in its own process, against a private redis-server started here.
//
//   npm run bench                      default run (~4–5 min)
//   npm run bench -- --quick           ~1 min
//   npm run bench -- --memory          RSS over 1,000,000 broadcasts (ours; --both adds official)
//   npm run bench -- --profile         --cpu-prof of a receiving node of each adapter
//   npm run bench -- --kind sharded    adapters compared (with any mode above; default classic):
//       classic  @socket.io/redis-adapter createAdapter          vs ours createAdapter
//       sharded  @socket.io/redis-adapter createShardedAdapter   vs ours createShardedAdapter
//       streams  @socket.io/redis-streams-adapter createAdapter  vs ours createStreamsAdapter
//   options: --rounds N --duration S --only REGEX --out FILE --messages N (memory mode)
//            --ws-clients (the clients process reads its websockets with the `ws` package)
//            --window N (most unconfirmed broadcasts, the same for both adapters)

const fs = require("fs");
const os = require("os");
const path = require("path");
const { execFile } = require("child_process");
const { createClient } = require("redis");
const { startRedis, killAll } = require("./procs");
const {
  scenarioGroups,
  startCluster,
  startHelpers,
  runBroadcast,
  runEmitter,
  runRaw,
  runRequest,
  startRequestFloor,
  summarize,
} = require("./scenarios");
const { runNativeFloor } = require("./native-floor");
const { render } = require("./report");
const { KINDS, kindInfo } = require("./kinds");
const { fmtNum } = require("./stats");

function parseArgs(argv) {
  const args = {
    quick: false,
    memory: false,
    profile: false,
    both: false,
    rounds: null,
    duration: null,
    kind: "classic",
    wsClients: false,
  };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const val = () => argv[++i];
    if (a === "--quick") args.quick = true;
    else if (a === "--memory") args.memory = true;
    else if (a === "--profile") args.profile = true;
    else if (a === "--both") args.both = true;
    else if (a === "--ws-clients") args.wsClients = true;
    else if (a === "--window") args.window = Number(val());
    else if (a === "--kind") args.kind = val();
    else if (a === "--rounds") args.rounds = Number(val());
    else if (a === "--duration") args.duration = Number(val());
    else if (a === "--only") args.only = new RegExp(val());
    else if (a === "--out") args.out = val();
    else if (a === "--messages") args.messages = Number(val());
    else if (a === "--help" || a === "-h") args.help = true;
    else throw new Error(`unknown option ${a}`);
  }
  if (args.window !== undefined && !(Number.isInteger(args.window) && args.window > 0))
    throw new Error("--window N: expected a positive integer");
  if (!KINDS[args.kind])
    throw new Error(`--kind ${args.kind}: expected ${Object.keys(KINDS).join(", ")}`);
  return args;
}

/**
 * Most unconfirmed broadcasts a sender may have (bench/README.md, "Broadcast throughput"): the
 * window must not be what limits a sender, nor overload it. The official streams adapter gets
 * slower as more of its XADDs wait (a sweep of 1,000 / 2,500 / 4,000 / 8,000: 95k / 91k / 86k
 * / 83k client msg/s, sender CPU 13.4 / 16.6 / 16.8 / 18.8 ms per 1k), so it keeps the 1,000
 * where it did best; every other adapter did best at the most. `--window N` sets one for all.
 */
const MAX_WINDOW = 8000;
const OFFICIAL_STREAMS_WINDOW = 1000;
function windowCap(args, adapter) {
  if (args.window) return args.window;
  return args.kind === "streams" && adapter === "official" ? OFFICIAL_STREAMS_WINDOW : MAX_WINDOW;
}

function timingFor(args) {
  const quick = args.quick;
  const durationMs = (args.duration || (quick ? 0.8 : 2)) * 1000;
  return {
    rounds: args.rounds || (quick ? 2 : 3),
    warmupMs: quick ? 250 : 500,
    durationMs,
    pump: { window: args.window || MAX_WINDOW, batch: 50, stallMs: 1000, maxMessages: 5e6 },
    windowCap: (adapter) => windowCap(args, adapter),
  };
}

function machineFacts() {
  const cpu = os.cpus()[0];
  return `nproc ${os.cpus().length} (${cpu ? cpu.model.trim() : "?"}), ${fmtNum(os.totalmem() / 2 ** 30, 0)} GiB RAM, node ${process.version}, ${os.type()} ${os.release()}, load avg at start ${os
    .loadavg()
    .map((x) => x.toFixed(2))
    .join(" ")}`;
}

function redisBenchmark(port, payloadSize, quick) {
  return new Promise((resolve) => {
    const n = quick ? 100000 : 300000;
    execFile(
      "redis-benchmark",
      [
        "-h",
        "127.0.0.1",
        "-p",
        String(port),
        "-q",
        "-n",
        String(n),
        "-P",
        "32",
        "-c",
        "4",
        "PUBLISH",
        "bench-rb",
        "x".repeat(payloadSize),
      ],
      { timeout: 30000 },
      (err, stdout) => {
        if (err) return resolve(`not run (${err.message.split("\n")[0]})`);
        const m = stdout.match(/([0-9.]+) requests per second/);
        resolve(
          m
            ? `${fmtNum(Number(m[1]))} PUBLISH/s (100 B, 4 connections, pipeline 32, ${n} commands)`
            : stdout.trim(),
        );
      },
    );
  });
}

async function runMain(args, ctx, meta) {
  let emitter = false;
  try {
    emitter = typeof require(path.join(__dirname, "..")).Emitter === "function";
  } catch (e) {
    meta.notes.push(`require("..") failed: ${e.message}`);
  }
  if (!emitter)
    meta.notes.push(
      'emitter scenario skipped: require("socket.io-redis-native").Emitter is undefined',
    );
  const skipped = Object.values(kindInfo(ctx.kind).skip);
  for (const reason of skipped) console.log(`bench: ${reason}`);
  meta.notes.push(...skipped);
  const rounds = {}; // id -> { kind, official: [], ours: [], raw: [] }
  for (const group of scenarioGroups({ emitter, kind: ctx.kind })) {
    const scenarios = group.scenarios.filter((s) =>
      args.only ? args.only.test(s.id) : !(args.quick && s.skipQuick),
    );
    if (!scenarios.length) continue;
    console.log(`\n== ${group.name} ==`);
    const clusters = {};
    let helpers = null;
    if (scenarios.some((s) => s.kind === "raw" || s.kind === "emitter"))
      helpers = await startHelpers(ctx, {
        emitter,
        sharded: scenarios.some((s) => s.kind === "raw" && s.sharded),
        stream: scenarios.some((s) => s.kind === "raw" && s.stream),
      });
    if (scenarios.some((s) => s.raw && !s.native)) clusters.raw = await startRequestFloor(ctx);
    if (scenarios.some((s) => s.kind === "broadcast" || (s.kind === "request" && !s.raw))) {
      for (const adapter of ["official", "ours"]) {
        clusters[adapter] = await startCluster({
          kind: ctx.kind,
          adapter,
          redisUrl: ctx.redisUrl,
          socketsPerNode: group.socketsPerNode,
          wsClients: ctx.wsClients,
        });
      }
    }
    try {
      // One short unrecorded run per cluster first (JIT, connections, Redis buffers).
      const first = scenarios.find(
        (s) => s.kind === "broadcast" || (s.kind === "request" && !s.raw),
      );
      if (first) {
        const warm = { ...ctx, timing: { ...ctx.timing, warmupMs: 200, durationMs: 500 } };
        for (const v of ["official", "ours"]) {
          if (first.kind === "broadcast") await runBroadcast(clusters[v], first, warm);
          else await runRequest(clusters[v], first, warm);
        }
      }
      for (let round = 0; round < ctx.timing.rounds; round++) {
        for (const sc of scenarios) {
          const variants = sc.kind === "raw" || sc.raw ? ["raw"] : ["official", "ours"];
          for (const v of variants) {
            let r;
            if (sc.kind === "raw") r = await runRaw(sc, ctx, helpers);
            else if (sc.native) {
              // Needs rustc (the bench compiles it): without it the row is left out.
              r = await runNativeFloor(ctx).catch((e) => {
                console.log(`bench: ${sc.id} skipped: ${e.message.split("\n")[0]}`);
                return null;
              });
              if (!r) continue;
            } else if (sc.kind === "broadcast") r = await runBroadcast(clusters[v], sc, ctx);
            else if (sc.kind === "request") r = await runRequest(clusters[v], sc, ctx);
            else if (sc.kind === "emitter") r = await runEmitter(sc, ctx, v, helpers);
            const slot = (rounds[sc.id] ||= { kind: sc.kind });
            (slot[v] ||= []).push(r);
            const rate =
              r.msgRate !== undefined ? `${fmtNum(r.msgRate)} msg/s` : `${fmtNum(r.opsRate)} ops/s`;
            console.log(
              `  r${round + 1} ${sc.id.padEnd(48)} ${v.padEnd(8)} ${rate.padStart(12)}  p50 ${fmtNum(r.p50)} ms  p99 ${fmtNum(r.p99)} ms  cpu/1k send ${fmtNum(r.senderCpu)} recv ${fmtNum(r.receiverCpu)} ms${r.lost ? `  lost ${r.lost}` : ""}${r.errors ? `  errors ${r.errors} (${r.result})` : ""}`,
            );
          }
        }
      }
    } finally {
      await Promise.all(Object.values(clusters).map((c) => c.close()));
      if (helpers) await helpers.close();
    }
  }
  const results = {};
  for (const [id, r] of Object.entries(rounds)) {
    results[id] = { kind: r.kind };
    for (const v of ["official", "ours", "raw"]) if (r[v]) results[id][v] = summarize(r[v]);
  }
  return { results, rounds };
}

async function main() {
  const args = parseArgs(process.argv.slice(2));
  if (args.help) {
    console.log(fs.readFileSync(__filename, "utf8").split("\n").slice(2, 16).join("\n"));
    return;
  }
  const started = Date.now();
  // Hard bound on the whole run; children are killed on exit.
  const hardLimitMs = (args.memory ? 8 : args.quick ? 4 : 10) * 60 * 1000;
  setTimeout(() => {
    console.error(`bench: hard time limit (${hardLimitMs / 60000} min) reached, aborting`);
    killAll();
    process.exit(2);
  }, hardLimitMs).unref();

  const redis = await startRedis();
  const client = createClient({ url: redis.url });
  await client.connect();
  const timing = timingFor(args);
  const ctx = {
    redis: client,
    redisUrl: redis.url,
    timing,
    kind: args.kind,
    wsClients: args.wsClients,
  };
  const kind = kindInfo(args.kind);
  const meta = {
    command: `npm run bench${process.argv.length > 2 ? " -- " + process.argv.slice(2).join(" ") : ""}`,
    date: new Date().toISOString(),
    machine: machineFacts(),
    adapters: `--kind ${args.kind}: official = ${kind.official}; ours = ${kind.ours}; raw reference: ${kind.raw}`,
    timing: `${timing.rounds} rounds (official, ours alternating in each), warmup ${timing.warmupMs} ms + ${timing.durationMs} ms measured per run; sender window ${args.window ? args.window : `${MAX_WINDOW} (official streams adapter: ${OFFICIAL_STREAMS_WINDOW})`} unconfirmed broadcasts at most, batches of ${timing.pump.batch}; cells are median [min–max] over rounds`,
    notes: [
      args.wsClients
        ? "clients: the `ws` package's websockets (--ws-clients)"
        : "clients: raw-ws.js frame readers (no `ws` package: see bench/README.md)",
    ],
  };
  console.log(`bench: redis-server ${redis.url} (pid ${redis.pid}); ${meta.machine}`);
  console.log(`bench: ${meta.adapters}`);

  let text;
  let json;
  const mode = `${args.kind}-${args.memory ? "memory" : args.profile ? "profile" : args.quick ? "quick" : "default"}`;
  try {
    if (args.memory) {
      const { runMemory } = require("./memory");
      ({ text, json } = await runMemory(args, ctx, meta));
    } else if (args.profile) {
      const { runProfile } = require("./profile");
      ({ text, json } = await runProfile(args, ctx, meta));
    } else {
      if (!args.only || args.only.test("raw"))
        meta.redisBenchmark = await redisBenchmark(redis.port, 100, args.quick);
      const { results, rounds } = await runMain(args, ctx, meta);
      meta.notes.push(
        "client msg/s: events received per second by the clients of the receiving nodes (node 1 and 2 for `all`, node 1 for `room`); bcast/s: broadcasts per second reaching every receiving node; raw pub/sub: messages per second delivered to each of 2 subscribers (PUBLISH; SPUBLISH with --kind sharded)",
        "CPU ms/1k: process.cpuUsage() delta of that process per 1,000 broadcasts (or operations) in the measured window; receiver = node 1, no-member node = node 2 (room scenarios), clients = the one process holding every node's clients (bench harness, the same code for both adapters: it shares the 2 cores with the servers)",
        "latency: send timestamp (CLOCK_MONOTONIC) in the payload, read by the receiving client; under full load it includes the sender's backlog (window)",
      );
      text = render({ results, meta });
      json = { meta, results, rounds };
    }
  } finally {
    await client.quit().catch(() => {});
    redis.stop();
  }
  meta.elapsed = `${((Date.now() - started) / 1000).toFixed(0)} s`;
  text += `\nTotal wall time: ${meta.elapsed}\n`;
  console.log("\n" + text);
  const outDir = path.join(__dirname, "results");
  fs.mkdirSync(outDir, { recursive: true });
  const out = args.out || path.join(outDir, `${mode}-${meta.date.replace(/[:.]/g, "-")}.md`);
  fs.writeFileSync(out, text);
  fs.writeFileSync(out.replace(/\.md$/, "") + ".json", JSON.stringify(json, null, 1));
  console.log(`written: ${path.relative(process.cwd(), out)}`);
}

main()
  .then(() => process.exit(0))
  .catch((e) => {
    console.error(e);
    killAll();
    process.exit(1);
  });
