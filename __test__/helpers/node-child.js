"use strict";

// A Socket.IO node in its own process, driven over IPC by a test: `node-child.js <kind> <url>
// <name> [adapterOptionsJson]`. It connects one client to itself, answers `whoami` server-side
// emits with its name, and on `{ block: ms }` busy-waits (a stuck event loop) so that it can be
// killed while a request waits for it, or flooded (`untilFile`: also stops when that file
// exists); it reports its RSS the moment the loop is
// free again (before anything queued meanwhile ran). On `{ report: true }` it sends the events
// its client received (per name), the adapter's metrics and its RSS.

const fs = require("fs");
const { startNode } = require("./single-node");

const [kind, url, name, optsJson] = process.argv.slice(2);

startNode(kind, url, JSON.parse(optsJson || "{}")).then(
  (node) => {
    node.io.on("whoami", (cb) => cb(name));
    const received = {};
    node.client.onAny((event) => (received[event] = (received[event] || 0) + 1));
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
          report: { received, metrics: node.metrics(), rss: process.memoryUsage().rss },
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
