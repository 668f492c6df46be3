"use strict";

// Classic adapter feature matrix, part 3: options (key, requestsTimeout,
// publishOnSpecificResponseChannel, parser).

const { startRedis } = require("./helpers/redis");
const { createCluster, waitFor, waitForCount, record, TOPOLOGIES } = require("./helpers/cluster");
const { numsub } = require("./helpers/redis");

const jsonParser = { encode: JSON.stringify, decode: JSON.parse };

describe.each(TOPOLOGIES.map((t) => [t.join("/"), t]))(
  "classic options [%s]",
  (_name, topology) => {
    let redis;
    let contexts = [];

    beforeEach(async () => {
      redis = await startRedis();
    });

    afterEach(async () => {
      for (const ctx of contexts) await ctx.closeAll();
      contexts = [];
      await redis.stop();
    });

    const setup = async (extra = {}) => {
      const ctx = await createCluster({
        redis: redis.url,
        redisHandle: redis,
        nodes: topology,
        ...extra,
      });
      contexts.push(ctx);
      return ctx;
    };
    const ids = (sockets) => sockets.map((s) => s.id).sort();

    it("key: clusters with different keys do not see each other", async () => {
      const a = await setup({ adapterOpts: { key: "keyA" } });
      const b = await setup({ adapterOpts: { key: "keyB" } });
      expect(await numsub(redis, "keyA-request#/#")).toBe(3);
      expect(await numsub(redis, "keyB-request#/#")).toBe(3);
      expect(await numsub(redis, "socket.io-request#/#")).toBe(0);

      const gotA = record(a.clients, "ev");
      const gotB = record(b.clients, "ev");
      a.servers[0].emit("ev", "A");
      for (const g of gotA) await waitForCount(g, 1);
      await b.fence(0);
      expect(gotB).toEqual([[], [], []]);

      expect(ids(await a.servers[1].fetchSockets())).toEqual(ids(a.serverSockets));
      expect(ids(await b.servers[2].fetchSockets())).toEqual(ids(b.serverSockets));
      expect(await a.servers[0].of("/").adapter.serverCount()).toBe(3);

      const hi = record(b.servers, "hi");
      a.servers[0].serverSideEmit("hi");
      b.servers[0].serverSideEmit("hi", "fence");
      await waitForCount(hi[1], 1);
      await waitForCount(hi[2], 1);
      expect(hi[1]).toEqual([["fence"]]);
    });

    describe("requestsTimeout", () => {
      // An extra raw subscriber on the request channel makes serverCount() one
      // too high: the requester waits for a response that never comes.
      const withGhost = async () => {
        const ctx = await setup({ adapterOpts: { requestsTimeout: 300 } });
        const ghost = await ctx.rawClient();
        await ghost.subscribe(`${ctx.key}-request#/#`, () => {});
        expect(await ctx.servers[0].of("/").adapter.serverCount()).toBe(4);
        return ctx;
      };

      it.each([0, 1])("fetchSockets from node %i rejects after requestsTimeout", async (from) => {
        const ctx = await withGhost();
        const start = Date.now();
        await expect(ctx.servers[from].fetchSockets()).rejects.toThrow(
          "timeout reached while waiting for fetchSockets response",
        );
        const elapsed = Date.now() - start;
        expect(elapsed).toBeGreaterThanOrEqual(250);
        expect(elapsed).toBeLessThan(2000);
      });

      it("allRooms rejects after requestsTimeout", async () => {
        const ctx = await withGhost();
        await expect(ctx.servers[1].of("/").adapter.allRooms()).rejects.toThrow(
          "timeout reached while waiting for allRooms response",
        );
      });

      it.each([0, 1])(
        "serverSideEmit with ack from node %i reports a timeout with partial responses",
        async (from) => {
          const ctx = await withGhost();
          ctx.servers.forEach((io, i) => io.on("ask", (cb) => cb(i)));
          const start = Date.now();
          const [err, responses] = await new Promise((resolve) =>
            ctx.servers[from].serverSideEmit("ask", (...args) => resolve(args)),
          );
          expect(err).toBeInstanceOf(Error);
          expect(err.message).toBe("timeout reached: only 2 responses received out of 3");
          expect(responses.sort()).toEqual([0, 1, 2].filter((i) => i !== from));
          expect(Date.now() - start).toBeLessThan(2000);
        },
      );

      it("fetchSockets succeeds again once the extra subscriber is gone", async () => {
        const ctx = await setup({ adapterOpts: { requestsTimeout: 300 } });
        const ghost = await ctx.rawClient();
        await ghost.subscribe(`${ctx.key}-request#/#`, () => {});
        await expect(ctx.servers[2].fetchSockets()).rejects.toThrow(/timeout reached/);
        await ghost.unsubscribe(`${ctx.key}-request#/#`);
        expect(ids(await ctx.servers[2].fetchSockets())).toEqual(ids(ctx.serverSockets));
      });
    });

    describe("publishOnSpecificResponseChannel", () => {
      // nodes 0 and 2 answer on the requester's own channel, node 1 on the common one
      const nodes = topology.map((type, i) => ({
        type,
        opts: i === 1 ? {} : { publishOnSpecificResponseChannel: true },
      }));
      const specific = /^socket\.io-response#\/#[A-Za-z0-9_-]{6}#$/;
      const common = "socket.io-response#/#";

      it("requests work and responses use the right channels", async () => {
        const ctx = await setup({ nodes });
        const messages = await ctx.monitor("socket.io-response#*");

        // node 1 asks: both answers (nodes 0 and 2) on node 1's specific channel
        expect(ids(await ctx.servers[1].fetchSockets())).toEqual(ids(ctx.serverSockets));
        await waitForCount(messages, 2);
        expect(messages.map((m) => m.channel)).toEqual([
          expect.stringMatching(specific),
          expect.stringMatching(specific),
        ]);
        expect(messages[0].channel).toBe(messages[1].channel);

        // node 0 asks: node 1 answers on the common channel, node 2 on node 0's
        messages.length = 0;
        expect(ids(await ctx.servers[0].fetchSockets())).toEqual(ids(ctx.serverSockets));
        await waitForCount(messages, 2);
        const channels = messages.map((m) => m.channel).sort();
        expect(channels[0]).toBe(common);
        expect(channels[1]).toMatch(specific);

        expect((await ctx.servers[2].of("/").adapter.allRooms()).size).toBe(3);
      });

      it("serverSideEmit ack responses always use the common channel", async () => {
        const ctx = await setup({ nodes });
        ctx.servers.forEach((io, i) => io.on("ask", (cb) => cb(i)));
        const messages = await ctx.monitor("socket.io-response#*");
        const responses = await ctx.servers[1].serverSideEmitWithAck("ask");
        expect(responses.sort()).toEqual([0, 2]);
        await waitForCount(messages, 2);
        expect(messages.map((m) => m.channel)).toEqual([common, common]);
      });

      it("broadcast with acks works across both response channels", async () => {
        const ctx = await setup({ nodes });
        ctx.clients.forEach((cl, i) => cl.on("ack-ev", (cb) => cb(i)));
        for (const from of [0, 1]) {
          const responses = await ctx.servers[from].timeout(2000).emitWithAck("ack-ev");
          expect(responses.sort()).toEqual([0, 1, 2]);
        }
      });
    });

    describe("custom parser (JSON)", () => {
      const setupJson = () => setup({ adapterOpts: { parser: jsonParser } });

      it("broadcasts with a JSON envelope on the wire", async () => {
        const ctx = await setupJson();
        const messages = await ctx.monitor("socket.io#*");
        ctx.serverSockets[2].join("r");
        const got = record(ctx.clients, "ev");
        ctx.servers[0].to("r").emit("ev", { a: [1, "b"] });
        await waitForCount(got[2], 1);
        ctx.servers[1].emit("ev", "all");
        for (const g of got) await waitForCount(g, 1);
        await waitForCount(got[2], 2);
        expect(got[2]).toEqual([[{ a: [1, "b"] }], ["all"]]);
        const first = messages.find((m) => m.channel === "socket.io#/#r#");
        const [uid, packet, opts] = JSON.parse(first.message.toString());
        expect(uid).toEqual(expect.any(String));
        expect(packet).toEqual({ type: 2, data: ["ev", { a: [1, "b"] }], nsp: "/" });
        expect(opts).toEqual({ rooms: ["r"], except: [], flags: {} });
      });

      it("supports broadcast with acks, fetchSockets and serverSideEmit", async () => {
        const ctx = await setupJson();
        ctx.clients.forEach((cl, i) => cl.on("ack-ev", (arg, cb) => cb({ i, arg })));
        for (const from of [0, 1]) {
          const responses = await ctx.servers[from].timeout(2000).emitWithAck("ack-ev", "p");
          expect(responses.map((r) => r.i).sort()).toEqual([0, 1, 2]);
          expect(responses.every((r) => r.arg === "p")).toBe(true);
          expect(ids(await ctx.servers[from].fetchSockets())).toEqual(ids(ctx.serverSockets));
        }
        ctx.servers.forEach((io, i) => io.on("ask", (cb) => cb(i)));
        expect((await ctx.servers[1].serverSideEmitWithAck("ask")).sort()).toEqual([0, 2]);
      });
    });

    it("close() removes the node's subscriptions", async () => {
      const ctx = await setup();
      expect(await numsub(redis, "socket.io-request#/#")).toBe(3);
      const closed = waitFor(ctx.clients[1], "disconnect");
      ctx.servers[1].close();
      await closed;
      await new Promise((r) => setTimeout(r, 200));
      expect(await numsub(redis, "socket.io-request#/#")).toBe(2);
      expect(await ctx.servers[0].of("/").adapter.serverCount()).toBe(2);
      expect(ids(await ctx.servers[0].fetchSockets())).toEqual(
        ids([ctx.serverSockets[0], ctx.serverSockets[2]]),
      );
    });
  },
);
