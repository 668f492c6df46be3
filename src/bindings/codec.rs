//! Codec helpers callable from JS (the tests check the JS readers against them).

use crate::codec::{fetch_sockets, json};
use napi::bindgen_prelude::{Buffer, BufferSlice};
use napi_derive::napi;

/// A classic fetchSockets answer as the JS side of `request` gets it: split for lazy
/// handshakes (see `codec::fetch_sockets`), or as published when it is not the usual shape.
// Only called from JS: the lib's own test build (where #[napi] registers nothing) sees no use.
#[cfg_attr(test, allow(dead_code))]
#[napi]
pub fn fetch_answer_for_js(answer: Buffer) -> Buffer {
    fetch_sockets::fetch_answer_for_js(&answer).into()
}

/// Whether the first `length` bytes of `text` (UTF-8) need escaping in a JSON string: if not,
/// JS writes a long string's JSON as the string between quotes (lib/event-text.js
/// `dataJson`) instead of through V8's JSON.stringify.
#[cfg_attr(test, allow(dead_code))]
#[napi]
pub fn utf8_needs_json_escape(text: BufferSlice, length: u32) -> bool {
    match text.get(..length as usize) {
        Some(bytes) => json::utf8_needs_json_escape(bytes),
        None => true,
    }
}
