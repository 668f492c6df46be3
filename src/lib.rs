//! socket.io-redis-native: the Rust core of drop-in Socket.IO Redis adapters.
//!
//! Layers, bottom up:
//! - [`codec`]: MessagePack byte-compatible with notepack.io, and JSON;
//! - [`connection`]: settings, command connection, self-restoring subscriber, batching publisher;
//! - [`transport`]: pub/sub (and later sharded pub/sub, streams) behind one small trait;
//! - [`protocol`]: channel names, routing, request correlation and timeouts;
//! - `bindings` (feature `napi-bindings`): the thin napi layer used by the JS adapters.

pub mod codec;
pub mod connection;
pub mod protocol;
pub mod transport;

#[cfg(test)]
mod test_support;

#[cfg(feature = "napi-bindings")]
mod bindings;
