"use strict";
// Loads the native addon for this platform: a binary built in this folder first (development,
// `npm run build`), then the per-platform package from npm/ (napi-rs layout).
const { join } = require("path");
const { existsSync } = require("fs");

function platformTriple() {
  const { platform, arch } = process;
  if (platform === "linux") {
    const glibc = process.report?.getReport?.().header?.glibcVersionRuntime;
    return `linux-${arch}-${glibc ? "gnu" : "musl"}`;
  }
  if (platform === "win32") return `win32-${arch}-msvc`;
  return `${platform}-${arch}`;
}

function load() {
  const triple = platformTriple();
  const local = join(__dirname, `socket-io-redis-native.${triple}.node`);
  if (existsSync(local)) return require(local);
  try {
    return require(`socket.io-redis-native-${triple}`);
  } catch (e) {
    throw new Error(
      `socket.io-redis-native: no native binary for ${triple}. ` +
        `Build it with "npm run build" (needs a Rust toolchain) or install socket.io-redis-native-${triple}. ` +
        `Cause: ${e.message}`,
    );
  }
}

module.exports = load();
