"use strict";
// Drop-in for @socket.io/redis-streams-adapter 0.3 `createAdapter(redisClient, opts)`
// (PROTOCOL.md section 5). As the official one, the adapter is socket.io-adapter's
// ClusterAdapter; the Rust core reads the streams (one dedicated connection per stream), queues
// XADDs in order and retries them while Redis is away, and carries the pub/sub side.
const { Adapter, ClusterAdapter, MessageType } = require("socket.io-adapter");
const { msgpackAnswerParts, isFetchSocketsRequest, requestedSockets } = require("./socket-details");
const msgpack = require("@msgpack/msgpack");
const { debug } = require("./native-node");
const { coalesceWritesOnce } = require("./write-coalescing");
const { xaddHead } = require("./xadd-frames");
const { withCountedRequests, encodeOptions } = require("./counted-requests");
const {
  usesDefaultEncoder,
  applyEventText,
  applyEventBinary,
  broadcastText,
  wirePrefix,
  plainClusterBroadcast,
  clusterBroadcastData,
  binaryClusterBroadcast,
  binaryEventText,
  broadcastBinary,
} = require("./event-text");
const { checkReliabilityOptions, check, isBoolean } = require("./options");
const { StreamsNode, decodeEntries } = require("./streams-node");
const { hasBinary, streamNameFor, officialOnlyStreamFor } = require("./emitter-wire");

/** What broadcast() returns once the local clients have the packet (as ClusterAdapter's). */
const DELIVERED = Promise.resolve();
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

/** Orders stream entry ids ("ms-seq") numerically. */
function compareEntryIds(a, b) {
  const [ams, aseq] = a.split("-").map(BigInt);
  const [bms, bseq] = b.split("-").map(BigInt);
  if (ams !== bms) return ams < bms ? -1 : 1;
  return aseq === bseq ? 0 : aseq < bseq ? -1 : 1;
}

