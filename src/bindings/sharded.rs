use super::codec::joined_fetch_answer;
use super::errors::to_napi;
use super::queued::send_queued_batch;
use super::runtime;
use super::sink::{DeliveryFunction, JsSink};
use crate::connection::publisher::{PublisherLimits, PublisherStats};
use crate::connection::{ConnectionOptions, SubscriberStats};
use crate::protocol::delivery::{log_reporter, DeliverySink};
use crate::protocol::metrics::{publisher_json, subscriber_json};
use crate::protocol::sharded::ShardedCore;
use crate::transport::ShardedTransport;
use napi::bindgen_prelude::{
    within_runtime_if_available, Buffer, BufferSlice, PromiseRaw, Uint32ArraySlice,
};
use napi::Env;
use napi::Result;
use napi_derive::napi;
use std::sync::atomic::Ordering;
use std::sync::Arc;

#[napi(object)]
pub struct ShardedOptions {
    /// JSON of the connection settings read from the user's client (see connection::config).
    pub connection: String,
    pub channel_prefix: String,
    /// Bytes of deliveries that may wait for the JS thread (`maxPendingDeliveryBytes`); past
    /// it incoming messages are dropped and counted. 0: no limit. Default 64 MiB.
    pub max_pending_delivery_bytes: Option<u32>,
}

/// The Rust side of one `createShardedAdapter()` call: its connections and shard-channel
/// subscriptions, shared by the adapters of every namespace. Request correlation stays in
/// socket.io-adapter's JS `ClusterAdapter`.
#[napi]
pub struct ShardedDriver {
    core: Arc<ShardedCore<ShardedTransport>>,
    health: Arc<SubscriberStats>,
    published: Arc<PublisherStats>,
    js_sink: Arc<JsSink>,
}

#[napi]
impl ShardedDriver {
    #[napi(constructor)]
    pub fn new(options: ShardedOptions, on_deliver: DeliveryFunction) -> Result<Self> {
        let connection = ConnectionOptions::from_json(&options.connection).map_err(to_napi)?;
        let js_sink = JsSink::with_option(&on_deliver, options.max_pending_delivery_bytes)?;
        let js_sink = Arc::new(js_sink);
        let sink: Arc<dyn DeliverySink> = js_sink.clone();
        let core = Arc::new(ShardedCore::new(&options.channel_prefix, sink.clone()));
        let report = log_reporter(sink.clone());
        let transport = within_runtime_if_available(|| {
            ShardedTransport::start(
                &connection,
                core.router(),
                PublisherLimits::default(),
                report,
            )
        })
        .map_err(to_napi)?;
        let health = transport.health();
        let published = transport.publisher().shared_stats();
        core.attach(transport);
        Ok(Self {
            core,
            health,
            published,
            js_sink,
        })
    }

    /// Registers a namespace adapter (its uid names its response channel) and queues the
    /// SSUBSCRIBE of its main and response channels; `whenSubscribed()` tells when they are
    /// confirmed.
    #[napi]
    pub fn add_namespace(&self, name: String, uid: String) -> u32 {
        let (id, _confirmed) = self.core.add_namespace(&name, &uid);
        id
    }

    /// Resolves once every (un)subscription requested before was applied; rejects with the
    /// Redis error while Redis is away (the subscriptions are kept and replayed).
    #[napi]
    pub async fn when_subscribed(&self) -> Result<()> {
        self.core.flush().await.map_err(to_napi)
    }

    /// Resolves with whether other namespaces still use this driver.
    #[napi]
    pub async fn remove_namespace(&self, ns: u32) -> Result<bool> {
        self.core.remove_namespace(ns).await.map_err(to_napi)
    }

    /// SSUBSCRIBE `P#N#room#` (queued in call order with `removeRoom`).
    /// Hand broadcasts of this namespace over as socket.io wire text (default parser only).
    #[napi]
    pub fn set_wire_text(&self, ns: u32, enabled: bool) {
        self.core.set_wire_text(ns, enabled);
    }

    #[napi]
    pub fn add_room(&self, ns: u32, room: String) -> bool {
        self.core.add_room(ns, &room)
    }

    #[napi]
    pub fn remove_room(&self, ns: u32, room: String) -> bool {
        self.core.remove_room(ns, &room)
    }

    /// SPUBLISH on the main channel, or on the dynamic channel of `room`. False when refused
    /// (outgoing buffer full, or closed).
    #[napi]
    pub fn publish(&self, ns: u32, room: Option<String>, payload: Buffer) -> bool {
        self.core.publish(ns, room.as_deref(), payload.to_vec())
    }

    /// Queued only; sent by the next `flush()` (the JS layer calls it once per turn).
    #[napi]
    pub fn publish_deferred(&self, ns: u32, room: Option<String>, payload: Buffer) -> bool {
        self.core
            .publish_deferred(ns, room.as_deref(), payload.to_vec())
    }

