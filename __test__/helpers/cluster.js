"use strict";

// Build N socket.io servers (each with its own http server and its own
// adapter, produced by a factory) plus socket.io-client connections to them.

const http = require("http");
const { Server } = require("socket.io");
const { io: ioc } = require("socket.io-client");
const { numsub, totalPsub, waitUntil, sleep } = require("./redis");

const noop = () => {};

// ---------------------------------------------------------------- clients

/**
 * Redis client pairs. `target` is a URL string (standalone) or an array of
 * URLs (Redis Cluster, with the *-cluster kinds).
 */
const clientMakers = {
  "node-redis-v5": (target) => nodeRedisPair(require("redis"), target),
  "node-redis-v4": (target) => nodeRedisPair(require("redis-v4"), target),
  "node-redis-v5-cluster": (target) => nodeRedisClusterPair(require("redis"), target),
  "node-redis-v4-cluster": (target) => nodeRedisClusterPair(require("redis-v4"), target),
  ioredis: async (target) => {
    const { Redis } = require("ioredis");
    const pub = new Redis(asUrl(target), { maxRetriesPerRequest: null });
    const sub = pub.duplicate();
    return ioredisPair(pub, sub);
  },
  "ioredis-cluster": async (target) => {
    const { Cluster } = require("ioredis");
    const pub = new Cluster(asUrls(target).map(hostPort));
    const sub = pub.duplicate();
    return ioredisPair(pub, sub);
  },
};

function asUrl(target) {
  return Array.isArray(target) ? target[0] : target;
}
function asUrls(target) {
  return Array.isArray(target) ? target : [target];
}
function hostPort(url) {
  const u = new URL(url);
  return { host: u.hostname, port: parseInt(u.port, 10) };
}

async function nodeRedisPair(redis, target) {
  const pub = redis.createClient({ url: asUrl(target) });
  pub.on("error", noop);
  const sub = pub.duplicate();
  sub.on("error", noop);
  await Promise.all([pub.connect(), sub.connect()]);
  return { pub, sub, close: () => closeNodeRedis([pub, sub]) };
}

async function nodeRedisClusterPair(redis, target) {
  const pub = redis.createCluster({ rootNodes: asUrls(target).map((url) => ({ url })) });
  pub.on("error", noop);
  const sub = pub.duplicate();
  sub.on("error", noop);
  await Promise.all([pub.connect(), sub.connect()]);
  return { pub, sub, close: () => closeNodeRedis([pub, sub]) };
}

async function closeNodeRedis(clients) {
  await Promise.all(
    clients.map((c) =>
      withTimeout(c.quit ? c.quit() : c.close(), 1000).catch(() => {
        try {
          (c.destroy || c.disconnect).call(c);
        } catch (_) {
          // ignore
        }
      }),
    ),
  );
}

async function ioredisPair(pub, sub) {
  pub.on("error", noop);
  sub.on("error", noop);
  await Promise.all([pub, sub].map(ioredisReady));
  return {
    pub,
    sub,
    close: async () => {
      pub.disconnect();
      sub.disconnect();
    },
  };
}

function ioredisReady(client) {
  if (client.status === "ready") return Promise.resolve();
  return withTimeout(new Promise((resolve) => client.once("ready", resolve)), 10000);
}

function withTimeout(promise, ms, what = "operation") {
  let t;
  return Promise.race([
    Promise.resolve(promise).finally(() => clearTimeout(t)),
    new Promise((_, reject) => {
      t = setTimeout(() => reject(new Error(`${what} timed out after ${ms}ms`)), ms);
    }),
  ]);
}

// ---------------------------------------------------------------- adapters

/** Run fn(); if it throws, close the client pair (no leaked reconnect timers) and rethrow. */
async function closeOnThrow(pair, fn) {
  try {
    return fn();
  } catch (err) {
    await withTimeout(pair.close(), 2000).catch(noop);
    throw err;
  }
}

