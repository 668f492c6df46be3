use super::codec::joined_fetch_answer;
use super::errors::to_napi;
use super::queued::send_queued_batch;
use super::runtime;
use super::sink::{DeliveryFunction, JsSink};
use crate::codec::fetch_sockets;
use crate::connection::publisher::{PublisherLimits, PublisherStats};
use crate::connection::{ConnectionOptions, SubscriberStats};
use crate::protocol::classic::{ClassicCore, ClassicSettings};
use crate::protocol::delivery::{log_reporter, DeliverySink};
use crate::protocol::metrics::{publisher_json, subscriber_json, RequestMetrics};
use crate::protocol::requests::{uid2, AnswerMap};
use crate::transport::PubSubTransport;
use napi::bindgen_prelude::{
    within_runtime_if_available, Buffer, BufferSlice, Either, PromiseRaw, Uint32ArraySlice,
};
use napi::Env;
use napi::Result;
use napi_derive::napi;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

#[napi(object)]
pub struct ClassicOptions {
    /// JSON of the connection settings read from the user's client (see connection::config).
    pub connection: String,
    pub key: String,
    pub publish_on_specific_response_channel: bool,
    pub default_parser: bool,
    /// Bytes of deliveries that may wait for the JS thread (`maxPendingDeliveryBytes`); past
    /// it incoming messages are dropped and counted. 0: no limit. Default 64 MiB.
    pub max_pending_delivery_bytes: Option<u32>,
}

#[napi(object)]
pub struct RequestOutcome {
    pub expected: u32,
    pub timed_out: bool,
    pub responses: Vec<Buffer>,
}

/// The Rust side of one `createAdapter()` call: its connections, subscriptions and pending
/// requests, shared by the adapters of every namespace.
#[napi]
pub struct ClassicDriver {
    core: Arc<ClassicCore<PubSubTransport>>,
    health: Arc<SubscriberStats>,
    published: Arc<PublisherStats>,
    js_sink: Arc<JsSink>,
    requests: Arc<RequestMetrics>,
}

