"use strict";

// Emitter, sharded and streams targets: wire format against the captured vectors, and delivery
// to official createShardedAdapter nodes (each subscriptionMode) and official
// @socket.io/redis-streams-adapter nodes (streamCount 1 and 3).

const http = require("http");
const { Server } = require("socket.io");
const { io: ioc } = require("socket.io-client");
const { createClient } = require("redis");
const notepack = require("notepack.io");
const msgpackJs = require("@msgpack/msgpack");
const { createShardedAdapter } = require("@socket.io/redis-adapter");
const streamsAdapter = require("@socket.io/redis-streams-adapter");
const { hashCode: officialHashCode } = require("@socket.io/redis-streams-adapter/dist/util");
const { startRedis, waitUntil } = require("./helpers/redis");
const { waitFor, waitForCount, record } = require("./helpers/cluster");
const notepackVectors = require("./vectors/notepack.json");
const streamsVectors = require("./vectors/streams.json");
const { Emitter } = require("..");
const { ShardedTarget, StreamsTarget } = require("../lib/emitter-wire");

const noop = () => {};

/** The emitter operation that produces the message of a captured vector. */
function opFor(type, data) {
  const o = data.opts || {};
  const base = { rooms: o.rooms, except: o.except, flags: o.flags };
  switch (type) {
    case 3:
      return { kind: "broadcast", data: data.packet.data, ...base };
    case 4:
      return { kind: "join", targetRooms: data.rooms, ...base };
    case 5:
      return { kind: "leave", targetRooms: data.rooms, ...base };
    case 6:
      return { kind: "disconnect", close: data.close, ...base };
    case 9:
      return { kind: "serverSideEmit", data: data.packet };
  }
  return null;
}

const withEmitterUid = (obj) => Object.assign(obj, { uid: "emitter" }); // keeps the key's place

describe("Emitter wire format (sharded, streams) vs the captured vectors", () => {
  // what an emitter can send: no ack, no response
  const shardedCases = notepackVectors.filter((v) => {
    if (!v.name.startsWith("sharded")) return false;
    const js = v.codec === "json" ? JSON.parse(eval(v.js)) : eval(v.js);
    return opFor(js.type, js.data) && js.data.requestId === undefined;
  });

  it("covers every sharded message kind and mode", () => {
    const seen = new Set(shardedCases.map((v) => `${v.adapter} ${v.name.split(":")[0]}`));
    expect(shardedCases.length).toBeGreaterThanOrEqual(10);
    expect([...seen].join()).toMatch(/static/);
    expect([...seen].join()).toMatch(/dynamic-private/);
  });

  it.each(shardedCases.map((v) => [v.name, v]))("sharded: %s", (_name, v) => {
    const mode = /\(sharded, ([a-z-]+)\)/.exec(v.adapter)[1];
    const target = new ShardedTarget({ channelPrefix: "socket.io", subscriptionMode: mode });
    const message = withEmitterUid(v.codec === "json" ? JSON.parse(eval(v.js)) : eval(v.js));
    const expected =
      v.codec === "json" ? Buffer.from(JSON.stringify(message)) : notepack.encode(message);
    const { publish } = target.write(message.nsp, opFor(message.type, message.data));
    expect(publish.channel).toBe(v.channel);
    expect(publish.sharded).toBe(true);
    expect(publish.payload.toString("hex")).toBe(expected.toString("hex"));
  });

  const streamsCases = streamsVectors.filter(
    (v) =>
      (v.command === "XADD" && v.fields) ||
      (v.command === "PUBLISH" && /type 9: serverSideEmit$/.test(v.name)),
  );

  it.each(streamsCases.map((v) => [v.name, v]))("streams: %s", (_name, v) => {
    const target = new StreamsTarget({
      streamName: "socket.io",
      streamCount: 1,
      maxLen: 10000,
      channelPrefix: "socket.io",
    });
    if (v.command === "XADD") {
      const data = v.dataJs ? eval(v.dataJs) : JSON.parse(v.fields.data);
      const { xadd } = target.write(v.fields.nsp, opFor(Number(v.fields.type), data));
      expect(xadd.stream).toBe(v.key);
      expect([xadd.maxLen, "~"]).toEqual([Number(v.xaddArgs[2]), v.xaddArgs[1]]);
      expect(xadd.fields).toEqual(Object.entries({ ...v.fields, uid: "emitter" }).flat());
    } else {
      const message = withEmitterUid(eval(v.js));
      const { publish } = target.write(message.nsp, opFor(message.type, message.data));
      expect(publish).toEqual({
        channel: v.channel,
        sharded: false,
        payload: Buffer.from(msgpackJs.encode(message)),
      });
    }
  });

  it("streams: names the stream of a namespace as the official adapter, except for negative hashes", () => {
    const target = (streamCount) =>
      new StreamsTarget({ streamName: "s", streamCount, maxLen: 5, channelPrefix: "socket.io" });
    const op = { kind: "broadcast", data: ["x"], rooms: [], except: [], flags: {} };
    // official: "s--1", read by no node; ours: the stream every node (official too) reads
    expect(officialHashCode("/abcdefgh") % 4).toBe(-1);
    expect(target(4).write("/abcdefgh", op).xadd.stream).toBe("s-3");
    for (const nsp of ["/", "/custom", "/a", "/chat", "/abcdefgh", "/é"]) {
      for (const count of [1, 2, 3, 7]) {
        const index = officialHashCode(nsp) % count;
        const expected = count === 1 ? "s" : `s-${index < 0 ? index + count : index}`;
        expect(target(count).write(nsp, op).xadd.stream).toBe(expected);
      }
    }
  });
});

