//! Outgoing messages: a queue drained by one task that sends everything waiting in a single
//! pipelined write. JS calls `publish` synchronously and never waits on Redis.
//!
//! While Redis is unreachable, messages are kept (bounded in bytes and in age) and sent once
//! it is back, instead of being lost as with the official adapters.

mod send;

use super::commands::CommandConnection;
use super::resp::write_len;
use redis::{RedisError, RedisResult};
use send::{drain, encode_raw, take_batch};
use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::sync::Mutex;
use std::time::{Duration, Instant};
use tokio::net::TcpStream;
use tokio::sync::{oneshot, Notify};
use tokio::task::JoinHandle;

/// Commands per pipelined write.
const MAX_PIPELINE: usize = 512;
const MAX_PIPELINE_BYTES: usize = 4 << 20;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PublishKind {
    Publish,
    SPublish,
}

#[derive(Debug, Clone)]
pub struct PublisherLimits {
    /// Bytes waiting to be sent, beyond which new messages are refused (and counted).
    pub max_buffered_bytes: usize,
    /// How long a message may wait for Redis to come back before it is dropped (and counted).
    pub max_retry: Duration,
}

impl Default for PublisherLimits {
    fn default() -> Self {
        Self {
            max_buffered_bytes: 64 << 20,
            max_retry: Duration::from_secs(10),
        }
    }
}

#[derive(Debug, Default)]
pub struct PublisherStats {
    pub published: AtomicU64,
    pub published_bytes: AtomicU64,
    pub failed: AtomicU64,
    pub dropped_overflow: AtomicU64,
    pub retries: AtomicU64,
    pub buffered_bytes: AtomicUsize,
    /// Batches written by the caller's thread on the idle connection (see `QueueState::direct`).
    pub direct_writes: AtomicU64,
}

struct Outgoing {
    kind: PublishKind,
    channel: String,
    payload: Vec<u8>,
    queued_at: Instant,
    /// Resolved once Redis accepted the message, with the listener count when `counted`.
    done: Option<oneshot::Sender<RedisResult<i64>>>,
    /// Preceded by `PUBSUB NUMSUB channel` (see [`Publisher::queue_counted`]).
    counted: bool,
    count: i64,
    /// False for a count alone (see [`Publisher::queue_count`]): no PUBLISH is sent.
    publish: bool,
    /// Set for a [`PublishBundle`]: `payload` then holds its commands as RESP and `channel` is
    /// empty.
    bundle: Option<Box<BundleParts>>,
}

impl Outgoing {
    /// PUBLISH commands this entry sends.
    fn commands(&self) -> usize {
        match &self.bundle {
            Some(parts) => parts.ranges.len(),
            None => usize::from(self.publish),
        }
    }

    /// Bytes of the messages themselves (what `published_bytes` counts).
    fn message_bytes(&self) -> usize {
        match &self.bundle {
            Some(parts) => parts.payload_bytes,
            None => self.payload.len(),
        }
    }
}

/// Where each command's channel and payload are in a bundle's RESP (for the connections
/// that send commands as objects rather than bytes).
#[derive(Debug, Default)]
struct BundleParts {
    ranges: Vec<(std::ops::Range<usize>, std::ops::Range<usize>)>,
    payload_bytes: usize,
}

/// Many PUBLISH commands written as RESP into one buffer while they are produced: a burst of
/// broadcasts costs one allocation and one queue entry instead of a channel String, a payload
/// Vec and an entry per message (allocated on the JS thread and freed on a Tokio worker, which
/// kept glibc's malloc on its slow paths: about 8 % of a sending node's CPU in `perf`), and the
/// raw writer copies the bytes as they are.
#[derive(Debug, Default)]
pub struct PublishBundle {
    commands: Vec<u8>,
    parts: BundleParts,
    scratch: Vec<u8>,
}

impl PublishBundle {
    pub fn len(&self) -> usize {
        self.parts.ranges.len()
    }

    pub fn is_empty(&self) -> bool {
        self.parts.ranges.is_empty()
    }