let nativeModule;
let nativeError;
/** Our package. Throws (never skips) when it cannot be loaded. */
function loadNative() {
  if (nativeModule) return nativeModule;
  if (!nativeError) {
    try {
      const mod = require("../..");
      if (typeof mod.createAdapter !== "function") {
        throw new Error("require('socket.io-redis-native').createAdapter is not a function");
      }
      nativeModule = mod;
      return mod;
    } catch (err) {
      nativeError = err;
    }
  }
  throw new Error(
    `socket.io-redis-native could not be loaded (require("../..") from __test__/helpers; ` +
      `not built yet?): ${nativeError.message}`,
  );
}

/**
 * Each factory resolves to {name, adapter, pub, sub, close()} where
 * `adapter` is what goes into `new Server(.., {adapter})`.
 */
const adapters = {
  async official(redisUrl, opts = {}, clientKind = "node-redis-v5") {
    const { createAdapter } = require("@socket.io/redis-adapter");
    const pair = await clientMakers[clientKind](redisUrl);
    if (clientKind.startsWith("node-redis") && clientKind.endsWith("-cluster")) {
      // Quirk of the official adapter + node-redis cluster: close() sends one
      // UNSUBSCRIBE per channel without catching; the cluster client destroys
      // its pub/sub connection after the first one and the others reject with
      // "The client is closed" (unhandled). Swallow those in the harness.
      for (const m of ["unsubscribe", "pUnsubscribe", "UNSUBSCRIBE", "PUNSUBSCRIBE"]) {
        const orig = pair.sub[m];
        if (typeof orig === "function") {
          pair.sub[m] = (...args) => Promise.resolve(orig.apply(pair.sub, args)).catch(noop);
        }
      }
    }
    return {
      name: `official(${clientKind})`,
      adapter: await closeOnThrow(pair, () => createAdapter(pair.pub, pair.sub, opts)),
      ...pair,
    };
  },
  async native(redisUrl, opts = {}, clientKind = "node-redis-v5") {
    const { createAdapter } = loadNative();
    if (clientKind === "url") {
      return {
        name: "native(url)",
        adapter: createAdapter(asUrl(redisUrl), undefined, opts),
        close: async () => {},
      };
    }
    const maker = clientMakers[clientKind];
    if (!maker) throw new Error(`unknown clientKind ${clientKind}`);
    const pair = await maker(redisUrl);
    return {
      name: `native(${clientKind})`,
      adapter: await closeOnThrow(pair, () => createAdapter(pair.pub, pair.sub, opts)),
      ...pair,
    };
  },
};

// ---------------------------------------------------------------- servers

function listen(httpServer) {
  return new Promise((resolve) =>
    httpServer.listen(0, "127.0.0.1", () => resolve(httpServer.address().port)),
  );
}

/**
 * Normalise a node spec: "official" | "native" | {type, clientKind, opts}.
 */
function toSpec(spec, defaultKind) {
  if (typeof spec === "string") return { type: spec, clientKind: defaultKind(spec) };
  return { clientKind: defaultKind(spec.type), ...spec };
}

/**
 * Build a cluster of socket.io servers.
 *
 * @param {object} o
 * @param {string|string[]} o.redis - Redis URL, or URLs of a Redis Cluster
 * @param {object} [o.redisHandle] - the startRedis()/startCluster() object (for NUMSUB checks)
 * @param {Array} o.nodes - node specs, see toSpec()
 * @param {object} [o.adapterOpts] - options for every adapter (merged with spec.opts)
 * @param {function} [o.init] - init(io, index) before listening (declare namespaces, handlers)
 * @param {string[]} [o.connect] - namespaces to connect one client per server to (default ["/"])
 * @param {string} [o.clientKind] - default client kind for both factories
 */
