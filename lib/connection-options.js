"use strict";
// Reads where Redis is from what users already pass to the official packages: node-redis v4/v5
// clients and clusters, ioredis clients and clusters (sentinels included), a URL, or a plain
// options object. Only settings are read; the Rust core opens its own connections.

class InvalidRedisClientError extends TypeError {
  constructor(message) {
    super(`socket.io-redis-native: ${message}`);
    this.name = "InvalidRedisClientError";
  }
}

function parseHostPort(entry) {
  if (typeof entry === "number") return { host: "127.0.0.1", port: entry };
  if (typeof entry === "string") {
    const url = new URL(entry.includes("://") ? entry : `redis://${entry}`);
    return { host: url.hostname || "127.0.0.1", port: Number(url.port || 6379) };
  }
  if (entry && typeof entry === "object") {
    if (entry.url) return parseHostPort(entry.url);
    const socket = entry.socket || entry;
    return { host: socket.host || "127.0.0.1", port: Number(socket.port || 6379) };
  }
  throw new InvalidRedisClientError(`cannot read a Redis node address from ${typeof entry}`);
}

/** A PEM option of Node's `tls.connect` (string, Buffer or an array of them) as one string. */
function pem(value) {
  if (value === undefined || value === null) return undefined;
  if (Array.isArray(value)) return value.map(pem).join("\n");
  return Buffer.isBuffer(value) ? value.toString("utf8") : String(value);
}

/**
 * `tls`: false, true, or an object with Node's TLS options (ioredis `tls`, node-redis `socket`):
 * `ca`, `cert`, `key` (PEM) and `rejectUnauthorized` are carried to the Rust core.
 */
function tlsSettings(tls) {
  if (!tls) return { tls: false, tlsInsecure: false };
  const o = typeof tls === "object" ? tls : {};
  return {
    tls: true,
    tlsInsecure: o.rejectUnauthorized === false,
    tlsCa: pem(o.ca),
    tlsCert: pem(o.cert),
    tlsKey: pem(o.key),
  };
}

/**
 * The database index as a number. node-redis sends `database` as given (`SELECT "3"` works) and
 * ioredis parses a string `db`, so `database: process.env.REDIS_DB` is fine with the official
 * packages; the Rust core wants an integer.
 */
function databaseIndex(db) {
  if (db === undefined || db === null || db === "") return undefined;
  const n = typeof db === "string" && /^\s*\d+\s*$/.test(db) ? Number(db) : db;
  if (!Number.isSafeInteger(n) || n < 0) {
    throw new InvalidRedisClientError(
      `invalid database ${JSON.stringify(db)}: a non-negative integer is expected`,
    );
  }
  return n;
}

function definedOnly(obj) {
  const out = {};
  for (const [k, v] of Object.entries(obj)) {
    if (v !== undefined && v !== null && v !== "") out[k] = v;
  }
  return out;
}

function fromNodeRedisClient(options) {
  const socket = options.socket || {};
  const out = {
    topology: "standalone",
    username: options.username,
    password: options.password,
    db: options.database,
    connectTimeoutMs: socket.connectTimeout,
    ...tlsSettings(
      socket.tls || (options.url && options.url.startsWith("rediss://")) ? socket : false,
    ),
  };
  if (options.url) {
    out.url = options.url;
  } else {
    out.nodes = [parseHostPort(socket)];
  }
  return out;
}

function fromNodeRedisCluster(options) {
  const defaults = options.defaults || {};
  const socket = defaults.socket || {};
  const nodes = options.rootNodes.map(parseHostPort);
  const firstUrl = options.rootNodes.find((n) => n && n.url)?.url;
  let username = defaults.username;
  let password = defaults.password;
  if (firstUrl && !password) {
    const u = new URL(firstUrl);
    username = username || decodeURIComponent(u.username) || undefined;
    password = decodeURIComponent(u.password) || undefined;
  }
  return {
    topology: "cluster",
    nodes,
    username,
    password,
    ...tlsSettings(socket.tls || (firstUrl && firstUrl.startsWith("rediss://")) ? socket : false),
  };
}

// node-redis v5 keeps the cluster options in `_options`; older builds in `options`.
function nodeRedisClusterOptions(client) {
  for (const options of [client.options, client._options]) {
    if (options && Array.isArray(options.rootNodes)) return options;
  }
  return undefined;
}

// node-redis v4 hides the cluster options; a connected cluster exposes its masters.
function fromNodeRedisV4Cluster(cluster) {
  const masters = cluster.masters || [];
  if (masters.length === 0) {
    throw new InvalidRedisClientError(
      "a node-redis v4 cluster must be connected (await cluster.connect()) before createAdapter()",
    );
  }
  const clientOptions = (masters[0].client && masters[0].client.options) || {};
  return {
    topology: "cluster",
    nodes: masters.map((m) => ({ host: m.host, port: Number(m.port) })),
    username: clientOptions.username,
    password: clientOptions.password,
    ...tlsSettings(clientOptions.socket && clientOptions.socket.tls ? clientOptions.socket : false),
  };
}

