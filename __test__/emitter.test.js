"use strict";

// Emitter, classic target: byte equality with @socket.io/redis-emitter 5.1, delivery to
// official and native adapter nodes (and official emitter -> native nodes), errors as rejected
// promises, and a script that emits then exits on its own.

const { spawn } = require("child_process");
const path = require("path");
const notepack = require("notepack.io");
const { createClient } = require("redis");
const OfficialEmitter = require("@socket.io/redis-emitter").Emitter;
const { startRedis, sleep } = require("./helpers/redis");
const { createCluster, waitFor, waitForCount, waitUntil, record } = require("./helpers/cluster");
const vectors = require("./vectors/notepack.json");
const native = require("..");

const { Emitter, BroadcastOperator, RESERVED_EVENTS } = native;
const ROOT = path.join(__dirname, "..");

/** Raw subscriber recording every message on channels matching `pattern`, as hex. */
async function monitor(url, pattern = "*") {
  const client = createClient({ url });
  client.on("error", () => {});
  await client.connect();
  const messages = [];
  await client.pSubscribe(
    pattern,
    (message, channel) =>
      messages.push({ channel: channel.toString(), hex: message.toString("hex") }),
    true,
  );
  return { messages, close: () => client.quit() };
}

/** Every message kind of the emitter, with the same arguments for both emitters. */
async function everyKind(emitter) {
  const writes = [
    emitter.emit("e1", 1, Buffer.from([4, 5])),
    emitter.to("room1").except("x").emit("e2", { k: "v" }),
    emitter.to(["room1", "room2"]).volatile.compress(true).emit("e3"),
    emitter.compress(false).volatile.emit("e3b", 1.5, null, [true]),
    emitter.in("room9").to("room9").emit("e3c", "one room, twice"),
    emitter.of("custom").emit("e4"),
    emitter.of("/custom").to("r").emit("e4b"),
    emitter.to("room1").socketsJoin("ej"),
    emitter.socketsLeave(["ej", "ek"]),
    emitter.except("y").socketsJoin(["a", "b"]),
    emitter.serverSideEmit("ssefromemitter", 1),
    emitter.to("nobody").disconnectSockets(true),
    emitter.disconnectSockets(),
    emitter.to("room1").volatile.emit("e5", new Uint8Array([7, 8])),
    // Beyond the 64 KiB a batch of publishes starts with, and a channel that is not ASCII.
    emitter.emit("e6", Buffer.alloc(100 * 1024, 3)),
    emitter.to("salle-é✓").emit("e7", "é"),
  ];
  return Promise.all(writes);
}

