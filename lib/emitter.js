"use strict";
// Emitter: the API of @socket.io/redis-emitter 5.1 (Emitter, BroadcastOperator,
// RESERVED_EVENTS), writing through the native publisher. Beyond the official one it can target
// the sharded and the streams adapters, and every write returns a promise of its outcome.

const msgpack = require("notepack.io");
const { createTarget } = require("./emitter-wire");
const { EmitterConnection } = require("./emitter-connection");
const { InvalidOptionError, check, isString, isBoolean } = require("./options");

const RESERVED_EVENTS = new Set([
  "connect",
  "connect_error",
  "disconnect",
  "disconnecting",
  "newListener",
  "removeListener",
]);

const ADAPTERS = ["classic", "sharded", "streams"];
const SUBSCRIPTION_MODES = ["static", "dynamic", "dynamic-private"];
const isPositiveInt = (v) => Number.isInteger(v) && v >= 1 && v <= 2 ** 31 - 1;
const isU32 = (v) => Number.isInteger(v) && v >= 0 && v <= 2 ** 32 - 1;
const isEncoder = (v) => v && typeof v.encode === "function";

// The connection shared by an emitter and the emitters derived from it with of().
const kConnection = Symbol("connection");
const kTarget = Symbol("target");

/** A fresh operator of an emitter: every room, no flag. */
function operator(emitter) {
  return new BroadcastOperator(emitter[kConnection], {
    nsp: emitter.nsp,
    target: emitter[kTarget],
  });
}

/**
 * Options of the Emitter: those of @socket.io/redis-emitter (`key`, `parser`), plus the choice of
 * the adapter the Socket.IO servers run, and that adapter's own options (same names and defaults
 * as in the official adapter packages, so the values can be copied from the server's config).
 *
 * - `adapter`: `"classic"` (default; `createAdapter` of @socket.io/redis-adapter or of this
 *   package: PUBLISH, byte-identical to @socket.io/redis-emitter), `"sharded"`
 *   (`createShardedAdapter`: SPUBLISH of cluster-adapter messages, Redis >= 7) or `"streams"`
 *   (@socket.io/redis-streams-adapter 0.3: XADD, and PUBLISH for serverSideEmit).
 * - classic: `key` (default `"socket.io"`), `parser` (default notepack.io; only `encode` is used,
 *   and only for broadcasts, as the official emitter).
 * - sharded: `channelPrefix` (default: `key`, so `"socket.io"`), `subscriptionMode`
 *   (`"static"`, `"dynamic"` (default) or `"dynamic-private"`: must be the servers' mode, it
 *   decides the channel of a broadcast to one room).
 * - streams: `streamName` (default `"socket.io"`), `streamCount` (default 1), `maxLen` (default
 *   10000, `XADD MAXLEN ~`), `channelPrefix` (default: `key`), `useShardedPubSub` (default
 *   false), `onlyPlaintext` (default false).
 *
 * @typedef {object} EmitterOptions
 * @property {"classic"|"sharded"|"streams"} [adapter]
 * @property {string} [key]
 * @property {{encode: (msg: any) => any}} [parser]
 * @property {string} [channelPrefix]
 * @property {"static"|"dynamic"|"dynamic-private"} [subscriptionMode]
 * @property {string} [streamName]
 * @property {number} [streamCount]
 * @property {number} [maxLen]
 * @property {boolean} [useShardedPubSub]
 * @property {boolean} [onlyPlaintext]
 */