async function createCluster(o) {
  const ctx = {
    key: (o.adapterOpts && o.adapterOpts.key) || "socket.io",
    servers: [],
    httpServers: [],
    ports: [],
    made: [],
    clients: [], // client sockets on "/" (index = server index)
    serverSockets: [], // matching server-side sockets
    nsClients: {}, // nsp -> [client sockets]
    nsServerSockets: {}, // nsp -> [server sockets]
    allClients: [],
    extra: [], // extra redis clients to close
  };
  const defaultKind = () => o.clientKind || "node-redis-v5";

  try {
    for (let i = 0; i < o.nodes.length; i++) {
      const spec = toSpec(o.nodes[i], defaultKind);
      const made = await adapters[spec.type](
        o.redis,
        { ...o.adapterOpts, ...spec.opts },
        spec.clientKind,
      );
      ctx.made.push(made);
      const httpServer = http.createServer();
      const io = new Server(httpServer, { adapter: made.adapter, ...o.ioOpts });
      ctx.servers.push(io);
      ctx.httpServers.push(httpServer);
      if (o.init) o.init(io, i);
      ctx.ports.push(await listen(httpServer));
    }

    /** Connect a client to server `i` on namespace `nsp`. */
    ctx.connect = async (i, nsp = "/", opts = {}) => {
      const client = ioc(`http://127.0.0.1:${ctx.ports[i]}${nsp}`, {
        forceNew: true,
        transports: ["websocket"],
        reconnection: false,
        ...opts,
      });
      ctx.allClients.push(client);
      await waitFor(client, "connect", 5000);
      const namespace = ctx.servers[i]._nsps.get(nsp);
      const serverSocket = namespace && namespace.sockets.get(client.id);
      if (!serverSocket) throw new Error(`no server socket for ${client.id} on node ${i}${nsp}`);
      return { client, serverSocket };
    };

    for (const nsp of o.connect || ["/"]) {
      ctx.nsClients[nsp] = [];
      ctx.nsServerSockets[nsp] = [];
      for (let i = 0; i < ctx.servers.length; i++) {
        const { client, serverSocket } = await ctx.connect(i, nsp);
        ctx.nsClients[nsp].push(client);
        ctx.nsServerSockets[nsp].push(serverSocket);
      }
    }
    ctx.clients = ctx.nsClients["/"] || [];
    ctx.serverSockets = ctx.nsServerSockets["/"] || [];

    /**
     * Wait until every adapter holds its subscriptions: NUMSUB of each
     * namespace's request channel equals the number of servers serving it,
     * and there are at least as many pattern subscriptions as namespaces.
     */
    ctx.waitForSubscriptions = async (handle = o.redisHandle) => {
      if (!handle) return sleep(100);
      const perNsp = new Map();
      let expectedPsub = 0;
      for (const io of ctx.servers) {
        for (const name of io._nsps.keys()) {
          perNsp.set(name, (perNsp.get(name) || 0) + 1);
          expectedPsub++;
        }
      }
      await waitUntil(
        async () => {
          for (const [name, count] of perNsp) {
            if ((await numsub(handle, `${ctx.key}-request#${name}#`)) < count) return false;
          }
          return (await totalPsub(handle)) >= expectedPsub;
        },
        { timeout: 10000, what: "adapter subscriptions" },
      );
    };
    await ctx.waitForSubscriptions();

    /**
     * Broadcast a fence from server `from` to every "/" client and wait until
     * each got it: anything published before it has been delivered by then.
     */
    let fenceId = 0;
    ctx.fence = async (from = 0, clients = ctx.clients) => {
      const id = ++fenceId;
      const got = clients.map((c) => waitFor(c, "__fence", 5000, (v) => v === id));
      ctx.servers[from].emit("__fence", id);
      await Promise.all(got);
    };

    /** A raw node-redis v5 client on the same Redis (closed by closeAll). */
    ctx.rawClient = async () => {
      const redis = require("redis");
      const client = Array.isArray(o.redis)
        ? redis.createCluster({ rootNodes: o.redis.map((url) => ({ url })) })
        : redis.createClient({ url: o.redis });
      client.on("error", noop);
      await client.connect();
      ctx.extra.push(client);
      return client;
    };

    /** Record every message on channels matching `pattern` (raw buffers). */
    ctx.monitor = async (pattern = `${ctx.key}*`) => {
      const client = await ctx.rawClient();
      const messages = [];
      await client.pSubscribe(
        pattern,
        (message, channel) => messages.push({ channel: channel.toString(), message }),
        true,
      );
      return messages;
    };

    ctx.closeAll = () => closeAll(ctx);
  } catch (err) {
    await closeAll(ctx).catch(noop);
    throw err;
  }
  return ctx;
}

