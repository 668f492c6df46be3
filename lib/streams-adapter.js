"use strict";
// Drop-in for @socket.io/redis-streams-adapter 0.3 `createAdapter(redisClient, opts)`
// (PROTOCOL.md section 5). As the official one, the adapter is socket.io-adapter's
// ClusterAdapter; the Rust core reads the streams (one dedicated connection per stream), queues
// XADDs in order and retries them while Redis is away, and carries the pub/sub side.
const { ClusterAdapter, MessageType } = require("socket.io-adapter");
const msgpack = require("@msgpack/msgpack");
const native = require("../binding");
const { debug } = require("./native-node");
const { DeliveryKind, forEachFrame } = require("./frames");
const { nativeConnectionJson } = require("./connection-options");
const { checkReliabilityOptions } = require("./options");
const { hasBinary, streamNameFor } = require("./emitter-wire");

/** Frame kind of a batch of stream entries (src/bindings/streams.rs). */
const STREAM_ENTRIES = 6;
/** Entries per XRANGE page when restoring a session: never an unbounded read. */
const RESTORE_PAGE = 1000;
const RESTORE_MAX_PAGES = 100;

const DEFAULTS = Object.freeze({
  streamName: "socket.io",
  streamCount: 1,
  channelPrefix: "socket.io",
  useShardedPubSub: false,
  maxLen: 10000,
  readCount: 100,
  blockTimeInMs: 5000,
  sessionKeyPrefix: "sio:session:",
  heartbeatInterval: 5000,
  heartbeatTimeout: 10000,
  onlyPlaintext: false,
});

const MAY_CONTAIN_BINARY = new Set([
  MessageType.BROADCAST,
  MessageType.FETCH_SOCKETS_RESPONSE,
  MessageType.SERVER_SIDE_EMIT,
  MessageType.SERVER_SIDE_EMIT_RESPONSE,
  MessageType.BROADCAST_ACK,
]);

function toBuffer(bytes) {
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}

/** Entries as encoded by the Rust core: u32 count, then (u32 length, bytes) strings. */
function decodeEntries(buf) {
  const entries = [];
  let at = 0;
  const next = () => {
    const len = buf.readUInt32LE(at);
    const s = buf.toString("utf8", at + 4, at + 4 + len);
    at += 4 + len;
    return s;
  };
  while (at + 4 <= buf.length) {
    const count = buf.readUInt32LE(at);
    at += 4;
    const id = next();
    const message = {};
    for (let i = 1; i + 1 < count; i += 2) {
      const key = next();
      message[key] = next();
    }
    entries.push({ id, message });
  }
  return entries;
}

function isEphemeral(message) {
  const isBroadcastWithAck =
    message.type === MessageType.BROADCAST && message.data.requestId !== undefined;
  return (
    isBroadcastWithAck ||
    message.type === MessageType.SERVER_SIDE_EMIT ||
    message.type === MessageType.FETCH_SOCKETS
  );
}

/** As the official shouldIncludePacket (section 5.7). */
function shouldIncludePacket(sessionRooms, opts) {
  const included =
    opts.rooms.length === 0 || sessionRooms.some((room) => opts.rooms.indexOf(room) !== -1);
  const notExcluded = sessionRooms.every((room) => opts.except.indexOf(room) === -1);
  return included && notExcluded;
}

/** `a-b` → `a-(b+1)`: an exclusive XRANGE start that works before Redis 6.2. */
function nextOffset(offset) {
  const [timestamp, sequence] = offset.split("-");
  return timestamp + "-" + (parseInt(sequence, 10) + 1);
}

