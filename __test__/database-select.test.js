"use strict";

// Redis logical databases (db != 0), end to end. Pub/sub ignores databases, but streams and
// session keys live in one: a reader and a writer on different databases would silently lose
// every broadcast. Each way users name a database (node-redis URL path or `database`, ioredis
// `db`, a URL string) must reach every connection we open (raw RESP and redis crate ones), and
// our nodes must interoperate with the official packages on the same database, and only there.

const http = require("http");
const { Server } = require("socket.io");
const { createClient } = require("redis");
const { Redis } = require("ioredis");
const officialStreams = require("@socket.io/redis-streams-adapter");
const native = require("..");
const nativeStreams = require("../streams");
const { startRedis, waitUntil, sleep } = require("./helpers/redis");
const {
  connectClient,
  expectRecovered,
  record,
  waitForCount,
} = require("./helpers/streams-cluster");

const DB = 3;
const noop = () => {};

let redis;
beforeAll(async () => {
  redis = await startRedis();
});
afterAll(async () => {
  if (redis) await redis.stop();
});

// Everything a test opened, closed in reverse order after it (also when it fails).
let closers = [];
const onCleanup = (fn) => closers.push(fn);
afterEach(async () => {
  const fns = closers.reverse();
  closers = [];
  for (const fn of fns) await fn();
  // no reader of this test may pass for one of the next test's
  if (redis.isRunning()) {
    await waitUntil(async () => (await connectionsRunning("xread")).length === 0, {
      what: "the readers of closed nodes gone",
    });
  }
});

async function nodeRedis(options) {
  const client = createClient(options);
  client.on("error", noop);
  await client.connect();
  onCleanup(() =>
    Promise.race([client.quit(), sleep(1000)]).catch(() => {
      client.destroy();
    }),
  );
  return client;
}

async function ioredis(options) {
  const client = new Redis({ maxRetriesPerRequest: null, ...options });
  client.on("error", noop);
  onCleanup(async () => client.disconnect());
  if (client.status !== "ready") await new Promise((r) => client.once("ready", r));
  return client;
}

/** Each way users name a database: what they hand to createAdapter / Emitter. */
const CLIENT_KINDS = {
  "a node-redis client with the db in its URL": (db) => nodeRedis({ url: `${redis.url}/${db}` }),
  "a node-redis client with `database`": (db) =>
    nodeRedis({ socket: { host: "127.0.0.1", port: redis.port }, database: db }),
  "an ioredis client with `db`": (db) => ioredis({ port: redis.port, db }),
  "a URL string": async (db) => `${redis.url}/${db}`,
};
const URL_KIND = "a URL string";
const [NODE_REDIS_URL, NODE_REDIS_DATABASE, IOREDIS_DB] = Object.keys(CLIENT_KINDS);

/** What a user passes as subscribing client next to `client` (never connected here). */
function duplicateOf(client) {
  if (typeof client === "string") return undefined;
  if (client instanceof Redis) {
    const dup = client.duplicate({ lazyConnect: true });
    onCleanup(async () => dup.disconnect());
    return dup;
  }
  return client.duplicate();
}

/** A socket.io server on `adapter` with one connected client. */
async function startNode(adapter, serverOpts = {}) {
  const httpServer = http.createServer();
  const io = new Server(httpServer, { adapter, ...serverOpts });
  onCleanup(async () => {
    io.close();
  });
  await new Promise((r) => httpServer.listen(0, "127.0.0.1", r));
  const port = httpServer.address().port;
  const client = await connectClient(port);
  onCleanup(async () => client.disconnect());
  return { io, port, client, socket: io.of("/").sockets.get(client.id) };
}

/** CLIENT LIST of the server, one object per connection (the redis-cli asking left out). */
async function connections() {
  const out = await redis.cli(["CLIENT", "LIST"]);
  return out
    .split("\n")
    .filter(Boolean)
    .map((line) => Object.fromEntries(line.split(" ").map((kv) => kv.split(/=(.*)/s))))
    .filter((c) => c.cmd !== "client|list" && c.cmd !== "client");
}

