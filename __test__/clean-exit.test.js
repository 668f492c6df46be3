"use strict";

// After io.close() and emitter.close(), a process that used the classic, sharded and streams
// adapters and the emitter exits by itself, promptly: nothing native keeps the event loop alive.

const path = require("path");
const { spawn } = require("child_process");
const { startRedis } = require("./helpers/redis");

describe("clean exit", () => {
  let redis;
  beforeAll(async () => {
    redis = await startRedis();
  });
  afterAll(async () => {
    if (redis) await redis.stop();
  });

  it("exits within 2 s of closing everything, with code 0", async () => {
    const child = spawn(
      process.execPath,
      [path.join(__dirname, "helpers", "exit-scenario.js"), redis.url],
      { stdio: ["ignore", "pipe", "inherit"] },
    );
    let out = "";
    let closedAt;
    child.stdout.on("data", (d) => {
      out += d;
      const m = /CLOSED (\d+)/.exec(out);
      if (m && !closedAt) closedAt = Date.now();
    });
    const killer = setTimeout(() => child.kill("SIGKILL"), 20000);
    const code = await new Promise((resolve) =>
      child.once("exit", (c, signal) => resolve(c ?? signal)),
    );
    clearTimeout(killer);
    const exitMs = Date.now() - closedAt;
    console.log(
      `process exited ${exitMs} ms after closing the adapters and the emitter (code ${code})`,
    );
    expect(closedAt).toBeDefined();
    expect(code).toBe(0);
    expect(exitMs).toBeLessThan(2000);
  }, 30000);
});
