//! Codec helpers the JS layer calls directly.

use crate::codec::fetch_sockets;
use napi::bindgen_prelude::Buffer;
use napi_derive::napi;

/// A classic fetchSockets answer split for lazy handshakes (see `codec::fetch_sockets`), or
/// null when it is not the usual JSON shape.
// Only called from JS: the lib's own test build (where #[napi] registers nothing) sees no use.
#[cfg_attr(test, allow(dead_code))]
#[napi]
pub fn split_fetch_answer(answer: Buffer) -> Option<Buffer> {
    fetch_sockets::split_fetch_answer(&answer).map(Buffer::from)
}
