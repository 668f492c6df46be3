"use strict";

// One Socket.IO server on a native adapter (classic, sharded or streams) created from a URL,
// with one connected client: for tests that need to point each node at its own address (a
// proxy, a TLS port) rather than the shared setup of helpers/cluster.js.

const http = require("http");
const { Server } = require("socket.io");
const { io: ioc } = require("socket.io-client");

const FACTORIES = {
  classic: (url, opts) => require("../..").createAdapter(url, undefined, opts),
  sharded: (url, opts) => require("../..").createShardedAdapter(url, undefined, opts),
  streams: (url, opts) => require("../../streams").createAdapter(url, opts),
};

/** @returns {Promise<{io, client, adapter(), metrics(), close()}>} */
async function startNode(kind, url, opts) {
  const httpServer = http.createServer();
  const io = new Server(httpServer, { adapter: FACTORIES[kind](url, opts) });
  await new Promise((resolve) => httpServer.listen(0, "127.0.0.1", resolve));
  const client = ioc(`http://127.0.0.1:${httpServer.address().port}`, {
    forceNew: true,
    transports: ["websocket"],
    reconnection: false,
  });
  try {
    await new Promise((resolve, reject) => {
      client.once("connect", resolve);
      client.once("connect_error", reject);
    });
  } catch (err) {
    client.disconnect();
    await new Promise((resolve) => io.close(() => resolve()));
    throw err;
  }
  return {
    io,
    client,
    adapter: () => io.of("/").adapter,
    metrics: () => io.of("/").adapter.metrics(),
    async close() {
      client.disconnect();
      await new Promise((resolve) => io.close(() => resolve()));
    },
  };
}

module.exports = { FACTORIES, startNode };
