"use strict";

// A stuck subscriber: the receiving node (a child process) blocks its event loop while the
// sender broadcasts 20 000 packets of 1 KiB (until they all left the sender, plus a second). The Rust core keeps receiving from Redis (so
// Redis never cuts the connection for a full output buffer) but holds at most
// `maxPendingDeliveryBytes` for the JS thread; the rest is dropped and counted. Checked:
// delivered + dropped == sent exactly, the backlog never exceeded the bound, the receiver's RSS
// at the moment its loop is free again stayed within the bound's order of magnitude, and a
// control without a bound (maxPendingDeliveryBytes: 0) shows what it prevents.

jest.retryTimes(1, { logErrorsBeforeRetry: true });

const fs = require("fs");
const os = require("os");
const path = require("path");
const { fork } = require("child_process");
const { startRedis, waitUntil, sleep } = require("./helpers/redis");
const { startNode } = require("./helpers/single-node");

const MiB = 1 << 20;
const PACKETS = 20000;
const BOUND = 4 * MiB;
const noop = () => {};

function startChild(kind, url, opts) {
  const child = fork(
    path.join(__dirname, "helpers", "node-child.js"),
    [kind, url, "receiver", JSON.stringify(opts)],
    { stdio: ["ignore", "inherit", "inherit", "ipc"] },
  );
  const exited = new Promise((resolve) => child.once("exit", resolve));
  const next = (key) =>
    new Promise((resolve) => {
      const on = (m) => {
        if (m[key] !== undefined) {
          child.off("message", on);
          resolve(m);
        }
      };
      child.on("message", on);
    });
  const ready = next("ready");
  const report = async () => {
    const reply = next("report");
    child.send({ report: true });
    return (await reply).report;
  };
  return { child, exited, next, ready, report };
}

/**
 * One stuck-receiver scenario (registers its hooks in the calling describe): a sender node in
 * this process, a receiver child whose event loop is blocked from before the first of PACKETS
 * broadcasts until `allSent` holds and one more second passed; `flood(bound)` returns the
 * receiver's reports before and after (once `drained` holds) and its RSS when it got free.
 */
function stuckReceiverScenario(kind, { opts, allSent, drained, drainTimeout }) {
  const ctx = {};
  beforeAll(async () => {
    ctx.redis = await startRedis();
  });
  afterAll(async () => {
    if (ctx.redis) await ctx.redis.stop();
  });
  afterEach(async () => {
    if (ctx.receiver) {
      ctx.receiver.child.kill("SIGKILL");
      await ctx.receiver.exited;
    }
    ctx.receiver = undefined;
    if (ctx.sender) await ctx.sender.close().catch(noop);
    ctx.sender = undefined;
  });

  async function flood(maxPendingDeliveryBytes) {
    const { redis } = ctx;
    const sender = (ctx.sender = await startNode(kind, redis.url, opts));
    const receiver = (ctx.receiver = startChild(kind, redis.url, {
      ...opts,
      maxPendingDeliveryBytes,
    }));
    await receiver.ready;
    await waitUntil(
      async () => {
        sender.io.emit("warm");
        return (await receiver.report()).received.warm > 0;
      },
      { timeout: 10000, interval: 200, what: "the receiver hears the sender" },
    );
    await sleep(300); // late warm-ups
    const before = await receiver.report();
    const unblocked = receiver.next("unblocked");
    const blocking = receiver.next("blocking");
    // stuck until every packet was sent and had time to reach it (however slow this machine)
    const flag = path.join(os.tmpdir(), `sio-unblock-${process.pid}-${Date.now()}`);
    receiver.child.send({ block: 60000, untilFile: flag });
    await blocking;
    const filler = "x".repeat(1024);
    for (let i = 0; i < PACKETS; i++) {
      sender.io.emit("flood", i, filler);
      if (i % 500 === 499) await new Promise((r) => setImmediate(r)); // let the publisher flush
    }
    await waitUntil(() => allSent(ctx), { timeout: 30000, what: "everything sent" });
    await sleep(1000); // Redis to the receiver's Rust side
    fs.writeFileSync(flag, "");
    const { rss: rssAtUnblock } = await unblocked;
    fs.rmSync(flag, { force: true });
    let after;
    await waitUntil(
      async () => {
        after = await receiver.report();
        return drained(after);
      },
      { timeout: drainTimeout, interval: 200, what: "the receiver to drain its backlog" },
    );
    return { before, after, rssAtUnblock };
  }

  return { flood };
}

