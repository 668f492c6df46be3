"use strict";

// Self-healing subscriptions: every adapter's subscriber pings itself on its own channel and
// reconnects when its pings stop coming back. Two nodes per test: a peer connected to Redis
// directly and the node under test connected through a TCP proxy, so that its subscription
// connection can be found in CLIENT LIST (its address is one of the proxy's upstream sockets),
// killed (CLIENT KILL ID / CLIENT KILL TYPE pubsub) or silenced (the proxy swallows its bytes
// while both sockets stay open). "Works again" means: a broadcast from the peer reaches the
// client of the node under test (classic and sharded; streams broadcasts go through the stream)
// and the peer's fetchSockets() gets the answer of the node under test (all three).

jest.retryTimes(1, { logErrorsBeforeRetry: true });

const { startRedis, waitUntil, sleep } = require("./helpers/redis");
const { startProxy } = require("./helpers/tcp-proxy");
const { FACTORIES, startNode } = require("./helpers/single-node");

const noop = () => {};

/** CLIENT LIST entries as objects (`addr`, `id`, `sub`, `psub`, `ssub`, ...). */
async function clientList(redis) {
  const text = await redis.cli(["CLIENT", "LIST"]);
  return text
    .split("\n")
    .filter(Boolean)
    .map((line) => Object.fromEntries(line.split(" ").map((kv) => kv.split(/=(.*)/s, 2))));
}

const isSubscriber = (c) => +c.sub > 0 || +c.psub > 0 || +(c.ssub || 0) > 0;

/** The subscription connections that went through the proxy (the node under test's). */
async function proxiedSubscribers(redis, proxy) {
  const ports = proxy.upstreamPorts();
  return (await clientList(redis)).filter(
    (c) => isSubscriber(c) && ports.includes(+c.addr.split(":").pop()),
  );
}

/**
 * Polls until the node under test hears the peer again: broadcasts (when they travel over
 * pub/sub) and requests. Resolves with the milliseconds it took.
 */
async function untilHealed(kind, peer, tested, timeout) {
  const start = Date.now();
  if (kind !== "streams") {
    let n = 0;
    let got = false;
    const onProbe = () => (got = true);
    tested.client.on("probe", onProbe);
    try {
      await waitUntil(
        () => {
          peer.io.emit("probe", ++n);
          return got;
        },
        { timeout, interval: 100, what: "a broadcast from the peer" },
      );
    } finally {
      tested.client.off("probe", onProbe);
    }
  }
  await waitUntil(async () => (await peer.io.fetchSockets().catch(() => [])).length === 2, {
    timeout: Math.max(1000, timeout - (Date.now() - start)),
    interval: 100,
    what: "fetchSockets answered by the node under test",
  });
  return Date.now() - start;
}