/** Connections whose last command was one of `cmds`. */
async function connectionsRunning(...cmds) {
  return (await connections()).filter((c) => cmds.includes(c.cmd));
}

/** Waits until `n` readers (of any database) are blocked in XREAD. */
async function waitForReaders(n) {
  await waitUntil(async () => (await connectionsRunning("xread")).length >= n, {
    what: `${n} blocked XREAD readers`,
  });
}

async function xlen(db, stream) {
  return Number(await redis.cli(["-n", String(db), "XLEN", stream]));
}

async function dbsize(db) {
  return Number(await redis.cli(["-n", String(db), "DBSIZE"]));
}

let streamSeq = 0;
/** A stream name of its own per test: no test reads another one's entries. */
const freshStream = () => `db-select-${process.pid}-${++streamSeq}`;

// A short XREAD block: a closed official node's reader leaves once its XREAD returns.
const streamsAdapter = {
  ours: (client, opts) => nativeStreams.createAdapter(client, { blockTimeInMs: 500, ...opts }),
  official: (client, opts) =>
    officialStreams.createAdapter(client, { blockTimeInMs: 500, ...opts }),
};

/** Every node broadcasts once; every node's client must get all of them, and nothing else. */
async function expectBroadcastsCross(nodes) {
  const got = record(
    nodes.map((n) => n.client),
    "ev",
  );
  nodes.forEach((n, i) => n.io.emit("ev", `from-${i}`));
  for (const g of got) await waitForCount(g, nodes.length);
  await sleep(100);
  const expected = nodes.map((_, i) => `from-${i}`);
  for (const g of got) expect(g.map((a) => a[0]).sort()).toEqual(expected);
}

describe.each(Object.keys(CLIENT_KINDS))("classic adapter on db 3, given %s", (kind) => {
  it("exchanges broadcasts, fetchSockets and serverSideEmitWithAck; its connections selected db 3", async () => {
    const nodes = [];
    for (let i = 0; i < 2; i++) {
      const client = await CLIENT_KINDS[kind](DB);
      nodes.push(await startNode(native.createAdapter(client, duplicateOf(client))));
    }
    await waitUntil(async () => (await nodes[0].io.of("/").adapter.serverCount()) === 2, {
      what: "both servers subscribed",
    });

    await expectBroadcastsCross(nodes);

    nodes.forEach((n, i) => (n.socket.data = { node: i }));
    const sockets = await nodes[1].io.fetchSockets();
    expect(sockets.map((s) => s.id).sort()).toEqual(nodes.map((n) => n.client.id).sort());
    expect(sockets.map((s) => s.data.node).sort()).toEqual([0, 1]);

    nodes.forEach((n, i) => n.io.on("ping", (arg, cb) => cb(`s${i}:${arg}`)));
    expect(await nodes[0].io.serverSideEmitWithAck("ping", "x")).toEqual(["s1:x"]);

    // Pub/sub works whatever the db, so the proof is on the server: our subscribers and
    // publishers (raw RESP connections) sent SELECT 3, as did every other connection.
    const all = await connections();
    expect(
      all.filter((c) => c.cmd === "psubscribe" || c.cmd === "subscribe").length,
    ).toBeGreaterThanOrEqual(2);
    expect(all.filter((c) => c.cmd === "publish").length).toBeGreaterThanOrEqual(1);
    expect(all.filter((c) => c.db !== String(DB))).toEqual([]);
  });
});

describe("sharded adapter on db 3", () => {
  it("exchanges broadcasts and serverSideEmitWithAck; its shard subscribers selected db 3", async () => {
    const nodes = [];
    for (const kind of [NODE_REDIS_DATABASE, IOREDIS_DB]) {
      const client = await CLIENT_KINDS[kind](DB);
      nodes.push(await startNode(native.createShardedAdapter(client, duplicateOf(client))));
    }
    await waitUntil(async () => (await nodes[0].io.of("/").adapter.serverCount()) === 2, {
      what: "both servers subscribed",
    });
    await expectBroadcastsCross(nodes);
    nodes.forEach((n, i) => n.io.on("ping", (cb) => cb(`s${i}`)));
    expect(await nodes[1].io.serverSideEmitWithAck("ping")).toEqual(["s0"]);
    const all = await connections();
    expect(all.filter((c) => c.cmd === "ssubscribe").length).toBeGreaterThanOrEqual(2);
    expect(all.filter((c) => c.db !== String(DB))).toEqual([]);
  });
});