async function closeAll(ctx) {
  for (const c of ctx.allClients) c.disconnect();
  await Promise.all(
    ctx.servers.map((io) =>
      withTimeout(new Promise((resolve) => io.close(() => resolve())), 3000).catch(noop),
    ),
  );
  for (const s of ctx.httpServers) s.closeAllConnections && s.closeAllConnections();
  await Promise.all(ctx.made.map((m) => withTimeout(m.close(), 2000).catch(noop)));
  await closeNodeRedis(ctx.extra);
  ctx.allClients = [];
  ctx.servers = [];
  ctx.made = [];
  ctx.extra = [];
}

// ---------------------------------------------------------------- waiting

/**
 * Resolve with the args array of the next `event` on `emitter` (optionally
 * the first one whose first arg passes `filter`); reject after `timeout`.
 */
function waitFor(emitter, event, timeout = 2000, filter) {
  return new Promise((resolve, reject) => {
    const listener = (...args) => {
      if (filter && !filter(...args)) return;
      clearTimeout(timer);
      emitter.off(event, listener);
      resolve(args);
    };
    const timer = setTimeout(() => {
      emitter.off(event, listener);
      reject(new Error(`timeout waiting for "${event}" after ${timeout}ms`));
    }, timeout);
    emitter.on(event, listener);
  });
}

/** Record every `event` on each emitter: returns arrays of args arrays. */
function record(emitters, event) {
  return emitters.map((e) => {
    const got = [];
    e.on(event, (...args) => got.push(args.filter((a) => typeof a !== "function")));
    return got;
  });
}

/** Wait until `event` has been seen `n` times on `emitter`. */
async function waitForCount(got, n, timeout = 3000, what = "events") {
  await waitUntil(() => got.length >= n, { timeout, what: `${n} ${what} (got ${got.length})` });
}

/** Topologies of the feature matrix (3 nodes each). */
const TOPOLOGIES = [
  ["official", "official", "official"],
  ["native", "native", "native"],
  ["native", "official", "native"],
  ["official", "native", "official"],
];

/**
 * Node 0 emits 20 broadcasts with a Buffer then 200 plain ones and closes its adapter in the
 * same tick: every other node's client must get all 220, in order (what was emitted before
 * close() is not lost). `c`: a cluster of createCluster or createShardedCluster.
 */
async function expectEmittedBeforeCloseDelivered(c) {
  const got = record(c.clients, "ev");
  for (let n = 0; n < 20; n++) c.servers[0].emit("ev", n, Buffer.from([n]));
  for (let n = 0; n < 200; n++) c.servers[0].emit("ev", 20 + n);
  c.servers[0].of("/").adapter.close();
  for (const g of got.slice(1)) await waitForCount(g, 220);
  for (const g of got.slice(1)) {
    expect(g.map((a) => a[0])).toEqual([...Array(220).keys()]);
    expect(g[3][1]).toEqual(Buffer.from([3]));
  }
}

module.exports = {
  adapters,
  expectEmittedBeforeCloseDelivered,
  clientMakers,
  createCluster,
  loadNative,
  waitFor,
  waitForCount,
  waitUntil,
  record,
  sleep,
  withTimeout,
  TOPOLOGIES,
};
