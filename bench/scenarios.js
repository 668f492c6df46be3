"use strict";
// Scenario definitions and runners. A cluster is 3 Socket.IO server processes (node.js) on one
// adapter plus one process holding all their clients (clients.js). Node 0 sends; on node 0 and
// node 1 every client is in room "r", on node 2 none is, so a broadcast to "r" has a node with
// no members. Each runner measures one window between two "mark" snapshots of every process.

const { Proc, sleep } = require("./procs");
const { spread } = require("./stats");
const { kindInfo } = require("./kinds");

const ROOM = "r";
/** The raw streams reference's scenario id (report.js compares streams broadcasts to it). */
const RAW_STREAM_SCENARIO = "raw streams 100B (node-redis XADD, 2 XREAD readers)";
/** The request floor's scenario id (report.js compares serverSideEmit with ack to it). */
const RAW_ROUND_TRIP = "raw request round trip (node-redis PUBLISH, 2 answering processes)";
/** The same round trip with no JavaScript (bench/native-floor.rs): what the machine allows. */
const NATIVE_ROUND_TRIP =
  "native request round trip (Rust, blocking sockets, 2 answering processes)";

const PAYLOADS = {
  "100B": { size: 100 },
  "4KiB": { size: 4096 },
  "100B+1KiB Buffer": { size: 100, bufSize: 1024 },
};

/**
 * Groups share one pair of clusters (official + ours) with a given number of sockets per node.
 * `emitter`: ours exports Emitter; `kind`: the adapters' kind (kinds.js).
 */
function scenarioGroups({ emitter, kind = "classic" }) {
  // skipQuick: left out of --quick runs
  const bc = (id, payload, room, skipQuick) => ({
    id,
    kind: "broadcast",
    payload,
    room: room ? ROOM : null,
    skipQuick,
  });
  const groups = [
    {
      name: "1 socket per node",
      socketsPerNode: 1,
      scenarios: [
        kind === "sharded"
          ? {
              id: "raw sharded pub/sub 100B (node-redis SPUBLISH, 2 SSUBSCRIBErs)",
              kind: "raw",
              payload: "100B",
              sharded: true,
            }
          : {
              id: "raw pub/sub 100B (node-redis, 2 subscribers)",
              kind: "raw",
              payload: "100B",
            },
        // The streams adapters' own transport: every node reads every entry.
        ...(kind === "streams"
          ? [{ id: RAW_STREAM_SCENARIO, kind: "raw", payload: "100B", stream: true }]
          : []),
        bc("bcast 1/node 100B all", "100B"),
        bc("bcast 1/node 4KiB all", "4KiB"),
        bc("bcast 1/node 100B+Buffer all", "100B+1KiB Buffer"),
        bc("bcast 1/node 100B room (node 2 no members)", "100B", true),
        { id: "broadcast with ack (3 nodes x 1 socket)", kind: "request", op: "broadcastAck" },
      ],
    },
    {
      name: "50 sockets per node",
      socketsPerNode: 50,
      scenarios: [
        bc("bcast 50/node 100B all", "100B", false, true),
        bc("bcast 50/node 4KiB all", "4KiB"),
        bc("bcast 50/node 4KiB room (node 2 no members)", "4KiB", true),
        bc("bcast 50/node 100B+Buffer all", "100B+1KiB Buffer", false, true),
      ],
    },
    {
      name: "100 sockets per node",
      socketsPerNode: 100,
      scenarios: [
        { id: "fetchSockets (3 nodes x 100 sockets)", kind: "request", op: "fetchSockets" },
        {
          id: "fetchSockets, every handshake read (3 nodes x 100 sockets)",
          kind: "request",
          op: "fetchSocketsHandshakes",
        },
        { id: "serverSideEmit with ack (3 nodes)", kind: "request", op: "serverSideEmitAck" },
        // The floor of the one above over pub/sub: the same exchange without Socket.IO.
        ...(kind === "streams"
          ? []
          : [
              { id: RAW_ROUND_TRIP, kind: "request", op: "rawRoundTrip", raw: true },
              { id: NATIVE_ROUND_TRIP, kind: "request", raw: true, native: true },
            ]),
      ],
    },
  ];
  if (emitter && !kindInfo(kind).skip.emitter) {
    groups[0].scenarios.push({
      id: "emitter 100B -> 2 raw subscribers",
      kind: "emitter",
      payload: "100B",
    });
  }
  return groups;
}

/**
 * Waits (bounded) until node 0's serverSideEmit with ack is answered by every other node: all
 * subscribed, and for streams all reading the stream (the request goes through it). A fixed
 * sleep was enough for pub/sub, not for stream readers that start at "$" asynchronously.
 */