    /// Appends `PUBLISH channel payload`, the channel being `channel` concatenated, the payload
    /// what `write` puts in the (cleared) buffer it gets. Nothing is appended when it fails.
    pub fn push<E>(
        &mut self,
        channel: &[&[u8]],
        write: impl FnOnce(&mut Vec<u8>) -> Result<(), E>,
    ) -> Result<(), E> {
        self.scratch.clear();
        write(&mut self.scratch)?;
        let out = &mut self.commands;
        out.extend_from_slice(b"*3\r\n$7\r\nPUBLISH\r\n");
        write_len(out, b'$', channel.iter().map(|part| part.len()).sum());
        let channel_at = out.len();
        for part in channel {
            out.extend_from_slice(part);
        }
        let channel_range = channel_at..out.len();
        out.extend_from_slice(b"\r\n");
        write_len(out, b'$', self.scratch.len());
        let payload_at = out.len();
        out.extend_from_slice(&self.scratch);
        let payload_range = payload_at..out.len();
        out.extend_from_slice(b"\r\n");
        self.parts.payload_bytes += self.scratch.len();
        self.parts.ranges.push((channel_range, payload_range));
        Ok(())
    }

    /// The messages one by one, for a transport that has no use for the RESP.
    pub fn into_messages(self) -> Vec<(String, Vec<u8>)> {
        let commands = &self.commands;
        self.parts
            .ranges
            .iter()
            .map(|(channel, payload)| {
                (
                    String::from_utf8_lossy(&commands[channel.clone()]).into_owned(),
                    commands[payload.clone()].to_vec(),
                )
            })
            .collect()
    }
}

/// Called with a reason when messages are dropped or fail, for logging on the JS side.
pub type ProblemReporter = Arc<dyn Fn(String) + Send + Sync>;

/// The queue shared by callers and the drain task. A plain deque plus a `Notify` (rather than a
/// channel) lets hot-path callers queue without waking the task, then wake it once per batch.
struct Queue {
    state: Mutex<QueueState>,
    wake: Notify,
    closed: std::sync::atomic::AtomicBool,
}

struct QueueState {
    items: VecDeque<Outgoing>,
    /// Offered by the drain task while it waits with nothing to do and its raw connection up:
    /// the next [`Publisher::flush`] writes what is queued to the socket itself, on the
    /// caller's thread, instead of waking the task first and letting it write. The task still
    /// reads the replies, but the commands leave one thread wake-up earlier: on a loaded 2-core
    /// machine that wake-up is a sizeable part of a request's round trip.
    direct: Option<Arc<TcpStream>>,
    /// What a flush wrote (or began to write) through `direct`, for the task to finish.
    handed: Option<Handed>,
}

/// A batch a flush encoded and wrote `written` bytes of.
struct Handed {
    batch: Vec<Outgoing>,
    encoded: Encoded,
    written: usize,
}

/// A batch as RESP commands, with where its `PUBSUB NUMSUB` replies are.
struct Encoded {
    commands: Vec<u8>,
    replies: usize,
    /// (reply index, message index) of each count.
    counts: Vec<(usize, usize)>,
}

pub struct Publisher {
    queue: Arc<Queue>,
    stats: Arc<PublisherStats>,
    limits: PublisherLimits,
    task: JoinHandle<()>,
    runtime: tokio::runtime::Handle,
}

/// How long a shut-down publisher may still take to send what was queued before.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(2);

impl Publisher {
    pub fn spawn(
        conn: CommandConnection,
        limits: PublisherLimits,
        report: ProblemReporter,
    ) -> Self {
        let queue = Arc::new(Queue {
            state: Mutex::new(QueueState {
                items: VecDeque::new(),
                direct: None,
                handed: None,
            }),
            wake: Notify::new(),
            closed: std::sync::atomic::AtomicBool::new(false),
        });
        let stats = Arc::new(PublisherStats::default());
        let task = tokio::spawn(drain(
            conn,
            queue.clone(),
            stats.clone(),
            limits.clone(),
            report,
        ));
        Self {
            queue,
            stats,
            limits,
            task,
            runtime: tokio::runtime::Handle::current(),
        }
    }

    pub fn stats(&self) -> &PublisherStats {
        &self.stats
    }

    /// The counters, for a metrics view that outlives a borrow of the publisher.
    pub fn shared_stats(&self) -> Arc<PublisherStats> {
        self.stats.clone()
    }

    /// Fire and forget. Returns false when the message was refused (buffer full or closed).
    pub fn publish(&self, kind: PublishKind, channel: String, payload: Vec<u8>) -> bool {
        let queued = self.enqueue(self.outgoing(kind, channel, payload, None, false));
        self.flush_now();
        queued
    }

    /// Queues without waking the sender: for bursts, followed by one [`Publisher::flush`].
    /// Any later wake (a flush, another publish) sends it, in order.
    pub fn publish_deferred(&self, kind: PublishKind, channel: String, payload: Vec<u8>) -> bool {
        self.enqueue(self.outgoing(kind, channel, payload, None, false))
    }

