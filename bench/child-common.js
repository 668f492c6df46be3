"use strict";
// Plumbing shared by every bench child process: lifetime bounds, exit with the parent,
// and the "mark" snapshot (CPU, RSS, counters) that the parent takes at the edges of a
// measurement window.

const { nowUs } = require("./stats");

const RSS_SAMPLE_MS = 200;

/**
 * @param {object} opts
 * @param {() => object} opts.counters  counters to include in every mark
 * @param {(reset: boolean) => object} [opts.onMark]  extra fields (e.g. latency summary)
 * @param {(msg: object) => void} opts.onMessage  other parent messages
 * @param {number} [opts.maxLifetimeMs]  hard bound: the child exits after this long whatever happens
 */
function runChild({ counters, onMark, onMessage, maxLifetimeMs = 20 * 60 * 1000 }) {
  let rssPeak = process.memoryUsage.rss();
  const sampler = setInterval(() => {
    const rss = process.memoryUsage.rss();
    if (rss > rssPeak) rssPeak = rss;
  }, RSS_SAMPLE_MS);
  sampler.unref();
  setTimeout(() => {
    console.error(`[bench child ${process.pid}] lifetime bound reached, exiting`);
    process.exit(3);
  }, maxLifetimeMs).unref();
  // Never outlive the orchestrator.
  process.on("disconnect", () => process.exit(0));

  process.on("message", (msg) => {
    if (msg.type === "mark") {
      const rss = process.memoryUsage.rss();
      const snapshot = {
        type: "mark",
        id: msg.id,
        pid: process.pid,
        t: nowUs(),
        cpu: process.cpuUsage(),
        rss,
        rssPeak: Math.max(rssPeak, rss),
        // V8 heap and the memory of Buffers (outside the heap): where an RSS change comes from.
        heapUsed: process.memoryUsage().heapUsed,
        heapTotal: process.memoryUsage().heapTotal,
        arrayBuffers: process.memoryUsage().arrayBuffers,
        counters: counters(),
        ...(onMark ? onMark(!!msg.reset) : {}),
      };
      rssPeak = rss;
      send(snapshot);
      return;
    }
    if (msg.type === "exit") {
      send({ type: "exit", id: msg.id });
      setTimeout(() => process.exit(0), 20);
      return;
    }
    Promise.resolve()
      .then(() => onMessage(msg))
      .catch((e) => {
        send({ type: "error", id: msg.id, message: e && e.stack ? e.stack : String(e) });
      });
  });
}

function send(msg) {
  if (process.connected) process.send(msg);
}

module.exports = { runChild, send };

/**
 * Emits in setImmediate batches while fewer than `window` messages are unconfirmed
 * (confirmations arrive as credits: how many the slowest receiver has seen). Bounded in
 * count (maxMessages) and time (maxMs); a receiver silent for stallMs counts as a stall and
 * its outstanding messages as lost, so a lost message never blocks the loop.
 */
class CreditPump {
  constructor(
    emitOne,
    { window = 1000, batch = 100, maxMessages = 5e6, maxMs = 120000, stallMs = 1000 } = {},
  ) {
    this.emitOne = emitOne;
    this.window = window;
    this.batch = batch;
    this.maxMessages = maxMessages;
    this.maxMs = maxMs;
    this.stallMs = stallMs;
    this.sent = 0;
    this.confirmed = 0;
    this.base = 0; // credits are counted from here (moves on a stall)
    this.stalls = 0;
    this.errors = 0;
    this.running = false;
    this.waiting = false;
    this.lastProgress = 0;
  }

  start() {
    this.running = true;
    this.startedAt = Date.now();
    this.lastProgress = this.startedAt;
    this.timer = setInterval(() => this.checkStall(), 100);
    this.done = new Promise((resolve) => (this.resolveDone = resolve));
    setImmediate(() => this.pump());
  }

  credit(n) {
    this.lastN = n;
    const c = this.base + n;
    if (c > this.confirmed) {
      this.confirmed = c;
      this.lastProgress = Date.now();
    }
    if (this.waiting && this.running && this.sent - this.confirmed <= this.window / 2) {
      this.waiting = false;
      setImmediate(() => this.pump());
    }
  }

  checkStall() {
    if (!this.running) return;
    if (Date.now() - this.startedAt > this.maxMs) return this.stop();
    if (this.waiting && Date.now() - this.lastProgress > this.stallMs) {
      this.stalls++;
      this.base = this.sent - (this.lastN || 0);
      this.confirmed = this.sent;
      this.lastProgress = Date.now();
      this.credit(this.lastN || 0);
    }
  }

  pump() {
    if (!this.running) return;
    let n = 0;
    while (n < this.batch && this.sent - this.confirmed < this.window) {
      if (this.sent >= this.maxMessages) return this.stop();
      try {
        this.emitOne(this.sent);
      } catch (e) {
        this.errors++;
      }
      this.sent++;
      n++;
    }
    if (this.sent - this.confirmed >= this.window) this.waiting = true;
    else setImmediate(() => this.pump());
  }

  stop() {
    if (this.running) {
      this.running = false;
      clearInterval(this.timer);
      this.resolveDone();
    }
    return this.done;
  }
}

module.exports.CreditPump = CreditPump;
