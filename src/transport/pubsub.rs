//! Classic Redis pub/sub: PUBLISH, SUBSCRIBE/PSUBSCRIBE, PUBSUB NUMSUB.

use super::Transport;
use crate::connection::publisher::{ProblemReporter, PublisherLimits};
use crate::connection::{
    CommandConnection, ConnectionOptions, MessageHandler, PublishBundle, PublishKind, Publisher,
    Subscriber, Subscription,
};
use crate::connection::{HealthCheck, SubscriberStats};
use redis::RedisResult;
use std::sync::Arc;

pub struct PubSubTransport {
    commands: CommandConnection,
    publisher: Publisher,
    subscriber: Subscriber,
    health: Arc<SubscriberStats>,
}

impl PubSubTransport {
    /// Must run inside a tokio runtime. Connects lazily: nothing fails while Redis is down.
    pub fn start(
        options: &ConnectionOptions,
        handler: Arc<dyn MessageHandler>,
        limits: PublisherLimits,
        report: ProblemReporter,
    ) -> RedisResult<Self> {
        let commands = CommandConnection::new(options)?;
        let publisher = Publisher::spawn(commands.clone(), limits, report);
        let (check, health) = HealthCheck::for_subscriber(&commands, options, false);
        let subscriber = Subscriber::spawn_with_health(options.clone(), handler, check);
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

impl Transport for PubSubTransport {
    fn publish(&self, channel: String, payload: Vec<u8>) -> bool {
        self.publisher
            .publish(PublishKind::Publish, channel, payload)
    }

    fn publish_deferred(&self, channel: String, payload: Vec<u8>) -> bool {
        self.publisher
            .publish_deferred(PublishKind::Publish, channel, payload)
    }

    fn publish_deferred_many(&self, messages: Vec<(String, Vec<u8>)>) -> usize {
        self.publisher
            .publish_deferred_many(PublishKind::Publish, messages)
    }

    fn publish_deferred_bundle(&self, bundle: PublishBundle) -> usize {
        self.publisher.publish_deferred_bundle(bundle)
    }

    fn flush(&self) {
        self.publisher.flush();
    }

    async fn publish_confirmed(&self, channel: String, payload: Vec<u8>) -> RedisResult<()> {
        self.publisher
            .publish_confirmed(PublishKind::Publish, channel, payload)
            .await
    }

    async fn subscribe(&self, subs: Vec<Subscription>) -> RedisResult<()> {
        self.subscriber.subscribe(subs).await
    }

    async fn unsubscribe(&self, subs: Vec<Subscription>) -> RedisResult<()> {
        self.subscriber.unsubscribe(subs).await
    }

    /// Both in one round trip (see `Publisher::queue_counted`), queued at the call.
    fn count_and_publish(
        &self,
        channel: String,
        payload: Vec<u8>,
    ) -> impl std::future::Future<Output = RedisResult<i64>> + Send {
        self.publisher
            .queue_counted(PublishKind::Publish, channel, payload)
    }

    /// Through the publisher's pipeline (see `Publisher::queue_count`), queued at the call.
    fn count_listeners(
        &self,
        channel: &str,
    ) -> impl std::future::Future<Output = RedisResult<i64>> + Send {
        self.publisher
            .queue_count(PublishKind::Publish, channel.to_string())
    }

    fn shutdown(&self) {
        self.publisher.shutdown();
        self.subscriber.shutdown();
    }
}
