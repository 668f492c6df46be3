"use strict";
// The JS side of one native driver: routes the framed deliveries of the Rust core to the
// adapter of each namespace, and shuts the driver down when its last adapter closes.
const debugModule = require("debug");
const { DeliveryKind, forEachFrame } = require("./frames");

const debug = debugModule("socket.io-redis-native");

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
      if (!this.closed) this.driver.flush();
    });
  }

  /** `extra`: more arguments of the driver's addNamespace (the sharded driver takes a uid). */
  register(adapter, namespaceName, ...extra) {
    const ns = this.driver.addNamespace(namespaceName, ...extra);
    this.adapters.set(ns, adapter);
    return ns;
  }

  async unregister(ns) {
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
    forEachFrame(batch, (kind, ns, payload) => {
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
        if (kind === DeliveryKind.EVENT_TEXT) adapter.onEventText(payload);
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

module.exports = { NativeNode, debug };