#[napi]
impl ClassicDriver {
    #[napi(constructor)]
    pub fn new(options: ClassicOptions, on_deliver: DeliveryFunction) -> Result<Self> {
        let connection = ConnectionOptions::from_json(&options.connection).map_err(to_napi)?;
        let settings = ClassicSettings::new(
            &options.key,
            options.publish_on_specific_response_channel,
            options.default_parser,
        );
        let js_sink = JsSink::with_option(&on_deliver, options.max_pending_delivery_bytes)?;
        let js_sink = Arc::new(js_sink);
        let sink: Arc<dyn DeliverySink> = js_sink.clone();
        let core = Arc::new(ClassicCore::new(settings, sink.clone()));
        let report = log_reporter(sink.clone());
        let transport = within_runtime_if_available(|| {
            PubSubTransport::start(
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
            requests: Arc::new(RequestMetrics::default()),
        })
    }

    #[napi(getter)]
    pub fn uid(&self) -> String {
        self.core.settings().uid.clone()
    }

    #[napi]
    pub fn new_request_id(&self) -> String {
        uid2(6)
    }

    #[napi]
    pub fn add_namespace(&self, name: String) -> u32 {
        self.core.add_namespace(&name)
    }

    #[napi]
    pub async fn subscribe_namespace(&self, ns: u32) -> Result<()> {
        self.core.subscribe_namespace(ns).await.map_err(to_napi)
    }

    /// Resolves with whether other namespaces still use this driver.
    #[napi]
    pub async fn remove_namespace(&self, ns: u32) -> Result<bool> {
        self.core.remove_namespace(ns).await.map_err(to_napi)
    }

    /// Hand broadcasts of this namespace over as socket.io wire text (default parser only).
    #[napi]
    pub fn set_wire_text(&self, ns: u32, enabled: bool) {
        self.core.set_wire_text(ns, enabled);
    }

    #[napi]
    pub fn add_room(&self, ns: u32, room: String) {
        self.core.add_room(ns, &room);
    }

    #[napi]
    pub fn remove_room(&self, ns: u32, room: String) {
        self.core.remove_room(ns, &room);
    }

    #[napi]
    pub fn broadcast(&self, ns: u32, room: Option<String>, payload: Buffer) -> bool {
        self.core.broadcast(ns, room.as_deref(), payload.to_vec())
    }

    /// See `ClassicCore::broadcast_json`: 1 queued, 0 refused, -1 not transcodable (the
    /// caller then encodes the envelope itself).
    #[napi]
    pub fn broadcast_json(
        &self,
        ns: u32,
        room: Option<String>,
        data_json: String,
        opts_json: Option<String>,
    ) -> i32 {
        match self
            .core
            .broadcast_json(ns, room.as_deref(), &data_json, opts_json.as_deref())
        {
            Ok(queued) => i32::from(queued),
            Err(_) => -1,
        }
    }

    /// See `ClassicCore::broadcast_json_attachments`: as `broadcast_json`, for data holding
    /// Buffers (the JSON has socket.io-parser's placeholders, `attachments` their bytes).
    #[napi]
    pub fn broadcast_json_attachments(
        &self,
        ns: u32,
        room: Option<String>,
        data_json: String,
        opts_json: Option<String>,
        attachments: Vec<Buffer>,
    ) -> i32 {
        let attachments: Vec<&[u8]> = attachments.iter().map(|b| &b[..]).collect();
        match self.core.broadcast_json_attachments(
            ns,
            room.as_deref(),
            &data_json,
            opts_json.as_deref(),
            &attachments,
        ) {
            Ok(queued) => i32::from(queued),
            Err(_) => -1,
        }
    }

    /// The broadcasts JS queued during one event-loop turn: the first `length` bytes of
    /// `queue`, UTF-8 (layout in `protocol::broadcast_batch`), read during the call (JS
    /// reuses the buffer); the records' Buffers in the first `attachments_length` bytes of
    /// `attachments`. Returns nothing when every one was queued, else what happened
    /// to the others, for the debug log.
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
            |batch, attachments| self.core.broadcast_json_batch(batch, attachments),
        )
    }

    /// Sends the broadcasts queued since the last flush.
    #[napi]
    pub fn flush(&self) {
        self.core.flush();
    }

    #[napi]
    pub fn publish_request(&self, ns: u32, payload: Buffer) -> bool {
        self.core.publish_request(ns, payload.to_vec())
    }

    /// `payload`: the answer's JSON text (one UTF-8 copy, straight into the message) or its
    /// encoded bytes.
    #[napi]
    pub fn publish_response(
        &self,
        ns: u32,
        requester_uid: Option<String>,
        payload: Either<String, Buffer>,
        common_only: bool,
    ) -> bool {
        let payload = match payload {
            Either::A(text) => text.into_bytes(),
            Either::B(bytes) => bytes.to_vec(),
        };
        self.core
            .publish_response(ns, requester_uid.as_deref(), payload, common_only)
    }

    /// A fetchSockets answer joined from its parts (see `codec::fetch_sockets::join_fetch_answer`)
    /// and published as `publish_response` does.
    #[allow(clippy::too_many_arguments)]
    #[napi]
    pub fn publish_fetch_answer(
        &self,
        ns: u32,
        requester_uid: Option<String>,
        head: String,
        details: String,
        handshakes: BufferSlice,
        lengths: Uint32ArraySlice,
        tail: String,
    ) -> Result<bool> {
        let payload = joined_fetch_answer(&head, &details, &handshakes, &lengths, &tail)?;
        Ok(self
            .core
            .publish_response(ns, requester_uid.as_deref(), payload, false))
    }

    /// `PUBSUB NUMSUB` of the request channel, started on the JS thread (`runtime::started`).
    #[napi(ts_return_type = "Promise<number>")]
    pub fn server_count<'env>(&self, env: &'env Env, ns: u32) -> Result<PromiseRaw<'env, i64>> {
        let core = self.core.clone();
        let count = async move { core.server_count(ns).await.map_err(to_napi) };
        env.spawn_future(runtime::started(count))
    }

    /// Publishes a request and resolves with the answers. Started on the JS thread (see
    /// `runtime::started`): the request leaves during this call when the publisher is idle.
    /// `fetch_answers`: the answers are fetchSockets answers, split as they arrive for the
    /// lazy handshakes of lib/fetch-answers.js (see `codec::fetch_sockets`).
    #[napi(ts_return_type = "Promise<RequestOutcome>")]
    pub fn request<'env>(
        &self,
        env: &'env Env,
        ns: u32,
        request_id: String,
        payload: Buffer,
        timeout_ms: u32,
        fetch_answers: Option<bool>,
    ) -> Result<PromiseRaw<'env, RequestOutcome>> {
        let map: Option<AnswerMap> = match fetch_answers {
            Some(true) => Some(fetch_sockets::fetch_answer_for_js),
            _ => None,
        };
        let payload = payload.to_vec();
        let kind = RequestMetrics::kind_of(&payload);
        let started = Instant::now();
        let (core, requests) = (self.core.clone(), self.requests.clone());
        let request = async move {
            let outcome = core
                .request_mapped(
                    ns,
                    &request_id,
                    payload,
                    Duration::from_millis(timeout_ms as u64),
                    map,
                )
                .await
                .inspect_err(|_| {
                    requests.kind(kind).failed.fetch_add(1, Ordering::Relaxed);
                })
                .map_err(to_napi)?;
            // Not sent when no other node listens (expected == 0): nothing to time.
            if outcome.expected > 0 {
                requests.record(
                    kind,
                    started.elapsed(),
                    outcome.expected,
                    outcome.responses.len(),
                    outcome.timed_out,
                );
            }
            Ok(RequestOutcome {
                expected: outcome.expected as u32,
                timed_out: outcome.timed_out,
                responses: outcome.responses.into_iter().map(Buffer::from).collect(),
            })
        };
        env.spawn_future(runtime::started(request))
    }

    #[napi]
    pub fn ack_request(
        &self,
        ns: u32,
        request_id: String,
        payload: Buffer,
        timeout_ms: u32,
    ) -> bool {
        within_runtime_if_available(|| {
            self.core.ack_request(
                ns,
                &request_id,
                payload.to_vec(),
                Duration::from_millis(timeout_ms as u64),
            )
        })
    }

    /// Counters as JSON (see `RedisAdapter.metrics()`).
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
            "skippedNoLocalRoom": load(&s.skipped_no_local_room),
            "skippedOwn": load(&s.skipped_own),
            "skippedForeign": load(&s.skipped_foreign),
            "decodeErrors": load(&s.decode_errors),
            "responsesMatched": load(&s.responses_matched),
            "reconnects": load(&s.reconnects),
            "pendingRequests": self.core.registry().pending_count(),
            "subscriber": subscriber_json(&self.health),
            "published": publisher_json(&self.published),
            "delivery": self.js_sink.backlog().to_json(),
            "requests": self.requests.to_json(),
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
