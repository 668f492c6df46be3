//! Classic or sharded pub/sub, chosen at run time: the streams adapter's `useShardedPubSub`
//! switches its requests and responses between PUBLISH/SUBSCRIBE/NUMSUB and
//! SPUBLISH/SSUBSCRIBE/SHARDNUMSUB on the same channel names (PROTOCOL.md 5.4).

use super::{PubSubTransport, ShardedTransport, Transport};
use crate::connection::publisher::{ProblemReporter, PublisherLimits};
use crate::connection::{
    CommandConnection, ConnectionOptions, MessageHandler, Publisher, SubscriberStats, Subscription,
};
use futures_util::future::Either;
use redis::RedisResult;
use std::future::Future;
use std::sync::Arc;

pub enum EitherTransport {
    Classic(PubSubTransport),
    Sharded(ShardedTransport),
}

impl EitherTransport {
    /// Must run inside a tokio runtime. Connects lazily: nothing fails while Redis is down.
    pub fn start(
        sharded: bool,
        options: &ConnectionOptions,
        handler: Arc<dyn MessageHandler>,
        limits: PublisherLimits,
        report: ProblemReporter,
    ) -> RedisResult<Self> {
        Ok(if sharded {
            Self::Sharded(ShardedTransport::start(options, handler, limits, report)?)
        } else {
            Self::Classic(PubSubTransport::start(options, handler, limits, report)?)
        })
    }

    /// The command connection of the transport, for the other commands of the same node.
    pub fn commands(&self) -> &CommandConnection {
        match self {
            Self::Classic(t) => t.commands(),
            Self::Sharded(t) => t.commands(),
        }
    }

    pub fn publisher(&self) -> &Publisher {
        match self {
            Self::Classic(t) => t.publisher(),
            Self::Sharded(t) => t.publisher(),
        }
    }

    /// Self-ping counters of the subscriber (see connection::health).
    pub fn health(&self) -> Arc<SubscriberStats> {
        match self {
            Self::Classic(t) => t.health(),
            Self::Sharded(t) => t.health(),
        }
    }
}

impl Transport for EitherTransport {
    fn publish(&self, channel: String, payload: Vec<u8>) -> bool {
        match self {
            Self::Classic(t) => t.publish(channel, payload),
            Self::Sharded(t) => t.publish(channel, payload),
        }
    }

    fn publish_confirmed(
        &self,
        channel: String,
        payload: Vec<u8>,
    ) -> impl Future<Output = RedisResult<()>> + Send {
        match self {
            Self::Classic(t) => Either::Left(t.publish_confirmed(channel, payload)),
            Self::Sharded(t) => Either::Right(t.publish_confirmed(channel, payload)),
        }
    }

    fn subscribe(&self, subs: Vec<Subscription>) -> impl Future<Output = RedisResult<()>> + Send {
        match self {
            Self::Classic(t) => Either::Left(t.subscribe(subs)),
            Self::Sharded(t) => Either::Right(t.subscribe(subs)),
        }
    }

    fn unsubscribe(&self, subs: Vec<Subscription>) -> impl Future<Output = RedisResult<()>> + Send {
        match self {
            Self::Classic(t) => Either::Left(t.unsubscribe(subs)),
            Self::Sharded(t) => Either::Right(t.unsubscribe(subs)),
        }
    }

    fn count_listeners(&self, channel: &str) -> impl Future<Output = RedisResult<i64>> + Send {
        match self {
            Self::Classic(t) => Either::Left(t.count_listeners(channel)),
            Self::Sharded(t) => Either::Right(t.count_listeners(channel)),
        }
    }

    fn count_and_publish(
        &self,
        channel: String,
        payload: Vec<u8>,
    ) -> impl Future<Output = RedisResult<i64>> + Send {
        match self {
            Self::Classic(t) => Either::Left(t.count_and_publish(channel, payload)),
            Self::Sharded(t) => Either::Right(t.count_and_publish(channel, payload)),
        }
    }

    fn shutdown(&self) {
        match self {
            Self::Classic(t) => t.shutdown(),
            Self::Sharded(t) => t.shutdown(),
        }
    }
}
