"use strict";

// Streams adapter on a 6-node Redis Cluster (3 masters + 3 replicas): ours with node-redis
// createCluster and ioredis Cluster clients, mixed with an official 0.3.1 node (node-redis
// createCluster). Each stream key lives on the master owning its slot; with streamCount 3 the
// streams land on different shards, and requests go over classic or sharded pub/sub. A session
// persisted by our node is restored by the official one.

const { startCluster, cli, waitUntil } = require("./helpers/redis");
const {
  createStreamsCluster,
  connectClient,
  expectRecovered,
  expectEachNamespaceReached,
  record,
  waitForCount,
  sleep,
  xreadClients,
} = require("./helpers/streams-cluster");

jest.setTimeout(90000);

let cluster;
beforeAll(async () => {
  cluster = await startCluster({ masters: 3, replicas: 1 });
}, 90000);
afterAll(async () => {
  if (cluster) await cluster.stop();
});

const MIXED = [
  { type: "native", clientKind: "node-redis-v5-cluster" },
  { type: "official", clientKind: "node-redis-v5-cluster" },
  { type: "native", clientKind: "ioredis-cluster" },
];

/** The stream keys each master holds (KEYS is node-local on a cluster). */
async function streamKeysPerMaster(pattern) {
  const out = [];
  for (const master of await cluster.masters()) {
    const keys = (await cli(master.port, ["KEYS", pattern])).split("\n").filter(Boolean);
    out.push(keys.sort());
  }
  return out;
}

describe.each([
  ["classic pub/sub", false],
  ["sharded pub/sub", true],
])("streams adapter on a Redis Cluster (%s)", (_name, useShardedPubSub) => {
  let c;
  afterEach(async () => {
    if (c) await c.closeAll();
    c = undefined;
    // The official readers leave once their XREAD BLOCK returns: wait for them, so the next
    // test's count of blocked readers only sees its own.
    await waitUntil(async () => (await xreadClients(cluster)) === 0, {
      timeout: 15000,
      what: "readers of the previous test to leave",
    });
    // Every test starts from empty streams.
    for (const master of await cluster.masters()) await cli(master.port, ["FLUSHALL"]);
  });

  it("broadcasts, acks, fetchSockets and serverSideEmit with an official node", async () => {
    c = await createStreamsCluster({
      redis: cluster,
      nodes: MIXED,
      opts: { useShardedPubSub, blockTimeInMs: 1000 },
    });
    for (const io of c.servers) expect(await io.of("/").adapter.serverCount()).toBe(3);

    const got = record(c.clients["/"], "ev");
    c.servers.forEach((io, i) => io.emit("ev", i, Buffer.from([i])));
    for (const g of got) await waitForCount(g, 3);
    c.serverSockets["/"][0].join("room1");
    c.serverSockets["/"][1].join("room1");
    const inRoom = record(c.clients["/"], "room");
    c.servers[2].to("room1").emit("room", "r");
    await waitForCount(inRoom[0], 1);
    await waitForCount(inRoom[1], 1);
    await sleep(200);
    expect(inRoom.map((g) => g.length)).toEqual([1, 1, 0]);
    for (const g of got) {
      expect(g.map((a) => a[0]).sort()).toEqual([0, 1, 2]);
      for (const [i, bytes] of g) expect(Buffer.from(bytes)).toEqual(Buffer.from([i]));
    }

    c.clients["/"].forEach((client, i) => client.on("ask", (cb) => cb(`c${i}`)));
    c.servers.forEach((io, i) => io.on("hello", (cb) => cb(`s${i}`)));
    const ids = c.serverSockets["/"].map((s) => s.id).sort();
    for (let i = 0; i < c.servers.length; i++) {
      const io = c.servers[i];
      expect((await io.timeout(5000).emitWithAck("ask")).sort()).toEqual(["c0", "c1", "c2"]);
      expect((await io.fetchSockets()).map((s) => s.id).sort()).toEqual(ids);
      expect((await io.serverSideEmitWithAck("hello")).sort()).toEqual(
        ["s0", "s1", "s2"].filter((s) => s !== `s${i}`),
      );
    }
    c.servers[1].socketsJoin("joined");
    await sleep(500);
    for (const s of c.serverSockets["/"]) expect(s.rooms.has("joined")).toBe(true);
  });

  it("spreads namespaces over 3 streams on different shards (and a negative hash)", async () => {
    const namespaces = ["/", "/a", "/b", "/chat", "/notifications"];
    c = await createStreamsCluster({
      redis: cluster,
      nodes: MIXED,
      namespaces,
      opts: { useShardedPubSub, streamCount: 3, blockTimeInMs: 1000 },
    });
    await expectEachNamespaceReached(c, namespaces);
    // "/", "/a", "/b", "/chat" go to streams 2, 0, 1, 1 (hashCode % 3); the keys socket.io-0
    // (slot 1330) and socket.io-1 (5395) live on one master, socket.io-2 (9584) on another.
    // "/notifications" (hash % 3 = -2) goes to socket.io-1 from our nodes and to socket.io--2
    // from the official one, which our nodes read too.
    const perMaster = await streamKeysPerMaster("socket.io-*");
    expect(perMaster.flat().sort()).toEqual([
      "socket.io--2",
      "socket.io-0",
      "socket.io-1",
      "socket.io-2",
    ]);
    expect(perMaster.filter((keys) => keys.length > 0).length).toBeGreaterThanOrEqual(2);
  });

  it("restores on the official node a session persisted by ours (missed packets from both kinds, in order)", async () => {
    c = await createStreamsCluster({
      redis: cluster,
      nodes: MIXED,
      opts: { useShardedPubSub, blockTimeInMs: 1000 },
      serverOpts: {
        connectionStateRecovery: { maxDisconnectionDuration: 10000, skipMiddlewares: true },
      },
    });
    const client = await connectClient(c.ports[0]);
    c.servers[0].of("/").sockets.get(client.id).join("room1");
    const got = record([client], "ev")[0];
    c.servers[2].emit("ev", 0);
    await waitForCount(got, 1);
    const sid = client.id;
    client.io.engine.close();
    await sleep(300);
    for (let i = 1; i <= 4; i++) {
      const io = c.servers[i % 2 === 1 ? 1 : 2];
      (i === 2 ? io.to("room1") : io).emit("ev", i);
      await sleep(20);
    }
    await sleep(300);
    const { again } = await expectRecovered({
      client,
      sid,
      port: c.ports[1],
      expected: [1, 2, 3, 4],
    });
    again.disconnect();
  });
});
