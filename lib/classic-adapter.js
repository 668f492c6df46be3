"use strict";
// Drop-in for @socket.io/redis-adapter 8.3 `createAdapter` / `RedisAdapter` (PROTOCOL.md
// section 2). Local work stays in socket.io-adapter's in-memory Adapter; Redis I/O, channel
// routing, own-message filtering and request correlation happen in the Rust core.
const { Adapter } = require("socket.io-adapter");
const msgpack = require("notepack.io");
const native = require("../binding");
const { NativeNode, debug, MAX_QUEUED_RECORD } = require("./native-node");
const { connectionOptionsFrom, nativeConnectionJson } = require("./connection-options");
const { validateClassicOptions } = require("./options");
const { coalesceWritesOnce } = require("./write-coalescing");
const { readFetchAnswer } = require("./fetch-answers");
const { socketDetailsParts, answerHead, officialDetails } = require("./socket-details");
const {
  usesDefaultEncoder,
  applyEventText,
  applyEventBinary,
  broadcastBinary,
  withPlaceholders,
  NOT_PLAIN,
  broadcastText,
  dataJson,
  precomputesFrames,
  isPlainJson,
  hasTargets,
  wirePrefix,
  binaryEventText,
  isEmptyObject,
} = require("./event-text");

const RequestType = Object.freeze({
  SOCKETS: 0,
  ALL_ROOMS: 1,
  REMOTE_JOIN: 2,
  REMOTE_LEAVE: 3,
  REMOTE_DISCONNECT: 4,
  REMOTE_FETCH: 5,
  SERVER_SIDE_EMIT: 6,
  BROADCAST: 7,
  BROADCAST_CLIENT_COUNT: 8,
  BROADCAST_ACK: 9,
});

function decodeMessage(parser, payload) {
  // Requests and responses are JSON when they start with "{", else the parser's format.
  return payload[0] === 0x7b ? JSON.parse(payload.toString()) : parser.decode(payload);
}

function rawOptions(opts) {
  return {
    rooms: [...opts.rooms],
    except: [...new Set(opts.except)],
    flags: opts.flags,
  };
}

/**
 * The `opts` field of a queued broadcast record for `{rooms: [room], except: [], flags: {}}`:
 * the Rust core writes their MessagePack from the record's room (src/protocol/broadcast_batch.rs).
 */
const ONE_ROOM = "r";

/**
 * `JSON.stringify(rawOptions(opts))` for a broadcast whose data is plain JSON: null without
 * rooms, except or flags, undefined when the options are not plain JSON either. The usual
 * `io.to(room)` (one string room, nothing else; `roomJson` is its JSON) is ONE_ROOM.
 */
function optionsJsonOf(opts, roomJson) {
  if (!hasTargets(opts)) return null;
  if (
    roomJson !== null &&
    typeof opts.rooms.keys().next().value === "string" &&
    (!opts.except || opts.except.size === 0) &&
    isEmptyObject(opts.flags) &&
    !roomJson.includes("\\u")
  ) {
    return ONE_ROOM;
  }
  const options = rawOptions(opts);
  return isPlainJson(options) ? JSON.stringify(options) : undefined;
}

/** The JSON text of what optionsJsonOf returned, for the calls that take JSON. */
function optionsJsonText(optionsJson, roomJson) {
  return optionsJson === ONE_ROOM ? `{"rooms":[${roomJson}],"except":[],"flags":{}}` : optionsJson;
}

function roomsAndExcept(opts) {
  return { rooms: [...opts.rooms], except: [...opts.except] };
}

function setsFrom(requestOpts) {
  return {
    rooms: new Set(requestOpts && requestOpts.rooms),
    except: new Set(requestOpts && requestOpts.except),
  };
}

