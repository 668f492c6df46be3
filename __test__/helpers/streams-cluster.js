"use strict";

// Socket.IO servers on the streams adapter: native (socket.io-redis-native/streams) or official
// (@socket.io/redis-streams-adapter 0.3 with node-redis), one client per server.

const http = require("http");
const { Server } = require("socket.io");
const { io: ioc } = require("socket.io-client");
const { waitUntil } = require("./redis");

const noop = () => {};

async function makeAdapter(kind, url, opts) {
  if (kind === "native") {
    const { createAdapter } = require("../../streams");
    return { adapter: createAdapter(url, opts), close: async () => {} };
  }
  const { createAdapter } = require("@socket.io/redis-streams-adapter");
  const { createClient } = require("redis");
  const client = createClient({ url });
  client.on("error", noop);
  await client.connect();
  return {
    adapter: createAdapter(client, opts),
    close: async () => {
      try {
        await client.quit();
      } catch (_) {
        client.destroy?.();
      }
    },
  };
}

/** Readers blocked in XREAD on the server: every stream of every node is being read. */
async function xreadClients(redis) {
  const list = await redis.cli(["CLIENT", "LIST"]);
  return list.split("\n").filter((l) => /cmd=xread\b/.test(l)).length;
}

/**
 * @param {object} o
 * @param {object} o.redis startRedis() handle
 * @param {string[]} o.nodes "native" | "official"
 * @param {object} [o.opts] adapter options
 * @param {object} [o.serverOpts] socket.io Server options
 * @param {string[]} [o.namespaces] namespaces each server's client connects to (default ["/"])
 */
async function createStreamsCluster(o) {
  const ctx = { servers: [], httpServers: [], made: [], clients: {}, serverSockets: {}, ports: [] };
  const namespaces = o.namespaces || ["/"];
  const streamCount = (o.opts && o.opts.streamCount) || 1;
  for (const nsp of namespaces) {
    ctx.clients[nsp] = [];
    ctx.serverSockets[nsp] = [];
  }
  for (const kind of o.nodes) {
    const made = await makeAdapter(kind, o.redis.url, o.opts);
    ctx.made.push(made);
    const httpServer = http.createServer();
    const io = new Server(httpServer, { adapter: made.adapter, ...o.serverOpts });
    ctx.servers.push(io);
    ctx.httpServers.push(httpServer);
    await new Promise((r) => httpServer.listen(0, "127.0.0.1", r));
    ctx.ports.push(httpServer.address().port);
  }
  for (const nsp of namespaces) {
    for (let i = 0; i < ctx.servers.length; i++) {
      const io = ctx.servers[i];
      const connected = new Promise((r) => io.of(nsp).once("connection", r));
      const client = ioc(`http://127.0.0.1:${ctx.ports[i]}${nsp}`, {
        transports: ["websocket"],
        forceNew: true,
      });
      ctx.clients[nsp].push(client);
      ctx.serverSockets[nsp].push(await connected);
    }
  }
  // Every node subscribed its channels and every stream is read by every node.
  for (const nsp of namespaces) {
    await waitUntil(
      async () => (await ctx.servers[0].of(nsp).adapter.serverCount()) === ctx.servers.length,
      { what: `NUMSUB of ${nsp}` },
    );
  }
  const readers = ctx.servers.length * streamCount;
  await waitUntil(async () => (await xreadClients(o.redis)) >= readers, {
    what: `${readers} blocked XREAD readers`,
  });
  ctx.closeAll = async () => {
    for (const nsp of namespaces) for (const c of ctx.clients[nsp]) c.disconnect();
    for (const io of ctx.servers) io.close();
    for (const made of ctx.made) await made.close();
  };
  return ctx;
}

/** Collects the arguments of `event` on each emitter. */
function record(emitters, event) {
  return emitters.map((e) => {
    const got = [];
    e.on(event, (...args) => got.push(args));
    return got;
  });
}

function waitForCount(got, n, timeout = 5000) {
  return waitUntil(() => got.length >= n, { timeout, what: `${n} events (got ${got.length})` });
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

module.exports = { createStreamsCluster, record, waitForCount, sleep, xreadClients };
