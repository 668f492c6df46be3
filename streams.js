"use strict";
// socket.io-redis-native/streams: drop-in for @socket.io/redis-streams-adapter 0.3.
const { createStreamsAdapter, RedisStreamsAdapter } = require("./lib/streams-adapter");

exports.createAdapter = createStreamsAdapter;
exports.createStreamsAdapter = createStreamsAdapter;
exports.RedisStreamsAdapter = RedisStreamsAdapter;
