"use strict";
// One Socket.IO server of the demo cluster: serves the chat page (demo/public/) and relays chat
// messages to the whole cluster through Redis with socket.io-redis-native.
// Usage: node demo/node.js NAME REDIS_URL [PORT] [--probe]
//   PORT 0 (default) lets the kernel choose; --probe connects a socket.io client of its own,
//   which the parent (demo/cluster-demo.js) drives over IPC for the non-interactive run.
// Reports {type: "ready", node, port} to the parent when it accepts connections.
const fs = require("fs");
const http = require("http");
const path = require("path");
const { Server } = require("socket.io");
const { createAdapter } = require("..");

const [name, redisUrl, portArg] = process.argv.slice(2).filter((a) => !a.startsWith("--"));
const probe = process.argv.includes("--probe");

const PAGES = {
  "/": { file: "index.html", type: "text/html; charset=utf-8" },
  "/chat.js": { file: "chat.js", type: "text/javascript; charset=utf-8" },
};

function serveStatic(req, res) {
  const page = PAGES[new URL(req.url, "http://localhost").pathname];
  if (!page) {
    res.writeHead(404, { "content-type": "text/plain" }).end("not found");
    return;
  }
  fs.readFile(path.join(__dirname, "public", page.file), (err, body) => {
    if (err) res.writeHead(500, { "content-type": "text/plain" }).end(err.message);
    else res.writeHead(200, { "content-type": page.type }).end(body);
  });
}

async function connectProbe(port) {
  const { io: connect } = require("socket.io-client");
  const client = connect(`http://127.0.0.1:${port}`, { transports: ["websocket"] });
  client.on("chat", (msg) => process.send({ type: "received", node: name, msg }));
  await new Promise((resolve) => client.on("connect", resolve));
  return client;
}

async function main() {
  // socket.io answers /socket.io/ (including the client script) before this handler runs
  const server = http.createServer(serveStatic);
  const io = new Server(server, { adapter: createAdapter(redisUrl) });
  io.on("connection", (socket) => {
    socket.emit("welcome", { node: name });
    socket.on("chat", (text) => {
      if (typeof text !== "string" || !text) return;
      io.emit("chat", { node: name, sender: socket.id, text: text.slice(0, 500) });
    });
  });
  await new Promise((resolve) => server.listen(Number(portArg) || 0, resolve));
  const { port } = server.address();
  await io.of("/").adapter.init();
  const client = probe ? await connectProbe(port) : null;

  const stop = () => {
    if (client) client.close();
    io.close(() => process.exit(0));
  };
  // the parent went away (Ctrl-C, crash): do not stay behind as an orphan
  process.on("disconnect", stop);
  process.on("message", async (cmd) => {
    if (cmd.type === "say" && client) client.emit("chat", cmd.text);
    if (cmd.type === "count") {
      try {
        const sockets = await io.fetchSockets();
        process.send({ type: "count", node: name, sockets: sockets.length });
      } catch (e) {
        process.send({ type: "count", node: name, error: e.message });
      }
    }
    if (cmd.type === "stop") stop();
  });
  process.send({ type: "ready", node: name, port });
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
