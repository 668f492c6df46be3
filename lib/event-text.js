"use strict";
// Applies a broadcast that the Rust core already turned into the text socket.io writes to its
// clients (DeliveryKind.EVENT_TEXT): no MessagePack decode and no socket.io-parser encode on
// the event loop, one string for every local socket, as socket.io-adapter's own broadcast does.
const { Adapter } = require("socket.io-adapter");
const native = require("../binding");

const NO_TARGETS = Object.freeze({ rooms: new Set(), except: new Set(), flags: {} });

/**
 * Whether the server encodes packets with socket.io-parser's default Encoder (no replacer):
 * only then is the text computed in Rust what socket.io itself would send.
 */
function usesDefaultEncoder(server) {
  const encoder = server && server.encoder;
  return (
    !!encoder &&
    typeof encoder.encodeAsString === "function" &&
    encoder.replacer === undefined &&
    encoder.constructor &&
    encoder.constructor.name === "Encoder"
  );
}

/**
 * The packet object, decoded only if an onAnyOutgoing listener asks for its data.
 * `attachments`: the Buffers of a BINARY_EVENT text, put back in place of its placeholders.
 */
class TextPacket {
  constructor(text, nsp, attachments) {
    this.type = 2;
    this.nsp = nsp;
    this.text = text;
    this.attachments = attachments;
    this.parsed = undefined;
  }

  get data() {
    if (this.parsed === undefined) {
      // "2" [nsp ","] JSON, or "5" count "-" [nsp ","] JSON
      const head = this.attachments === undefined ? 1 : this.text.indexOf("-") + 1;
      const json = this.text.slice(this.nsp === "/" ? head : head + this.nsp.length + 1);
      const attachments = this.attachments;
      this.parsed =
        attachments === undefined
          ? JSON.parse(json)
          : JSON.parse(json, (_key, value) =>
              value !== null &&
              typeof value === "object" &&
              value._placeholder === true &&
              typeof value.num === "number"
                ? attachments[value.num]
                : value,
            );
    }
    return this.parsed;
  }
}

// socket.io-adapter's `_encode` also precomputes the WebSocket frame once for all sockets;
// it is reused with an encoder that returns the ready text.
const textEncoder = {
  text: "",
  encode() {
    return [this.text];
  },
};
const encodeHost = { encoder: textEncoder };
const precomputeFrame = typeof Adapter.prototype._encode === "function";
/** Whether `_encode` attaches a ready WebSocket frame (it does when it can load `ws`). */
const precomputesFrames =
  precomputeFrame &&
  (() => {
    const probe = {};
    textEncoder.text = "x";
    Adapter.prototype._encode.call(encodeHost, null, probe);
    textEncoder.text = "";
    return probe.wsPreEncodedFrame !== undefined;
  })();

/**
 * A WebSocket text frame (FIN, unmasked, as a server sends it) of `head` (bytes) followed by
 * `bytes[start, end)`: what ws's Sender.frame makes of the same message, in one Buffer.
 */
function textFrame(head, bytes, start, end) {
  const length = head.length + (end - start);
  const frame = Buffer.allocUnsafe(frameHeaderLength(length) + length);
  const at = writeFrameHeader(frame, 0x81, length);
  head.copy(frame, at);
  bytes.copy(frame, at + head.length, start, end);
  return frame;
}

/** The text frame of the Engine.IO message "4" + `text`, in one Buffer. */
function messageFrame(text) {
  const length = 1 + Buffer.byteLength(text);
  const frame = Buffer.allocUnsafe(frameHeaderLength(length) + length);
  const at = writeFrameHeader(frame, 0x81, length);
  frame[at] = 0x34; // "4"
  frame.utf8Write(text, at + 1);
  return frame;
}

/** The binary frame of `bytes`, as the header and the bytes themselves (not copied). */
function binaryFrame(bytes) {
  const header = Buffer.allocUnsafe(frameHeaderLength(bytes.length));
  writeFrameHeader(header, 0x82, bytes.length);
  return [header, bytes];
}