class RedisAdapter extends Adapter {
  /**
   * @param nsp the namespace
   * @param pubClient what the user passed as publishing client (only its settings are read)
   * @param subClient what the user passed as subscribing client (only its settings are read)
   * @param opts RedisAdapterOptions
   * @param node the shared native node of this createAdapter() call (internal)
   */
  constructor(nsp, pubClient, subClient, opts = {}, node) {
    super(nsp);
    this.pubClient = pubClient;
    this.subClient = subClient;
    this.requestsTimeout = opts.requestsTimeout || 5000;
    this.publishOnSpecificResponseChannel = !!opts.publishOnSpecificResponseChannel;
    this.parser = opts.parser || msgpack;
    this.coalesceWebSocketWrites = opts.coalesceWebSocketWrites;
    this.lazyRemoteHandshakes = opts.lazyRemoteHandshakes !== false;
    this.ackRequests = new Map();
    this.node = node || createNode(pubClient, subClient, opts);
    this.driver = this.node.driver;
    this.uid = this.driver.uid;
    this.ns = this.node.register(this, nsp.name);
    // Rooms known to Rust let it drop broadcasts for rooms without local members.
    this.on("create-room", (room) => this.driver.addRoom(this.ns, String(room)));
    this.on("delete-room", (room) => this.driver.removeRoom(this.ns, String(room)));
    // With both default parsers, Rust hands broadcasts over as the text clients receive.
    this.wireText = this.parser === msgpack && usesDefaultEncoder(nsp.server);
    this.wirePrefix = wirePrefix(nsp.name);
    /** "4" (Engine.IO message) and the wire prefix, as the clients' frames start. */
    this.frameHead = Buffer.from(`4${this.wirePrefix}`);
    if (this.wireText) this.driver.setWireText(this.ns, true);
    this.ready = this.driver.subscribeNamespace(this.ns).catch((e) => {
      debug("subscription for %s deferred: %s", nsp.name, e.message);
    });
  }

  init() {
    return this.ready;
  }

  /** Resolves once the namespace's channels are subscribed (or recorded while Redis is away). */
  onConnectionEvent(text) {
    this.emit("redis-connection", text);
  }

  // ---- broadcasts ----

  broadcast(packet, opts) {
    coalesceWritesOnce(this, this.coalesceWebSocketWrites);
    packet.nsp = this.nsp.name;
    const onlyLocal = opts && opts.flags && opts.flags.local;
    // A plain-JSON EVENT is serialized once: that text is both the clients' wire text and,
    // transcoded in Rust, the MessagePack envelope other nodes receive.
    if (this.wireText && packet.type === 2 && packet.id === undefined) {
      if (isPlainJson(packet.data)) {
        const json = dataJson(packet.data);
        const queued = !onlyLocal && this.publishBroadcast(packet, opts, json);
        // Queued: the JSON is in the node's queue as UTF-8, ready for the clients' frame.
        const frame =
          queued && precomputesFrames ? this.node.lastQueuedJsonFrame(this.frameHead) : undefined;
        broadcastText(this, this.wirePrefix + json, opts, frame);
        return;
      }
      // Plain JSON but for Buffers: deconstructed once, as socket.io-parser would, for the
      // clients' BINARY_EVENT and, the Buffers passed beside the JSON, for the envelope.
      const attachments = [];
      const data = withPlaceholders(packet.data, attachments);
      if (data !== NOT_PLAIN && attachments.length > 0) {
        const json = JSON.stringify(data);
        if (!onlyLocal) this.publishBroadcast(packet, opts, json, attachments);
        broadcastBinary(
          this,
          packet,
          binaryEventText(this.nsp.name, attachments.length, json),
          attachments,
          opts,
        );
        return;
      }
    }
    if (!onlyLocal) this.publishBroadcast(packet, opts);
    super.broadcast(packet, opts);
  }

  /**
   * `json`: JSON.stringify(packet.data) when the data is plain JSON (see isPlainJson), with
   * socket.io-parser's placeholders for the Buffers in `attachments` when there are some.
   * True when it was queued as a record of the node's queue (NativeNode#queueBroadcastJson).
   */
  publishBroadcast(packet, opts, json, attachments) {
    try {
      const room =
        opts.rooms && opts.rooms.size === 1 ? String(opts.rooms.keys().next().value) : null;
      let queued;
      if (json !== undefined) {
        const roomJson = room === null ? null : JSON.stringify(room);
        const optionsJson = optionsJsonOf(opts, roomJson);
        if (optionsJson !== undefined) {
          if (
            json.length < MAX_QUEUED_RECORD &&
            this.node.queueBroadcastJson(this.ns, roomJson, json, optionsJson, "", "", attachments)
          ) {
            return true;
          }
          const optionsText = optionsJsonText(optionsJson, roomJson);
          queued =
            attachments === undefined
              ? this.node.inOrder().broadcastJson(this.ns, room, json, optionsText)
              : this.node
                  .inOrder()
                  .broadcastJsonAttachments(this.ns, room, json, optionsText, attachments);
        }
      }
      if (queued === undefined || queued === -1) {
        const msg = this.parser.encode([this.uid, packet, rawOptions(opts)]);
        queued = this.node
          .inOrder()
          .broadcast(this.ns, room, Buffer.isBuffer(msg) ? msg : Buffer.from(msg));
      }
      if (!queued) debug("broadcast refused: outgoing buffer full or adapter closed");
      this.node.scheduleFlush();
    } catch (e) {
      debug("could not publish a broadcast: %s", e.message);
    }
    return false;
  }

