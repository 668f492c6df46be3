"use strict";

// Socket.IO servers on the streams adapter: native (socket.io-redis-native/streams) or official
// (@socket.io/redis-streams-adapter 0.3), one client per server, on a standalone Redis
// (startRedis) or a Redis Cluster (startCluster).

const http = require("http");
const { Server } = require("socket.io");
const { io: ioc } = require("socket.io-client");
const { waitUntil, cli } = require("./redis");
const { clientMakers } = require("./cluster");
const { officialOnlyStreamFor } = require("../../lib/emitter-wire");

/** Redis handle → what the client makers take: a URL, or the URLs of a cluster. */
const targetOf = (redis) => redis.urls || redis.url;

/** "native" | "official" | {type, clientKind} → {type, clientKind}. */
function toSpec(spec, redis) {
  const clientKind = redis.urls ? "node-redis-v5-cluster" : "node-redis-v5";
  return typeof spec === "string" ? { type: spec, clientKind } : { clientKind, ...spec };
}

async function makeAdapter(spec, redis, opts) {
  if (spec.type === "native" && !redis.urls && spec.clientKind === "node-redis-v5") {
    // a URL: the native adapter only reads connection settings anyway
    const { createAdapter } = require("../../streams");
    return { adapter: createAdapter(redis.url, opts), close: async () => {} };
  }
  const pair = await clientMakers[spec.clientKind](targetOf(redis));
  const { createAdapter } =
    spec.type === "native" ? require("../../streams") : require("@socket.io/redis-streams-adapter");
  try {
    return { adapter: createAdapter(pair.pub, opts), close: pair.close };
  } catch (e) {
    await pair.close();
    throw e;
  }
}

/** Readers blocked in XREAD on the server(s): every stream of every node is being read. */
async function xreadClients(redis) {
  let count = 0;
  for (const node of redis.nodes || [redis]) {
    if (node.isRunning && !node.isRunning()) continue;
    const list = await cli(node.port, ["CLIENT", "LIST"]);
    count += list.split("\n").filter((l) => /cmd=xread\b/.test(l)).length;
  }
  return count;
}

/**
 * @param {object} o
 * @param {object} o.redis startRedis() or startCluster() handle
 * @param {Array} o.nodes "native" | "official" | {type, clientKind} (helpers/cluster.js kinds)
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
  for (const spec of o.nodes) {
    const made = await makeAdapter(toSpec(spec, o.redis), o.redis, o.opts);
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
  // our nodes also read the official stream of each namespace with a negative hash
  const streamName = (o.opts && o.opts.streamName) || "socket.io";
  const officialOnly = new Set(
    namespaces.map((nsp) => officialOnlyStreamFor(nsp, streamName, streamCount)).filter(Boolean),
  );
  const natives = o.nodes.filter((spec) => toSpec(spec, o.redis).type === "native").length;
  const readers = ctx.servers.length * streamCount + natives * officialOnly.size;
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

/** A client of the server on `port` (no automatic reconnection); resolves once connected. */
async function connectClient(port, nsp = "/", opts = {}) {
  const client = ioc(`http://127.0.0.1:${port}${nsp}`, {
    transports: ["websocket"],
    forceNew: true,
    reconnection: false,
    ...opts,
  });
  await new Promise((r) => client.on("connect", r));
  return client;
}

/**
 * What socket.io-client does when it reconnects after a lost connection, but to the server on
 * `port` (another node): a new client sending the old one's pid and last offset. `onEvents`
 * registers the listeners before the missed packets arrive.
 */
function reconnectWithSession(client, port, nsp = "/", onEvents = () => {}) {
  const again = ioc(`http://127.0.0.1:${port}${nsp}`, {
    transports: ["websocket"],
    forceNew: true,
    reconnection: false,
    auth: client.auth,
  });
  // set before the CONNECT packet goes out (on the next ticks)
  again._pid = client._pid;
  again._lastOffset = client._lastOffset;
  onEvents(again);
  return new Promise((resolve) => again.on("connect", () => resolve(again)));
}

/**
 * Reconnects `client` (whose socket `sid` left with its session persisted) to the server on
 * `port` and asserts the recovery: `recovered`, the same id, and exactly `expected` as the
 * first arguments of the missed "ev" events, in order. Resolves with the new client and the
 * array that keeps recording its "ev" events; the caller disconnects it (done here on failure).
 */
async function expectRecovered({ client, sid, port, nsp = "/", expected }) {
  let missed;
  const again = await reconnectWithSession(client, port, nsp, (socket) => {
    missed = record([socket], "ev")[0];
  });
  try {
    expect(again.recovered).toBe(true);
    expect(again.id).toBe(sid);
    await waitForCount(missed, expected.length);
    await sleep(200);
    expect(missed.map((a) => a[0])).toEqual(expected);
  } catch (e) {
    again.disconnect();
    throw e;
  }
  return { again, missed };
}

/**
 * Every server emits once in each of `namespaces`; asserts that every client of each namespace
 * got exactly the emits of its own namespace, one from each server.
 */
async function expectEachNamespaceReached(c, namespaces) {
  const got = {};
  for (const nsp of namespaces) got[nsp] = record(c.clients[nsp], "ev");
  for (const nsp of namespaces) c.servers.forEach((io, i) => io.of(nsp).emit("ev", nsp, i));
  for (const nsp of namespaces) for (const g of got[nsp]) await waitForCount(g, c.servers.length);
  await sleep(200);
  const everyServer = c.servers.map((_, i) => i);
  for (const nsp of namespaces) {
    for (const g of got[nsp]) {
      expect(g.map((a) => a[0])).toEqual(everyServer.map(() => nsp));
      expect(g.map((a) => a[1]).sort()).toEqual(everyServer);
    }
  }
}

module.exports = {
  createStreamsCluster,
  connectClient,
  reconnectWithSession,
  expectRecovered,
  expectEachNamespaceReached,
  record,
  waitForCount,
  sleep,
  xreadClients,
  targetOf,
};
