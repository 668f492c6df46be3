"use strict";

// fetchSockets answers split in Rust, handshakes parsed on first use (lib/fetch-answers.js):
// the details must be what JSON.parse of the answer gives, whatever the caller does with them.
const util = require("util");
const msgpack = require("notepack.io");
const native = require("../binding");
const { lazyObject, readFetchAnswer, CLUSTER_SOCKETS } = require("../lib/fetch-answers");

// What the Rust core hands to JS for an answer (split as it arrives).
const asDelivered = (payload) => native.fetchAnswerForJs(payload);

const handshake = {
  headers: { host: "127.0.0.1:3000", "user-agent": "jest \u00e9\u{1F600}", cookie: 'a="b"' },
  time: "Sun Nov 29 2026 22:00:00 GMT+0000 (Coordinated Universal Time)",
  address: "::ffff:127.0.0.1",
  xdomain: false,
  secure: true,
  issued: 1795000000000,
  url: "/socket.io/?EIO=4&transport=websocket",
  query: { EIO: "4", transport: "websocket", token: "x\\y\n" },
  auth: { user: { id: 7, roles: ["a", "b"] }, nothing: null },
};

const answer = (sockets) => Buffer.from(JSON.stringify({ requestId: "r1", sockets }));

describe("readFetchAnswer", () => {
  it("gives what JSON.parse of the answer gives", () => {
    const sockets = [
      { id: "s1", handshake, rooms: ["s1", "room"], data: { n: 1, list: [1.5, "x"] } },
      { id: "s2", handshake: {}, rooms: [], data: null },
      { id: "s3", handshake: { ...handshake, extra: [1] }, rooms: ["s3"], data: "text" },
    ];
    const read = readFetchAnswer(asDelivered(answer(sockets))).message.sockets;
    expect(read).toEqual(sockets);
    expect(JSON.parse(JSON.stringify(read))).toEqual(sockets);
    expect(read.map((s) => s.handshake.headers?.["user-agent"])).toEqual([
      "jest \u00e9\u{1F600}",
      undefined,
      "jest \u00e9\u{1F600}",
    ]);
  });

  it("leaves other shapes to the caller", () => {
    const odd = [
      Buffer.from(msgpack.encode({ requestId: "r", sockets: [] })),
      Buffer.from('{"requestId":"r"}'),
      Buffer.from('{"sockets":[{"id":"s","rooms":[],"data":{}}]}'),
      Buffer.from('{"sockets":[{"id":"s","handshake":null,"rooms":[],"data":{}}]}'),
      Buffer.from('{"sockets":['),
    ];
    for (const payload of odd) {
      expect(readFetchAnswer(asDelivered(payload))).toEqual({ whole: payload });
    }
    expect(readFetchAnswer(asDelivered(answer([])))).toEqual({
      message: { requestId: "r1", sockets: [] },
    });
  });

  it("reads a cluster adapter's answer (sharded) as JSON.parse does, eagerly or lazily", () => {
    const message = {
      type: 8,
      data: {
        requestId: "r2",
        sockets: [
          { id: "s1", handshake, rooms: ["s1"], data: { n: 1 } },
          { id: "s2", handshake: {}, rooms: [], data: null },
        ],
      },
      uid: "u",
      nsp: "/",
    };
    const payload = Buffer.from(JSON.stringify(message));
    const delivered = native.clusterFetchAnswerForJs(payload);
    expect(delivered[0]).toBe(0); // split
    for (const lazy of [true, false]) {
      const read = readFetchAnswer(delivered, CLUSTER_SOCKETS, lazy).message;
      expect(util.types.isProxy(read.data.sockets[0].handshake)).toBe(lazy);
      expect(JSON.parse(JSON.stringify(read))).toEqual(message);
    }
    // Other messages of the response channel are handed over as published.
    const other = Buffer.from(JSON.stringify({ type: 6, data: { requestId: "r" } }));
    expect(native.clusterFetchAnswerForJs(other)).toEqual(other);
  });
});

