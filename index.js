"use strict";
// socket.io-redis-native: drop-in Socket.IO Redis adapters on a Rust core.
const { createAdapter, RedisAdapter } = require("./lib/classic-adapter");
const { InvalidOptionError } = require("./lib/options");
const { InvalidRedisClientError } = require("./lib/connection-options");

// As @socket.io/redis-adapter: the module itself is createAdapter.
module.exports = exports = createAdapter;
exports.createAdapter = createAdapter;
exports.RedisAdapter = RedisAdapter;
exports.InvalidOptionError = InvalidOptionError;
exports.InvalidRedisClientError = InvalidRedisClientError;

// Emitter (as @socket.io/redis-emitter, plus the sharded and streams targets).
const emitter = require("./lib/emitter");
exports.Emitter = emitter.Emitter;
exports.BroadcastOperator = emitter.BroadcastOperator;
exports.RESERVED_EVENTS = emitter.RESERVED_EVENTS;

// Streams adapter (as @socket.io/redis-streams-adapter 0.3; also `socket.io-redis-native/streams`).
exports.createStreamsAdapter = require("./lib/streams-adapter").createStreamsAdapter;

// Sharded adapter (Redis >= 7 sharded pub/sub), as @socket.io/redis-adapter createShardedAdapter.
exports.createShardedAdapter = require("./lib/sharded-adapter").createShardedAdapter;

// adapter.metrics() in the Prometheus text format (not in the official packages).
exports.toPrometheus = require("./lib/prometheus").toPrometheus;
exports.PROMETHEUS_CONTENT_TYPE = require("./lib/prometheus").PROMETHEUS_CONTENT_TYPE;
