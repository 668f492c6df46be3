"use strict";
// Applies a broadcast that the Rust core already turned into the text socket.io writes to its
// clients (DeliveryKind.EVENT_TEXT): no MessagePack decode and no socket.io-parser encode on
// the event loop, one string for every local socket, as socket.io-adapter's own broadcast does.
const { Adapter } = require("socket.io-adapter");

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

/** The packet object, decoded only if an onAnyOutgoing listener asks for its data. */
class TextPacket {
  constructor(text, nsp) {
    this.type = 2;
    this.nsp = nsp;
    this.text = text;
    this.parsed = undefined;
  }

  get data() {
    if (this.parsed === undefined) {
      const start = this.nsp === "/" ? 1 : this.nsp.length + 2; // "2" [nsp ","]
      this.parsed = JSON.parse(this.text.slice(start));
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
 * Applies an EVENT_TEXT frame payload (src/protocol/delivery.rs `write_event_text`): mode u8
 * (0: every socket, 1: options JSON, 2: one room), opts_len u32 LE, the options, head_len u8,
 * then the WebSocket frame of the Engine.IO message: its header, "4", the text.
 */
function applyEventText(adapter, payload) {
  const optsLength = payload.readUInt32LE(1);
  let opts = NO_TARGETS;
  const mode = payload[0];
  if (mode === 1) {
    const raw = JSON.parse(payload.toString("utf8", 5, 5 + optsLength));
    opts = { rooms: new Set(raw.rooms), except: new Set(raw.except), flags: raw.flags || {} };
  } else if (mode === 2) {
    // One room, no except, no flags: the room name itself.
    const room = payload.toString("utf8", 5, 5 + optsLength);
    opts = { rooms: new Set([room]), except: NO_TARGETS.except, flags: NO_TARGETS.flags };
  }
  const frameAt = 5 + optsLength + 1;
  const textAt = frameAt + payload[frameAt - 1] + 1;
  broadcastText(adapter, payload.toString("utf8", textAt), opts, payload.subarray(frameAt));
}

/**
 * What socket.io-adapter's Adapter#broadcast does, from the ready text. `frame`: the
 * WebSocket frame of "4" + text when the Rust core built it, instead of `_encode` building
 * it here.
 */
function broadcastText(adapter, text, opts, frame) {
  const flags = opts.flags || {};
  const packetOpts = { preEncoded: true, volatile: flags.volatile, compress: flags.compress };
  let encodedPackets = [text];
  if (frame !== undefined && precomputesFrames) {
    packetOpts.wsPreEncodedFrame = [frame];
  } else if (precomputeFrame) {
    textEncoder.text = text;
    encodedPackets = Adapter.prototype._encode.call(encodeHost, null, packetOpts);
    textEncoder.text = "";
  }
  const packet = new TextPacket(text, adapter.nsp.name);
  adapter.apply(opts, (socket) => {
    if (typeof socket.notifyOutgoingListeners === "function") {
      socket.notifyOutgoingListeners(packet);
    }
    socket.client.writeToEngine(encodedPackets, packetOpts);
  });
}

const MAX_PLAIN_DEPTH = 64;

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

/** What precedes the JSON of an EVENT's data in socket.io's text for namespace `name`. */
function wirePrefix(name) {
  return name === "/" ? "2" : `2${name},`;
}

/**
 * A ClusterAdapter broadcast (sharded, streams) that can take the text fast path: a plain-JSON
 * EVENT without ack id, not local-only, on an adapter whose clients get the default encoder's
 * text (`adapter.wireText`). Returns the JSON of its data (serialized once), the rooms, and
 * the message's `data` JSON: what JSON.stringify of upstream's
 * `{ packet, opts: encodeOptions(opts) }` gives. Null when upstream's path must run.
 */
function plainClusterBroadcast(adapter, packet, opts) {
  if (
    !adapter.wireText ||
    packet.type !== 2 ||
    packet.id !== undefined ||
    (opts.flags && opts.flags.local) ||
    !isPlainJson(packet.data)
  ) {
    return null;
  }
  const json = JSON.stringify(packet.data);
  const rooms = [...opts.rooms];
  const encodedOpts = JSON.stringify({ rooms, except: [...opts.except], flags: opts.flags });
  return { json, rooms, data: `{"packet":{"type":2,"data":${json}},"opts":${encodedOpts}}` };
}

/** Whether a broadcast has rooms, exceptions or flags (else its options need not travel). */
function hasTargets(opts) {
  if (!opts) return false;
  if ((opts.rooms && opts.rooms.size > 0) || (opts.except && opts.except.size > 0)) return true;
  for (const _ in opts.flags) return true;
  return false;
}

module.exports = {
  usesDefaultEncoder,
  applyEventText,
  broadcastText,
  isPlainJson,
  hasTargets,
  wirePrefix,
  plainClusterBroadcast,
};
