//! The buffers JS writes queued broadcasts into (lib/native-node.js `queueBroadcastJson`):
//! the records' text and, beside it, the bytes of their Buffers. Read during the call that
//! hands them over: JS reuses them right after.

use crate::protocol::broadcast_batch::BatchOutcome;
use napi::bindgen_prelude::BufferSlice;

/// Reads the batch (see [`queued_batch`]) and hands it to `send`; nothing when every record
/// was queued, else the line for the debug log.
pub fn send_queued_batch(
    queue: &BufferSlice<'_>,
    length: u32,
    attachments: Option<&BufferSlice<'_>>,
    attachments_length: Option<u32>,
    send: impl FnOnce(&str, &[u8]) -> BatchOutcome,
) -> Option<String> {
    match queued_batch(queue, length, attachments, attachments_length) {
        Ok((batch, attachments)) => send(batch, attachments).problem(),
        Err(problem) => Some(problem),
    }
}

/// The first `length` bytes of `queue` as text and the first `attachments_length` bytes of
/// `attachments` (none when absent), or why they cannot be read (for the debug log; the
/// records are then lost, which only a bug in the JS layer could cause).
fn queued_batch<'a>(
    queue: &'a BufferSlice<'_>,
    length: u32,
    attachments: Option<&'a BufferSlice<'_>>,
    attachments_length: Option<u32>,
) -> Result<(&'a str, &'a [u8]), String> {
    let bytes = queue
        .get(..length as usize)
        .ok_or_else(|| format!("queued broadcasts: length {length} beyond the buffer"))?;
    let text = std::str::from_utf8(bytes)
        .map_err(|e| format!("queued broadcasts skipped: not UTF-8 ({e})"))?;
    let attachments_length = attachments_length.unwrap_or(0) as usize;
    let attachments = match attachments {
        Some(buffer) => buffer.get(..attachments_length),
        None => (attachments_length == 0).then_some(&[][..]),
    }
    .ok_or_else(|| {
        format!("queued broadcasts: attachments length {attachments_length} beyond their buffer")
    })?;
    Ok((text, attachments))
}