// ------------------------------------------------------------------ official nodes

/** N socket.io servers (official adapters), one client each on "/" and "/custom". */
async function buildCluster(n, makeAdapter) {
  const ctx = { servers: [], httpServers: [], closers: [], clients: {}, sockets: {}, sse: [] };
  ctx.close = async () => {
    for (const list of Object.values(ctx.clients)) list.forEach((c) => c.disconnect());
    await Promise.all(ctx.servers.map((io) => new Promise((resolve) => io.close(() => resolve()))));
    await Promise.all(ctx.closers.map((f) => f().catch(noop)));
  };
  try {
    for (let i = 0; i < n; i++) {
      const { adapter, close } = await makeAdapter();
      ctx.closers.push(close);
      const httpServer = http.createServer();
      const io = new Server(httpServer, { adapter });
      io.on("sse", (...args) => ctx.sse.push([i, ...args]));
      io.of("/custom");
      await new Promise((resolve) => httpServer.listen(0, "127.0.0.1", resolve));
      ctx.servers.push(io);
      ctx.httpServers.push(httpServer);
    }
    for (const nsp of ["/", "/custom"]) {
      ctx.clients[nsp] = [];
      ctx.sockets[nsp] = [];
      for (let i = 0; i < n; i++) {
        const client = ioc(`http://127.0.0.1:${ctx.httpServers[i].address().port}${nsp}`, {
          forceNew: true,
          transports: ["websocket"],
          reconnection: false,
        });
        ctx.clients[nsp].push(client);
        await waitFor(client, "connect", 5000);
        ctx.sockets[nsp].push(ctx.servers[i].of(nsp).sockets.get(client.id));
      }
    }
  } catch (err) {
    await ctx.close();
    throw err;
  }
  return ctx;
}

async function nodeRedis(url) {
  const client = createClient({ url });
  client.on("error", noop);
  await client.connect();
  return client;
}

const shardNumSub = async (redis, channel) =>
  parseInt((await redis.cli(["PUBSUB", "SHARDNUMSUB", channel])).split("\n").pop(), 10) || 0;
const numSub = async (redis, channel) =>
  parseInt((await redis.cli(["PUBSUB", "NUMSUB", channel])).split("\n").pop(), 10) || 0;
const blockedReaders = async (redis) =>
  ((await redis.cli(["CLIENT", "LIST"])).match(/ cmd=xread /g) || []).length;