function fromIORedis(options) {
  if (Array.isArray(options.sentinels) && options.sentinels.length > 0) {
    return {
      topology: "sentinel",
      nodes: options.sentinels.map(parseHostPort),
      sentinelMaster: options.name,
      sentinelUsername: options.sentinelUsername,
      sentinelPassword: options.sentinelPassword,
      username: options.username,
      password: options.password,
      db: options.db,
      ...tlsSettings(options.tls),
    };
  }
  if (options.path) {
    throw new InvalidRedisClientError("unix socket paths are not supported; use host and port");
  }
  return {
    topology: "standalone",
    nodes: [{ host: options.host || "127.0.0.1", port: Number(options.port || 6379) }],
    username: options.username,
    password: options.password,
    db: options.db,
    connectTimeoutMs: options.connectTimeout,
    ...tlsSettings(options.tls),
  };
}

/**
 * The options object of node-redis v5 `createSentinel({ name, sentinelRootNodes,
 * nodeClientOptions, sentinelClientOptions })`. The sentinel client itself keeps them in private
 * fields (see isNodeRedisSentinel), so users pass this object instead.
 */
function fromNodeRedisSentinel(options) {
  if (!options.name) {
    throw new InvalidRedisClientError("sentinel options need the master's `name`");
  }
  const node = options.nodeClientOptions || {};
  const sentinel = options.sentinelClientOptions || {};
  const socket = node.socket || {};
  return {
    topology: "sentinel",
    nodes: options.sentinelRootNodes.map(parseHostPort),
    sentinelMaster: options.name,
    sentinelUsername: sentinel.username,
    sentinelPassword: sentinel.password,
    username: node.username,
    password: node.password,
    db: node.database,
    connectTimeoutMs: socket.connectTimeout,
    ...tlsSettings(socket.tls ? socket : false),
  };
}

/**
 * A node-redis v5 sentinel client (`createSentinel`): its master name, credentials and TLS
 * settings live in private class fields, and its public getters only show addresses once
 * connected, so its settings cannot be read.
 */
function isNodeRedisSentinel(client) {
  return (
    typeof client.getSentinelNode === "function" &&
    typeof client.getMasterNode === "function" &&
    typeof client.getReplicaNodes === "function"
  );
}

function fromIORedisCluster(cluster) {
  const redisOptions = (cluster.options && cluster.options.redisOptions) || {};
  return {
    topology: "cluster",
    nodes: cluster.startupNodes.map(parseHostPort),
    username: redisOptions.username,
    password: redisOptions.password,
    ...tlsSettings(redisOptions.tls),
  };
}

function fromPlainOptions(options) {
  if (options.rootNodes) return fromNodeRedisCluster(options);
  if (Array.isArray(options.sentinelRootNodes)) return fromNodeRedisSentinel(options);
  if (options.sentinels) return fromIORedis(options);
  if (options.startupNodes) {
    return fromIORedisCluster({ startupNodes: options.startupNodes, options });
  }
  if (options.url || options.socket) return fromNodeRedisClient(options);
  return fromIORedis(options);
}

/**
 * Connection settings (as sent to the Rust core) for whatever the user passed.
 * @returns {object} plain settings: topology, url or nodes, credentials, db, tls
 */
function connectionOptionsFrom(client) {
  if (client === undefined || client === null) {
    throw new InvalidRedisClientError(
      "a Redis client, a URL or an options object is required (got " + client + ")",
    );
  }
  let settings;
  if (typeof client === "string") {
    try {
      new URL(client);
    } catch {
      throw new InvalidRedisClientError(`invalid Redis URL`);
    }
    settings = { topology: "standalone", url: client };
  } else if (typeof client !== "object" && typeof client !== "function") {
    throw new InvalidRedisClientError(`unsupported Redis client of type ${typeof client}`);
  } else if (isNodeRedisSentinel(client)) {
    throw new InvalidRedisClientError(
      "a node-redis createSentinel() client keeps its settings (master name, credentials) " +
        "private and cannot be read; pass the options object given to createSentinel() " +
        "({ name, sentinelRootNodes, nodeClientOptions, sentinelClientOptions }) instead, " +
        "or an ioredis client with `sentinels` and `name`",
    );
  } else if (client.isCluster === true && Array.isArray(client.startupNodes)) {
    settings = fromIORedisCluster(client);
  } else if (nodeRedisClusterOptions(client)) {
    settings = fromNodeRedisCluster(nodeRedisClusterOptions(client));
  } else if (typeof client.getMasters === "function" && typeof client.sSubscribe === "function") {
    settings = fromNodeRedisV4Cluster(client);
  } else if (typeof client.pSubscribe === "function" && client.options) {
    settings = fromNodeRedisClient(client.options);
  } else if (typeof client.psubscribe === "function" && client.options) {
    settings = fromIORedis(client.options);
  } else if (typeof client.publish !== "function" && typeof client.pSubscribe !== "function") {
    settings = fromPlainOptions(client);
  } else {
    throw new InvalidRedisClientError(
      "unsupported Redis client: pass a node-redis v4/v5 or ioredis client or cluster, a URL, or an options object",
    );
  }
  return definedOnly({ ...settings, db: databaseIndex(settings.db) });
}

/**
 * The JSON handed to a native driver: the client's settings plus the adapter options that act
 * on connections (`healthCheckInterval`: period of the subscriber's self-ping, ms, 0 = off).
 */
function nativeConnectionJson(client, opts) {
  const settings = connectionOptionsFrom(client);
  if (opts && opts.healthCheckInterval !== undefined) {
    settings.healthCheckIntervalMs = opts.healthCheckInterval;
  }
  return JSON.stringify(settings);
}

module.exports = { connectionOptionsFrom, nativeConnectionJson, InvalidRedisClientError };
