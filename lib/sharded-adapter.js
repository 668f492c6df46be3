"use strict";
// Drop-in for @socket.io/redis-adapter 8.3 `createShardedAdapter` (PROTOCOL.md sections 3 and 4).
// The cluster-adapter protocol (request correlation, answers, local work) stays in
// socket.io-adapter's JS `ClusterAdapter`; SPUBLISH / SSUBSCRIBE / SHARDNUMSUB, channel routing
// and own-message filtering happen in the Rust core, which follows shard channels across Redis
// Cluster failovers and resharding.
const { ClusterAdapter, MessageType } = require("socket.io-adapter");
const { withCountedRequests } = require("./counted-requests");
const notepack = require("notepack.io");
const native = require("../binding");
const { NativeNode, debug } = require("./native-node");
const { connectionOptionsFrom, nativeConnectionJson } = require("./connection-options");
const {
  InvalidOptionError,
  check,
  checkReliabilityOptions,
  isString,
  isBoolean,
} = require("./options");
const { coalesceWritesOnce } = require("./write-coalescing");
const { readFetchAnswer, SPLIT_MARK, CLUSTER_SOCKETS } = require("./fetch-answers");
const {
  socketDetailsParts,
  answerHead,
  isFetchSocketsRequest,
  requestedSockets,
} = require("./socket-details");
const {
  usesDefaultEncoder,
  applyEventText,
  applyEventBinary,
  broadcastText,
  wirePrefix,
  plainClusterBroadcast,
  binaryClusterBroadcast,
  broadcastBinary,
  binaryEventText,
  precomputesFrames,
  BROADCAST_DATA_HEAD,
} = require("./event-text");

const SUBSCRIPTION_MODES = ["static", "dynamic", "dynamic-private"];

/** The start of an EVENT's BROADCAST message JSON, up to the data's JSON (type 3 = BROADCAST). */
const MESSAGE_HEAD = `{"type":${MessageType.BROADCAST},"data":${BROADCAST_DATA_HEAD}`;

// Message types whose data may carry binary: only these are ever sent as MessagePack (4.4).
const MAY_CONTAIN_BINARY = new Set([
  MessageType.BROADCAST,
  MessageType.BROADCAST_ACK,
  MessageType.FETCH_SOCKETS_RESPONSE,
  MessageType.SERVER_SIDE_EMIT,
  MessageType.SERVER_SIDE_EMIT_RESPONSE,
]);

function looksLikeASocketId(room) {
  return typeof room === "string" && room.length === 20;
}