function resolveOptions(opts) {
  if (opts === undefined || opts === null) opts = {};
  if (typeof opts !== "object") {
    throw new InvalidOptionError(`options must be an object, got ${typeof opts}`);
  }
  check(opts, "adapter", (v) => ADAPTERS.includes(v), `one of ${ADAPTERS.join(", ")}`);
  check(opts, "key", isString, "a string");
  check(opts, "parser", isEncoder, "an object with encode()");
  check(opts, "channelPrefix", isString, "a string");
  check(
    opts,
    "subscriptionMode",
    (v) => SUBSCRIPTION_MODES.includes(v),
    `one of ${SUBSCRIPTION_MODES.join(", ")}`,
  );
  check(opts, "streamName", isString, "a string");
  check(opts, "streamCount", isPositiveInt, "a positive integer");
  check(opts, "maxLen", isU32, "a non-negative integer");
  check(opts, "useShardedPubSub", isBoolean, "a boolean");
  check(opts, "onlyPlaintext", isBoolean, "a boolean");
  // as the official emitter: defaults first, then everything the user gave
  return Object.assign({ key: "socket.io", parser: msgpack }, opts);
}

function targetOptions(opts) {
  return {
    adapter: opts.adapter || "classic",
    key: opts.key,
    parser: opts.parser,
    channelPrefix: opts.channelPrefix !== undefined ? opts.channelPrefix : opts.key,
    subscriptionMode: opts.subscriptionMode || "dynamic",
    streamName: opts.streamName !== undefined ? opts.streamName : "socket.io",
    streamCount: opts.streamCount !== undefined ? opts.streamCount : 1,
    maxLen: opts.maxLen !== undefined ? opts.maxLen : 10000,
    useShardedPubSub: opts.useShardedPubSub === true,
    onlyPlaintext: opts.onlyPlaintext === true,
  };
}

/**
 * Sends to the Socket.IO servers of a cluster from any process (no Socket.IO server needed).
 *
 * As @socket.io/redis-emitter, except that each write (emit, socketsJoin, socketsLeave,
 * disconnectSockets, serverSideEmit) returns a promise: it resolves with `true` once Redis
 * accepted the message and rejects with the Redis error. The promise is truthy, so
 * `if (emitter.emit(...))` still works, and ignoring it never causes an unhandled rejection.
 */
class Emitter {
  /**
   * @param redisClient - a node-redis v4/v5 or ioredis client or cluster, a URL or an options
   *   object; only its settings are read, the emitter opens its own connection on first use
   * @param {EmitterOptions} [opts]
   * @param {string} [nsp] - namespace, "/" by default
   */
  constructor(redisClient, opts, nsp = "/") {
    this.redisClient = redisClient;
    this.nsp = nsp;
    this.opts = resolveOptions(opts);
    this[kTarget] = createTarget(targetOptions(this.opts));
    this[kConnection] = new EmitterConnection(redisClient);
  }

  /**
   * Return a new emitter for the given namespace (sharing this emitter's connection).
   *
   * @param nsp - namespace
   */
  of(nsp) {
    const child = Object.create(Emitter.prototype);
    child.redisClient = this.redisClient;
    child.nsp = (nsp[0] !== "/" ? "/" : "") + nsp;
    child.opts = this.opts;
    child[kTarget] = this[kTarget];
    child[kConnection] = this[kConnection];
    return child;
  }

  /**
   * Emits to all clients.
   *
   * @return a promise of `true`, rejected with the Redis error
   */
  emit(ev, ...args) {
    return operator(this).emit(ev, ...args);
  }

  /** Targets a room when emitting. */
  to(room) {
    return operator(this).to(room);
  }

  /** Targets a room when emitting. */
  in(room) {
    return operator(this).in(room);
  }

  /** Excludes a room when emitting. */
  except(room) {
    return operator(this).except(room);
  }

  /** The event data may be lost if the client is not ready to receive messages. */
  get volatile() {
    return operator(this).volatile;
  }

  /** Sets the compress flag. */
  compress(compress) {
    return operator(this).compress(compress);
  }

  /** Makes the matching socket instances join the specified rooms. */
  socketsJoin(rooms) {
    return operator(this).socketsJoin(rooms);
  }

  /** Makes the matching socket instances leave the specified rooms. */
  socketsLeave(rooms) {
    return operator(this).socketsLeave(rooms);
  }

