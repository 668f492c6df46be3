"use strict";
// Builds the addon and puts it where binding.js looks: `cargo build` plus a copy named the
// napi-rs way (socket-io-redis-native.<platform>-<arch>-<abi>.node) in the package root (the
// development build binding.js loads first) and in npm/<triple>/ (the platform package that
// `npm run pack` packs).
// This replaces `napi build` (@napi-rs/cli 3.10), whose dependency tree needs Node >= 22 and
// breaks `npm ci` on Node 20; the Rust side still uses napi-build for link settings.
const { execFileSync } = require("child_process");
const fs = require("fs");
const path = require("path");
const { binaryFile, platformTriple } = require("../lib/platform");

const release = !process.argv.includes("--debug");
const root = path.join(__dirname, "..");
const args = ["build", "--lib"];
if (release) args.push("--release");
execFileSync("cargo", args, { cwd: root, stdio: "inherit" });

const libName = {
  linux: "libsocket_io_redis_native.so",
  darwin: "libsocket_io_redis_native.dylib",
  win32: "socket_io_redis_native.dll",
}[process.platform];
if (!libName) throw new Error(`unsupported platform ${process.platform}`);

const triple = platformTriple();
const targetDir = process.env.CARGO_TARGET_DIR || path.join(root, "target");
const built = path.join(targetDir, release ? "release" : "debug", libName);
const destinations = [path.join(root, binaryFile(triple))];
const platformDir = path.join(root, "npm", triple);
if (fs.existsSync(platformDir)) destinations.push(path.join(platformDir, binaryFile(triple)));
else console.warn(`no npm/${triple}/ platform package: only the development copy is written`);
for (const dest of destinations) {
  // Copy to a temp name then rename: a running process may have the old file mapped.
  fs.copyFileSync(built, `${dest}.tmp`);
  fs.renameSync(`${dest}.tmp`, dest);
  console.log(`built ${path.relative(root, dest)}`);
}
