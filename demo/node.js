"use strict";
// One Socket.IO server of the demo cluster, with one connected client of its own.
// Driven by the parent process over IPC.
const http = require("http");
const { Server } = require("socket.io");
const { io: connect } = require("socket.io-client");
const { createAdapter } = require("..");

const [name, redisUrl] = process.argv.slice(2);

async function main() {
  const server = http.createServer();
  const io = new Server(server, { adapter: createAdapter(redisUrl) });
  io.on("connection", (socket) => {
    socket.on("chat", (text) => io.emit("chat", { from: name, text }));
  });
  await new Promise((resolve) => server.listen(0, resolve));
  const client = connect(`http://127.0.0.1:${server.address().port}`, {
    transports: ["websocket"],
  });
  client.on("chat", (msg) => process.send({ type: "received", node: name, msg }));
  await new Promise((resolve) => client.on("connect", resolve));
  await io.of("/").adapter.init();
  process.on("message", async (cmd) => {
    if (cmd.type === "say") client.emit("chat", cmd.text);
    if (cmd.type === "count") {
      const sockets = await io.fetchSockets();
      process.send({ type: "count", node: name, sockets: sockets.length });
    }
    if (cmd.type === "stop") {
      client.close();
      io.close(() => process.exit(0));
    }
  });
  process.send({ type: "ready", node: name, port: server.address().port });
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