describe("lazyObject", () => {
  const text = JSON.stringify(handshake);
  const fresh = () => lazyObject(text);

  it("reads, lists and serializes as the parsed object", () => {
    expect(fresh().auth.user.roles).toEqual(["a", "b"]);
    expect(Object.keys(fresh())).toEqual(Object.keys(handshake));
    expect(JSON.stringify(fresh())).toEqual(text);
    expect({ ...fresh() }).toEqual(handshake);
    expect("query" in fresh()).toBe(true);
    expect(Object.prototype.hasOwnProperty.call(fresh(), "url")).toBe(true);
    expect(Object.getPrototypeOf(fresh())).toBe(Object.prototype);
    expect(Object.entries(fresh())).toEqual(Object.entries(handshake));
    const seen = [];
    for (const key in fresh()) seen.push(key);
    expect(seen).toEqual(Object.keys(handshake));
  });

  it("prints as the parsed object, before and after use", () => {
    const options = { depth: 5, compact: false };
    expect(util.inspect(fresh(), options)).toEqual(util.inspect(handshake, options));
    const used = fresh();
    void used.address;
    expect(util.inspect(used, options)).toEqual(util.inspect(handshake, options));
    // What console.log prints. (`%o` shows proxies as such: it sets showProxy.)
    expect(util.format(fresh())).toEqual(util.format(handshake));
  });

  it("takes writes and deletes", () => {
    const h = fresh();
    h.auth = { token: "t" };
    delete h.headers;
    h.added = 1;
    expect(h.auth).toEqual({ token: "t" });
    expect("headers" in h).toBe(false);
    expect(Object.keys(h)).toEqual([
      ...Object.keys(handshake).filter((k) => k !== "headers"),
      "added",
    ]);
  });

  it("keeps a __proto__ key an own property, as JSON.parse does", () => {
    const h = lazyObject('{"__proto__":{"polluted":true},"a":1}');
    expect(Object.getPrototypeOf(h)).toBe(Object.prototype);
    expect(Object.keys(h)).toEqual(["__proto__", "a"]);
    expect(h.polluted).toBeUndefined();
    expect({}.polluted).toBeUndefined();
  });
});

describe("lazyObject, rarer operations", () => {
  const text = JSON.stringify(handshake);

  it("can be frozen, sealed and given non-configurable properties", () => {
    const frozen = Object.freeze(lazyObject(text));
    expect(Object.isFrozen(frozen)).toBe(true);
    expect(frozen.query.EIO).toBe("4");
    expect(() => {
      "use strict";
      frozen.address = "x";
    }).toThrow(TypeError);
    expect({ ...frozen }).toEqual(handshake);
    const sealed = Object.seal(lazyObject(text));
    expect(Object.isSealed(sealed)).toBe(true);
    expect(Object.keys(sealed)).toEqual(Object.keys(handshake));
    const fixed = lazyObject(text);
    Object.defineProperty(fixed, "pinned", { value: 1, configurable: false });
    expect(fixed.pinned).toBe(1);
    expect(Object.getOwnPropertyDescriptor(fixed, "pinned").configurable).toBe(false);
    expect(fixed.time).toBe(handshake.time);
  });

  it("has no properties of its own beyond the parsed ones", () => {
    const h = lazyObject(text);
    expect(Reflect.ownKeys(h)).toEqual(Object.keys(handshake));
    expect(Object.getOwnPropertySymbols(h)).toEqual([]);
    expect(h instanceof Object).toBe(true);
    expect(Object.getPrototypeOf(lazyObject("{}"))).toBe(Object.prototype);
  });

  it("prints nested values to the depth asked", () => {
    const nested = { a: { b: { c: { d: 1 } } } };
    const h = lazyObject(JSON.stringify(nested));
    expect(util.inspect({ h }, { depth: 1 })).toEqual(util.inspect({ h: nested }, { depth: 1 }));
    expect(util.inspect(h, { depth: 0 })).toEqual(util.inspect(nested, { depth: 0 }));
  });
});
