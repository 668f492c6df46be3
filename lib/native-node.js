"use strict";
// The JS side of one native driver: routes the framed deliveries of the Rust core to the
// adapter of each namespace, and shuts the driver down when its last adapter closes.
const debugModule = require("debug");
const { DeliveryKind, forEachFrameRange } = require("./frames");
const { textFrame } = require("./event-text");

const debug = debugModule("socket.io-redis-native");

/** Data JSON longer than this (UTF-16 units) is published by its own call. */
const MAX_QUEUED_RECORD = 1 << 16;
/**
 * Bytes of the buffer queued broadcasts are written into: a record (at most 3 UTF-8 bytes per
 * UTF-16 unit of its strings) always fits once the buffer is empty.
 */
const QUEUE_BYTES = 1 << 20;
/** Bytes of the buffer the queued broadcasts' Buffers are copied into. */
const ATTACHMENT_QUEUE_BYTES = 1 << 20;
/** A broadcast whose Buffers hold more bytes than this is published by its own call. */
const MAX_QUEUED_ATTACHMENT_BYTES = 1 << 16;

class NativeNode {
  /**
   * @param {(onDeliver: (batch: Buffer) => void) => object} createDriver
   */
  constructor(createDriver) {
    this.adapters = new Map();
    this.closed = false;
    // Messages that passed the Rust filters but that JS could not decode (counted here, added
    // to the Rust decodeErrors by the adapters' metrics()).
    this.decodeErrors = 0;
    // Broadcasts waiting for the end of the event-loop turn (see queueBroadcastJson), as
    // UTF-8 in one reused buffer, created on first use.
    this.queue = null;
    this.queuedBytes = 0;
    // The Buffers of the queued broadcasts, copied beside the records (created on first use).
    this.attachmentQueue = null;
    this.queuedAttachmentBytes = 0;
    // Where the data JSON of the last queued record is in `queue`, as UTF-8 (see
    // lastQueuedJsonFrame).
    this.lastJsonStart = 0;
    this.lastJsonEnd = 0;
    this.driver = createDriver((batch) => this.onDeliver(batch));
  }

  /**
   * Broadcasts are queued in Rust without waking its sender; one flush per event-loop turn
   * sends them all as one pipelined write (as node-redis does per tick).
   */
  scheduleFlush() {
    if (this.flushScheduled) return;
    this.flushScheduled = true;
    setImmediate(() => {
      this.flushScheduled = false;
      if (this.closed) return;
      this.sendQueued();
      this.driver.flush();
    });
  }

  /**
   * Queues a plain-JSON broadcast (the classic driver's event data, the sharded driver's
   * whole message): it crosses into Rust with the others of this event-loop turn at the flush
   * that ends the turn, which it waited for anyway (one napi call per broadcast cost as much
   * as transcoding it; the record layout is in src/protocol/broadcast_batch.rs). The records are written into one reused buffer right
   * away: strings kept until the end of the turn would survive young-generation collections
   * and make V8 grow its heap (bench --memory). `roomJson`: JSON of the room's name or null;
   * `optionsJson`: JSON of {rooms, except, flags} or null; `json`: JSON of the data, which
   * the record's data field holds between `before` and `after` (the sharded driver's message
   * around it). False when the record is too large to queue (the caller publishes it by its
   * own call). `attachments`: the Buffers of socket.io-parser's placeholders in `json`, copied
   * into a second reused buffer (a napi call carrying them cost 2.6-3.9 µs, queueing 0.3).
   */
  queueBroadcastJson(ns, roomJson, json, optionsJson, before = "", after = "", attachments) {
    const room = roomJson === null ? "" : roomJson;
    const options = optionsJson === null ? "" : optionsJson;
    if (attachments !== undefined && attachments.length === 0) attachments = undefined;
    let attachmentBytes = 0;
    if (attachments !== undefined) {
      for (const attachment of attachments) attachmentBytes += attachment.length;
      if (attachmentBytes > MAX_QUEUED_ATTACHMENT_BYTES) return false;
    }
    // Where a Buffer is: a start below 2^20 and a length up to 2^16, with 2 separators (ASCII).
    const placesBytes = attachments === undefined ? 0 : 1 + 16 * attachments.length;
    const most =
      3 * (json.length + room.length + options.length + before.length + after.length) +
      placesBytes +
      16;
    if (most > QUEUE_BYTES) return false;
    if (this.queue === null) this.queue = Buffer.allocUnsafe(QUEUE_BYTES);
    else if (
      this.queuedBytes + most > QUEUE_BYTES ||
      this.queuedAttachmentBytes + attachmentBytes > ATTACHMENT_QUEUE_BYTES
    ) {
      this.sendQueued();
    }
    const places = attachments === undefined ? "" : this.queueAttachments(attachments);
    const buf = this.queue;
    let at = this.queuedBytes;
    at += buf.latin1Write(String(ns), at);
    buf[at++] = 1;
    if (room !== "") at += buf.utf8Write(room, at);
    buf[at++] = 1;
    if (options !== "") at += buf.utf8Write(options, at);
    buf[at++] = 1;
    if (before !== "") at += buf.utf8Write(before, at);
    this.lastJsonStart = at;
    at += buf.utf8Write(json, at);
    this.lastJsonEnd = at;
    if (after !== "") at += buf.utf8Write(after, at);
    if (attachments !== undefined) {
      buf[at++] = 2;
      at += buf.latin1Write(places, at);
    }
    buf[at++] = 0;
    this.queuedBytes = at;
    this.scheduleFlush();
    return true;
  }