describe("streams adapter on db 3", () => {
  it("ours <-> ours (ioredis `db`, URL string): broadcasts cross, the stream is in db 3 only", async () => {
    const streamName = freshStream();
    const a = await startNode(
      streamsAdapter.ours(await CLIENT_KINDS[IOREDIS_DB](DB), { streamName }),
    );
    const b = await startNode(
      streamsAdapter.ours(await CLIENT_KINDS[URL_KIND](DB), { streamName }),
    );
    await waitForReaders(2);

    await expectBroadcastsCross([a, b]);

    expect(await xlen(DB, streamName)).toBeGreaterThanOrEqual(2);
    expect(await redis.cli(["-n", "0", "EXISTS", streamName])).toBe("0");
    expect(await dbsize(0)).toBe(0);
    // our readers (raw RESP connections) block on db 3
    const readers = await connectionsRunning("xread");
    expect(readers.length).toBeGreaterThanOrEqual(2);
    for (const c of readers) expect(c.db).toBe(String(DB));
  });

  it.each([
    [IOREDIS_DB, NODE_REDIS_DATABASE],
    [NODE_REDIS_URL, IOREDIS_DB],
    [NODE_REDIS_DATABASE, NODE_REDIS_URL],
  ])(
    "ours <-> official (official given %s, ours %s): broadcasts and requests cross, db 3 only",
    async (officialKind, oursKind) => {
      const streamName = freshStream();
      const official = await startNode(
        streamsAdapter.official(await CLIENT_KINDS[officialKind](DB), { streamName }),
      );
      const ours = await startNode(
        streamsAdapter.ours(await CLIENT_KINDS[oursKind](DB), { streamName }),
      );
      await waitForReaders(2);

      await expectBroadcastsCross([ours, official]);

      official.io.on("ping", (cb) => cb("official"));
      ours.io.on("ping", (cb) => cb("ours"));
      expect(await ours.io.serverSideEmitWithAck("ping")).toEqual(["official"]);
      expect(await official.io.serverSideEmitWithAck("ping")).toEqual(["ours"]);
      for (const n of [ours, official]) {
        const ids = (await n.io.fetchSockets()).map((s) => s.id).sort();
        expect(ids).toEqual([ours.client.id, official.client.id].sort());
      }

      expect(await xlen(DB, streamName)).toBeGreaterThanOrEqual(2);
      expect(await dbsize(0)).toBe(0);
    },
  );

  // The session key (SET / GETDEL) and the missed entries (XRANGE) go through the redis crate's
  // command connection, not the raw readers: both must be on db 3 too.
  it.each([
    ["ours", "official"],
    ["official", "ours"],
  ])(
    "connection state recovery: %s persists the session, %s restores it, all in db 3",
    async (persister, restorer) => {
      const streamName = freshStream();
      const serverOpts = {
        connectionStateRecovery: { maxDisconnectionDuration: 10000, skipMiddlewares: true },
      };
      const kinds = { ours: IOREDIS_DB, official: NODE_REDIS_DATABASE };
      const make = async (who) =>
        startNode(
          streamsAdapter[who](await CLIENT_KINDS[kinds[who]](DB), { streamName }),
          serverOpts,
        );
      const first = await make(persister);
      const second = await make(restorer);
      await waitForReaders(2);

      const { client } = first;
      first.socket.join("room1");
      // the client's offset: an entry id of the db 3 stream
      const seen = record([client], "ev")[0];
      second.io.emit("ev", 0);
      await waitForCount(seen, 1);
      const sid = client.id;
      const sessionKey = `sio:session:${client._pid}`;
      const sessionIn = async (db) => redis.cli(["-n", String(db), "EXISTS", sessionKey]);
      client.io.engine.close(); // a recoverable disconnect: the session is persisted
      await waitUntil(async () => (await sessionIn(DB)) === "1", {
        what: "the session key in db 3",
      });
      expect(await sessionIn(0)).toBe("0");
      const before = await xlen(DB, streamName);
      // one after the other: two nodes' XADDs have no order between them
      second.io.to("room1").emit("ev", 1);
      await waitUntil(async () => (await xlen(DB, streamName)) === before + 1, {
        what: "the first broadcast in the db 3 stream",
      });
      first.io.emit("ev", 2);
      await waitUntil(async () => (await xlen(DB, streamName)) === before + 2, {
        what: "the second broadcast in the db 3 stream",
      });
      expect(await dbsize(0)).toBe(0);

      const { again } = await expectRecovered({
        client,
        sid,
        port: second.port,
        expected: [1, 2],
      });
      onCleanup(async () => again.disconnect());
      expect(second.io.of("/").sockets.get(sid).rooms.has("room1")).toBe(true);
      // GETDEL took the session key out of db 3
      expect(await sessionIn(DB)).toBe("0");
    },
  );
});