describe.each(["classic", "sharded"])("stuck subscriber [%s]", (kind) => {
  const { flood } = stuckReceiverScenario(kind, {
    opts: {},
    // the sender's own published count tells when everything left it
    allSent: ({ sender }) => sender.metrics().published.messages >= PACKETS,
    drained: (after) =>
      after.metrics.delivery.pendingBytes === 0 &&
      (after.received.flood || 0) + after.metrics.delivery.droppedMessages >= PACKETS,
    drainTimeout: 30000,
  });

  it(`holds at most maxPendingDeliveryBytes (${BOUND / MiB} MiB) for a stuck JS thread and counts the loss`, async () => {
    const { before, after, rssAtUnblock } = await flood(BOUND);
    const d = after.metrics.delivery;
    const delivered = after.received.flood || 0;
    const growth = Math.round((rssAtUnblock - before.rss) / MiB);
    console.log(
      `[${kind}] ${PACKETS} x 1 KiB broadcasts while the receiver was stuck (bound ${BOUND / MiB} MiB): ` +
        `delivered ${delivered}, dropped ${d.droppedMessages} (${Math.round(d.droppedBytes / MiB)} MiB), ` +
        `peak backlog ${(d.peakPendingBytes / MiB).toFixed(1)} MiB, receiver RSS +${growth} MiB while stuck`,
    );
    expect(delivered + d.droppedMessages).toBe(PACKETS);
    expect(d.droppedMessages).toBeGreaterThan(0);
    expect(d.peakPendingBytes).toBeLessThanOrEqual(BOUND);
    expect(d.maxPendingBytes).toBe(BOUND);
    expect(growth).toBeLessThan(48);
  }, 90000);

  it("control: without a bound the backlog holds every packet (what the bound prevents)", async () => {
    const { before, after, rssAtUnblock } = await flood(0);
    const d = after.metrics.delivery;
    const growth = Math.round((rssAtUnblock - before.rss) / MiB);
    console.log(
      `[${kind}] control, no bound: delivered ${after.received.flood}, dropped ${d.droppedMessages}, ` +
        `peak backlog ${(d.peakPendingBytes / MiB).toFixed(1)} MiB, receiver RSS +${growth} MiB while stuck`,
    );
    expect(d.droppedMessages).toBe(0);
    expect(after.received.flood).toBe(PACKETS);
    expect(d.peakPendingBytes).toBeGreaterThan(2 * BOUND);
  }, 90000);
});

// The streams adapter must not drop (its promise is no loss): past the bound its readers hold
// their next XREAD, so the entries wait in Redis instead of in the receiver's memory.
describe("stuck subscriber [streams]", () => {
  const { flood } = stuckReceiverScenario("streams", {
    // maxLen above the flood: trimming must not be what bounds anything here
    opts: { maxLen: PACKETS * 2, readCount: 100 },
    allSent: async ({ redis }) => Number(await redis.cli(["XLEN", "socket.io"])) >= PACKETS,
    drained: (after) => (after.received.flood || 0) >= PACKETS,
    drainTimeout: 60000,
  });

  it(`holds its reads past maxPendingDeliveryBytes (${BOUND / MiB} MiB) and loses nothing`, async () => {
    const { before, after, rssAtUnblock } = await flood(BOUND);
    const d = after.metrics.delivery;
    const holds = after.metrics.readers.reduce((n, r) => n + r.holds, 0);
    const growth = Math.round((rssAtUnblock - before.rss) / MiB);
    console.log(
      `[streams] ${PACKETS} x 1 KiB entries while the receiver was stuck (bound ${BOUND / MiB} MiB): ` +
        `delivered ${after.received.flood}, reads held ${holds} times, peak backlog ` +
        `${(d.peakPendingBytes / MiB).toFixed(1)} MiB, receiver RSS +${growth} MiB while stuck`,
    );
    expect(after.received.flood).toBe(PACKETS);
    expect(after.receivedOrder.flood).toBe(true);
    expect(holds).toBeGreaterThan(0);
    expect(d.droppedMessages).toBe(0);
    // one XREAD reply (readCount entries) may land on top of the bound
    expect(d.peakPendingBytes).toBeLessThanOrEqual(BOUND + 100 * 2048);
  }, 120000);

  it("control: without a hold the backlog takes every entry into memory", async () => {
    const { after } = await flood(0);
    const d = after.metrics.delivery;
    console.log(
      `[streams] control, no hold: delivered ${after.received.flood}, peak backlog ` +
        `${(d.peakPendingBytes / MiB).toFixed(1)} MiB`,
    );
    expect(after.received.flood).toBe(PACKETS);
    expect(d.peakPendingBytes).toBeGreaterThan(2 * BOUND);
  }, 120000);
});
