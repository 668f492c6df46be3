//! The cluster protocol: what the messages mean, who answers, who waits for what.
//!
//! Transport-agnostic: everything here talks to Redis only through [`crate::transport::Transport`]
//! and to the JS layer only through [`DeliverySink`].

pub mod backlog;
pub mod broadcast_batch;
pub mod classic;
pub mod cluster_event;
pub mod delivery;
pub mod header;
pub mod metrics;
pub mod requests;
pub mod sharded;
pub mod stream_entries;

pub use delivery::{DeliveryKind, DeliverySink, EventTargets, FrameBatch};
