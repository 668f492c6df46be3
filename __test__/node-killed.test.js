"use strict";

// A node process killed in the middle of a request: three Socket.IO nodes, node 0 in the test
// process, nodes 1 and 2 in child processes. Node 2's event loop is stuck (so it cannot answer)
// and it is SIGKILLed 300 ms after node 0 sent its request. Node 0's request must settle
// within requestsTimeout (plus scheduling slack) with the official semantics:
//
// - fetchSockets (classic @socket.io/redis-adapter 8.3 and socket.io-adapter's ClusterAdapter
//   for sharded): rejects with a timeout error, the answers that did arrive are not returned;
// - serverSideEmit with an ack callback: the callback gets a timeout error *and* the answers
//   that arrived (node 1's).
//
// The time limit: classic, the `requestsTimeout` option; sharded (socket.io-adapter's
// ClusterAdapter, as upstream), `io.timeout(ms)` for fetchSockets and a fixed 5000 ms for
// serverSideEmit acks (upstream has no option for it).
//
// Afterwards the dead node is no longer counted (its subscription is gone) and the same
// requests succeed at once with the two live nodes.

jest.retryTimes(1, { logErrorsBeforeRetry: true });

const path = require("path");
const { fork } = require("child_process");
const { startRedis, waitUntil } = require("./helpers/redis");
const { startNode } = require("./helpers/single-node");

const REQUESTS_TIMEOUT = 2000;
const CLUSTER_ADAPTER_ACK_TIMEOUT = 5000; // socket.io-adapter's DEFAULT_TIMEOUT
const SLACK = 1500; // 2 shared cores: timers fire late
const noop = () => {};

function startChild(kind, url, name) {
  const child = fork(
    path.join(__dirname, "helpers", "node-child.js"),
    [kind, url, name, JSON.stringify({ requestsTimeout: REQUESTS_TIMEOUT })],
    { stdio: ["ignore", "inherit", "inherit", "ipc"] },
  );
  const exited = new Promise((resolve) => child.once("exit", resolve));
  const ready = new Promise((resolve, reject) => {
    child.on("message", (m) => m.ready && resolve(m.sid));
    child.once("exit", (code) => reject(new Error(`${name} exited early (${code})`)));
  });
  return { child, ready, exited, name };
}

/** Resolves { value } or { error }, never rejects. */
async function settle(promise) {
  try {
    return { value: await promise };
  } catch (error) {
    return { error };
  }
}

describe.each(["classic", "sharded"])("node killed mid-request [%s]", (kind) => {
  let redis;
  let node0;
  let children = [];

  beforeEach(async () => {
    redis = await startRedis();
    node0 = await startNode(kind, redis.url, { requestsTimeout: REQUESTS_TIMEOUT });
    children = [startChild(kind, redis.url, "node1"), startChild(kind, redis.url, "node2")];
    await Promise.all(children.map((c) => c.ready));
    // every node counted before the request starts
    await waitUntil(async () => (await node0.io.fetchSockets().catch(() => [])).length === 3, {
      timeout: 15000,
      what: "3 nodes answering",
    });
  }, 40000);

  afterEach(async () => {
    for (const c of children) {
      c.child.kill("SIGKILL");
      await c.exited;
    }
    children = [];
    if (node0) await node0.close().catch(noop);
    if (redis) await redis.stop();
  });

  /** Sticks node 2 and SIGKILLs it 300 ms after `request` was sent. */
  async function killNode2During(request) {
    const node2 = children[1];
    await new Promise((resolve) => {
      node2.child.once("message", (m) => m.blocking && resolve());
      node2.child.send({ block: 30000 });
    });
    const start = Date.now();
    const settled = request();
    const kill = new Promise((r) => setTimeout(r, 300)).then(() => node2.child.kill("SIGKILL"));
    const outcome = await settled;
    await kill;
    await node2.exited;
    return { ...outcome, ms: Date.now() - start };
  }

  it("fetchSockets rejects with a timeout within requestsTimeout, then works with the live nodes", async () => {
    // the classic adapter uses requestsTimeout; the ClusterAdapter the timeout flag
    const fetch = () =>
      kind === "classic"
        ? node0.io.fetchSockets()
        : node0.io.timeout(REQUESTS_TIMEOUT).fetchSockets();
    const outcome = await killNode2During(() => settle(fetch()));
    console.log(
      `[${kind}] fetchSockets with node 2 killed mid-request: ` +
        `${outcome.error ? `rejected (${outcome.error.message})` : "resolved"} after ${outcome.ms} ms ` +
        `(requestsTimeout ${REQUESTS_TIMEOUT})`,
    );
    expect(outcome.error && outcome.error.message).toMatch(/timeout/i);
    expect(outcome.ms).toBeGreaterThanOrEqual(REQUESTS_TIMEOUT - 50);
    expect(outcome.ms).toBeLessThan(REQUESTS_TIMEOUT + SLACK);
    const after = await settle(node0.io.fetchSockets());
    expect(after.error).toBeUndefined();
    expect(after.value.length).toBe(2);
    if (kind === "classic") expect(node0.metrics().pendingRequests).toBe(0);
  }, 40000);

  it("serverSideEmit with ack: timeout error plus the answer that arrived, within requestsTimeout", async () => {
    const outcome = await killNode2During(
      () =>
        new Promise((resolve) => {
          const start = Date.now();
          node0.io.serverSideEmit("whoami", (err, responses) =>
            resolve({ ms: Date.now() - start, error: err, value: responses }),
          );
        }),
    );
    console.log(
      `[${kind}] serverSideEmit ack with node 2 killed mid-request: after ${outcome.ms} ms, ` +
        `error "${outcome.error && outcome.error.message}", answers ${JSON.stringify(outcome.value)}`,
    );
    expect(outcome.error).toBeTruthy();
    expect(outcome.error.message).toMatch(/timeout/i);
    expect(outcome.value).toEqual(["node1"]);
    const limit = kind === "classic" ? REQUESTS_TIMEOUT : CLUSTER_ADAPTER_ACK_TIMEOUT;
    expect(outcome.ms).toBeGreaterThanOrEqual(limit - 50);
    expect(outcome.ms).toBeLessThan(limit + SLACK);
    expect(await node0.io.serverSideEmitWithAck("whoami")).toEqual(["node1"]);
  }, 40000);
});