    /// `publish_deferred` of a JSON message built in JS: the string crosses as UTF-8 bytes
    /// once, with no Buffer made for it on the JS side.
    #[napi]
    pub fn publish_text_deferred(&self, ns: u32, room: Option<String>, text: String) -> bool {
        self.core
            .publish_deferred(ns, room.as_deref(), text.into_bytes())
    }

    /// `publish_deferred` of a broadcast with Buffers: the message JSON with socket.io-parser's
    /// placeholders, and the Buffers they stand for (MessagePack written in Rust, byte-equal to
    /// notepack's). -1 when the JSON cannot be transcoded (JS then takes upstream's path),
    /// else 1 queued, 0 refused.
    #[napi]
    pub fn publish_json_attachments_deferred(
        &self,
        ns: u32,
        room: Option<String>,
        message_json: String,
        attachments: Vec<Buffer>,
    ) -> i32 {
        let attachments: Vec<&[u8]> = attachments.iter().map(|b| &b[..]).collect();
        match self.core.publish_json_attachments_deferred(
            ns,
            room.as_deref(),
            &message_json,
            &attachments,
        ) {
            Ok(queued) => i32::from(queued),
            Err(_) => -1,
        }
    }

    /// The broadcast messages JS queued during one event-loop turn: the first `length`
    /// bytes of `queue` (records of `protocol::broadcast_batch`, data = the message JSON),
    /// read during the call, their Buffers in `attachments`. Returns nothing when every one
    /// was queued, else what happened to the others, for the debug log.
    #[napi]
    pub fn broadcast_json_batch(
        &self,
        queue: BufferSlice,
        length: u32,
        attachments: Option<BufferSlice>,
        attachments_length: Option<u32>,
    ) -> Option<String> {
        send_queued_batch(
            &queue,
            length,
            attachments.as_ref(),
            attachments_length,
            |batch, attachments| self.core.publish_text_batch(batch, attachments),
        )
    }

    /// Sends what `publish_deferred` queued.
    #[napi]
    pub fn flush(&self) {
        self.core.send_queued();
    }

    #[napi]
    pub fn publish_response(&self, ns: u32, requester_uid: String, payload: Buffer) -> bool {
        self.core
            .publish_response(ns, &requester_uid, payload.to_vec())
    }

    /// A fetchSockets answer joined from its parts (see `codec::fetch_sockets::join_fetch_answer`)
    /// and published as `publish_response` does.
    #[allow(clippy::too_many_arguments)]
    #[napi]
    pub fn publish_fetch_answer(
        &self,
        ns: u32,
        requester_uid: String,
        head: String,
        details: String,
        handshakes: BufferSlice,
        lengths: Uint32ArraySlice,
        tail: String,
    ) -> Result<bool> {
        let payload = joined_fetch_answer(&head, &details, &handshakes, &lengths, &tail)?;
        Ok(self.core.publish_response(ns, &requester_uid, payload))
    }

    /// `PUBSUB SHARDNUMSUB` of the main channel, started on the JS thread (`runtime::started`).
    #[napi(ts_return_type = "Promise<number>")]
    pub fn server_count<'env>(&self, env: &'env Env, ns: u32) -> Result<PromiseRaw<'env, i64>> {
        let core = self.core.clone();
        let count = async move { core.server_count(ns).await.map_err(to_napi) };
        env.spawn_future(runtime::started(count))
    }

    /// Publishes a request on the main channel and resolves with the server count taken just
    /// before it (see `ShardedCore::count_and_publish`).
    /// Started on the JS thread (see `runtime::started`): the request leaves during this call
    /// when the publisher is idle.
    #[napi(ts_return_type = "Promise<number>")]
    pub fn count_and_publish<'env>(
        &self,
        env: &'env Env,
        ns: u32,
        payload: Buffer,
    ) -> Result<PromiseRaw<'env, i64>> {
        let (core, payload) = (self.core.clone(), payload.to_vec());
        let published = async move { core.count_and_publish(ns, payload).await.map_err(to_napi) };
        env.spawn_future(runtime::started(published))
    }

    /// Counters as JSON (see `metrics()` of the JS adapter).
    #[napi]
    pub fn metrics(&self) -> String {
        let r = self.core.router();
        let s = r.stats();
        let load = |c: &std::sync::atomic::AtomicU64| c.load(Ordering::Relaxed);
        serde_json::json!({
            "received": load(&s.received),
            "receivedBytes": load(&s.received_bytes),
            "delivered": load(&s.delivered),
            "deliveredAsText": load(&s.delivered_as_text),
            "skippedOwn": load(&s.skipped_own),
            "skippedForeign": load(&s.skipped_foreign),
            "decodeErrors": load(&s.decode_errors),
            "reconnects": load(&s.reconnects),
            "subscriber": subscriber_json(&self.health),
            "published": publisher_json(&self.published),
            "delivery": self.js_sink.backlog().to_json(),
        })
        .to_string()
    }

    /// Drops the connections; called when the last namespace adapter closes.
    #[napi]
    pub fn shutdown(&self) {
        self.core.shutdown();
        self.js_sink.close();
    }
}
