use super::codec::spliced_fetch_answer;
use super::errors::to_napi;
use super::runtime;
use super::sink::{DeliveryFunction, JsSink};
use crate::codec::fetch_sockets::msgpack_fetch_answer_into;
use crate::connection::command_batch::CommandBatch;
use crate::connection::publisher::{ProblemReporter, PublisherLimits};
use crate::connection::stream_entry::{encode_entries, parse_entries, EntryBatch};
use crate::connection::stream_reader::{HoldPredicate, Loss, ReaderSettings, StreamReader};
use crate::connection::stream_writer::StreamWriter;
use crate::connection::{
    ConnectionEvent, ConnectionOptions, MessageHandler, PubSubMessage, Subscription,
};
use crate::protocol::backlog::{DeliveryBacklog, DEFAULT_MAX_PENDING_BYTES};
use crate::protocol::delivery::{
    deliver_connection_event, log_reporter, DeliveryKind, DeliverySink, FrameBatch,
};
use crate::protocol::metrics::{publisher_json, stream_entry_age, subscriber_json, Histogram};
use crate::protocol::stream_entries::{StreamEntryStats, StreamRoutes};
use crate::transport::{EitherTransport, Transport};
use napi::bindgen_prelude::{
    within_runtime_if_available, Buffer, BufferSlice, PromiseRaw, Uint32ArraySlice,
};
use napi::{Env, Result};
use napi_derive::napi;
use redis::Value;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

/// Frame kind of a batch of stream entries (namespace field = index of the stream).
/// Frame kind of a detected loss: JSON `{stream, after, firstAvailable, lost}`.
const STREAM_LOSS: u8 = 7;

#[napi(object)]
pub struct StreamsOptions {
    /// JSON of the connection settings read from the user's client (see connection::config).
    pub connection: String,
    /// The streams to read: `streamName`, or `streamName-0..N-1`.
    pub streams: Vec<String>,
    pub read_count: u32,
    pub block_time_in_ms: u32,
    /// How long an XADD may wait for Redis to come back before it fails (ms).
    pub max_retry_ms: Option<u32>,
    /// `useShardedPubSub`: requests and responses over SPUBLISH/SSUBSCRIBE/SHARDNUMSUB.
    pub sharded_pub_sub: bool,
    /// `maxPendingDeliveryBytes`: past this many bytes waiting for the JS thread, the readers
    /// hold their next XREAD (nothing is dropped: the entries wait in the stream). None: the
    /// default bound; 0: never hold.
    pub max_pending_delivery_bytes: Option<u32>,
}

/// Pub/sub messages go to JS as they are (MessagePack); JS routes them by namespace.
struct PubSubHandler {
    sink: Arc<dyn DeliverySink>,
}

