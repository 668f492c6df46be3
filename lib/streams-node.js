"use strict";
// One createStreamsAdapter() call's native side (lib/streams-adapter.js holds the adapters):
// the StreamsDriver, the XADDs of a tick sent in one call, and what the core delivers
// (stream entries, broadcasts as wire text, pub/sub messages, losses) routed to the adapter
// of its namespace.
const msgpack = require("@msgpack/msgpack");
const native = require("../binding");
const { debug } = require("./native-node");
const { encodeXaddFrames } = require("./xadd-frames");
const { DeliveryKind, forEachFrame } = require("./frames");
const { nativeConnectionJson } = require("./connection-options");
const { readFetchAnswer, SPLIT_MARK, CLUSTER_SOCKETS } = require("./fetch-answers");

/** Frame kinds of src/bindings/streams.rs: a batch of stream entries, a detected loss. */
const STREAM_ENTRIES = 6;
const STREAM_LOSS = 7;
// One broadcast as wire text: nsp_len u32 LE, nsp, then applyEventText's format.
const STREAM_EVENT_TEXT = 8;
// One broadcast with binary values as wire: nsp_len u32 LE, nsp, then applyEventBinary's.
const STREAM_EVENT_BINARY = 10;
/**
 * First byte of a fetchSockets answer the core turned into JSON but could not split
 * (codec::fetch_sockets); split ones start with SPLIT_MARK, other messages are as published.
 */
const JSON_ANSWER_MARK = 2;

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

/** One createAdapter() call: the native driver and the adapters of its namespaces. */
class StreamsNode {
  constructor(redisClient, options) {
    this.adapters = new Map(); // namespace name -> adapter
    this.closed = false;
    // XADDs of the current tick (flushXadds), and how many of them nobody waits for.
    this.xadds = null;
    this.detachedXadds = 0;
    // Messages skipped because they could not be decoded (decoding happens in JS here).
    this.decodeErrors = 0;
    this.lazyRemoteHandshakes = options.lazyRemoteHandshakes !== false;
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
        // the same channels over SSUBSCRIBE/SPUBLISH/SHARDNUMSUB, as the official adapter
        shardedPubSub: Boolean(options.useShardedPubSub),
        // past it, the readers hold their next XREAD until JS caught up (nothing is dropped)
        maxPendingDeliveryBytes: options.maxPendingDeliveryBytes,
      },
      (batch) => this.onDeliver(batch),
    );
  }

  /**
   * XADDs of one JS tick go to Rust in one call (one native promise for all), still queued in
   * call order; each caller gets its entry id (the offset ClusterAdapter needs) or its error.
   */
  queueXadd(stream, maxLen, fields) {
    return this.queueXaddEntry({ stream, maxLen, fields });
  }

  /** queueXadd of an entry of encodeXaddFrames (lib/xadd-frames.js). */
  queueXaddEntry(entry) {
    return new Promise((resolve, reject) => {
      entry.resolve = resolve;
      entry.reject = reject;
      this.pushXadd(entry);
    });
  }

  /**
   * queueXaddEntry for an entry whose id nobody waits for: queued in the same order, without
   * a promise; a failure is logged (and counted in metrics().writeFailures).
   */
  queueXaddDetached(entry) {
    this.pushXadd(entry);
    this.detachedXadds++;
  }

  pushXadd(entry) {
    if (!this.xadds) {
      this.xadds = [];
      this.detachedXadds = 0;
      queueMicrotask(() => this.flushXadds());
    }
    this.xadds.push(entry);
  }

  flushXadds() {
    const batch = this.xadds;
    if (!batch) return; // flushed already, by unregister
    const detached = this.detachedXadds;
    this.xadds = null;
    this.detachedXadds = 0;
    if (detached === batch.length) {
      // Nobody waits: no promise, no answer to carry back to this thread.
      try {
        if (!this.driver.xaddBatchDetached(encodeXaddFrames(batch))) {
          debug("error while broadcasting message: the adapter is closed");
        }
      } catch (err) {
        debug("error while broadcasting message: %s", err.message);
      }
      return;
    }
    const settle = (entry, err, id) => {
      if (entry.resolve === undefined) {
        if (err) debug("error while broadcasting message: %s", err.message);
      } else if (err) entry.reject(err);
      else entry.resolve(id);
    };
    let outcomes;
    try {
      outcomes = this.driver.xaddBatch(encodeXaddFrames(batch));
    } catch (err) {
      for (const entry of batch) settle(entry, err);
      return;
    }
    // One line per entry: "+<entry id>" or "-<error>".
    outcomes.then(
      (lines) =>
        lines.split("\n").forEach((line, i) => {
          if (line[0] === "+") settle(batch[i], null, line.slice(1));
          else settle(batch[i], new Error(line.slice(1)));
        }),
      (err) => batch.forEach((entry) => settle(entry, err)),
    );
  }

  onDeliver(batch) {
    forEachFrame(batch, (kind, _ns, payload) => {
      try {
        if (kind === STREAM_ENTRIES) {
          for (const { id, message } of decodeEntries(payload)) {
            this.adapters.get(message.nsp)?.onRawMessage(message, id);
          }
        } else if (kind === STREAM_EVENT_TEXT || kind === STREAM_EVENT_BINARY) {
          const length = payload.readUInt32LE(0);
          const adapter = this.adapters.get(payload.toString("utf8", 4, 4 + length));
          const wire = payload.subarray(4 + length);
          if (kind === STREAM_EVENT_TEXT) adapter?.onEventText(wire);
          else adapter?.onEventBinary(wire);
        } else if (kind === STREAM_LOSS) {
          this.onLoss(JSON.parse(payload.toString()));
        } else if (kind === DeliveryKind.REQUEST) {
          // A fetchSockets answer the Rust core turned into JSON (JSON.parse is faster than
          // decoding MessagePack in JS) is split (handshakes parsed on first use: see
          // lib/fetch-answers.js) or whole after JSON_ANSWER_MARK; everything else is as
          // published, and decoded as the official adapter does.
          let message;
          if (payload[0] === SPLIT_MARK) {
            message = readFetchAnswer(payload, CLUSTER_SOCKETS, this.lazyRemoteHandshakes).message;
          } else if (payload[0] === JSON_ANSWER_MARK) {
            message = JSON.parse(payload.toString("utf8", 1));
          } else message = msgpack.decode(payload);
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

  /**
   * Entries of `loss.stream` were trimmed before this node read them: every adapter whose
   * namespace is written to that stream emits "stream-loss" (README, streams section).
   */
  onLoss(loss) {
    for (const adapter of this.adapters.values()) {
      if (adapter.streamName === loss.stream || adapter.officialOnlyStream === loss.stream) {
        adapter.emit("stream-loss", loss);
      }
    }
  }

  unregister(adapter) {
    this.driver.removeOwnUid(adapter.uid);
    if (this.adapters.get(adapter.nsp.name) === adapter) {
      this.adapters.delete(adapter.nsp.name);
      this.driver.setWireText(adapter.nsp.name, false, false);
    }
    if (this.adapters.size === 0 && !this.closed) {
      // What was emitted before close() goes out first (the writer finishes its queue).
      if (this.xadds) this.flushXadds();
      this.closed = true;
      this.driver.shutdown();
    }
  }
}

module.exports = { StreamsNode, decodeEntries };
