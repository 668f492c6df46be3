"use strict";

// fetchSockets answers split in Rust, handshakes parsed on first use (lib/fetch-answers.js):
// the details must be what JSON.parse of the answer gives, whatever the caller does with them.
const util = require("util");
const msgpack = require("notepack.io");
const { lazyObject, readFetchAnswer } = require("../lib/fetch-answers");

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
    const read = readFetchAnswer(answer(sockets));
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
    for (const payload of odd) expect(readFetchAnswer(payload)).toBeNull();
    expect(readFetchAnswer(answer([]))).toEqual([]);
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