impl MessageHandler for PubSubHandler {
    fn on_messages(&self, batch: &[PubSubMessage<'_>]) {
        let mut frames = FrameBatch::default();
        for msg in batch {
            // A fetchSockets answer is written straight into the batch (some 70 KB each).
            let answer = frames.push_with(DeliveryKind::Request, 0, |out| {
                msgpack_fetch_answer_into(msg.payload, out)
            });
            if !answer {
                frames.push(DeliveryKind::Request, 0, msg.payload);
            }
        }
        frames.flush_to(&*self.sink);
    }

    fn on_connection_event(&self, event: ConnectionEvent) {
        deliver_connection_event(&*self.sink, event, None);
    }
}

/// What a stream reader needs; kept to start more readers later (see `read_stream`).
struct ReaderContext {
    connection: ConnectionOptions,
    sink: Arc<dyn DeliverySink>,
    report: ProblemReporter,
    read_count: u32,
    block_ms: u32,
    /// How old entries are when read (entry id time to now), over every reader.
    lag: Arc<Histogram>,
    /// True while the JS thread has more than `maxPendingDeliveryBytes` waiting.
    hold_while: Option<HoldPredicate>,
    /// Which entries are dropped (own) or sent as wire text (see protocol::stream_entries).
    routes: Arc<RwLock<StreamRoutes>>,
    entry_stats: Arc<StreamEntryStats>,
}

impl ReaderContext {
    /// Must run inside a tokio runtime. `index` names the stream in the delivered frames.
    fn spawn(&self, index: usize, stream: &str) -> StreamReader {
        let sink = self.sink.clone();
        let lag = self.lag.clone();
        let (routes, entry_stats) = (self.routes.clone(), self.entry_stats.clone());
        StreamReader::spawn(
            self.connection.clone(),
            ReaderSettings {
                stream: stream.to_string(),
                read_count: self.read_count.max(1),
                block_ms: self.block_ms,
                hold_while: self.hold_while.clone(),
            },
            Arc::new(move |entries: &[_]| {
                let now = std::time::SystemTime::now();
                for age in entries.iter().filter_map(|e| stream_entry_age(e.id, now)) {
                    lag.observe(age);
                }
                // One hand-over per XREAD reply, its entries in order.
                let mut batch = FrameBatch::default();
                routes.read().unwrap_or_else(|e| e.into_inner()).frame(
                    entries,
                    index as u32,
                    &entry_stats,
                    &mut batch,
                );
                batch.flush_to(&*sink);
            }),
            Arc::new({
                let sink = self.sink.clone();
                move |loss: &Loss| {
                    let json = serde_json::json!({
                        "stream": loss.stream,
                        "after": loss.after,
                        "firstAvailable": loss.first_available,
                        "lost": loss.lost,
                    })
                    .to_string();
                    // A stream-specific kind; the namespace field carries the stream's index.
                    let mut frame = FrameBatch::default();
                    frame.push_raw(STREAM_LOSS, index as u32, json.as_bytes());
                    frame.flush_to(&*sink);
                }
            }),
            self.report.clone(),
        )
    }
}

/// The Rust side of one streams `createAdapter()` call: stream readers, the XADD queue, the
/// pub/sub subscriber and publisher, shared by the adapters of every namespace.
#[napi]
pub struct StreamsDriver {
    /// Requests and responses: the classic or the sharded pub/sub transport (the same ones as
    /// createAdapter and createShardedAdapter), whose command connection also runs XADD & co.
    pubsub: Arc<EitherTransport>,
    writer: StreamWriter,
    reader_context: ReaderContext,
    /// (stream name, its reader), in start order.
    readers: Mutex<Vec<(String, StreamReader)>>,
    /// No limit on what waits for JS: dropping stream entries would break the no-loss
    /// promise (see the README); kept to release the callback at shutdown and for metrics.
    js_sink: Arc<JsSink>,
}

#[napi]
impl StreamsDriver {
    #[napi(constructor)]
    pub fn new(options: StreamsOptions, on_deliver: DeliveryFunction) -> Result<Self> {
        let connection = ConnectionOptions::from_json(&options.connection).map_err(to_napi)?;
        let js_sink = Arc::new(JsSink::new(&on_deliver)?);
        let sink: Arc<dyn DeliverySink> = js_sink.clone();
        let report = log_reporter(sink.clone());
        let max_retry = Duration::from_millis(options.max_retry_ms.unwrap_or(30_000) as u64);
        within_runtime_if_available(|| {
            let pubsub = EitherTransport::start(
                options.sharded_pub_sub,
                &connection,
                Arc::new(PubSubHandler { sink: sink.clone() }),
                PublisherLimits::default(),
                report.clone(),
            )
            .map_err(to_napi)?;
            let writer = StreamWriter::spawn(pubsub.commands().clone(), max_retry, report.clone());
            let reader_context = ReaderContext {
                connection,
                sink,
                report,
                read_count: options.read_count,
                block_ms: options.block_time_in_ms,
                lag: Arc::new(Histogram::default()),
                hold_while: hold_while_behind(
                    js_sink.backlog(),
                    options.max_pending_delivery_bytes,
                ),
                routes: Arc::default(),
                entry_stats: Arc::default(),
            };
            let readers = options
                .streams
                .iter()
                .enumerate()
                .map(|(index, stream)| (stream.clone(), reader_context.spawn(index, stream)))
                .collect();
            Ok(Self {
                pubsub: Arc::new(pubsub),
                writer,
                reader_context,
                readers: Mutex::new(readers),
                js_sink,
            })
        })
    }

