"use strict";

// Resilience: Redis crash + restart, Redis down at creation, malformed
// messages on the adapter's channels.

const path = require("path");
const { execFile } = require("child_process");
const notepack = require("notepack.io");
const { startRedis, getFreePort } = require("./helpers/redis");
const {
  createCluster,
  waitFor,
  waitForCount,
  waitUntil,
  record,
  sleep,
} = require("./helpers/cluster");

const ids = (sockets) => sockets.map((s) => s.id).sort();

/** Emit from `from` every 200 ms until every client got one; resolves the time it took. */
async function broadcastUntilDelivered(c, from, timeout) {
  const start = Date.now();
  const token = `t${from}-${start}`;
  const got = c.clients.map((cl) => waitFor(cl, token, timeout));
  const timer = setInterval(() => c.servers[from].emit(token), 200);
  c.servers[from].emit(token);
  try {
    await Promise.all(got);
  } finally {
    clearInterval(timer);
  }
  return Date.now() - start;
}

describe.each([
  ["native(url)", { type: "native", clientKind: "url" }],
  ["native(node-redis-v5)", { type: "native", clientKind: "node-redis-v5" }],
  ["native(ioredis)", { type: "native", clientKind: "ioredis" }],
  ["official(node-redis-v5) control", { type: "official", clientKind: "node-redis-v5" }],
])("Redis crash and restart [%s]", (_name, node) => {
  let redis;
  let c;
  afterEach(async () => {
    if (c) await c.closeAll();
    c = undefined;
    if (redis) await redis.stop();
  });

  it("broadcasts and requests flow again after SIGKILL + restart on the same port", async () => {
    redis = await startRedis();
    c = await createCluster({
      redis: redis.url,
      redisHandle: redis,
      nodes: [node, node, node],
      adapterOpts: { requestsTimeout: 1000 },
    });
    await broadcastUntilDelivered(c, 0, 2000);

    await redis.kill();
    await sleep(300);
    // local delivery still works while Redis is down
    const local = record([c.clients[1]], "during")[0];
    c.servers[1].emit("during");
    await waitForCount(local, 1);

    await redis.restart();
    // subscriptions come back by themselves: every node reaches every client
    for (const from of [0, 1, 2]) await broadcastUntilDelivered(c, from, 10000);
    await waitUntil(async () => (await c.servers[2].fetchSockets().catch(() => [])).length === 3, {
      timeout: 5000,
      what: "fetchSockets after restart",
    });
    expect(ids(await c.servers[0].fetchSockets())).toEqual(ids(c.serverSockets));
    expect(await c.servers[1].of("/").adapter.serverCount()).toBe(3);
  }, 30000);
});

describe("Redis down at creation", () => {
  const scenario = path.join(__dirname, "helpers", "redis-down-scenario.js");
  const run = (kind, port) =>
    new Promise((resolve, reject) => {
      execFile(
        process.execPath,
        [scenario, kind, String(port)],
        { timeout: 20000 },
        (err, stdout, stderr) => {
          const line = stdout.split("\n").find((l) => l.startsWith("REPORT "));
          if (!line)
            return reject(new Error(`no report (${err && err.message}): ${stdout}\n${stderr}`));
          resolve(JSON.parse(line.slice("REPORT ".length)));
        },
      );
    });

  it("control: the official adapter with unconnected node-redis clients leaks unhandled rejections", async () => {
    // proves that the scenario does detect unhandled rejections
    const report = await run("official-node-redis-v5", await getFreePort());
    expect(report.created).toBe(true);
    expect(report.unhandled.length).toBeGreaterThan(0);
  });

  it.each(["native-url", "native-ioredis"])(
    "%s: no unhandled rejection, local delivery works",
    async (kind) => {
      const report = await run(kind, await getFreePort());
      expect(report.fatal).toBeUndefined();
      expect(report.created).toBe(true);
      expect(report.unhandled).toEqual([]);
      expect(report.uncaught).toEqual([]);
      expect(report.localDelivered).toBe(true);
      expect(report.localFetch).toBe(1);
    },
  );

  it("native(url): starts working once Redis comes up", async () => {
    const port = await getFreePort();
    const url = `redis://127.0.0.1:${port}`;
    let redis;
    const c = await createCluster({
      redis: url,
      nodes: [
        { type: "native", clientKind: "url" },
        { type: "native", clientKind: "url" },
      ],
    });
    try {
      await sleep(300);
      redis = await startRedis({ port });
      await broadcastUntilDelivered(c, 0, 10000);
      await broadcastUntilDelivered(c, 1, 10000);
    } finally {
      await c.closeAll();
      if (redis) await redis.stop();
    }
  }, 30000);
});