// node-redis sends `database` as given (SELECT "3" is fine) and ioredis parses a string `db`:
// `database: process.env.REDIS_DB` works with the official packages, so it must with ours.
describe("a database given as a string", () => {
  it('node-redis `database: "3"`: ours <-> official streams cross in db 3', async () => {
    const streamName = freshStream();
    const asString = () =>
      nodeRedis({ socket: { host: "127.0.0.1", port: redis.port }, database: String(DB) });
    const ours = await startNode(streamsAdapter.ours(await asString(), { streamName }));
    const official = await startNode(streamsAdapter.official(await asString(), { streamName }));
    const classic = await startNode(native.createAdapter({ port: redis.port, db: String(DB) }));
    await waitForReaders(2);
    await waitUntil(async () => (await classic.io.of("/").adapter.serverCount()) === 1, {
      what: 'the classic node subscribed (a plain options object with db "3")',
    });
    await expectBroadcastsCross([ours, official]);
    expect(await xlen(DB, streamName)).toBe(2);
    expect(await dbsize(0)).toBe(0);
    const all = await connections();
    expect(
      all.filter((c) => c.cmd === "psubscribe" || c.cmd === "subscribe").length,
    ).toBeGreaterThanOrEqual(3);
    expect(all.filter((c) => c.db !== String(DB))).toEqual([]);
  });

  it.each([["x"], [-1], [1.5]])("rejects database %j at creation", (db) => {
    const options = { port: redis.port, db };
    expect(() => native.createAdapter(options)).toThrow(native.InvalidRedisClientError);
    expect(() => nativeStreams.createAdapter(options)).toThrow(/invalid database/);
    expect(() => new native.Emitter(options)).toThrow(/invalid database/);
  });
});

describe("Emitter on db 3", () => {
  it("classic: reaches our adapter; its publisher selected db 3", async () => {
    const node = await startNode(native.createAdapter(await CLIENT_KINDS[NODE_REDIS_URL](DB)));
    node.socket.join("room1");
    const emitter = new native.Emitter(await CLIENT_KINDS[IOREDIS_DB](DB));
    onCleanup(() => emitter.close());
    await waitUntil(async () => (await node.io.of("/").adapter.serverCount()) === 1, {
      what: "the server subscribed",
    });
    const got = record([node.client], "ev")[0];
    await expect(emitter.emit("ev", "all")).resolves.toBe(true);
    await expect(emitter.to("room1").emit("ev", "room")).resolves.toBe(true);
    await waitForCount(got, 2);
    expect(got.map((a) => a[0])).toEqual(["all", "room"]);
    const publishers = await connectionsRunning("publish");
    expect(publishers.length).toBeGreaterThanOrEqual(1);
    for (const c of publishers) expect(c.db).toBe(String(DB));
  });

  it("streams: XADDs to db 3, read by ours and by the official adapter", async () => {
    const streamName = freshStream();
    const ours = await startNode(
      streamsAdapter.ours(await CLIENT_KINDS[NODE_REDIS_DATABASE](DB), { streamName }),
    );
    const official = await startNode(
      streamsAdapter.official(await CLIENT_KINDS[IOREDIS_DB](DB), { streamName }),
    );
    await waitForReaders(2);
    const emitter = new native.Emitter(await CLIENT_KINDS[URL_KIND](DB), {
      adapter: "streams",
      streamName,
    });
    onCleanup(() => emitter.close());
    const got = record([ours.client, official.client], "ev");
    await expect(emitter.emit("ev", "streamed")).resolves.toBe(true);
    for (const g of got) await waitForCount(g, 1);
    await sleep(100);
    for (const g of got) expect(g).toEqual([["streamed"]]);
    expect(await xlen(DB, streamName)).toBe(1);
    expect(await dbsize(0)).toBe(0);
  });
});