    /// Entries written by the adapter with this uid are not handed over (JS would drop them).
    #[napi]
    pub fn add_own_uid(&self, uid: String) {
        self.routes_mut().add_own_uid(&uid);
    }

    #[napi]
    pub fn remove_own_uid(&self, uid: String) {
        self.routes_mut().remove_own_uid(&uid);
    }

    /// Hand plain broadcasts of namespace `nsp` over as socket.io wire text (default parser
    /// only); `recovery`: connection state recovery is on, entry ids go into the data.
    #[napi]
    pub fn set_wire_text(&self, nsp: String, enabled: bool, recovery: bool) {
        self.routes_mut().set_wire_text(&nsp, enabled, recovery);
    }

    fn routes_mut(&self) -> std::sync::RwLockWriteGuard<'_, StreamRoutes> {
        self.reader_context
            .routes
            .write()
            .unwrap_or_else(|e| e.into_inner())
    }

    /// Starts reading one more stream (from its last entry), unless it is read already. Used
    /// for the stream official nodes write a namespace with a negative hash to.
    #[napi]
    pub fn read_stream(&self, stream: String) {
        let mut readers = self.readers.lock().unwrap();
        if readers.iter().any(|(name, _)| *name == stream) {
            return;
        }
        let index = readers.len();
        let reader = within_runtime_if_available(|| self.reader_context.spawn(index, &stream));
        readers.push((stream, reader));
    }

