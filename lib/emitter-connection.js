"use strict";
// The one Redis connection of an Emitter and of every emitter derived from it with of(): opened
// on the first write, never subscribed (a script that only emits exits when its work is done),
// closed by emitter.close() once the writes under way have settled.

const native = require("../binding");
const { connectionOptionsFrom } = require("./connection-options");
const debug = require("debug")("socket.io-redis-native:emitter");

/** How long a write may hold back the next one (see run()). */
const ORDER_GAP_MS = 25;

class EmitterConnection {
  constructor(redisClient) {
    // read (and check) the settings now: a wrong client fails at construction, as the adapter
    this.settings = JSON.stringify(connectionOptionsFrom(redisClient));
    this.publisher = null;
    this.pending = new Set();
    this.gate = Promise.resolve();
    this.warm = false;
    this.closed = false;
  }

  open() {
    if (!this.publisher) this.publisher = new native.NativePublisher(this.settings);
    return this.publisher;
  }

  send(write) {
    const publisher = this.open();
    if (write.publish) {
      const { channel, payload, sharded } = write.publish;
      debug("publishing %d bytes to %s%s", payload.length, sharded ? "(sharded) " : "", channel);
      return publisher.publish(channel, payload, sharded);
    }
    const { stream, maxLen, fields } = write.xadd;
    debug("XADD to %s (type %s)", stream, fields[5]);
    return publisher.xadd(stream, maxLen, fields);
  }

  /**
   * Runs one write. The returned promise resolves with `true` or rejects with the Redis error;
   * it is already marked handled, so code that ignores it (as with the official emitter, whose
   * emit() returned a plain `true`) never gets an unhandled rejection.
   *
   * Order: a native publish is queued before the call returns, so publishes keep their order
   * with no waiting here. An XADD runs as its own native task, so XADDs are chained: each one is
   * handed over once the previous one settled, or has been under way for ORDER_GAP_MS.
   */
  run(write) {
    let result;
    if (this.closed) {
      result = Promise.reject(new Error("socket.io-redis-native: the emitter is closed"));
    } else if (write.publish) {
      result = new Promise((resolve) => resolve(this.send(write))).then(() => true);
    } else {
      result = this.chained(write);
    }
    this.pending.add(result);
    result
      .catch((err) => {
        debug("write failed: %s", err && err.message);
        if (this.publisher) {
          for (const line of this.publisher.takeProblems()) debug("publisher: %s", line);
        }
      })
      .finally(() => this.pending.delete(result));
    return result;
  }

  chained(write) {
    const gate = this.gate;
    let release;
    this.gate = new Promise((resolve) => (release = resolve));
    return gate
      .then(() => {
        // the first write also starts the native connection: nothing overtakes it
        const timer = this.warm ? setTimeout(release, ORDER_GAP_MS) : null;
        if (timer) timer.unref();
        const sent = new Promise((resolve) => resolve(this.send(write)));
        const done = () => {
          this.warm = true;
          clearTimeout(timer);
          release();
        };
        sent.then(done, done);
        return sent;
      })
      .then(() => true);
  }

  /** Waits for the writes under way (whatever their outcome), then drops the connection. */
  async close() {
    this.closed = true;
    while (this.pending.size > 0) {
      await Promise.allSettled([...this.pending]);
    }
    if (this.publisher) {
      const publisher = this.publisher;
      this.publisher = null;
      publisher.close();
    }
  }
}

module.exports = { EmitterConnection, debug };
