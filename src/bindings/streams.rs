use super::errors::to_napi;
use super::sink::{DeliveryCallback, JsSink};
use crate::connection::publisher::PublisherLimits;
use crate::connection::stream_reader::{
    encode_entries, parse_entries, ReaderSettings, StreamReader,
};
use crate::connection::stream_writer::{xadd_command, StreamWriter};
use crate::connection::{
    CommandConnection, ConnectionEvent, ConnectionOptions, HealthCheck, MessageHandler,
    PublishKind, Publisher, Subscriber, SubscriberStats, Subscription,
};
use crate::protocol::delivery::{log_reporter, DeliveryKind, DeliverySink, FrameBatch};
use crate::protocol::metrics::{publisher_json, stream_entry_age, subscriber_json, Histogram};
use napi::bindgen_prelude::{within_runtime_if_available, Buffer, PromiseRaw};
use napi::{Env, Result};
use napi_derive::napi;
use redis::{Msg, Value};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

/// Frame kind of a batch of stream entries (namespace field = index of the stream).
const STREAM_ENTRIES: u8 = 6;

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
}

/// Pub/sub messages go to JS as they are (MessagePack); JS routes them by namespace.
struct PubSubHandler {
    sink: Arc<dyn DeliverySink>,
}

impl MessageHandler for PubSubHandler {
    fn on_messages(&self, batch: &[Msg]) {
        let mut frames = FrameBatch::default();
        for msg in batch {
            frames.push(DeliveryKind::Request, 0, msg.get_payload_bytes());
        }
        frames.flush_to(&*self.sink);
    }

    fn on_connection_event(&self, event: ConnectionEvent) {
        let text = match event {
            ConnectionEvent::Connected { reconnected: false } => "connected".to_string(),
            ConnectionEvent::Connected { reconnected: true } => "reconnected".to_string(),
            ConnectionEvent::Disconnected { reason } => format!("disconnected: {reason}"),
        };
        let mut frames = FrameBatch::default();
        frames.push(DeliveryKind::Connection, 0, text.as_bytes());
        frames.flush_to(&*self.sink);
    }
}

/// The Rust side of one streams `createAdapter()` call: stream readers, the XADD queue, the
/// pub/sub subscriber and publisher, shared by the adapters of every namespace.
#[napi]
pub struct StreamsDriver {
    commands: CommandConnection,
    publisher: Publisher,
    subscriber: Subscriber,
    writer: StreamWriter,
    readers: Vec<StreamReader>,
    health: Arc<SubscriberStats>,
    /// How old entries are when read (entry id time to now).
    stream_lag: Arc<Histogram>,
    js_sink: Arc<JsSink>,
}

fn kind(sharded: bool) -> PublishKind {
    if sharded {
        PublishKind::SPublish
    } else {
        PublishKind::Publish
    }
}

#[napi]
impl StreamsDriver {
    #[napi(constructor)]
    pub fn new(options: StreamsOptions, on_deliver: DeliveryCallback) -> Result<Self> {
        let connection = ConnectionOptions::from_json(&options.connection).map_err(to_napi)?;
        // No limit: dropping stream entries would break the no-loss promise; see the README.
        let js_sink = JsSink::new(on_deliver);
        let js_sink = Arc::new(js_sink);
        let sink: Arc<dyn DeliverySink> = js_sink.clone();
        let report = log_reporter(sink.clone());
        let max_retry = Duration::from_millis(options.max_retry_ms.unwrap_or(30_000) as u64);
        within_runtime_if_available(|| {
            let commands = CommandConnection::new(&connection).map_err(to_napi)?;
            let publisher =
                Publisher::spawn(commands.clone(), PublisherLimits::default(), report.clone());
            let (check, health) = HealthCheck::for_subscriber(&commands, &connection, false);
            let subscriber = Subscriber::spawn_with_health(
                connection.clone(),
                Arc::new(PubSubHandler { sink: sink.clone() }),
                check,
            );
            let writer = StreamWriter::spawn(commands.clone(), max_retry, report.clone());
            let stream_lag = Arc::new(Histogram::default());
            let readers = options
                .streams
                .iter()
                .enumerate()
                .map(|(index, stream)| {
                    let sink = sink.clone();
                    let lag = stream_lag.clone();
                    StreamReader::spawn(
                        connection.clone(),
                        ReaderSettings {
                            stream: stream.clone(),
                            read_count: options.read_count.max(1),
                            block_ms: options.block_time_in_ms,
                        },
                        Arc::new(move |entries| {
                            let now = std::time::SystemTime::now();
                            for age in entries.iter().filter_map(|e| stream_entry_age(&e.id, now)) {
                                lag.observe(age);
                            }
                            // One hand-over per XREAD reply. Entries without `nsp` are skipped
                            // as by the official reader (the offset still moves past them).
                            let useful: Vec<_> = entries
                                .iter()
                                .filter(|e| e.has_field(b"nsp"))
                                .cloned()
                                .collect();
                            if useful.is_empty() {
                                return;
                            }
                            let mut frame = vec![STREAM_ENTRIES];
                            let payload = encode_entries(&useful);
                            frame.extend_from_slice(&(index as u32).to_le_bytes());
                            frame.extend_from_slice(&(payload.len() as u32).to_le_bytes());
                            frame.extend_from_slice(&payload);
                            sink.deliver(frame);
                        }),
                        report.clone(),
                    )
                })
                .collect();
            Ok(Self {
                commands,
                publisher,
                subscriber,
                writer,
                readers,
                health,
                stream_lag,
                js_sink: js_sink.clone(),
            })
        })
    }