describe("Emitter (classic): wire format", () => {
  let redis;
  beforeAll(async () => {
    redis = await startRedis();
  });
  afterAll(async () => {
    await redis.stop();
  });

  it.each([
    ["default options", undefined],
    ["custom key", { key: "my-app" }],
    ["custom JSON parser", { key: "json", parser: { encode: JSON.stringify } }],
  ])("publishes the same bytes as @socket.io/redis-emitter (%s)", async (_name, opts) => {
    const pub = createClient({ url: redis.url });
    await pub.connect();
    const mon = await monitor(redis.url);
    try {
      await everyKind(new OfficialEmitter(pub, opts));
      await waitUntil(() => mon.messages.length === 16, { what: "16 official messages" });
      const official = mon.messages.splice(0);

      const ours = new Emitter(pub, opts);
      const results = await everyKind(ours);
      expect(results.every((r) => r === true)).toBe(true);
      await waitUntil(() => mon.messages.length === 16, { what: "16 messages of ours" });
      expect(mon.messages).toEqual(official);
      await ours.close();
    } finally {
      await mon.close();
      await pub.quit();
    }
  });

  it("keeps the order of writes made back to back", async () => {
    const mon = await monitor(redis.url);
    const emitter = new Emitter(redis.url);
    try {
      const writes = [];
      for (let i = 0; i < 300; i++) {
        writes.push(
          i % 3 === 2 ? emitter.serverSideEmit("n", i) : emitter.to(`r${i % 2}`).emit("n", i),
        );
      }
      expect(await Promise.all(writes)).toEqual(writes.map(() => true));
      await waitUntil(() => mon.messages.length === 300, { what: "300 messages" });
      const order = mon.messages.map((m) => {
        const buf = Buffer.from(m.hex, "hex");
        return buf[0] === 0x7b ? JSON.parse(buf).data[1] : notepack.decode(buf)[1].data[1];
      });
      expect(order).toEqual([...Array(300).keys()]);
    } finally {
      await emitter.close();
      await mon.close();
    }
  });

  it("matches the captured emitter vectors", async () => {
    const mon = await monitor(redis.url);
    const emitter = new Emitter(redis.url);
    try {
      await emitter.emit("e1", 1, Buffer.from([4, 5]));
      await emitter.to("room1").except("x").emit("e2", { k: "v" });
      await emitter.to("room1").to("room2").volatile.compress(true).emit("e3");
      await emitter.of("custom").emit("e4");
      await emitter.to("room1").socketsJoin("ej");
      await emitter.socketsLeave("ej");
      await emitter.serverSideEmit("ssefromemitter", 1);
      await emitter.to("nobody").disconnectSockets(true);
      const expected = [
        "emitter emit",
        "emitter to room except",
        "emitter volatile compress",
        "emitter of(custom)",
        "emitter socketsJoin",
        "emitter socketsLeave",
        "emitter serverSideEmit",
        "emitter disconnectSockets",
      ].map((name) => {
        const v = vectors.find((e) => e.name === `emitter: ${name}`);
        return { channel: v.channel, hex: v.hex };
      });
      await waitUntil(() => mon.messages.length === expected.length, { what: "vector messages" });
      expect(mon.messages).toEqual(expected);
    } finally {
      await emitter.close();
      await mon.close();
    }
  });
});

// Native nodes decode default-parser (notepack) broadcasts in Rust; with a custom parser object
// (here notepack itself, wrapped: the same bytes on the wire) they decode them in JS.
const wrappedNotepack = { encode: (v) => notepack.encode(v), decode: (b) => notepack.decode(b) };
const EMITTERS = [
  ["our Emitter", (pub, opts) => new Emitter(pub, opts)],
  ["the official emitter", (pub, opts) => new OfficialEmitter(pub, opts)],
];
const PARSERS = [
  ["default parser", {}],
  ["custom parser", { parser: wrappedNotepack }],
];

