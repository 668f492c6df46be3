"use strict";

// Start/stop private redis-server processes for the tests.
// Every process is tracked and killed in a global afterAll and on process
// exit, so nothing survives a failing or interrupted test run.

const { spawn, execFile, spawnSync } = require("child_process");
const fs = require("fs");
const net = require("net");
const os = require("os");
const path = require("path");

const REDIS_SERVER = process.env.REDIS_SERVER_BIN || "redis-server";
const REDIS_CLI = process.env.REDIS_CLI_BIN || "redis-cli";

const children = new Set(); // live ChildProcess objects
const tmpDirs = new Set();

function killAllSync() {
  for (const child of children) {
    try {
      child.kill("SIGKILL");
    } catch (_) {
      // already gone
    }
  }
  children.clear();
  for (const dir of tmpDirs) {
    try {
      fs.rmSync(dir, { recursive: true, force: true });
    } catch (_) {
      // ignore
    }
  }
  tmpDirs.clear();
}

let exitHandlersInstalled = false;
function installExitHandlers() {
  if (exitHandlersInstalled) return;
  exitHandlersInstalled = true;
  process.on("exit", killAllSync);
  for (const sig of ["SIGINT", "SIGTERM", "SIGHUP"]) {
    process.once(sig, () => {
      killAllSync();
      process.exit(130);
    });
  }
}
installExitHandlers();

// When required from a test file, register a global cleanup hook.
if (typeof afterAll === "function") {
  afterAll(async () => {
    await Promise.all([...children].map((c) => waitExit(c, "SIGKILL")));
    killAllSync();
  });
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** A free TCP port chosen by the kernel (bind to port 0, then release). */
function getFreePort() {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.unref();
    srv.on("error", reject);
    srv.listen(0, "127.0.0.1", () => {
      const { port } = srv.address();
      srv.close(() => resolve(port));
    });
  });
}

/** Run redis-cli against a port; resolves with trimmed stdout. */
function cli(port, args, { timeout = 5000 } = {}) {
  return new Promise((resolve, reject) => {
    execFile(
      REDIS_CLI,
      ["-h", "127.0.0.1", "-p", String(port), ...args],
      { timeout },
      (err, stdout, stderr) => {
        if (err) {
          err.message += ` (redis-cli -p ${port} ${args.join(" ")}: ${stderr})`;
          return reject(err);
        }
        resolve(stdout.trim());
      },
    );
  });
}

/**
 * Minimal PING over a raw socket: resolves true when "+PONG" comes back (or "-NOAUTH": a server
 * started with requirepass, e.g. a password-protected sentinel, answers but wants AUTH first).
 */
function ping(port, timeout = 500) {
  return new Promise((resolve) => {
    const sock = net.connect({ port, host: "127.0.0.1" });
    let buf = "";
    const done = (ok) => {
      clearTimeout(timer);
      sock.destroy();
      resolve(ok);
    };
    const timer = setTimeout(() => done(false), timeout);
    sock.on("connect", () => sock.write("PING\r\n"));
    sock.on("data", (d) => {
      buf += d.toString();
      if (buf.includes("\r\n")) done(buf.startsWith("+PONG") || buf.startsWith("-NOAUTH"));
    });
    sock.on("error", () => done(false));
  });
}

function waitExit(child, signal) {
  return new Promise((resolve) => {
    if (child.exitCode !== null || child.signalCode !== null) {
      children.delete(child);
      return resolve();
    }
    child.once("exit", () => {
      children.delete(child);
      resolve();
    });
    try {
      child.kill(signal);
    } catch (_) {
      resolve();
    }
  });
}

async function waitUntil(fn, { timeout = 10000, interval = 20, what = "condition" } = {}) {
  const deadline = Date.now() + timeout;
  let lastErr;
  while (Date.now() < deadline) {
    try {
      if (await fn()) return;
    } catch (err) {
      lastErr = err;
    }
    await sleep(interval);
  }
  throw new Error(
    `timed out after ${timeout}ms waiting for ${what}` + (lastErr ? `: ${lastErr.message}` : ""),
  );
}

/**
 * Spawn one redis-server on `port` in `dir`; resolves once PING answers.
 * Rejects if the process exits first (e.g. port already taken).
 */
