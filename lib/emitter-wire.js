"use strict";
// What the Emitter writes to Redis, per target adapter. Pure functions: an operation goes in,
// a write description comes out ({publish: {channel, payload, sharded}} or
// {xadd: {stream, maxLen, fields}}). Byte-for-byte what the official packages write:
// - classic: @socket.io/redis-emitter 5.1 (PROTOCOL.md section 6, 2.5);
// - sharded: the cluster-adapter messages of @socket.io/redis-adapter createShardedAdapter
//   (sections 3, 4.3 computeChannel, 4.4 encode);
// - streams: @socket.io/redis-streams-adapter 0.3 (sections 5.2 naming, 5.3 transport, 5.5 XADD).

const notepack = require("notepack.io");

/** The uid of every message of an emitter, as the official one (receivers never skip it). */
const UID = "emitter";

/** Classic request types (socket.io-redis-adapter RequestType). */
const RequestType = { REMOTE_JOIN: 2, REMOTE_LEAVE: 3, REMOTE_DISCONNECT: 4, SERVER_SIDE_EMIT: 6 };

/** Cluster-adapter message types (socket.io-adapter MessageType). */
const MessageType = {
  BROADCAST: 3,
  SOCKETS_JOIN: 4,
  SOCKETS_LEAVE: 5,
  DISCONNECT_SOCKETS: 6,
  SERVER_SIDE_EMIT: 9,
};

/** Message types that are MessagePack-encoded when they carry binary (sharded and streams). */
const MAY_CONTAIN_BINARY = new Set([3, 8, 9, 10, 12]);

let msgpackJs;
/** @msgpack/msgpack, loaded on first use (streams only). */
function msgpackEncode(value) {
  if (!msgpackJs) msgpackJs = require("@msgpack/msgpack");
  const bytes = msgpackJs.encode(value);
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}

/** As socket.io-redis-adapter lib/util.ts hasBinary (one level of toJSON). */
function hasBinary(obj, toJSON) {
  if (!obj || typeof obj !== "object") return false;
  if (obj instanceof ArrayBuffer || ArrayBuffer.isView(obj)) return true;
  if (Array.isArray(obj)) {
    for (let i = 0; i < obj.length; i++) if (hasBinary(obj[i])) return true;
    return false;
  }
  for (const key in obj) {
    if (Object.prototype.hasOwnProperty.call(obj, key) && hasBinary(obj[key])) return true;
  }
  if (obj.toJSON && typeof obj.toJSON === "function" && !toJSON) {
    return hasBinary(obj.toJSON(), true);
  }
  return false;
}

/** Whatever a parser returned, as a Buffer (strings as UTF-8, like node-redis and ioredis). */
function toBuffer(encoded) {
  if (Buffer.isBuffer(encoded)) return encoded;
  if (typeof encoded === "string") return Buffer.from(encoded, "utf8");
  if (ArrayBuffer.isView(encoded)) {
    return Buffer.from(encoded.buffer, encoded.byteOffset, encoded.byteLength);
  }
  if (encoded instanceof ArrayBuffer) return Buffer.from(encoded);
  return Buffer.from(String(encoded), "utf8");
}

/** streams lib/util.ts hashCode: signed 32-bit, over UTF-16 code units. */
function hashCode(str) {
  let hash = 0;
  for (let i = 0; i < str.length; i++) {
    hash = hash * 31 + str.charCodeAt(i);
    hash |= 0;
  }
  return hash;
}

/*
 * Stream naming with streamCount > 1 (PROTOCOL.md 5.2). The official 0.3.1 computeStreamName
 * is `streamName + "-" + (hashCode(nsp) % streamCount)`; JS `%` keeps the sign, so a namespace
 * whose hash is negative (e.g. "/abcdefgh": -2086307405 % 4 = -1) goes to `streamName--1`,
 * a stream no official node reads (they read `-0` .. `-(streamCount - 1)`): such namespaces
 * reach no other node. Our rule:
 * - we WRITE a namespace to `streamName-i` with i = hashCode(nsp) mod streamCount taken
 *   non-negative, ((h % n) + n) % n: the same stream as the official one whenever the hash is
 *   not negative (byte-for-byte the same naming), and otherwise a stream every node, ours and
 *   official, reads;
 * - we also READ the stream official nodes write such a namespace to (`streamName--k`), from
 *   the moment the namespace exists on our node, so official writers reach our nodes;
 * - restoring a session of such a namespace reads both streams, merged by entry id.
 * (-0 is not an issue: String(-0) is "0".)
 */

/** The stream our writers use for namespace `nsp`. */
function streamNameFor(nsp, streamName, streamCount) {
  if (streamCount === 1) return streamName;
  const index = ((hashCode(nsp) % streamCount) + streamCount) % streamCount;
  return streamName + "-" + index;
}

/**
 * The stream official 0.3.1 nodes write `nsp` to when it differs from ours (negative hash:
 * `streamName--k`), else null.
 */
function officialOnlyStreamFor(nsp, streamName, streamCount) {
  if (streamCount === 1) return null;
  const official = streamName + "-" + (hashCode(nsp) % streamCount);
  return official === streamNameFor(nsp, streamName, streamCount) ? null : official;
}

const looksLikeASocketId = (room) => typeof room === "string" && room.length === 20;

/** Options on the wire of the cluster adapters (encodeOptions): rooms, except, flags. */
const clusterOpts = (op) => ({ rooms: op.rooms, except: op.except, flags: op.flags });