function frameHeaderLength(length) {
  return length < 126 ? 2 : length < 65536 ? 4 : 10;
}

/** Writes the header of a final, unmasked frame; returns where the payload starts. */
function writeFrameHeader(frame, first, length) {
  frame[0] = first;
  if (length < 126) {
    frame[1] = length;
    return 2;
  }
  if (length < 65536) {
    frame[1] = 126;
    frame.writeUInt16BE(length, 2);
    return 4;
  }
  frame[1] = 127;
  frame.writeUInt32BE(Math.floor(length / 0x100000000), 2);
  frame.writeUInt32BE(length >>> 0, 6);
  return 10;
}

/** Set in an EVENT_TEXT's mode byte when its text is all ASCII (delivery.rs `TEXT_ASCII`). */
const TEXT_ASCII = 0x80;

/**
 * The targets at the start of an EVENT_TEXT or EVENT_BINARY payload: mode u8 (0: every
 * socket, 1: options JSON, 2: one room), opts_len u32 LE, the options. Returns them and where
 * the rest starts.
 */
function readTargets(payload, at = 0) {
  const optsLength = payload.readUInt32LE(at + 1);
  const optsAt = at + 5;
  let opts = NO_TARGETS;
  const mode = payload[at] & ~TEXT_ASCII;
  if (mode === 1) {
    const raw = JSON.parse(payload.toString("utf8", optsAt, optsAt + optsLength));
    opts = { rooms: new Set(raw.rooms), except: new Set(raw.except), flags: raw.flags || {} };
  } else if (mode === 2) {
    // One room, no except, no flags: the room name itself.
    const room = payload.toString("utf8", optsAt, optsAt + optsLength);
    opts = { rooms: new Set([room]), except: NO_TARGETS.except, flags: NO_TARGETS.flags };
  }
  return { opts, rest: optsAt + optsLength };
}

/**
 * Applies an EVENT_TEXT frame payload (src/protocol/delivery.rs `write_event_text`): the
 * targets (TEXT_ASCII set in their mode when the text is ASCII), head_len u8, then the
 * WebSocket frame of the Engine.IO message: its header, "4",
 * the text. The payload is `payload[start, end)`.
 */
function applyEventText(adapter, payload, start = 0, end = payload.length) {
  const { opts, rest } = readTargets(payload, start);
  const frameAt = rest + 1;
  const textAt = frameAt + payload[rest] + 1;
  // ASCII is its own Latin-1: a copy into a one-byte string, no UTF-8 decoding.
  const text =
    payload[start] & TEXT_ASCII
      ? payload.latin1Slice(textAt, end)
      : payload.toString("utf8", textAt, end);
  broadcastText(adapter, text, opts, payload.subarray(frameAt, end));
}

/**
 * Applies an EVENT_BINARY frame payload (src/protocol/delivery.rs `write_event_binary`): the
 * targets (TEXT_ASCII set in their mode when the text is ASCII), then each WebSocket message
 * as frame_len u32 LE, head_len u8 and the frame: the text frame of "4" + the BINARY_EVENT
 * text, count u32 LE, one binary frame per attachment. The text and the attachments' bytes
 * (views) are read inside the frames.
 */
function applyEventBinary(adapter, payload) {
  const { opts, rest } = readTargets(payload);
  const textFrameAt = rest + 5;
  const textAt = textFrameAt + payload[rest + 4] + 1;
  let at = textFrameAt + payload.readUInt32LE(rest);
  const text =
    payload[0] & TEXT_ASCII
      ? payload.latin1Slice(textAt, at)
      : payload.toString("utf8", textAt, at);
  const frames = [payload.subarray(textFrameAt, at)];
  const count = payload.readUInt32LE(at);
  at += 4;
  const encodedPackets = [text];
  for (let i = 0; i < count; i++) {
    const frameAt = at + 5;
    const end = frameAt + payload.readUInt32LE(at);
    encodedPackets.push(payload.subarray(frameAt + payload[at + 4], end));
    frames.push(payload.subarray(frameAt, end));
    at = end;
  }
  const packet = new TextPacket(text, adapter.nsp.name, encodedPackets.slice(1));
  writeBinaryEvent(adapter, opts, packet, encodedPackets, () => frames);
}

