"use strict";

// Streams adapter: features across native nodes and mixed with official
// @socket.io/redis-streams-adapter 0.3 nodes (both directions: every test emits or asks from
// every node kind of the topology).

const util = require("util");
const msgpack = require("@msgpack/msgpack");
const { startRedis } = require("./helpers/redis");
const {
  createStreamsCluster,
  expectEachNamespaceReached,
  record,
  waitForCount,
  sleep,
} = require("./helpers/streams-cluster");

const TOPOLOGIES = [
  ["native", "native", "native"],
  ["native", "official", "native"],
  ["official", "native", "official"],
];

describe.each(TOPOLOGIES.map((t) => [t.join("/"), t]))("streams [%s]", (_name, nodes) => {
  let redis;
  let c;

  beforeEach(async () => {
    redis = await startRedis();
  });

  afterEach(async () => {
    if (c) await c.closeAll();
    c = undefined;
    await redis.stop();
  });

  const setup = (extra = {}) =>
    createStreamsCluster({ redis, nodes, ...extra }).then((ctx) => (c = ctx));

  it("broadcasts to all clients from every node", async () => {
    await setup();
    const got = record(c.clients["/"], "ev");
    c.servers.forEach((io, i) => io.emit("ev", i, { a: [i] }));
    for (const g of got) await waitForCount(g, 3);
    await sleep(100);
    for (const g of got) {
      expect(g.map((a) => a[0]).sort()).toEqual([0, 1, 2]);
      expect(g.find((a) => a[0] === 1)).toEqual([1, { a: [1] }]);
    }
  });

  it("delivers to the other nodes what was emitted right before the adapter closed", async () => {
    await setup();
    const got = record(c.clients["/"], "ev");
    for (let i = 0; i < 20; i++) c.servers[0].emit("ev", i, Buffer.from([i]));
    for (let i = 0; i < 20; i++) c.servers[0].emit("ev", i);
    c.servers[0].of("/").adapter.close();
    for (const g of got.slice(1)) await waitForCount(g, 40);
    await sleep(100);
    for (const g of got.slice(1)) {
      expect(g.map((a) => a[0])).toEqual([...Array(20).keys(), ...Array(20).keys()]);
      expect(g[3][1]).toEqual(Buffer.from([3]));
    }
  });

  it("writes a binary broadcast's entry as upstream encodes it", async () => {
    await setup();
    const got = record(c.clients["/"], "bin");
    // Twice: the second encoding reuses what the first one left behind.
    for (const n of [1, 2]) {
      c.servers[0]
        .to("r")
        .except("x")
        .emit("bin", n, Buffer.from([n, 0, 255]), { d: [n] });
    }
    c.servers[0].emit("bin", 3, Buffer.alloc(0));
    for (const g of got) await waitForCount(g, 1);
    const lines = (await redis.cli(["XRANGE", "socket.io", "-", "+"])).split("\n");
    const datas = lines.filter((_, i) => i > 0 && lines[i - 1] === "data").slice(-3);
    const expected = [
      [1, { rooms: ["r"], except: ["x"] }],
      [2, { rooms: ["r"], except: ["x"] }],
      [3, { rooms: [], except: [] }],
    ].map(([n, targets]) => {
      const args = n === 3 ? [3, Buffer.alloc(0)] : [n, Buffer.from([n, 0, 255]), { d: [n] }];
      const data = { packet: { type: 2, data: ["bin", ...args] }, opts: { ...targets, flags: {} } };
      const bytes = msgpack.encode(data);
      return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString("base64");
    });
    expect(datas).toEqual(expected);
  });

  it("broadcasts to a room, with except, and binary", async () => {
    await setup();
    const ss = c.serverSockets["/"];
    ss[0].join("room1");
    ss[2].join(["room1", "room2"]);
    const got = record(c.clients["/"], "ev");
    c.servers[1].to("room1").emit("ev", "r");
    c.servers[0].to("room1").except("room2").emit("ev", "x");
    c.servers[2].emit("ev", "bin", Buffer.from([1, 2, 3]));
    await waitForCount(got[0], 3);
    await waitForCount(got[1], 1);
    await waitForCount(got[2], 2);
    await sleep(150);
    expect(got[0].map((a) => a[0]).sort()).toEqual(["bin", "r", "x"]);
    expect(got[1].map((a) => a[0])).toEqual(["bin"]);
    expect(got[2].map((a) => a[0]).sort()).toEqual(["bin", "r"]);
    for (const g of got) {
      const bin = g.find((a) => a[0] === "bin");
      expect(Buffer.from(bin[1])).toEqual(Buffer.from([1, 2, 3]));
    }
  });

  it("collects client acks from every node", async () => {
    await setup();
    c.clients["/"].forEach((client, i) => client.on("ask", (cb) => cb(`c${i}`)));
    for (const io of c.servers) {
      const answers = await io.timeout(3000).emitWithAck("ask");
      expect(answers.sort()).toEqual(["c0", "c1", "c2"]);
    }
  });

  it("fetchSockets and socketsJoin across nodes", async () => {
    await setup();
    for (const io of c.servers) {
      const sockets = await io.fetchSockets();
      expect(sockets.map((s) => s.id).sort()).toEqual(c.serverSockets["/"].map((s) => s.id).sort());
    }
    c.servers[1].socketsJoin("joined");
    await sleep(300);
    for (const s of c.serverSockets["/"]) expect(s.rooms.has("joined")).toBe(true);
  });

  it.each([
    ["parsed on first use", {}],
    ["plain objects with lazyRemoteHandshakes: false", { lazyRemoteHandshakes: false }],
  ])("fetchSockets gives every remote socket's details, handshakes %s", async (_, opts) => {
    await setup({ opts });
    const locals = c.serverSockets["/"];
    locals.forEach((s, i) => {
      s.data = { node: i, list: [i, "x"] };
      s.join(`room-${i}`);
    });
    for (let from = 0; from < c.servers.length; from++) {
      const sockets = await c.servers[from].fetchSockets();
      expect(sockets.map((s) => s.id).sort()).toEqual(locals.map((s) => s.id).sort());
      for (const remote of sockets) {
        const i = locals.findIndex((s) => s.id === remote.id);
        if (remote === locals[i]) continue;
        expect(remote.data).toEqual({ node: i, list: [i, "x"] });
        expect([...remote.rooms].sort()).toEqual([remote.id, `room-${i}`].sort());
        const { sessionStore, ...handshake } = locals[i].handshake;
        expect({ ...remote.handshake }).toEqual(JSON.parse(JSON.stringify(handshake)));
        expect(remote.handshake.query).toEqual(expect.objectContaining({ EIO: "4" }));
        if (nodes[from] === "native") {
          expect(util.types.isProxy(remote.handshake)).toBe(opts.lazyRemoteHandshakes !== false);
        }
      }
    }
  });

  it("serverSideEmit with and without ack", async () => {
    await setup();
    const got = record(c.servers, "hello");
    c.servers[0].serverSideEmit("hello", 1);
    await waitForCount(got[1], 1);
    await waitForCount(got[2], 1);
    expect(got[0]).toEqual([]);
    c.servers.forEach((io, i) => io.on("ping", (cb) => cb(`s${i}`)));
    for (let i = 0; i < c.servers.length; i++) {
      const answers = await c.servers[i].serverSideEmitWithAck("ping");
      expect(answers.sort()).toEqual(["s0", "s1", "s2"].filter((s) => s !== `s${i}`));
    }
  });

  it("spreads namespaces over 3 streams", async () => {
    const namespaces = ["/", "/a", "/b", "/chat"];
    await setup({ opts: { streamCount: 3 }, namespaces });
    await expectEachNamespaceReached(c, namespaces);
    const keys = (await redis.cli(["KEYS", "socket.io-*"])).split("\n").sort();
    expect(keys.every((k) => /^socket\.io-[0-2]$/.test(k))).toBe(true);
  });
});

