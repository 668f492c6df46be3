"use strict";

// Hostile input on every channel and stream the adapters read: 16 MiB of garbage, truncated
// envelopes, 100 000 levels of nesting (MessagePack and JSON), lengths announcing 4 GiB, a
// 16 MiB well-formed envelope. While they arrive, legitimate broadcasts keep flowing between the
// two nodes and must all be delivered; afterwards requests work, the skip counters went up, no
// exception escaped, and a second identical barrage does not grow memory further (the figure
// printed: RSS before, after the first barrage, after the second).
//
// The Redis under test runs with `client-output-buffer-limit pubsub 0 0 0`: with the default
// (32 MiB hard limit) Redis itself disconnects a subscriber that is sent a few 16 MiB messages
// at once, which would test Redis's protection instead of the adapters.

jest.retryTimes(1, { logErrorsBeforeRetry: true });

const crypto = require("crypto");
const notepack = require("notepack.io");
const msgpack = require("@msgpack/msgpack");
const { createClient } = require("redis");
const { startRedis, waitUntil, sleep } = require("./helpers/redis");
const { startNode } = require("./helpers/single-node");

const MiB = 1 << 20;
const noop = () => {};

function hostilePayloads() {
  const envelope = notepack.encode([
    "zzzzzz",
    { type: 2, data: ["ev", "x".repeat(1000)], nsp: "/" },
    { rooms: [], except: [], flags: {} },
  ]);
  const deepMsgpack = Buffer.concat([Buffer.alloc(100000, 0x91), Buffer.from([0xc0])]);
  // A streams adapter's fetchSockets answer (@msgpack/msgpack, which the core turns into JSON
  // and splits) with `hole` where the handshake goes.
  const marker = Buffer.from(msgpack.encode("\u0001hostile"));
  const msgpackAnswer = Buffer.from(
    msgpack.encode({
      type: 8,
      data: {
        requestId: "zz",
        sockets: [{ id: "s", handshake: "\u0001hostile", rooms: [], data: {} }],
      },
      uid: "zzzzzz",
      nsp: "/",
    }),
  );
  const withHandshake = (hole) => {
    const at = msgpackAnswer.indexOf(marker);
    return Buffer.concat([
      msgpackAnswer.subarray(0, at),
      hole,
      msgpackAnswer.subarray(at + marker.length),
    ]);
  };
  const deepJson = Buffer.from("[".repeat(100000) + "]".repeat(100000));
  return {
    "16 MiB random bytes": crypto.randomBytes(16 * MiB),
    "16 MiB starting like JSON": Buffer.concat([
      Buffer.from('{"type":'),
      Buffer.alloc(16 * MiB, 0x39),
    ]),
    "16 MiB well-formed envelope": notepack.encode([
      "zzzzzz",
      { type: 2, data: ["ev", "x".repeat(16 * MiB)], nsp: "/" },
      { rooms: [], except: [], flags: {} },
    ]),
    // Starts as every JSON fetchSockets answer does (the sharded core splits those).
    "fetchSockets answer head then 1 MiB of garbage": Buffer.concat([
      Buffer.from('{"type":8,"data":{"requestId":"zz","sockets":[{"id":"s","handshake":{"a":'),
      crypto.randomBytes(MiB),
    ]),
    "fetchSockets answer with a 100k-deep handshake": Buffer.from(
      '{"type":8,"data":{"requestId":"zz","sockets":[{"id":"s","rooms":[],"data":{},"handshake":{"a":' +
        "[".repeat(100000) +
        "]".repeat(100000) +
        '}}]},"uid":"zzzzzz","nsp":"/"}',
    ),
    "MessagePack fetchSockets answer with a 100k-deep handshake": withHandshake(deepMsgpack),
    "MessagePack fetchSockets answer cut inside its handshake, then 1 MiB of garbage":
      Buffer.concat([
        withHandshake(Buffer.from([0x81, 0xa1, 0x61])).subarray(
          0,
          msgpackAnswer.indexOf(marker) + 3,
        ),
        crypto.randomBytes(MiB),
      ]),
    "truncated envelope": envelope.subarray(0, envelope.length >> 1),
    "100k nested msgpack arrays": deepMsgpack,
    "100k nested JSON arrays": deepJson,
    "JSON request with 100k nested data": Buffer.from(
      '{"type":6,"uid":"zzzzzz","nsp":"/","data":' + "[".repeat(100000) + "]".repeat(100000) + "}",
    ),
    "array32 of 4G items": Buffer.from([0xdd, 0xff, 0xff, 0xff, 0xff]),
    "str32 of 4 GiB": Buffer.from([0xdb, 0xff, 0xff, 0xff, 0xff, 0x61]),
    "bin32 of 4 GiB": Buffer.from([0xc6, 0xff, 0xff, 0xff, 0xff]),
    "map32 of 4G pairs inside an envelope": Buffer.from([
      0x93, 0xa6, 0x7a, 0x7a, 0x7a, 0x7a, 0x7a, 0x7a, 0xdf, 0xff, 0xff, 0xff, 0xff,
    ]),
  };
}

/** Stream entries (field/value lists) a streams reader must survive. */
function hostileEntries(payloads) {
  const deep = "[".repeat(100000) + "]".repeat(100000);
  const broadcastWith = (data) => ["nsp", "/", "uid", "zzzzzz", "type", "2", "data", data];
  return [
    ["garbage", payloads["16 MiB random bytes"]],
    broadcastWith(payloads["16 MiB random bytes"]),
    broadcastWith("{" + deep),
    broadcastWith(payloads["100k nested msgpack arrays"].toString("base64")),
    broadcastWith(payloads["array32 of 4G items"].toString("base64")),
    ["nsp", "/", "uid", "zzzzzz", "type", "not a number"],
    ["nsp", Buffer.alloc(16 * MiB, 0x2f)],
  ];
}