/**
 * Writes the messages of a binary event (`encodedPackets`: the BINARY_EVENT text, then the
 * attachments) to every matching local socket, each with its ready frame from `frames()`,
 * called once at the first matching socket (there may be none). Volatile packets, or without
 * ws's frames, go in one call, as upstream: socket.io drops a volatile write while the
 * transport is busy, which the first message would make it.
 */
function writeBinaryEvent(adapter, opts, packet, encodedPackets, frames) {
  const packetOpts = packetOptsOf(opts);
  if (!precomputesFrames || packetOpts.volatile) {
    writeToSockets(adapter, opts, packet, encodedPackets, packetOpts);
    return;
  }
  writeToSockets(adapter, opts, packet, encodedPackets, () => framedOpts(packetOpts, frames()));
}

/**
 * Engine.IO write options for each message of a binary event, each with its ready frame
 * (`frames[i]`: a Buffer or a list of Buffers, as ws's sendFrame takes it). Literals of one
 * shape: options spread from packetOpts made the receiving node slower than building the
 * frames in ws (bench receiver CPU 1.2-1.7x, against 0.8x with these).
 */
function framedOpts(packetOpts, frames) {
  const messageOpts = new Array(frames.length);
  for (let i = 0; i < frames.length; i++) {
    messageOpts[i] = {
      preEncoded: true,
      volatile: undefined,
      compress: packetOpts.compress,
      wsPreEncodedFrame: Array.isArray(frames[i]) ? frames[i] : [frames[i]],
    };
  }
  return messageOpts;
}

/**
 * What socket.io-adapter's Adapter#broadcast does, from the ready text. `frame`: the
 * WebSocket frame of "4" + text when the Rust core built it, instead of `_encode` building
 * it here.
 */
function broadcastText(adapter, text, opts, frame) {
  const packetOpts = packetOptsOf(opts);
  let encodedPackets = [text];
  if (frame !== undefined && precomputesFrames) {
    packetOpts.wsPreEncodedFrame = [frame];
  } else if (precomputeFrame) {
    textEncoder.text = text;
    encodedPackets = Adapter.prototype._encode.call(encodeHost, null, packetOpts);
    textEncoder.text = "";
  }
  const packet = new TextPacket(text, adapter.nsp.name);
  writeToSockets(adapter, opts, packet, encodedPackets, packetOpts);
}

/**
 * What socket.io-adapter's Adapter#broadcast does for an EVENT with Buffers, from the
 * BINARY_EVENT text built here (socket.io-parser's encoding of the same data, see
 * withPlaceholders) and the Buffers.
 */
function broadcastBinary(adapter, packet, text, attachments, opts) {
  writeBinaryEvent(adapter, opts, packet, [text, ...attachments], () => [
    messageFrame(text),
    ...attachments.map(binaryFrame),
  ]);
}

/** The engine.io write options socket.io-adapter's Adapter#broadcast derives from `opts`. */
function packetOptsOf(opts) {
  const flags = opts.flags || {};
  return { preEncoded: true, volatile: flags.volatile, compress: flags.compress };
}

/**
 * The end of socket.io-adapter's Adapter#broadcast: every matching local socket.
 * `packetOpts`: engine.io's write options for all of `encodedPackets`, or a function that
 * makes an array of options, one per packet (each then written by its own call), called once
 * at the first matching socket.
 */
