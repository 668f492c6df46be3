"use strict";
// Child processes of the bench: a private redis-server on a free port, the IPC wrapper for
// node children (request/reply by id, snapshots), and cleanup of everything on any exit.

const { fork, spawn } = require("child_process");
const net = require("net");
const path = require("path");

const live = new Set();

function killAll() {
  for (const child of live) {
    try {
      child.kill("SIGKILL");
    } catch {
      // already gone
    }
  }
  live.clear();
}

process.on("exit", killAll);
for (const sig of ["SIGINT", "SIGTERM", "SIGHUP"]) {
  process.once(sig, () => {
    killAll();
    process.exit(130);
  });
}

function track(child) {
  live.add(child);
  child.once("exit", () => live.delete(child));
  return child;
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

function freePort() {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => {
      const { port } = server.address();
      server.close(() => resolve(port));
    });
  });
}

function ping(port) {
  return new Promise((resolve) => {
    const socket = net.connect({ host: "127.0.0.1", port });
    socket.setTimeout(300);
    socket.once("connect", () => socket.write("PING\r\n"));
    socket.once("data", (d) => {
      socket.destroy();
      resolve(d.toString().startsWith("+PONG"));
    });
    socket.once("error", () => resolve(false));
    socket.once("timeout", () => {
      socket.destroy();
      resolve(false);
    });
  });
}

/** Starts a throwaway redis-server on a free loopback port (never 6379). */
async function startRedis() {
  let port = await freePort();
  while (port === 6379) port = await freePort();
  const child = track(
    spawn(
      "redis-server",
      [
        "--port",
        String(port),
        "--bind",
        "127.0.0.1",
        "--save",
        "",
        "--appendonly",
        "no",
        "--protected-mode",
        "yes",
      ],
      { stdio: ["ignore", "ignore", "inherit"] },
    ),
  );
  for (let i = 0; i < 100; i++) {
    if (await ping(port)) break;
    if (child.exitCode !== null) throw new Error("redis-server exited at start");
    await sleep(50);
  }
  if (!(await ping(port))) throw new Error(`redis-server did not answer on port ${port}`);
  return {
    url: `redis://127.0.0.1:${port}`,
    port,
    pid: child.pid,
    stop: () => child.kill("SIGTERM"),
  };
}

let nextId = 1;

/** A forked bench child with request/reply over IPC. */
class Proc {
  constructor(script, config, { execArgv = [], label } = {}) {
    this.label = label || path.basename(script);
    this.child = track(
      fork(path.join(__dirname, script), [JSON.stringify(config)], {
        stdio: ["ignore", "inherit", "inherit", "ipc"],
        execArgv,
      }),
    );
    this.pending = new Map();
    this.listeners = new Set();
    this.exited = new Promise((resolve) => this.child.once("exit", resolve));
    this.child.on("message", (msg) => {
      if (msg.id !== undefined && this.pending.has(msg.id)) {
        const { resolve, reject, timer } = this.pending.get(msg.id);
        this.pending.delete(msg.id);
        clearTimeout(timer);
        if (msg.type === "error") reject(new Error(`${this.label}: ${msg.message}`));
        else resolve(msg);
        return;
      }
      for (const fn of this.listeners) fn(msg);
    });
    this.child.once("exit", (code) => {
      for (const { reject, timer } of this.pending.values()) {
        clearTimeout(timer);
        reject(new Error(`${this.label} exited (${code})`));
      }
      this.pending.clear();
    });
  }

  get pid() {
    return this.child.pid;
  }

  on(fn) {
    this.listeners.add(fn);
    return () => this.listeners.delete(fn);
  }

  /** Resolves with the first message of `type` (e.g. "ready"). */
  waitFor(type, timeoutMs = 30000) {
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        off();
        reject(new Error(`${this.label}: no "${type}" within ${timeoutMs} ms`));
      }, timeoutMs);
      const off = this.on((msg) => {
        if (msg.type === type) {
          clearTimeout(timer);
          off();
          resolve(msg);
        }
      });
      this.exited.then((code) => {
        clearTimeout(timer);
        off();
        reject(new Error(`${this.label} exited (${code}) before "${type}"`));
      });
    });
  }

  send(msg) {
    if (this.child.connected) this.child.send(msg);
  }

  request(msg, timeoutMs = 30000) {
    const id = nextId++;
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pending.delete(id);
        reject(new Error(`${this.label}: no answer to ${msg.type} within ${timeoutMs} ms`));
      }, timeoutMs);
      this.pending.set(id, { resolve, reject, timer });
      this.send({ ...msg, id });
    });
  }

  mark(reset = false) {
    return this.request({ type: "mark", reset });
  }

  /** Asks the child to close; kills it if it does not exit in time. */
  async close(timeoutMs = 5000) {
    if (this.child.exitCode !== null) return;
    await this.request({ type: "close" }, timeoutMs).catch(() => {});
    const t = sleep(timeoutMs).then(() => "timeout");
    if ((await Promise.race([this.exited, t])) === "timeout") this.child.kill("SIGKILL");
  }
}

module.exports = { startRedis, Proc, killAll, sleep };
