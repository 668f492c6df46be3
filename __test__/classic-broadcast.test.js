"use strict";

// Classic adapter feature matrix, part 1: broadcasts.
// Runs for every topology of TOPOLOGIES (mixed ones prove wire compatibility).

const notepack = require("notepack.io");
const { startRedis } = require("./helpers/redis");
const {
  createCluster,
  expectEmittedBeforeCloseDelivered,
  waitFor,
  waitForCount,
  record,
  TOPOLOGIES,
} = require("./helpers/cluster");

describe.each(TOPOLOGIES.map((t) => [t.join("/"), t]))(
  "classic broadcast [%s]",
  (_name, topology) => {
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
      createCluster({ redis: redis.url, redisHandle: redis, nodes: topology, ...extra }).then(
        (ctx) => (c = ctx),
      );

    /** Envelopes published on the broadcast channels, decoded. */
    const envelopes = (messages, parser = notepack) =>
      messages
        .filter((m) => m.channel.startsWith(`${c.key}#`))
        .map((m) => ({ channel: m.channel, decoded: parser.decode(m.message) }));

    it("broadcasts to all clients", async () => {
      await setup();
      const got = record(c.clients, "ev");
      c.servers[0].emit("ev", 1, "2", { 3: [4] });
      for (const g of got) await waitForCount(g, 1);
      await c.fence(0);
      for (const g of got) expect(g).toEqual([[1, "2", { 3: [4] }]]);
    });

    it("delivers to the other nodes what was emitted right before the adapter closed", async () => {
      await setup();
      await expectEmittedBeforeCloseDelivered(c);
    });

    it("broadcasts from every node", async () => {
      await setup();
      const got = record(c.clients, "ev");
      c.servers.forEach((io, i) => io.emit("ev", i));
      for (const g of got) await waitForCount(g, 3);
      for (const g of got) expect(g.map((a) => a[0]).sort()).toEqual([0, 1, 2]);
    });

    it("broadcasts to a room", async () => {
      await setup();
      c.serverSockets[0].join("room1");
      c.serverSockets[2].join("room1");
      const got = record(c.clients, "ev");
      c.servers[1].to("room1").emit("ev", "r");
      await waitForCount(got[0], 1);
      await waitForCount(got[2], 1);
      await c.fence(1);
      expect(got).toEqual([[["r"]], [], [["r"]]]);
    });

    it("broadcasts to multiple rooms (each socket once)", async () => {
      await setup();
      c.serverSockets[0].join("room1");
      c.serverSockets[1].join("room2");
      c.serverSockets[2].join(["room1", "room2"]);
      const messages = await c.monitor();
      const got = record(c.clients, "ev");
      c.servers[0].to("room1").to("room2").emit("ev", "m");
      for (const g of got) await waitForCount(g, 1);
      await c.fence(0);
      expect(got).toEqual([[["m"]], [["m"]], [["m"]]]);
      // two rooms go to the base channel P#N#
      const env = envelopes(messages).filter((e) => e.decoded[1].data[0] === "ev");
      expect(env.map((e) => e.channel)).toEqual([`${c.key}#/#`]);
      expect(env[0].decoded[2].rooms.sort()).toEqual(["room1", "room2"]);
    });

    it("broadcasts to a room except another room", async () => {
      await setup();
      for (const s of c.serverSockets) s.join("room1");
      c.serverSockets[1].join("room2");
      const got = record(c.clients, "ev");
      c.servers[2].to("room1").except("room2").emit("ev");
      await waitForCount(got[0], 1);
      await waitForCount(got[2], 1);
      await c.fence(2);
      expect(got.map((g) => g.length)).toEqual([1, 0, 1]);
    });

    it("excepts a socket id on another node", async () => {
      await setup();
      const got = record(c.clients, "ev");
      c.servers[0].except(c.serverSockets[2].id).emit("ev");
      await waitForCount(got[0], 1);
      await waitForCount(got[1], 1);
      await c.fence(0);
      expect(got.map((g) => g.length)).toEqual([1, 1, 0]);
    });

    it("broadcasts from a socket (socket.broadcast.emit)", async () => {
      await setup();
      const got = record(c.clients, "ev");
      c.serverSockets[1].broadcast.emit("ev", "from-1");
      await waitForCount(got[0], 1);
      await waitForCount(got[2], 1);
      await c.fence(1);
      expect(got).toEqual([[["from-1"]], [], [["from-1"]]]);
    });

    it("broadcasts from a socket to a room it is in (sender excluded)", async () => {
      await setup();
      for (const s of c.serverSockets) s.join("room1");
      const got = record(c.clients, "ev");
      c.serverSockets[0].to("room1").emit("ev");
      await waitForCount(got[1], 1);
      await waitForCount(got[2], 1);
      await c.fence(0);
      expect(got.map((g) => g.length)).toEqual([0, 1, 1]);
    });

    it("broadcasts with the volatile flag", async () => {
      await setup();
      const messages = await c.monitor();
      const got = record(c.clients, "ev");
      c.servers[1].volatile.emit("ev", "v");
      for (const g of got) await waitForCount(g, 1);
      const env = envelopes(messages).find((e) => e.decoded[1].data[0] === "ev");
      expect(env.decoded[2].flags).toEqual({ volatile: true });
    });

    it("does not publish local broadcasts (io.local.emit)", async () => {
      await setup();
      const messages = await c.monitor();
      const got = record(c.clients, "ev");
      c.servers[1].local.emit("ev", "local");
      await waitForCount(got[1], 1);
      await c.fence(1);
      expect(got.map((g) => g.length)).toEqual([0, 1, 0]);
      expect(envelopes(messages).filter((e) => e.decoded[1].data[0] === "ev")).toEqual([]);
    });

    it("broadcasts with the compress flag", async () => {
      await setup();
      const messages = await c.monitor();
      const got = record(c.clients, "ev");
      c.servers[2].compress(false).emit("ev", "c");
      for (const g of got) await waitForCount(g, 1);
      const env = envelopes(messages).find((e) => e.decoded[1].data[0] === "ev");
      expect(env.decoded[2].flags).toEqual({ compress: false });
      expect(got).toEqual([[["c"]], [["c"]], [["c"]]]);
    });

    it("broadcasts binary payloads (Buffer arrives as Buffer)", async () => {
      await setup();
      const got = record(c.clients, "ev");
      c.servers[0].emit("ev", Buffer.from([1, 2, 3]), { nested: Buffer.from("abc"), n: 1 });
      for (const g of got) await waitForCount(g, 1);
      for (const [[buf, obj]] of got) {
        expect(Buffer.isBuffer(buf)).toBe(true);
        expect([...buf]).toEqual([1, 2, 3]);
        expect(Buffer.isBuffer(obj.nested)).toBe(true);
        expect(obj.nested.toString()).toBe("abc");
        expect(obj.n).toBe(1);
      }
    });

    it("keeps emit order across every kind of broadcast and odd room names", async () => {
      // On a native sender small plain-JSON broadcasts wait for the end of the turn and
      // cross into Rust together; a Buffer, a large payload or a request published between
      // them must not overtake them. The room name holds the batch's separators.
      await setup();
      const odd = 'a\u0000b\u0001"c\\\u2603';
      c.serverSockets.forEach((s) => s.join(odd));
      const got = record(c.clients, "ev");
      const big = "x".repeat(70 * 1024);
      const io = c.servers[0];
      io.emit("ev", 1);
      io.emit("ev", 2, Buffer.from([2]));
      io.emit("ev", 3, big);
      io.to(odd).emit("ev", 4, odd);
      io.to(odd).except("nobody").emit("ev", 5, { odd });
      io.emit("ev", 6);
      for (const g of got) await waitForCount(g, 6);
      for (const g of got) {
        expect(g.map((args) => args[0])).toEqual([1, 2, 3, 4, 5, 6]);
        expect([...g[1][1]]).toEqual([2]);
        expect(g[2][1]).toBe(big);
        expect(g[3][1]).toBe(odd);
        expect(g[4][1]).toEqual({ odd });
      }
    });

    it("keeps order through a long synchronous burst and oversized options", async () => {
      // 3000 x 1 KiB in one turn overflow a native sender's 1 MiB queue several times; an
      // except list of 400k characters is too large to queue and is published by itself.
      await setup();
      const got = record(c.clients, "ev");
      const io = c.servers[0];
      const filler = "f".repeat(1024);
      for (let i = 0; i < 3000; i++) {
        if (i === 1500) io.except("x".repeat(400 * 1024)).emit("ev", i, "big options");
        else io.emit("ev", i, filler);
      }
      for (const g of got) await waitForCount(g, 3000, 10000);
      for (const g of got) {
        expect(g.map((args) => args[0])).toEqual([...Array(3000).keys()]);
        expect(g[1500][1]).toBe("big options");
        expect(g[2999][1]).toBe(filler);
      }
    });

    it("writes the classic envelope [uid, packet, opts] with nsp on the wire", async () => {
      await setup();
      const messages = await c.monitor();
      const got = record(c.clients, "ev");
      c.serverSockets[0].join("room1");
      c.servers[1].to("room1").except("x").emit("ev", { a: 1 });
      await waitForCount(got[0], 1);
      const [env] = envelopes(messages).filter((e) => e.decoded[1].data[0] === "ev");
      expect(env.channel).toBe(`${c.key}#/#room1#`);
      const [uid, packet, opts] = env.decoded;
      expect(uid).toMatch(/^[A-Za-z0-9_-]{6}$/);
      expect(packet).toEqual({ type: 2, data: ["ev", { a: 1 }], nsp: "/" });
      expect(opts).toEqual({ rooms: ["room1"], except: ["x"], flags: {} });
    });

    it("broadcasts in another namespace (/custom)", async () => {
      await setup({ init: (io) => io.of("/custom"), connect: ["/", "/custom"] });
      const custom = record(c.nsClients["/custom"], "ev");
      const main = record(c.clients, "ev");
      c.servers[2].of("/custom").emit("ev", "custom");
      for (const g of custom) await waitForCount(g, 1);
      await c.fence(2);
      expect(custom).toEqual([[["custom"]], [["custom"]], [["custom"]]]);
      expect(main).toEqual([[], [], []]);
    });

    it("broadcasts to a room in another namespace", async () => {
      await setup({ init: (io) => io.of("/custom"), connect: ["/custom"] });
      c.nsServerSockets["/custom"][1].join("r");
      const got = record(c.nsClients["/custom"], "ev");
      c.servers[0].of("/custom").to("r").emit("ev");
      await waitForCount(got[1], 1);
      // fence through the namespace itself
      const fence = c.nsClients["/custom"].map((cl) => waitFor(cl, "f"));
      c.servers[0].of("/custom").emit("f");
      await Promise.all(fence);
      expect(got.map((g) => g.length)).toEqual([0, 1, 0]);
    });

    it("broadcasts in dynamic namespaces", async () => {
      // io.of(regex) creates a new ParentNamespace on every call: keep the one
      const parents = [];
      await setup({ init: (io) => parents.push(io.of(/^\/dyn-\w+$/)), connect: ["/dyn-abc"] });
      await c.waitForSubscriptions();
      const got = record(c.nsClients["/dyn-abc"], "ev");
      c.servers[1].of("/dyn-abc").emit("ev", "child");
      for (const g of got) await waitForCount(g, 1);
      // through the parent namespace (ParentBroadcastAdapter -> each child adapter)
      parents[2].emit("ev", "parent");
      for (const g of got) await waitForCount(g, 2);
      for (const g of got) expect(g.map((a) => a[0]).sort()).toEqual(["child", "parent"]);
    });

    it("broadcasts to a numeric room", async () => {
      await setup();
      c.serverSockets[0].join(123);
      c.serverSockets[2].join(123);
      c.serverSockets[1].join("123"); // a different room
      const messages = await c.monitor();
      const got = record(c.clients, "ev");
      c.servers[1].to(123).emit("ev", 123);
      await waitForCount(got[0], 1);
      await waitForCount(got[2], 1);
      await c.fence(1);
      expect(got.map((g) => g.length)).toEqual([1, 0, 1]);
      const [env] = envelopes(messages).filter((e) => e.decoded[1].data[0] === "ev");
      expect(env.channel).toBe(`${c.key}#/#123#`);
      expect(env.decoded[2].rooms).toEqual([123]);
    });

    describe("with acks", () => {
      const ackAll = (clients, value = (i, arg) => `${arg}-${i}`) =>
        clients.forEach((cl, i) => cl.on("ack-ev", (arg, cb) => cb(value(i, arg))));

      it("collects acks from clients on all nodes", async () => {
        await setup();
        ackAll(c.clients);
        const [err, responses] = await new Promise((resolve) =>
          c.servers[0].timeout(2000).emit("ack-ev", "a", (...args) => resolve(args)),
        );
        expect(err).toBeNull();
        expect(responses.sort()).toEqual(["a-0", "a-1", "a-2"]);
      });

      it("collects acks with emitWithAck from another node, to a room", async () => {
        await setup();
        ackAll(c.clients);
        c.serverSockets[0].join("ackroom");
        c.serverSockets[2].join("ackroom");
        const responses = await c.servers[1].to("ackroom").timeout(2000).emitWithAck("ack-ev", "b");
        expect(responses.sort()).toEqual(["b-0", "b-2"]);
      });

      it("acks carry binary values", async () => {
        await setup();
        ackAll(c.clients, (i) => Buffer.from([i]));
        const responses = await c.servers[2].timeout(2000).emitWithAck("ack-ev", "x");
        expect(responses.every((r) => Buffer.isBuffer(r))).toBe(true);
        expect(responses.map((r) => r[0]).sort()).toEqual([0, 1, 2]);
      });

      it("returns an empty list when no client matches (remote nodes report 0)", async () => {
        await setup();
        const responses = await c.servers[0].to("nobody").timeout(1000).emitWithAck("ack-ev");
        expect(responses).toEqual([]);
      });

      it("times out when a client does not ack", async () => {
        await setup();
        ackAll(c.clients.slice(0, 2));
        c.clients[2].on("ack-ev", () => {}); // never acks
        const start = Date.now();
        const [err, responses] = await new Promise((resolve) =>
          c.servers[1].timeout(500).emit("ack-ev", "t", (...args) => resolve(args)),
        );
        expect(err).toBeInstanceOf(Error);
        expect(err.message).toBe("operation has timed out");
        expect(responses.sort()).toEqual(["t-0", "t-1"]);
        expect(Date.now() - start).toBeGreaterThanOrEqual(450);
      });
    });
  },
);
