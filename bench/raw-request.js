"use strict";
// The floor of a request/response round trip through Redis pub/sub, without Socket.IO or any
// adapter: an asking process PUBLISHes a request, each answering process (SUBSCRIBEd with
// node-redis, reading its socket on the event loop) PUBLISHes an answer back at once, and the
// round trip ends when every answer is in. That is the least any adapter pays for
// serverSideEmitWithAck (one request leg, one answer leg); the official adapter also counts
// the nodes first (PUBSUB NUMSUB, one more round trip).
//
// Speaks the request protocol of node.js (req-start / req-stop, ops and latency in marks), so
// scenarios.js runRequest measures it like an adapter's requests.
//
// argv[2]: JSON { role: "ask" | "answer", redisUrl, answerers? (ask) }

const { createClient } = require("redis");
const { runChild, send } = require("./child-common");
const { Reservoir } = require("./stats");

const cfg = JSON.parse(process.argv[2]);
const REQUESTS = "bench-raw-request";
const ANSWERS = "bench-raw-answer";

async function clients() {
  const pub = createClient({ url: cfg.redisUrl });
  const sub = pub.duplicate();
  for (const c of [pub, sub]) c.on("error", (e) => console.error(`[raw ${cfg.role}] ${e.message}`));
  await Promise.all([pub.connect(), sub.connect()]);
  return { pub, sub };
}

async function answer() {
  const { pub, sub } = await clients();
  await sub.subscribe(REQUESTS, (message) => {
    pub.publish(ANSWERS, message).catch(() => {});
  });
  runChild({
    counters: () => ({}),
    async onMessage(msg) {
      if (msg.type !== "close") throw new Error(`unknown message ${msg.type}`);
      send({ type: "ok", id: msg.id });
      await Promise.allSettled([pub.quit(), sub.quit()]);
      process.exit(0);
    },
  });
  send({ type: "ready" });
}

async function ask() {
  const { pub, sub } = await clients();
  const latency = new Reservoir(1 << 16); // milliseconds
  let ops = 0;
  let opErrors = 0;
  let waiting = null; // { id, left, resolve }
  let nextId = 0;
  await sub.subscribe(ANSWERS, (message) => {
    if (waiting && message === waiting.id && --waiting.left === 0) waiting.resolve();
  });
  const roundTrip = () =>
    new Promise((resolve, reject) => {
      const id = String(++nextId);
      waiting = { id, left: cfg.answerers, resolve };
      setTimeout(() => reject(new Error("timeout")), 5000).unref();
      pub.publish(REQUESTS, id).catch(reject);
    });
  let loop = null;
  async function run(maxMs) {
    const start = Date.now();
    while (loop.running && Date.now() - start < maxMs) {
      const t0 = process.hrtime.bigint();
      try {
        await roundTrip();
        latency.add(Number(process.hrtime.bigint() - t0) / 1e6);
        ops++;
      } catch {
        opErrors++;
      }
    }
  }
  runChild({
    counters: () => ({ ops, opErrors, lastResult: cfg.answerers }),
    onMark: (reset) => {
      const out = { latency: latency.summary() };
      if (reset) latency.reset();
      return out;
    },
    async onMessage(msg) {
      switch (msg.type) {
        case "req-start":
          ops = 0;
          opErrors = 0;
          latency.reset();
          loop = { running: true };
          loop.done = run(msg.maxMs);
          return send({ type: "ok", id: msg.id });
        case "req-stop":
          if (loop) {
            loop.running = false;
            await loop.done;
          }
          return send({ type: "ok", id: msg.id, ops, opErrors, lastResult: cfg.answerers });
        case "close":
          send({ type: "ok", id: msg.id });
          await Promise.allSettled([pub.quit(), sub.quit()]);
          return process.exit(0);
        default:
          throw new Error(`unknown message ${msg.type}`);
      }
    },
  });
  send({ type: "ready" });
}

(cfg.role === "ask" ? ask() : answer()).catch((e) => {
  console.error(`[bench raw ${cfg.role}]`, e);
  process.exit(1);
});
