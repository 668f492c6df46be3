//! Connection management: settings read from the user's client, a lazily connecting command
//! connection (standalone, sentinel or cluster), and a self-restoring subscriber.

pub mod command_batch;
pub mod commands;
pub mod config;
pub mod health;
pub mod message;
pub mod publisher;
pub mod raw_connection;
pub mod resp;
pub mod resp_nested;
pub mod sentinel;
pub mod shard_subscriber;
pub mod slot;
pub mod stream_entry;
pub mod stream_loss;
pub mod stream_raw;
pub mod stream_reader;
pub mod stream_writer;
pub mod subscriber;

pub use commands::CommandConnection;
pub use config::{ConnectionOptions, Topology};
pub use health::{HealthCheck, SubscriberStats};
pub use message::PubSubMessage;
pub use publisher::{PublishBundle, PublishKind, Publisher};
pub use shard_subscriber::ShardSubscriber;
pub use subscriber::{ConnectionEvent, MessageHandler, Subscriber, Subscription};