describe.each(
  EMITTERS.flatMap(([name, make]) => PARSERS.map(([pname, opts]) => [name, pname, make, opts])),
)("%s reaches official and native classic adapter nodes (%s)", (_name, _p, makeEmitter, opts) => {
  let redis;
  let c;
  let pub;
  let emitter;
  const sse = [];

  beforeAll(async () => {
    redis = await startRedis();
    pub = createClient({ url: redis.url });
    await pub.connect();
  });
  afterAll(async () => {
    await pub.quit();
    await redis.stop();
  });

  beforeEach(async () => {
    sse.length = 0;
    c = await createCluster({
      redis: redis.url,
      redisHandle: redis,
      nodes: ["official", "native"],
      adapterOpts: opts,
      connect: ["/", "/custom"],
      init: (io, i) => {
        io.on("sse", (...args) => sse.push([i, ...args]));
        io.of("/custom");
      },
    });
    emitter = makeEmitter(pub, opts);
  });
  afterEach(async () => {
    if (emitter.close) await emitter.close();
    await c.closeAll();
  });

  /** Every "/" client got exactly `expected[i]` for `event` (after a fence). */
  async function expectDelivery(got, expected) {
    for (let i = 0; i < expected.length; i++) await waitForCount(got[i], expected[i].length);
    await c.fence(0);
    await c.fence(1);
    expect(got).toEqual(expected);
  }

  it("emits to all, with binary arguments, and to rooms", async () => {
    c.serverSockets[0].join("room1");
    c.serverSockets[1].join(["room1", "room2"]);
    const got = record(c.clients, "ev");
    const bin = Buffer.from([1, 2, 3]);
    emitter.emit("ev", "all", bin, { nested: new Uint8Array([9]) });
    emitter.to("room2").emit("ev", "room2");
    emitter.to(["room1", "room2"]).emit("ev", "rooms");
    await expectDelivery(got, [
      [["all", bin, { nested: Buffer.from([9]) }], ["rooms"]],
      [["all", bin, { nested: Buffer.from([9]) }], ["room2"], ["rooms"]],
    ]);
  });

  it("honours except(), volatile and compress()", async () => {
    c.serverSockets[0].join("room1");
    c.serverSockets[1].join(["room1", "vip"]);
    const got = record(c.clients, "ev");
    emitter.to("room1").except("vip").emit("ev", "not vip");
    emitter.except(c.clients[0].id).emit("ev", "not 0");
    emitter.compress(false).to("vip").emit("ev", "uncompressed");
    await expectDelivery(got, [[["not vip"]], [["not 0"], ["uncompressed"]]]);
    // socket.io drops a volatile packet while the transport is busy: send it on its own
    emitter.volatile.emit("ev", "volatile");
    await expectDelivery(got, [
      [["not vip"], ["volatile"]],
      [["not 0"], ["uncompressed"], ["volatile"]],
    ]);
  });

  it("emits to a custom namespace with of()", async () => {
    const custom = record(c.nsClients["/custom"], "ev");
    const main = record(c.clients, "ev");
    emitter.of("/custom").emit("ev", "custom");
    emitter.of("custom").to(c.nsClients["/custom"][1].id).emit("ev", "to 1");
    for (let i = 0; i < 2; i++) await waitForCount(custom[i], i === 1 ? 2 : 1);
    await c.fence(0);
    expect(custom).toEqual([[["custom"]], [["custom"], ["to 1"]]]);
    expect(main).toEqual([[], []]);
  });

  it("serverSideEmit reaches every server", async () => {
    emitter.serverSideEmit("sse", "hello", 42);
    await waitUntil(() => sse.length === 2, { what: "two serverSideEmit deliveries" });
    expect(sse.sort()).toEqual([
      [0, "hello", 42],
      [1, "hello", 42],
    ]);
  });

  it("socketsJoin, socketsLeave and disconnectSockets", async () => {
    const [s0, s1] = c.serverSockets;
    s0.join("room1");
    emitter.to("room1").socketsJoin(["joined", "other"]);
    emitter.except("room1").socketsJoin("rest");
    await waitUntil(() => s0.rooms.has("joined") && s0.rooms.has("other") && s1.rooms.has("rest"), {
      what: "socketsJoin",
    });
    expect(s1.rooms.has("joined")).toBe(false);
    expect(s0.rooms.has("rest")).toBe(false);

    emitter.socketsLeave("other");
    await waitUntil(() => !s0.rooms.has("other"), { what: "socketsLeave" });
    expect(s0.rooms.has("joined")).toBe(true);

    const gone = waitFor(c.clients[1], "disconnect", 5000);
    emitter.to("rest").disconnectSockets();
    expect(await gone).toEqual(["io server disconnect"]);
    expect(c.clients[0].connected).toBe(true);
  });
});

