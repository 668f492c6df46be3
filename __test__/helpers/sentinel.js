"use strict";

// A private Redis Sentinel setup: a master, a replica (--replicaof) and one or more sentinels
// monitoring them as "mymaster", all redis-server processes on free ports started (and killed at
// the end of the test file) by helpers/redis.js. Short down-after / failover timeouts so a
// failover takes seconds.

const { startRedis, cli, waitUntil } = require("./redis");

const REPL_ARGS = ["--repl-diskless-sync", "yes", "--repl-diskless-sync-delay", "0"];

/**
 * @param {object} [o]
 * @param {number} [o.sentinels=2] number of sentinels
 * @param {string} [o.name="mymaster"] monitored master name
 * @param {string} [o.password] requirepass (and masterauth) of the master and the replica
 * @param {string} [o.sentinelPassword] requirepass of the sentinels
 * @param {number} [o.downAfterMs=1000]
 * @param {number} [o.failoverTimeoutMs=5000]
 */
async function startSentinelSet(o = {}) {
  const name = o.name || "mymaster";
  const sentinelCount = o.sentinels === undefined ? 2 : o.sentinels;
  const auth = o.password ? ["--requirepass", o.password, "--masterauth", o.password] : [];
  const started = [];
  try {
    const master = await startRedis({ args: [...REPL_ARGS, ...auth] });
    started.push(master);
    const replica = await startRedis({
      args: [...REPL_ARGS, ...auth, "--replicaof", "127.0.0.1", String(master.port)],
    });
    started.push(replica);
    const data = [master, replica];
    const dataCli = (node, args) => cli(node.port, [...authArgs(o.password), ...args]);
    await waitUntil(async () => /master_link_status:up/.test(await dataCli(replica, ["INFO"])), {
      timeout: 10000,
      what: "the replica to sync with the master",
    });

    const config = [
      "sentinel resolve-hostnames no",
      `sentinel monitor ${name} 127.0.0.1 ${master.port} 1`,
      `sentinel down-after-milliseconds ${name} ${o.downAfterMs || 1000}`,
      `sentinel failover-timeout ${name} ${o.failoverTimeoutMs || 5000}`,
      `sentinel parallel-syncs ${name} 1`,
      ...(o.password ? [`sentinel auth-pass ${name} ${o.password}`] : []),
      // the sentinels' own password, and what they use to talk to each other
      ...(o.sentinelPassword
        ? [`requirepass ${o.sentinelPassword}`, `sentinel sentinel-pass ${o.sentinelPassword}`]
        : []),
      "",
    ].join("\n");
    const sentinels = [];
    for (let i = 0; i < sentinelCount; i++) {
      const s = await startRedis({ config, args: ["--sentinel"] });
      started.push(s);
      sentinels.push(s);
    }
    const sentinelCli = (s, args) => cli(s.port, [...authArgs(o.sentinelPassword), ...args]);

    const set = {
      name,
      master,
      replica,
      data,
      sentinels,
      password: o.password,
      sentinelPassword: o.sentinelPassword,
      /** redis-cli on a data node (with its password). */
      cli: dataCli,
      sentinelCli,
      /** ioredis options (`new Redis(set.ioredisOptions())`). */
      ioredisOptions(extra = {}) {
        return {
          sentinels: sentinels.map((s) => ({ host: "127.0.0.1", port: s.port })),
          name,
          ...(o.password ? { password: o.password } : {}),
          ...(o.sentinelPassword ? { sentinelPassword: o.sentinelPassword } : {}),
          ...extra,
        };
      },
      /** The master as the first answering sentinel reports it (a node of `data`). */
      async currentMaster() {
        let lastErr;
        for (const s of sentinels) {
          if (!s.isRunning()) continue;
          try {
            const out = await sentinelCli(s, ["SENTINEL", "get-master-addr-by-name", name]);
            const port = parseInt(out.split("\n")[1], 10);
            const node = data.find((n) => n.port === port);
            if (node) return node;
            lastErr = new Error(`sentinel ${s.port} reports unknown master: ${out}`);
          } catch (err) {
            lastErr = err;
          }
        }
        throw lastErr || new Error("no running sentinel");
      },
      async role(node) {
        return (await dataCli(node, ["ROLE"])).split("\n")[0];
      },
      /** Every sentinel knows every other one (they discover each other over the master). */
      async waitSentinelsReady() {
        await waitUntil(
          async () => {
            for (const s of sentinels) {
              const out = await sentinelCli(s, ["SENTINEL", "MASTER", name]);
              const fields = out.split("\n");
              const value = (k) => fields[fields.indexOf(k) + 1];
              if (Number(value("num-other-sentinels")) !== sentinels.length - 1) return false;
              if (Number(value("num-slaves")) < 1) return false;
            }
            return true;
          },
          { timeout: 15000, interval: 100, what: "sentinels to know each other and the replica" },
        );
      },
      /**
       * Forces a failover (SENTINEL FAILOVER, the old master stays up) and waits until every
       * running sentinel reports the other node and that node says it is a master. Resolves
       * with {oldMaster, newMaster}.
       */
      async failover() {
        const oldMaster = await set.currentMaster();
        const newMaster = data.find((n) => n !== oldMaster);
        // refused with NOGOODSLAVE while the sentinel has not yet seen the replica in sync
        await waitUntil(
          async () =>
            (await sentinelCli(sentinels[0], ["SENTINEL", "FAILOVER", name])).startsWith("OK"),
          { timeout: 15000, interval: 200, what: "SENTINEL FAILOVER to be accepted" },
        );
        await set.waitMaster(newMaster);
        return { oldMaster, newMaster };
      },
      /** Waits until every running sentinel reports `node` as master and `node` agrees. */
      async waitMaster(node, timeout = 20000) {
        await waitUntil(
          async () => {
            for (const s of sentinels.filter((x) => x.isRunning())) {
              const out = await sentinelCli(s, ["SENTINEL", "get-master-addr-by-name", name]);
              if (parseInt(out.split("\n")[1], 10) !== node.port) return false;
            }
            return (await set.role(node)) === "master";
          },
          { timeout, interval: 50, what: `sentinels to report ${node.port} as master` },
        );
      },
      /** Waits until `node` is a replica of the current master, in sync. */
      async waitReplica(node, timeout = 30000) {
        await waitUntil(
          async () => {
            const info = await dataCli(node, ["INFO", "replication"]);
            return /role:slave/.test(info) && /master_link_status:up/.test(info);
          },
          { timeout, interval: 100, what: `${node.port} to be an in-sync replica` },
        );
      },
      /** CLIENT LIST of a data node, parsed (one object of fields per connection). */
      async clients(node) {
        const out = await dataCli(node, ["CLIENT", "LIST"]);
        return out
          .split("\n")
          .filter(Boolean)
          .map((line) =>
            Object.fromEntries(
              line.split(" ").map((kv) => {
                const i = kv.indexOf("=");
                return [kv.slice(0, i), kv.slice(i + 1)];
              }),
            ),
          );
      },
      async stop() {
        await Promise.all(started.map((n) => n.kill()));
      },
    };
    if (sentinelCount > 0) await set.waitSentinelsReady();
    return set;
  } catch (err) {
    await Promise.all(started.map((n) => n.kill()));
    throw err;
  }
}

function authArgs(password) {
  return password ? ["-a", password, "--no-auth-warning"] : [];
}

module.exports = { startSentinelSet };