    /// `XADD stream MAXLEN ~ maxLen * field value ...` for the entries of one JS tick, in one
    /// call; retried while Redis is away. `frames` is, per entry,
    /// `stream, max_len: u32 LE, field count: u32 LE, fields`, each string as `u32 LE length +
    /// UTF-8`. All are queued before this returns (call order kept); resolves with one outcome
    /// per entry, in order, as one string (one crossing instead of an object per entry): lines
    /// `+<entry id>` or `-<error>`, joined by `\n` (see [`outcome_lines`]).
    #[napi(ts_return_type = "Promise<string>")]
    pub fn xadd_batch<'env>(
        &self,
        env: &'env Env,
        frames: Buffer,
    ) -> Result<PromiseRaw<'env, String>> {
        let batch = self.xadd_commands(&frames)?;
        let replies = self.writer.queue_batch(batch);
        env.spawn_future(async move {
            Ok(outcome_lines(replies.await.into_iter().map(|r| {
                r.map_err(|e| e.to_string())
                    .and_then(|v| redis::from_redis_value::<String>(v).map_err(|e| e.to_string()))
            })))
        })
    }

    /// [`Self::xadd_batch`] for entries whose ids nobody waits for (broadcasts without
    /// connection state recovery): queued in call order as well, no promise; a failure is
    /// counted (`writeFailures`) and logged. False once the adapter is closed.
    #[napi]
    pub fn xadd_batch_detached(&self, frames: Buffer) -> Result<bool> {
        let batch = self.xadd_commands(&frames)?;
        Ok(self.writer.queue_detached(batch))
    }

    fn xadd_commands(&self, frames: &[u8]) -> Result<CommandBatch> {
        // The commands take about the frames' size: the RESP headers replace the u32 lengths.
        let mut batch = self.writer.batch(frames.len() + frames.len() / 2);
        read_xadd_frames(frames, &mut batch).map_err(to_napi)?;
        Ok(batch)
    }

    /// `SET key value PX ttl`, through the same retrying queue (fire and forget, as the
    /// official `persistSession`).
    #[napi]
    pub fn set_px(&self, key: String, value: String, ttl_ms: i64) {
        let mut batch = self.writer.batch(0);
        let ttl = ttl_ms.max(1).to_string();
        batch.push_command(
            &key,
            &[
                b"SET",
                key.as_bytes(),
                value.as_bytes(),
                b"PX",
                ttl.as_bytes(),
            ],
        );
        self.writer.queue_detached(batch);
    }

    /// `MULTI; GET key; DEL key; EXEC` (GETDEL needs Redis 6.2).
    #[napi]
    pub async fn get_del(&self, key: String) -> Result<Option<String>> {
        let mut pipe = redis::pipe();
        pipe.atomic().get(&key).del(&key).ignore();
        let (value,): (Option<String>,) = self
            .pubsub
            .commands()
            .pipeline_query(&pipe)
            .await
            .map_err(to_napi)?;
        Ok(value)
    }

    /// `XRANGE stream start end [COUNT count]`, entries encoded as for the readers.
    #[napi]
    pub async fn xrange(
        &self,
        stream: String,
        start: String,
        end: String,
        count: Option<u32>,
    ) -> Result<Buffer> {
        let mut cmd = redis::cmd("XRANGE");
        cmd.arg(stream).arg(start).arg(end);
        if let Some(n) = count {
            cmd.arg("COUNT").arg(n);
        }
        let value: Value = self.pubsub.commands().query(&cmd).await.map_err(to_napi)?;
        let entries = parse_entries(&value).map_err(to_napi)?;
        Ok(Buffer::from(encode_entries(
            &EntryBatch::from_owned(&entries).views(),
        )))
    }

    /// PUBLISH (or SPUBLISH), fire and forget (kept and retried while Redis is away). False
    /// when refused.
    #[napi]
    pub fn publish(&self, channel: String, payload: Buffer) -> bool {
        self.pubsub.publish(channel, payload.to_vec())
    }

    /// A fetchSockets answer spliced from its parts (see
    /// `codec::fetch_sockets::splice_msgpack_answer`) and published as `publish` does.
    #[napi]
    pub fn publish_fetch_answer(
        &self,
        channel: String,
        encoded: BufferSlice,
        details: BufferSlice,
        handshakes: BufferSlice,
        lengths: Uint32ArraySlice,
    ) -> Result<bool> {
        let payload = spliced_fetch_answer(&encoded, &details, &handshakes, &lengths)?;
        Ok(self.pubsub.publish(channel, payload))
    }

    /// SUBSCRIBE (or SSUBSCRIBE, each channel on the shard owning its slot); kept and replayed
    /// after reconnections.
    #[napi]
    pub async fn subscribe(&self, channels: Vec<String>) -> Result<()> {
        let subs = channels.into_iter().map(Subscription::Channel).collect();
        self.pubsub.subscribe(subs).await.map_err(to_napi)
    }

    /// `PUBSUB NUMSUB|SHARDNUMSUB channel`, summed over a cluster.
    /// Started on the JS thread (`runtime::started`).
    #[napi(ts_return_type = "Promise<number>")]
    pub fn count_listeners<'env>(
        &self,
        env: &'env Env,
        channel: String,
    ) -> Result<PromiseRaw<'env, i64>> {
        let pubsub = self.pubsub.clone();
        let count = async move { pubsub.count_listeners(&channel).await.map_err(to_napi) };
        env.spawn_future(runtime::started(count))
    }

    /// Publishes on `channel` and resolves with its listener count taken just before, in one
    /// round trip where the transport can (see `Transport::count_and_publish`).
    /// Started on the JS thread (see `runtime::started`): the request leaves during this call
    /// when the publisher is idle.
    #[napi(ts_return_type = "Promise<number>")]
    pub fn count_and_publish<'env>(
        &self,
        env: &'env Env,
        channel: String,
        payload: Buffer,
    ) -> Result<PromiseRaw<'env, i64>> {
        let (pubsub, payload) = (self.pubsub.clone(), payload.to_vec());
        let published = async move {
            pubsub
                .count_and_publish(channel, payload)
                .await
                .map_err(to_napi)
        };
        env.spawn_future(runtime::started(published))
    }

    /// Counters as JSON.
    #[napi]
    pub fn metrics(&self) -> String {
        let load = |c: &std::sync::atomic::AtomicU64| c.load(Ordering::Relaxed);
        let w = &self.writer.stats;
        let readers: Vec<_> = self
            .readers
            .lock()
            .unwrap()
            .iter()
            .map(|(stream, r)| {
                serde_json::json!({
                    "stream": stream,
                    "entries": load(&r.stats.entries),
                    "errors": load(&r.stats.errors),
                    "reconnects": load(&r.stats.reconnects),
                    "losses": load(&r.stats.losses),
                    "lostEntries": load(&r.stats.lost_entries),
                    "holds": load(&r.stats.holds),
                })
            })
            .collect();
        serde_json::json!({
            "written": load(&w.written),
            "writeRetries": load(&w.retries),
            "writeFailures": load(&w.failed),
            "readers": readers,
            "subscriber": subscriber_json(&self.pubsub.health()),
            "published": publisher_json(self.pubsub.publisher().stats()),
            "streamLagMs": self.reader_context.lag.to_json(),
            "skippedOwn": load(&self.reader_context.entry_stats.skipped_own),
            "deliveredAsText": load(&self.reader_context.entry_stats.delivered_as_text),
            "delivery": self.js_sink.backlog().to_json(),
        })
        .to_string()
    }

    /// Stops the readers and drops the connections; called when the last adapter closes.
    #[napi]
    pub fn shutdown(&self) {
        for (_, r) in self.readers.lock().unwrap().iter() {
            r.shutdown();
        }
        self.writer.shutdown();
        self.pubsub.shutdown();
        self.js_sink.close();
    }
}

