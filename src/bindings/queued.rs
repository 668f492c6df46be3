//! The buffer JS writes queued broadcasts into (lib/native-node.js `queueBroadcastJson`),
//! read during the call that hands it over: JS reuses it right after.

use napi::bindgen_prelude::BufferSlice;

/// The first `length` bytes of `queue` as text, or why they cannot be read (for the debug
/// log; the records are then lost, which only a bug in the JS layer could cause).
pub fn queued_text<'a>(queue: &'a BufferSlice<'_>, length: u32) -> Result<&'a str, String> {
    let bytes = queue
        .get(..length as usize)
        .ok_or_else(|| format!("queued broadcasts: length {length} beyond the buffer"))?;
    std::str::from_utf8(bytes).map_err(|e| format!("queued broadcasts skipped: not UTF-8 ({e})"))
}