/** As lib/util.ts `hasBinary` of the official adapter, so the JSON/MessagePack choice matches. */
function hasBinary(obj, toJSON) {
  if (!obj || typeof obj !== "object") return false;
  if (obj instanceof ArrayBuffer || ArrayBuffer.isView(obj)) return true;
  if (Array.isArray(obj)) {
    for (let i = 0, l = obj.length; i < l; i++) {
      if (hasBinary(obj[i])) return true;
    }
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

/**
 * The room whose dynamic channel a broadcast without ack to `rooms` goes to, or null for the
 * main channel: exactly the official `computeChannel` rule (4.3).
 */
function roomChannelOf(rooms, mode) {
  if (rooms.length !== 1) return null;
  if ((mode === "dynamic" && !looksLikeASocketId(rooms[0])) || mode === "dynamic-private") {
    return String(rooms[0]);
  }
  return null;
}

/** notepack iff the type may carry binary and does; JSON otherwise (key order as built). */
function encode(message) {
  if (MAY_CONTAIN_BINARY.has(message.type) && hasBinary(message.data)) {
    return notepack.encode(message);
  }
  return Buffer.from(JSON.stringify(message));
}

/** The official `onRawMessage` sniffing: `{` means JSON, anything else MessagePack. */
function decode(payload) {
  return payload[0] === 0x7b ? JSON.parse(payload.toString()) : notepack.decode(payload);
}

function validateShardedOptions(opts) {
  if (typeof opts !== "object" || opts === null) {
    throw new InvalidOptionError(
      `options must be an object, got ${opts === null ? "null" : typeof opts}`,
    );
  }
  check(opts, "channelPrefix", isString, "a string");
  check(
    opts,
    "subscriptionMode",
    (v) => SUBSCRIPTION_MODES.includes(v),
    `one of ${SUBSCRIPTION_MODES.join(", ")}`,
  );
  check(opts, "coalesceWebSocketWrites", isBoolean, "a boolean");
  check(opts, "lazyRemoteHandshakes", isBoolean, "a boolean");
  checkReliabilityOptions(opts);
  return opts;
}

class ShardedRedisAdapter extends ClusterAdapter {
  /**
   * @param nsp the namespace
   * @param pubClient what the user passed as publishing client (only its settings are read)
   * @param subClient what the user passed as subscribing client (not used: the core subscribes)
   * @param opts ShardedRedisAdapterOptions
   * @param node the shared native node of this createShardedAdapter() call (internal)
   */
  constructor(nsp, pubClient, subClient, opts = {}, node) {
    super(nsp);
    this.pubClient = pubClient;
    this.subClient = subClient;
    this.opts = Object.assign({ channelPrefix: "socket.io", subscriptionMode: "dynamic" }, opts);
    this.channel = `${this.opts.channelPrefix}#${nsp.name}#`;
    this.responseChannel = `${this.channel}${this.uid}#`;
    this.node = node || createNode(pubClient, this.opts);
    this.lazyRemoteHandshakes = this.opts.lazyRemoteHandshakes !== false;
    this.driver = this.node.driver;
    // Subscribes P#N# then P#N#<uid>#, as the official constructor.
    this.ns = this.node.register(this, nsp.name, this.uid);
    // Dynamic channels held, by channel name (String(room)): a number room and the string of
    // the same digits share one channel, so they share one subscription.
    this.roomChannels = new Map();
    if (this.opts.subscriptionMode !== "static") {
      this.on("create-room", (room) => {
        if (this.shouldSubscribe(room)) this.holdRoomChannel(room);
      });
      this.on("delete-room", (room) => this.releaseRoomChannel(room));
    }
    // With the default encoder, Rust hands JSON broadcasts over as the text clients receive.
    // Not with connection state recovery: ClusterAdapter then appends an offset to the data.
    this.wireText =
      usesDefaultEncoder(nsp.server) &&
      !(nsp.server.opts && nsp.server.opts.connectionStateRecovery);
    if (this.wireText) this.driver.setWireText(this.ns, true);
    this.nspJson = JSON.stringify(nsp.name);
    this.ready = this.driver.whenSubscribed().catch((e) => {
      debug("subscription for %s deferred: %s", nsp.name, e.message);
    });
  }

  /** Resolves once the namespace's channels are subscribed (or recorded while Redis is away). */
  init() {
    return this.ready;
  }

  onConnectionEvent(text) {
    this.emit("redis-connection", text);
  }

  /**
   * Which dynamic room channels this node listens on. Official nodes subscribe public rooms in
   * "dynamic" mode and every room in "dynamic-private" mode. We also subscribe, in "dynamic"
   * mode, the room of a local socket whose id is not 20 characters long (custom `generateId`):
   * every sender, official or ours, publishes a broadcast to such a room on its dynamic channel
   * (computeChannel below), where an official node never listens, so its sockets would miss it.
   */
  shouldSubscribe(room) {
    if (this.opts.subscriptionMode === "dynamic-private") return true;
    return !this.sids.has(room) || !looksLikeASocketId(room);
  }

  holdRoomChannel(room) {
    const name = String(room);
    const count = this.roomChannels.get(name) || 0;
    this.roomChannels.set(name, count + 1);
    if (count === 0) this.driver.addRoom(this.ns, name);
  }

  // Decided by what was subscribed at creation, not by the room's nature now: the socket of a
  // private room may already be gone from `sids` when the room is deleted.
  releaseRoomChannel(room) {
    const name = String(room);
    const count = this.roomChannels.get(name);
    if (!count) return;
    if (count > 1) {
      this.roomChannels.set(name, count - 1);
      return;
    }
    this.roomChannels.delete(name);
    this.driver.removeRoom(this.ns, name);
  }

  /**
   * The room whose dynamic channel a message goes to, or null for the main channel: exactly the
   * official `computeChannel` rule (4.3), so official nodes receive what we send. A broadcast
   * with ack always uses the main channel, since serverCount() counts every server.
   */
  computeRoom(message) {
    if (message.type !== MessageType.BROADCAST || message.data.requestId !== undefined) return null;
    return roomChannelOf(message.data.opts.rooms, this.opts.subscriptionMode);
  }

  computeChannel(message) {
    const room = this.computeRoom(message);
    return room === null ? this.channel : `${this.channel}${room}#`;
  }

  /**
   * ClusterAdapter#broadcast, with a fast path for a plain-JSON EVENT (the usual `io.emit`):
   * its data is serialized once, the message JSON is assembled around that text (what
   * JSON.stringify of the official message object gives: type, data {packet, opts}, uid, nsp)
   * and the same text is what local clients receive. Anything else takes the upstream path.
   */
  broadcast(packet, opts) {
    const plain = plainClusterBroadcast(this, packet, opts);
    if (!plain) {
      const binary = binaryClusterBroadcast(this, packet, opts);
      return binary ? this.broadcastBinary(packet, opts, binary) : super.broadcast(packet, opts);
    }
    coalesceWritesOnce(this, this.opts.coalesceWebSocketWrites);
    const { json, rooms, encodedOpts } = plain;
    // The message JSON around the data's: `{"type":3,"data":{"packet":{"type":2,"data":` +
    // json + `},"opts":...},"uid":...,"nsp":...}`.
    const room = roomChannelOf(rooms, this.opts.subscriptionMode);
    // Queued with the others of this turn (lib/native-node.js); a message too large for the
    // queue goes by its own call. The core writes the message around the event's JSON from
    // the options' JSON (see tailInCore).
    const roomJson = room === null ? null : JSON.stringify(room);
    const queued = this.queueMessage(roomJson, json, encodedOpts);
    // Queued: the data's JSON is in the node's queue as UTF-8, ready for the clients' frame.
    const frame =
      queued && precomputesFrames ? this.node.lastQueuedJsonFrame(this.frameHead()) : undefined;
    if (
      !queued &&
      !this.node
        .inOrder()
        .publishTextDeferred(
          this.ns,
          room,
          MESSAGE_HEAD + json + this.messageAfterData(encodedOpts),
        )
    ) {
      debug("broadcast refused: outgoing buffer full or adapter closed");
    }
    this.node.scheduleFlush();
    // Upstream delivers locally after awaiting the publish: one microtask later, kept so that
    // a socket.emit() right after io.emit() still reaches its client first.
    const text = wirePrefix(this.nsp.name) + json;
    queueMicrotask(() => broadcastText(this, text, opts, frame));
    return Promise.resolve();
  }

  /**
   * Queues the BROADCAST message of an EVENT whose data's JSON is `json` (with socket.io-parser's
   * placeholders for `attachments`, if any) with the others of this turn: the core writes the
   * message around it (see tailInCore), else the record holds the whole message. False when
   * too large for the queue (see NativeNode#queueBroadcastJson).
   */
  queueMessage(roomJson, json, encodedOpts, attachments) {
    if (this.tailInCore()) {
      return this.node.queueBroadcastJson(
        this.ns,
        roomJson,
        json,
        encodedOpts,
        "",
        "",
        attachments,
      );
    }
    const after = this.messageAfterData(encodedOpts);
    return this.node.queueBroadcastJson(
      this.ns,
      roomJson,
      json,
      null,
      MESSAGE_HEAD,
      after,
      attachments,
    );
  }

  /**
   * Whether queued broadcasts may leave their message's head and `uid`/`nsp` tail to the core
   * (src/protocol/sharded.rs broadcast_message_json), which writes the tail with serde_json:
   * the same text as JSON.stringify for names without `\u` escapes (a lone surrogate, which a
   * Rust string cannot hold, is the exception).
   */
  tailInCore() {
    this.tailInCoreChecked ??= !this.messageAfterData("").includes("\\u");
    return this.tailInCoreChecked;
  }

  /** `"4"` (Engine.IO's message) and what socket.io writes before an EVENT's JSON. */
  frameHead() {
    this.frameHeadBytes ||= Buffer.from(`4${wirePrefix(this.nsp.name)}`);
    return this.frameHeadBytes;
  }

  /**
   * What follows the event data's JSON in upstream's BROADCAST message JSON (key order: type,
   * data {packet, opts}, uid, nsp): `},"opts":...},"uid":...,"nsp":...}`; MESSAGE_HEAD precedes it.
   */
  messageAfterData(encodedOpts) {
    this.messageTail ||= `,"uid":${JSON.stringify(this.uid)},"nsp":${this.nspJson}}`;
    return `},"opts":${encodedOpts}}${this.messageTail}`;
  }

  /**
   * The fast path of broadcast() for an EVENT with Buffers (binaryClusterBroadcast): the Rust
   * core writes the MessagePack message with the Buffers as notepack would, and local clients
   * get socket.io-parser's BINARY_EVENT text and the Buffers, one microtask later as upstream.
   */
  broadcastBinary(packet, opts, { json, rooms, encodedOpts, attachments }) {
    coalesceWritesOnce(this, this.opts.coalesceWebSocketWrites);
    const room = roomChannelOf(rooms, this.opts.subscriptionMode);
    // Queued with the others of this turn, the Buffers beside them (lib/native-node.js).
    const roomJson = room === null ? null : JSON.stringify(room);
    const queued = this.queueMessage(roomJson, json, encodedOpts, attachments);
    if (!queued) {
      const after = this.messageAfterData(encodedOpts);
      const published = this.node
        .inOrder()
        .publishJsonAttachmentsDeferred(this.ns, room, MESSAGE_HEAD + json + after, attachments);
      if (published === -1) return super.broadcast(packet, opts);
      if (!published) debug("broadcast refused: outgoing buffer full or adapter closed");
    }
    this.node.scheduleFlush();
    const text = binaryEventText(this.nsp.name, attachments.length, json);
    queueMicrotask(() => {
      packet.nsp = this.nsp.name; // as upstream's Adapter#broadcast
      broadcastBinary(this, packet, text, attachments, opts);
    });
    return Promise.resolve();
  }

  doPublish(message) {
    coalesceWritesOnce(this, this.opts.coalesceWebSocketWrites);
    let payload;
    try {
      payload = encode(message);
    } catch (e) {
      return Promise.reject(e);
    }
    debug("publishing message of type %s to %s", message.type, this.computeChannel(message));
    // Broadcasts are queued and sent once per event-loop turn (one pipeline for a burst);
    // requests go at once, as they are awaited, and so do broadcasts with ack.
    const room = this.computeRoom(message);
    const deferred = message.type === MessageType.BROADCAST && message.data.requestId === undefined;
    const queued = deferred
      ? this.node.inOrder().publishDeferred(this.ns, room, payload)
      : this.node.inOrder().publish(this.ns, room, payload);
    if (deferred) this.node.scheduleFlush();
    if (!queued) {
      return Promise.reject(
        new Error("publish refused: the outgoing buffer is full or the adapter is closed"),
      );
    }
    // No offsets with sharded pub/sub (connection state recovery is unsupported, as upstream).
    return Promise.resolve("");
  }

  /** Publishes `message` on the main channel; resolves with the server count taken before. */
  async countAndPublish(message) {
    message.uid = this.uid;
    message.nsp = this.nsp.name;
    return Number(await this.node.inOrder().countAndPublish(this.ns, encode(message)));
  }

  doPublishResponse(requesterUid, response) {
    let payload;
    try {
      payload = encode(response);
    } catch (e) {
      return Promise.reject(e);
    }
    if (!this.node.inOrder().publishResponse(this.ns, String(requesterUid), payload)) {
      return Promise.reject(
        new Error("publish refused: the outgoing buffer is full or the adapter is closed"),
      );
    }
    return Promise.resolve();
  }

  /**
   * As ClusterAdapter#onMessage, but a fetchSockets request is answered with the handshakes'
   * JSON kept between answers (lib/socket-details.js) when the answer is JSON.
   */
  onMessage(message, offset) {
    if (isFetchSocketsRequest(this, message)) {
      this.answerFetchSockets(message).then(
        (answered) => answered || super.onMessage(message, offset),
        (e) => debug("fetchSockets request failed: %s", e && e.message),
      );
      return;
    }
    return super.onMessage(message, offset);
  }

  /**
   * The official FETCH_SOCKETS_RESPONSE `{ type, data: { requestId, sockets }, uid, nsp }`,
   * published; false (nothing sent) when a socket's details hold binary values: that answer
   * goes as MessagePack, the upstream way.
   */
  async answerFetchSockets(message) {
    const sockets = await requestedSockets(this, message);
    const { requestId } = message.data;
    const parts = socketDetailsParts(sockets, hasBinary);
    if (parts === null) return false;
    const head = `{"type":${MessageType.FETCH_SOCKETS_RESPONSE},"data":${answerHead(requestId)}`;
    const tail = `},"uid":${JSON.stringify(this.uid)},"nsp":${JSON.stringify(this.nsp.name)}}`;
    const { details, handshakes, lengths } = parts;
    if (
      !this.node
        .inOrder()
        .publishFetchAnswer(this.ns, String(message.uid), head, details, handshakes, lengths, tail)
    ) {
      debug("publish refused: the outgoing buffer is full or the adapter is closed");
    }
    return true;
  }

  /** A message of the main or a room channel (not our own: Rust filtered it by uid). */
  onBroadcast(payload) {
    coalesceWritesOnce(this, this.opts.coalesceWebSocketWrites);
    let message;
    try {
      message = decode(payload);
    } catch (e) {
      this.node.decodeErrors++;
      return debug("invalid format: %s", e.message);
    }
    const result = this.onMessage(message);
    if (result && typeof result.catch === "function") {
      result.catch((e) => debug("message could not be applied: %s", e && e.message));
    }
  }

  /** A broadcast already encoded by the Rust core (see lib/event-text.js). */
  onEventText(payload, start, end) {
    coalesceWritesOnce(this, this.opts.coalesceWebSocketWrites);
    applyEventText(this, payload, start, end);
  }

  /** A broadcast with binary values, encoded by the Rust core as socket.io would. */
  onEventBinary(payload) {
    coalesceWritesOnce(this, this.opts.coalesceWebSocketWrites);
    applyEventBinary(this, payload);
  }

  onRequest(payload) {
    this.onBroadcast(payload);
  }

  /** A message of our response channel. */
  onAckResponse(payload) {
    let response;
    try {
      // A fetchSockets answer split by the core (handshakes parsed on first use), or as published.
      response =
        payload[0] === SPLIT_MARK
          ? readFetchAnswer(payload, CLUSTER_SOCKETS, this.lazyRemoteHandshakes).message
          : decode(payload);
    } catch (e) {
      this.node.decodeErrors++;
      return debug("invalid format: %s", e.message);
    }
    this.onResponse(response);
  }

  /** `PUBSUB SHARDNUMSUB P#N#`, summed over the cluster nodes, as the official adapter. */
  async serverCount() {
    return Number(await this.driver.serverCount(this.ns));
  }

  /** Counters of the shared native node (messages, skips, decode errors, reconnections). */
  metrics() {
    const metrics = JSON.parse(this.driver.metrics());
    metrics.decodeErrors += this.node.decodeErrors;
    return metrics;
  }

  /** SUNSUBSCRIBE the main, response and room channels; resolves when done. */
  close() {
    if (!this.closing) {
      this.roomChannels.clear();
      this.closing = this.node.unregister(this.ns);
    }
    return this.closing;
  }
}

withCountedRequests(ShardedRedisAdapter);

function createNode(pubClient, opts) {
  const connection = nativeConnectionJson(pubClient, opts);
  return new NativeNode(
    (onDeliver) =>
      new native.ShardedDriver(
        {
          connection,
          channelPrefix: opts.channelPrefix || "socket.io",
          maxPendingDeliveryBytes: opts.maxPendingDeliveryBytes,
        },
        onDeliver,
      ),
  );
}

/**
 * Returns a function that creates a ShardedRedisAdapter per namespace, as
 * @socket.io/redis-adapter's createShardedAdapter (Redis ≥ 7.0, sharded pub/sub).
 * @param pubClient node-redis / ioredis client or cluster, URL, or options object
 * @param subClient optional; not used (the Rust core opens its own subscriber)
 * @param opts ShardedRedisAdapterOptions: channelPrefix, subscriptionMode
 */
function createShardedAdapter(pubClient, subClient, opts) {
  opts = validateShardedOptions(
    Object.assign({ channelPrefix: "socket.io", subscriptionMode: "dynamic" }, opts),
  );
  // Fail at creation, not at the first namespace, when the client is unusable.
  connectionOptionsFrom(pubClient);
  let node;
  return function (nsp) {
    if (!node || node.closed) node = createNode(pubClient, opts);
    return new ShardedRedisAdapter(nsp, pubClient, subClient, opts, node);
  };
}

module.exports = {
  createShardedAdapter,
  ShardedRedisAdapter,
  hasBinary,
  encode,
  decode,
  looksLikeASocketId,
};
