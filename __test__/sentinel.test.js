"use strict";

// Redis Sentinel, against real redis-server processes (a master, a replica, two sentinels):
// our adapters given ioredis sentinel clients find the master through the sentinels (classic,
// mixed with the official adapter, sharded, streams, emitter), follow a failover to the new
// master (forced with SENTINEL FAILOVER, or by killing the master), and work with passwords on
// the data nodes and on the sentinels. node-redis v5 sentinels (createSentinel) keep their
// settings private: their options object is accepted instead, and the client itself is refused
// with an error that says so.

const http = require("http");
const { Server } = require("socket.io");
const { io: ioc } = require("socket.io-client");
const { Redis } = require("ioredis");
const { startSentinelSet } = require("./helpers/sentinel");
const { waitUntil } = require("./helpers/redis");
const { record, waitForCount, withTimeout } = require("./helpers/cluster");
const native = require("..");
const nativeStreams = require("../streams");
const { connectionOptionsFrom, InvalidRedisClientError } = require("../lib/connection-options");

const noop = () => {};

/** ioredis clients in sentinel mode, all disconnected by closeClients(). */
const ioredisClients = [];
function ioredisSentinel(set, extra) {
  const client = new Redis(set.ioredisOptions({ maxRetriesPerRequest: null, ...extra }));
  client.on("error", noop);
  ioredisClients.push(client);
  return client;
}
async function ioredisReady(client) {
  if (client.status === "ready") return;
  await withTimeout(new Promise((r) => client.once("ready", r)), 10000, "ioredis ready");
}
/**
 * QUIT, not disconnect(): the official adapter's close() leaves its UNSUBSCRIBE calls un-awaited,
 * and a disconnect() would reject them (unhandled); QUIT is answered after them.
 */
async function closeClients() {
  await Promise.all(
    ioredisClients.splice(0).map((c) => withTimeout(c.quit(), 2000).catch(() => c.disconnect())),
  );
}

/**
 * Socket.IO servers, one per adapter factory (() => adapter), each with one connected client.
 * `serverCount` is how many servers each adapter must count before the setup is done.
 */
async function createNodes(factories, { serverCount = factories.length } = {}) {
  const ctx = { servers: [], httpServers: [], clients: [], serverSockets: [] };
  ctx.closeAll = async () => {
    for (const c of ctx.clients) c.disconnect();
    await Promise.all(
      ctx.servers.map((io) =>
        withTimeout(new Promise((r) => io.close(() => r())), 3000).catch(noop),
      ),
    );
    for (const s of ctx.httpServers) s.closeAllConnections();
  };
  try {
    for (const factory of factories) {
      const httpServer = http.createServer();
      const io = new Server(httpServer, { adapter: await factory() });
      ctx.servers.push(io);
      ctx.httpServers.push(httpServer);
      await new Promise((r) => httpServer.listen(0, "127.0.0.1", r));
      const connected = new Promise((r) => io.once("connection", r));
      const client = ioc(`http://127.0.0.1:${httpServer.address().port}`, {
        forceNew: true,
        transports: ["websocket"],
        reconnection: false,
      });
      ctx.clients.push(client);
      ctx.serverSockets.push(await withTimeout(connected, 5000, "socket.io connection"));
    }
    for (const io of ctx.servers) {
      await waitUntil(async () => (await io.of("/").adapter.serverCount()) === serverCount, {
        timeout: 10000,
        what: `serverCount() = ${serverCount}`,
      });
    }
  } catch (err) {
    await ctx.closeAll();
    throw err;
  }
  return ctx;
}

/** Each server emits `event` with its index; every client must get all of them. */
async function expectBroadcastsCross(ctx, event = "ev") {
  const got = record(ctx.clients, event);
  ctx.servers.forEach((io, i) => io.emit(event, i));
  for (const g of got) await waitForCount(g, ctx.servers.length, 5000, event);
  for (const g of got) {
    expect(g.map((a) => a[0]).sort()).toEqual(ctx.servers.map((_, i) => i));
  }
  for (const c of ctx.clients) c.off(event);
}

