"use strict";

// Streams adapter: Redis outage (emits during the outage are queued and delivered exactly once
// after the restart) and connection state recovery across nodes.

const { io: ioc } = require("socket.io-client");
const { startRedis, waitUntil } = require("./helpers/redis");
const { createStreamsCluster, record, waitForCount, sleep } = require("./helpers/streams-cluster");

describe("streams resilience", () => {
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

  // The emitting nodes (0 and 1 during the outage) are native: an official node fails the XADD
  // and the message is lost for the others. Official readers resume from their offset too.
  it.each([[["native", "native", "native"]], [["native", "native", "official"]]])(
    "delivers broadcasts made during a Redis outage exactly once after the restart (%j)",
    async (nodes) => {
      c = await createStreamsCluster({
        redis,
        nodes,
        opts: { blockTimeInMs: 1000 },
      });
      const got = record(c.clients["/"], "ev");
      c.servers[0].emit("ev", "before");
      for (const g of got) await waitForCount(g, 1);

      await redis.kill();
      // emits from two nodes while Redis is down: they wait in the XADD queue
      c.servers[0].emit("ev", "during-0a");
      c.servers[1].emit("ev", "during-1");
      c.servers[0].emit("ev", "during-0b");
      await sleep(500);
      await redis.restart();

      c.servers[2].emit("ev", "after");
      for (const g of got) await waitForCount(g, 5, 15000);
      await sleep(500);
      for (const g of got) {
        const names = g.map((a) => a[0]);
        expect(names.sort()).toEqual(["after", "before", "during-0a", "during-0b", "during-1"]);
        // one node's entries keep their order
        const fromZero = g.map((a) => a[0]).filter((n) => n.startsWith("during-0"));
        expect(fromZero).toEqual(["during-0a", "during-0b"]);
      }
    },
    30000,
  );

  it.each([["native"], ["official"]])(
    "restores a session on another node (missed packets in order, sent by %s)",
    async (senderKind) => {
      c = await createStreamsCluster({
        redis,
        nodes: ["native", senderKind === "native" ? "native" : "official", "native"],
        serverOpts: {
          connectionStateRecovery: { maxDisconnectionDuration: 10000, skipMiddlewares: true },
        },
      });
      const port = (i) => c.ports[i];
      const client = ioc(`http://127.0.0.1:${port(0)}`, {
        transports: ["websocket"],
        forceNew: true,
        reconnection: false,
      });
      await new Promise((r) => client.on("connect", r));
      const serverSocket = [...c.servers[0].of("/").sockets.values()].find(
        (s) => s.id === client.id,
      );
      serverSocket.join("room1");
      const got = [];
      client.on("ev", (...args) => got.push(args[0]));
      c.servers[1].emit("ev", 0);
      await waitUntil(() => got.length === 1, { what: "first packet" });

      // a recoverable disconnect: the server persists the session in Redis
      const sid = client.id;
      client.io.engine.close();
      await sleep(200);
      c.servers[1].emit("ev", 1);
      c.servers[1].to("room1").emit("ev", 2);
      c.servers[1].to("other").emit("ev", "not-for-me");
      c.servers[1].emit("ev", 3);
      await sleep(300);

      // reconnect to another node with the saved pid and offset
      const again = ioc(`http://127.0.0.1:${port(2)}`, {
        transports: ["websocket"],
        forceNew: true,
        reconnection: false,
        auth: client.auth,
      });
      again._pid = client._pid;
      again._lastOffset = client._lastOffset;
      const missed = [];
      again.on("ev", (...args) => missed.push(args[0]));
      await new Promise((r) => again.on("connect", r));
      try {
        expect(again.recovered).toBe(true);
        expect(again.id).toBe(sid);
        await waitUntil(() => missed.length === 3, { what: "missed packets" });
        expect(missed).toEqual([1, 2, 3]);
      } finally {
        again.disconnect();
      }
    },
    30000,
  );
});

describe("streams trimming", () => {
  it("reports a loss when entries past a reader's offset were trimmed while it was away", async () => {
    const redis = await startRedis();
    const { createClient } = require("redis");
    const control = createClient({ url: redis.url });
    control.on("error", () => {});
    await control.connect();
    let c;
    try {
      c = await createStreamsCluster({ redis, nodes: ["native"], opts: { maxLen: 1 } });
      const got = record(c.clients["/"], "ev");
      c.servers[0].emit("ev", "first");
      await waitForCount(got[0], 1);
      const adapter = c.servers[0].of("/").adapter;
      // Keep the reader out: no new connection is accepted, then drop the reader's.
      const clients = (await control.sendCommand(["CLIENT", "LIST"])).split("\n").filter(Boolean);
      await control.sendCommand(["CONFIG", "SET", "maxclients", String(clients.length - 1)]);
      const reader = clients.find((l) => /cmd=xread\b/.test(l));
      const id = /\bid=(\d+)/.exec(reader)[1];
      await control.sendCommand(["CLIENT", "KILL", "ID", id]);
      // While it is away, other writers push the stream past its offset (MAXLEN = 1, exact).
      for (let i = 0; i < 5; i++) {
        await control.sendCommand([
          "XADD",
          "socket.io",
          "MAXLEN",
          "1",
          "*",
          "uid",
          "x",
          "nsp",
          "/",
        ]);
      }
      await control.sendCommand(["CONFIG", "SET", "maxclients", "10000"]);
      await waitUntil(() => adapter.metrics().readers[0].losses === 1, {
        timeout: 8000,
        what: "a reported loss",
      });
    } finally {
      if (c) await c.closeAll();
      await control.quit().catch(() => {});
      await redis.stop();
    }
  }, 30000);
});
