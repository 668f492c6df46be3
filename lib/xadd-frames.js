"use strict";
// The frames StreamsDriver#xaddBatch reads (src/bindings/streams.rs): per entry `stream,
// maxLen: u32 LE, field count: u32 LE, fields`, each string as `u32 LE length + UTF-8`.
//
// Written into one reused buffer sized for the worst case (3 bytes per UTF-16 unit), so that no
// string is measured before it is written; a broadcast's entry starts with its adapter's
// pre-encoded head (stream, maxLen and every field but the last value: uid, nsp, type, data),
// so only its data is written per message. Framing field by field was 15 % of a sending
// node's CPU in `perf` (bench --kind streams, 100 B broadcasts).

/** Kept between calls up to this size; a larger batch gets a buffer of its own. */
const MAX_KEPT = 1 << 20;
let scratch = null;

/**
 * The frame start of an entry of `stream` whose fields are `fields` then one more value (the
 * field count includes it): what `encodeXaddFrames` copies before that last value.
 */
function xaddHead(stream, maxLen, fields) {
  const texts = [stream, ...fields];
  const size = 8 + texts.reduce((n, text) => n + 4 + Buffer.byteLength(text), 0);
  const head = Buffer.allocUnsafe(size);
  let offset = writeText(head, 0, stream);
  offset = head.writeUInt32LE(maxLen, offset);
  offset = head.writeUInt32LE(fields.length + 1, offset);
  for (const field of fields) offset = writeText(head, offset, field);
  return head;
}

/**
 * The frames of `entries`, each `{ stream, maxLen, fields }` or `{ head, value }` (head from
 * xaddHead). A view of a buffer the next call reuses: the driver reads it during its call.
 */
function encodeXaddFrames(entries) {
  let most = 0;
  for (const e of entries) {
    if (e.head !== undefined) {
      most += e.head.length + 4 + 3 * e.value.length;
      continue;
    }
    most += 12 + 3 * e.stream.length;
    for (const field of e.fields) most += 4 + 3 * field.length;
  }
  let frames = scratch;
  if (frames === null || frames.length < most) {
    frames = Buffer.allocUnsafe(Math.max(most, 64 * 1024));
    if (frames.length <= MAX_KEPT) scratch = frames;
  }
  let offset = 0;
  for (const e of entries) {
    if (e.head !== undefined) {
      offset += e.head.copy(frames, offset);
      offset = writeText(frames, offset, e.value);
      continue;
    }
    offset = writeText(frames, offset, e.stream);
    offset = frames.writeUInt32LE(e.maxLen, offset);
    offset = frames.writeUInt32LE(e.fields.length, offset);
    for (const field of e.fields) offset = writeText(frames, offset, field);
  }
  return frames.subarray(0, offset);
}

/** Writes `text` as `u32 LE length + UTF-8` at `offset` (room for 3 bytes per unit); returns the end. */
function writeText(frames, offset, text) {
  const length = frames.utf8Write(text, offset + 4);
  frames.writeUInt32LE(length, offset);
  return offset + 4 + length;
}

module.exports = { xaddHead, encodeXaddFrames };