  /** Copies `attachments` into the attachment queue; where they are, as a record says it. */
  queueAttachments(attachments) {
    if (this.attachmentQueue === null) {
      this.attachmentQueue = Buffer.allocUnsafe(ATTACHMENT_QUEUE_BYTES);
    }
    let places = "";
    for (const attachment of attachments) {
      const start = this.queuedAttachmentBytes;
      this.attachmentQueue.set(attachment, start);
      this.queuedAttachmentBytes += attachment.length;
      places += `${places === "" ? "" : ","}${start},${attachment.length}`;
    }
    return places;
  }

  /**
   * The WebSocket frame of the Engine.IO message `head` + the data JSON of the record just
   * queued, from its UTF-8 bytes in the queue: the sender's own clients get the broadcast
   * without its text being encoded to UTF-8 a second time. Call right after
   * queueBroadcastJson returned true, before any other code can queue more.
   */
  lastQueuedJsonFrame(head) {
    return textFrame(head, this.queue, this.lastJsonStart, this.lastJsonEnd);
  }

  /** Hands the queued broadcasts to Rust (still without waking its sender). */
  sendQueued() {
    if (this.queuedBytes === 0) return;
    const length = this.queuedBytes;
    const attachmentBytes = this.queuedAttachmentBytes;
    this.queuedBytes = 0;
    this.queuedAttachmentBytes = 0;
    const problem = this.driver.broadcastJsonBatch(
      this.queue,
      length,
      this.attachmentQueue,
      attachmentBytes,
    );
    if (problem) debug("%s", problem);
  }

  /**
   * The driver, once the queued broadcasts are in Rust: every other publish goes through
   * this so that messages leave in the order they were emitted.
   */
  inOrder() {
    if (this.queuedBytes !== 0) this.sendQueued();
    return this.driver;
  }

  /** `extra`: more arguments of the driver's addNamespace (the sharded driver takes a uid). */
  register(adapter, namespaceName, ...extra) {
    const ns = this.driver.addNamespace(namespaceName, ...extra);
    this.adapters.set(ns, adapter);
    return ns;
  }

  async unregister(ns) {
    // What was emitted before close() leaves before the namespace is unsubscribed.
    if (!this.closed) this.inOrder().flush();
    this.adapters.delete(ns);
    let remaining = this.adapters.size > 0;
    try {
      remaining = await this.driver.removeNamespace(ns);
    } catch (e) {
      debug("unsubscribe failed: %s", e.message);
    }
    if (!remaining && this.adapters.size === 0 && !this.closed) {
      this.closed = true;
      this.driver.shutdown();
    }
  }

  onDeliver(batch) {
    forEachFrameRange(batch, (kind, ns, start, end) => {
      if (kind === DeliveryKind.EVENT_TEXT) {
        // The usual broadcast, read in place (see applyEventText).
        try {
          this.adapters.get(ns)?.onEventText(batch, start, end);
        } catch (e) {
          debug("skipped a message that could not be applied: %s", e && e.message);
        }
        return;
      }
      const payload = batch.subarray(start, end);
      if (kind === DeliveryKind.LOG) {
        debug("%s", payload.toString());
        return;
      }
      if (kind === DeliveryKind.CONNECTION) {
        debug("redis %s", payload.toString());
        for (const adapter of this.adapters.values())
          adapter.onConnectionEvent?.(payload.toString());
        return;
      }
      const adapter = this.adapters.get(ns);
      if (!adapter) return;
      try {
        if (kind === DeliveryKind.EVENT_BINARY) adapter.onEventBinary(payload);
        else if (kind === DeliveryKind.BROADCAST) adapter.onBroadcast(payload);
        else if (kind === DeliveryKind.REQUEST) adapter.onRequest(payload);
        else if (kind === DeliveryKind.ACK_RESPONSE) adapter.onAckResponse(payload);
      } catch (e) {
        // A message that reached JS but cannot be applied must not break the others.
        debug("skipped a message that could not be applied: %s", e && e.message);
      }
    });
  }
}

module.exports = { NativeNode, debug, MAX_QUEUED_RECORD };