async function waitFormed(procs, label) {
  const until = Date.now() + FORM_TIMEOUT_MS;
  let answered = 0;
  while (Date.now() < until) {
    ({ answered } = await procs[0].request({ type: "peers" }, 20000));
    if (answered >= procs.length - 1) return;
    await sleep(100);
  }
  console.warn(
    `bench: ${label} cluster: only ${answered} of ${procs.length - 1} other nodes answered after ${FORM_TIMEOUT_MS / 1000} s; measuring anyway`,
  );
}

/** How long a new cluster may take until every node answers the others (streams: read). */
const FORM_TIMEOUT_MS = 30000;

async function startCluster({
  kind = "classic",
  adapter,
  redisUrl,
  socketsPerNode,
  nodes = 3,
  execArgvFor = () => [],
  wsClients = false,
}) {
  const key = `bench-${adapter}`;
  const procs = [];
  for (let i = 0; i < nodes; i++) {
    procs.push(
      new Proc(
        "node.js",
        { kind, adapter, redisUrl, key, name: `${adapter}-${i}` },
        {
          label: `${adapter} node ${i}`,
          execArgv: execArgvFor(i),
        },
      ),
    );
  }
  const ready = await Promise.all(procs.map((p) => p.waitFor("ready")));
  const clients = new Proc(
    "clients.js",
    {
      nodes: ready.map((r, i) => ({
        port: r.port,
        count: socketsPerNode,
        room: i < 2 ? ROOM : null,
      })),
      wsClients,
    },
    { label: `${adapter} clients` },
  );
  await clients.waitFor("ready", 60000);
  await waitFormed(procs, `${kind} ${adapter}`);
  return {
    kind,
    adapter,
    key,
    redisUrl,
    socketsPerNode,
    nodes: procs,
    clients,
    async close() {
      await clients.close();
      await Promise.all(procs.map((p) => p.close()));
    },
  };
}

async function redisCpu(redis) {
  const info = await redis.info("cpu");
  const get = (k) => Number((info.match(new RegExp(`${k}:([0-9.]+)`)) || [])[1] || 0);
  return (get("used_cpu_sys") + get("used_cpu_user")) * 1000; // ms
}

/** Snapshots of every named process, plus Redis CPU. */
async function markAll(procs, redis, reset) {
  const names = Object.keys(procs);
  const marks = await Promise.all(names.map((n) => procs[n].mark(reset)));
  const out = { redisCpuMs: await redisCpu(redis) };
  names.forEach((n, i) => (out[n] = marks[i]));
  return out;
}

const worst = (xs) =>
  xs.some((x) => x !== null) ? Math.max(...xs.filter((x) => x !== null)) : null;
const cpuMs = (a, b) => (b.cpu.user + b.cpu.system - a.cpu.user - a.cpu.system) / 1000;

/**
 * Credit-paced flow from `sender` to the clients (or raw subscribers) in `counters`:
 * returns the per-window metrics.
 */
async function measureFlow({
  sender,
  startMsg,
  counterProcs,
  receivers,
  paceOn,
  extraProcs,
  redis,
  timing,
}) {
  const pace = paceOn || receivers;
  // Credits: the least any receiving node's probe client has seen (summed over counter procs
  // when each is one receiver, as for raw subscribers).
  const latest = counterProcs.map(() => null);
  const minSeen = (sets = pace) => {
    let m = Infinity;
    counterProcs.forEach((_, ci) => {
      const probes = latest[ci];
      for (const r of sets[ci]) m = Math.min(m, probes ? probes[r] : 0);
    });
    return m;
  };
  const offs = counterProcs.map((p, ci) =>
    p.on((msg) => {
      if (msg.type !== "progress") return;
      latest[ci] = msg.probes;
      sender.send({ type: "credit", n: minSeen() });
    }),
  );
  try {
    await Promise.all(counterProcs.map((p) => p.request({ type: "reset" })));
    const maxMs = timing.warmupMs + timing.durationMs + 15000;
    await sender.request({ ...startMsg, type: "bcast-start", pump: { ...timing.pump, maxMs } });
    await sleep(timing.warmupMs);
    const procs = { sender, ...extraProcs };
    counterProcs.forEach((p, i) => (procs[`counter${i}`] = p));
    const m1 = await markAll(procs, redis, true);
    await sleep(timing.durationMs);
    const m2 = await markAll(procs, redis, false);
    const stop = await sender.request({ type: "bcast-stop" });
    // Drain: wait (bounded) for the receivers to catch up, to count losses.
    const drainUntil = Date.now() + 2000;
    while (minSeen() < stop.sent && Date.now() < drainUntil) await sleep(20);

    const c0 = "counter0";
    const dt = (m2[c0].t - m1[c0].t) / 1e6;
    let msgs = 0;
    let bcasts = Infinity;
    counterProcs.forEach((_, ci) => {
      const a = m1[`counter${ci}`].counters;
      const b = m2[`counter${ci}`].counters;
      for (const r of receivers[ci]) {
        msgs += b.totals[r] - a.totals[r];
        bcasts = Math.min(bcasts, b.probes[r] - a.probes[r]);
      }
    });
    const per1k = (name) => (bcasts > 0 ? cpuMs(m1[name], m2[name]) / (bcasts / 1000) : null);
    const lat = counterProcs.map((_, ci) => m2[`counter${ci}`].latency);
    const result = {
      seconds: dt,
      msgRate: msgs / dt,
      bcastRate: bcasts / dt,
      // the worst receiving process; null when no payload carried a timestamp
      p50: worst(lat.map((l) => l.p50)),
      p99: worst(lat.map((l) => l.p99)),
      senderCpu: per1k("sender"),
      redisCpu: bcasts > 0 ? (m2.redisCpuMs - m1.redisCpuMs) / (bcasts / 1000) : null,
      senderRss: m2.sender.rssPeak,
      counterCpu: per1k("counter0"),
      counterRss: m2.counter0.rssPeak,
      sent: stop.sent,
      lost: Math.max(0, stop.sent - minSeen(receivers)),
      window: timing.pump.window,
      stalls: stop.stalls,
    };
    for (const name of Object.keys(extraProcs)) {
      result[`${name}Cpu`] = per1k(name);
      result[`${name}Rss`] = m2[name].rssPeak;
    }
    return result;
  } finally {
    offs.forEach((off) => off());
  }
}

