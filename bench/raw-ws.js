"use strict";
// A minimal WebSocket client for the bench's clients process (clients.js): the opening
// handshake, then frames read straight out of the socket's chunks. Why not `ws`: its
// per-frame work (a Buffer view per frame, a UTF-8 check per text message, events) took about
// three quarters of the clients process in `perf`, and that process shares the 2 cores with
// the servers being measured; real clients run on users' devices, not beside the servers.
// Handles what a Socket.IO server sends: text and binary frames, pings, close; no
// fragmented messages (a Socket.IO server does not fragment) and no extensions (none offered).

const net = require("net");
const crypto = require("crypto");

const OP_CONTINUATION = 0x0;
const OP_TEXT = 0x1;
const OP_BINARY = 0x2;
const OP_CLOSE = 0x8;
const OP_PING = 0x9;
const OP_PONG = 0xa;
const HEADER_END = Buffer.from("\r\n\r\n");

class RawWebSocket {
  /**
   * @param {number} port server port on 127.0.0.1
   * @param {string} path request path with its query
   * @param {{ onText(buf, start, end), onBinary(buf, start, end), onError(e) }} handlers
   *   `buf[start..end]` is a message's payload, valid during the call only
   */
  constructor(port, path, handlers) {
    this.handlers = handlers;
    this.pending = null; // bytes of an incomplete frame (or of the HTTP response)
    this.open = false;
    this.key = crypto.randomBytes(16).toString("base64");
    this.socket = net.connect({ port, host: "127.0.0.1", noDelay: true }, () => {
      this.socket.write(
        `GET ${path} HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\nUpgrade: websocket\r\n` +
          `Connection: Upgrade\r\nSec-WebSocket-Key: ${this.key}\r\n` +
          `Sec-WebSocket-Version: 13\r\n\r\n`,
      );
    });
    this.socket.on("data", (chunk) => this.onData(chunk));
    this.socket.on("error", (e) => handlers.onError(e));
  }

  onData(chunk) {
    let buf = chunk;
    if (this.pending !== null) {
      buf = Buffer.concat([this.pending, chunk]);
      this.pending = null;
    }
    let at = 0;
    if (!this.open) {
      const end = buf.indexOf(HEADER_END);
      if (end < 0) {
        this.pending = buf;
        return;
      }
      const refused = this.upgradeError(buf.latin1Slice(0, end));
      if (refused !== null) return this.fail(refused);
      this.open = true;
      at = end + HEADER_END.length;
    }
    const n = buf.length;
    while (n - at >= 2) {
      const b0 = buf[at];
      const b1 = buf[at + 1];
      let length = b1 & 0x7f;
      let head = 2;
      if (length === 126) {
        if (n - at < 4) break;
        length = buf.readUInt16BE(at + 2);
        head = 4;
      } else if (length === 127) {
        if (n - at < 10) break;
        length = Number(buf.readBigUInt64BE(at + 2));
        head = 10;
      }
      if (b1 & 0x80) return this.fail(new Error("masked frame from the server"));
      if (n - at < head + length) break;
      const start = at + head;
      const end = start + length;
      at = end;
      const opcode = b0 & 0x0f;
      if ((b0 & 0x80) === 0 || opcode === OP_CONTINUATION) {
        return this.fail(new Error("fragmented message (not expected from Socket.IO)"));
      }
      if (opcode === OP_TEXT) this.handlers.onText(buf, start, end);
      else if (opcode === OP_BINARY) this.handlers.onBinary(buf, start, end);
      else if (opcode === OP_PING) this.sendFrame(OP_PONG, buf.subarray(start, end));
      else if (opcode === OP_CLOSE) return this.terminate();
    }
    if (at < n) this.pending = buf.subarray(at);
  }

  /** Why the server's answer to the upgrade request is not an acceptance, or null. */
  upgradeError(head) {
    if (!head.startsWith("HTTP/1.1 101")) {
      return new Error(`WebSocket upgrade refused: ${head.split("\r\n")[0]}`);
    }
    const accept = crypto
      .createHash("sha1")
      .update(`${this.key}258EAFA5-E914-47DA-95CA-C5AB0DC85B11`)
      .digest("base64");
    if (!head.toLowerCase().includes(`sec-websocket-accept: ${accept.toLowerCase()}`)) {
      return new Error("WebSocket upgrade without the expected Sec-WebSocket-Accept");
    }
    return null;
  }

  /** Sends a text message (client frames are masked, RFC 6455 5.3). */
  send(text) {
    this.sendFrame(OP_TEXT, Buffer.from(text));
  }

  sendFrame(opcode, payload) {
    const length = payload.length;
    const head = length < 126 ? 2 : length < 65536 ? 4 : 10;
    const frame = Buffer.allocUnsafe(head + 4 + length);
    frame[0] = 0x80 | opcode;
    if (head === 2) frame[1] = 0x80 | length;
    else if (head === 4) {
      frame[1] = 0x80 | 126;
      frame.writeUInt16BE(length, 2);
    } else {
      frame[1] = 0x80 | 127;
      frame.writeBigUInt64BE(BigInt(length), 2);
    }
    const mask = crypto.randomBytes(4);
    mask.copy(frame, head);
    for (let i = 0; i < length; i++) frame[head + 4 + i] = payload[i] ^ mask[i & 3];
    this.socket.write(frame);
  }

  fail(e) {
    this.terminate();
    this.handlers.onError(e);
  }

  terminate() {
    this.socket.destroy();
  }
}

module.exports = { RawWebSocket };