/** One createAdapter() call: the native driver and the adapters of its namespaces. */
class StreamsNode {
  constructor(redisClient, options) {
    this.adapters = new Map(); // namespace name -> adapter
    this.closed = false;
    // Messages skipped because they could not be decoded (decoding happens in JS here).
    this.decodeErrors = 0;
    const streams =
      options.streamCount === 1
        ? [options.streamName]
        : Array.from({ length: options.streamCount }, (_, i) => `${options.streamName}-${i}`);
    this.driver = new native.StreamsDriver(
      {
        connection: nativeConnectionJson(redisClient, options),
        streams,
        readCount: options.readCount,
        blockTimeInMs: options.blockTimeInMs,
      },
      (batch) => this.onDeliver(batch),
    );
  }

  onDeliver(batch) {
    forEachFrame(batch, (kind, _ns, payload) => {
      try {
        if (kind === STREAM_ENTRIES) {
          for (const { id, message } of decodeEntries(payload)) {
            this.adapters.get(message.nsp)?.onRawMessage(message, id);
          }
        } else if (kind === DeliveryKind.REQUEST) {
          const message = msgpack.decode(payload);
          this.adapters.get(message && message.nsp)?.onMessage(message);
        } else if (kind === DeliveryKind.LOG) {
          debug("%s", payload.toString());
        } else if (kind === DeliveryKind.CONNECTION) {
          debug("redis %s", payload.toString());
        }
      } catch (e) {
        // One undecodable message must not break the others of the batch.
        this.decodeErrors++;
        debug("invalid format: %s", e && e.message);
      }
    });
  }

  unregister(adapter) {
    if (this.adapters.get(adapter.nsp.name) === adapter) this.adapters.delete(adapter.nsp.name);
    if (this.adapters.size === 0 && !this.closed) {
      this.closed = true;
      this.driver.shutdown();
    }
  }
}

class RedisStreamsAdapter extends ClusterAdapter {
  constructor(nsp, node, opts) {
    super(nsp);
    this.node = node;
    this.driver = node.driver;
    this.opts = opts;
    // each namespace is routed to one stream, which keeps its messages in order
    this.streamName = streamNameFor(nsp.name, opts.streamName, opts.streamCount);
    this.publicChannel = `${opts.channelPrefix}#${nsp.name}#`;
    const privateChannel = `${opts.channelPrefix}#${nsp.name}#${this.uid}#`;
    this.ready = this.driver.subscribe([this.publicChannel, privateChannel]).catch((e) => {
      // the subscriber keeps the subscription and applies it once Redis is reachable
      debug("subscription for %s deferred: %s", nsp.name, e.message);
    });
  }

  init() {
    return this.ready;
  }

  doPublish(message) {
    if (isEphemeral(message)) {
      // ephemeral messages go through pub/sub, always @msgpack/msgpack
      const payload = toBuffer(msgpack.encode(message));
      if (!this.driver.publish(this.publicChannel, payload, this.opts.useShardedPubSub)) {
        debug("publish refused: outgoing buffer full or adapter closed");
      }
      return Promise.resolve("");
    }
    return this.driver.xadd(this.streamName, this.opts.maxLen, this.encode(message));
  }

  doPublishResponse(requesterUid, response) {
    const channel = `${this.opts.channelPrefix}#${this.nsp.name}#${requesterUid}#`;
    const payload = toBuffer(msgpack.encode(response));
    if (!this.driver.publish(channel, payload, this.opts.useShardedPubSub)) {
      return Promise.reject(new Error("publish refused: outgoing buffer full or adapter closed"));
    }
    return Promise.resolve();
  }

  /** Stream entry fields, in the official order: uid, nsp, type, data (section 5.5). */
  encode(message) {
    const fields = ["uid", message.uid, "nsp", message.nsp, "type", message.type.toString()];
    if (message.data) {
      const binary =
        !this.opts.onlyPlaintext && MAY_CONTAIN_BINARY.has(message.type) && hasBinary(message.data);
      fields.push(
        "data",
        binary
          ? toBuffer(msgpack.encode(message.data)).toString("base64")
          : JSON.stringify(message.data),
      );
    }
    return fields;
  }

