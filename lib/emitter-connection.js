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

  sendXadd(write) {
    const publisher = this.open();
    const { stream, maxLen, fields } = write.xadd;
    debug("XADD to %s (type %s)", stream, fields[5]);
    return publisher.xadd(stream, maxLen, fields);
  }

  /**
   * Runs one write. The returned promise resolves with `true` or rejects with the Redis error;
   * it is already marked handled, so code that ignores it (as with the official emitter, whose
   * emit() returned a plain `true`) never gets an unhandled rejection.
   *
   * Order: publishes are batched in call order and a batch is queued in Rust at once, so
   * publishes keep their order with no waiting here. An XADD runs as its own native task, so XADDs are chained: each one is
   * handed over once the previous one settled, or has been under way for ORDER_GAP_MS.
   */
  run(write) {
    if (this.closed) {
      return this.track(Promise.reject(new Error("socket.io-redis-native: the emitter is closed")));
    }
    if (write.publish) return this.queuePublish(write.publish);
    return this.track(this.chained(write));
  }

  /** Marks `result` handled (failures go to `debug`) and lets close() wait for it. */
  track(result) {
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

  /**
   * Publishes of one JS tick cross into Rust together (one native call) and share one promise:
   * it resolves with `true` once Redis accepted every one of them, or rejects with the first
   * error. Per write, that is one array push instead of a native call and three promises.
   */
  queuePublish(publish) {
    if (!this.batch) {
      let resolve, reject;
      const promise = new Promise((res, rej) => ((resolve = res), (reject = rej)));
      this.batch = { publishes: [], promise, resolve, reject };
      this.track(promise);
      queueMicrotask(() => this.flushPublishes());
    }
    const { channel, payload, sharded } = publish;
    debug("publishing %d bytes to %s%s", payload.length, sharded ? "(sharded) " : "", channel);
    this.batch.publishes.push(publish);
    return this.batch.promise;
  }

  flushPublishes() {
    const { publishes, resolve, reject } = this.batch;
    this.batch = null;
    let results;
    try {
      results = this.open().publishBatch(encodePublishFrames(publishes));
    } catch (err) {
      reject(err);
      return;
    }
    results.then((errors) => {
      const failed = errors.filter((e) => e != null);
      if (failed.length === 0) resolve(true);
      else
        reject(new Error(`${failed[0]} (${failed.length} of ${errors.length} publishes failed)`));
    }, reject);
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
        const sent = new Promise((resolve) => resolve(this.sendXadd(write)));
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

/** Frames of NativePublisher.publishBatch: sharded u8, channel (u32 LE length), payload (idem). */
function encodePublishFrames(publishes) {
  const parts = publishes.map(({ channel, payload, sharded }) => ({
    channel: Buffer.from(channel),
    payload: Buffer.isBuffer(payload) ? payload : Buffer.from(payload),
    sharded,
  }));
  let size = 0;
  for (const p of parts) size += 9 + p.channel.length + p.payload.length;
  const frames = Buffer.allocUnsafe(size);
  let offset = 0;
  for (const p of parts) {
    frames[offset++] = p.sharded ? 1 : 0;
    offset = frames.writeUInt32LE(p.channel.length, offset);
    offset += p.channel.copy(frames, offset);
    offset = frames.writeUInt32LE(p.payload.length, offset);
    offset += p.payload.copy(frames, offset);
  }
  return frames;
}

module.exports = { EmitterConnection, debug };