    /// [`Publisher::publish_deferred`] for many messages under one lock of the queue.
    /// Returns how many were queued; the others were refused (buffer full or closed).
    pub fn publish_deferred_many(
        &self,
        kind: PublishKind,
        messages: impl IntoIterator<Item = (String, Vec<u8>)>,
    ) -> usize {
        let mut queued = 0;
        let mut state = self.queue.state.lock().unwrap();
        for (channel, payload) in messages {
            let msg = self.outgoing(kind, channel, payload, None, false);
            if self.admit(&msg) {
                state.items.push_back(msg);
                queued += 1;
            }
        }
        queued
    }

    /// Queues a bundle as one entry, without waking the sender (as
    /// [`Publisher::publish_deferred`]). Returns how many of its messages were queued: all or
    /// none (buffer full or closed).
    pub fn publish_deferred_bundle(&self, bundle: PublishBundle) -> usize {
        let count = bundle.len();
        if count == 0 {
            return 0;
        }
        let mut msg = self.outgoing(
            PublishKind::Publish,
            String::new(),
            bundle.commands,
            None,
            false,
        );
        msg.bundle = Some(Box::new(bundle.parts));
        if self.enqueue(msg) {
            count
        } else {
            0
        }
    }

    /// Wakes the sender for everything queued so far (bursts of broadcasts: the sender's
    /// thread writes them, next to the JS thread, rather than the JS thread itself).
    pub fn flush(&self) {
        self.queue.wake.notify_one();
    }

    /// Sends everything queued so far: written right here when the sender offers its idle
    /// connection (see [`QueueState::direct`]), else by the sender, which this wakes. For
    /// single messages whose latency counts (requests, answers, counts).
    fn flush_now(&self) {
        self.write_directly();
        self.queue.wake.notify_one();
    }

    /// Takes a batch from the queue and writes it to the offered connection without blocking
    /// (what the socket does not take at once, the sender writes). Under the queue's lock, so
    /// that batches leave in order: the sender takes `handed` before anything else.
    fn write_directly(&self) {
        let mut state = self.queue.state.lock().unwrap();
        if state.items.is_empty() {
            return;
        }
        let Some(stream) = state.direct.take() else {
            return;
        };
        let batch = take_batch(&mut state.items);
        let encoded = encode_raw(&batch);
        // Any error (the connection died meanwhile) shows again when the sender writes the
        // rest, and the batch then takes the usual retry path.
        let written = stream.try_write(&encoded.commands).unwrap_or(0);
        self.stats.direct_writes.fetch_add(1, Ordering::Relaxed);
        state.handed = Some(Handed {
            batch,
            encoded,
            written,
        });
    }

    /// Resolves once Redis accepted the command.
    pub async fn publish_confirmed(
        &self,
        kind: PublishKind,
        channel: String,
        payload: Vec<u8>,
    ) -> RedisResult<()> {
        self.queue_confirmed(kind, channel, payload).await
    }

