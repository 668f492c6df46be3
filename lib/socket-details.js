"use strict";
// fetchSockets() answers of an answering node: the socket details `[{id, handshake, rooms,
// data}, ..]` exactly as the official adapters encode them (JSON.stringify, or
// @msgpack/msgpack for the streams adapter), with each handshake's encoding kept between
// answers while the handshake stays the same.
//
// Why: a handshake (headers, query, auth, ...) is about seven eighths of an answer, and
// serializing them was most of an answering node's time in fetchSockets() across 3 nodes x 100
// sockets (V8's JSON.stringify: 37 % of its CPU in `perf`). Handshakes are built once per
// connection and rarely changed after, but they are plain mutable objects: a kept encoding is
// used only after a check that finds every object of the handshake with the same keys in the
// same order and every value the same (Object.is), which costs about a fifth of serializing it
// again. Anything an encoder could write differently from call to call with no such change
// visible (getters, toJSON methods, Buffers, Dates, class instances, very deep trees) is never
// kept: such a handshake is encoded every time, as before. The core puts the kept encodings
// into the rest of the answer (codec::fetch_sockets): joining them into one string here cost
// a third of what serializing them did.

const { Adapter, MessageType } = require("socket.io-adapter");

/** Deeper handshakes are serialized every time (the snapshot walk recurses). */
const MAX_DEPTH = 16;

/** handshake object → { bytes: its JSON text as UTF-8, snapshot } */
const keptJson = new WeakMap();
/** handshake object → { bytes: its @msgpack/msgpack encoding, snapshot } */
const keptMsgpack = new WeakMap();

/** Whether JSON.stringify would call a toJSON method on `value` (own or inherited). */
function hasToJSON(value) {
  return typeof value.toJSON === "function";
}

/**
 * `value` flattened depth-first into `out`: for an object `object, keys, ...(value, [its own
 * snapshot when an object])`; for an array `array, length, ...`. False when `value` holds
 * something the snapshot cannot vouch for (see the module comment).
 */
function snapshot(value, out, depth) {
  if (value === null || typeof value !== "object") return true;
  if (depth > MAX_DEPTH) return false;
  const proto = Object.getPrototypeOf(value);
  let keys = null;
  if (Array.isArray(value)) {
    if (proto !== Array.prototype || hasToJSON(value)) return false;
    out.push(value, value.length);
  } else {
    if ((proto !== Object.prototype && proto !== null) || hasToJSON(value)) return false;
    keys = Object.keys(value);
    out.push(value, keys);
  }
  const length = keys === null ? value.length : keys.length;
  for (let i = 0; i < length; i++) {
    // A getter may answer the encoder and the snapshot differently: data properties only.
    const descriptor = Object.getOwnPropertyDescriptor(value, keys === null ? i : keys[i]);
    if (descriptor !== undefined && descriptor.get !== undefined) return false;
    const item = keys === null ? value[i] : value[keys[i]];
    out.push(item);
    if (!snapshot(item, out, depth + 1)) return false;
  }
  return true;
}

/**
 * Where the snapshot of `value` starting at `at` ends when `value` still matches it, else -1.
 * Only objects found identical to the snapshot's are entered, so the walk ends even if the
 * tree has changed into something circular. Objects are walked with for-in, which lists own
 * keys in Object.keys' order without allocating their array (half the time of the check): an
 * enumerable key it finds on a prototype is one more key than the snapshot's, a mismatch.
 */
function matchEnd(value, snap, at) {
  if (value === null || typeof value !== "object") return at;
  if (snap[at] !== value || hasToJSON(value)) return -1;
  const shape = snap[at + 1];
  let p = at + 2;
  if (typeof shape === "number") {
    if (value.length !== shape) return -1;
    for (let i = 0; i < shape; i++) {
      p = matchItem(value[i], snap, p);
      if (p < 0) return -1;
    }
    return p;
  }
  let i = 0;
  for (const key in value) {
    if (i >= shape.length || key !== shape[i]) return -1;
    i++;
    p = matchItem(value[key], snap, p);
    if (p < 0) return -1;
  }
  return i === shape.length ? p : -1;
}

/** matchEnd for an item of an object or array: the snapshot's item at `at`, then its own. */
function matchItem(item, snap, at) {
  return Object.is(snap[at], item) ? matchEnd(item, snap, at + 1) : -1;
}

/**
 * `encode(handshake)`, the kept bytes of `store` when the handshake has not changed since they
 * were made (a kept handshake holds no binary values: a Buffer is not a plain object).
 */
function keptEncoding(store, handshake, encode) {
  const entry = store.get(handshake);
  if (entry !== undefined && matchEnd(handshake, entry.snapshot, 0) === entry.snapshot.length) {
    return entry.bytes;
  }
  const bytes = encode(handshake);
  const snap = [];
  if (snapshot(handshake, snap, 0)) store.set(handshake, { bytes, snapshot: snap });
  else store.delete(handshake);
  return bytes;
}

const jsonBytes = (value) => Buffer.from(JSON.stringify(value));