/**
 * Unconfirmed broadcasts allowed: bounded so that what can wait in the servers' socket
 * buffers stays around CLIENT_BUDGET client messages of 1 KiB, whatever the fan-out.
 */
const CLIENT_BUDGET = 30000;
function windowFor(socketsPerNode, payload, max) {
  const kib = Math.max(1, (payload.size + (payload.bufSize || 0)) / 1024);
  return Math.max(16, Math.min(max, Math.round(CLIENT_BUDGET / (3 * socketsPerNode) / kib)));
}

async function runBroadcast(cluster, sc, ctx) {
  const [sender, receiver, third] = cluster.nodes;
  const payload = PAYLOADS[sc.payload];
  const window = windowFor(cluster.socketsPerNode, payload, ctx.timing.windowCap(cluster.adapter));
  return measureFlow({
    sender,
    startMsg: { room: sc.room, payload },
    counterProcs: [cluster.clients],
    // Measured on the receiving nodes; paced on every node with members (the sender's
    // own clients included, so no socket buffer grows without bound).
    receivers: [sc.room ? [1] : [1, 2]],
    paceOn: [sc.room ? [0, 1] : [0, 1, 2]],
    extraProcs: sc.room ? { receiver, idle: third } : { receiver },
    redis: ctx.redis,
    timing: { ...ctx.timing, pump: { ...ctx.timing.pump, window } },
  });
}

const RAW_CHANNEL = "bench-raw";
const RAW_STREAM = "bench-raw-stream";
const EMITTER_KEY = "bench-emitter";

/**
 * Processes kept for a whole group: 2 raw subscribers (of the raw channel and of the
 * emitter's broadcast channel), the raw publisher, and one process per emitter.
 */
async function startHelpers(ctx, { emitter, sharded = false, stream = false }) {
  // sharded: SSUBSCRIBE / SPUBLISH; the emitter scenario never runs then (kinds.js)
  const channels = sharded ? [RAW_CHANNEL] : [RAW_CHANNEL, `${EMITTER_KEY}#/#`];
  const subs = [0, 1].map(
    (i) =>
      new Proc(
        "publisher.js",
        { role: "raw-sub", redisUrl: ctx.redisUrl, channels, sharded },
        { label: `raw sub ${i}` },
      ),
  );
  const rawPub = new Proc(
    "publisher.js",
    { role: "raw-pub", redisUrl: ctx.redisUrl, channel: RAW_CHANNEL, sharded },
    { label: "raw pub" },
  );
  // stream: 2 XREAD readers of RAW_STREAM and its XADD writer.
  const streamSubs = stream
    ? [0, 1].map(
        (i) =>
          new Proc(
            "publisher.js",
            { role: "raw-sub", redisUrl: ctx.redisUrl, channels: [RAW_STREAM], stream },
            { label: `raw stream reader ${i}` },
          ),
      )
    : [];
  const streamPub = stream
    ? new Proc(
        "publisher.js",
        { role: "raw-pub", redisUrl: ctx.redisUrl, channel: RAW_STREAM, stream },
        { label: "raw stream writer" },
      )
    : null;
  const emitters = {};
  if (emitter) {
    for (const which of ["official", "ours"]) {
      emitters[which] = new Proc(
        "publisher.js",
        { role: "emitter", which, redisUrl: ctx.redisUrl, key: EMITTER_KEY },
        { label: `${which} emitter` },
      );
    }
  }
  const all = [...subs, rawPub, ...streamSubs, ...(streamPub ? [streamPub] : [])];
  all.push(...Object.values(emitters));
  await Promise.all(all.map((p) => p.waitFor("ready")));
  return {
    subs,
    rawPub,
    streamSubs,
    streamPub,
    emitters,
    close: () => Promise.all(all.map((p) => p.close())),
  };
}

