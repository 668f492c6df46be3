//! MessagePack, byte-compatible with notepack.io 3.0.1 (PROTOCOL.md section 7).
//!
//! - Reading is zero-copy: [`read_value`] returns a [`ValueRef`] borrowing from the input;
//!   arrays and maps are iterated lazily. The whole value is validated first by the
//!   iterative [`skip_value`], so hostile input (deep nesting, huge declared lengths)
//!   never overflows the stack nor allocates in proportion to a declared length.
//! - [`Writer`] follows notepack's encoder rules (smallest integer formats, float64 for
//!   everything non-integral, `-0` as `00`, the 2^64 wrap-around, timestamp ext).
//! - [`read_broadcast_envelope`] and [`read_message_header`] extract the routing fields
//!   of the classic broadcast envelope (PROTOCOL.md 2.3) and of request/response maps.
//! - [`json_to_msgpack`] / [`msgpack_to_json`] transcode without an intermediate tree.
//! - [`event_wire_string`] turns an EVENT packet into the text socket.io sends to clients.

mod envelope;
mod event_wire;
mod plain_json;
mod reader;
mod to_json;
mod transcode;
mod writer;

pub use envelope::{
    peek_envelope_uid, peek_message_type, read_broadcast_envelope, read_cluster_broadcast,
    read_message_header, BroadcastEnvelope, MessageHeader, RoomRef,
};
pub use event_wire::{decoded_json, event_wire_string, EventWire};
pub use reader::{
    read_value, read_value_with_limits, skip_value, validate, ArrayIter, ArrayRef, MapIter, MapRef,
    ValueRef,
};
pub use to_json::msgpack_to_json;
pub use transcode::{
    json_to_msgpack, json_to_msgpack_with_attachments, json_to_msgpack_with_limits, TranscodeError,
};
pub use writer::Writer;

use std::fmt;

/// Why a MessagePack buffer was rejected.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DecodeError {
    /// The input ends in the middle of a value (or a declared length exceeds the input).
    Truncated,
    /// A byte that is not a MessagePack marker (only `0xc1`).
    InvalidMarker(u8),
    /// Nesting deeper than [`Limits::max_depth`].
    TooDeep,
    /// A declared length above [`Limits::max_len`].
    TooLarge,
    /// Bytes left after the value (the count is given); notepack throws on these too.
    TrailingBytes(usize),
    /// A string that had to be text (uid, room, nsp...) is not valid UTF-8.
    InvalidUtf8,
    /// The value has the wrong type for its position; the payload names what was expected.
    UnexpectedType(&'static str),
}

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DecodeError::Truncated => f.write_str("truncated MessagePack input"),
            DecodeError::InvalidMarker(b) => write!(f, "invalid MessagePack marker 0x{b:02x}"),
            DecodeError::TooDeep => f.write_str("MessagePack nesting too deep"),
            DecodeError::TooLarge => f.write_str("MessagePack declared length too large"),
            DecodeError::TrailingBytes(n) => {
                write!(f, "{n} trailing bytes after MessagePack value")
            }
            DecodeError::InvalidUtf8 => f.write_str("invalid UTF-8 in MessagePack string"),
            DecodeError::UnexpectedType(what) => {
                write!(f, "unexpected MessagePack type, expected {what}")
            }
        }
    }
}

impl std::error::Error for DecodeError {}

/// Sanity bounds applied while validating untrusted input.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Maximum number of nested arrays/maps (default 512).
    pub max_depth: usize,
    /// Maximum declared element count of an array/map, or byte length of a str/bin/ext
    /// (default 64 Mi).
    pub max_len: usize,
}

impl Limits {
    /// No bounds at all (still no recursion: validation is iterative).
    pub const UNLIMITED: Limits = Limits {
        max_depth: usize::MAX,
        max_len: usize::MAX,
    };
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_depth: 512,
            max_len: 64 * 1024 * 1024,
        }
    }
}

#[cfg(test)]
mod tests;
