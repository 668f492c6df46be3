"use strict";

// The official 0.3.1 defect: with streamCount > 1 a namespace whose hashCode is negative is
// written to "<streamName>--k", a stream no official node reads. Our nodes write it to the
// stream of the non-negative index (read by every node, official ones included) and also read
// the official "--k" stream, so official writers reach them; namespaces with a non-negative
// hash keep the official naming (see lib/emitter-wire.js).

const { hashCode: officialHashCode } = require("@socket.io/redis-streams-adapter/dist/util");
const { startRedis } = require("./helpers/redis");
const {
  createStreamsCluster,
  connectClient,
  expectRecovered,
  expectEachNamespaceReached,
  record,
  waitForCount,
  sleep,
} = require("./helpers/streams-cluster");
const { streamNameFor, officialOnlyStreamFor } = require("../lib/emitter-wire");

const NEGATIVE = "/notifications"; // hashCode -1014064871: % 3 = -2
const STREAM_COUNT = 3;
const ORDINARY = ["/", "/a", "/b", "/chat"];

const officialStreamOf = (nsp) => `socket.io-${officialHashCode(nsp) % STREAM_COUNT}`;
const xlen = async (redis, stream) => Number(await redis.cli(["XLEN", stream]));

describe("stream naming", () => {
  it("keeps the official name for non-negative hashes and fixes negative ones", () => {
    expect(officialHashCode(NEGATIVE)).toBeLessThan(0);
    expect(officialStreamOf(NEGATIVE)).toBe("socket.io--2");
    expect(streamNameFor(NEGATIVE, "socket.io", STREAM_COUNT)).toBe("socket.io-1");
    expect(officialOnlyStreamFor(NEGATIVE, "socket.io", STREAM_COUNT)).toBe("socket.io--2");
    const names = [...ORDINARY, "/custom", "/é", "/orders", "/" + "x".repeat(40)];
    for (const nsp of names) {
      for (const count of [2, 3, 4, 7]) {
        const official = `s-${officialHashCode(nsp) % count}`;
        if (officialHashCode(nsp) % count >= 0) {
          expect(streamNameFor(nsp, "s", count)).toBe(official);
          expect(officialOnlyStreamFor(nsp, "s", count)).toBeNull();
        } else {
          expect(officialOnlyStreamFor(nsp, "s", count)).toBe(official);
        }
      }
    }
    // a negative hash that is a multiple of the count: JS gives -0, named "-0" like ours
    const h = officialHashCode("/abcdefgh"); // -2086307405 = -5 * 417261481
    expect(h % 5).toBe(-0);
    expect(streamNameFor("/abcdefgh", "s", 5)).toBe("s-0");
    expect(officialOnlyStreamFor("/abcdefgh", "s", 5)).toBeNull();
  });
});

describe.each([
  ["native/native/native", ["native", "native", "native"]],
  ["native/official/native", ["native", "official", "native"]],
  ["official/native/official", ["official", "native", "official"]],
])("a namespace with a negative hash, streamCount 3 [%s]", (_name, nodes) => {
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

  it("our writers reach every node, official writers reach ours; ordinary namespaces unchanged", async () => {
    const namespaces = [...ORDINARY, NEGATIVE];
    c = await createStreamsCluster({
      redis,
      nodes,
      namespaces,
      opts: { streamCount: STREAM_COUNT },
    });
    await expectEachNamespaceReached(c, ORDINARY);

    // NEGATIVE: every client gets the emits of our nodes and of its own node; a client of an
    // official node still misses the other official nodes (they write to "--2", which only our
    // nodes read: the official defect we cannot fix on their side).
    const got = record(c.clients[NEGATIVE], "ev");
    c.servers.forEach((io, i) => io.of(NEGATIVE).emit("ev", i));
    const expectedFrom = nodes.map((kind, i) =>
      nodes.map((_, j) => j).filter((j) => kind === "native" || nodes[j] === "native" || j === i),
    );
    for (let i = 0; i < nodes.length; i++) await waitForCount(got[i], expectedFrom[i].length);
    await sleep(300);
    expect(got.map((g) => g.map((a) => a[0]).sort())).toEqual(expectedFrom);

    // Where each writer put them: ours in socket.io-1, official nodes in socket.io--2.
    const ours = nodes.filter((n) => n === "native").length;
    const official = nodes.length - ours;
    const negativeEntries = async (stream) => {
      const out = await redis.cli(["XRANGE", stream, "-", "+"]);
      return out.split("\n").filter((line) => line === NEGATIVE).length;
    };
    expect(await negativeEntries("socket.io-1")).toBe(ours);
    expect(await negativeEntries("socket.io--2")).toBe(official);
    // Ordinary namespaces: one entry per node in the official stream of each, nothing else.
    const keys = (await redis.cli(["KEYS", "socket.io-*"])).split("\n").filter(Boolean).sort();
    const expected = new Set(ORDINARY.map(officialStreamOf));
    expected.add("socket.io-1");
    if (official > 0) expected.add("socket.io--2");
    expect(keys).toEqual([...expected].sort());
    for (const nsp of ORDINARY) {
      const out = await redis.cli(["XRANGE", officialStreamOf(nsp), "-", "+"]);
      expect(out.split("\n").filter((line) => line === nsp)).toHaveLength(nodes.length);
    }
  });
});

describe("a namespace with a negative hash: session restore", () => {
  it("restores packets written by ours and by an official node (both streams), in order", async () => {
    const redis = await startRedis();
    const nodes = ["native", "official", "native"];
    let c;
    let again;
    try {
      c = await createStreamsCluster({
        redis,
        nodes,
        namespaces: [NEGATIVE],
        opts: { streamCount: STREAM_COUNT },
        serverOpts: {
          connectionStateRecovery: { maxDisconnectionDuration: 10000, skipMiddlewares: true },
        },
      });
      const client = await connectClient(c.ports[0], NEGATIVE);
      const got = record([client], "ev")[0];
      c.servers[1].of(NEGATIVE).emit("ev", 0);
      await waitForCount(got, 1);

      const sid = client.id;
      client.io.engine.close();
      await sleep(200);
      // alternate writers, so the missed packets sit in both streams
      for (let i = 1; i <= 4; i++) {
        c.servers[i % 2 === 1 ? 1 : 2].of(NEGATIVE).emit("ev", i);
        await sleep(20);
      }
      await sleep(300);
      expect(await xlen(redis, "socket.io--2")).toBeGreaterThanOrEqual(3);
      expect(await xlen(redis, "socket.io-1")).toBeGreaterThanOrEqual(2);

      ({ again } = await expectRecovered({
        client,
        sid,
        port: c.ports[2],
        nsp: NEGATIVE,
        expected: [1, 2, 3, 4],
      }));
    } finally {
      if (again) again.disconnect();
      if (c) await c.closeAll();
      await redis.stop();
    }
  }, 30000);
});