/**
 * Emits `probe` events from every server until every client got one from every other server
 * (a broadcast that crossed Redis), within `timeout`. Resolves with the time it took.
 */
async function waitBroadcastsCross(ctx, timeout) {
  const started = Date.now();
  const seen = ctx.clients.map(() => new Set());
  ctx.clients.forEach((c, i) => c.on("probe", (from) => seen[i].add(from)));
  try {
    await waitUntil(
      () => {
        ctx.servers.forEach((io, i) => io.emit("probe", i));
        return seen.every((s, i) => ctx.servers.every((_, from) => from === i || s.has(from)));
      },
      { timeout, interval: 100, what: "broadcasts to cross between every pair of servers" },
    );
  } finally {
    for (const c of ctx.clients) c.off("probe");
  }
  return Date.now() - started;
}

/**
 * Connections of `node` subscribed to something (CLIENT LIST sub/psub/ssub > 0), except the
 * sentinels' own (named sentinel-<id>-pubsub, on __sentinel__:hello).
 */
async function subscribers(set, node) {
  return (await set.clients(node)).filter(
    (c) =>
      !c.name.startsWith("sentinel-") && Number(c.sub) + Number(c.psub) + Number(c.ssub || 0) > 0,
  );
}

describe("Redis Sentinel (master, replica, 2 sentinels)", () => {
  let set;
  let ctx;

  beforeEach(async () => {
    set = await startSentinelSet({ sentinels: 2 });
  }, 30000);

  afterEach(async () => {
    if (ctx) await ctx.closeAll();
    ctx = undefined;
    await closeClients();
    if (set) await set.stop();
    set = undefined;
  });

  it("reads an ioredis sentinel client as topology sentinel", async () => {
    const client = ioredisSentinel(set);
    expect(connectionOptionsFrom(client)).toEqual({
      topology: "sentinel",
      nodes: set.sentinels.map((s) => ({ host: "127.0.0.1", port: s.port })),
      sentinelMaster: "mymaster",
      db: 0,
      tls: false,
      tlsInsecure: false,
    });
  });

  it("classic: broadcasts, fetchSockets and serverSideEmitWithAck across 2 servers", async () => {
    ctx = await createNodes([0, 1].map(() => () => native.createAdapter(ioredisSentinel(set))));
    // both subscribers sit on the master the sentinels report, none on the replica
    expect(await subscribers(set, set.master)).toHaveLength(2);
    expect(await subscribers(set, set.replica)).toHaveLength(0);

    await expectBroadcastsCross(ctx);

    ctx.serverSockets.forEach((s, i) => (s.data = { i }));
    const ids = ctx.serverSockets.map((s) => s.id).sort();
    for (const io of ctx.servers) {
      const sockets = await io.fetchSockets();
      expect(sockets.map((s) => s.id).sort()).toEqual(ids);
      expect(sockets.map((s) => s.data.i).sort()).toEqual([0, 1]);
    }

    ctx.servers.forEach((io, i) => io.on("ask", (arg, cb) => cb(`${arg}${i}`)));
    expect(await ctx.servers[0].serverSideEmitWithAck("ask", "q")).toEqual(["q1"]);
    expect(await ctx.servers[1].serverSideEmitWithAck("ask", "q")).toEqual(["q0"]);
  });

  it("classic, mixed with the official adapter on ioredis sentinel clients", async () => {
    const official = require("@socket.io/redis-adapter");
    ctx = await createNodes([
      () => native.createAdapter(ioredisSentinel(set)),
      async () => {
        const pub = ioredisSentinel(set);
        const sub = ioredisSentinel(set);
        await Promise.all([pub, sub].map(ioredisReady));
        return official.createAdapter(pub, sub);
      },
    ]);
    await expectBroadcastsCross(ctx);
    // and a room, from each side to the other
    ctx.serverSockets[1].join("r1");
    ctx.serverSockets[0].join("r0");
    const got = record(ctx.clients, "room");
    ctx.servers[0].to("r1").emit("room", "to-official");
    ctx.servers[1].to("r0").emit("room", "to-native");
    await waitForCount(got[0], 1);
    await waitForCount(got[1], 1);
    expect(got).toEqual([[["to-native"]], [["to-official"]]]);
    ctx.servers.forEach((io, i) => io.on("ask", (cb) => cb(i)));
    expect(await ctx.servers[0].serverSideEmitWithAck("ask")).toEqual([1]);
    expect(await ctx.servers[1].serverSideEmitWithAck("ask")).toEqual([0]);
  });

  it("sharded adapter: a broadcast crosses", async () => {
    ctx = await createNodes(
      [0, 1].map(() => () => native.createShardedAdapter(ioredisSentinel(set))),
    );
    expect(await subscribers(set, set.master)).toHaveLength(2);
    await expectBroadcastsCross(ctx);
  });

  it("streams adapter: a broadcast crosses", async () => {
    ctx = await createNodes(
      [0, 1].map(() => () => nativeStreams.createAdapter(ioredisSentinel(set))),
    );
    await expectBroadcastsCross(ctx);
    // the broadcasts went through the stream on the master (and were replicated)
    expect(Number(await set.cli(set.master, ["XLEN", "socket.io"]))).toBeGreaterThan(0);
  });

  it("emitter on an ioredis sentinel client reaches the servers", async () => {
    ctx = await createNodes([0, 1].map(() => () => native.createAdapter(ioredisSentinel(set))));
    const emitter = new native.Emitter(ioredisSentinel(set));
    try {
      const got = record(ctx.clients, "from-emitter");
      await emitter.emit("from-emitter", 42);
      for (const g of got) await waitForCount(g, 1);
      expect(got).toEqual([[[42]], [[42]]]);
    } finally {
      await emitter.close();
    }
  });

  it("classic: follows SENTINEL FAILOVER to the new master", async () => {
    ctx = await createNodes([0, 1].map(() => () => native.createAdapter(ioredisSentinel(set))));
    await expectBroadcastsCross(ctx);
    const started = Date.now();
    const { oldMaster, newMaster } = await set.failover();
    const switched = Date.now() - started;
    // The old master stays a master until the sentinels turn it into a replica (and then kill
    // its clients): only then must the adapters move.
    await set.waitReplica(oldMaster);
    const converted = Date.now() - started;
    await waitUntil(async () => (await subscribers(set, newMaster)).length === 2, {
      timeout: 15000,
      what: "both subscribers on the new master",
    });
    const crossed = await waitBroadcastsCross(ctx, 15000);
    const recovered = Date.now() - started;
    console.log(
      `classic, SENTINEL FAILOVER: sentinels switched after ${switched} ms, old master a ` +
        `replica after ${converted} ms, broadcasts crossing on the new master after ` +
        `${recovered} ms (${recovered - converted} ms after the conversion, last wait ${crossed} ms)`,
    );
    expect(await subscribers(set, oldMaster)).toHaveLength(0);
    for (const io of ctx.servers) expect(await io.of("/").adapter.serverCount()).toBe(2);
    ctx.servers.forEach((io, i) => io.on("ask", (cb) => cb(i)));
    expect(await ctx.servers[0].serverSideEmitWithAck("ask")).toEqual([1]);
  }, 60000);

  it("classic and streams: follow a failover after the master is killed", async () => {
    ctx = await createNodes([
      () => native.createAdapter(ioredisSentinel(set)),
      () => native.createAdapter(ioredisSentinel(set)),
    ]);
    const streams = await createNodes(
      [0, 1].map(() => () => nativeStreams.createAdapter(ioredisSentinel(set))),
    );
    try {
      await expectBroadcastsCross(ctx);
      await expectBroadcastsCross(streams);
      const oldMaster = await set.currentMaster();
      const newMaster = set.data.find((n) => n !== oldMaster);
      const started = Date.now();
      await oldMaster.kill();
      await set.waitMaster(newMaster, 30000);
      const promoted = Date.now() - started;
      await waitBroadcastsCross(ctx, 20000);
      const classic = Date.now() - started;
      await waitBroadcastsCross(streams, 20000);
      const stream = Date.now() - started;
      console.log(
        `master killed: replica promoted after ${promoted} ms; broadcasts crossing again ` +
          `after ${classic} ms (classic) and ${stream} ms (streams)`,
      );
      expect(await subscribers(set, newMaster)).toHaveLength(2 + 2);
      expect(Number(await set.cli(newMaster, ["XLEN", "socket.io"]))).toBeGreaterThan(0);
    } finally {
      await streams.closeAll();
    }
  }, 60000);

  it("node-redis v5 createSentinel: the client is refused clearly, its options are accepted", async () => {
    const { createSentinel } = require("redis");
    const options = {
      name: "mymaster",
      sentinelRootNodes: set.sentinels.map((s) => ({ host: "127.0.0.1", port: s.port })),
    };
    const sentinel = createSentinel(options);
    sentinel.on("error", noop);
    await sentinel.connect();
    try {
      expect(() => native.createAdapter(sentinel)).toThrow(InvalidRedisClientError);
      expect(() => native.createAdapter(sentinel)).toThrow(/createSentinel.*sentinelRootNodes/s);
    } finally {
      await sentinel.close();
    }
    expect(connectionOptionsFrom(options)).toMatchObject({
      topology: "sentinel",
      sentinelMaster: "mymaster",
      nodes: options.sentinelRootNodes,
    });
    ctx = await createNodes([0, 1].map(() => () => native.createAdapter(options)));
    await expectBroadcastsCross(ctx);
  });
});

