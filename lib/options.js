"use strict";
// Option checks: the official packages accept anything and misbehave later; a drop-in that
// fails at creation with a clear message is safer and changes nothing for valid options.

class InvalidOptionError extends TypeError {
  constructor(message) {
    super(`socket.io-redis-native: ${message}`);
    this.name = "InvalidOptionError";
  }
}

function check(opts, name, predicate, expected) {
  if (opts[name] !== undefined && !predicate(opts[name])) {
    throw new InvalidOptionError(
      `option "${name}" must be ${expected}, got ${JSON.stringify(opts[name])}`,
    );
  }
}

const isString = (v) => typeof v === "string";
const isNonNegativeInt = (v) => Number.isInteger(v) && v >= 0 && v <= 2 ** 31 - 1;
const isBoolean = (v) => typeof v === "boolean";
const isParser = (v) => v && typeof v.encode === "function" && typeof v.decode === "function";

function validateClassicOptions(opts) {
  if (typeof opts !== "object" || opts === null) {
    throw new InvalidOptionError(
      `options must be an object, got ${opts === null ? "null" : typeof opts}`,
    );
  }
  check(opts, "key", isString, "a string");
  check(opts, "requestsTimeout", isNonNegativeInt, "a non-negative integer (milliseconds)");
  check(opts, "publishOnSpecificResponseChannel", isBoolean, "a boolean");
  check(opts, "parser", isParser, "an object with encode() and decode()");
  check(opts, "coalesceWebSocketWrites", isBoolean, "a boolean");
  check(opts, "lazyRemoteHandshakes", isBoolean, "a boolean");
  checkReliabilityOptions(opts);
  return opts;
}

/** Options every adapter accepts beyond upstream's (README "Reliability and observability"). */
function checkReliabilityOptions(opts) {
  check(opts, "healthCheckInterval", isNonNegativeInt, "a non-negative integer (milliseconds)");
  check(opts, "maxPendingDeliveryBytes", isNonNegativeInt, "a non-negative integer (bytes)");
}

module.exports = {
  InvalidOptionError,
  validateClassicOptions,
  checkReliabilityOptions,
  check,
  isString,
  isNonNegativeInt,
  isBoolean,
};
