"use strict";
// Socket details of fetchSockets() answers (classic adapter) with each handshake parsed on
// first use. The handshakes are about seven eighths of an answer's JSON, and parsing them was
// half of a requesting node's CPU time in fetchSockets() across 3 nodes x 100 sockets, while
// most callers only read `id`, `rooms` or `data` of the remote sockets. The Rust core splits
// the answer (codec::fetch_sockets); everything but the handshakes is parsed here at once.
const util = require("util");
const native = require("../binding");

const TRAPS = [
  "get",
  "set",
  "has",
  "deleteProperty",
  "defineProperty",
  "getOwnPropertyDescriptor",
  "ownKeys",
  "getPrototypeOf",
  "setPrototypeOf",
  "isExtensible",
  "preventExtensions",
];

/**
 * A plain object parsed from the JSON object text `text` when it is first used: any property
 * read, write, key listing or prototype check parses it into the proxy's target, which then
 * behaves as the object `JSON.parse(text)` would have returned. `util.inspect` (console.log)
 * looks at the target directly, so the target carries an inspect hook that parses first.
 * Only structured cloning sees the difference: a Proxy cannot be cloned.
 */
function lazyObject(text) {
  const target = {};
  let pending = text;
  const parse = () => {
    if (pending === null) return;
    const parsed = JSON.parse(pending);
    pending = null;
    delete target[util.inspect.custom];
    // defineProperty rather than assignment: a "__proto__" key stays an own property, as in
    // what JSON.parse returns.
    for (const key of Object.keys(parsed)) {
      Object.defineProperty(target, key, {
        value: parsed[key],
        writable: true,
        enumerable: true,
        configurable: true,
      });
    }
  };
  Object.defineProperty(target, util.inspect.custom, {
    value(depth, options, inspect) {
      parse();
      return inspect(target, options);
    },
    configurable: true,
    writable: true,
    enumerable: false,
  });
  const handler = {};
  for (const trap of TRAPS) {
    handler[trap] = (t, ...args) => {
      parse();
      return Reflect[trap](t, ...args);
    };
  }
  return new Proxy(target, handler);
}

/**
 * The `sockets` of one answer (a Buffer as published), or null when the answer is not the
 * usual JSON shape (the caller then decodes it whole).
 */
function readFetchAnswer(answer) {
  if (answer[0] !== 0x7b) return null; // "{": JSON
  const split = native.splitFetchAnswer(answer);
  if (!split) return null;
  const headLength = split.readUInt32LE(0);
  const head = JSON.parse(split.toString("utf8", 4, 4 + headLength));
  const count = split.readUInt32LE(4 + headLength);
  let lengthAt = 8 + headLength;
  let at = lengthAt + 4 * count;
  const sockets = new Array(count);
  for (let i = 0; i < count; i++) {
    const length = split.readUInt32LE(lengthAt);
    lengthAt += 4;
    const [id, rooms, data] = head[i];
    sockets[i] = {
      id,
      handshake: lazyObject(split.toString("utf8", at, at + length)),
      rooms,
      data,
    };
    at += length;
  }
  return sockets;
}

module.exports = { lazyObject, readFetchAnswer };
