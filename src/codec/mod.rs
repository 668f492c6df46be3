//! Wire codecs shared by every adapter.
//!
//! - [`msgpack`]: a zero-copy MessagePack reader, a writer that is byte-identical to
//!   notepack.io 3.0.1 (PROTOCOL.md 7.1), broadcast-envelope and message-header
//!   extraction, and JSON <-> MessagePack transcoding.
//! - [`json`]: the pieces of V8's `JSON.stringify` needed for byte equality (number
//!   formatting, string escaping, `Date#toISOString`).
//! - [`json_scan`]: the members of an already validated JSON object, without a second
//!   validation.
//! - [`json_check`]: the members of a JSON object or the items of an array, checked against
//!   the grammar as they are walked (text from other nodes).
//! - [`text_scan`]: where the next byte that JSON escapes is, 32 bytes per step.

pub mod fetch_sockets;
pub mod json;
pub mod json_check;
pub mod json_scan;
pub mod msgpack;
pub mod text_scan;