/**
 * Whether `handshake` is encoded as itself: an object without an own `sessionStore` (the
 * official adapters send an own-properties copy without it, which encodes the same then) and
 * without toJSON.
 */
function sentAsItself(handshake) {
  return (
    handshake !== null &&
    typeof handshake === "object" &&
    !Object.prototype.hasOwnProperty.call(handshake, "sessionStore") &&
    !hasToJSON(handshake)
  );
}

/** As the official adapters: an own-properties copy without sessionStore (may be circular). */
function withoutSessionStore(handshake) {
  const { sessionStore, ...others } = handshake;
  return others;
}

/**
 * `text` with the member `key: json` appended as JSON.stringify writes it (`key` already
 * quoted): left out when JSON.stringify leaves the value out (`json === undefined`: undefined,
 * a function...), after a comma unless it is the first (`text` is "{" until one is written).
 */
function withMember(text, key, json) {
  if (json === undefined) return text;
  return (text.length > 1 ? text + "," : text) + key + ":" + json;
}

/**
 * A member's value as JSON.stringify writes it inside an object (a toJSON method is called
 * with the member's key, as there).
 */
function memberJson(key, value) {
  if (value !== null && typeof value === "object" && hasToJSON(value)) {
    const wrapped = JSON.stringify({ [key]: value });
    return wrapped === "{}" ? undefined : wrapped.slice(key.length + 4, -1);
  }
  return JSON.stringify(value);
}

