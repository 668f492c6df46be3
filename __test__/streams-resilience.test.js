"use strict";

// Streams adapter: Redis outage (emits during the outage are queued and delivered exactly once
// after the restart) and connection state recovery across nodes.

// Fault injection on a shared 2-core machine: one retry, with the first failure logged.
jest.retryTimes(1, { logErrorsBeforeRetry: true });

const { startRedis, waitUntil } = require("./helpers/redis");
const {
  createStreamsCluster,
  connectClient,
  expectRecovered,
  record,
  waitForCount,
  sleep,
} = require("./helpers/streams-cluster");

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
      // Local clients do not wait for Redis (no connection state recovery, so no entry id to
      // wait for; upstream delivers locally only after the XADD).
      await waitForCount(got[0], 3);
      await waitForCount(got[1], 2);
      expect(got[0].map((a) => a[0])).toEqual(["before", "during-0a", "during-0b"]);
      expect(got[1].map((a) => a[0])).toEqual(["before", "during-1"]);
      await sleep(500);
      expect(got[2].map((a) => a[0])).toEqual(["before"]);
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

  it("delivers locally and counts the failure when Redis refuses the entry", async () => {
    c = await createStreamsCluster({
      redis,
      nodes: ["native", "native", "native"],
      opts: { blockTimeInMs: 200 },
    });
    const got = record(c.clients["/"], "ev");
    // The stream's key holds a string: every XADD gets WRONGTYPE.
    await redis.cli(["DEL", "socket.io"]);
    await redis.cli(["SET", "socket.io", "not a stream"]);
    c.servers[0].emit("ev", "refused");
    c.servers[0].emit("ev", "refused", Buffer.from([1]));
    await waitForCount(got[0], 2);
    expect(got[0].map((a) => a[0])).toEqual(["refused", "refused"]);
    const adapter = c.servers[0].of("/").adapter;
    await waitUntil(() => adapter.metrics().writeFailures === 2, { what: "2 write failures" });
    await sleep(300);
    expect(got[1]).toEqual([]);
    expect(got[2]).toEqual([]);
    await redis.cli(["DEL", "socket.io"]);
  });

  // [name, nodes, node the client comes back to, nodes that emit while it is away]; the client
  // always starts on node 0, and sessions persisted by one kind are restored by the other.
  const RESTORE_CASES = [
    ["native -> native, sent by native", ["native", "native", "native"], 2, [1]],
    ["native -> native, sent by official", ["native", "official", "native"], 2, [1]],
    ["native -> official, sent by both", ["native", "official", "native"], 1, [1, 2]],
    ["official -> native, sent by both", ["official", "native", "official"], 1, [1, 2]],
  ];

  it.each(RESTORE_CASES)(
    "restores a session on another node: %s (missed packets in order, rooms kept)",
    async (_name, nodes, restoreOn, senders) => {
      c = await createStreamsCluster({
        redis,
        nodes,
        serverOpts: {
          connectionStateRecovery: { maxDisconnectionDuration: 10000, skipMiddlewares: true },
        },
      });
      const client = await connectClient(c.ports[0]);
      c.servers[0].of("/").sockets.get(client.id).join("room1");
      const got = record([client], "ev")[0];
      c.servers[senders[0]].emit("ev", 0);
      await waitForCount(got, 1);

      // a recoverable disconnect: the server persists the session in Redis
      const sid = client.id;
      client.io.engine.close();
      await sleep(200);
      const sender = (i) => c.servers[senders[i % senders.length]];
      sender(1).emit("ev", 1);
      await sleep(20);
      sender(2).to("room1").emit("ev", 2);
      await sleep(20);
      sender(3).to("other").emit("ev", "not-for-me");
      sender(3).except("other").emit("ev", 3);
      await sleep(20);
      sender(4).to("room1").except(sid).emit("ev", "excluded");
      sender(4).emit("ev", 4);
      await sleep(300);

      const { again, missed } = await expectRecovered({
        client,
        sid,
        port: c.ports[restoreOn],
        expected: [1, 2, 3, 4],
      });
      try {
        const restored = c.servers[restoreOn].of("/").sockets.get(sid);
        expect(restored.rooms.has("room1")).toBe(true);
        c.servers[senders[0]].to("room1").emit("ev", "after");
        await waitForCount(missed, 5);
        expect(missed[4][0]).toBe("after");
      } finally {
        again.disconnect();
      }
    },
    30000,
  );
});