function writeToSockets(adapter, opts, packet, encodedPackets, packetOpts) {
  const lazy = typeof packetOpts === "function";
  let perPacket = null;
  adapter.apply(opts, (socket) => {
    if (typeof socket.notifyOutgoingListeners === "function") {
      socket.notifyOutgoingListeners(packet);
    }
    if (!lazy) {
      socket.client.writeToEngine(encodedPackets, packetOpts);
      return;
    }
    perPacket ??= packetOpts();
    for (let i = 0; i < encodedPackets.length; i++) {
      socket.client.writeToEngine(encodedPackets[i], perPacket[i]);
    }
  });
}

const MAX_PLAIN_DEPTH = 64;

/** What withPlaceholders returns for data it cannot take. */
const NOT_PLAIN = Symbol("not plain");

/**
 * `value` with each Buffer replaced by the placeholder socket.io-parser's deconstructPacket
 * puts in its place (`{_placeholder: true, num}`, numbered in the same walk order: arrays in
 * order, object keys in property order), the Buffers appended to `attachments`; NOT_PLAIN
 * unless everything else is what isPlainJson accepts. An object with a `_placeholder` (or an
 * own `__proto__`) key is NOT_PLAIN too: the Rust core reads placeholders back from the JSON.
 */
function withPlaceholders(value, attachments, depth = 0) {
  if (value === null) return value;
  switch (typeof value) {
    case "string":
      return value.isWellFormed === undefined || value.isWellFormed() ? value : NOT_PLAIN;
    case "boolean":
      return value;
    case "number":
      return Number.isFinite(value) ? value : NOT_PLAIN;
    case "object":
      break;
    default:
      return NOT_PLAIN;
  }
  if (depth >= MAX_PLAIN_DEPTH) return NOT_PLAIN;
  if (Buffer.isBuffer(value)) {
    const placeholder = { _placeholder: true, num: attachments.length };
    attachments.push(value);
    return placeholder;
  }
  if (Array.isArray(value)) {
    const out = new Array(value.length);
    for (let i = 0; i < value.length; i++) {
      if (!(i in value)) return NOT_PLAIN;
      const item = withPlaceholders(value[i], attachments, depth + 1);
      if (item === NOT_PLAIN) return NOT_PLAIN;
      out[i] = item;
    }
    return out;
  }
  const proto = Object.getPrototypeOf(value);
  if (proto !== Object.prototype && proto !== null) return NOT_PLAIN;
  if (typeof value.toJSON === "function") return NOT_PLAIN;
  const out = {};
  for (const key in value) {
    if (key === "_placeholder" || key === "__proto__") return NOT_PLAIN;
    const item = withPlaceholders(value[key], attachments, depth + 1);
    if (item === NOT_PLAIN) return NOT_PLAIN;
    out[key] = item;
  }
  return out;
}

/**
 * Whether `JSON.stringify(value)` carries exactly what notepack.encode would: only null,
 * booleans, finite numbers, well-formed strings, arrays without holes and plain objects
 * (no toJSON, no undefined values), so the MessagePack built from the JSON text is
 * byte-identical. Buffers, Dates, class instances and the rest take notepack's path; they
 * are also what socket.io-parser's hasBinary looks for.
 */
function isPlainJson(value, depth = 0) {
  if (value === null) return true;
  switch (typeof value) {
    case "string":
      return value.isWellFormed === undefined || value.isWellFormed();
    case "boolean":
      return true;
    case "number":
      return Number.isFinite(value);
    case "object":
      break;
    default:
      return false; // undefined, functions, symbols, bigints
  }
  if (depth >= MAX_PLAIN_DEPTH) return false;
  if (Array.isArray(value)) {
    for (let i = 0; i < value.length; i++) {
      if (!(i in value) || !isPlainJson(value[i], depth + 1)) return false;
    }
    return true;
  }
  const proto = Object.getPrototypeOf(value);
  if (proto !== Object.prototype && proto !== null) return false;
  if (typeof value.toJSON === "function") return false;
  for (const key in value) {
    if (!isPlainJson(value[key], depth + 1)) return false;
  }
  return true;
}