async function channelsOf(kind, nodes) {
  const uids = nodes.map((n) => n.adapter().uid);
  if (kind === "classic") {
    return [
      "socket.io#/#",
      "socket.io#/#room#",
      "socket.io-request#/#",
      "socket.io-response#/#",
      ...uids.map((uid) => `socket.io-response#/#${uid}#`),
    ];
  }
  return ["socket.io#/#", "socket.io#/#room#", ...uids.map((uid) => `socket.io#/#${uid}#`)];
}

// A full GC before each reading, so that garbage not yet collected is not taken for a leak.
require("v8").setFlagsFromString("--expose-gc");
const gc = require("vm").runInNewContext("gc");
const rssMiB = () => {
  gc();
  return Math.round(process.memoryUsage().rss / MiB);
};
const ROUNDS = 4;

describe.each(["classic", "sharded", "streams"])("hostile input [%s]", (kind) => {
  let redis;
  let raw;
  let nodes = [];
  const escaped = [];
  const onEscape = (e) => escaped.push(e);

  beforeAll(async () => {
    redis = await startRedis({ args: ["--client-output-buffer-limit", "pubsub 0 0 0"] });
    raw = createClient({ url: redis.url });
    raw.on("error", noop);
    await raw.connect();
    process.on("uncaughtException", onEscape);
    process.on("unhandledRejection", onEscape);
  });
  afterAll(async () => {
    process.off("uncaughtException", onEscape);
    process.off("unhandledRejection", onEscape);
    await Promise.all(nodes.map((n) => n.close().catch(noop)));
    if (raw) await raw.quit().catch(noop);
    if (redis) await redis.stop();
  });

  it("survives every hostile message on every channel, keeps delivering, counts the skips, memory flat", async () => {
    const opts = { requestsTimeout: 3000 };
    nodes = [await startNode(kind, redis.url, opts), await startNode(kind, redis.url, opts)];
    const [a, b] = nodes;
    for (const n of nodes) (await n.io.fetchSockets()).forEach((s) => s.join("room"));
    // both nodes hear each other before the barrage
    let probes = 0;
    b.client.on("probe", () => probes++);
    await waitUntil(
      () => {
        a.io.emit("probe");
        return probes > 0;
      },
      { timeout: 10000, interval: 100, what: "first broadcast" },
    );
    await waitUntil(async () => (await a.io.fetchSockets()).length === 2, { timeout: 10000 });

    const payloads = hostilePayloads();
    const channels = await channelsOf(kind, nodes);
    const publish = (channel, payload) =>
      kind === "sharded" ? raw.sPublish(channel, payload) : raw.publish(channel, payload);
    const before = nodes.map((n) => n.metrics());
    const skipsOf = (m) => (m.decodeErrors || 0) + (m.skippedForeign || 0);

    let legit = 0;
    b.client.on("legit", () => legit++);
    const barrage = async () => {
      let sent = 0;
      let hostile = 0;
      for (const channel of channels) {
        for (const payload of Object.values(payloads)) {
          await publish(channel, payload);
          hostile++;
          a.io.emit("legit", sent++); // legitimate traffic interleaved with the hostile one
        }
      }
      if (kind === "streams") {
        for (const fields of hostileEntries(payloads)) {
          await raw.sendCommand(["XADD", "socket.io", "*", ...fields]);
          hostile++;
          a.io.emit("legit", sent++);
        }
      }
      return { sent, hostile };
    };

    const rss = [rssMiB()];
    const t0 = Date.now();
    let round;
    for (let r = 0; r < ROUNDS; r++) {
      legit = 0;
      round = await barrage();
      await waitUntil(() => legit === round.sent, {
        timeout: 30000,
        what: `legitimate broadcasts during barrage ${r + 1} (${legit}/${round.sent})`,
      });
      await sleep(300);
      rss.push(rssMiB());
    }
    const totalMs = Date.now() - t0;

    // requests still work both ways
    expect((await a.io.fetchSockets()).length).toBe(2);
    expect((await b.io.fetchSockets()).length).toBe(2);
    a.io.on("ping-ack", (cb) => cb("a"));
    expect(await b.io.serverSideEmitWithAck("ping-ack")).toEqual(["a"]);

    const after = nodes.map((n) => n.metrics());
    const skipped = after.map((m, i) => skipsOf(m) - skipsOf(before[i]));
    console.log(
      `[${kind}] ${ROUNDS} barrages of ${round.hostile} hostile messages on ${channels.length} ` +
        `channels${kind === "streams" ? " + the stream" : ""}: all ${round.sent} legitimate ` +
        `broadcasts interleaved with each barrage delivered (${totalMs} ms in all); skipped ` +
        `(decode errors + foreign) per node: ${skipped.join(", ")}; RSS after GC, MiB: ` +
        `${rss.join(" -> ")}`,
    );
    expect(escaped).toEqual([]);
    for (const s of skipped) expect(s).toBeGreaterThan(0);
    // Allocators keep freed memory for reuse, so RSS goes up and down between barrages. A leak
    // of what the hostile messages carried would add at least ~150 MiB per barrage (290 MiB for
    // classic), so after three more barrages than the first, RSS would be 450+ MiB higher.
    expect(rss[ROUNDS] - rss[1]).toBeLessThan(256);
  }, 120000);
});
