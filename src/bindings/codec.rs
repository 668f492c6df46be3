//! Codec helpers callable from JS (the tests check the JS readers against them).

use crate::codec::{fetch_sockets, json};
use napi::bindgen_prelude::{Buffer, BufferSlice, Uint32ArraySlice};
use napi::{Error, Result, Status};
use napi_derive::napi;

/// A fetchSockets answer joined from the parts lib/socket-details.js gives (see
/// `codec::fetch_sockets::join_fetch_answer`); an error when they do not fit.
pub(crate) fn joined_fetch_answer(
    head: &str,
    details: &str,
    handshakes: &[u8],
    lengths: &[u32],
    tail: &str,
) -> Result<Vec<u8>> {
    fetch_sockets::join_fetch_answer(head, details, handshakes, lengths, tail).ok_or_else(|| {
        Error::new(
            Status::InvalidArg,
            "fetchSockets answer: the socket details and the handshakes do not fit together",
        )
    })
}

/// A MessagePack fetchSockets answer spliced from its parts (see
/// `codec::fetch_sockets::splice_msgpack_answer`); an error when they do not fit.
pub(crate) fn spliced_fetch_answer(
    encoded: &[u8],
    details: &[u8],
    handshakes: &[u8],
    lengths: &[u32],
) -> Result<Vec<u8>> {
    fetch_sockets::splice_msgpack_answer(encoded, details, handshakes, lengths).ok_or_else(|| {
        Error::new(
            Status::InvalidArg,
            "fetchSockets answer: the encoded answer, the socket details and the handshakes do not fit together",
        )
    })
}

/// What the streams driver's `publishFetchAnswer` publishes for these parts (tests compare it
/// with @msgpack/msgpack's encoding of the same answer).
#[cfg_attr(test, allow(dead_code))]
#[napi]
pub fn splice_msgpack_answer(
    encoded: BufferSlice,
    details: BufferSlice,
    handshakes: BufferSlice,
    lengths: Uint32ArraySlice,
) -> Result<Buffer> {
    Ok(spliced_fetch_answer(&encoded, &details, &handshakes, &lengths)?.into())
}

/// The answer a driver's `publishFetchAnswer` publishes for these parts (tests compare it
/// with JSON.stringify of the same details).
#[cfg_attr(test, allow(dead_code))]
#[napi]
pub fn join_fetch_answer(
    head: String,
    details: String,
    handshakes: BufferSlice,
    lengths: Uint32ArraySlice,
    tail: String,
) -> Result<Buffer> {
    Ok(joined_fetch_answer(&head, &details, &handshakes, &lengths, &tail)?.into())
}

/// A classic fetchSockets answer as the JS side of `request` gets it: split for lazy
/// handshakes (see `codec::fetch_sockets`), or as published when it is not the usual shape.
// Only called from JS: the lib's own test build (where #[napi] registers nothing) sees no use.
#[cfg_attr(test, allow(dead_code))]
#[napi]
pub fn fetch_answer_for_js(answer: Buffer) -> Buffer {
    fetch_sockets::fetch_answer_for_js(&answer).into()
}

/// A message of a cluster adapter's response channel as the sharded driver hands it over:
/// split when it is a JSON fetchSockets answer (`codec::fetch_sockets`), else as published.
#[cfg_attr(test, allow(dead_code))]
#[napi]
pub fn cluster_fetch_answer_for_js(payload: Buffer) -> Buffer {
    fetch_sockets::split_cluster_fetch_answer(&payload)
        .map(Buffer::from)
        .unwrap_or(payload)
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
