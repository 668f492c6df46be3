"use strict";
// Runs bench/native-floor.rs: the request round trip of raw-request.js with no JavaScript at all
// (blocking sockets, one Rust process asking, two answering), compiled here with `rustc -O`
// (standard library only) into bench/results/ when the source is newer than the binary.

const fs = require("fs");
const path = require("path");
const { execFile } = require("child_process");
const { promisify } = require("util");

const run = promisify(execFile);
const SOURCE = path.join(__dirname, "native-floor.rs");
const BINARY = path.join(__dirname, "results", "native-floor");

async function nativeFloorBinary() {
  const built = fs.existsSync(BINARY) && fs.statSync(BINARY).mtimeMs >= fs.statSync(SOURCE).mtimeMs;
  if (!built) {
    fs.mkdirSync(path.dirname(BINARY), { recursive: true });
    await run("rustc", ["-O", "--edition", "2021", "-o", BINARY, SOURCE]);
  }
  return BINARY;
}

/** One round: { opsRate, p50, p99 } (ms) of the native round trip, as runRequest reports. */
async function runNativeFloor(ctx, answerers = 2) {
  const binary = await nativeFloorBinary();
  const port = new URL(ctx.redisUrl).port;
  const { warmupMs, durationMs } = ctx.timing;
  const { stdout } = await run(
    binary,
    ["ask", port, String(answerers), String(warmupMs), String(durationMs)],
    { timeout: warmupMs + durationMs + 15000 },
  );
  const { opsRate, p50, p99 } = JSON.parse(stdout.trim().split("\n").pop());
  return { opsRate, p50, p99, errors: 0, result: answerers };
}

module.exports = { runNativeFloor };