function spawnServer(port, dir, args, configFile) {
  return new Promise((resolve, reject) => {
    const fullArgs = [
      // redis-server takes a config file only as its first argument
      ...(configFile ? [configFile] : []),
      "--port",
      String(port),
      "--bind",
      "127.0.0.1",
      "--save",
      "",
      "--appendonly",
      "no",
      "--dir",
      dir,
      "--daemonize",
      "no",
      "--logfile",
      path.join(dir, `redis-${port}.log`),
      ...args,
    ];
    const child = spawn(REDIS_SERVER, fullArgs, { stdio: "ignore" });
    children.add(child);
    let exited = false;
    child.once("exit", (code, sig) => {
      exited = true;
      children.delete(child);
      reject(new Error(`redis-server on port ${port} exited early (${code ?? sig})`));
    });
    child.once("error", (err) => {
      exited = true;
      children.delete(child);
      reject(err);
    });
    (async () => {
      const deadline = Date.now() + 10000;
      while (!exited && Date.now() < deadline) {
        if (await ping(port, 200)) return resolve(child);
        await sleep(10);
      }
      if (!exited) {
        child.kill("SIGKILL");
        reject(new Error(`redis-server on port ${port} did not answer PING`));
      }
    })();
  });
}

/**
 * Start a private redis-server.
 * `config`: contents of a config file written to the instance's dir and passed first (a sentinel
 * needs one, as it rewrites it); it is written once and kept across restarts.
 * @param {{args?: string[], port?: number, config?: string}} [options]
 * @returns {Promise<{port:number, url:string, dir:string, cli:Function,
 *   stop:Function, kill:Function, restart:Function, isRunning:Function}>}
 */
async function startRedis({ args = [], port: wantedPort, pickPort = getFreePort, config } = {}) {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "sio-redis-"));
  tmpDirs.add(dir);
  const configFile = config === undefined ? undefined : path.join(dir, "redis.conf");
  if (configFile) fs.writeFileSync(configFile, config);
  let child;
  let port;
  let lastErr;
  for (let attempt = 0; attempt < 10; attempt++) {
    port = wantedPort || (await pickPort());
    try {
      child = await spawnServer(port, dir, args, configFile);
      break;
    } catch (err) {
      lastErr = err;
      if (wantedPort) await sleep(100);
    }
  }
  if (!child) throw lastErr;

  const instance = {
    port,
    host: "127.0.0.1",
    url: `redis://127.0.0.1:${port}`,
    dir,
    args,
    cli: (cmdArgs, opts) => cli(port, cmdArgs, opts),
    isRunning: () => !!child && child.exitCode === null && child.signalCode === null,
    /** Graceful stop (SIGTERM, then SIGKILL after 2 s). */
    async stop() {
      if (!child) return;
      const c = child;
      child = null;
      const t = setTimeout(() => c.kill("SIGKILL"), 2000);
      await waitExit(c, "SIGTERM");
      clearTimeout(t);
    },
    /** Hard kill (SIGKILL), like a crash. */
    async kill() {
      if (!child) return;
      const c = child;
      child = null;
      await waitExit(c, "SIGKILL");
    },
    /** Start again on the same port; resolves when PING answers. */
    async restart() {
      if (child) await instance.kill();
      let err;
      for (let attempt = 0; attempt < 50; attempt++) {
        try {
          child = await spawnServer(port, dir, args, configFile);
          return instance;
        } catch (e) {
          err = e;
          await sleep(100);
        }
      }
      throw err;
    },
  };
  return instance;
}

/**
 * Start a Redis Cluster (default 3 masters + 1 replica each = 6 nodes) and
 * wait until every node reports cluster_state:ok and knows all nodes.
 */
