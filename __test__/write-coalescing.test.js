"use strict";

// coalesceWebSocketWrites (lib/write-coalescing.js): the WebSocket frames engine.io flushes
// together leave in one writev instead of one syscall each, with the same bytes in the same
// order; `coalesceWebSocketWrites: false` turns it off.

const { startRedis } = require("./helpers/redis");
const { createCluster, waitUntil } = require("./helpers/cluster");
const { createShardedCluster } = require("./helpers/sharded");
const { tcpSocketOf } = require("../lib/write-coalescing");

const N = 500;

/** Counts the writes that reach the TCP socket of node 1's only client during `run`. */
async function countSocketWrites(c, run) {
  const [engineSocket] = Object.values(c.servers[1].engine.clients);
  const tcp = tcpSocketOf(engineSocket);
  expect(tcp).toBeTruthy();
  let calls = 0;
  const write = tcp._write;
  const writev = tcp._writev;
  tcp._write = function (...args) {
    calls++;
    return write.apply(this, args);
  };
  tcp._writev = function (...args) {
    calls++;
    return writev.apply(this, args);
  };
  try {
    await run();
  } finally {
    tcp._write = write;
    tcp._writev = writev;
  }
  return calls;
}

describe.each([
  ["classic", createCluster],
  ["sharded", createShardedCluster],
])("WebSocket write coalescing (%s)", (name, create) => {
  let redis;

  beforeAll(async () => {
    redis = await startRedis();
  });

  afterAll(async () => {
    await redis.stop();
  });

  async function burst(adapterOpts) {
    const c = await create({
      redis: redis.url,
      redisHandle: redis,
      nodes: ["native", "native"],
      adapterOpts,
    });
    try {
      const got = [];
      c.clients[1].on("ev", (i, text) => got.push([i, text]));
      const calls = await countSocketWrites(c, async () => {
        for (let i = 0; i < N; i++) c.servers[0].emit("ev", i, `message ${i}`);
        await waitUntil(() => got.length === N, { timeout: 15000, what: `${N} events` });
      });
      expect(got).toEqual(Array.from({ length: N }, (_, i) => [i, `message ${i}`]));
      return calls;
    } finally {
      await c.closeAll();
    }
  }

  it(`delivers a burst of ${N} broadcasts in order with far fewer socket writes`, async () => {
    const coalesced = await burst({});
    const separate = await burst({ coalesceWebSocketWrites: false });
    console.log(
      `${name}: ${N} broadcasts reached the client in ${coalesced} socket writes ` +
        `(coalesceWebSocketWrites: false: ${separate})`,
    );
    // Without the hook every frame is its own write; with it, at most half as many (how many
    // frames share a flush depends on how the burst arrives: classic gets it in a few batches).
    expect(separate).toBeGreaterThanOrEqual(N / 2);
    expect(coalesced * 2).toBeLessThanOrEqual(separate);
  });

  it("rejects a non-boolean option", () => {
    const { createAdapter, createShardedAdapter } = require("..");
    const make = name === "classic" ? createAdapter : createShardedAdapter;
    expect(() => make(redis.url, undefined, { coalesceWebSocketWrites: "yes" })).toThrow(
      /coalesceWebSocketWrites.*boolean/,
    );
  });
});