/** A publisher (raw node-redis, or an emitter) -> the 2 raw subscribers (`subs`). */
async function runToRawSubs(sender, sc, ctx, subs) {
  const r = await measureFlow({
    sender,
    startMsg: { payload: PAYLOADS[sc.payload] },
    counterProcs: subs,
    receivers: [[0], [0]],
    extraProcs: {},
    redis: ctx.redis,
    timing: ctx.timing,
  });
  // The first subscriber is "a receiving process".
  return { ...r, receiverCpu: r.counterCpu, receiverRss: r.counterRss };
}

const runRaw = (sc, ctx, helpers) =>
  sc.stream
    ? runToRawSubs(helpers.streamPub, sc, ctx, helpers.streamSubs)
    : runToRawSubs(helpers.rawPub, sc, ctx, helpers.subs);
const runEmitter = (sc, ctx, which, helpers) =>
  runToRawSubs(helpers.emitters[which], sc, ctx, helpers.subs);

async function runRequest(cluster, sc, ctx) {
  const [sender, responder] = cluster.nodes;
  const { warmupMs, durationMs } = ctx.timing;
  await sender.request({
    type: "req-start",
    kind: sc.op,
    timeoutMs: 5000,
    maxMs: warmupMs + durationMs + 15000,
    maxOps: 1e6,
  });
  await sleep(warmupMs);
  const procs = { sender, responder, clients: cluster.clients };
  const m1 = await markAll(procs, ctx.redis, true);
  await sleep(durationMs);
  const m2 = await markAll(procs, ctx.redis, false);
  const stop = await sender.request({ type: "req-stop" }, 20000);
  const dt = (m2.sender.t - m1.sender.t) / 1e6;
  const ops = m2.sender.counters.ops - m1.sender.counters.ops;
  const per1k = (n) => (ops > 0 ? cpuMs(m1[n], m2[n]) / (ops / 1000) : null);
  return {
    seconds: dt,
    opsRate: ops / dt,
    p50: m2.sender.latency.p50,
    p99: m2.sender.latency.p99,
    senderCpu: per1k("sender"),
    receiverCpu: per1k("responder"),
    redisCpu: ops > 0 ? (m2.redisCpuMs - m1.redisCpuMs) / (ops / 1000) : null,
    senderRss: m2.sender.rssPeak,
    receiverRss: m2.responder.rssPeak,
    errors: m2.sender.counters.opErrors - m1.sender.counters.opErrors,
    result: stop.lastResult,
  };
}

/**
 * raw-request.js processes, one asking and two answering, shaped like a cluster for
 * runRequest: node 0 asks, node 1 answers (its CPU is the responder's), the other answerer
 * stands where the clients' process does.
 */
async function startRequestFloor(ctx) {
  const ask = new Proc(
    "raw-request.js",
    { role: "ask", redisUrl: ctx.redisUrl, answerers: 2 },
    { label: "raw ask" },
  );
  const answerers = [0, 1].map(
    (i) =>
      new Proc(
        "raw-request.js",
        { role: "answer", redisUrl: ctx.redisUrl },
        { label: `raw answer ${i}` },
      ),
  );
  const all = [ask, ...answerers];
  await Promise.all(all.map((p) => p.waitFor("ready")));
  return {
    nodes: [ask, answerers[0]],
    clients: answerers[1],
    close: () => Promise.all(all.map((p) => p.close())),
  };
}

/** Median [min–max] of every numeric field over the rounds. */
function summarize(rounds) {
  const out = {};
  const keys = new Set(rounds.flatMap((r) => Object.keys(r)));
  for (const k of keys) {
    const vals = rounds.map((r) => r[k]);
    if (vals.some((v) => typeof v === "number")) out[k] = spread(vals);
    else out[k] = vals[vals.length - 1];
  }
  return out;
}

module.exports = {
  ROOM,
  RAW_ROUND_TRIP,
  NATIVE_ROUND_TRIP,
  PAYLOADS,
  scenarioGroups,
  startCluster,
  runBroadcast,
  runEmitter,
  runRaw,
  runRequest,
  startHelpers,
  startRequestFloor,
  RAW_STREAM_SCENARIO,
  summarize,
  markAll,
};