/** Top-level strings of an event's data at least this long are checked in Rust (dataJson). */
const LONG_STRING = 512;
/** Longer strings go to JSON.stringify (the check would need a scratch buffer that large). */
const MAX_CHECKED_STRING = 1 << 20;
let scratch = null;

/**
 * JSON.stringify(data) for an EVENT's data that passed isPlainJson: a long top-level string
 * that needs no escaping is written between quotes as it is. V8 11 escapes strings at about
 * 2 ns per character (a 4 KiB payload: 8.7 us, a third of a sending node's CPU in `perf`);
 * written to UTF-8 (at memcpy speed) and checked eight bytes at a time in Rust, the same
 * string costs well under a microsecond. Only `"`, backslashes and control characters are
 * escaped by JSON.stringify in a well-formed string, and their UTF-8 bytes never occur inside
 * other characters' bytes.
 */
function dataJson(data) {
  if (!Array.isArray(data) || !hasLongString(data)) return JSON.stringify(data);
  let json = "[";
  for (let i = 0; i < data.length; i++) {
    const value = data[i];
    if (i > 0) json += ",";
    json +=
      typeof value === "string" && value.length >= LONG_STRING && plainInJson(value)
        ? `"${value}"`
        : JSON.stringify(value);
  }
  return `${json}]`;
}

function hasLongString(array) {
  for (let i = 0; i < array.length; i++) {
    if (typeof array[i] === "string" && array[i].length >= LONG_STRING) return true;
  }
  return false;
}

/** Whether the well-formed string `text` is its own JSON between quotes. */
function plainInJson(text) {
  if (text.length > MAX_CHECKED_STRING) return false;
  const most = 3 * text.length;
  if (scratch === null || scratch.length < most)
    scratch = Buffer.allocUnsafe(Math.max(most, 1 << 16));
  const length = scratch.utf8Write(text, 0);
  return !native.utf8NeedsJsonEscape(scratch, length);
}

/** What precedes the JSON of an EVENT's data in socket.io's text for namespace `name`. */
function wirePrefix(name) {
  return name === "/" ? "2" : `2${name},`;
}

/**
 * socket.io-parser's text of a BINARY_EVENT for namespace `name` with `count` attachments,
 * whose data (with placeholders) is the JSON `json`: "5" count "-" [nsp ","] json.
 */
function binaryEventText(name, count, json) {
  return `5${count}-${name === "/" ? "" : `${name},`}${json}`;
}

/**
 * A ClusterAdapter broadcast (sharded, streams) that can take the text fast path: a plain-JSON
 * EVENT without ack id, not local-only, on an adapter whose clients get the default encoder's
 * text (`adapter.wireText`). Returns the JSON of its data (serialized once), the rooms, and the
 * JSON of its options (the message's `data` is clusterBroadcastData of the two JSONs). Null
 * when upstream's path must run.
 */
function plainClusterBroadcast(adapter, packet, opts) {
  if (!clusterFastPath(adapter, packet, opts) || !isPlainJson(packet.data)) return null;
  const json = dataJson(packet.data);
  const rooms = [...opts.rooms];
  return { json, rooms, encodedOpts: encodedOptionsJson(rooms, opts) };
}

/** The start of a cluster BROADCAST message's `data` JSON, up to the JSON of the event's data. */
const BROADCAST_DATA_HEAD = '{"packet":{"type":2,"data":';

/**
 * What JSON.stringify of upstream's `{ packet, opts: encodeOptions(opts) }` gives for an EVENT
 * whose data's JSON is `json` and options' JSON `encodedOpts` (both from
 * plainClusterBroadcast / binaryClusterBroadcast).
 */
