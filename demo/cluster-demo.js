"use strict";
// Demo: 3 Socket.IO nodes in separate processes, joined through Redis by socket.io-redis-native,
// each serving a small chat page. Starts its own redis-server when none is reachable.
//
//   npm run demo                 non-interactive: checks that every node serves the chat page,
//                                that fetchSockets() sees the whole cluster and that a message
//                                sent on each node reaches every node, then exits (0 = OK)
//   npm run demo -- --serve      keeps the 3 nodes serving the chat page until Ctrl-C; open the
//                                printed URLs in two browser windows and chat across nodes
//   npm run demo -- --serve --port 3000    nodes on ports 3000, 3001, 3002 (default: free ports)
//   REDIS_URL=redis://host:port npm run demo    use that Redis
const { fork } = require("child_process");
const http = require("http");
const path = require("path");
const { redisForDemo } = require("./redis-for-demo");

const NODES = ["alpha", "beta", "gamma"];
const serve = process.argv.includes("--serve");
const portIndex = process.argv.indexOf("--port");
const basePort = portIndex >= 0 ? Number(process.argv[portIndex + 1]) : 0;

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

function fetchPage(port) {
  return new Promise((resolve, reject) => {
    http
      .get(`http://127.0.0.1:${port}/`, (res) => {
        let body = "";
        res.on("data", (d) => (body += d));
        res.on("end", () => resolve({ status: res.statusCode, body }));
      })
      .on("error", reject);
  });
}

async function stopAll(children, redis) {
  const exited = children.map((c) =>
    c.exitCode !== null || c.signalCode !== null
      ? Promise.resolve()
      : new Promise((r) => c.once("exit", r)),
  );
  for (const c of children) if (c.connected) c.send({ type: "stop" });
  await Promise.all(exited);
  redis.stop();
}

async function selfCheck(children, ready) {
  for (const r of ready) {
    const page = await fetchPage(r.port);
    if (page.status !== 200 || !page.body.includes("socket.io-redis-native chat")) {
      throw new Error(`node ${r.node} did not serve the chat page (HTTP ${page.status})`);
    }
  }
  console.log("every node serves the chat page");

  children[0].send({ type: "count" });
  const [count] = await waitFor(children, "count", 1);
  if (count.error) throw new Error(`fetchSockets() on ${count.node} failed: ${count.error}`);
  console.log(`fetchSockets() on ${count.node} sees ${count.sockets} sockets across the cluster`);

  const received = waitFor(children, "received", NODES.length * NODES.length);
  NODES.forEach((name, i) => children[i].send({ type: "say", text: `hello from ${name}` }));
  let timer;
  const timeout = new Promise((_, reject) => {
    timer = setTimeout(
      () => reject(new Error("not every message reached every node within 10 s")),
      10000,
    );
  });
  const messages = await Promise.race([received, timeout]);
  clearTimeout(timer);
  for (const m of messages) {
    console.log(`  ${m.node} received "${m.msg.text}" (sent via ${m.msg.node})`);
  }
  const perNode = NODES.map((n) => messages.filter((m) => m.node === n).length);
  console.log(`each node received ${perNode.join(" / ")} of ${NODES.length} messages`);
}

async function main() {
  const redis = await redisForDemo();
  console.log(`Redis: ${redis.url}${redis.started ? " (started for this demo)" : ""}`);
  const children = NODES.map((name, i) =>
    fork(
      path.join(__dirname, "node.js"),
      [name, redis.url, String(basePort ? basePort + i : 0), ...(serve ? [] : ["--probe"])],
      { stdio: "inherit" },
    ),
  );
  const ready = await waitFor(children, "ready", NODES.length);
  for (const r of ready) console.log(`node ${r.node}: chat page at http://localhost:${r.port}/`);

  if (serve) {
    console.log("open two of these URLs in a browser and chat across nodes; Ctrl-C to stop");
    for (const sig of ["SIGINT", "SIGTERM"]) {
      process.once(sig, () => {
        console.log("stopping");
        stopAll(children, redis).then(() => process.exit(0));
      });
    }
    return;
  }
  try {
    await selfCheck(children, ready);
  } finally {
    await stopAll(children, redis);
  }
  console.log("demo OK");
}

main().catch((e) => {
  console.error(`FAILED: ${e.message}`);
  process.exit(1);
});
