"use strict";
// The adapter kinds the bench compares (--kind): for each, how a bench node builds the
// official adapter and ours, which raw Redis reference fits it, and which scenarios do not
// apply (with the reason printed in the output).
//
// Every adapter gets `key` (distinct per cluster: bench-official / bench-ours) as its only
// prefix, so the official and the ours cluster, both up at once, never hear each other.

const path = require("path");

const KINDS = {
  classic: {
    official: "@socket.io/redis-adapter 8.3 createAdapter(pub, sub, { key }) (node-redis v5)",
    ours: "socket.io-redis-native createAdapter(url, undefined, { key })",
    raw: "PUBLISH / SUBSCRIBE",
    skip: {},
  },
  sharded: {
    official:
      "@socket.io/redis-adapter 8.3 createShardedAdapter(pub, sub, { channelPrefix: key }) (node-redis v5)",
    ours: "socket.io-redis-native createShardedAdapter(url, undefined, { channelPrefix: key })",
    raw: "SPUBLISH / SSUBSCRIBE",
    skip: {
      emitter:
        "emitter scenario skipped for --kind sharded: the official @socket.io/redis-emitter 5.1 publishes only on the classic adapter's channels",
    },
  },
  streams: {
    official:
      "@socket.io/redis-streams-adapter 0.3 createAdapter(client, { streamName: key, channelPrefix: key }) (node-redis v5)",
    ours: "socket.io-redis-native createStreamsAdapter(url, { streamName: key, channelPrefix: key })",
    // A raw XADD / XREAD reference is not written; PUBLISH says what Redis delivers at most.
    raw: "PUBLISH / SUBSCRIBE (no raw XADD / XREAD reference: kept as the machine's pub/sub rate)",
    skip: {
      emitter:
        "emitter scenario skipped for --kind streams: the official @socket.io/redis-emitter 5.1 publishes only on the classic adapter's channels",
    },
  },
};

function kindInfo(kind) {
  const info = KINDS[kind];
  if (!info) throw new Error(`unknown --kind ${kind} (classic, sharded or streams)`);
  return info;
}

/** node-redis v5 pub + sub clients, connected; errors logged with the node's name. */
async function connectPair(url, name) {
  const { createClient } = require("redis");
  const pub = createClient({ url });
  const sub = pub.duplicate();
  pub.on("error", (e) => console.error(`[${name}] redis pub: ${e.message}`));
  sub.on("error", (e) => console.error(`[${name}] redis sub: ${e.message}`));
  await Promise.all([pub.connect(), sub.connect()]);
  return { pub, sub, close: () => Promise.all([pub.quit(), sub.quit()]) };
}

/**
 * The Socket.IO adapter of one bench node: { adapter, close }.
 * @param {{ kind: string, adapter: "official" | "ours", redisUrl: string, key: string, name: string }} cfg
 */
async function makeAdapter(cfg) {
  const kind = cfg.kind || "classic";
  kindInfo(kind);
  const ours = cfg.adapter === "ours" ? require(path.join(__dirname, "..")) : null;
  if (kind === "classic") {
    if (ours) return { adapter: ours.createAdapter(cfg.redisUrl, undefined, { key: cfg.key }) };
    const { createAdapter } = require("@socket.io/redis-adapter");
    const pair = await connectPair(cfg.redisUrl, cfg.name);
    return { adapter: createAdapter(pair.pub, pair.sub, { key: cfg.key }), close: pair.close };
  }
  if (kind === "sharded") {
    const opts = { channelPrefix: cfg.key };
    if (ours) return { adapter: ours.createShardedAdapter(cfg.redisUrl, undefined, opts) };
    const { createShardedAdapter } = require("@socket.io/redis-adapter");
    const pair = await connectPair(cfg.redisUrl, cfg.name);
    return { adapter: createShardedAdapter(pair.pub, pair.sub, opts), close: pair.close };
  }
  // streams: the request/response channels also carry the key, or the two clusters would
  // count each other's nodes in PUBSUB NUMSUB and wait for answers that never come.
  const opts = { streamName: cfg.key, channelPrefix: cfg.key };
  if (ours) return { adapter: ours.createStreamsAdapter(cfg.redisUrl, opts) };
  const { createAdapter } = require("@socket.io/redis-streams-adapter");
  const { createClient } = require("redis");
  const client = createClient({ url: cfg.redisUrl });
  client.on("error", (e) => console.error(`[${cfg.name}] redis: ${e.message}`));
  await client.connect();
  // the adapter duplicates `client` for its stream reader and its subscriber
  return { adapter: createAdapter(client, opts), close: () => client.quit() };
}

module.exports = { KINDS, kindInfo, makeAdapter };
