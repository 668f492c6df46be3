"use strict";
// fetchSockets answers of an answering node (lib/socket-details.js, joined by the core's
// codec::fetch_sockets) must be the very bytes the official adapters write,
// JSON.stringify({ requestId, sockets: [{ id, handshake, rooms, data }] }) or, for the streams
// adapter, @msgpack/msgpack's encoding of { type, data: { requestId, sockets }, uid, nsp },
// also after the handshakes change between answers (their encodings are kept while they stay
// the same).
const msgpack = require("@msgpack/msgpack");
const native = require("../binding");
const { socketDetailsParts, msgpackAnswerParts, answerHead } = require("../lib/socket-details");

/** What the official adapters publish for these sockets. */
function officialAnswer(requestId, sockets) {
  return JSON.stringify({
    requestId,
    sockets: sockets.map((socket) => {
      // as socket.io-adapter's cluster-adapter.js and @socket.io/redis-adapter's index.ts
      const { sessionStore, ...handshake } = socket.handshake;
      return { id: socket.id, handshake, rooms: [...socket.rooms], data: socket.data };
    }),
  });
}

function ourAnswer(requestId, sockets) {
  const parts = socketDetailsParts(sockets);
  const head = answerHead(requestId);
  return native
    .joinFetchAnswer(head, parts.details, parts.handshakes, parts.lengths, "}")
    .toString("utf8");
}

/** The streams adapter's answer (socket.io-adapter's ClusterAdapter, @msgpack/msgpack). */
const streamsAnswer = (requestId, details) => ({
  type: 8,
  data: { requestId, sockets: details },
  uid: "uid",
  nsp: "/",
});

function officialMsgpackAnswer(requestId, sockets) {
  const details = sockets.map((socket) => {
    const { sessionStore, ...handshake } = socket.handshake;
    return { id: socket.id, handshake, rooms: [...socket.rooms], data: socket.data };
  });
  return Buffer.from(msgpack.encode(streamsAnswer(requestId, details)));
}

function ourMsgpackAnswer(requestId, sockets) {
  const encode = (value) => Buffer.from(msgpack.encode(value));
  const parts = msgpackAnswerParts(sockets, encode, (details) => streamsAnswer(requestId, details));
  return native.spliceMsgpackAnswer(parts.encoded, parts.details, parts.handshakes, parts.lengths);
}

function makeSocket(i) {
  return {
    id: `socket-${i}`,
    handshake: {
      headers: { host: "127.0.0.1:3000", "user-agent": `agent é ${i}`, "x-list": ["a", "b"] },
      time: "Sun Dec 06 2026 23:09:18 GMT+0000 (Coordinated Universal Time)",
      address: "::ffff:127.0.0.1",
      xdomain: false,
      secure: false,
      issued: 1796598558067 + i,
      url: "/socket.io/?EIO=4&transport=websocket",
      query: Object.assign(Object.create(null), { EIO: "4", transport: "websocket" }),
      auth: { token: `t${i}`, nested: { deep: [0, { x: '\u2028"q\\' }] } },
    },
    rooms: new Set([`socket-${i}`, "room"]),
    data: { i },
  };
}

/** Answers before and after `change`, each compared with the official bytes. */
function expectSameAfter(change) {
  const sockets = [0, 1, 2].map(makeSocket);
  const same = (requestId) => {
    expect(ourAnswer(requestId, sockets)).toBe(officialAnswer(requestId, sockets));
    expect(ourMsgpackAnswer(requestId, sockets)).toEqual(officialMsgpackAnswer(requestId, sockets));
  };
  same("r1");
  same("r2"); // from the kept encodings
  change(sockets);
  same("r3");
  same("r4");
}

