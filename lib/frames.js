"use strict";
// Reads the framed batches the Rust core delivers: kind u8, namespace u32 LE, length u32 LE,
// payload. Payloads are views into the batch buffer (no copy).

const DeliveryKind = Object.freeze({
  BROADCAST: 1,
  REQUEST: 2,
  ACK_RESPONSE: 3,
  CONNECTION: 4,
  LOG: 5,
  EVENT_TEXT: 6,
  EVENT_BINARY: 9,
});

function forEachFrame(batch, onFrame) {
  forEachFrameRange(batch, (kind, ns, start, end) => onFrame(kind, ns, batch.subarray(start, end)));
}

/**
 * forEachFrame with each payload as its range in `batch`: a receiving node makes no view per
 * broadcast it applies as text (the typed array objects were a visible share of its JS time).
 */
function forEachFrameRange(batch, onFrame) {
  let offset = 0;
  const end = batch.length;
  while (offset + 9 <= end) {
    const kind = batch[offset];
    const ns = batch.readUInt32LE(offset + 1);
    const len = batch.readUInt32LE(offset + 5);
    const start = offset + 9;
    offset = start + len;
    if (offset > end) break;
    onFrame(kind, ns, start, offset);
  }
}

module.exports = { DeliveryKind, forEachFrame, forEachFrameRange };