describe("Redis Sentinel with passwords (requirepass on the data nodes and the sentinels)", () => {
  let set;
  let ctx;

  beforeAll(async () => {
    set = await startSentinelSet({
      sentinels: 2,
      password: "data-pw",
      sentinelPassword: "sent-pw",
    });
  }, 30000);

  afterEach(async () => {
    if (ctx) await ctx.closeAll();
    ctx = undefined;
    await closeClients();
  });

  afterAll(async () => {
    if (set) await set.stop();
  });

  it("classic and sharded adapters authenticate to both", async () => {
    expect(connectionOptionsFrom(ioredisSentinel(set))).toMatchObject({
      topology: "sentinel",
      password: "data-pw",
      sentinelPassword: "sent-pw",
    });
    ctx = await createNodes([
      () => native.createAdapter(ioredisSentinel(set)),
      () => native.createAdapter(set.ioredisOptions()),
    ]);
    await expectBroadcastsCross(ctx);
    await ctx.closeAll();
    ctx = await createNodes(
      [0, 1].map(() => () => native.createShardedAdapter(ioredisSentinel(set))),
    );
    await expectBroadcastsCross(ctx);
  });

  it("node-redis v5 sentinel options with passwords", async () => {
    const options = {
      name: "mymaster",
      sentinelRootNodes: set.sentinels.map((s) => ({ host: "127.0.0.1", port: s.port })),
      nodeClientOptions: { password: "data-pw" },
      sentinelClientOptions: { password: "sent-pw" },
    };
    expect(connectionOptionsFrom(options)).toMatchObject({
      topology: "sentinel",
      password: "data-pw",
      sentinelPassword: "sent-pw",
    });
    ctx = await createNodes([0, 1].map(() => () => native.createAdapter(options)));
    await expectBroadcastsCross(ctx);
  });
});
