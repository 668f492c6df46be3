"use strict";

// The sharded adapter's fast paths (src/protocol/cluster_event.rs, lib/event-text.js): a JSON
// BROADCAST message already holds the text socket.io writes for its packet data, and a
// MessagePack one (binary values) is turned into socket.io's BINARY_EVENT text and
// attachments in Rust, so native receivers hand both to clients without a decode in JS and
// socket.io-parser; native senders write the message MessagePack with the Buffers in Rust. It must be invisible: clients of
// native and official receivers get the same frames from official and native senders.

const notepack = require("notepack.io");
const { startRedis } = require("./helpers/redis");
const { waitUntil, record, waitForCount } = require("./helpers/cluster");
const { createShardedCluster } = require("./helpers/sharded");
const { PAYLOADS, captureFrames, ownClientFrames } = require("./helpers/wire-payloads");

const NODES = ["official", "native", "official", "native"];

describe("sharded receive fast path", () => {
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
    createShardedCluster({ redis: redis.url, redisHandle: redis, nodes: NODES, ...extra }).then(
      (ctx) => (c = ctx),
    );

  it.each([
    [0, "an official sender"],
    [1, "a native sender"],
  ])("clients of every node receive identical frames from %s", async (from) => {
    await setup();
    const receivers = [0, 1, 2, 3].filter((i) => i !== from);
    const frames = captureFrames(receivers.map((i) => c.clients[i]));
    for (const [, args] of PAYLOADS) c.servers[from].emit("ev", ...args);
    await waitUntil(
      () => frames.every((f) => f.filter((x) => typeof x === "string").length >= PAYLOADS.length),
      { timeout: 10000, what: "every payload on every client" },
    );
    await c.fence(from);
    const [reference, ...others] = frames;
    for (const other of others) expect(other).toEqual(reference);
    expect(reference[0]).toBe(`2${JSON.stringify(["ev", ...PAYLOADS[0][1]])}`);
  });

  it("a native sender's own clients get the frames an official sender's own clients get", async () => {
    await setup();
    const { official, native } = await ownClientFrames(c, 0, 1);
    expect(official.length).toBeGreaterThan(PAYLOADS.length);
    expect(native).toEqual(official);
  });

  it.each([
    ["to all", (io) => io, { rooms: [], except: [], flags: {} }],
    ["to one room", (io) => io.to("room1"), { rooms: ["room1"], except: [], flags: {} }],
    [
      "to rooms with characters JSON escapes",
      (io) => io.to(['a"b\\', "é\n\u2028"]),
      { rooms: ['a"b\\', "é\n\u2028"], except: [], flags: {} },
    ],
    [
      "to a room except another, uncompressed",
      (io) => io.to("room1").except("room3").compress(false),
      { rooms: ["room1"], except: ["room3"], flags: { compress: false } },
    ],
  ])("a native sender publishes what the official one does (%s)", async (_what, target, opts) => {
    await setup();
    const client = await c.rawClient();
    const published = [];
    const listener = (message) => published.push(message);
    await client.sSubscribe(["socket.io#/#", "socket.io#/#room1#"], listener, true);
    const native = c.servers[1].of("/").adapter;
    for (const [, args] of PAYLOADS) target(c.servers[1]).emit("ev", ...args);
    await waitUntil(() => published.length >= PAYLOADS.length, { what: "every message" });
    PAYLOADS.forEach(([name, args], i) => {
      // The object the official adapter builds for the same emit, encoded as it encodes it:
      // MessagePack (notepack) when the packet holds binary values, else JSON.
      const message = {
        type: 3,
        data: { packet: { type: 2, data: ["ev", ...args] }, opts },
        uid: native.uid,
        nsp: "/",
      };
      const expected = name.startsWith("binary")
        ? notepack.encode(message)
        : Buffer.from(JSON.stringify(message));
      expect([name, published[i].toString("hex")]).toEqual([name, expected.toString("hex")]);
    });
  });

  it("native receivers hand JSON and MessagePack (binary) broadcasts over as socket.io's wire", async () => {
    await setup();
    const native = c.servers[1].of("/").adapter;
    const before = native.metrics();
    for (const [, args] of PAYLOADS) c.servers[0].emit("ev", ...args);
    await c.fence(0);
    const after = native.metrics();
    const delivered = after.delivered - before.delivered;
    const asText = after.deliveredAsText - before.deliveredAsText;
    // Every payload plus the fence: the JSON ones as text, the binary ones (MessagePack) as
    // their BINARY_EVENT text and attachments (the frames test above shows clients see no
    // difference).
    expect(delivered).toBe(PAYLOADS.length + 1);
    expect(asText).toBe(delivered);
  });

  it("keeps rooms, exceptions and flags, and a custom namespace's prefix", async () => {
    await setup();
    c.serverSockets[1].join("room1");
    c.serverSockets[3].join(["room1", "room2"]);
    await c.waitRoom("room1", 2); // the dynamic channel of room1: nodes 1 and 3
    const got = record(c.clients, "ev");
    c.servers[0].to("room1").except("room2").emit("ev", "a");
    c.servers[2].to("room1").emit("ev", "b");
    c.servers[0].compress(false).emit("ev", "c"); // flags travel (volatile could be dropped)
    await waitForCount(got[1], 3);
    await waitForCount(got[3], 2);
    await c.fence(0);
    // Two senders: no order between their messages.
    expect(got[1].flat().sort()).toEqual(["a", "b", "c"]);
    expect(got[3].flat().sort()).toEqual(["b", "c"]);

    for (const io of c.servers) io.of("/chat");
    const chat = (await Promise.all(c.servers.map((_, i) => c.connect(i, "/chat")))).map(
      (made) => made.client,
    );
    await c.waitForShardSubscriptions();
    const frames = chat.map((client) => {
      const seen = [];
      client.io.engine.on("packet", (p) => {
        if (p.type === "message" && String(p.data).startsWith("2/chat,")) seen.push(p.data);
      });
      return seen;
    });
    c.servers[0].of("/chat").emit("ev", { x: 1 });
    await waitUntil(() => frames.slice(1).every((f) => f.length === 1), { what: "chat frames" });
    for (const f of frames.slice(1)) expect(f).toEqual(['2/chat,["ev",{"x":1}]']);
  });

  it("a native sender keeps emit order between queued and directly published messages", async () => {
    // Plain-JSON broadcasts wait for the end of the turn in one queue; a Buffer (MessagePack,
    // published by its own call) between them must not overtake them.
    await setup();
    const got = record(c.clients, "ev");
    const io = c.servers[1];
    io.emit("ev", 1);
    io.emit("ev", 2, Buffer.from([2]));
    io.emit("ev", 3);
    for (let i = 4; i <= 300; i++) io.emit("ev", i, "x".repeat(4096));
    for (const i of [0, 2, 3]) await waitForCount(got[i], 300, 10000);
    for (const i of [0, 2, 3]) {
      expect(got[i].map((args) => args[0])).toEqual([...Array(300).keys()].map((k) => k + 1));
      expect([...got[i][1][1]]).toEqual([2]);
    }
  });

  it("is off with connection state recovery (ClusterAdapter then appends an offset)", async () => {
    await setup({ ioOpts: { connectionStateRecovery: {} } });
    const native = c.servers[1].of("/").adapter;
    const got = record(c.clients, "ev");
    c.servers[0].emit("ev", 1);
    await waitForCount(got[1], 1);
    await c.fence(0);
    expect(native.metrics().deliveredAsText).toBe(0);
    expect(got[1][0][0]).toBe(1);
  });
});