  /** Makes the matching socket instances disconnect. */
  disconnectSockets(close = false) {
    return operator(this).disconnectSockets(close);
  }

  /**
   * Send a packet to the Socket.IO servers in the cluster.
   *
   * @param args - any number of serializable arguments (no acknowledgement callback)
   */
  serverSideEmit(...args) {
    const withAck = typeof args[args.length - 1] === "function";
    if (withAck) {
      throw new Error("Acknowledgements are not supported");
    }
    return this[kConnection].run(
      this[kTarget].write(this.nsp, { kind: "serverSideEmit", data: args }),
    );
  }

  /**
   * Waits for the writes under way, then closes the connection (shared with the emitters made
   * by of()). Optional: a script that only emits exits on its own.
   */
  close() {
    return this[kConnection].close();
  }
}

class BroadcastOperator {
  constructor(
    connection,
    broadcastOptions,
    rooms = new Set(),
    exceptRooms = new Set(),
    flags = {},
  ) {
    this.connection = connection;
    this.broadcastOptions = broadcastOptions;
    this.rooms = rooms;
    this.exceptRooms = exceptRooms;
    this.flags = flags;
  }

  derive(rooms, exceptRooms, flags) {
    return new BroadcastOperator(this.connection, this.broadcastOptions, rooms, exceptRooms, flags);
  }

  /** Targets a room when emitting; returns a new BroadcastOperator. */
  to(room) {
    const rooms = new Set(this.rooms);
    if (Array.isArray(room)) {
      room.forEach((r) => rooms.add(r));
    } else {
      rooms.add(room);
    }
    return this.derive(rooms, this.exceptRooms, this.flags);
  }

  /** Targets a room when emitting; returns a new BroadcastOperator. */
  in(room) {
    return this.to(room);
  }

  /** Excludes a room when emitting; returns a new BroadcastOperator. */
  except(room) {
    const exceptRooms = new Set(this.exceptRooms);
    if (Array.isArray(room)) {
      room.forEach((r) => exceptRooms.add(r));
    } else {
      exceptRooms.add(room);
    }
    return this.derive(this.rooms, exceptRooms, this.flags);
  }

  /** Sets the compress flag; returns a new BroadcastOperator. */
  compress(compress) {
    return this.derive(this.rooms, this.exceptRooms, Object.assign({}, this.flags, { compress }));
  }

  /** The event data may be lost if the client is not ready; returns a new BroadcastOperator. */
  get volatile() {
    return this.derive(
      this.rooms,
      this.exceptRooms,
      Object.assign({}, this.flags, { volatile: true }),
    );
  }

  write(op) {
    const { nsp, target } = this.broadcastOptions;
    op.rooms = [...this.rooms];
    op.except = [...this.exceptRooms];
    op.flags = this.flags;
    return this.connection.run(target.write(nsp, op));
  }

  /**
   * Emits to all matching clients.
   *
   * @return a promise of `true`, rejected with the Redis error
   */
  emit(ev, ...args) {
    if (RESERVED_EVENTS.has(ev)) {
      throw new Error(`"${ev}" is a reserved event name`);
    }
    return this.write({ kind: "broadcast", data: [ev, ...args] });
  }

  /** Makes the matching socket instances join the specified rooms. */
  socketsJoin(rooms) {
    return this.write({ kind: "join", targetRooms: Array.isArray(rooms) ? rooms : [rooms] });
  }

  /** Makes the matching socket instances leave the specified rooms. */
  socketsLeave(rooms) {
    return this.write({ kind: "leave", targetRooms: Array.isArray(rooms) ? rooms : [rooms] });
  }

  /** Makes the matching socket instances disconnect. */
  disconnectSockets(close = false) {
    return this.write({ kind: "disconnect", close });
  }
}

module.exports = { Emitter, BroadcastOperator, RESERVED_EVENTS };