async function startCluster({ masters = 3, replicas = 1, args = [] } = {}) {
  const total = masters * (1 + replicas);
  const nodes = [];
  try {
    for (let i = 0; i < total; i++) {
      nodes.push(
        await startRedis({
          args: [
            "--cluster-enabled",
            "yes",
            "--cluster-config-file",
            `nodes-${i}-${process.pid}-${Date.now()}.conf`,
            "--cluster-node-timeout",
            "2000",
            "--repl-diskless-sync",
            "yes",
            "--repl-diskless-sync-delay",
            "0",
            ...args,
          ],
          // the cluster bus listens on port + 10000: stay well below 55535
          pickPort: async () => 20000 + Math.floor(Math.random() * 12000),
        }),
      );
    }
    await new Promise((resolve, reject) => {
      execFile(
        REDIS_CLI,
        [
          "--cluster",
          "create",
          ...nodes.map((n) => `127.0.0.1:${n.port}`),
          "--cluster-replicas",
          String(replicas),
          "--cluster-yes",
        ],
        { timeout: 30000 },
        (err, stdout, stderr) =>
          err
            ? reject(new Error(`cluster create failed: ${err.message}\n${stdout}\n${stderr}`))
            : resolve(),
      );
    });
    await waitClusterOk(nodes, total, masters);
  } catch (err) {
    await Promise.all(nodes.map((n) => n.kill()));
    throw err;
  }

  const cluster = {
    nodes,
    urls: nodes.map((n) => n.url),
    rootNodes: nodes.map((n) => ({ url: n.url })),
    ioredisNodes: nodes.map((n) => ({ host: "127.0.0.1", port: n.port })),
    async stop() {
      await Promise.all(nodes.map((n) => n.stop()));
    },
    /** Current masters, from CLUSTER NODES as seen by the first live node. */
    async masters() {
      return (await clusterNodes(nodes)).filter((n) => n.role === "master").map(byPort(nodes));
    },
    async replicas() {
      return (await clusterNodes(nodes)).filter((n) => n.role === "slave").map(byPort(nodes));
    },
    /**
     * Manual failover: promote `replica` (a node object or port; default:
     * the replica of the first master) and wait until it is a master and the
     * cluster is ok again. Resolves with the promoted node.
     */
    async failover(replica) {
      if (!replica) replica = (await cluster.replicas())[0];
      const port = typeof replica === "number" ? replica : replica.port;
      await cli(port, ["CLUSTER", "FAILOVER"]);
      await waitUntil(async () => (await cli(port, ["ROLE"])).startsWith("master"), {
        timeout: 15000,
        what: `node ${port} to become master`,
      });
      await waitClusterOk(
        nodes.filter((n) => n.isRunning()),
        nodes.length,
        masters,
      );
      return nodes.find((n) => n.port === port);
    },
    /** Sum of PUBSUB NUMSUB <channel> over all nodes (subscriptions are node-local). */
    async numsub(channel) {
      return sumOver(nodes, ["PUBSUB", "NUMSUB", channel]);
    },
  };
  return cluster;
}

function byPort(nodes) {
  return (info) => nodes.find((n) => n.port === info.port);
}

async function clusterNodes(nodes) {
  for (const n of nodes) {
    if (!n.isRunning()) continue;
    const out = await cli(n.port, ["CLUSTER", "NODES"]);
    return out
      .split("\n")
      .filter(Boolean)
      .map((line) => {
        const [id, addr, flags] = line.split(" ");
        return {
          id,
          port: parseInt(addr.split(":")[1].split("@")[0], 10),
          role: flags.includes("master") ? "master" : "slave",
          failed: flags.includes("fail"),
        };
      });
  }
  throw new Error("no running cluster node");
}

async function waitClusterOk(nodes, total, masters) {
  await waitUntil(
    async () => {
      for (const n of nodes) {
        const info = await cli(n.port, ["CLUSTER", "INFO"]);
        if (!info.includes("cluster_state:ok")) return false;
        if (!info.includes(`cluster_known_nodes:${total}`)) return false;
        if (!info.includes("cluster_slots_assigned:16384")) return false;
        if (masters !== undefined) {
          // every node must agree on the roles (replicas show up as masters
          // for a moment after "cluster create")
          const view = await cli(n.port, ["CLUSTER", "NODES"]);
          const nMasters = view.split("\n").filter((l) => / (myself,)?master /.test(l)).length;
          if (nMasters !== masters) return false;
          const role = await cli(n.port, ["ROLE"]);
          if (role.startsWith("slave") && !role.includes("connected")) return false;
        }
      }
      return true;
    },
    { timeout: 30000, interval: 100, what: "cluster_state:ok on all nodes" },
  );
}

async function sumOver(nodes, args) {
  let sum = 0;
  for (const n of nodes) {
    if (!n.isRunning()) continue;
    const out = await cli(n.port, args);
    const lines = out.split("\n");
    sum += parseInt(lines[lines.length - 1], 10) || 0;
  }
  return sum;
}

/** PUBSUB NUMSUB on a standalone instance (or a cluster object). */
async function numsub(target, channel) {
  if (target.numsub) return target.numsub(channel);
  return sumOver([target], ["PUBSUB", "NUMSUB", channel]);
}

/** Total number of pattern subscriptions held by all connections (CLIENT LIST psub=). */
async function totalPsub(target) {
  const nodes = target.nodes || [target];
  let sum = 0;
  for (const n of nodes) {
    if (!n.isRunning()) continue;
    const out = await cli(n.port, ["CLIENT", "LIST"]);
    for (const m of out.matchAll(/ psub=(\d+)/g)) sum += parseInt(m[1], 10);
  }
  return sum;
}

// Fail fast with a clear message if the binaries are missing.
const check = spawnSync(REDIS_SERVER, ["--version"]);
if (check.error) {
  throw new Error(`cannot run ${REDIS_SERVER}: ${check.error.message}`);
}

module.exports = {
  startRedis,
  startCluster,
  getFreePort,
  cli,
  ping,
  numsub,
  totalPsub,
  waitUntil,
  sleep,
  killAllSync,
};
