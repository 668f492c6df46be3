"use strict";
// Request latency probe: serverSideEmitWithAck between 2 socket.io servers in separate
// processes (this one asks, a child answers), ours vs official, sequential, p50/p90.
// Usage: node bench/request-probe.js redis://127.0.0.1:PORT [official|ours] [N]
const { fork } = require("child_process");
const { Server } = require("socket.io");
const url = process.argv[2];
const kind = process.argv[3] || "ours";
const N = Number(process.argv[4] || 3000);

async function adapterFor(key) {
  if (kind === "ours") return require("..").createAdapter(url, undefined, { key });
  const { createClient } = require("redis");
  const pub = createClient({ url });
  const sub = pub.duplicate();
  await Promise.all([pub.connect(), sub.connect()]);
  return require("@socket.io/redis-adapter").createAdapter(pub, sub, { key });
}

async function main() {
  const key = `probe-${kind}`;
  const io = new Server({ adapter: await adapterFor(key) });
  if (process.argv[5] === "child") {
    io.on("ping", (cb) => cb("pong"));
    process.send("ready");
    setInterval(() => {}, 1000); // the adapter holds no handle that keeps a process alive
    return;
  }
  const child = fork(__filename, [url, kind, String(N), "child"]);
  await new Promise((r) => child.once("message", r));
  while ((await io.serverSideEmitWithAck("ping").catch(() => [])).length < 1) {
    await new Promise((r) => setTimeout(r, 50));
  }
  const times = [];
  for (let i = 0; i < N + 200; i++) {
    const t = process.hrtime.bigint();
    await io.serverSideEmitWithAck("ping");
    if (i >= 200) times.push(Number(process.hrtime.bigint() - t) / 1000);
  }
  times.sort((a, b) => a - b);
  const q = (p) => times[Math.floor(p * times.length)].toFixed(0);
  console.log(`${kind}: p50 ${q(0.5)} µs, p90 ${q(0.9)} µs, p99 ${q(0.99)} µs`);
  child.kill();
  io.close();
  process.exit(0);
}
main();