/** The same scenarios for every target: `ready(channelOrRoom)` waits for the servers' subscriptions. */
function deliveryScenarios(getCtx, getEmitter, waitRoom) {
  const expectEvents = async (got, expected) => {
    for (let i = 0; i < expected.length; i++) await waitForCount(got[i], expected[i].length);
    expect(got).toEqual(expected);
  };

  it("emits to all (binary arguments), to a room, to a socket id, except a room", async () => {
    const c = getCtx();
    const emitter = getEmitter();
    const [s0, s1] = c.sockets["/"];
    s0.join("room1");
    s1.join(["room1", "vip"]);
    await waitRoom("room1", 2);
    await waitRoom("vip", 1);
    const got = record(c.clients["/"], "ev");
    const bin = Buffer.from([1, 2, 3]);
    await emitter.emit("ev", "all", bin);
    await emitter.to("vip").emit("ev", "vip");
    await emitter.to(s0.id).emit("ev", "direct");
    await emitter.to("room1").except("vip").emit("ev", "room1 not vip");
    await emitter.to(["room1", "nobody"]).emit("ev", "two rooms");
    await expectEvents(got, [
      [["all", bin], ["direct"], ["room1 not vip"], ["two rooms"]],
      [["all", bin], ["vip"], ["two rooms"]],
    ]);
    // on its own: socket.io drops a volatile packet while the transport is busy
    await emitter.volatile.compress(false).emit("ev", "volatile");
    await expectEvents(got, [
      [["all", bin], ["direct"], ["room1 not vip"], ["two rooms"], ["volatile"]],
      [["all", bin], ["vip"], ["two rooms"], ["volatile"]],
    ]);
  });

  it("emits to a custom namespace with of(), and serverSideEmit reaches every server", async () => {
    const c = getCtx();
    const emitter = getEmitter();
    const custom = record(c.clients["/custom"], "ev");
    const main = record(c.clients["/"], "ev");
    expect(await emitter.of("custom").emit("ev", "custom")).toBe(true);
    await expectEvents(custom, [[["custom"]], [["custom"]]]);
    expect(await emitter.serverSideEmit("sse", "hello", 1)).toBe(true);
    await waitUntil(() => c.sse.length === 2, { what: "serverSideEmit on both servers" });
    expect(c.sse.sort()).toEqual([
      [0, "hello", 1],
      [1, "hello", 1],
    ]);
    expect(main).toEqual([[], []]);
  });

  it("socketsJoin, socketsLeave and disconnectSockets", async () => {
    const c = getCtx();
    const emitter = getEmitter();
    const [s0, s1] = c.sockets["/"];
    s0.join("room1");
    await waitRoom("room1", 1);
    await emitter.to("room1").socketsJoin(["joined", "other"]);
    await emitter.except("room1").socketsJoin("rest");
    await waitUntil(() => s0.rooms.has("joined") && s0.rooms.has("other") && s1.rooms.has("rest"), {
      what: "socketsJoin",
    });
    expect([s1.rooms.has("joined"), s0.rooms.has("rest")]).toEqual([false, false]);
    await emitter.socketsLeave("other");
    await waitUntil(() => !s0.rooms.has("other"), { what: "socketsLeave" });
    const gone = waitFor(c.clients["/"][1], "disconnect", 5000);
    await emitter.to("rest").disconnectSockets(true);
    expect((await gone)[0]).toBe("io server disconnect");
    expect(c.clients["/"][0].connected).toBe(true);
  });
}