describe("Emitter (classic): errors and lifecycle", () => {
  it("throws on reserved event names and on serverSideEmit acknowledgements", () => {
    const emitter = new Emitter("redis://127.0.0.1:1");
    expect([...RESERVED_EVENTS].sort()).toEqual(
      [
        "connect",
        "connect_error",
        "disconnect",
        "disconnecting",
        "newListener",
        "removeListener",
      ].sort(),
    );
    for (const ev of RESERVED_EVENTS) {
      expect(() => emitter.emit(ev)).toThrow(`"${ev}" is a reserved event name`);
      expect(() => emitter.to("r").emit(ev)).toThrow("is a reserved event name");
    }
    expect(() => emitter.serverSideEmit("x", () => {})).toThrow(
      "Acknowledgements are not supported",
    );
    expect(emitter.to("a")).toBeInstanceOf(BroadcastOperator);
    expect(() => new Emitter("redis://127.0.0.1:1", { adapter: "cluster" })).toThrow(
      /option "adapter"/,
    );
    expect(() => new Emitter("redis://127.0.0.1:1", { streamCount: 0 })).toThrow(
      /option "streamCount"/,
    );
    expect(() => new Emitter(undefined)).toThrow(/a Redis client/);
  });

  it("rejects the returned promise when Redis is gone, with no unhandled rejection", async () => {
    const unhandled = [];
    const onUnhandled = (reason) => unhandled.push(reason);
    process.on("unhandledRejection", onUnhandled);
    const redis = await startRedis();
    const classic = new Emitter(redis.url);
    const streams = new Emitter(redis.url, { adapter: "streams" });
    try {
      await expect(classic.emit("before", 1)).resolves.toBe(true);
      await expect(streams.emit("before", 1)).resolves.toBe(true);
      await redis.kill();

      const t0 = Date.now();
      const failures = [
        classic.emit("lost"),
        classic.to("r").socketsJoin("x"),
        streams.emit("lost"),
        streams.serverSideEmit("lost"),
      ];
      const ignored = classic.serverSideEmit("ignored by the caller"); // never awaited
      expect(ignored).toBeInstanceOf(Promise);
      const settled = await Promise.allSettled(failures);
      for (const s of settled) {
        expect(s.status).toBe("rejected");
        // (the native error comes from another realm than jest's Error)
        expect(Object.prototype.toString.call(s.reason)).toBe("[object Error]");
        expect(s.reason.message).toMatch(/refused|unreachable|closed|broken pipe/i);
      }
      expect(Date.now() - t0).toBeLessThan(20000);
      await classic.close(); // waits for `ignored` too
      await streams.close();
      await sleep(50);
      expect(unhandled).toEqual([]);
      await expect(classic.emit("after close")).rejects.toThrow("the emitter is closed");
    } finally {
      process.off("unhandledRejection", onUnhandled);
      await redis.stop();
    }
  }, 30000);

  it("a plain script (no socket.io server) emits and exits on its own", async () => {
    const redis = await startRedis();
    const mon = await monitor(redis.url);
    try {
      const script = `
        process.on("unhandledRejection", () => process.exit(3));
        const { createClient } = require("redis");
        const { Emitter } = require(${JSON.stringify(ROOT)});
        // an unconnected node-redis client: only its settings are read
        const emitter = new Emitter(createClient({ url: ${JSON.stringify(redis.url)} }));
        emitter.to("room1").emit("from-script", 1).then((ok) => console.log("sent", ok));
        emitter.of("/admin").serverSideEmit("hello");
      `;
      const t0 = Date.now();
      const child = spawn(process.execPath, ["-e", script], {
        cwd: ROOT,
        stdio: ["ignore", "pipe", "pipe"],
      });
      let out = "";
      child.stdout.on("data", (d) => (out += d));
      child.stderr.on("data", (d) => (out += d));
      const code = await new Promise((resolve) => {
        const timer = setTimeout(() => {
          child.kill("SIGKILL");
          resolve("timeout");
        }, 5000);
        child.on("exit", (c) => {
          clearTimeout(timer);
          resolve(c);
        });
      });
      expect({ code, out: out.trim() }).toEqual({ code: 0, out: "sent true" });
      expect(Date.now() - t0).toBeLessThan(5000);
      await waitUntil(() => mon.messages.length === 2, { what: "the script's messages" });
      expect(mon.messages.map((m) => m.channel).sort()).toEqual([
        "socket.io#/#room1#",
        "socket.io-request#/admin#",
      ]);
    } finally {
      await mon.close();
      await redis.stop();
    }
  });
});