/**
 * The `{type, data}` of a cluster-adapter message for an emitter operation (section 3.1), or
 * of a classic request for the same operation.
 */
function clusterMessage(op) {
  switch (op.kind) {
    case "broadcast":
      return {
        type: MessageType.BROADCAST,
        data: { packet: { type: 2, data: op.data }, opts: clusterOpts(op) },
      };
    case "join":
    case "leave":
      return {
        type: op.kind === "join" ? MessageType.SOCKETS_JOIN : MessageType.SOCKETS_LEAVE,
        data: { opts: clusterOpts(op), rooms: op.targetRooms },
      };
    case "disconnect":
      return {
        type: MessageType.DISCONNECT_SOCKETS,
        data: { opts: clusterOpts(op), close: op.close },
      };
    case "serverSideEmit":
      return { type: MessageType.SERVER_SIDE_EMIT, data: { packet: op.data } };
    default:
      throw new Error(`unknown emitter operation ${op.kind}`);
  }
}

/** @socket.io/redis-emitter 5.1, over PUBLISH, to the classic adapter. */
class ClassicTarget {
  constructor(opts) {
    this.key = opts.key;
    this.parser = opts.parser;
  }

  write(nsp, op) {
    if (op.kind === "broadcast") {
      const packet = { type: 2, data: op.data, nsp };
      // key order rooms, flags, except: as the official emitter
      const opts = { rooms: op.rooms, flags: op.flags, except: op.except };
      let channel = `${this.key}#${nsp}#`;
      if (op.rooms.length === 1) channel += op.rooms[0] + "#";
      const payload = toBuffer(this.parser.encode([UID, packet, opts]));
      return { publish: { channel, payload, sharded: false } };
    }
    let request;
    const opts = { rooms: op.rooms, except: op.except };
    if (op.kind === "join" || op.kind === "leave") {
      const type = op.kind === "join" ? RequestType.REMOTE_JOIN : RequestType.REMOTE_LEAVE;
      request = { type, opts, rooms: op.targetRooms };
    } else if (op.kind === "disconnect") {
      request = { type: RequestType.REMOTE_DISCONNECT, opts, close: op.close };
    } else if (op.kind === "serverSideEmit") {
      request = { uid: UID, type: RequestType.SERVER_SIDE_EMIT, data: op.data };
    } else {
      throw new Error(`unknown emitter operation ${op.kind}`);
    }
    const channel = `${this.key}-request#${nsp}#`;
    return { publish: { channel, payload: Buffer.from(JSON.stringify(request)), sharded: false } };
  }
}

/** createShardedAdapter (cluster-adapter messages over SPUBLISH). */
class ShardedTarget {
  constructor(opts) {
    this.prefix = opts.channelPrefix;
    this.subscriptionMode = opts.subscriptionMode;
  }

  /** sharded-adapter computeChannel (section 4.3); an emitter never asks for acks. */
  channel(nsp, message) {
    const base = `${this.prefix}#${nsp}#`;
    if (message.type !== MessageType.BROADCAST || message.data.opts.rooms.length !== 1) {
      return base;
    }
    const room = message.data.opts.rooms[0];
    const dynamic =
      (this.subscriptionMode === "dynamic" && !looksLikeASocketId(room)) ||
      this.subscriptionMode === "dynamic-private";
    return dynamic ? base + room + "#" : base;
  }

  write(nsp, op) {
    const { type, data } = clusterMessage(op);
    const message = { type, data, uid: UID, nsp };
    const payload =
      MAY_CONTAIN_BINARY.has(type) && hasBinary(data)
        ? notepack.encode(message)
        : Buffer.from(JSON.stringify(message));
    return { publish: { channel: this.channel(nsp, message), payload, sharded: true } };
  }
}

/** @socket.io/redis-streams-adapter 0.3 (XADD; SERVER_SIDE_EMIT over pub/sub). */
class StreamsTarget {
  constructor(opts) {
    this.streamName = opts.streamName;
    this.streamCount = opts.streamCount;
    this.maxLen = opts.maxLen;
    this.prefix = opts.channelPrefix;
    this.useShardedPubSub = opts.useShardedPubSub === true;
    this.onlyPlaintext = opts.onlyPlaintext === true;
  }

  write(nsp, op) {
    const { type, data } = clusterMessage(op);
    if (type === MessageType.SERVER_SIDE_EMIT) {
      // ephemeral (isEphemeral): always @msgpack/msgpack on the public channel
      const payload = msgpackEncode({ type, data, uid: UID, nsp });
      const channel = `${this.prefix}#${nsp}#`;
      return { publish: { channel, payload, sharded: this.useShardedPubSub } };
    }
    const encoded =
      !this.onlyPlaintext && MAY_CONTAIN_BINARY.has(type) && hasBinary(data)
        ? msgpackEncode(data).toString("base64")
        : JSON.stringify(data);
    const fields = ["uid", UID, "nsp", nsp, "type", String(type), "data", encoded];
    const stream = streamNameFor(nsp, this.streamName, this.streamCount);
    return { xadd: { stream, maxLen: this.maxLen, fields } };
  }
}

function createTarget(opts) {
  switch (opts.adapter) {
    case "sharded":
      return new ShardedTarget(opts);
    case "streams":
      return new StreamsTarget(opts);
    default:
      return new ClassicTarget(opts);
  }
}

module.exports = {
  UID,
  createTarget,
  ClassicTarget,
  ShardedTarget,
  StreamsTarget,
  hasBinary,
  hashCode,
  streamNameFor,
  officialOnlyStreamFor,
};
