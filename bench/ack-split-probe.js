"use strict";
// Where a serverSideEmitWithAck round trip goes: 1 asking process and NR answering ones
// (default 2), ours or the official adapter, sequential. Each answer carries the answering
// handler's process.hrtime (CLOCK_MONOTONIC, shared by the processes), which splits the round
// trip into the request leg (emit -> last handler called) and the answer leg (that handler ->
// ack). With `floor` instead of an adapter, the same exchange with bare node-redis PUBLISH /
// SUBSCRIBE and no socket.io: what any adapter reading its socket on the event loop pays.
// Usage: node bench/ack-split-probe.js redis://127.0.0.1:PORT ours|official|floor [N]
const { fork } = require("child_process");
const { createClient } = require("redis");
const url = process.argv[2];
const kind = process.argv[3] || "ours";
const N = Number(process.argv[4] || 3000);
const NR = Number(process.env.NR || 2);
const now = () => Number(process.hrtime.bigint() / 1000n);

async function clients() {
  const pub = createClient({ url });
  const sub = pub.duplicate();
  await Promise.all([pub.connect(), sub.connect()]);
  return { pub, sub };
}

/** An `ask(t0)` that resolves with the answering handlers' times. */
async function asker() {
  if (kind === "floor") {
    const { pub, sub } = await clients();
    let waiting = null;
    let got = [];
    await sub.subscribe("floor-ans", (m) => {
      got.push(Number(m));
      if (got.length === NR) waiting(got);
    });
    return (t0) =>
      new Promise((resolve) => {
        got = [];
        waiting = resolve;
        pub.publish("floor-req", String(t0));
      });
  }
  const io = await server();
  return (t0) => io.serverSideEmitWithAck("ping", t0);
}

async function server() {
  const { Server } = require("socket.io");
  const key = `ack-split-${kind}`;
  let adapter;
  if (kind === "ours") adapter = require("..").createAdapter(url, undefined, { key });
  else {
    const { pub, sub } = await clients();
    adapter = require("@socket.io/redis-adapter").createAdapter(pub, sub, { key });
  }
  return new Server({ adapter });
}

async function answer() {
  if (kind === "floor") {
    const { pub, sub } = await clients();
    await sub.subscribe("floor-req", () => pub.publish("floor-ans", String(now())));
  } else {
    const io = await server();
    io.on("ping", (t0, cb) => cb(now()));
  }
  process.send("ready");
  setInterval(() => {}, 1000); // the adapter holds no handle that keeps a process alive
}

function p50(values) {
  values.sort((a, b) => a - b);
  return values[values.length >> 1];
}

async function main() {
  if (process.argv[5] === "child") return answer();
  const kids = [];
  for (let i = 0; i < NR; i++) kids.push(fork(__filename, [url, kind, String(N), "child"]));
  await Promise.all(kids.map((c) => new Promise((r) => c.once("message", r))));
  const ask = await asker();
  while ((await ask(0).catch(() => [])).length < NR) await new Promise((r) => setTimeout(r, 50));
  const total = [];
  const request = [];
  const answerLeg = [];
  for (let i = 0; i < N + 200; i++) {
    const t0 = now();
    const handled = Math.max(...(await ask(t0)));
    const t1 = now();
    if (i < 200) continue;
    total.push(t1 - t0);
    request.push(handled - t0);
    answerLeg.push(t1 - handled);
  }
  console.log(
    `${kind} (${NR} answering): p50 round trip ${p50(total)} µs = request leg ${p50(request)} + answer leg ${p50(answerLeg)} µs`,
  );
  kids.forEach((c) => c.kill());
  process.exit(0);
}
main();
