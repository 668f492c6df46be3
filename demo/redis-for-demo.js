"use strict";
// Finds a reachable Redis (REDIS_URL, else 127.0.0.1:6379) or starts a private redis-server.
const net = require("net");
const { spawn } = require("child_process");

function reachable(host, port) {
  return new Promise((resolve) => {
    const socket = net.connect({ host, port });
    socket.setTimeout(500);
    socket.once("connect", () => {
      socket.write("PING\r\n");
      socket.once("data", (d) => {
        socket.destroy();
        resolve(d.toString().startsWith("+PONG"));
      });
    });
    socket.once("error", () => resolve(false));
    socket.once("timeout", () => {
      socket.destroy();
      resolve(false);
    });
  });
}

function freePort() {
  return new Promise((resolve) => {
    const server = net.createServer().listen(0, "127.0.0.1", () => {
      const { port } = server.address();
      server.close(() => resolve(port));
    });
  });
}

async function redisForDemo() {
  const url = new URL(process.env.REDIS_URL || "redis://127.0.0.1:6379");
  if (await reachable(url.hostname, Number(url.port || 6379))) {
    return { url: url.toString(), stop() {}, started: false };
  }
  const port = await freePort();
  const child = spawn(
    "redis-server",
    ["--port", String(port), "--save", "", "--appendonly", "no"],
    {
      stdio: "ignore",
    },
  );
  for (let i = 0; i < 100 && !(await reachable("127.0.0.1", port)); i++) {
    await new Promise((r) => setTimeout(r, 50));
  }
  return {
    url: `redis://127.0.0.1:${port}`,
    started: true,
    stop: () => child.kill("SIGTERM"),
  };
}

module.exports = { redisForDemo };