    /// `XADD stream MAXLEN ~ maxLen * field value ...`, queued now (entries keep call order)
    /// and retried while Redis is away; resolves with the entry id.
    #[napi(ts_return_type = "Promise<string>")]
    pub fn xadd<'env>(
        &self,
        env: &'env Env,
        stream: String,
        max_len: u32,
        fields: Vec<String>,
    ) -> Result<PromiseRaw<'env, String>> {
        let cmd = xadd_command(&stream, max_len, &fields).map_err(to_napi)?;
        let reply = self.writer.queue(cmd);
        env.spawn_future(async move {
            let value = reply.await.map_err(to_napi)?;
            redis::from_redis_value::<String>(value).map_err(to_napi)
        })
    }

    /// `SET key value PX ttl`, through the same retrying queue (fire and forget, as the
    /// official `persistSession`).
    #[napi]
    pub fn set_px(&self, key: String, value: String, ttl_ms: i64) {
        let mut cmd = redis::cmd("SET");
        cmd.arg(key).arg(value).arg("PX").arg(ttl_ms.max(1));
        let reply = self.writer.queue(cmd);
        within_runtime_if_available(|| {
            tokio::spawn(async move {
                let _ = reply.await;
            })
        });
    }

    /// `MULTI; GET key; DEL key; EXEC` (GETDEL needs Redis 6.2).
    #[napi]
    pub async fn get_del(&self, key: String) -> Result<Option<String>> {
        let mut pipe = redis::pipe();
        pipe.atomic().get(&key).del(&key).ignore();
        let (value,): (Option<String>,) =
            self.commands.pipeline_query(&pipe).await.map_err(to_napi)?;
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
        let value: Value = self.commands.query(&cmd).await.map_err(to_napi)?;
        let entries = parse_entries(&value).map_err(to_napi)?;
        Ok(Buffer::from(encode_entries(&entries)))
    }

    /// Fire and forget (kept and retried while Redis is away). False when refused.
    #[napi]
    pub fn publish(&self, channel: String, payload: Buffer, sharded: bool) -> bool {
        self.publisher
            .publish(kind(sharded), channel, payload.to_vec())
    }

    #[napi]
    pub async fn subscribe(&self, channels: Vec<String>) -> Result<()> {
        let subs = channels.into_iter().map(Subscription::Channel).collect();
        self.subscriber.subscribe(subs).await.map_err(to_napi)
    }

    /// `PUBSUB NUMSUB|SHARDNUMSUB channel`, summed over a cluster.
    #[napi]
    pub async fn count_listeners(&self, channel: String, sharded: bool) -> Result<i64> {
        self.commands
            .num_sub(&channel, sharded)
            .await
            .map_err(to_napi)
    }

    /// Counters as JSON.
    #[napi]
    pub fn metrics(&self) -> String {
        let load = |c: &std::sync::atomic::AtomicU64| c.load(Ordering::Relaxed);
        let w = &self.writer.stats;
        let readers: Vec<_> = self
            .readers
            .iter()
            .map(|r| {
                serde_json::json!({
                    "entries": load(&r.stats.entries),
                    "errors": load(&r.stats.errors),
                    "reconnects": load(&r.stats.reconnects),
                    "losses": load(&r.stats.losses),
                })
            })
            .collect();
        serde_json::json!({
            "written": load(&w.written),
            "writeRetries": load(&w.retries),
            "writeFailures": load(&w.failed),
            "readers": readers,
            "subscriber": subscriber_json(&self.health),
            "published": publisher_json(self.publisher.stats()),
            "streamLagMs": self.stream_lag.to_json(),
            "delivery": self.js_sink.backlog().to_json(),
        })
        .to_string()
    }

    /// Stops the readers and drops the connections; called when the last adapter closes.
    #[napi]
    pub fn shutdown(&self) {
        for r in &self.readers {
            r.shutdown();
        }
        self.writer.shutdown();
        self.publisher.shutdown();
        self.subscriber.shutdown();
        self.js_sink.close();
    }
}