describe("a different db is another world", () => {
  it("ours on db 3 and the official streams adapter on db 4 exchange no broadcast", async () => {
    const streamName = freshStream();
    const on3 = [
      await startNode(streamsAdapter.ours(await CLIENT_KINDS[IOREDIS_DB](3), { streamName })),
      await startNode(streamsAdapter.ours(await CLIENT_KINDS[URL_KIND](3), { streamName })),
    ];
    const on4 = [
      await startNode(
        streamsAdapter.official(await CLIENT_KINDS[NODE_REDIS_DATABASE](4), { streamName }),
      ),
      await startNode(streamsAdapter.official(await CLIENT_KINDS[IOREDIS_DB](4), { streamName })),
    ];
    await waitForReaders(4);
    const nodes = [...on3, ...on4];
    const got = record(
      nodes.map((n) => n.client),
      "ev",
    );
    on3[0].io.emit("ev", "db3");
    on4[0].io.emit("ev", "db4");
    // the positive controls: each broadcast reached the other node of its own db
    await waitForCount(got[1], 1);
    await waitForCount(got[3], 1);
    await sleep(300);
    expect(got.map((g) => g.map((a) => a[0]))).toEqual([["db3"], ["db3"], ["db4"], ["db4"]]);
    expect(await xlen(3, streamName)).toBe(1);
    expect(await xlen(4, streamName)).toBe(1);
    expect(await dbsize(0)).toBe(0);
  });
});

// Last: it restarts the file's Redis. Our raw connections must SELECT again when they reconnect.
describe("after a Redis restart", () => {
  it("ours and the official adapter reconnect to db 3 and broadcasts cross again", async () => {
    const streamName = freshStream();
    const opts = { streamName };
    const oursA = await startNode(streamsAdapter.ours(await CLIENT_KINDS[IOREDIS_DB](DB), opts));
    const oursB = await startNode(streamsAdapter.ours(await CLIENT_KINDS[URL_KIND](DB), opts));
    const official = await startNode(
      streamsAdapter.official(await CLIENT_KINDS[NODE_REDIS_DATABASE](DB), opts),
    );
    const classic = await startNode(native.createAdapter(await CLIENT_KINDS[URL_KIND](DB)));
    await waitForReaders(3);
    await expectBroadcastsCross([oursA, oursB, official]);

    await redis.restart(); // an empty server: nothing was persisted
    await waitForReaders(3);
    await waitUntil(async () => (await classic.io.of("/").adapter.serverCount()) === 1, {
      what: "the classic subscriber back",
    });
    await expectBroadcastsCross([oursA, oursB, official]);
    const got = record([classic.client], "ev")[0];
    classic.io.emit("ev", "classic");
    await waitForCount(got, 1);

    expect(await xlen(DB, streamName)).toBeGreaterThanOrEqual(3);
    expect(await dbsize(0)).toBe(0);
    // every connection came back on db 3 (a fresh server: nothing older is left)
    const all = await connections();
    expect(all.filter((c) => c.cmd === "xread").length).toBeGreaterThanOrEqual(3);
    expect(all.filter((c) => c.db !== String(DB))).toEqual([]);
  }, 45000);
});
