//! Transports: how messages reach the other nodes. The cluster protocol above only needs this
//! small interface (modelled on socket.io-adapter's cluster-adapter `doPublish`/`onMessage`
//! and socketioxide-redis's `Driver`): publish, subscribe, and count the servers listening.

pub mod either;
pub mod pubsub;
pub mod sharded;

use crate::connection::{PublishBundle, Subscription};
use redis::RedisResult;
use std::future::Future;

pub use either::EitherTransport;
pub use pubsub::PubSubTransport;
pub use sharded::ShardedTransport;

pub trait Transport: Send + Sync + 'static {
    /// Queue a message; never waits. False when it was refused (buffer full, closed).
    fn publish(&self, channel: String, payload: Vec<u8>) -> bool;

    /// Queue without waking the sender; a later [`Transport::flush`] (or any other publish)
    /// sends it, in order. Lets a burst of broadcasts go out as one pipelined write.
    fn publish_deferred(&self, channel: String, payload: Vec<u8>) -> bool {
        self.publish(channel, payload)
    }

    /// [`Transport::publish_deferred`] for many messages; returns how many were queued.
    fn publish_deferred_many(&self, messages: Vec<(String, Vec<u8>)>) -> usize {
        messages
            .into_iter()
            .map(|(channel, payload)| self.publish_deferred(channel, payload))
            .filter(|queued| *queued)
            .count()
    }

    /// [`Transport::publish_deferred_many`] for messages written into a bundle (PUBLISH).
    fn publish_deferred_bundle(&self, bundle: PublishBundle) -> usize {
        self.publish_deferred_many(bundle.into_messages())
    }

    /// Send everything queued with `publish_deferred`.
    fn flush(&self) {}

    /// Publish and wait until Redis accepted it (used before awaiting responses).
    fn publish_confirmed(
        &self,
        channel: String,
        payload: Vec<u8>,
    ) -> impl Future<Output = RedisResult<()>> + Send;

    fn subscribe(&self, subs: Vec<Subscription>) -> impl Future<Output = RedisResult<()>> + Send;

    fn unsubscribe(&self, subs: Vec<Subscription>) -> impl Future<Output = RedisResult<()>> + Send;

    /// How many connections listen on `channel` across the deployment (NUMSUB or SHARDNUMSUB),
    /// which is how every official adapter counts servers.
    fn count_listeners(&self, channel: &str) -> impl Future<Output = RedisResult<i64>> + Send;

    /// Counts the listeners of `channel` as [`Transport::count_listeners`], then publishes
    /// `payload` on it; resolves with the count once Redis accepted both. Transports that can
    /// send both in one round trip override this.
    fn count_and_publish(
        &self,
        channel: String,
        payload: Vec<u8>,
    ) -> impl Future<Output = RedisResult<i64>> + Send {
        async move {
            let listeners = self.count_listeners(&channel).await?;
            self.publish_confirmed(channel, payload).await?;
            Ok(listeners)
        }
    }

    /// Stop all background work and drop the connections.
    fn shutdown(&self);
}
