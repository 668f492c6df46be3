"use strict";
// Demo: 3 Socket.IO nodes in separate processes exchange chat messages through Redis with
// socket.io-redis-native. Starts its own redis-server when none is reachable.
// Usage: npm run demo   (REDIS_URL=redis://host:port to use a given Redis)
const { fork } = require("child_process");
const path = require("path");
const { redisForDemo } = require("./redis-for-demo");

const NODES = ["alpha", "beta", "gamma"];

function waitFor(children, type, count) {
  return new Promise((resolve) => {
    const seen = [];
    const onMessage = (m) => {
      if (m.type !== type) return;
      seen.push(m);
      if (seen.length === count) {
        for (const c of children) c.off("message", onMessage);
        resolve(seen);
      }
    };
    for (const c of children) c.on("message", onMessage);
  });
}

async function main() {
  const redis = await redisForDemo();
  console.log(`Redis: ${redis.url}${redis.started ? " (started for this demo)" : ""}`);
  const children = NODES.map((name) =>
    fork(path.join(__dirname, "node.js"), [name, redis.url], { stdio: "inherit" }),
  );
  const ready = await waitFor(children, "ready", NODES.length);
  for (const r of ready) console.log(`node ${r.node} listening on port ${r.port}`);

  children[0].send({ type: "count" });
  const [count] = await waitFor(children, "count", 1);
  console.log(`fetchSockets() on ${count.node} sees ${count.sockets} sockets across the cluster`);

  const received = waitFor(children, "received", NODES.length * NODES.length);
  NODES.forEach((name, i) => children[i].send({ type: "say", text: `hello from ${name}` }));
  const timer = setTimeout(() => {
    console.error("FAILED: not every message reached every node within 10 s");
    process.exit(1);
  }, 10000);
  const messages = await received;
  clearTimeout(timer);
  for (const m of messages)
    console.log(`  ${m.node} received "${m.msg.text}" (sent via ${m.msg.from})`);
  const perNode = NODES.map((n) => messages.filter((m) => m.node === n).length);
  console.log(`each node received ${perNode.join(" / ")} of ${NODES.length} messages`);

  for (const c of children) c.send({ type: "stop" });
  await Promise.all(children.map((c) => new Promise((r) => c.on("exit", r))));
  redis.stop();
  console.log("demo OK");
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
