"use strict";

// The framed batches JS hands to Rust (emitter publishes, streams XADDs) are built by our own
// JS, but the native methods are reachable by anyone holding the binding: garbage must give a
// clear error, never a crash or a partial write; well-formed batches are written in order.

const native = require("../binding");
const { startRedis, waitUntil } = require("./helpers/redis");

const GARBAGE = [
  Buffer.from([1]), // a flag and nothing else
  Buffer.from([0, 5, 0, 0, 0, 0x61]), // channel length 5, one byte
  Buffer.from([0, 1, 0, 0, 0, 0x61, 0xff, 0xff, 0xff, 0xff]), // payload length 4 GiB
  Buffer.from([0, 2, 0, 0, 0, 0xc3, 0x28, 0, 0, 0, 0]), // channel not UTF-8
];

describe("framed batches from JS to Rust", () => {
  let redis;

  beforeAll(async () => {
    redis = await startRedis();
  });

  afterAll(async () => {
    await redis.stop();
  });

  /** A ClassicDriver with key `key`, and what a subscriber of its broadcast channels got. */
  async function classicDriverAndSubscriber(key) {
    const { nativeConnectionJson } = require("../lib/connection-options");
    const driver = new native.ClassicDriver(
      {
        connection: nativeConnectionJson(redis.url),
        key,
        publishOnSpecificResponseChannel: false,
        defaultParser: true,
      },
      () => {},
    );
    const subscriber = require("redis").createClient({ url: redis.url });
    const close = async () => {
      await subscriber.quit();
      driver.shutdown();
    };
    const got = [];
    try {
      await subscriber.connect();
      await subscriber.pSubscribe(`${key}#*`, (message) => got.push(message), true);
    } catch (e) {
      driver.shutdown();
      throw e;
    }
    return { driver, got, close };
  }

  it("NativePublisher.publishBatch rejects malformed frames and publishes none of them", async () => {
    const publisher = new native.NativePublisher(JSON.stringify({ url: redis.url }));
    try {
      const { createClient } = require("redis");
      const subscriber = createClient({ url: redis.url });
      await subscriber.connect();
      const got = [];
      // every channel: a malformed batch must publish nothing at all
      await subscriber.pSubscribe("*", (message) => got.push(message));
      for (const frames of GARBAGE) {
        expect(() => publisher.publishBatch(frames)).toThrow(/publish batch/);
      }
      // a well-formed batch still goes out, in order
      const frame = (channel, payload) => {
        const c = Buffer.from(channel);
        const p = Buffer.from(payload);
        const head = Buffer.alloc(5);
        head[0] = 0;
        head.writeUInt32LE(c.length, 1);
        const len = Buffer.alloc(4);
        len.writeUInt32LE(p.length, 0);
        return Buffer.concat([head, c, len, p]);
      };
      const results = await publisher.publishBatch(
        Buffer.concat([frame("bf", "one"), frame("bf", "two")]),
      );
      expect(results).toBeUndefined();
      const deadline = Date.now() + 5000;
      while (got.length < 2 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
      await subscriber.quit();
      expect(got).toEqual(["one", "two"]);
    } finally {
      publisher.close();
    }
  });

  it("StreamsDriver.xaddBatch rejects malformed frames and adds no entry", async () => {
    const driver = new native.StreamsDriver(
      {
        connection: JSON.stringify({ url: redis.url }),
        streams: ["bf-stream"],
        readCount: 100,
        blockTimeInMs: 100,
        shardedPubSub: false,
      },
      () => {},
    );
    try {
      const u32 = (n) => {
        const b = Buffer.alloc(4);
        b.writeUInt32LE(n, 0);
        return b;
      };
      const str = (s) => Buffer.concat([u32(Buffer.byteLength(s)), Buffer.from(s)]);
      const bad = [
        Buffer.from([1, 2, 3]),
        Buffer.concat([str("bf-stream"), u32(100)]), // no field count
        Buffer.concat([str("bf-stream"), u32(100), u32(0xffffffff)]), // impossible count
        Buffer.concat([str("bf-stream"), u32(100), u32(1), str("odd")]), // one field, no value
        Buffer.concat([
          str("bf-stream"),
          u32(100),
          u32(2),
          str("k"),
          u32(3),
          Buffer.from([0xc3, 0x28, 0x41]),
        ]),
      ];
      for (const frames of bad) {
        expect(() => driver.xaddBatch(frames)).toThrow(/xadd/);
        expect(() => driver.xaddBatchDetached(frames)).toThrow(/xadd/);
      }
      expect(await redis.cli(["XLEN", "bf-stream"])).toBe("0");
      const good = Buffer.concat([
        ...[1, 2].map((i) =>
          Buffer.concat([str("bf-stream"), u32(100), u32(2), str("n"), str(String(i))]),
        ),
      ]);
      const outcomes = (await driver.xaddBatch(good)).split("\n");
      expect(outcomes).toHaveLength(2);
      for (const o of outcomes) expect(o).toMatch(/^\+\d+-\d+$/);
      const [a, b] = outcomes.map((o) => o.slice(1).split("-").map(BigInt));
      expect(a[0] < b[0] || (a[0] === b[0] && a[1] < b[1])).toBe(true);
      expect(await redis.cli(["XLEN", "bf-stream"])).toBe("2");
      // An entry Redis refuses gets its error, in its place; the others their ids.
      await redis.cli(["SET", "bf-string", "x"]);
      const mixed = Buffer.concat([
        str("bf-stream"),
        u32(100),
        u32(2),
        str("n"),
        str("3"),
        str("bf-string"),
        u32(100),
        u32(2),
        str("n"),
        str("4"),
        str("bf-stream"),
        u32(100),
        u32(2),
        str("n"),
        str("5"),
      ]);
      const lines = (await driver.xaddBatch(mixed)).split("\n");
      expect(lines).toHaveLength(3);
      expect(lines[0]).toMatch(/^\+\d+-\d+$/);
      expect(lines[1]).toMatch(/^-.*WRONGTYPE/);
      expect(lines[2]).toMatch(/^\+\d+-\d+$/);
      expect(await redis.cli(["XLEN", "bf-stream"])).toBe("4");
      // Detached: queued in order behind what came before, nothing to wait for; the refused
      // entry is counted, the others written.
      expect(driver.xaddBatchDetached(mixed)).toBe(true);
      await waitUntil(async () => JSON.parse(driver.metrics()).writeFailures === 2);
      expect(await redis.cli(["XLEN", "bf-stream"])).toBe("6");
      const last = (await redis.cli(["XRANGE", "bf-stream", "-", "+"])).split("\n").slice(-6);
      expect(last.filter((line) => /^\d$/.test(line))).toEqual(["3", "5"]);
    } finally {
      driver.shutdown();
    }
  });

  it("ClassicDriver.broadcastJsonBatch skips malformed records with a reason and sends the rest", async () => {
    const { driver, got, close } = await classicDriverAndSubscriber("bf");
    try {
      const ns = driver.addNamespace("/");
      const record = (fields) => Buffer.from(`${fields.join("\x01")}\x00`);
      const send = (buf, length = buf.length) => driver.broadcastJsonBatch(buf, length);
      // The whole buffer refused: a length beyond it, bytes that are not UTF-8.
      expect(send(record([ns, "", "", "[1]"]), 1000)).toMatch(/beyond the buffer/);
      expect(send(Buffer.from([0xc3, 0x28, 0]))).toMatch(/not UTF-8/);
      // Records refused one by one, the good ones around them queued in order.
      const batch = Buffer.concat([
        record([ns, "", "", '["ev",1]']),
        record(["x", "", "", "[2]"]), // namespace id not a number
        record([ns, "not json", "", "[3]"]), // room not a JSON string
        record([ns, "", "", "[4"]), // data not JSON
        record([ns + 1000, "", "", "[5]"]), // unknown namespace: refused, as a broadcast
        record([ns, '"r"', '{"rooms":["r"],"except":[],"flags":{}}', '["ev",6]']),
        record([ns, "", "r", "[8]"]), // one-room options (ONE_ROOM) without a room
        record([ns, '"r2"', "r", '["ev",9]']), // one-room options written from the room
        Buffer.from(`${ns}\x01\x01\x01[7]`), // no record end
      ]);
      const problem = send(batch);
      expect(problem).toMatch(/^6 of 9 queued broadcasts not sent: 1 refused/);
      expect(problem).toMatch(/5 skipped \(queued broadcast 1: namespace id is not a u32\)/);
      driver.flush();
      const deadline = Date.now() + 5000;
      while (got.length < 3 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
      const decoded = got.map((m) => require("notepack.io").decode(m));
      expect(decoded.map((m) => m[1].data)).toEqual([
        ["ev", 1],
        ["ev", 6],
        ["ev", 9],
      ]);
      expect(decoded[2][2]).toEqual({ rooms: ["r2"], except: [], flags: {} });
    } finally {
      await close();
    }
  });

  it("ClassicDriver.broadcastJsonBatch reads Buffers from the attachment buffer, skipping bad places", async () => {
    const { driver, got, close } = await classicDriverAndSubscriber("bfa");
    try {
      const ns = driver.addNamespace("/");
      const placeholder = (num) => `{"_placeholder":true,"num":${num}}`;
      const record = (data, places) => `${ns}\x01\x01\x01${data}\x02${places}\x00`;
      const attachments = Buffer.from("abcdefgh");
      const batch = Buffer.from(
        [
          record(`["ev",${placeholder(0)}]`, "2,3"),
          record(`["ev",${placeholder(0)}]`, "6,5"), // beyond the attachment bytes
          record(`["ev",${placeholder(0)}]`, "0"), // not a start,length pair
          record(`["ev",${placeholder(0)}]`, "x,1"), // not numbers
          record(`["ev",${placeholder(1)}]`, "0,1"), // a placeholder without its Buffer
          record(`["ev",${placeholder(1)},${placeholder(0)}]`, "0,1,5,3"),
        ].join(""),
      );
      // Attachments said to reach beyond their buffer: the whole batch is refused.
      expect(driver.broadcastJsonBatch(batch, batch.length, attachments, 100)).toMatch(
        /attachments length 100 beyond their buffer/,
      );
      expect(driver.broadcastJsonBatch(batch, batch.length, null, 3)).toMatch(/beyond/);
      const problem = driver.broadcastJsonBatch(batch, batch.length, attachments, 8);
      expect(problem).toMatch(/^4 of 6 queued broadcasts not sent: 0 refused/);
      expect(problem).toMatch(/queued broadcast 1: attachment beyond the attachment buffer/);
      driver.flush();
      const deadline = Date.now() + 5000;
      while (got.length < 2 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
      await new Promise((r) => setTimeout(r, 100));
      expect(got).toHaveLength(2);
      const decoded = got.map((m) => require("notepack.io").decode(m));
      expect(decoded[0][1].data).toEqual(["ev", Buffer.from("cde")]);
      expect(decoded[1][1].data).toEqual(["ev", Buffer.from("fgh"), Buffer.from("a")]);
      // Byte-equal to notepack's envelope of the same data.
      const expected = require("notepack.io").encode([
        decoded[1][0],
        { type: 2, data: ["ev", Buffer.from("fgh"), Buffer.from("a")], nsp: "/" },
        { rooms: [], except: [], flags: {} },
      ]);
      expect(Buffer.from(got[1]).equals(Buffer.from(expected))).toBe(true);
    } finally {
      await close();
    }
  });
});
