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

// Sharded adapter (Redis >= 7 sharded pub/sub), as @socket.io/redis-adapter createShardedAdapter.
exports.createShardedAdapter = require("./lib/sharded-adapter").createShardedAdapter;
