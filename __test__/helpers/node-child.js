"use strict";

// A Socket.IO node in its own process, driven over IPC by a test: `node-child.js <kind> <url>
// <name> [adapterOptionsJson]`. It connects one client to itself, answers `whoami` server-side
// emits with its name, and on `{ block: ms }` busy-waits (a stuck event loop) so that it can be
// killed while a request waits for it, or flooded (`untilFile`: also stops when that file
// exists); it reports its RSS the moment the loop is
// free again (before anything queued meanwhile ran). On `{ report: true }` it sends the events
// its client received (per name, and whether numbered ones came in order), the adapter's
// metrics and its RSS.

const fs = require("fs");
const { startNode } = require("./single-node");

const [kind, url, name, optsJson] = process.argv.slice(2);

startNode(kind, url, JSON.parse(optsJson || "{}")).then(
  (node) => {
    node.io.on("whoami", (cb) => cb(name));
    const received = {};
    // per event: whether numbered events (first argument 0, 1, 2, ...) came each once, in order
    const receivedOrder = {};
    node.client.onAny((event, first) => {
      const n = received[event] || 0;
      if (typeof first === "number")
        receivedOrder[event] = (receivedOrder[event] ?? true) && first === n;
      received[event] = n + 1;
    });
    process.on("message", (msg) => {
      if (msg.block) {
        process.send({ blocking: true });
        const until = Date.now() + msg.block;
        // deliberately stuck, until the deadline or until the test creates `msg.untilFile`
        while (Date.now() < until && !(msg.untilFile && fs.existsSync(msg.untilFile)));
        process.send({ unblocked: true, rss: process.memoryUsage().rss });
      }
      if (msg.report) {
        process.send({
          report: {
            received,
            receivedOrder,
            metrics: node.metrics(),
            rss: process.memoryUsage().rss,
          },
        });
      }
    });
    process.send({ ready: true, sid: node.client.id });
  },
  (err) => {
    console.error(err);
    process.exit(1);
  },
);