/// The outcomes of an `xadd_batch`, one line each: `+<entry id>` or `-<error>` (line breaks in
/// an error become spaces; entry ids have none).
fn outcome_lines(outcomes: impl Iterator<Item = std::result::Result<String, String>>) -> String {
    let mut out = String::new();
    for (i, outcome) in outcomes.enumerate() {
        if i > 0 {
            out.push('\n');
        }
        match outcome {
            Ok(id) => {
                out.push('+');
                out.push_str(&id);
            }
            Err(e) => {
                out.push('-');
                out.push_str(&e.replace(['\r', '\n'], " "));
            }
        }
    }
    out
}

/// Reads the frames of [`StreamsDriver::xadd_batch`] into XADD commands, without an
/// intermediate copy. Nothing is queued when they are malformed (the whole call fails).
fn read_xadd_frames(
    mut buf: &[u8],
    batch: &mut CommandBatch,
) -> std::result::Result<(), &'static str> {
    fn u32_at(buf: &mut &[u8]) -> std::result::Result<u32, &'static str> {
        let (head, rest) = buf.split_first_chunk::<4>().ok_or("truncated xadd batch")?;
        *buf = rest;
        Ok(u32::from_le_bytes(*head))
    }
    fn bytes_at<'a>(buf: &mut &'a [u8]) -> std::result::Result<&'a [u8], &'static str> {
        let len = u32_at(buf)? as usize;
        if buf.len() < len {
            return Err("truncated xadd batch");
        }
        let (head, rest) = buf.split_at(len);
        *buf = rest;
        Ok(head)
    }
    let mut fields: Vec<&[u8]> = Vec::new();
    while !buf.is_empty() {
        let stream = std::str::from_utf8(bytes_at(&mut buf)?)
            .map_err(|_| "xadd batch: a stream name is not UTF-8")?;
        let max_len = u32_at(&mut buf)?;
        let count = u32_at(&mut buf)? as usize;
        if count > buf.len() / 4 {
            return Err("xadd batch: impossible field count");
        }
        fields.clear();
        for _ in 0..count {
            let field = bytes_at(&mut buf)?;
            // Checked as text (JS wrote strings; anything else is a malformed call).
            std::str::from_utf8(field).map_err(|_| "xadd batch: a string is not UTF-8")?;
            fields.push(field);
        }
        batch.push_xadd(stream, max_len, fields.iter().copied())?;
    }
    Ok(())
}

/// The readers' hold: true while more than `max_pending` bytes wait for the JS thread (the
/// option, default [`DEFAULT_MAX_PENDING_BYTES`]; 0 turns it off).
fn hold_while_behind(
    backlog: Arc<DeliveryBacklog>,
    max_pending: Option<u32>,
) -> Option<HoldPredicate> {
    let limit = max_pending.map_or(DEFAULT_MAX_PENDING_BYTES, |n| n as usize);
    (limit > 0).then(|| Arc::new(move || backlog.pending_bytes() > limit) as HoldPredicate)
}
