"use strict";
// Coalesces the WebSocket writes of one engine.io flush into one syscall.
//
// When packets arrive faster than a client's socket drains, engine.io buffers them and later
// sends the whole buffer in one `flush`, but each packet still becomes its own `write()` on
// the TCP socket, one syscall each: at a few thousand messages per second per client that is
// the largest single cost of a receiving node (bench/README.md, --profile). Corking the socket
// for the duration of the flush turns those writes into one `writev`. The socket is uncorked
// on the next tick whatever happens, so a throwing listener can never leave it corked.

const hooked = new WeakSet();

/** The net.Socket under an engine.io socket's WebSocket transport, when there is one. */
function tcpSocketOf(engineSocket) {
  const transport = engineSocket && engineSocket.transport;
  if (!transport || transport.name !== "websocket") return null;
  // `_socket` is ws's (private but long-stable) reference to the net.Socket it writes to.
  const tcp = transport.socket && transport.socket._socket;
  return tcp && typeof tcp.cork === "function" ? tcp : null;
}

function corkDuringFlush(engineSocket, writeBuffer) {
  if (!writeBuffer || writeBuffer.length < 2) return;
  const tcp = tcpSocketOf(engineSocket);
  if (!tcp) return;
  tcp.cork();
  process.nextTick(() => tcp.uncork());
}

/**
 * Installs the hook once per engine.io server. Returns false while the Socket.IO server has
 * no engine yet (it is attached after the main namespace's adapter is created).
 */
function coalesceWrites(server) {
  const engine = server && server.engine;
  if (!engine || typeof engine.on !== "function") return false;
  if (!hooked.has(engine)) {
    hooked.add(engine);
    engine.on("flush", corkDuringFlush);
  }
  return true;
}

/**
 * Called on an adapter's broadcast paths: installs the hook for its server once, unless the
 * user passed `coalesceWebSocketWrites: false`. Lazy because the engine may not exist yet
 * when the adapter is created.
 */
function coalesceWritesOnce(adapter, enabled) {
  if (!adapter.writesCoalesced) {
    adapter.writesCoalesced = enabled === false || coalesceWrites(adapter.nsp.server);
  }
}

module.exports = { coalesceWrites, coalesceWritesOnce, tcpSocketOf };
