"use strict";
// Event payloads that exercise the wire-text fast paths (lib/event-text.js and the Rust
// transcoders) at their edges, and a recorder of the raw frames clients receive for them.

class WithToJSON {
  toJSON() {
    return { converted: true };
  }
}

/** [name, args] emitted as io.emit("ev", ...args). */
const PAYLOADS = [
  ["ascii", ["hello", 1, true, null]],
  ["unicode and escapes", ["héllo ✓ 😀", '"\\\n\t\u0001\u007f\u2028</script>']],
  ["numbers", [0, -0, 1.5, -1e-7, 1e21, 2 ** 53 + 2, 2 ** 64, 123456789.123, 5e-324, -(2 ** 31)]],
  ["nested", [{ b: 1, a: [1, {}, []], c: { d: { e: "f" } } }, [], {}]],
  ["integer-like keys", [{ b: 1, 2: "x", 10: "y", a: 3, "01": 4 }]],
  ["a Date", [new Date(Date.UTC(2026, 10, 29, 12, 0, 0, 123))]],
  ["undefined and holes", [[1, undefined, 3], { u: undefined, v: 1 }]],
  ["non-finite numbers", [NaN, Infinity, -Infinity]],
  ["toJSON", [new WithToJSON()]],
  ["lone surrogate", ["a\ud800b"]],
  ["binary", [Buffer.from([1, 2, 3]), { nested: Buffer.from("x") }]],
  [
    "binary, nested and empty (placeholder order)",
    [[1, [Buffer.alloc(0), { a: Buffer.from([9]), s: "t", b: [null, Buffer.from("yz")] }]], 0],
  ],
  ["medium string (16-bit WebSocket length)", ["y".repeat(1000)]],
  ["big string (64-bit WebSocket length)", ["x".repeat(70000)]],
  // Beyond what a sender queues with the turn's other broadcasts (lib/native-node.js).
  ["binary, big (published by its own call)", [Buffer.alloc(70000, 5), Buffer.from("z")]],
  ["__proto__ key", [JSON.parse('{"__proto__": {"p": 1}, "q": 2}')]],
];

/** Raw engine.io message packets ("2[...]") each client receives for event "ev". */
function captureFrames(clients) {
  return clients.map((client) => {
    const frames = [];
    client.io.engine.on("packet", (p) => {
      // EVENT ("2[...") or BINARY_EVENT with its attachment count ("51-[...").
      if (p.type === "message" && typeof p.data === "string" && /^(2|5\d+-)\["ev"/.test(p.data))
        frames.push(p.data);
      else if (p.type === "message" && typeof p.data !== "string") frames.push(p.data);
    });
    return frames;
  });
}

/**
 * The frames the own clients of an official sender (`c.servers[official]`) and of a native one
 * get when each emits every payload: local delivery encodes the emitted objects themselves (no
 * MessagePack round trip), on a native sender's fast paths too. `c`: a cluster of the helpers
 * (servers, clients and fence by index).
 */
async function ownClientFrames(c, official, native) {
  const [ofOfficial, ofNative] = captureFrames([c.clients[official], c.clients[native]]);
  for (const [, args] of PAYLOADS) c.servers[official].emit("ev", ...args);
  await c.fence(official);
  const fromOfficial = [...ofOfficial];
  const before = ofNative.length;
  for (const [, args] of PAYLOADS) c.servers[native].emit("ev", ...args);
  await c.fence(native);
  return { official: fromOfficial, native: ofNative.slice(before) };
}

module.exports = { PAYLOADS, captureFrames, ownClientFrames };