describe.each(["static", "dynamic", "dynamic-private"])(
  "Emitter (sharded) reaches official createShardedAdapter nodes [%s]",
  (subscriptionMode) => {
    let redis;
    let c;
    let emitter;
    beforeAll(async () => {
      redis = await startRedis();
    });
    afterAll(() => redis.stop());
    beforeEach(async () => {
      c = await buildCluster(2, async () => {
        const pub = await nodeRedis(redis.url);
        const sub = await nodeRedis(redis.url);
        return {
          adapter: createShardedAdapter(pub, sub, { subscriptionMode }),
          close: () => Promise.all([pub.quit(), sub.quit()]),
        };
      });
      await waitUntil(async () => (await shardNumSub(redis, "socket.io#/#")) === 2, {
        what: "SSUBSCRIBE",
      });
      await waitUntil(async () => (await shardNumSub(redis, "socket.io#/custom#")) === 2, {
        what: "SSUBSCRIBE",
      });
      emitter = new Emitter(redis.url, { adapter: "sharded", subscriptionMode });
    });
    afterEach(async () => {
      await emitter.close();
      await c.close();
    });

    // in the dynamic modes a node subscribes to a room's channel when the room appears locally
    const waitRoom = async (room, count) => {
      if (subscriptionMode === "static") return;
      const channel = `socket.io#/#${room}#`;
      await waitUntil(async () => (await shardNumSub(redis, channel)) >= count, { what: channel });
    };
    deliveryScenarios(
      () => c,
      () => emitter,
      waitRoom,
    );

    it("uses the channel computeChannel picks in this mode", async () => {
      const sid = c.sockets["/"][0].id;
      if (subscriptionMode === "dynamic-private") await waitRoom(sid, 1);
      const got = record(c.clients["/"], "ev");
      await emitter.to(sid).emit("ev", "to sid");
      await waitForCount(got[0], 1);
      expect(got).toEqual([[["to sid"]], []]);
      const target = new ShardedTarget({ channelPrefix: "socket.io", subscriptionMode });
      const op = { kind: "broadcast", data: ["ev"], rooms: [sid], except: [], flags: {} };
      const expected =
        subscriptionMode === "dynamic-private" ? `socket.io#/#${sid}#` : "socket.io#/#";
      expect(target.write("/", op).publish.channel).toBe(expected);
      op.rooms = ["room1"];
      expect(target.write("/", op).publish.channel).toBe(
        subscriptionMode === "static" ? "socket.io#/#" : "socket.io#/#room1#",
      );
    });
  },
);

describe.each([1, 3])(
  "Emitter (streams) reaches official redis-streams-adapter nodes [streamCount %i]",
  (streamCount) => {
    let redis;
    let c;
    let emitter;
    beforeAll(async () => {
      redis = await startRedis();
    });
    afterAll(() => redis.stop());
    beforeEach(async () => {
      c = await buildCluster(2, async () => {
        const client = await nodeRedis(redis.url);
        return {
          adapter: streamsAdapter.createAdapter(client, { streamCount }),
          close: () => client.quit(),
        };
      });
      // every reader is blocked on XREAD "$" (so it sees what comes next) and every server listens
      await waitUntil(async () => (await blockedReaders(redis)) >= 2 * streamCount, {
        what: "XREAD readers",
      });
      await waitUntil(async () => (await numSub(redis, "socket.io#/#")) === 2, {
        what: "SUBSCRIBE",
      });
      emitter = new Emitter(redis.url, { adapter: "streams", streamCount });
    });
    afterEach(async () => {
      await emitter.close();
      await c.close();
    });

    deliveryScenarios(
      () => c,
      () => emitter,
      async () => {},
    );

    it("writes each namespace to its stream, with the requested MAXLEN", async () => {
      const streamOf = (nsp) =>
        streamCount === 1 ? "socket.io" : `socket.io-${officialHashCode(nsp) % streamCount}`;
      for (const nsp of ["/", "/custom"]) {
        const before = Number(await redis.cli(["XLEN", streamOf(nsp)]));
        await emitter.of(nsp).emit("counted");
        expect(Number(await redis.cli(["XLEN", streamOf(nsp)]))).toBe(before + 1);
        const last = await redis.cli(["XREVRANGE", streamOf(nsp), "+", "-", "COUNT", "1"]);
        expect(last.split("\n").slice(1)).toEqual([
          "uid",
          "emitter",
          "nsp",
          nsp,
          "type",
          "3",
          "data",
          JSON.stringify({
            packet: { type: 2, data: ["counted"] },
            opts: { rooms: [], except: [], flags: {} },
          }),
        ]);
      }
      // "/abcdefgh" has a negative hash: the official naming gives "odd--1", read by no node;
      // ours writes to "odd-3", which every node reads
      const odd = new Emitter(redis.url, {
        adapter: "streams",
        streamName: "odd",
        streamCount: 4,
        maxLen: 2,
      });
      for (let i = 0; i < 3; i++) await odd.of("/abcdefgh").emit("x", i);
      expect(Number(await redis.cli(["XLEN", "odd-3"]))).toBeGreaterThanOrEqual(2);
      expect(Number(await redis.cli(["XLEN", "odd--1"]))).toBe(0);
      await odd.close();
    });
  },
);
