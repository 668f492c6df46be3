//! napi bindings: thin typed wrappers over the pure Rust core. Everything that crosses is a
//! string, a number or a byte buffer; deliveries go back in framed batches through one
//! threadsafe function per driver.

pub mod classic;
pub mod codec;
mod errors;
pub mod publisher;
mod queued;
mod runtime;
pub mod sharded;
mod sink;
pub mod streams;