  onBroadcast(payload) {
    coalesceWritesOnce(this, this.coalesceWebSocketWrites);
    const [uid, packet, opts] = this.parser.decode(payload);
    if (uid === this.uid) return;
    if (packet.nsp === undefined) packet.nsp = "/";
    if (packet.nsp !== this.nsp.name) return;
    opts.rooms = new Set(opts.rooms);
    opts.except = new Set(opts.except);
    super.broadcast(packet, opts);
  }

  /** A broadcast already encoded by the Rust core (see lib/event-text.js). */
  onEventText(payload, start, end) {
    coalesceWritesOnce(this, this.coalesceWebSocketWrites);
    applyEventText(this, payload, start, end);
  }

  /** A broadcast with binary values, encoded by the Rust core as socket.io would. */
  onEventBinary(payload) {
    coalesceWritesOnce(this, this.coalesceWebSocketWrites);
    applyEventBinary(this, payload);
  }

  broadcastWithAck(packet, opts, clientCountCallback, ack) {
    packet.nsp = this.nsp.name;
    const onlyLocal = opts && opts.flags && opts.flags.local;
    if (!onlyLocal) {
      const requestId = this.driver.newRequestId();
      this.ackRequests.set(requestId, { clientCountCallback, ack });
      const timeout = (opts.flags && opts.flags.timeout) || 0;
      const request = this.parser.encode({
        uid: this.uid,
        requestId,
        type: RequestType.BROADCAST,
        packet,
        opts: rawOptions(opts),
      });
      this.node.inOrder().ackRequest(this.ns, requestId, Buffer.from(request), timeout);
      // As the official adapter: no way to know when every client answered, so forget the
      // request after the operation's own timeout.
      setTimeout(() => this.ackRequests.delete(requestId), timeout).unref?.();
    }
    super.broadcastWithAck(packet, opts, clientCountCallback, ack);
  }

  onAckResponse(payload) {
    const response = decodeMessage(this.parser, payload);
    const ackRequest = this.ackRequests.get(response.requestId);
    if (!ackRequest) return;
    if (response.type === RequestType.BROADCAST_CLIENT_COUNT) {
      ackRequest.clientCountCallback(response.clientCount);
    } else if (response.type === RequestType.BROADCAST_ACK) {
      ackRequest.ack(response.packet);
    }
  }

  // ---- requests from other nodes ----

  publishResponse(request, response, commonOnly = false) {
    // A JSON text crosses as a string (one UTF-8 copy in Rust), encoded bytes as a Buffer.
    const payload = typeof response === "string" ? response : Buffer.from(response);
    this.node.inOrder().publishResponse(this.ns, request.uid ?? null, payload, commonOnly);
  }

  onRequest(payload) {
    let request;
    try {
      request = decodeMessage(this.parser, payload);
    } catch (e) {
      debug("ignoring a malformed request: %s", e.message);
      return;
    }
    if (!request || typeof request !== "object") return;
    this.handleRequest(request).catch((e) => debug("request failed: %s", e && e.message));
  }

