"use strict";
// One Socket.IO server of a bench cluster, in its own process, with either the official
// adapter of its kind (node-redis v5 clients) or socket.io-redis-native (kinds.js). Driven by the
// orchestrator over IPC: it broadcasts (credit-paced) or runs request/response operations,
// and answers "mark" snapshots (CPU, RSS, counters, latency).
//
// argv[2]: JSON { kind: "classic" | "sharded" | "streams", adapter: "official" | "ours", redisUrl, key, name }

const http = require("http");
const { Server } = require("socket.io");
const { runChild, send, CreditPump } = require("./child-common");
const { Reservoir, nowUs } = require("./stats");
const { makeAdapter } = require("./kinds");

const cfg = JSON.parse(process.argv[2]);

function makePayload(spec) {
  const text = "x".repeat(spec.size);
  const buf = spec.bufSize ? Buffer.alloc(spec.bufSize, 7) : null;
  return { text, buf };
}

async function main() {
  const { adapter, close = async () => {} } = await makeAdapter(cfg);
  const server = http.createServer();
  const io = new Server(server, { adapter, serveClient: false, transports: ["websocket"] });
  await io.of("/").adapter.init?.();

  io.on("connection", (socket) => {
    const room = socket.handshake.auth && socket.handshake.auth.room;
    if (room) socket.join(room);
  });
  // serverSideEmit with ack: answer with what was sent.
  io.on("bench-sse", (t, cb) => {
    if (typeof cb === "function") cb(t);
  });

  let pump = null;
  let reqLoop = null;
  let ops = 0;
  let opErrors = 0;
  let lastResult = null;
  const latency = new Reservoir(1 << 16); // milliseconds

  async function runRequests(kind, timeoutMs, maxMs, maxOps) {
    const start = Date.now();
    reqLoop.running = true;
    while (reqLoop.running && Date.now() - start < maxMs && ops < maxOps) {
      const t0 = process.hrtime.bigint();
      try {
        if (kind === "fetchSockets") {
          const sockets = await io.fetchSockets();
          lastResult = sockets.length;
        } else if (kind === "fetchSocketsHandshakes") {
          // As an application that reads every remote handshake (ours parses them on use).
          const sockets = await io.fetchSockets();
          let headers = 0;
          for (const socket of sockets) headers += Object.keys(socket.handshake.headers).length;
          lastResult = headers > 0 ? sockets.length : -1;
        } else if (kind === "serverSideEmitAck") {
          // Namespace#serverSideEmitWithAck: the adapter's requestsTimeout (5 s) applies.
          const responses = await io.serverSideEmitWithAck("bench-sse", nowUs());
          lastResult = responses.length;
        } else if (kind === "broadcastAck") {
          const responses = await io.timeout(timeoutMs).emitWithAck("a", nowUs());
          lastResult = responses.length;
        } else throw new Error(`unknown request kind ${kind}`);
        latency.add(Number(process.hrtime.bigint() - t0) / 1e6);
        ops++;
      } catch (e) {
        opErrors++;
        lastResult = e.message;
      }
    }
  }

  runChild({
    counters: () => ({
      sent: pump ? pump.sent : 0,
      stalls: pump ? pump.stalls : 0,
      ops,
      opErrors,
      lastResult,
    }),
    onMark: (reset) => {
      const out = { latency: latency.summary() };
      const adapterMetrics = io.of("/").adapter.metrics; // ours only: counters of the Rust core
      if (typeof adapterMetrics === "function")
        out.metrics = adapterMetrics.call(io.of("/").adapter);
      if (reset) latency.reset();
      return out;
    },
    async onMessage(msg) {
      switch (msg.type) {
        case "bcast-start": {
          const { text, buf } = makePayload(msg.payload);
          const target = () => (msg.room ? io.to(msg.room) : io);
          const emitOne = buf
            ? () => target().emit("m", nowUs(), text, buf)
            : () => target().emit("m", nowUs(), text);
          pump = new CreditPump(emitOne, msg.pump);
          pump.start();
          send({ type: "ok", id: msg.id });
          break;
        }
        case "credit":
          if (pump) pump.credit(msg.n);
          break;
        case "bcast-stop": {
          if (pump) await pump.stop();
          send({
            type: "ok",
            id: msg.id,
            sent: pump ? pump.sent : 0,
            stalls: pump ? pump.stalls : 0,
          });
          break;
        }
        case "peers": {
          // How many other nodes answer a serverSideEmit with ack: all of them once every
          // node listens (and, for streams, reads the stream). Errors count as none.
          const answered = await io.serverSideEmitWithAck("bench-sse", 0).then(
            (responses) => responses.length,
            () => 0,
          );
          send({ type: "ok", id: msg.id, answered });
          break;
        }
        case "req-start": {
          ops = 0;
          opErrors = 0;
          latency.reset();
          reqLoop = { running: true };
          reqLoop.done = runRequests(msg.kind, msg.timeoutMs, msg.maxMs, msg.maxOps);
          send({ type: "ok", id: msg.id });
          break;
        }
        case "req-stop": {
          if (reqLoop) {
            reqLoop.running = false;
            await reqLoop.done;
          }
          send({ type: "ok", id: msg.id, ops, opErrors, lastResult });
          break;
        }
        case "close": {
          io.close();
          await close().catch(() => {});
          send({ type: "ok", id: msg.id });
          setTimeout(() => process.exit(0), 50);
          break;
        }
        default:
          throw new Error(`unknown message ${msg.type}`);
      }
    },
  });

  await new Promise((resolve) => server.listen(0, "127.0.0.1", resolve));
  send({ type: "ready", port: server.address().port });
}

main().catch((e) => {
  console.error(`[bench node ${cfg.name}]`, e);
  process.exit(1);
});