describe.each(["classic", "sharded", "streams"])("self-healing subscription [%s]", (kind) => {
  let redis;
  let proxy;
  let nodes = [];

  beforeAll(async () => {
    redis = await startRedis();
  });
  afterAll(async () => {
    if (redis) await redis.stop();
  });
  afterEach(async () => {
    await Promise.all(nodes.map((n) => n.close().catch(noop)));
    nodes = [];
    if (proxy) await proxy.close();
    proxy = undefined;
  });

  async function twoNodes(healthCheckInterval) {
    proxy = await startProxy(redis.port);
    const opts = { requestsTimeout: 1000, healthCheckInterval };
    const peer = await startNode(kind, redis.url, opts);
    nodes.push(peer);
    const tested = await startNode(kind, proxy.url, opts);
    nodes.push(tested);
    await untilHealed(kind, peer, tested, 10000);
    await waitUntil(async () => (await proxiedSubscribers(redis, proxy)).length === 1, {
      timeout: 5000,
      what: "one subscription connection of the node under test",
    });
    return { peer, tested };
  }

  it("CLIENT KILL ID of its subscription connection: resubscribes, counted in metrics", async () => {
    const { peer, tested } = await twoNodes(500);
    const before = tested.metrics().subscriber.resubscribes;
    const [sub] = await proxiedSubscribers(redis, proxy);
    expect(await redis.cli(["CLIENT", "KILL", "ID", sub.id])).toBe("1");
    const healedMs = await untilHealed(kind, peer, tested, 10000);
    console.log(
      `[${kind}] CLIENT KILL ID: broadcasts and requests work again after ${healedMs} ms`,
    );
    expect(healedMs).toBeLessThan(10000);
    await waitUntil(() => tested.metrics().subscriber.resubscribes > before, {
      timeout: 5000,
      what: "the resubscription counted",
    });
    const [again] = await proxiedSubscribers(redis, proxy);
    expect(again.id).not.toBe(sub.id);
  }, 40000);

  it("CLIENT KILL TYPE pubsub (both nodes): both resubscribe", async () => {
    const { peer, tested } = await twoNodes(500);
    const before = [peer, tested].map((n) => n.metrics().subscriber.resubscribes);
    const killed = +(await redis.cli(["CLIENT", "KILL", "TYPE", "pubsub"]));
    expect(killed).toBeGreaterThanOrEqual(2);
    const healedMs = await untilHealed(kind, peer, tested, 10000);
    // and the other way round: the peer hears the node under test
    await untilHealed(kind, tested, peer, 10000);
    console.log(
      `[${kind}] CLIENT KILL TYPE pubsub (${killed} killed): healed after ${healedMs} ms`,
    );
    await waitUntil(
      () => [peer, tested].every((n, i) => n.metrics().subscriber.resubscribes > before[i]),
      { timeout: 5000, what: "both resubscriptions counted" },
    );
  }, 40000);

  it("silent subscription connection (bytes swallowed, socket open): the self-ping notices and resubscribes", async () => {
    const { peer, tested } = await twoNodes(500);
    const before = tested.metrics().subscriber;
    const [sub] = await proxiedSubscribers(redis, proxy);
    expect(proxy.freezeUpstreamPort(+sub.addr.split(":").pop())).toBe(true);
    const healedMs = await untilHealed(kind, peer, tested, 15000);
    const after = tested.metrics().subscriber;
    console.log(
      `[${kind}] silent connection (ping every 500 ms): healed after ${healedMs} ms; ` +
        `pingFailures ${before.pingFailures} -> ${after.pingFailures}, ` +
        `resubscribes ${before.resubscribes} -> ${after.resubscribes}, pings sent ${after.pingsSent}`,
    );
    expect(after.pingFailures).toBeGreaterThan(before.pingFailures);
    expect(after.resubscribes).toBeGreaterThan(before.resubscribes);
    expect(after.pingsReceived).toBeGreaterThan(0);
  }, 40000);

  if (kind === "classic") {
    it("control: with healthCheckInterval 0 a silent connection stays deaf (nothing else notices)", async () => {
      const { peer, tested } = await twoNodes(0);
      const [sub] = await proxiedSubscribers(redis, proxy);
      proxy.freezeUpstreamPort(+sub.addr.split(":").pop());
      let got = 0;
      tested.client.on("probe", () => got++);
      for (let i = 0; i < 20; i++) {
        peer.io.emit("probe", i);
        await sleep(150);
      }
      expect(got).toBe(0);
      expect(tested.metrics().subscriber.pingsSent).toBe(0);
    }, 40000);
  }
});

describe("healthCheckInterval option", () => {
  it.each(["classic", "sharded", "streams"])(
    "%s: rejects a negative or non-integer value",
    (kind) => {
      for (const bad of [-1, 1.5, "5000"]) {
        expect(() => FACTORIES[kind]("redis://127.0.0.1:1", { healthCheckInterval: bad })).toThrow(
          /healthCheckInterval/,
        );
      }
    },
  );
});
