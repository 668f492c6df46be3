"use strict";
// Bench children that talk to Redis without a Socket.IO server:
//   raw-pub   a node-redis client PUBLISHing in credit-paced pipelined batches
//   raw-sub   a node-redis client SUBSCRIBEd to the same channel, counting (and timing)
//   emitter   the official @socket.io/redis-emitter or ours, emitting to a cluster
// Together raw-pub + raw-sub give the raw Redis pub/sub rate on this machine: the
// physical limit for a cross-node broadcast. With `sharded`, raw-pub / raw-sub use
// SPUBLISH / SSUBSCRIBE (the sharded adapter's commands) instead; with `stream`, XADD (MAXLEN
// ~ 10000, the streams adapters' default) to the stream `channel` and XREAD of it (the streams
// adapters' transport: every reader reads every entry).
//
// argv[2]: JSON { role, redisUrl, sharded?, stream?, channels? (raw-sub), channel? (raw-pub),
//   key?, which? }

const path = require("path");
const { createClient } = require("redis");
const { runChild, send, CreditPump } = require("./child-common");
const { Reservoir, nowUs } = require("./stats");

const cfg = JSON.parse(process.argv[2]);
let closing = false;

/** Entries an XREAD of the raw stream reader asks for at most. */
const STREAM_READ_COUNT = 1000;

/**
 * Reads the stream `key` from its end, entry after entry, until the client quits: what a
 * streams adapter's reader does, without the decoding. `onEntry(value)` per entry.
 */
async function readStream(client, key, onEntry) {
  let last = "$";
  for (;;) {
    const reply = await client.sendCommand([
      "XREAD",
      "COUNT",
      String(STREAM_READ_COUNT),
      "BLOCK",
      "1000",
      "STREAMS",
      key,
      last,
    ]);
    if (!reply) continue;
    for (const [, entries] of reply) {
      for (const [id, fields] of entries) {
        last = id.toString();
        onEntry(fields[1]);
      }
    }
  }
}

async function rawSub() {
  const client = createClient({ url: cfg.redisUrl });
  client.on("error", (e) => console.error(`[raw-sub] ${e.message}`));
  await client.connect();
  const latency = new Reservoir(1 << 17);
  let received = 0;
  let dirty = false;
  const onMessage = (message) => {
    // message: "<t>:<padding>" as a Buffer (a string from XREAD)
    const text = typeof message === "string";
    let t = 0;
    for (let i = 0; i < message.length; i++) {
      const c = text ? message.charCodeAt(i) : message[i];
      if (c < 0x30 || c > 0x39) break;
      t = t * 10 + (c - 0x30);
    }
    if (t > 0) latency.add((nowUs() - t) / 1000); // emitter payloads carry no leading timestamp
    received++;
    dirty = true;
  };
  if (cfg.stream) {
    // XREAD BLOCK holds its connection: the reader gets one of its own (gone with the process).
    const connection = client.duplicate();
    connection.on("error", (e) => console.error(`[raw-sub] ${e.message}`));
    await connection.connect();
    readStream(connection, cfg.channels[0], onMessage).catch((e) => {
      if (!closing) console.error(`[raw-sub] XREAD: ${e.message}`);
    });
  } else {
    await client[cfg.sharded ? "sSubscribe" : "subscribe"](cfg.channels, onMessage, true);
  }
  setInterval(() => {
    if (!dirty) return;
    dirty = false;
    send({ type: "progress", probes: [received] });
  }, 2);
  runChild({
    counters: () => ({ totals: [received], probes: [received] }),
    onMark: (reset) => {
      const out = { latency: latency.summary() };
      if (reset) latency.reset();
      return out;
    },
    onMessage(msg) {
      if (msg.type === "reset") {
        received = 0;
        latency.reset();
        return send({ type: "ok", id: msg.id });
      }
      if (msg.type === "close") {
        closing = true;
        send({ type: "ok", id: msg.id });
        return client.quit().finally(() => process.exit(0));
      }
      throw new Error(`unknown message ${msg.type}`);
    },
  });
  send({ type: "ready" });
}

async function makeEmitOne(payload) {
  const text = "x".repeat(payload.size);
  if (cfg.role === "raw-pub") {
    const client = createClient({ url: cfg.redisUrl });
    client.on("error", (e) => console.error(`[raw-pub] ${e.message}`));
    await client.connect();
    const pad = ":" + text;
    // node-redis pipelines every command written in the same tick: one batch, one write.
    const onError = () => {};
    const trim = ["MAXLEN", "~", "10000"];
    const publish = cfg.stream
      ? (message) => client.sendCommand(["XADD", cfg.channel, ...trim, "*", "d", message])
      : cfg.sharded
        ? (message) => client.sPublish(cfg.channel, message)
        : (message) => client.publish(cfg.channel, message);
    return {
      emitOne: () => publish(nowUs() + pad).catch(onError),
      close: () => client.quit(),
    };
  }
  let emitter;
  let client;
  if (cfg.which === "official") {
    const { Emitter } = require("@socket.io/redis-emitter");
    client = createClient({ url: cfg.redisUrl });
    await client.connect();
    emitter = new Emitter(client, { key: cfg.key });
  } else {
    const { Emitter } = require(path.join(__dirname, ".."));
    emitter = new Emitter(cfg.redisUrl, { key: cfg.key });
  }
  return {
    emitOne: () => emitter.emit("m", nowUs(), text),
    close: async () => {
      if (client) await client.quit();
      if (emitter && typeof emitter.close === "function") await emitter.close();
    },
  };
}

async function publisher() {
  let pump = null;
  let made = null; // one connection / emitter for the life of the process
  runChild({
    counters: () => ({ sent: pump ? pump.sent : 0, stalls: pump ? pump.stalls : 0 }),
    async onMessage(msg) {
      switch (msg.type) {
        case "bcast-start": {
          if (!made || made.size !== msg.payload.size) {
            if (made) await made.close();
            made = { ...(await makeEmitOne(msg.payload)), size: msg.payload.size };
          }
          pump = new CreditPump(made.emitOne, msg.pump);
          pump.start();
          return send({ type: "ok", id: msg.id });
        }
        case "credit":
          if (pump) pump.credit(msg.n);
          return;
        case "bcast-stop":
          if (pump) await pump.stop();
          return send({
            type: "ok",
            id: msg.id,
            sent: pump ? pump.sent : 0,
            stalls: pump ? pump.stalls : 0,
          });
        case "close":
          if (made) await made.close().catch(() => {});
          send({ type: "ok", id: msg.id });
          return setTimeout(() => process.exit(0), 20);
        default:
          throw new Error(`unknown message ${msg.type}`);
      }
    },
  });
  send({ type: "ready" });
}

(cfg.role === "raw-sub" ? rawSub() : publisher()).catch((e) => {
  console.error(`[bench ${cfg.role}]`, e);
  process.exit(1);
});
