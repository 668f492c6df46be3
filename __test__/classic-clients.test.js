"use strict";

// Smoke set (broadcast, broadcast with acks, fetchSockets, serverSideEmit
// with ack) for every kind of Redis client, standalone and Redis Cluster.
// The official adapter runs the same set as a control, and mixed clusters
// prove that nodes using different client libraries interoperate.

const { startRedis, startCluster } = require("./helpers/redis");
const { createCluster, waitForCount, waitUntil, record } = require("./helpers/cluster");

const official = (clientKind) => ({ type: "official", clientKind });
const native = (clientKind) => ({ type: "native", clientKind });
const label = (nodes) => nodes.map((n) => `${n.type}(${n.clientKind})`).join(" / ");

function smokeSuite(getTarget, configs) {
  describe.each(configs.map((nodes) => [label(nodes), nodes]))("%s", (_name, nodes) => {
    let c;
    // declared in the inner block so that it runs before the outer afterEach
    // that stops Redis
    afterEach(async () => {
      if (c) await c.closeAll();
      c = undefined;
    });

    const setup = async () => {
      const { url, handle, adapterOpts } = getTarget();
      c = await createCluster({ redis: url, redisHandle: handle, nodes, adapterOpts });
      return c;
    };
    const ids = (sockets) => sockets.map((s) => s.id).sort();

    it("broadcasts (all, room)", async () => {
      await setup();
      const got = record(c.clients, "ev");
      c.servers[0].emit("ev", "all", Buffer.from([1]));
      for (const g of got) await waitForCount(g, 1);
      expect(got.every((g) => g[0][0] === "all" && Buffer.isBuffer(g[0][1]))).toBe(true);
      c.serverSockets[2].join("room");
      c.servers[1].to("room").emit("ev", "room");
      await waitForCount(got[2], 2);
      await c.fence(1);
      expect(got.map((g) => g.length)).toEqual([1, 1, 2]);
    });

    it("broadcasts with acks", async () => {
      await setup();
      c.clients.forEach((cl, i) => cl.on("ack-ev", (cb) => cb(i)));
      for (const from of [0, 1]) {
        const responses = await c.servers[from].timeout(3000).emitWithAck("ack-ev");
        expect(responses.sort()).toEqual([0, 1, 2]);
      }
    });

    it("fetchSockets", async () => {
      await setup();
      c.serverSockets.forEach((s, i) => (s.data = { i }));
      for (const from of [0, 1, 2]) {
        const sockets = await c.servers[from].fetchSockets();
        expect(ids(sockets)).toEqual(ids(c.serverSockets));
        expect(sockets.map((s) => s.data.i).sort()).toEqual([0, 1, 2]);
      }
      expect(await c.servers[1].of("/").adapter.serverCount()).toBe(3);
    });

    it("serverSideEmit with ack", async () => {
      await setup();
      c.servers.forEach((io, i) => io.on("ask", (arg, cb) => cb(`${arg}${i}`)));
      for (const from of [0, 1]) {
        // The official adapter counts the nodes with NUMSUB on the nodes its client knows: an
        // ioredis Cluster that has not yet learnt the whole topology undercounts (an answer
        // then goes missing with no error). Ask once the asker itself counts all three.
        await waitUntil(async () => (await c.servers[from].of("/").adapter.serverCount()) === 3, {
          what: `node ${from} counting 3 servers`,
        });
        const [err, responses] = await new Promise((resolve) =>
          c.servers[from].serverSideEmit("ask", "n", (...args) => resolve(args)),
        );
        expect(err).toBeNull();
        expect(responses.sort()).toEqual(["n0", "n1", "n2"].filter((r) => r !== `n${from}`));
      }
    });
  });
}

describe("standalone Redis", () => {
  // a fresh redis-server per test: no leftover subscription can skew serverCount()
  let redis;
  beforeEach(async () => {
    redis = await startRedis();
  });
  afterEach(() => redis && redis.stop());

  const kinds = ["node-redis-v5", "node-redis-v4", "ioredis", "url"];
  smokeSuite(
    () => ({ url: redis.url, handle: redis }),
    [
      // controls: the official adapter with each client library it supports
      [official("node-redis-v4"), official("ioredis"), official("node-redis-v5")],
      ...kinds.map((k) => [native(k), native(k), native(k)]),
      ...kinds.map((k) => [native(k), official("node-redis-v5"), native(k)]),
      [native("url"), native("ioredis"), official("ioredis")],
      [official("node-redis-v4"), native("node-redis-v4"), native("node-redis-v5")],
    ],
  );
});

describe("Redis Cluster (3 masters, 3 replicas)", () => {
  let cluster;
  beforeAll(async () => {
    cluster = await startCluster({ masters: 3, replicas: 1 });
  }, 60000);
  afterAll(() => cluster && cluster.stop());

  // the cluster is shared by the tests of this block: one key per test
  let n = 0;
  smokeSuite(
    () => ({ url: cluster.urls, handle: cluster, adapterOpts: { key: `cluster-${++n}` } }),
    [
      [
        official("node-redis-v5-cluster"),
        official("node-redis-v5-cluster"),
        official("node-redis-v5-cluster"),
      ],
      [official("ioredis-cluster"), official("ioredis-cluster"), official("ioredis-cluster")],
      [
        native("node-redis-v5-cluster"),
        native("node-redis-v5-cluster"),
        native("node-redis-v5-cluster"),
      ],
      [native("ioredis-cluster"), native("ioredis-cluster"), native("ioredis-cluster")],
      // Mixed clusters keep one client library per cluster: an ioredis Cluster
      // subscribes on a random node (replicas included) while the official
      // adapter over a node-redis cluster sums PUBSUB NUMSUB over masters only,
      // so mixing them makes node-redis requesters under-count servers.
      [
        native("node-redis-v5-cluster"),
        official("node-redis-v5-cluster"),
        native("node-redis-v5-cluster"),
      ],
      [official("ioredis-cluster"), native("ioredis-cluster"), official("ioredis-cluster")],
    ],
  );
});