function clusterBroadcastData(json, encodedOpts) {
  return `${BROADCAST_DATA_HEAD}${json}},"opts":${encodedOpts}}`;
}

/**
 * Whether a ClusterAdapter broadcast may skip upstream's path, whatever its data: an EVENT
 * without ack id, not local-only, on an adapter whose clients get the default encoder's text.
 */
function clusterFastPath(adapter, packet, opts) {
  return (
    adapter.wireText &&
    packet.type === 2 &&
    packet.id === undefined &&
    !(opts.flags && opts.flags.local)
  );
}

/**
 * JSON.stringify of ClusterAdapter's `encodeOptions(opts)` (`{rooms, except, flags}`), written
 * directly in the usual case (string rooms, nothing excepted, no flags): V8's JSON.stringify of
 * the object (it looks for toJSON on each one) was a sixth of a sharded sender's CPU.
 */
function encodedOptionsJson(rooms, opts) {
  const except = opts.except;
  if ((except === undefined || except.size === 0) && isEmptyObject(opts.flags)) {
    let json = '{"rooms":[';
    for (let i = 0; i < rooms.length; i++) {
      if (typeof rooms[i] !== "string") return JSON.stringify(encodeOptions(rooms, opts));
      json += i === 0 ? JSON.stringify(rooms[i]) : `,${JSON.stringify(rooms[i])}`;
    }
    return `${json}],"except":[],"flags":{}}`;
  }
  return JSON.stringify(encodeOptions(rooms, opts));
}

function encodeOptions(rooms, opts) {
  return { rooms, except: [...opts.except], flags: opts.flags };
}

/** An object with no enumerable property (JSON `{}`), as the usual broadcast's flags. */
function isEmptyObject(value) {
  if (value === null || typeof value !== "object") return false;
  for (const _ in value) return false;
  return true;
}

/**
 * plainClusterBroadcast for an EVENT whose data holds Buffers among plain JSON: the JSON of its
 * data with socket.io-parser's placeholders in place of the Buffers, which come in
 * `attachments` (the Rust core writes the MessagePack message notepack would, with them as
 * `bin`). Null when upstream's path must run, flags that JSON would not carry included.
 */
function binaryClusterBroadcast(adapter, packet, opts) {
  if (!clusterFastPath(adapter, packet, opts) || !plainFlags(opts.flags)) return null;
  const attachments = [];
  const data = withPlaceholders(packet.data, attachments);
  if (data === NOT_PLAIN || attachments.length === 0) return null;
  const rooms = [...opts.rooms];
  return {
    json: JSON.stringify(data),
    rooms,
    attachments,
    encodedOpts: encodedOptionsJson(rooms, opts),
  };
}

/** Flags whose JSON is what notepack encodes of them: booleans and finite numbers. */
function plainFlags(flags) {
  if (flags === undefined) return true;
  if (flags === null || typeof flags !== "object") return false;
  for (const key in flags) {
    const value = flags[key];
    if (typeof value !== "boolean" && !(typeof value === "number" && Number.isFinite(value)))
      return false;
  }
  return true;
}

/** Whether a broadcast has rooms, exceptions or flags (else its options need not travel). */
function hasTargets(opts) {
  if (!opts) return false;
  if ((opts.rooms && opts.rooms.size > 0) || (opts.except && opts.except.size > 0)) return true;
  for (const _ in opts.flags) return true;
  return false;
}

module.exports = {
  dataJson,
  textFrame,
  precomputesFrames,
  usesDefaultEncoder,
  applyEventText,
  applyEventBinary,
  broadcastBinary,
  withPlaceholders,
  NOT_PLAIN,
  broadcastText,
  isPlainJson,
  hasTargets,
  wirePrefix,
  binaryEventText,
  isEmptyObject,
  plainClusterBroadcast,
  binaryClusterBroadcast,
  clusterBroadcastData,
  BROADCAST_DATA_HEAD,
};
