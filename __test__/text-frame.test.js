"use strict";
// The WebSocket frame a native sender builds for its own clients from the queued UTF-8 bytes
// (lib/event-text.js textFrame) must be the one ws builds for the same message.
const { Sender } = require("ws");
const { textFrame } = require("../lib/event-text");

describe("textFrame", () => {
  it.each([0, 1, 117, 118, 119, 1000, 65527, 65528, 65529, 70000])(
    "equals ws's frame of the same message (%i bytes after an 8-byte head: 125/126 and 65535/65536 bytes at 117/118 and 65527/65528)",
    (n) => {
      const head = Buffer.from("42/chat,");
      const body = Buffer.from("é".repeat(n)).subarray(0, n); // any bytes
      const source = Buffer.concat([Buffer.from("before"), body, Buffer.from("after")]);
      const frame = textFrame(head, source, 6, 6 + n);
      const expected = Buffer.concat(
        Sender.frame(Buffer.concat([head, body]), {
          readOnly: false,
          mask: false,
          rsv1: false,
          opcode: 1,
          fin: true,
        }),
      );
      expect(frame.equals(expected)).toBe(true);
    },
  );
});