  onRawMessage(rawMessage, offset) {
    let message;
    try {
      message = RedisStreamsAdapter.decode(rawMessage);
    } catch (e) {
      this.node.decodeErrors++;
      return debug("invalid format: %s", e.message);
    }
    this.onMessage(message, offset);
  }

  static decode(rawMessage) {
    const message = {
      uid: rawMessage.uid,
      nsp: rawMessage.nsp,
      type: parseInt(rawMessage.type, 10),
    };
    if (rawMessage.data) {
      message.data = rawMessage.data.startsWith("{")
        ? JSON.parse(rawMessage.data)
        : msgpack.decode(Buffer.from(rawMessage.data, "base64"));
    }
    return message;
  }

  async serverCount() {
    return Number(await this.driver.countListeners(this.publicChannel, this.opts.useShardedPubSub));
  }

  /** Counters of the shared native node (stream writes, retries, reader errors...). */
  metrics() {
    return { ...JSON.parse(this.driver.metrics()), decodeErrors: this.node.decodeErrors };
  }

  persistSession(session) {
    const key = this.opts.sessionKeyPrefix + session.pid;
    const encoded = toBuffer(msgpack.encode(session)).toString("base64");
    const ttl = this.nsp.server.opts.connectionStateRecovery.maxDisconnectionDuration;
    this.driver.setPx(key, encoded, ttl);
  }

  async restoreSession(pid, offset) {
    if (!/^[0-9]+-[0-9]+$/.test(offset)) {
      return Promise.reject("invalid offset");
    }
    const key = this.opts.sessionKeyPrefix + pid;
    const [rawSession, offsetEntry] = await Promise.all([
      this.driver.getDel(key),
      this.driver.xrange(this.streamName, offset, offset, 1),
    ]);
    if (!rawSession || decodeEntries(offsetEntry).length === 0) {
      return Promise.reject("session or offset not found");
    }
    const session = msgpack.decode(Buffer.from(rawSession, "base64"));
    session.missedPackets = [];
    for (let page = 0; page < RESTORE_MAX_PAGES; page++) {
      const entries = decodeEntries(
        await this.driver.xrange(this.streamName, nextOffset(offset), "+", RESTORE_PAGE),
      );
      for (const { id, message: raw } of entries) {
        if (raw.nsp === this.nsp.name && raw.type === "3") {
          const { packet, opts } = RedisStreamsAdapter.decode(raw).data;
          if (shouldIncludePacket(session.rooms, opts)) {
            packet.data.push(id);
            session.missedPackets.push(packet.data);
          }
        }
        offset = id;
      }
      if (entries.length < RESTORE_PAGE) break;
    }
    return session;
  }

  close() {
    this.node.unregister(this);
  }
}

/**
 * Returns a function that creates a RedisStreamsAdapter per namespace, as
 * @socket.io/redis-streams-adapter 0.3 `createAdapter`.
 * @param redisClient node-redis / ioredis client or cluster, URL, or options object (only its
 *   settings are read: the Rust core opens its own connections)
 * @param opts RedisStreamsAdapterOptions (section 5.1)
 */
function createStreamsAdapter(redisClient, opts) {
  const options = Object.assign({}, DEFAULTS, opts);
  checkReliabilityOptions(options);
  if (options.useShardedPubSub) {
    // The native subscriber has no SSUBSCRIBE yet: refusing beats silently missing messages.
    throw new Error("socket.io-redis-native: useShardedPubSub is not supported yet (streams)");
  }
  // As the official adapter, the readers start now, before any namespace exists.
  let node = new StreamsNode(redisClient, options);
  return function (nsp) {
    if (node.closed) node = new StreamsNode(redisClient, options);
    const adapter = new RedisStreamsAdapter(nsp, node, options);
    node.adapters.set(nsp.name, adapter);
    return adapter;
  };
}

module.exports = {
  createStreamsAdapter,
  createAdapter: createStreamsAdapter,
  RedisStreamsAdapter,
  decodeEntries,
};