describe("fetchSockets answer text", () => {
  it("is the official text, first and from kept handshakes", () => {
    expectSameAfter(() => {});
  });

  it.each([
    ["a header value", (s) => (s[1].handshake.headers.host = "other:1")],
    [
      "an equal string made anew",
      (s) => (s[1].handshake.address = ["::ffff:", "127.0.0.1"].join("")),
    ],
    ["a new key", (s) => (s[0].handshake.auth.user = "u")],
    ["a deleted key", (s) => delete s[2].handshake.headers["user-agent"]],
    [
      "the key order (deleted and set again)",
      (s) => {
        const { host } = s[0].handshake.headers;
        delete s[0].handshake.headers.host;
        s[0].handshake.headers.host = host;
      },
    ],
    ["a value set to undefined", (s) => (s[0].handshake.secure = undefined)],
    ["a number set to NaN", (s) => (s[1].handshake.issued = NaN)],
    ["an array pushed to", (s) => s[2].handshake.headers["x-list"].push("c")],
    ["an array element", (s) => (s[2].handshake.auth.nested.deep[1].x = "y")],
    ["a nested object replaced", (s) => (s[0].handshake.auth = { token: "t0" })],
    ["an array element replaced", (s) => (s[0].handshake.auth.nested.deep[1] = {})],
    ["a handshake replaced", (s) => (s[1].handshake = makeSocket(9).handshake)],
    [
      "a getter",
      (s) =>
        Object.defineProperty(s[0].handshake.auth, "g", { get: () => "got", enumerable: true }),
    ],
    [
      "a hidden toJSON on a nested object",
      (s) =>
        Object.defineProperty(s[1].handshake.headers, "toJSON", { value: () => ({ hidden: 1 }) }),
    ],
    ["a Date", (s) => (s[0].handshake.auth.when = new Date(0))],
    ["a sessionStore", (s) => (s[2].handshake.sessionStore = { sessions: new Map() })],
    ["socket data and rooms", (s) => ((s[0].data = undefined), s[1].rooms.add("new"))],
    ["0 made -0", (s) => (s[0].handshake.auth.nested.deep[0] = -0)],
    ["a Buffer", (s) => (s[2].handshake.auth.key = Buffer.from([1, 2]))],
    ["an own sessionStore set to undefined", (s) => (s[1].handshake.sessionStore = undefined)],
    ["socket data changed in place", (s) => (s[0].data.i = "changed")],
    ["a key added to socket data", (s) => (s[2].data.extra = [1, { y: 2 }])],
    ["socket data made a number", (s) => (s[1].data = 7)],
    ["a Date in socket data", (s) => (s[0].data.when = new Date(0))],
    ["a room left", (s) => s[1].rooms.delete("room")],
    [
      "the room order (left and joined again)",
      (s) => (s[0].rooms.delete(s[0].id), s[0].rooms.add(s[0].id)),
    ],
    ["an id", (s) => (s[2].id = "renamed")],
    ["a number room", (s) => s[0].rooms.add(42)],
  ])("is the official text after %s", (_, change) => {
    expectSameAfter(change);
  });

  it("writes socket data anew after each change of a primitive value", () => {
    const sockets = [0, 1].map(makeSocket);
    for (const data of [1, 2, "2", null, undefined, 2, { a: 1 }, { a: 2 }, [1], [2]]) {
      sockets[0].data = data;
      expect(ourAnswer("r", sockets)).toBe(officialAnswer("r", sockets));
    }
  });

  it("stays the official text while Object.prototype has an enumerable key", () => {
    const sockets = [0, 1].map(makeSocket);
    expect(ourAnswer("r1", sockets)).toBe(officialAnswer("r1", sockets));
    Object.prototype.inherited = "x"; // eslint-disable-line no-extend-native
    try {
      sockets[0].handshake.headers.host = "other:2";
      sockets[1].data.i = "other";
      expect(ourAnswer("r2", sockets)).toBe(officialAnswer("r2", sockets));
      expect(ourAnswer("r3", sockets)).toBe(officialAnswer("r3", sockets));
    } finally {
      delete Object.prototype.inherited;
    }
    expect(ourAnswer("r4", sockets)).toBe(officialAnswer("r4", sockets));
  });

  it("joins the handshakes again only when one of them or the sockets changed", () => {
    const sockets = [0, 1, 2].map(makeSocket);
    const first = socketDetailsParts(sockets).handshakes;
    expect(socketDetailsParts(sockets).handshakes).toBe(first);
    sockets[1].handshake.headers.host = "other:1";
    const changed = socketDetailsParts(sockets).handshakes;
    expect(changed).not.toBe(first);
    expect(changed.toString()).toContain('"host":"other:1"');
    const fewer = socketDetailsParts(sockets.slice(1)).handshakes;
    expect(fewer.length).toBeLessThan(changed.length);
    expect(ourAnswer("r", sockets.slice(1))).toBe(officialAnswer("r", sockets.slice(1)));
    expect(ourAnswer("r", sockets)).toBe(officialAnswer("r", sockets));
  });

  it("leaves answers to the upstream way while Object.prototype has a toJSON", () => {
    const sockets = [0, 1].map(makeSocket);
    expect(ourAnswer("r1", sockets)).toBe(officialAnswer("r1", sockets));
    try {
      Object.prototype.toJSON = function () {
        return "proto";
      };
      expect(socketDetailsParts(sockets)).toBeNull();
    } finally {
      delete Object.prototype.toJSON;
    }
    expect(ourAnswer("r2", sockets)).toBe(officialAnswer("r2", sockets));
  });

  it("writes data with toJSON, functions, deep handshakes and no requestId as JSON.stringify", () => {
    const sockets = [0, 1, 2, 3].map(makeSocket);
    sockets[0].data = { toJSON: (key) => `data for ${key}` };
    sockets[1].data = () => {};
    let deep = {};
    sockets[2].handshake.auth = deep;
    for (let i = 0; i < 40; i++) deep = deep.next = { i };
    sockets[3].id = undefined;
    for (let round = 0; round < 2; round++) {
      expect(ourAnswer(undefined, sockets)).toBe(officialAnswer(undefined, sockets));
    }
  });

  it("never keeps a handshake with a getter (it may answer each read differently)", () => {
    const sockets = [makeSocket(0)];
    let reads = 0;
    // 1 for the first read (the encoder's), 2 for every read after.
    Object.defineProperty(sockets[0].handshake.auth, "n", {
      get: () => (++reads === 1 ? 1 : 2),
      enumerable: true,
    });
    expect(ourAnswer("r1", sockets)).toContain('"n":1');
    expect(ourAnswer("r2", sockets)).toBe(officialAnswer("r2", sockets));
    expect(ourAnswer("r2", sockets)).toContain('"n":2');
  });

  it("fails like JSON.stringify on circular handshakes", () => {
    const sockets = [makeSocket(0)];
    sockets[0].handshake.auth.self = sockets[0].handshake;
    expect(() => officialAnswer("r", sockets)).toThrow(TypeError);
    expect(() => socketDetailsParts(sockets)).toThrow(TypeError);
  });

  it("tells binary values when asked (sharded answers then go as MessagePack)", () => {
    const hasBinary = (v) =>
      Buffer.isBuffer(v) || (v && typeof v === "object" && Object.values(v).some(hasBinary));
    const sockets = [0, 1].map(makeSocket);
    expect(socketDetailsParts(sockets, hasBinary)).not.toBeNull();
    sockets[1].handshake.auth.key = Buffer.from([1]);
    expect(socketDetailsParts(sockets, hasBinary)).toBeNull();
    delete sockets[1].handshake.auth.key;
    sockets[0].data = { blob: Buffer.from([2]) };
    expect(socketDetailsParts(sockets, hasBinary)).toBeNull();
  });

  it("refuses parts that do not fit together", () => {
    const parts = socketDetailsParts([makeSocket(0)]);
    expect(() =>
      native.joinFetchAnswer("{", parts.details, parts.handshakes, new Uint32Array(2), "}"),
    ).toThrow(/do not fit/);
  });
});
