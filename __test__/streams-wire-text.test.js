"use strict";

// The streams adapter's fast paths (src/protocol/stream_entries.rs, lib/streams-adapter.js):
// native readers drop their own entries and hand plain broadcasts to clients as text, with
// the entry id appended under connection state recovery, and binary ones (without recovery)
// as socket.io's BINARY_EVENT text and attachments; native senders serialize a plain
// event once. Clients of every node must receive exactly the frames an official node sends.

const msgpack = require("@msgpack/msgpack");
const { createClient } = require("redis");
const { startRedis } = require("./helpers/redis");
const { waitUntil } = require("./helpers/cluster");
const { createStreamsCluster } = require("./helpers/streams-cluster");
const { PAYLOADS, captureFrames } = require("./helpers/wire-payloads");

const BINARY_PAYLOADS = PAYLOADS.filter(([name]) => name.startsWith("binary")).length;

const NODES = ["official", "native", "official", "native"];

describe.each([
  ["without connection state recovery", {}],
  ["with connection state recovery", { connectionStateRecovery: {} }],
])("streams fast paths %s", (_what, serverOpts) => {
  let redis;
  let c;

  beforeAll(async () => {
    redis = await startRedis();
    c = await createStreamsCluster({ redis, nodes: NODES, serverOpts });
  });
  afterAll(async () => {
    if (c) await c.closeAll();
    await redis.stop();
  });

  it.each([
    [0, "an official sender"],
    [1, "a native sender"],
  ])("every client receives the frames an official node sends, from %s", async (from) => {
    const frames = captureFrames(c.clients["/"]);
    const natives = [1, 3].map((i) => c.servers[i].of("/").adapter);
    const before = natives.map((a) => a.metrics());
    for (const [, args] of PAYLOADS) c.servers[from].emit("ev", ...args);
    await waitUntil(
      () => frames.every((f) => f.filter((x) => typeof x === "string").length >= PAYLOADS.length),
      { timeout: 10000, what: "every payload on every client" },
    );
    await waitUntil(() => frames.every((f) => f.length === frames[0].length), {
      what: "binary attachments",
    });
    // The sender's own clients (local delivery) included; with recovery every frame ends with
    // the same entry id on every node.
    const [reference, ...others] = frames;
    for (const other of others) expect(other).toEqual(reference);
    if (serverOpts.connectionStateRecovery) expect(reference[0]).toMatch(/,"\d+-\d+"\]$/);
    else expect(reference[0]).toBe(`2${JSON.stringify(["ev", ...PAYLOADS[0][1]])}`);

    const after = natives.map((a) => a.metrics());
    const receiving = from === 1 ? [1] : [0, 1]; // index into natives
    for (const i of receiving) {
      // Every JSON entry as text; the binary ones (base64 MessagePack) as BINARY_EVENT text
      // and attachments, except with recovery (the entry id goes into their data in JS).
      expect(after[i].deliveredAsText - before[i].deliveredAsText).toBe(
        serverOpts.connectionStateRecovery ? PAYLOADS.length - BINARY_PAYLOADS : PAYLOADS.length,
      );
    }
    if (from === 1) {
      // The sender reads its own entries back and drops them before JS.
      expect(after[0].skippedOwn - before[0].skippedOwn).toBe(PAYLOADS.length);
    }
  });

  it("a native sender's own clients get its broadcasts in emit order, whichever path each takes", async () => {
    // Plain events take the fast path, a Date or undefined upstream's steps: both wait for
    // their XADD, and local delivery keeps the order of the emits, as upstream's does.
    const frames = captureFrames([c.clients["/"][1]])[0];
    const kinds = ["a Date", "ascii", "undefined and holes", "nested", "toJSON", "numbers"];
    const sent = kinds.map((kind) => PAYLOADS.find(([name]) => name === kind)[1]);
    for (let round = 0; round < 20; round++) {
      for (const args of sent) c.servers[1].emit("ev", ...args);
    }
    await waitUntil(() => frames.length >= 20 * sent.length, { what: "every event" });
    const expected = [];
    for (let round = 0; round < 20; round++) {
      for (const args of sent) expected.push(JSON.stringify(["ev", ...args]));
    }
    // Without recovery the frame is "2" + the JSON; with it, the entry id is appended.
    const got = frames.map((f) =>
      (serverOpts.connectionStateRecovery ? f.replace(/,"\d+-\d+"\]$/, "]") : f).slice(1),
    );
    expect(got).toEqual(expected);
  });

  it("fetchSockets answers decode on a native node as on an official one", async () => {
    // Node 2 (official) answers with plain data: the native asker gets it as JSON from Rust;
    // node 3 (native) with a Date, which JSON cannot carry: decoded in JS as before.
    const sockets = c.serverSockets["/"];
    sockets[2].data = { user: 'é😀"x', n: -1.5, big: 2 ** 40, nested: { list: [1, null, true] } };
    sockets[3].data = { when: new Date(Date.UTC(2026, 10, 30)) };
    const remote = [sockets[2].id, sockets[3].id];
    const view = async (io) =>
      (await io.fetchSockets())
        .filter((s) => remote.includes(s.id))
        .map((s) => ({ id: s.id, rooms: [...s.rooms], data: s.data, handshake: s.handshake }))
        .sort((a, b) => (a.id < b.id ? -1 : 1));
    const fromOfficial = await view(c.servers[0]);
    const fromNative = await view(c.servers[1]);
    expect(fromOfficial.length).toBe(2);
    expect(fromNative).toEqual(fromOfficial);
    expect(fromNative.find((s) => s.id === sockets[3].id).data.when).toBeInstanceOf(Date);
  });

  it("takes the core's JSON answers only: JSON published by anyone else is refused, as upstream refuses it", async () => {
    // On the native node's own response channel (official nodes do not listen there): a
    // serverSideEmit as JSON is a decode error for @msgpack/msgpack, then the same message as
    // MessagePack is applied (and, published after it on the same connection, fences it).
    const native = c.servers[1].of("/").adapter;
    const channel = `socket.io#/#${native.uid}#`;
    const seen = [];
    c.servers[1].on("foreign-sse", (tag) => seen.push(tag));
    const message = (tag) => ({
      type: 9, // SERVER_SIDE_EMIT
      data: { packet: ["foreign-sse", tag] },
      uid: "foreign",
      nsp: "/",
    });
    const pub = createClient({ url: redis.url });
    await pub.connect();
    try {
      const before = native.metrics().decodeErrors;
      await pub.publish(channel, JSON.stringify(message("as JSON")));
      await pub.publish(channel, Buffer.from(msgpack.encode(message("as MessagePack"))));
      await waitUntil(() => seen.length > 0, { what: "the MessagePack serverSideEmit" });
      expect(seen).toEqual(["as MessagePack"]);
      expect(native.metrics().decodeErrors - before).toBe(1);
    } finally {
      await pub.quit();
    }
  });
});