  async handleRequest(request) {
    const { requestId } = request;
    switch (request.type) {
      case RequestType.SOCKETS: {
        const sockets = await super.sockets(new Set(request.rooms));
        this.publishResponse(request, JSON.stringify({ requestId, sockets: [...sockets] }));
        break;
      }
      case RequestType.ALL_ROOMS:
        this.publishResponse(request, JSON.stringify({ requestId, rooms: [...this.rooms.keys()] }));
        break;
      case RequestType.REMOTE_JOIN:
      case RequestType.REMOTE_LEAVE:
      case RequestType.REMOTE_DISCONNECT:
        return this.applyRemoteSocketOperation(request);
      case RequestType.REMOTE_FETCH: {
        const sockets = await super.fetchSockets(setsFrom(request.opts));
        // `{ requestId, sockets: [{ id, handshake, rooms, data }, ..] }` (lib/socket-details.js).
        const parts = socketDetailsParts(sockets);
        if (parts === null) {
          const answer = { requestId, sockets: sockets.map(officialDetails) };
          this.publishResponse(request, JSON.stringify(answer));
          break;
        }
        const { details, handshakes, lengths } = parts;
        this.node
          .inOrder()
          .publishFetchAnswer(
            this.ns,
            request.uid ?? null,
            answerHead(requestId),
            details,
            handshakes,
            lengths,
            "}",
          );
        break;
      }
      case RequestType.SERVER_SIDE_EMIT: {
        if (!Array.isArray(request.data)) return;
        if (requestId === undefined) {
          this.nsp._onServerSideEmit(request.data);
          return;
        }
        let called = false;
        request.data.push((arg) => {
          if (called) return;
          called = true;
          // The official adapter always answers this one on the common channel.
          this.publishResponse(
            request,
            JSON.stringify({ type: RequestType.SERVER_SIDE_EMIT, requestId, data: arg }),
            true,
          );
        });
        this.nsp._onServerSideEmit(request.data);
        break;
      }
      case RequestType.BROADCAST: {
        if (this.ackRequests.has(requestId)) return;
        super.broadcastWithAck(
          request.packet,
          setsFrom(request.opts),
          (clientCount) =>
            this.publishResponse(
              request,
              JSON.stringify({ type: RequestType.BROADCAST_CLIENT_COUNT, requestId, clientCount }),
            ),
          (arg) =>
            this.publishResponse(
              request,
              this.parser.encode({ type: RequestType.BROADCAST_ACK, requestId, packet: arg }),
            ),
        );
        break;
      }
      default:
        debug("ignoring unknown request type: %s", request.type);
    }
  }

  applyRemoteSocketOperation(request) {
    if (request.opts) {
      const opts = setsFrom(request.opts);
      if (request.type === RequestType.REMOTE_JOIN) return super.addSockets(opts, request.rooms);
      if (request.type === RequestType.REMOTE_LEAVE) return super.delSockets(opts, request.rooms);
      return super.disconnectSockets(opts, request.close);
    }
    // Legacy form addressed to one socket id: only its owner answers.
    const socket = this.nsp.sockets.get(request.sid);
    if (!socket) return;
    if (request.type === RequestType.REMOTE_JOIN) socket.join(request.room);
    else if (request.type === RequestType.REMOTE_LEAVE) socket.leave(request.room);
    else socket.disconnect(request.close);
    this.publishResponse(request, JSON.stringify({ requestId: request.requestId }));
  }

  // ---- requests to other nodes ----

  publishRequest(request) {
    if (!this.node.inOrder().publishRequest(this.ns, Buffer.from(JSON.stringify(request)))) {
      debug("request refused: outgoing buffer full or adapter closed");
    }
  }

  /**
   * Sends a request and resolves with the decoded answers (correlated in Rust).
   * `splitFetchAnswers`: fetchSockets answers are split in Rust as they arrive and their
   * handshakes parsed when first used (see lib/fetch-answers.js).
   */
  async collect(request, splitFetchAnswers = false) {
    const decode = splitFetchAnswers
      ? (payload) => {
          const answer = readFetchAnswer(payload);
          return answer.whole ? decodeMessage(this.parser, answer.whole) : answer.message;
        }
      : (payload) => decodeMessage(this.parser, payload);
    const outcome = await this.node
      .inOrder()
      .request(
        this.ns,
        request.requestId,
        Buffer.from(JSON.stringify(request)),
        this.requestsTimeout,
        splitFetchAnswers,
      );
    const responses = [];
    for (const payload of outcome.responses) {
      try {
        responses.push(decode(payload));
      } catch (e) {
        debug("ignoring a malformed response: %s", e.message);
      }
    }
    return { ...outcome, responses };
  }

  async allRooms() {
    const rooms = new Set(this.rooms.keys());
    const requestId = this.driver.newRequestId();
    const outcome = await this.collect({ uid: this.uid, requestId, type: RequestType.ALL_ROOMS });
    if (outcome.timedOut) throw new Error("timeout reached while waiting for allRooms response");
    for (const response of outcome.responses) {
      if (Array.isArray(response.rooms)) for (const room of response.rooms) rooms.add(room);
    }
    return rooms;
  }

  async fetchSockets(opts) {
    if (opts.flags && opts.flags.local) return super.fetchSockets(opts);
    const requestId = this.driver.newRequestId();
    // The request leaves first and the local sockets are found while it travels: in the same
    // tick, so they are the sockets upstream finds (before it publishes), and a request's
    // round trip no longer waits for the local walk.
    const remote = this.collect(
      { uid: this.uid, requestId, type: RequestType.REMOTE_FETCH, opts: roomsAndExcept(opts) },
      this.lazyRemoteHandshakes,
    );
    const [localSockets, outcome] = await Promise.all([super.fetchSockets(opts), remote]);
    if (outcome.timedOut)
      throw new Error("timeout reached while waiting for fetchSockets response");
    const sockets = [...localSockets];
    for (const response of outcome.responses) {
      if (Array.isArray(response.sockets)) sockets.push(...response.sockets);
    }
    return sockets;
  }