describe.each([
  ["native(url)", { type: "native", clientKind: "url" }],
  ["native(node-redis-v5)", { type: "native", clientKind: "node-redis-v5" }],
])("malformed messages [%s]", (_name, node) => {
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

  const garbage = [
    Buffer.alloc(0),
    Buffer.from([0xc1]), // never used in MessagePack
    Buffer.from([0x93, 0xa1]), // truncated array
    Buffer.from([0xdd, 0xff, 0xff, 0xff, 0xff]), // array32 announcing 4G items
    Buffer.from("{not json"),
    Buffer.from("null"),
    Buffer.from("[]"),
    Buffer.from('"str"'),
    Buffer.from("1234"),
    Buffer.from(Array.from({ length: 64 }, (_, i) => (i * 37) & 0xff)),
    notepack.encode("just a string"),
    notepack.encode([1, 2, 3]),
    notepack.encode(["abcdef", null, null]),
    notepack.encode([
      "abcdef",
      { type: 2, data: "not-an-array", nsp: "/" },
      { rooms: 1, except: "x" },
    ]),
    notepack.encode(["abcdef", { type: 2, data: ["ev"], nsp: "/" }]), // no opts
    notepack.encode({ uid: "abcdef", type: 7, requestId: "r1" }), // BROADCAST without packet
    Buffer.from('{"uid":"abcdef","requestId":"r2","type":5}'), // REMOTE_FETCH without opts
    Buffer.from('{"uid":"abcdef","type":2,"opts":{"rooms":5},"rooms":"x"}'),
    Buffer.from('{"uid":"abcdef","type":4,"opts":null}'),
    Buffer.from('{"uid":"abcdef","type":6,"data":"not-an-array"}'),
    Buffer.from('{"uid":"abcdef","requestId":"r3","type":6}'),
    Buffer.from('{"uid":"abcdef","type":99}'),
    Buffer.from('{"requestId":"unknown","type":8,"clientCount":"many"}'),
    Buffer.from('{"requestId":"unknown","type":9}'),
    Buffer.from('{"requestId":"unknown","sockets":"nope"}'),
  ];

  it("skips them and keeps working", async () => {
    c = await createCluster({
      redis: redis.url,
      redisHandle: redis,
      nodes: [node, node, node],
      adapterOpts: { requestsTimeout: 1000 },
    });
    for (const s of c.serverSockets) s.join("room");
    const pub = await c.rawClient();
    const channels = [
      "socket.io#/#",
      "socket.io#/#room#",
      "socket.io-request#/#",
      "socket.io-response#/#",
    ];
    let receivers = 0;
    for (const channel of channels) {
      for (const payload of garbage) receivers += await pub.publish(channel, payload);
    }
    // each of the 3 nodes subscribes to every one of those channels
    expect(receivers).toBe(3 * channels.length * garbage.length);

    const got = record(c.clients, "ev");
    c.servers[0].emit("ev", "after");
    c.servers[1].to("room").emit("ev", "room");
    for (const g of got) await waitForCount(g, 2);
    await c.fence(2);
    expect(got.map((g) => g.map((a) => a[0]).sort())).toEqual(Array(3).fill(["after", "room"]));

    expect(ids(await c.servers[2].fetchSockets())).toEqual(ids(c.serverSockets));
    c.servers.forEach((io, i) => io.on("ask", (cb) => cb(i)));
    expect((await c.servers[0].serverSideEmitWithAck("ask")).sort()).toEqual([1, 2]);
    c.clients.forEach((cl, i) => cl.on("ack-ev", (cb) => cb(i)));
    expect((await c.servers[1].timeout(2000).emitWithAck("ack-ev")).sort()).toEqual([0, 1, 2]);
  });
});