/** `[a, b]` + `c` → `[a, b, c]`, on the JSON texts (packet.data.push(offset)). */
function appendArgument(arrayJson, itemJson) {
  const head = arrayJson.slice(0, -1);
  return arrayJson === "[]" ? `[${itemJson}]` : `${head},${itemJson}]`;
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

/** One @msgpack/msgpack Encoder for msgpackBase64 (`msgpack.encode` makes one per call). */
const sharedEncoder = new msgpack.Encoder();
let sharedEncoderBusy = false;

/**
 * base64 of @msgpack/msgpack's encoding of `value` (an entry's binary `data`, as upstream's
 * `msgpack.encode`), with the kept Encoder: its bytes are turned into base64 before anything
 * else can encode. A getter that broadcasts from inside the encoding gets an Encoder of its own.
 */
function msgpackBase64(value) {
  if (sharedEncoderBusy) return toBuffer(msgpack.encode(value)).toString("base64");
  sharedEncoderBusy = true;
  try {
    const bytes = sharedEncoder.encodeSharedRef(value);
    return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString("base64");
  } finally {
    sharedEncoderBusy = false;
  }
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

class RedisStreamsAdapter extends ClusterAdapter {
  constructor(nsp, node, opts) {
    super(nsp);
    this.node = node;
    this.driver = node.driver;
    this.opts = opts;
    // each namespace is routed to one stream, which keeps its messages in order
    this.streamName = streamNameFor(nsp.name, opts.streamName, opts.streamCount);
    // a namespace with a negative hash: official nodes write it to a stream of their own
    // (emitter-wire.js explains the rule); read it too, so their messages reach this node
    this.officialOnlyStream = officialOnlyStreamFor(nsp.name, opts.streamName, opts.streamCount);
    if (this.officialOnlyStream) this.driver.readStream(this.officialOnlyStream);
    // Own entries are dropped in Rust (ClusterAdapter#onMessage would drop them by uid), and
    // with the default encoder plain broadcasts arrive as the text clients receive.
    this.driver.addOwnUid(this.uid);
    this.wireText = usesDefaultEncoder(nsp.server);
    this.recovery = Boolean(nsp.server.opts && nsp.server.opts.connectionStateRecovery);
    if (this.wireText) this.driver.setWireText(nsp.name, true, this.recovery);
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

  /**
   * ClusterAdapter#broadcast, with a fast path for a plain-JSON EVENT (the usual `io.emit`):
   * its data is serialized once, into both the entry's `data` field (what JSON.stringify of
   * the official message data gives) and the text local clients receive.
   *
   * With connection state recovery, local delivery waits for the XADD, whose entry id is
   * appended to the data (not for volatile broadcasts), and still happens if the XADD fails,
   * as upstream. Without it the local clients get every broadcast at once, as with the classic
   * adapter: upstream waits for an id it does not use, so its local delivery took a Redis
   * round trip, or never came while Redis was unreachable. Every path of one mode delivers
   * the same way, so a sender's own clients get its broadcasts in emit order.
   */
  broadcast(packet, opts) {
    if (this.recovery) return this.broadcastAfterXadd(packet, opts);
    if (opts.flags && opts.flags.local) return super.broadcast(packet, opts);
    coalesceWritesOnce(this, this.opts.coalesceWebSocketWrites);
    const plain = plainClusterBroadcast(this, packet, opts);
    if (plain) {
      const { json, encodedOpts } = plain;
      this.node.queueXaddDetached({
        head: this.broadcastEntryHead(),
        value: clusterBroadcastData(json, encodedOpts),
      });
      broadcastText(this, wirePrefix(this.nsp.name) + json, opts);
      return DELIVERED;
    }
    // ClusterAdapter#broadcast without the wait: the entry is encoded first (the local
    // delivery's encoder may rewrite a packet with binary values), then delivered locally;
    // an EVENT with Buffers as socket.io-parser's BINARY_EVENT frames, made once for all local
    // sockets (lib/event-text.js), as the other adapters do.
    const binary = binaryClusterBroadcast(this, packet, opts);
    const message = {
      type: MessageType.BROADCAST,
      data: { packet, opts: encodeOptions(opts) },
      uid: this.uid,
      nsp: this.nsp.name,
    };
    this.node.queueXaddDetached({
      stream: this.streamName,
      maxLen: this.opts.maxLen,
      fields: this.encode(message),
    });
    if (binary) {
      const { json, attachments } = binary;
      packet.nsp = this.nsp.name; // as Adapter#broadcast
      const text = binaryEventText(this.nsp.name, attachments.length, json);
      broadcastBinary(this, packet, text, attachments, opts);
    } else {
      Adapter.prototype.broadcast.call(this, packet, opts);
    }
    return DELIVERED;
  }

  /** broadcast() with connection state recovery: local delivery after the XADD, as upstream. */
  broadcastAfterXadd(packet, opts) {
    const plain = plainClusterBroadcast(this, packet, opts);
    if (!plain) return super.broadcast(packet, opts);
    coalesceWritesOnce(this, this.opts.coalesceWebSocketWrites);
    const { json, encodedOpts } = plain;
    const prefix = wirePrefix(this.nsp.name);
    const withOffset = (opts.flags || {}).volatile === undefined;
    const entry = {
      head: this.broadcastEntryHead(),
      value: clusterBroadcastData(json, encodedOpts),
    };
    return this.node.queueXaddEntry(entry).then(
      (offset) => {
        const args = withOffset ? appendArgument(json, JSON.stringify(offset)) : json;
        broadcastText(this, prefix + args, opts);
      },
      (e) => {
        debug("error while broadcasting message: %s", e && e.message);
        broadcastText(this, prefix + json, opts);
      },
    );
  }

  /** The frame start of a BROADCAST entry: the official field order, all but data's value. */
  broadcastEntryHead() {
    this.broadcastHead ||= xaddHead(this.streamName, this.opts.maxLen, [
      "uid",
      this.uid,
      "nsp",
      this.nsp.name,
      "type",
      "3",
      "data",
    ]);
    return this.broadcastHead;
  }

  doPublish(message) {
    coalesceWritesOnce(this, this.opts.coalesceWebSocketWrites);
    if (isEphemeral(message)) {
      // ephemeral messages go through pub/sub, always @msgpack/msgpack
      const payload = toBuffer(msgpack.encode(message));
      if (!this.driver.publish(this.publicChannel, payload)) {
        debug("publish refused: outgoing buffer full or adapter closed");
      }
      return Promise.resolve("");
    }
    return this.node.queueXadd(this.streamName, this.opts.maxLen, this.encode(message));
  }

  /** Publishes a request on the public channel; resolves with the server count taken just
   * before (lib/counted-requests.js). Requests are always @msgpack/msgpack, as doPublish's. */
  async countAndPublish(message) {
    message.uid = this.uid;
    message.nsp = this.nsp.name;
    const payload = toBuffer(msgpack.encode(message));
    return Number(await this.driver.countAndPublish(this.publicChannel, payload));
  }

  /**
   * As ClusterAdapter#onMessage, but a fetchSockets request is answered with the handshakes'
   * encodings kept between answers (lib/socket-details.js).
   */
  onMessage(message, offset) {
    if (isFetchSocketsRequest(this, message)) {
      this.answerFetchSockets(message).catch((e) =>
        debug("fetchSockets request failed: %s", e && e.message),
      );
      return;
    }
    return super.onMessage(message, offset);
  }

  /** The official FETCH_SOCKETS_RESPONSE `{ type, data: { requestId, sockets }, uid, nsp }`. */
  async answerFetchSockets(message) {
    const sockets = await requestedSockets(this, message);
    const { requestId } = message.data;
    const { encoded, details, handshakes, lengths } = msgpackAnswerParts(
      sockets,
      (value) => toBuffer(msgpack.encode(value)),
      (details) => ({
        type: MessageType.FETCH_SOCKETS_RESPONSE,
        data: { requestId, sockets: details },
        uid: this.uid,
        nsp: this.nsp.name,
      }),
    );
    const channel = `${this.opts.channelPrefix}#${this.nsp.name}#${message.uid}#`;
    if (!this.driver.publishFetchAnswer(channel, encoded, details, handshakes, lengths)) {
      debug("publish refused: outgoing buffer full or adapter closed");
    }
  }

  doPublishResponse(requesterUid, response) {
    const channel = `${this.opts.channelPrefix}#${this.nsp.name}#${requesterUid}#`;
    const payload = toBuffer(msgpack.encode(response));
    if (!this.driver.publish(channel, payload)) {
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
      fields.push("data", binary ? msgpackBase64(message.data) : JSON.stringify(message.data));
    }
    return fields;
  }

  /** A broadcast entry already encoded by the Rust core (see lib/event-text.js). */
  onEventText(payload, start, end) {
    coalesceWritesOnce(this, this.opts.coalesceWebSocketWrites);
    applyEventText(this, payload, start, end);
  }

  /** A broadcast entry with binary values, encoded by the Rust core as socket.io would. */
  onEventBinary(payload) {
    coalesceWritesOnce(this, this.opts.coalesceWebSocketWrites);
    applyEventBinary(this, payload);
  }

  onRawMessage(rawMessage, offset) {
    coalesceWritesOnce(this, this.opts.coalesceWebSocketWrites);
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
    return Number(await this.driver.countListeners(this.publicChannel));
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
    // the packets of this namespace are in its stream and, with a negative hash, also in the
    // stream official nodes write it to (the client's offset may come from either)
    const streams = [this.streamName];
    if (this.officialOnlyStream) streams.push(this.officialOnlyStream);
    const [rawSession, ...offsetEntries] = await Promise.all([
      this.driver.getDel(key),
      ...streams.map((stream) => this.driver.xrange(stream, offset, offset, 1)),
    ]);
    if (!rawSession || offsetEntries.every((e) => decodeEntries(e).length === 0)) {
      return Promise.reject("session or offset not found");
    }
    const session = msgpack.decode(Buffer.from(rawSession, "base64"));
    const missed = [];
    for (const stream of streams) {
      missed.push(...(await this.missedPackets(stream, offset, session.rooms)));
    }
    if (streams.length > 1) missed.sort((a, b) => compareEntryIds(a.id, b.id));
    session.missedPackets = missed.map((m) => m.data);
    return session;
  }

  /** This namespace's broadcasts after `offset` in `stream` for a session in `rooms`. */
  async missedPackets(stream, offset, rooms) {
    const missed = [];
    for (let page = 0; page < RESTORE_MAX_PAGES; page++) {
      const entries = decodeEntries(
        await this.driver.xrange(stream, nextOffset(offset), "+", RESTORE_PAGE),
      );
      for (const { id, message: raw } of entries) {
        if (raw.nsp === this.nsp.name && raw.type === "3") {
          const { packet, opts } = RedisStreamsAdapter.decode(raw).data;
          if (shouldIncludePacket(rooms, opts)) {
            packet.data.push(id);
            missed.push({ id, data: packet.data });
          }
        }
        offset = id;
      }
      if (entries.length < RESTORE_PAGE) break;
    }
    return missed;
  }

  close() {
    this.node.unregister(this);
  }
}

withCountedRequests(RedisStreamsAdapter);

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
  check(options, "lazyRemoteHandshakes", isBoolean, "a boolean");
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
