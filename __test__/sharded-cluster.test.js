"use strict";

// Sharded adapter on a 6-node Redis Cluster (3 masters + 3 replicas): node-redis createCluster
// and ioredis Cluster clients (the official sharded adapter accepts neither ioredis kind),
// mixed with an official node, then a master failover after which broadcasts flow again.

const { startCluster, cli } = require("./helpers/redis");
const { waitForCount, record } = require("./helpers/cluster");
const { createShardedCluster, shardNumSub, waitShardNumSub } = require("./helpers/sharded");

jest.setTimeout(90000);

let cluster;
beforeAll(async () => {
  cluster = await startCluster({ masters: 3, replicas: 1 });
}, 90000);
afterAll(async () => {
  if (cluster) await cluster.stop();
});

describe("sharded adapter on a Redis Cluster", () => {
  let c;
  afterEach(async () => {
    if (c) await c.closeAll();
    c = undefined;
  });

  const setup = (nodes, mode = "dynamic") =>
    createShardedCluster({
      redis: cluster.urls,
      redisHandle: cluster,
      nodes,
      adapterOpts: { subscriptionMode: mode },
    }).then((ctx) => (c = ctx));

  const MIXED = [
    { type: "native", clientKind: "node-redis-v5-cluster" },
    { type: "official", clientKind: "node-redis-v5-cluster" },
    { type: "native", clientKind: "ioredis-cluster" },
  ];

  it("interoperates with an official node: broadcasts, rooms, acks, fetchSockets, serverSideEmit", async () => {
    await setup(MIXED);
    for (const io of c.servers) expect(await io.of("/").adapter.serverCount()).toBe(3);

    const got = record(c.clients, "ev");
    c.servers.forEach((io, i) => io.emit("ev", i, Buffer.from([i])));
    for (const g of got) await waitForCount(g, 3);

    // Rooms whose channels hash to different slots (so different masters).
    const rooms = ["room-a", "room-b", "room-c", "room-d"];
    for (const room of rooms) c.serverSockets[room === "room-a" ? 0 : 2].join(room);
    c.serverSockets[1].join(rooms);
    for (const room of rooms) await c.waitRoom(room, 2);
    const inRooms = record(c.clients, "room");
    for (const room of rooms) c.servers[room.charCodeAt(5) % 3].to(room).emit("room", room);
    await waitForCount(inRooms[1], 4);
    await waitForCount(inRooms[2], 3);
    await waitForCount(inRooms[0], 1);
    await c.fence(0);
    expect(inRooms.map((g) => g.length)).toEqual([1, 4, 3]);
    expect(got.map((g) => g.length)).toEqual([3, 3, 3]);

    c.clients.forEach((client, i) => client.on("ask", (cb) => cb(i)));
    const answers = await c.servers[1].timeout(3000).emitWithAck("ask");
    expect(answers.sort()).toEqual([0, 1, 2]);

    const sockets = await c.servers[2].fetchSockets();
    expect(sockets).toHaveLength(3);

    c.servers.forEach((io, i) => io.on("hello", (cb) => cb(`hi-${i}`)));
    const replies = await c.servers[0].serverSideEmitWithAck("hello");
    expect(replies.sort()).toEqual(["hi-1", "hi-2"]);
  });

  it("flows again after a master failover (CLUSTER FAILOVER on its replica)", async () => {
    await setup(
      [
        { type: "native", clientKind: "node-redis-v5-cluster" },
        { type: "native", clientKind: "ioredis-cluster" },
        { type: "native", clientKind: "node-redis-v5-cluster" },
      ],
      "dynamic",
    );
    c.serverSockets[1].join("after");
    c.serverSockets[2].join("after");
    await c.waitRoom("after", 2);

    // Promote the replica of the master that owns the main channel's slot.
    const slot = Number(await cli(cluster.nodes[0].port, ["CLUSTER", "KEYSLOT", "socket.io#/#"]));
    const owner = await slotOwner(slot);
    let replica;
    for (const r of await cluster.replicas()) if (await replicaOf(r, owner)) replica = r;
    await cluster.failover(replica);
    expect(await slotOwner(slot)).not.toBe(owner);

    await waitShardNumSub(cluster, "socket.io#/#", 3, 30000);
    await waitShardNumSub(cluster, "socket.io#/#after#", 2, 30000);
    const got = record(c.clients, "post");
    c.servers[0].emit("post", "all");
    c.servers[0].to("after").emit("post", "room");
    await waitForCount(got[0], 1, 10000);
    await waitForCount(got[1], 2, 10000);
    await waitForCount(got[2], 2, 10000);
    await c.fence(0);
    // Exactly once each: no node holds a subscription on the demoted master as well.
    expect(got.map((g) => g.length)).toEqual([1, 2, 2]);
    expect(await shardNumSub(cluster, "socket.io#/#")).toBe(3);
    expect(await shardNumSub(cluster, "socket.io#/#after#")).toBe(2);
  });

  /** Port of the master serving `slot`, from CLUSTER SHARDS-like CLUSTER SLOTS output. */
  async function slotOwner(slot) {
    const live = cluster.nodes.find((n) => n.isRunning());
    const out = await cli(live.port, ["--no-raw", "CLUSTER", "SLOTS"]);
    // redis-cli --no-raw prints nested arrays; parse the ranges and their first (master) port.
    const lines = out.split("\n");
    for (let i = 0; i < lines.length; i++) {
      const start = /^\s*\d+\) 1\) \(integer\) (\d+)/.exec(lines[i]);
      if (!start) continue;
      const end = Number(/\(integer\) (\d+)/.exec(lines[i + 1])[1]);
      const port = Number(/\(integer\) (\d+)/.exec(lines[i + 3])[1]);
      if (slot >= Number(start[1]) && slot <= end) return port;
    }
    throw new Error(`no owner for slot ${slot}`);
  }

  async function replicaOf(node, masterPort) {
    const role = await cli(node.port, ["ROLE"]);
    return role.split("\n")[2] === String(masterPort);
  }
});
