"use strict";

// Sharded-adapter factories for helpers/cluster.js createCluster (node specs "official-sharded"
// and "native-sharded"), and SHARDNUMSUB / SHARDCHANNELS counters over a standalone Redis or
// a Redis Cluster (subscriptions are node-local, so cluster counts are summed over every node).

const path = require("path");
const { adapters, clientMakers, createCluster, loadNative } = require("./cluster");
const { cli, waitUntil } = require("./redis");

adapters["official-sharded"] = async (target, opts = {}, clientKind = "node-redis-v5") => {
  const { createShardedAdapter } = require("@socket.io/redis-adapter");
  const pair = await clientMakers[clientKind](target);
  if (clientKind.endsWith("-cluster")) {
    // Quirk of the official adapter + node-redis cluster (as in helpers/cluster.js for the
    // classic one): close() and delete-room send SUNSUBSCRIBE without catching; the cluster
    // client destroys a shard's pub/sub connection once it has no channel left, and calls
    // still queued on it reject with "The client is closed" (unhandled). Swallow those.
    const orig = pair.sub.sUnsubscribe;
    pair.sub.sUnsubscribe = (...args) =>
      Promise.resolve(orig.apply(pair.sub, args)).catch(() => {});
  }
  return {
    name: `official-sharded(${clientKind})`,
    adapter: createShardedAdapter(pair.pub, pair.sub, opts),
    ...pair,
  };
};

adapters["native-sharded"] = async (target, opts = {}, clientKind = "node-redis-v5") => {
  const { createShardedAdapter } = loadNative();
  if (clientKind === "url") {
    const url = Array.isArray(target) ? target[0] : target;
    return {
      name: "native-sharded(url)",
      adapter: createShardedAdapter(url, undefined, opts),
      close: async () => {},
    };
  }
  const pair = await clientMakers[clientKind](target);
  return {
    name: `native-sharded(${clientKind})`,
    adapter: createShardedAdapter(pair.pub, pair.sub, opts),
    ...pair,
  };
};

function nodesOf(handle) {
  return (handle.nodes || [handle]).filter((n) => n.isRunning());
}

/** PUBSUB SHARDNUMSUB <channel>, summed over the nodes. */
async function shardNumSub(handle, channel) {
  let sum = 0;
  for (const n of nodesOf(handle)) {
    const lines = (await cli(n.port, ["PUBSUB", "SHARDNUMSUB", channel])).split("\n");
    sum += parseInt(lines[lines.length - 1], 10) || 0;
  }
  return sum;
}

/** PUBSUB SHARDCHANNELS <pattern>, over every node (sorted, duplicates kept). */
async function shardChannels(handle, pattern = "*") {
  const out = [];
  for (const n of nodesOf(handle)) {
    const text = await cli(n.port, ["PUBSUB", "SHARDCHANNELS", pattern]);
    out.push(...text.split("\n").filter(Boolean));
  }
  return out.sort();
}

async function waitShardNumSub(handle, channel, expected, timeout = 10000) {
  await waitUntil(async () => (await shardNumSub(handle, channel)) === expected, {
    timeout,
    what: `SHARDNUMSUB ${channel} = ${expected} (is ${await shardNumSub(handle, channel).catch(() => "?")})`,
  });
}

/**
 * createCluster for sharded adapters: specs "native"/"official" map to the sharded factories,
 * and it resolves once every server holds its main channel subscription of each namespace.
 */
async function createShardedCluster(o) {
  const nodes = o.nodes.map((spec) => {
    const type = typeof spec === "string" ? spec : spec.type;
    const mapped = type === "native" || type === "official" ? `${type}-sharded` : type;
    return typeof spec === "string" ? mapped : { ...spec, type: mapped };
  });
  const { redisHandle, ...rest } = o;
  const ctx = await createCluster({ ...rest, nodes, adapterOpts: { ...o.adapterOpts } });
  ctx.prefix = (o.adapterOpts && o.adapterOpts.channelPrefix) || "socket.io";
  ctx.handle = redisHandle;
  ctx.waitForShardSubscriptions = async () => {
    const perNsp = new Map();
    for (const io of ctx.servers) {
      for (const name of io._nsps.keys()) perNsp.set(name, (perNsp.get(name) || 0) + 1);
    }
    for (const [name, count] of perNsp)
      await waitShardNumSub(redisHandle, `${ctx.prefix}#${name}#`, count);
  };
  /** Wait until `n` connections listen on the dynamic channel of `room`. */
  ctx.waitRoom = (room, n, nsp = "/") =>
    waitShardNumSub(redisHandle, `${ctx.prefix}#${nsp}#${room}#`, n);
  try {
    await ctx.waitForShardSubscriptions();
  } catch (e) {
    await ctx.closeAll();
    throw e;
  }
  return ctx;
}

/** Makes the next socket ids of every socket.io server `make()` (for custom-length ids). */
function withSocketIds(make) {
  const base64idPath = path.join(
    path.dirname(require.resolve("socket.io")),
    "contrib",
    "base64id.js",
  );
  const { base64id } = require(base64idPath);
  const original = base64id.generateId;
  base64id.generateId = make;
  return () => {
    base64id.generateId = original;
  };
}

module.exports = {
  createShardedCluster,
  shardNumSub,
  shardChannels,
  waitShardNumSub,
  withSocketIds,
};
