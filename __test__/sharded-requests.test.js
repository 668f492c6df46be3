"use strict";

// The sharded adapter's requests publish together with the server count (SHARDNUMSUB then
// SPUBLISH in one write) and learn the count afterwards. Answers can then arrive before the
// count: they must be kept, and the request must complete exactly as upstream's would. The
// driver is a stub here so that every order can be forced; the real path runs in
// sharded.test.js and node-killed.test.js.

const { MessageType } = require("socket.io-adapter");
const { ShardedRedisAdapter } = require("../lib/sharded-adapter");

function setup() {
  const counts = [];
  const published = [];
  const driver = {
    setWireText() {},
    whenSubscribed: () => Promise.resolve(),
    countAndPublish(ns, payload) {
      published.push(JSON.parse(payload.toString()));
      return new Promise((resolve, reject) => counts.push({ resolve, reject }));
    },
  };
  const node = { driver, register: () => 1, scheduleFlush() {}, inOrder: () => driver };
  const nsp = { name: "/", server: { encoder: {}, opts: {} }, sockets: new Map() };
  const adapter = new ShardedRedisAdapter(nsp, null, null, {}, node);
  return { adapter, counts, published };
}

const answer = (adapter, requestId, packet) =>
  adapter.onResponse({
    type: MessageType.SERVER_SIDE_EMIT_RESPONSE,
    data: { requestId, packet },
  });

describe("sharded requests with the count after the publish", () => {
  it("keeps answers that arrive before the count", async () => {
    const { adapter, counts, published } = setup();
    const acked = new Promise((resolve) =>
      adapter.serverSideEmit(["q", (err, res) => resolve({ err, res })]),
    );
    await new Promise((r) => setImmediate(r));
    const { requestId } = published[0].data;
    expect(published[0]).toMatchObject({ type: MessageType.SERVER_SIDE_EMIT, uid: adapter.uid });
    answer(adapter, requestId, "a");
    answer(adapter, requestId, "b");
    counts[0].resolve(3); // 2 other servers
    expect(await acked).toEqual({ err: null, res: ["a", "b"] });
    expect(adapter.requests.size).toBe(0);
  });

  it("waits for the answers still missing once the count is known", async () => {
    const { adapter, counts, published } = setup();
    let result;
    adapter.serverSideEmit(["q", (err, res) => (result = { err, res })]);
    await new Promise((r) => setImmediate(r));
    const { requestId } = published[0].data;
    answer(adapter, requestId, "a");
    counts[0].resolve(3);
    await new Promise((r) => setImmediate(r));
    expect(result).toBeUndefined();
    answer(adapter, requestId, "b");
    expect(result).toEqual({ err: null, res: ["a", "b"] });
  });

  it("completes at once with no other server, and reports a failed publish", async () => {
    const { adapter, counts } = setup();
    const alone = new Promise((resolve) =>
      adapter.serverSideEmit(["q", (err, res) => resolve({ err, res })]),
    );
    await new Promise((r) => setImmediate(r));
    counts[0].resolve(1);
    expect(await alone).toEqual({ err: null, res: [] });
    const failed = new Promise((resolve) =>
      adapter.serverSideEmit(["q", (err, res) => resolve({ err, res })]),
    );
    await new Promise((r) => setImmediate(r));
    counts[1].reject(new Error("Redis unreachable"));
    const { err, res } = await failed;
    expect(err.message).toBe("Redis unreachable");
    expect(res).toEqual([]);
    expect(adapter.requests.size).toBe(0);
  });

  it("fetchSockets adds the remote sockets to the local ones, in any order", async () => {
    const { adapter, counts, published } = setup();
    const fetched = adapter.fetchSockets({ rooms: new Set(), except: new Set(), flags: {} });
    await new Promise((r) => setImmediate(r));
    const { requestId } = published[0].data;
    adapter.onResponse({
      type: MessageType.FETCH_SOCKETS_RESPONSE,
      data: { requestId, sockets: [{ id: "s1" }] },
    });
    counts[0].resolve(2);
    expect((await fetched).map((s) => s.id)).toEqual(["s1"]);
  });
});