    /// Counts the listeners of `channel` (`PUBSUB NUMSUB`, as [`CommandConnection::num_sub`])
    /// and publishes right after, resolving with the count once Redis accepted both. On a
    /// standalone server both go in the same write, in that order, so a request costs one round
    /// trip before the answers instead of two, and the count is still taken before the publish
    /// (what the official adapter does in two steps). Queued (and, the sender being idle,
    /// written) during this call, not when the returned future is first polled.
    pub fn queue_counted(
        &self,
        kind: PublishKind,
        channel: String,
        payload: Vec<u8>,
    ) -> impl std::future::Future<Output = RedisResult<i64>> + Send + 'static {
        self.confirmation(kind, channel, payload, true)
    }

    /// `PUBSUB NUMSUB` (or `SHARDNUMSUB` for [`PublishKind::SPublish`]) of `channel` alone,
    /// through the publisher's pipeline: on standalone Redis over TCP it leaves on the raw
    /// connection, written by the caller's thread when the sender is idle, instead of taking
    /// the command connection (the redis crate's task hops).
    pub fn queue_count(
        &self,
        kind: PublishKind,
        channel: String,
    ) -> impl std::future::Future<Output = RedisResult<i64>> + Send + 'static {
        self.confirmation_of(kind, channel, Vec::new(), true, false)
    }

    /// Queues at once (so calls keep their order) and returns the confirmation to await.
    pub fn queue_confirmed(
        &self,
        kind: PublishKind,
        channel: String,
        payload: Vec<u8>,
    ) -> impl std::future::Future<Output = RedisResult<()>> + Send + 'static {
        let confirmed = self.confirmation(kind, channel, payload, false);
        async move { confirmed.await.map(|_| ()) }
    }

    fn confirmation(
        &self,
        kind: PublishKind,
        channel: String,
        payload: Vec<u8>,
        counted: bool,
    ) -> impl std::future::Future<Output = RedisResult<i64>> + Send + 'static {
        self.confirmation_of(kind, channel, payload, counted, true)
    }

    fn confirmation_of(
        &self,
        kind: PublishKind,
        channel: String,
        payload: Vec<u8>,
        counted: bool,
        publish: bool,
    ) -> impl std::future::Future<Output = RedisResult<i64>> + Send + 'static {
        let (tx, rx) = oneshot::channel();
        let msg = self.outgoing(kind, channel, payload, Some(tx), counted);
        let queued = self.enqueue(Outgoing { publish, ..msg });
        self.flush_now();
        async move {
            if !queued {
                return Err(RedisError::from((
                    redis::ErrorKind::Io,
                    "publish refused: the outgoing buffer is full or the adapter is closed",
                )));
            }
            rx.await
                .map_err(|_| RedisError::from((redis::ErrorKind::Io, "publisher closed")))?
        }
    }

    fn outgoing(
        &self,
        kind: PublishKind,
        channel: String,
        payload: Vec<u8>,
        done: Option<oneshot::Sender<RedisResult<i64>>>,
        counted: bool,
    ) -> Outgoing {
        Outgoing {
            kind,
            channel,
            payload,
            queued_at: Instant::now(),
            done,
            counted,
            count: 0,
            publish: true,
            bundle: None,
        }
    }

    fn enqueue(&self, msg: Outgoing) -> bool {
        if !self.admit(&msg) {
            return false;
        }
        self.queue.state.lock().unwrap().items.push_back(msg);
        true
    }

    /// Counts `msg` into the buffered bytes, or refuses it (buffer full, closed).
    fn admit(&self, msg: &Outgoing) -> bool {
        let size = msg.payload.len() + msg.channel.len();
        let buffered = self.stats.buffered_bytes.fetch_add(size, Ordering::Relaxed);
        if buffered + size > self.limits.max_buffered_bytes {
            self.stats.buffered_bytes.fetch_sub(size, Ordering::Relaxed);
            self.stats.dropped_overflow.fetch_add(1, Ordering::Relaxed);
            return false;
        }
        if self.queue.closed.load(Ordering::Relaxed) {
            self.stats.buffered_bytes.fetch_sub(size, Ordering::Relaxed);
            return false;
        }
        true
    }

    /// Refuses what comes next and sends what was queued before (what was published right
    /// before an adapter's `close()` still goes out, even when the sender was busy), then the
    /// task ends; it is stopped after at most [`SHUTDOWN_GRACE`] whatever is left (Redis away).
    pub fn shutdown(&self) {
        self.queue.closed.store(true, Ordering::Relaxed);
        // The offered socket is not written from outside the task any more.
        self.queue.state.lock().unwrap().direct = None;
        self.queue.wake.notify_one();
        let task = self.task.abort_handle();
        self.runtime.spawn(async move {
            tokio::time::sleep(SHUTDOWN_GRACE).await;
            task.abort();
        });
    }
}

impl Drop for Publisher {
    fn drop(&mut self) {
        self.task.abort();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::connection::resp::write_command;

    #[test]
    fn a_bundle_is_the_resp_of_its_commands_and_gives_its_messages_back() {
        let mut bundle = PublishBundle::default();
        let payloads: [&[u8]; 2] = [b"one", b"\r\n\x00two"];
        let channels: [&[&[u8]]; 2] = [&[b"p#"], &[b"p#", "é".as_bytes(), b"#"]];
        for (channel, payload) in channels.iter().zip(payloads) {
            bundle
                .push(channel, |out| {
                    out.extend_from_slice(payload);
                    Ok::<(), ()>(())
                })
                .unwrap();
        }
        let mut expected = Vec::new();
        write_command(&mut expected, &[b"PUBLISH", b"p#", b"one"]);
        write_command(
            &mut expected,
            &[b"PUBLISH", "p#é#".as_bytes(), b"\r\n\x00two"],
        );
        assert_eq!(bundle.commands, expected);
        assert_eq!(bundle.parts.payload_bytes, 3 + 6);
        assert_eq!(
            bundle.into_messages(),
            vec![
                ("p#".to_string(), b"one".to_vec()),
                ("p#é#".to_string(), b"\r\n\x00two".to_vec()),
            ]
        );
    }
}
