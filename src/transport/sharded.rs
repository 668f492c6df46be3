//! Sharded pub/sub (Redis ≥ 7): SPUBLISH, SSUBSCRIBE/SUNSUBSCRIBE, PUBSUB SHARDNUMSUB. On a
//! Redis Cluster each channel lives on the shard owning its slot; the subscriber follows it
//! across failovers and resharding (see connection::shard_subscriber).

use super::Transport;
use crate::connection::publisher::{ProblemReporter, PublisherLimits};
use crate::connection::{
    CommandConnection, ConnectionOptions, MessageHandler, PublishKind, Publisher, ShardSubscriber,
    Subscription,
};
use crate::connection::{HealthCheck, SubscriberStats};
use redis::RedisResult;
use std::future::Future;
use std::sync::Arc;

pub struct ShardedTransport {
    commands: CommandConnection,
    publisher: Publisher,
    subscriber: ShardSubscriber,
    health: Arc<SubscriberStats>,
}

/// Shard channels only: sharded pub/sub has no patterns.
fn channels(subs: Vec<Subscription>) -> Vec<String> {
    subs.into_iter()
        .filter_map(|s| match s {
            Subscription::Channel(c) => Some(c),
            Subscription::Pattern(_) => None,
        })
        .collect()
}

impl ShardedTransport {
    /// Must run inside a tokio runtime. Connects lazily: nothing fails while Redis is down.
    pub fn start(
        options: &ConnectionOptions,
        handler: Arc<dyn MessageHandler>,
        limits: PublisherLimits,
        report: ProblemReporter,
    ) -> RedisResult<Self> {
        let commands = CommandConnection::new(options)?;
        let publisher = Publisher::spawn(commands.clone(), limits, report);
        let (check, health) = HealthCheck::for_subscriber(&commands, options, true);
        let subscriber = ShardSubscriber::spawn_with_health(options.clone(), handler, check);
        Ok(Self {
            commands,
            publisher,
            subscriber,
            health,
        })
    }

    pub fn publisher(&self) -> &Publisher {
        &self.publisher
    }

    /// Self-ping counters of the subscriber (see connection::health).
    pub fn health(&self) -> Arc<SubscriberStats> {
        self.health.clone()
    }

    pub fn commands(&self) -> &CommandConnection {
        &self.commands
    }
}

impl Transport for ShardedTransport {
    fn publish(&self, channel: String, payload: Vec<u8>) -> bool {
        self.publisher
            .publish(PublishKind::SPublish, channel, payload)
    }

    fn publish_deferred(&self, channel: String, payload: Vec<u8>) -> bool {
        self.publisher
            .publish_deferred(PublishKind::SPublish, channel, payload)
    }

    fn flush(&self) {
        self.publisher.flush();
    }

    async fn publish_confirmed(&self, channel: String, payload: Vec<u8>) -> RedisResult<()> {
        self.publisher
            .publish_confirmed(PublishKind::SPublish, channel, payload)
            .await
    }

    // Not `async fn`: the request is queued when called, so (un)subscriptions apply in call
    // order even when their futures are polled in another order.
    fn subscribe(&self, subs: Vec<Subscription>) -> impl Future<Output = RedisResult<()>> + Send {
        self.subscriber.subscribe(channels(subs))
    }

    fn unsubscribe(&self, subs: Vec<Subscription>) -> impl Future<Output = RedisResult<()>> + Send {
        self.subscriber.unsubscribe(channels(subs))
    }

    /// Through the publisher's pipeline (see `Publisher::queue_count`), queued at the call.
    fn count_listeners(
        &self,
        channel: &str,
    ) -> impl std::future::Future<Output = RedisResult<i64>> + Send {
        self.publisher
            .queue_count(PublishKind::SPublish, channel.to_string())
    }

    /// Both in one round trip (see `Publisher::queue_counted`), queued at the call.
    fn count_and_publish(
        &self,
        channel: String,
        payload: Vec<u8>,
    ) -> impl std::future::Future<Output = RedisResult<i64>> + Send {
        self.publisher
            .queue_counted(PublishKind::SPublish, channel, payload)
    }

    fn shutdown(&self) {
        self.publisher.shutdown();
        self.subscriber.shutdown();
    }
}