  addSockets(opts, rooms) {
    if (opts.flags && opts.flags.local) return super.addSockets(opts, rooms);
    this.publishRequest({
      uid: this.uid,
      type: RequestType.REMOTE_JOIN,
      opts: roomsAndExcept(opts),
      rooms: [...rooms],
    });
  }

  delSockets(opts, rooms) {
    if (opts.flags && opts.flags.local) return super.delSockets(opts, rooms);
    this.publishRequest({
      uid: this.uid,
      type: RequestType.REMOTE_LEAVE,
      opts: roomsAndExcept(opts),
      rooms: [...rooms],
    });
  }

  disconnectSockets(opts, close) {
    if (opts.flags && opts.flags.local) return super.disconnectSockets(opts, close);
    this.publishRequest({
      uid: this.uid,
      type: RequestType.REMOTE_DISCONNECT,
      opts: roomsAndExcept(opts),
      close,
    });
  }

  serverSideEmit(packet) {
    if (typeof packet[packet.length - 1] === "function") {
      this.serverSideEmitWithAck(packet).catch((e) =>
        debug("serverSideEmit failed: %s", e && e.message),
      );
      return;
    }
    this.publishRequest({ uid: this.uid, type: RequestType.SERVER_SIDE_EMIT, data: packet });
  }

  async serverSideEmitWithAck(packet) {
    const ack = packet.pop();
    const requestId = this.driver.newRequestId();
    let outcome;
    try {
      outcome = await this.collect({
        uid: this.uid,
        requestId,
        type: RequestType.SERVER_SIDE_EMIT,
        data: packet,
      });
    } catch (e) {
      // Unlike the official adapter (which never calls back), report the Redis failure.
      ack(e, []);
      return;
    }
    const data = outcome.responses.map((r) => r.data);
    if (outcome.timedOut) {
      ack(
        new Error(
          `timeout reached: only ${data.length} responses received out of ${outcome.expected}`,
        ),
        data,
      );
    } else {
      ack(null, data);
    }
  }

  async serverCount() {
    return Number(await this.driver.serverCount(this.ns));
  }

  /** Counters of the shared native node (messages, skips, decode errors, requests...). */
  metrics() {
    return JSON.parse(this.driver.metrics());
  }

  close() {
    if (this.closing) return;
    this.closing = this.node.unregister(this.ns);
    return;
  }
}

function createNode(pubClient, subClient, opts) {
  const connection = nativeConnectionJson(pubClient, opts);
  return new NativeNode(
    (onDeliver) =>
      new native.ClassicDriver(
        {
          connection,
          key: opts.key || "socket.io",
          publishOnSpecificResponseChannel: !!opts.publishOnSpecificResponseChannel,
          defaultParser: !opts.parser || opts.parser === msgpack,
          maxPendingDeliveryBytes: opts.maxPendingDeliveryBytes,
        },
        onDeliver,
      ),
  );
}

/**
 * Returns a function that creates a RedisAdapter per namespace, as @socket.io/redis-adapter.
 * @param pubClient node-redis / ioredis client or cluster, URL, or options object
 * @param subClient optional; only checked, the Rust core opens its own subscriber
 * @param opts RedisAdapterOptions: key, requestsTimeout, publishOnSpecificResponseChannel, parser
 */
function createAdapter(pubClient, subClient, opts) {
  if (opts === undefined && subClient && !isClientLike(subClient)) {
    opts = subClient;
    subClient = undefined;
  }
  opts = validateClassicOptions(opts || {});
  // Fail at creation, not at the first namespace, when the client is unusable.
  connectionOptionsFrom(pubClient);
  let node;
  return function (nsp) {
    if (!node || node.closed) node = createNode(pubClient, subClient, opts);
    return new RedisAdapter(nsp, pubClient, subClient, opts, node);
  };
}

function isClientLike(value) {
  return (
    typeof value === "string" ||
    typeof value.publish === "function" ||
    typeof value.pSubscribe === "function" ||
    typeof value.psubscribe === "function"
  );
}

module.exports = { createAdapter, RedisAdapter, RequestType };
