"use strict";

// Classic adapter feature matrix, part 2: requests between nodes
// (fetchSockets, remote sockets, socketsJoin/Leave, disconnectSockets,
// serverSideEmit, allRooms, serverCount) and adapter room events.

const util = require("util");
const { startRedis } = require("./helpers/redis");
const {
  createCluster,
  waitFor,
  waitForCount,
  waitUntil,
  record,
  TOPOLOGIES,
} = require("./helpers/cluster");

describe.each(TOPOLOGIES.map((t) => [t.join("/"), t]))(
  "classic requests [%s]",
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

    const ids = (sockets) => sockets.map((s) => s.id).sort();
    const hasRoom = (i, room) => c.serverSockets[i].rooms.has(room);
    const until = (fn, what) => waitUntil(fn, { timeout: 3000, what });

    describe("fetchSockets", () => {
      it("returns the sockets of all nodes, with rooms and data", async () => {
        await setup();
        c.serverSockets.forEach((s, i) => {
          s.data = { node: i, nested: { list: [i, "x"] } };
          s.join(`room-${i}`);
        });
        for (let from = 0; from < 3; from++) {
          const sockets = await c.servers[from].fetchSockets();
          expect(ids(sockets)).toEqual(ids(c.serverSockets));
          for (const remote of sockets) {
            const i = c.serverSockets.findIndex((s) => s.id === remote.id);
            expect(remote.data).toEqual({ node: i, nested: { list: [i, "x"] } });
            expect([...remote.rooms].sort()).toEqual([remote.id, `room-${i}`].sort());
            expect(remote.handshake.address).toEqual(expect.any(String));
            expect(remote.handshake.query).toEqual(expect.objectContaining({ EIO: "4" }));
            // Whole, as the node holding the socket has it (ours parses it on first use).
            const { sessionStore, ...handshake } = c.serverSockets[i].handshake;
            expect({ ...remote.handshake }).toEqual(JSON.parse(JSON.stringify(handshake)));
          }
        }
      });

      it("gives plain handshake objects with lazyRemoteHandshakes: false", async () => {
        await setup({ adapterOpts: { lazyRemoteHandshakes: false } });
        const sockets = await c.servers[0].fetchSockets();
        expect(ids(sockets)).toEqual(ids(c.serverSockets));
        for (const remote of sockets) {
          const i = c.serverSockets.findIndex((s) => s.id === remote.id);
          if (i === 0) continue; // the local one
          expect(util.types.isProxy(remote.handshake)).toBe(false);
          const { sessionStore, ...handshake } = c.serverSockets[i].handshake;
          expect(structuredClone(remote.handshake)).toEqual(JSON.parse(JSON.stringify(handshake)));
        }
      });

      it("leaves a handshake's sessionStore out of the answer, as the official adapter", async () => {
        await setup();
        const store = { name: "store" };
        store.self = store; // circular: JSON.stringify of it would throw
        c.serverSockets[1].handshake.sessionStore = store;
        c.serverSockets[2].handshake.sessionStore = undefined;
        const sockets = await c.servers[0].fetchSockets();
        expect(ids(sockets)).toEqual(ids(c.serverSockets));
        for (const i of [1, 2]) {
          const remote = sockets.find((s) => s.id === c.serverSockets[i].id);
          expect(Object.keys(remote.handshake)).not.toContain("sessionStore");
          expect(remote.handshake.address).toEqual(c.serverSockets[i].handshake.address);
        }
        // The node's own handshake object is left as it was.
        expect(c.serverSockets[1].handshake.sessionStore).toBe(store);
      });

      it("returns the sockets of a room, except another room", async () => {
        await setup();
        c.serverSockets[0].join("a");
        c.serverSockets[1].join(["a", "b"]);
        c.serverSockets[2].join("a");
        const inA = await c.servers[2].in("a").fetchSockets();
        expect(ids(inA)).toEqual(ids(c.serverSockets));
        const aNotB = await c.servers[0].in("a").except("b").fetchSockets();
        expect(ids(aNotB)).toEqual(ids([c.serverSockets[0], c.serverSockets[2]]));
        const none = await c.servers[1].in("nobody").fetchSockets();
        expect(none).toEqual([]);
      });

      it("returns only local sockets with io.local", async () => {
        await setup();
        const sockets = await c.servers[1].local.fetchSockets();
        expect(ids(sockets)).toEqual([c.serverSockets[1].id]);
      });

      it("supports join/leave/emit/disconnect on remote sockets", async () => {
        await setup();
        const [remote] = await c.servers[0].in(c.serverSockets[2].id).fetchSockets();
        expect(remote.id).toBe(c.serverSockets[2].id);

        remote.join("joined");
        await until(() => hasRoom(2, "joined"), "remote join");
        remote.leave("joined");
        await until(() => !hasRoom(2, "joined"), "remote leave");

        const got = record(c.clients, "hello");
        remote.emit("hello", "you", Buffer.from([7]));
        await waitForCount(got[2], 1);
        await c.fence(0);
        expect(got[0]).toEqual([]);
        expect(got[1]).toEqual([]);
        expect(got[2][0][0]).toBe("you");
        expect([...got[2][0][1]]).toEqual([7]);

        const disconnected = waitFor(c.clients[2], "disconnect");
        remote.disconnect();
        const [reason] = await disconnected;
        expect(reason).toBe("io server disconnect");
        expect(c.clients[0].connected && c.clients[1].connected).toBe(true);
      });
    });

    describe("socketsJoin / socketsLeave / disconnectSockets", () => {
      it("makes all sockets join a room", async () => {
        await setup();
        c.servers[0].socketsJoin("all");
        await until(() => [0, 1, 2].every((i) => hasRoom(i, "all")), "socketsJoin");
      });

      it("makes the sockets of a room join other rooms", async () => {
        await setup();
        c.serverSockets[1].join("src");
        c.serverSockets[2].join("src");
        c.servers[0].in("src").socketsJoin(["dst1", "dst2"]);
        await until(() => hasRoom(1, "dst2") && hasRoom(2, "dst2"), "room-targeted socketsJoin");
        await c.fence(0);
        expect(hasRoom(0, "dst1")).toBe(false);
        expect(hasRoom(1, "dst1") && hasRoom(2, "dst1")).toBe(true);
      });

      it("makes all sockets / the sockets of a room leave a room", async () => {
        await setup();
        for (const s of c.serverSockets) s.join(["r1", "r2"]);
        c.serverSockets[0].join("keep");
        c.servers[1].except("keep").socketsLeave("r1");
        await until(() => !hasRoom(1, "r1") && !hasRoom(2, "r1"), "socketsLeave except");
        expect(hasRoom(0, "r1")).toBe(true);
        c.servers[2].socketsLeave("r2");
        await until(() => [0, 1, 2].every((i) => !hasRoom(i, "r2")), "socketsLeave all");
      });

      it("disconnects the sockets of a room", async () => {
        await setup();
        c.serverSockets[0].join("bye");
        c.serverSockets[2].join("bye");
        const d0 = waitFor(c.clients[0], "disconnect");
        const d2 = waitFor(c.clients[2], "disconnect");
        c.servers[1].in("bye").disconnectSockets();
        expect((await d0)[0]).toBe("io server disconnect");
        expect((await d2)[0]).toBe("io server disconnect");
        await c.fence(1, [c.clients[1]]);
        expect(c.clients[1].connected).toBe(true);
      });

      it("disconnects all sockets", async () => {
        await setup();
        const all = c.clients.map((cl) => waitFor(cl, "disconnect"));
        c.servers[2].disconnectSockets(true);
        const reasons = await Promise.all(all);
        expect(reasons.map((r) => r[0])).toEqual(Array(3).fill("io server disconnect"));
      });
    });

    describe("serverSideEmit", () => {
      it("emits to the other nodes only", async () => {
        await setup();
        const got = record(c.servers, "hi");
        c.servers[0].serverSideEmit("hi", 1, "two", { three: [3] });
        await waitForCount(got[1], 1);
        await waitForCount(got[2], 1);
        // a second emit from node 1 acts as a fence for node 0
        c.servers[1].serverSideEmit("hi", "fence");
        await waitForCount(got[0], 1);
        expect(got[0]).toEqual([["fence"]]);
        expect(got[1]).toEqual([[1, "two", { three: [3] }]]);
        expect(got[2]).toEqual([[1, "two", { three: [3] }], ["fence"]]);
      });

      it("gets one ack response from each other node", async () => {
        await setup();
        c.servers.forEach((io, i) => io.on("ask", (arg, cb) => cb(`${arg}-${i}`, "ignored")));
        const [err, responses] = await new Promise((resolve) =>
          c.servers[1].serverSideEmit("ask", "q", (...args) => resolve(args)),
        );
        expect(err).toBeNull();
        expect(responses.sort()).toEqual(["q-0", "q-2"]);
      });

      it("supports serverSideEmitWithAck", async () => {
        await setup();
        c.servers.forEach((io, i) => io.on("ask", (cb) => cb({ node: i })));
        const responses = await c.servers[2].serverSideEmitWithAck("ask");
        expect(responses.map((r) => r.node).sort()).toEqual([0, 1]);
      });

      it("works in another namespace", async () => {
        await setup({ init: (io) => io.of("/custom") });
        const got = record(
          c.servers.map((io) => io.of("/custom")),
          "nsp-ev",
        );
        const mainGot = record(c.servers, "nsp-ev");
        c.servers[0].of("/custom").serverSideEmit("nsp-ev", "c");
        await waitForCount(got[1], 1);
        await waitForCount(got[2], 1);
        expect(mainGot).toEqual([[], [], []]);
      });
    });

    it("allRooms() returns the rooms of all nodes", async () => {
      await setup();
      c.serverSockets[0].join("x");
      c.serverSockets[2].join(["y", "z"]);
      for (let from = 0; from < 3; from++) {
        const rooms = await c.servers[from].of("/").adapter.allRooms();
        expect(rooms).toBeInstanceOf(Set);
        expect([...rooms].sort()).toEqual(
          ["x", "y", "z", ...c.serverSockets.map((s) => s.id)].sort(),
        );
      }
    });

    it("serverCount() counts the nodes", async () => {
      await setup({ init: (io) => io.of("/custom") });
      for (const io of c.servers) {
        expect(await io.of("/").adapter.serverCount()).toBe(3);
        expect(await io.of("/custom").adapter.serverCount()).toBe(3);
      }
    });

    describe("adapter room events", () => {
      it("emits create-room / join-room / leave-room / delete-room", async () => {
        await setup();
        const adapter = c.servers[1].of("/").adapter;
        const events = [];
        for (const ev of ["create-room", "join-room", "leave-room", "delete-room"]) {
          adapter.on(ev, (...args) => events.push([ev, ...args]));
        }
        const sid = c.serverSockets[1].id;
        c.serverSockets[1].join("local-room");
        c.serverSockets[1].leave("local-room");
        expect(events).toEqual([
          ["create-room", "local-room"],
          ["join-room", "local-room", sid],
          ["leave-room", "local-room", sid],
          ["delete-room", "local-room"],
        ]);

        // and for remote operations applied on this node
        events.length = 0;
        c.servers[0].socketsJoin("remote-room");
        await until(() => events.length >= 2, "remote join events");
        expect(events).toEqual([
          ["create-room", "remote-room"],
          ["join-room", "remote-room", sid],
        ]);
        events.length = 0;
        c.servers[2].socketsLeave("remote-room");
        await until(() => events.length >= 2, "remote leave events");
        expect(events).toEqual([
          ["leave-room", "remote-room", sid],
          ["delete-room", "remote-room"],
        ]);

        events.length = 0;
        const clientGone = waitFor(c.clients[1], "disconnect");
        c.servers[0].in(sid).disconnectSockets();
        await clientGone;
        await until(() => events.some((e) => e[0] === "delete-room"), "disconnect events");
        expect(events).toEqual([
          ["leave-room", sid, sid],
          ["delete-room", sid],
        ]);
      });
    });
  },
);