/** Whether arrays `a` and `b` hold the very same objects in the same order. */
function sameItems(a, b) {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

/** `lengths` entry of a socket whose handshake JSON.stringify leaves out (codec::fetch_sockets). */
const NO_HANDSHAKE = 0xffffffff;

/**
 * The last joined encodings of each kind (handshakes in JSON or MessagePack, socket details in
 * MessagePack), by their store: `{ parts, bytes }`. Asked again for the same sockets, an
 * answering node mostly finds every kept encoding unchanged, in the same order: the join of
 * last time is then used again (joining some 50 KB of handshakes anew was a fifth of making an
 * answer's parts for 100 sockets). Never written to: the core copies what it is given.
 */
const lastJoined = new Map();

/** Each socket's encoding (of its handshake or details), one after the other, and their lengths. */
class Encodings {
  constructor(count, kind) {
    this.parts = [];
    this.lengths = new Uint32Array(count);
    this.total = 0;
    this.kind = kind;
  }

  /** The i-th socket's encoding; null: none (NO_HANDSHAKE). */
  set(i, bytes) {
    if (bytes === null) {
      this.lengths[i] = NO_HANDSHAKE;
      return;
    }
    this.lengths[i] = bytes.length;
    this.parts.push(bytes);
    this.total += bytes.length;
  }

  concat() {
    const { parts } = this;
    const last = lastJoined.get(this.kind);
    if (last !== undefined && sameItems(last.parts, parts)) return last.bytes;
    const bytes = Buffer.concat(parts, this.total);
    lastJoined.set(this.kind, { parts, bytes });
    return bytes;
  }
}

/** socket → { encoding, id, handshake, rooms, data, snapshot }: see keptDetails. */
const keptJsonDetails = new WeakMap();
const keptMsgpackDetails = new WeakMap();

/** Whether the Set `rooms` holds exactly the items of `kept`, in the same order. */
function sameRooms(rooms, kept) {
  if (rooms.size !== kept.length) return false;
  let i = 0;
  for (const room of rooms) if (room !== kept[i++]) return false;
  return true;
}

/**
 * `encode(id, handshake, [...rooms], data)` of `socket` (its details with `handshake`, a value
 * that is not an object, in place of its handshake), the encoding of last time while the id,
 * the rooms (strings, same order), `handshake` and the data (checked as a handshake is) are
 * the same. Why: V8 11 writes those ~100 small objects in JSON at about 0.3 µs each, a third of
 * making an answer's parts (@msgpack/msgpack: 0.5 µs); the check costs a fifth of that.
 */
function keptDetails(store, socket, handshake, encode) {
  const { id, rooms, data } = socket;
  const kept = store.get(socket);
  if (
    kept !== undefined &&
    kept.id === id &&
    Object.is(kept.handshake, handshake) &&
    Object.is(kept.data, data) &&
    sameRooms(rooms, kept.rooms) &&
    matchEnd(data, kept.snapshot, 0) === kept.snapshot.length
  ) {
    return kept.encoding;
  }
  const roomList = [...rooms];
  const encoding = encode(id, handshake, roomList, data);
  const snap = [];
  if (
    typeof id === "string" &&
    roomList.every((room) => typeof room === "string") &&
    snapshot(data, snap, 0)
  ) {
    store.set(socket, { encoding, id, handshake, rooms: roomList, data, snapshot: snap });
  } else store.delete(socket);
  return encoding;
}

/** A socket's `{id, rooms, data}` in JSON (no handshake: the core puts it in). */
const detailsJson = (id, handshake, rooms, data) => JSON.stringify({ id, rooms, data });

/**
 * The socket details that the official adapters answer fetchSockets() with, `sockets.map(s =>
 * ({ id, handshake, rooms: [...s.rooms], data }))`, the handshake without its `sessionStore`
 * (it may hold circular references), as the parts the core joins into their JSON text:
 * `details`, the JSON of `[{id, rooms, data}, ..]`, and each socket's handshake JSON in
 * `handshakes`, `lengths[i]` bytes for the i-th. Null when the answer is to be made the
 * upstream way: a toJSON on Object.prototype or Array.prototype, or, with `hasBinary` given,
 * binary values in a handshake or data (an answer that must go as MessagePack).
 */
function socketDetailsParts(sockets, hasBinary = null) {
  // A toJSON added to the prototypes changes every object's JSON (the details objects' too)
  // without changing any handshake: such answers are left to the upstream way.
  if (Object.prototype.toJSON !== undefined || Array.prototype.toJSON !== undefined) return null;
  const rest = new Array(sockets.length);
  const handshakes = new Encodings(sockets.length, keptJson);
  for (let i = 0; i < sockets.length; i++) {
    const socket = sockets[i];
    let handshake = socket.handshake;
    let bytes;
    if (sentAsItself(handshake)) bytes = keptEncoding(keptJson, handshake, jsonBytes);
    else {
      if (handshake !== null && typeof handshake === "object") {
        handshake = withoutSessionStore(handshake);
      }
      const json = memberJson("handshake", handshake);
      bytes = json === undefined ? null : Buffer.from(json);
    }
    if (hasBinary !== null) {
      if ((!keptJson.has(handshake) && hasBinary(handshake)) || hasBinary(socket.data)) {
        return null;
      }
    }
    handshakes.set(i, bytes);
    rest[i] = keptDetails(keptJsonDetails, socket, undefined, detailsJson);
  }
  const { lengths } = handshakes;
  return { details: `[${rest.join(",")}]`, handshakes: handshakes.concat(), lengths };
}

/**
 * A MessagePack fetchSockets answer (the streams adapter's) as the parts the core splices
 * (codec::fetch_sockets::splice_msgpack_answer): `encoded`, `encode(answer(sockets))` with a
 * null for each socket; `details`, each socket's encoded `{id, handshake: null, rooms, data}`
 * one after the other; and each handshake's encoding in `handshakes`, `lengths[i]` bytes for
 * the i-th socket (NO_HANDSHAKE: the details hold the handshake itself, a value that is not
 * an object).
 */
function msgpackAnswerParts(sockets, encode, answer) {
  const details = new Encodings(sockets.length, keptMsgpackDetails);
  const handshakes = new Encodings(sockets.length, keptMsgpack);
  const detailsMsgpack = (id, handshake, rooms, data) => encode({ id, handshake, rooms, data });
  for (let i = 0; i < sockets.length; i++) {
    const socket = sockets[i];
    const handshake = socket.handshake;
    let placeholder = null;
    if (sentAsItself(handshake)) handshakes.set(i, keptEncoding(keptMsgpack, handshake, encode));
    else if (handshake !== null && typeof handshake === "object") {
      handshakes.set(i, encode(withoutSessionStore(handshake)));
    } else {
      handshakes.set(i, null);
      placeholder = handshake;
    }
    details.set(i, keptDetails(keptMsgpackDetails, socket, placeholder, detailsMsgpack));
  }
  return {
    encoded: encode(answer(new Array(sockets.length).fill(null))),
    details: details.concat(),
    handshakes: handshakes.concat(),
    lengths: handshakes.lengths,
  };
}

/**
 * The JSON text up to an answer's socket details: `{"requestId":..,"sockets":` as
 * JSON.stringify writes `{ requestId, sockets }` (a requestId it leaves out, left out).
 */
function answerHead(requestId) {
  const head = withMember("{", '"requestId"', JSON.stringify(requestId));
  return withMember(head, '"sockets"', "");
}

/** The official adapters' details of one socket (the upstream way of socketDetailsParts). */
function officialDetails(socket) {
  const handshake = withoutSessionStore(socket.handshake);
  return { id: socket.id, handshake, rooms: [...socket.rooms], data: socket.data };
}

/**
 * Whether ClusterAdapter#onMessage would answer `message` (of a ClusterAdapter subclass) as a
 * fetchSockets request: of that type, from another node, for this namespace.
 */
function isFetchSocketsRequest(adapter, message) {
  return (
    message !== null &&
    typeof message === "object" &&
    message.type === MessageType.FETCH_SOCKETS &&
    message.uid !== adapter.uid &&
    message.nsp === adapter.nsp.name &&
    message.data !== null &&
    typeof message.data === "object"
  );
}

/** The local sockets such a request asks for, as ClusterAdapter#onMessage finds them. */
function requestedSockets(adapter, request) {
  const opts = request.data.opts || {};
  return Adapter.prototype.fetchSockets.call(adapter, {
    rooms: new Set(opts.rooms),
    except: new Set(opts.except),
    flags: opts.flags,
  });
}

module.exports = {
  socketDetailsParts,
  msgpackAnswerParts,
  answerHead,
  officialDetails,
  isFetchSocketsRequest,
  requestedSockets,
};
