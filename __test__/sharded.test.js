"use strict";

// Sharded adapter feature matrix on a standalone Redis 7: every subscription mode, in clusters
// of our nodes only and mixed with official createShardedAdapter nodes (node-redis v5 clients).

const { startRedis } = require("./helpers/redis");
const {
  expectEmittedBeforeCloseDelivered,
  waitFor,
  waitForCount,
  record,
  sleep,
} = require("./helpers/cluster");
const { createShardedCluster } = require("./helpers/sharded");

const MODES = ["static", "dynamic", "dynamic-private"];
const TOPOLOGIES = [
  ["native", "native", "native"],
  ["native", "official", "native"],
  ["official", "native", "official"],
];
const CASES = [];
for (const mode of MODES) for (const t of TOPOLOGIES) CASES.push([mode, t.join("/"), t]);

describe.each(CASES)("sharded [%s] [%s]", (mode, _name, topology) => {
  let redis;
  let c;

  beforeAll(async () => {
    redis = await startRedis();
  });
  afterAll(async () => {
    await redis.stop();
  });
  afterEach(async () => {
    if (c) await c.closeAll();
    c = undefined;
  });

  const setup = (extra = {}) =>
    createShardedCluster({
      redis: redis.url,
      redisHandle: redis,
      nodes: topology,
      adapterOpts: { subscriptionMode: mode },
      ...extra,
    }).then((ctx) => (c = ctx));

  /** Joins and, in the dynamic modes, waits until the room channel is held by `holders` nodes. */
  async function join(sockets, room, holders) {
    for (const s of sockets) s.join(room);
    if (mode !== "static") await c.waitRoom(room, holders);
  }

  it("counts the servers with SHARDNUMSUB", async () => {
    await setup();
    for (const io of c.servers) expect(await io.of("/").adapter.serverCount()).toBe(3);
  });

  it("broadcasts to all clients, from every node", async () => {
    await setup();
    const got = record(c.clients, "ev");
    c.servers.forEach((io, i) => io.emit("ev", i, { n: [i] }));
    for (const g of got) await waitForCount(g, 3);
    for (const g of got) expect(g.map((a) => a[0]).sort()).toEqual([0, 1, 2]);
  });

  it("delivers to the other nodes what was emitted right before the adapter closed", async () => {
    await setup();
    await expectEmittedBeforeCloseDelivered(c);
  });

  it("broadcasts to a room, and to a room except another room", async () => {
    await setup();
    await join([c.serverSockets[0], c.serverSockets[2]], "room1", 2);
    await join([c.serverSockets[2]], "room2", 1);
    const got = record(c.clients, "ev");
    c.servers[1].to("room1").emit("ev", "r");
    c.servers[1].to("room1").except("room2").emit("ev", "x");
    await waitForCount(got[0], 2);
    await waitForCount(got[2], 1);
    await c.fence(1);
    expect(got).toEqual([[["r"], ["x"]], [], [["r"]]]);
  });

  it("broadcasts binary payloads (MessagePack) to all and to a room", async () => {
    await setup();
    await join([c.serverSockets[1]], "bin", 1);
    const got = record(c.clients, "bin");
    c.servers[0].emit("bin", Buffer.from([1, 2, 3]), { nested: Uint8Array.from([4]) });
    c.servers[2].to("bin").emit("bin", Buffer.from([5]));
    for (const g of got) await waitForCount(g, 1);
    await waitForCount(got[1], 2);
    await c.fence(0);
    expect(Buffer.from(got[0][0][0])).toEqual(Buffer.from([1, 2, 3]));
    expect(Buffer.from(got[2][0][1].nested)).toEqual(Buffer.from([4]));
    expect(got[1].map((a) => Buffer.from(a[0]).length).sort()).toEqual([1, 3]);
  });

  it("delivers a turn's broadcasts to a local client in order, after that turn's socket.emit", async () => {
    await setup();
    const [got] = record([c.clients[0]], "ev");
    c.servers[0].emit("ev", "a");
    c.serverSockets[0].emit("ev", "direct");
    c.servers[0].emit("ev", "b", Buffer.from([1]));
    c.servers[0].to("nobody").emit("ev", "none");
    c.servers[0].emit("ev", "c");
    await waitForCount(got, 4);
    await c.fence(0);
    expect(got.map((a) => a[0])).toEqual(["direct", "a", "b", "c"]);
    expect(got[2][1]).toEqual(Buffer.from([1]));
  });

  it("sends to one socket by id from another node", async () => {
    await setup();
    const got = record(c.clients, "direct");
    c.servers[0].to(c.serverSockets[1].id).emit("direct", 1);
    c.servers[2].to(c.serverSockets[0].id).emit("direct", 2);
    await waitForCount(got[1], 1);
    await waitForCount(got[0], 1);
    await c.fence(0);
    expect(got).toEqual([[[2]], [[1]], []]);
  });

  it("collects client acks from every node", async () => {
    await setup();
    c.clients.forEach((client, i) => client.on("ask", (q, cb) => cb(`${q}-${i}`)));
    for (let from = 0; from < 3; from++) {
      const answers = await c.servers[from].timeout(3000).emitWithAck("ask", "q");
      expect(answers.sort()).toEqual(["q-0", "q-1", "q-2"]);
    }
    await join([c.serverSockets[2]], "acked", 1);
    const binary = await c.servers[0]
      .to("acked")
      .timeout(3000)
      .emitWithAck("ask", Buffer.from([1]));
    expect(binary).toHaveLength(1);
  });

  it("delivers a broadcast with ack after the broadcasts emitted before it", async () => {
    await setup();
    const got = record(c.clients, "ev");
    c.clients.forEach((client) => client.on("ask", (cb) => cb("ok")));
    for (let i = 0; i < 20; i++) c.servers[0].emit("ev", i);
    const acked = c.servers[0].timeout(3000).emitWithAck("ask");
    c.clients.forEach((client, i) => client.on("ask", () => got[i].push(["ask"])));
    expect(await acked).toEqual(["ok", "ok", "ok"]);
    for (const g of got.slice(1)) {
      await waitForCount(g, 21);
      expect(g.map((a) => a[0])).toEqual([...Array.from({ length: 20 }, (_, i) => i), "ask"]);
    }
  });

  it("fetches sockets of every node, with rooms and data", async () => {
    await setup();
    c.serverSockets.forEach((s, i) => (s.data = { i }));
    await join([c.serverSockets[2]], "fetched", 1);
    const all = await c.servers[0].fetchSockets();
    expect(all.map((s) => s.data.i).sort()).toEqual([0, 1, 2]);
    const inRoom = await c.servers[1].in("fetched").fetchSockets();
    expect(inRoom.map((s) => s.id)).toEqual([c.serverSockets[2].id]);
    expect([...inRoom[0].rooms].sort()).toEqual([c.serverSockets[2].id, "fetched"].sort());
  });

  it("serverSideEmit, with and without ack", async () => {
    await setup();
    const got = c.servers.map((io, i) => {
      const seen = [];
      io.on("ping", (...args) => {
        const cb = typeof args[args.length - 1] === "function" ? args.pop() : null;
        seen.push(args);
        if (cb) cb(`pong-${i}`);
      });
      return seen;
    });
    c.servers[0].serverSideEmit("ping", 1);
    await waitForCount(got[1], 1);
    await waitForCount(got[2], 1);
    const answers = await c.servers[1].serverSideEmitWithAck("ping", Buffer.from([7]));
    expect(answers.sort()).toEqual(["pong-0", "pong-2"]);
    expect(got[0]).toHaveLength(1);
    expect(got[1]).toEqual([[1]]);
  });

  it("socketsJoin, socketsLeave and disconnectSockets across nodes", async () => {
    await setup();
    c.servers[0].socketsJoin("joined");
    await Promise.all(c.serverSockets.map((s) => waitUntilTrue(() => s.rooms.has("joined"))));
    if (mode !== "static") await c.waitRoom("joined", 3);
    const got = record(c.clients, "after-join");
    c.servers[1].to("joined").emit("after-join");
    for (const g of got) await waitForCount(g, 1);

    c.servers[2].in(c.serverSockets[0].id).socketsLeave("joined");
    await waitUntilTrue(() => !c.serverSockets[0].rooms.has("joined"));
    if (mode !== "static") await c.waitRoom("joined", 2);

    const disconnected = waitFor(c.clients[1], "disconnect", 3000);
    c.servers[0].in(c.serverSockets[1].id).disconnectSockets(true);
    await disconnected;
    expect(c.serverSockets[0].connected).toBe(true);
    expect(c.serverSockets[2].connected).toBe(true);
  });
});

async function waitUntilTrue(fn, timeout = 3000) {
  const deadline = Date.now() + timeout;
  while (!fn()) {
    if (Date.now() > deadline) throw new Error("condition not reached");
    await sleep(10);
  }
}