// useShardedPubSub: requests and responses over SSUBSCRIBE/SPUBLISH on the same channel names
// as the official 0.3.1 adapter (a standalone Redis 7 serves shard channels too).
describe.each([
  ["native/official/native", ["native", "official", "native"]],
  ["official/native/official", ["official", "native", "official"]],
])("streams with useShardedPubSub [%s]", (_name, nodes) => {
  let redis;
  let c;

  beforeEach(async () => {
    redis = await startRedis();
    c = await createStreamsCluster({ redis, nodes, opts: { useShardedPubSub: true } });
  });

  afterEach(async () => {
    if (c) await c.closeAll();
    c = undefined;
    await redis.stop();
  });

  it("holds shard-channel subscriptions only", async () => {
    const shard = await redis.cli(["PUBSUB", "SHARDNUMSUB", "socket.io#/#"]);
    const classic = await redis.cli(["PUBSUB", "NUMSUB", "socket.io#/#"]);
    expect(shard.split("\n")[1]).toBe("3");
    expect(classic.split("\n")[1]).toBe("0");
    const uid = c.servers[0].of("/").adapter.uid;
    const own = await redis.cli(["PUBSUB", "SHARDNUMSUB", `socket.io#/#${uid}#`]);
    expect(own.split("\n")[1]).toBe("1");
  });

  it("serverSideEmit with ack, fetchSockets and broadcast with acks from every node", async () => {
    c.servers.forEach((io, i) => io.on("ping", (arg, cb) => cb(`s${i}:${arg}`)));
    c.clients["/"].forEach((client, i) => client.on("ask", (cb) => cb(`c${i}`)));
    const ids = c.serverSockets["/"].map((s) => s.id).sort();
    for (let i = 0; i < c.servers.length; i++) {
      const io = c.servers[i];
      const replies = await io.serverSideEmitWithAck("ping", i);
      expect(replies.sort()).toEqual(
        ["s0", "s1", "s2"].filter((s) => s !== `s${i}`).map((s) => `${s}:${i}`),
      );
      const sockets = await io.fetchSockets();
      expect(sockets.map((s) => s.id).sort()).toEqual(ids);
      const answers = await io.timeout(3000).emitWithAck("ask");
      expect(answers.sort()).toEqual(["c0", "c1", "c2"]);
    }
  });
});

describe("lazyRemoteHandshakes option (streams)", () => {
  it("rejects what is not a boolean, before any connection", () => {
    const { createAdapter } = require("../streams");
    for (const bad of ["no", 0, null]) {
      expect(() => createAdapter("redis://127.0.0.1:1", { lazyRemoteHandshakes: bad })).toThrow(
        /lazyRemoteHandshakes/,
      );
    }
  });
});
