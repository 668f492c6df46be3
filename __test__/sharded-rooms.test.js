"use strict";

// Sharded adapter: wire vectors (encoding and channel choice), room channel subscriptions, the
// official defects kept out, options, close() and Redis restarts.

const notepack = require("notepack.io");
const vectors = require("./vectors/notepack.json");
const { startRedis } = require("./helpers/redis");
const { waitForCount, record, waitUntil } = require("./helpers/cluster");
const {
  createShardedCluster,
  shardChannels,
  shardNumSub,
  waitShardNumSub,
  withSocketIds,
} = require("./helpers/sharded");

describe("sharded wire vectors", () => {
  const { encode, ShardedRedisAdapter } = require("../lib/sharded-adapter");
  const sharded = vectors.filter((v) => /^sharded/.test(v.name));

  it("has the sharded vectors", () => {
    expect(sharded.length).toBeGreaterThanOrEqual(20);
  });

  it.each(sharded.map((v) => [v.name, v]))("%s", (_name, v) => {
    const message = v.codec === "json" ? JSON.parse(eval(v.js)) : eval(v.js);
    // JSON vectors with binary-free data and notepack vectors with binary: one rule (4.4).
    expect(Buffer.from(encode(message)).toString("hex")).toBe(v.hex);
    if ([8, 10, 11, 12].includes(message.type)) {
      expect(v.channel).toMatch(/^socket\.io#\/#[0-9a-f]{16}#$/);
      return;
    }
    const mode = /\((static|dynamic-private|dynamic)\)/.exec(v.name)[1];
    const fake = { opts: { subscriptionMode: mode }, channel: "socket.io#/#" };
    fake.computeRoom = ShardedRedisAdapter.prototype.computeRoom;
    expect(ShardedRedisAdapter.prototype.computeChannel.call(fake, message)).toBe(v.channel);
  });

  it("decodes MessagePack and JSON by the first byte", () => {
    const { decode } = require("../lib/sharded-adapter");
    const msg = {
      type: 3,
      data: { packet: { type: 2, data: ["b", Buffer.from([1])] } },
      uid: "u",
      nsp: "/",
    };
    expect(decode(Buffer.from(notepack.encode(msg))).data.packet.data[1]).toEqual(Buffer.from([1]));
    expect(decode(Buffer.from(JSON.stringify({ type: 9 }))).type).toBe(9);
  });
});

describe("sharded rooms and subscriptions", () => {
  let redis;
  let c;
  beforeAll(async () => {
    redis = await startRedis();
  });
  afterAll(() => redis.stop());
  afterEach(async () => {
    if (c) await c.closeAll();
    c = undefined;
  });

  const setup = (nodes, mode = "dynamic", extra = {}) =>
    createShardedCluster({
      redis: redis.url,
      redisHandle: redis,
      nodes,
      adapterOpts: { subscriptionMode: mode },
      ...extra,
    }).then((ctx) => (c = ctx));

  it("delivers to a public room whose name is 20 characters long (dynamic mode)", async () => {
    await setup(["official", "native", "native"]);
    const room = "abcdefghijklmnopqrst";
    c.serverSockets[1].join(room);
    c.serverSockets[2].join(room);
    await c.waitRoom(room, 2);
    const got = record(c.clients, "ev");
    c.servers[0].to(room).emit("ev", "from-official");
    c.servers[1].to(room).emit("ev", "from-native");
    await waitForCount(got[1], 2);
    await waitForCount(got[2], 2);
    await c.fence(0);
    expect(got[0]).toEqual([]);
  });

  it("delivers to socket ids of another length (custom ids) in dynamic mode", async () => {
    let n = 0;
    const restore = withSocketIds(() => `short-id-${n++}`);
    try {
      await setup(["official", "native", "native"]);
    } finally {
      restore();
    }
    const ids = c.serverSockets.map((s) => s.id);
    expect(ids[1]).toHaveLength(10);
    // Our nodes listen on the dynamic channel of their sockets' rooms, where every sender
    // publishes a single room that does not look like a 20-character socket id.
    await c.waitRoom(ids[1], 1);
    await c.waitRoom(ids[2], 1);
    const got = record(c.clients, "direct");
    c.servers[0].to(ids[1]).emit("direct", "official->native");
    c.servers[1].to(ids[2]).emit("direct", "native->native");
    await waitForCount(got[1], 1);
    await waitForCount(got[2], 1);
    expect(got[1]).toEqual([["official->native"]]);
    expect(got[2]).toEqual([["native->native"]]);
  });

  it.each(["dynamic", "dynamic-private"])(
    "drops the channels of rooms that empty out (%s)",
    async (mode) => {
      await setup(["native", "official"], mode);
      const prefix = "socket.io#/#";
      const sid0 = c.serverSockets[0].id;
      const sid1 = c.serverSockets[1].id;
      // Private rooms have a channel in dynamic-private mode only, on our nodes as on official ones.
      const privateCount = mode === "dynamic-private" ? 1 : 0;
      await waitShardNumSub(redis, `${prefix}${sid0}#`, privateCount);
      await waitShardNumSub(redis, `${prefix}${sid1}#`, privateCount);

      c.serverSockets[0].join(["tmp", 42]);
      c.serverSockets[1].join("tmp");
      await c.waitRoom("tmp", 2);
      await c.waitRoom("42", 1);
      c.serverSockets[0].leave("tmp");
      c.serverSockets[0].leave(42);
      await c.waitRoom("tmp", 1);
      await c.waitRoom("42", 0);
      c.clients[0].disconnect();
      await waitShardNumSub(redis, `${prefix}${sid0}#`, 0);
      const channels = await shardChannels(redis, `${prefix}*`);
      expect(channels.filter((ch) => ch === `${prefix}tmp#`)).toHaveLength(1);
      expect(channels).not.toContain(`${prefix}42#`);
    },
  );

  it("close() unsubscribes the main, response and room channels", async () => {
    await setup(["native"], "dynamic-private");
    c.serverSockets[0].join(["a", "b"]);
    await c.waitRoom("b", 1);
    expect((await shardChannels(redis, "socket.io#*")).length).toBe(5);
    await c.servers[0].of("/").adapter.close();
    await waitUntil(async () => (await shardChannels(redis, "socket.io#*")).length === 0, {
      what: "no shard channel left",
    });
  });

  it("uses the channel prefix and counts servers per namespace", async () => {
    await setup(["native", "official", "native"], "static", {
      adapterOpts: { channelPrefix: "my-app", subscriptionMode: "static" },
      init: (io) => io.of("/admin"),
      connect: ["/", "/admin"],
    });
    expect(await shardNumSub(redis, "my-app#/admin#")).toBe(3);
    expect(await c.servers[1].of("/admin").adapter.serverCount()).toBe(3);
    const got = record(c.nsClients["/admin"], "adm");
    c.servers[0].of("/admin").emit("adm", 1);
    for (const g of got) await waitForCount(g, 1);
  });

  it("rejects invalid options at creation", () => {
    const { createShardedAdapter, InvalidOptionError } = require("..");
    expect(() =>
      createShardedAdapter(redis.url, undefined, { subscriptionMode: "dynamik" }),
    ).toThrow(InvalidOptionError);
    expect(() => createShardedAdapter(redis.url, undefined, { channelPrefix: 1 })).toThrow(
      /channelPrefix/,
    );
  });

  it("delivers locally while Redis is down and resubscribes when it is back", async () => {
    await setup(["native", "native"], "dynamic");
    c.serverSockets[1].join("r");
    await c.waitRoom("r", 1);
    await redis.kill();
    const local = record([c.clients[0]], "down");
    c.servers[0].emit("down", 1);
    await waitForCount(local[0], 1);
    await redis.restart();
    await waitShardNumSub(redis, "socket.io#/#", 2, 15000);
    await c.waitRoom("r", 1);
    const got = record(c.clients, "back");
    c.servers[0].to("r").emit("back", "room");
    c.servers[1].emit("back", "all");
    await waitForCount(got[0], 1);
    await waitForCount(got[1], 2);
  });
});
