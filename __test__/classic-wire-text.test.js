"use strict";

// The fast paths of the classic adapter (lib/event-text.js, src/codec/msgpack/event_wire.rs):
// a native sender serializes plain-JSON events once and builds the MessagePack envelope in
// Rust; a native receiver gets the text socket.io sends to clients straight from Rust. Both
// must be invisible: the bytes on Redis equal notepack's, and the frames clients receive
// equal those an official node sends, for every kind of payload (the ones the fast paths
// refuse included).

const notepack = require("notepack.io");
const { startRedis } = require("./helpers/redis");
const { createCluster, waitUntil } = require("./helpers/cluster");
const { PAYLOADS, captureFrames, ownClientFrames } = require("./helpers/wire-payloads");

const NODES = ["official", "native", "official", "native"];

describe("classic fast paths are byte-identical to the official adapter", () => {
  let redis;
  let c;

  beforeAll(async () => {
    redis = await startRedis();
    c = await createCluster({ redis: redis.url, redisHandle: redis, nodes: NODES });
  });

  afterAll(async () => {
    if (c) await c.closeAll();
    await redis.stop();
  });

  it.each([
    [0, "an official sender"],
    [1, "a native sender"],
  ])("clients of every node receive identical frames from %s", async (from, _what) => {
    const receivers = c.clients.map((client, i) => i).filter((i) => i !== from);
    const frames = captureFrames(receivers.map((i) => c.clients[i]));
    for (const [, args] of PAYLOADS) c.servers[from].emit("ev", ...args);
    // Binary events arrive as a text header plus attachments; the rest as one text frame.
    await waitUntil(
      () => frames.every((f) => f.filter((x) => typeof x === "string").length >= PAYLOADS.length),
      { timeout: 10000, what: "every payload on every client" },
    );
    await c.fence(from);
    const [reference, ...others] = frames;
    expect(reference.length).toBeGreaterThanOrEqual(PAYLOADS.length);
    for (const other of others) expect(other).toEqual(reference);
    // The official receivers define the expected text; spot-check a few against JSON.stringify.
    expect(reference[0]).toBe(`2${JSON.stringify(["ev", ...PAYLOADS[0][1]])}`);
    expect(reference).toContain(`2${JSON.stringify(["ev", ...PAYLOADS[4][1]])}`);
  });

  it("a native sender's own clients get the frames an official sender's own clients get", async () => {
    const { official, native } = await ownClientFrames(c, 0, 1);
    expect(official.length).toBeGreaterThan(PAYLOADS.length);
    expect(native).toEqual(official);
  });

  it("native receivers hand plain and binary events over as socket.io's wire, the rest through JS", async () => {
    const before = c.servers[1].of("/").adapter.metrics();
    for (const [, args] of PAYLOADS) c.servers[0].emit("ev", ...args);
    await c.fence(0);
    const after = c.servers[1].of("/").adapter.metrics();
    const asText = after.deliveredAsText - before.deliveredAsText;
    const delivered = after.delivered - before.delivered;
    // Integer-like keys (JS reorders them) and an own "__proto__" key go through JS; the
    // rest, binary events (text with placeholders, then the attachments) and the fence
    // included, as socket.io's wire. (notepack writes the lone surrogate as valid UTF-8 of
    // another character, which both paths then show alike.)
    expect(delivered).toBe(PAYLOADS.length + 1);
    expect(asText).toBe(delivered - 2);
  });

  it("binary events reach a native receiver's polling and WebSocket clients alike, volatile too", async () => {
    // WebSocket clients get the frames the Rust core built; a polling client the packets.
    const { client: polling } = await c.connect(1, "/", { transports: ["polling"] });
    const [ws, poll] = captureFrames([c.clients[1], polling]);
    const nested = { a: Buffer.from([9]), big: Buffer.alloc(300, 4), s: "t" };
    try {
      c.servers[0].emit("ev", Buffer.from([1, 2]), [Buffer.alloc(0), nested]);
      await waitUntil(() => poll.length >= 5 && ws.length >= 5, { what: "the event's 5 messages" });
      // On its own: socket.io drops a volatile packet while the transport is busy (a polling
      // transport is, but while a request waits).
      c.servers[0].volatile.emit("ev", "volatile", Buffer.from("v"));
      await waitUntil(() => ws.length >= 7, { what: "the volatile event" });
    } finally {
      polling.close();
    }
    expect(poll.slice(0, 5)).toEqual(ws.slice(0, 5));
    expect(ws[0]).toBe(
      '54-["ev",{"_placeholder":true,"num":0},[{"_placeholder":true,"num":1},' +
        '{"a":{"_placeholder":true,"num":2},"big":{"_placeholder":true,"num":3},"s":"t"}]]',
    );
    expect(ws.slice(1, 4).map((b) => [...b])).toEqual([[1, 2], [], [9]]);
    expect([...ws[4]]).toEqual(new Array(300).fill(4));
    expect(ws[5]).toBe('51-["ev","volatile",{"_placeholder":true,"num":0}]');
    expect(ws[6].toString()).toBe("v");
  });

  it("onAnyOutgoing listeners of a native receiver see the data, Buffers in place", async () => {
    const seen = [];
    const listener = (...args) => seen.push(args);
    c.serverSockets[1].onAnyOutgoing(listener);
    try {
      const nested = { a: Buffer.from([9]), s: "t", b: [null, Buffer.from("yz")] };
      c.servers[0].emit("ev", "plain", { n: 1 });
      c.servers[0].emit("ev", Buffer.from([1, 2]), [Buffer.alloc(0), nested]);
      await waitUntil(() => seen.length >= 2, { what: "2 outgoing events" });
    } finally {
      c.serverSockets[1].offAnyOutgoing(listener);
    }
    expect(seen[0]).toEqual(["ev", "plain", { n: 1 }]);
    const [name, first, [empty, nested]] = seen[1];
    expect(name).toBe("ev");
    expect(Buffer.isBuffer(first) && [...first]).toEqual([1, 2]);
    expect(Buffer.isBuffer(empty) && empty.length).toBe(0);
    expect([...nested.a]).toEqual([9]);
    expect(nested.s).toBe("t");
    expect(nested.b[0]).toBeNull();
    expect(nested.b[1].toString()).toBe("yz");
  });

  it.each([
    ["to all", (io) => io, { rooms: [], except: [], flags: {} }],
    ["to a room", (io) => io.to("room1"), { rooms: ["room1"], except: [], flags: {} }],
    [
      "to rooms except one",
      (io) => io.to(["room1", "room2"]).except("room3"),
      { rooms: ["room1", "room2"], except: ["room3"], flags: {} },
    ],
    [
      "volatile, uncompressed",
      (io) => io.volatile.compress(false),
      { rooms: [], except: [], flags: { volatile: true, compress: false } },
    ],
  ])("envelopes of a native sender equal notepack's (%s)", async (_what, target, opts) => {
    const messages = await c.monitor();
    const native = c.servers[1].of("/").adapter;
    c.serverSockets[0].join("room1");
    for (const [, args] of PAYLOADS) target(c.servers[1]).emit("ev", ...args);
    await waitUntil(
      () => messages.filter((m) => m.channel.startsWith(`${c.key}#`)).length >= PAYLOADS.length,
      { timeout: 10000, what: "every envelope" },
    );
    const published = messages.filter((m) => m.channel.startsWith(`${c.key}#`));
    expect(published).toHaveLength(PAYLOADS.length);
    published.forEach((m, i) => {
      const decoded = notepack.decode(m.message);
      expect(decoded[0]).toBe(native.uid);
      // What the official adapter publishes for the same emit: notepack of the same objects.
      const expected = notepack.encode([
        native.uid,
        { type: 2, data: ["ev", ...PAYLOADS[i][1]], nsp: "/" },
        opts,
      ]);
      expect(Buffer.from(m.message).equals(Buffer.from(expected))).toBe(true);
    });
  });
});