describe("streams trimming", () => {
  let redis;
  let control;
  let c;

  beforeEach(async () => {
    redis = await startRedis();
    const { createClient } = require("redis");
    control = createClient({ url: redis.url });
    control.on("error", () => {});
    await control.connect();
    c = await createStreamsCluster({ redis, nodes: ["native"], opts: { blockTimeInMs: 1000 } });
  });

  afterEach(async () => {
    if (c) await c.closeAll();
    c = undefined;
    await control.quit().catch(() => {});
    await redis.stop();
  });

  /** XADD with an exact MAXLEN, as another writer would (arguments for sendCommand). */
  const trimmedXadd = (maxLen, value) => [
    ...["XADD", "socket.io", "MAXLEN", String(maxLen), "*"],
    ...["uid", "x", "nsp", "/", "v", value],
  ];
  const xaddTrimmed = (maxLen, value) => control.sendCommand(trimmedXadd(maxLen, value));

  /**
   * Disconnects the node's reader and keeps it out (no new connection accepted) while
   * `whileAway` runs, then lets it reconnect.
   */
  async function withReaderAway(whileAway) {
    const clients = (await control.sendCommand(["CLIENT", "LIST"])).split("\n").filter(Boolean);
    await control.sendCommand(["CONFIG", "SET", "maxclients", String(clients.length - 1)]);
    const reader = clients.find((l) => /cmd=xread\b/.test(l));
    await control.sendCommand(["CLIENT", "KILL", "ID", /\bid=(\d+)/.exec(reader)[1]]);
    await whileAway();
    await control.sendCommand(["CONFIG", "SET", "maxclients", "10000"]);
  }

  /** The node's adapter with its "stream-loss" events recorded, after it read one broadcast. */
  async function readOneBroadcast() {
    const adapter = c.servers[0].of("/").adapter;
    const losses = [];
    adapter.on("stream-loss", (loss) => losses.push(loss));
    const got = record(c.clients["/"], "ev");
    c.servers[0].emit("ev", "first");
    await waitForCount(got[0], 1);
    return { adapter, losses, got };
  }

  it("reports a loss (event, counters) when entries past the reader's offset were trimmed", async () => {
    const { adapter, losses, got } = await readOneBroadcast();
    const readUpTo = (await redis.cli(["XREVRANGE", "socket.io", "+", "-", "COUNT", "1"])).split(
      "\n",
    )[0];
    // While it is away, another writer adds 5 entries, keeping only the last one.
    await withReaderAway(async () => {
      for (let i = 0; i < 5; i++) await xaddTrimmed(1, String(i));
    });
    await waitUntil(() => losses.length === 1, { timeout: 8000, what: "a stream-loss event" });
    const firstAvailable = (await redis.cli(["XRANGE", "socket.io", "-", "+"])).split("\n")[0];
    expect(losses[0]).toEqual({ stream: "socket.io", after: readUpTo, firstAvailable, lost: 4 });
    const reader = adapter.metrics().readers[0];
    expect(reader).toMatchObject({ stream: "socket.io", losses: 1, lostEntries: 4 });
    expect(reader.reconnects).toBeGreaterThanOrEqual(1);
    // reported once: later traffic does not repeat it
    c.servers[0].emit("ev", "after");
    await waitForCount(got[0], 2);
    await sleep(300);
    expect(losses).toHaveLength(1);
  }, 30000);

  it("reports a loss to a connected reader when a burst trims past its position", async () => {
    const { adapter, losses } = await readOneBroadcast();
    // 5 entries in one transaction, keeping only the last: the blocked reader wakes up after
    // EXEC, when the 4 others are already gone
    const burst = control.multi();
    for (let i = 0; i < 5; i++) burst.addCommand(trimmedXadd(1, String(i)));
    await burst.exec();
    await waitUntil(() => losses.length === 1, { timeout: 8000, what: "a stream-loss event" });
    expect(losses[0].lost).toBe(4);
    expect(adapter.metrics().readers[0]).toMatchObject({
      losses: 1,
      lostEntries: 4,
      reconnects: 0,
    });
  }, 30000);

  it("reports no loss when the trim stopped right after the reader's entry", async () => {
    const { adapter, losses, got } = await readOneBroadcast();
    // While it is away, one entry is added and everything before it (the reader's own entry
    // included) is trimmed: nothing it had not read is gone.
    await withReaderAway(() => xaddTrimmed(1, "next"));
    await waitUntil(() => adapter.metrics().readers[0].reconnects >= 1, {
      timeout: 8000,
      what: "the reader to reconnect",
    });
    // the reader is back and reading: a new broadcast arrives
    c.servers[0].emit("ev", "after");
    await waitForCount(got[0], 2);
    await sleep(300);
    expect(losses).toEqual([]);
    expect(adapter.metrics().readers[0]).toMatchObject({ losses: 0, lostEntries: 0 });
  }, 30000);
});
