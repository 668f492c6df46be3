//! Codec helpers callable from JS (the tests check the JS readers against them).

use crate::codec::fetch_sockets;
use napi::bindgen_prelude::Buffer;
use napi_derive::napi;

/// A classic fetchSockets answer as the JS side of `request` gets it: split for lazy
/// handshakes (see `codec::fetch_sockets`), or as published when it is not the usual shape.
// Only called from JS: the lib's own test build (where #[napi] registers nothing) sees no use.
#[cfg_attr(test, allow(dead_code))]
#[napi]
pub fn fetch_answer_for_js(answer: Buffer) -> Buffer {
    fetch_sockets::fetch_answer_for_js(&answer).into()
}
