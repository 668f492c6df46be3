"use strict";

// Standalone scenario run in a child process by resilience.test.js:
// create an adapter while Redis is down, use every API once, and report the
// unhandled rejections / uncaught exceptions seen by the *real* process (the
// jest sandbox does not expose them to test code).
//
// usage: node redis-down-scenario.js <official-node-redis-v5|native-url|native-ioredis> <port>

const http = require("http");
const { Server } = require("socket.io");
const { io: ioc } = require("socket.io-client");

const [kind, port] = process.argv.slice(2);
const url = `redis://127.0.0.1:${port}`;
const report = {
  unhandled: [],
  uncaught: [],
  localDelivered: false,
  localFetch: null,
  created: false,
};

process.on("unhandledRejection", (reason) =>
  report.unhandled.push(String((reason && reason.message) || reason)),
);
process.on("uncaughtException", (err) => report.uncaught.push(String((err && err.message) || err)));

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const noop = () => {};

function makeAdapter() {
  if (kind === "official-node-redis-v5") {
    const { createAdapter } = require("@socket.io/redis-adapter");
    const { createClient } = require("redis");
    // never connected: Redis is down
    const pub = createClient({ url });
    const sub = pub.duplicate();
    pub.on("error", noop);
    sub.on("error", noop);
    return createAdapter(pub, sub, { requestsTimeout: 500 });
  }
  const { createAdapter } = require("../..");
  if (kind === "native-url") return createAdapter(url, undefined, { requestsTimeout: 500 });
  if (kind === "native-ioredis") {
    const { Redis } = require("ioredis");
    const pub = new Redis(url, { maxRetriesPerRequest: 1, retryStrategy: () => 200 });
    const sub = pub.duplicate();
    pub.on("error", noop);
    sub.on("error", noop);
    return createAdapter(pub, sub, { requestsTimeout: 500 });
  }
  throw new Error(`unknown kind ${kind}`);
}

(async () => {
  const httpServer = http.createServer();
  const io = new Server(httpServer, { adapter: makeAdapter() });
  report.created = true;
  await new Promise((r) => httpServer.listen(0, "127.0.0.1", r));
  const client = ioc(`http://127.0.0.1:${httpServer.address().port}`, {
    transports: ["websocket"],
    reconnection: false,
  });
  client.on("ev", () => (report.localDelivered = true));
  client.on("ack-ev", (cb) => cb("ok"));
  await new Promise((r) => client.once("connect", r));

  io.emit("ev", 1);
  io.to("room").emit("ev", 2);
  report.localFetch = (await io.local.fetchSockets().catch((e) => e.message)).length;
  io.fetchSockets().catch(noop);
  io.of("/").adapter.allRooms().catch(noop);
  io.serverSideEmit("a", 1);
  io.serverSideEmit("b", noop);
  io.socketsJoin("r");
  io.socketsLeave("r");
  io.timeout(300).emit("ack-ev", noop);
  io.of("/custom"); // a second namespace while down
  await sleep(2500);

  client.disconnect();
  await new Promise((r) => io.close(() => r()));
  await sleep(200);
  process.stdout.write(`REPORT ${JSON.stringify(report)}\n`);
  process.exit(0);
})().catch((err) => {
  report.fatal = String(err && err.stack);
  process.stdout.write(`REPORT ${JSON.stringify(report)}\n`);
  process.exit(1);
});
