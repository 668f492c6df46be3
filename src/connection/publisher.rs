//! Outgoing messages: a queue drained by one task that sends everything waiting in a single
//! pipelined write. JS calls `publish` synchronously and never waits on Redis.
//!
//! While Redis is unreachable, messages are kept (bounded in bytes and in age) and sent once
//! it is back, instead of being lost as with the official adapters.

use super::commands::{CommandConnection, RawTarget};
use super::raw_connection::{replied_in_time, RawConnection};
use super::resp::{write_command, write_len, Item};
use super::slot::key_slot;
use futures_util::future::join_all;
use redis::{RedisError, RedisResult};
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

fn command_name(kind: PublishKind) -> &'static str {
    match kind {
        PublishKind::Publish => "PUBLISH",
        PublishKind::SPublish => "SPUBLISH",
    }
}

/// One pipelined write, or on a cluster one per slot for SPUBLISH (the cluster connection refuses
/// cross-slot pipelines; SPUBLISH is routed by its channel's slot). On a partial failure what was
/// sent is confirmed and removed from `batch`, and the error is returned for the rest.
async fn send_once(
    conn: &CommandConnection,
    raw: &mut Option<RawConnection>,
    batch: &mut Vec<Outgoing>,
    stats: &PublisherStats,
) -> RedisResult<()> {
    if let Some(target) = conn.raw_target() {
        return send_raw(target, raw, batch).await;
    }
    for msg in batch.iter_mut().filter(|m| m.counted) {
        msg.count = conn
            .num_sub(&msg.channel, msg.kind == PublishKind::SPublish)
            .await?;
    }
    // A count alone was done above: only PUBLISHes go in the pipelines (never an empty one).
    let mut groups: Vec<(Option<u16>, Vec<usize>)> = Vec::new();
    for (i, msg) in batch.iter().enumerate().filter(|(_, m)| m.publish) {
        let key = match msg.kind {
            PublishKind::SPublish if conn.is_cluster() => Some(key_slot(msg.channel.as_bytes())),
            _ => None,
        };
        match groups.iter_mut().find(|(k, _)| *k == key) {
            Some((_, members)) => members.push(i),
            None => groups.push((key, vec![i])),
        }
    }
    let pipes: Vec<redis::Pipeline> = groups
        .iter()
        .map(|(_, members)| {
            let mut pipe = redis::pipe();
            for &i in members {
                let msg = &batch[i];
                match &msg.bundle {
                    // Always PUBLISH: one group, whatever the channels.
                    Some(parts) => {
                        for (channel, payload) in &parts.ranges {
                            pipe.cmd("PUBLISH")
                                .arg(&msg.payload[channel.clone()])
                                .arg(&msg.payload[payload.clone()])
                                .ignore();
                        }
                    }
                    None => {
                        pipe.cmd(command_name(msg.kind))
                            .arg(&msg.channel)
                            .arg(&msg.payload)
                            .ignore();
                    }
                }
            }
            pipe
        })
        .collect();
    let results = join_all(pipes.iter().map(|pipe| conn.pipeline(pipe))).await;
    let Some(err) = results.iter().find_map(|r| r.as_ref().err()).cloned() else {
        return Ok(());
    };
    let mut sent: Vec<bool> = batch.iter().map(|m| !m.publish).collect();
    for ((_, members), result) in groups.iter().zip(&results) {
        if result.is_ok() {
            for &i in members {
                sent[i] = true;
            }
        }
    }
    let mut index = 0;
    batch.retain_mut(|m| {
        let was_sent = sent[index];
        index += 1;
        if was_sent {
            stats
                .published
                .fetch_add(m.commands() as u64, Ordering::Relaxed);
            stats
                .published_bytes
                .fetch_add(m.message_bytes() as u64, Ordering::Relaxed);
            stats
                .buffered_bytes
                .fetch_sub(m.payload.len() + m.channel.len(), Ordering::Relaxed);
            if let Some(done) = m.done.take() {
                let _ = done.send(Ok(m.count));
            }
        }
        !was_sent
    });
    Err(err)
}

/// The whole batch in one write on the publisher's own connection (standalone, plain TCP):
/// no command objects, and the replies are counted rather than parsed into values. The
/// connection is dropped on any I/O problem and opened again by the next attempt.
async fn send_raw(
    target: &RawTarget,
    raw: &mut Option<RawConnection>,
    batch: &mut [Outgoing],
) -> RedisResult<()> {
    let encoded = encode_raw(batch);
    if raw.is_none() {
        *raw = Some(RawConnection::connect(&target.info, target.connect_timeout).await?);
    }
    finish_raw(raw, batch, &encoded, 0).await
}

/// `batch` as RESP commands: each message's `PUBSUB (SHARD)NUMSUB` first when it is counted.
fn encode_raw(batch: &[Outgoing]) -> Encoded {
    let mut commands = Vec::with_capacity(
        batch
            .iter()
            .map(|m| m.channel.len() + m.payload.len() + 40)
            .sum(),
    );
    let mut counts = Vec::new();
    let mut replies = 0;
    for (i, msg) in batch.iter().enumerate() {
        if msg.counted {
            let numsub: &[u8] = match msg.kind {
                PublishKind::Publish => b"NUMSUB",
                PublishKind::SPublish => b"SHARDNUMSUB",
            };
            write_command(&mut commands, &[b"PUBSUB", numsub, msg.channel.as_bytes()]);
            counts.push((replies, i));
            replies += 1;
        }
        if msg.bundle.is_some() {
            commands.extend_from_slice(&msg.payload);
            replies += msg.commands();
        } else if msg.publish {
            write_command(
                &mut commands,
                &[
                    command_name(msg.kind).as_bytes(),
                    msg.channel.as_bytes(),
                    &msg.payload,
                ],
            );
            replies += 1;
        }
    }
    Encoded {
        commands,
        replies,
        counts,
    }
}

/// Writes what is left of `encoded` after its first `written` bytes and reads the replies,
/// recording the counts in `batch`. Drops the connection on an I/O problem.
async fn finish_raw(
    raw: &mut Option<RawConnection>,
    batch: &mut [Outgoing],
    encoded: &Encoded,
    written: usize,
) -> RedisResult<()> {
    let Some(conn) = raw.as_mut() else {
        return Err(RedisError::from((redis::ErrorKind::Io, "not connected")));
    };
    let counts = &encoded.counts;
    let mut found: Vec<(usize, i64)> = Vec::with_capacity(counts.len());
    let on_reply = |index: usize, items: &[Item<'_>]| {
        if let Some(&(_, i)) = counts.iter().find(|(r, _)| *r == index) {
            if let [Item::Bulk(_), Item::Int(n)] = items {
                found.push((i, *n));
            }
        }
    };
    let exchange = async {
        conn.write(&encoded.commands[written..]).await?;
        conn.read_replies(encoded.replies, on_reply).await
    };
    let sent = replied_in_time(exchange).await;
    if sent.as_ref().is_err_and(is_transient) {
        *raw = None;
    }
    sent?;
    if found.len() != counts.len() {
        return Err(RedisError::from((
            redis::ErrorKind::UnexpectedReturnType,
            "unexpected PUBSUB NUMSUB reply",
        )));
    }
    for (i, n) in found {
        batch[i].count = n;
    }
    Ok(())
}

/// Up to a pipeline's worth of messages from the front of the queue.
fn take_batch(items: &mut VecDeque<Outgoing>) -> Vec<Outgoing> {
    let mut batch = Vec::with_capacity(items.len().min(MAX_PIPELINE));
    let mut bytes = 0;
    while batch.len() < MAX_PIPELINE && bytes < MAX_PIPELINE_BYTES {
        let Some(msg) = items.pop_front() else { break };
        bytes += msg.payload.len();
        batch.push(msg);
    }
    batch
}

fn is_transient(e: &RedisError) -> bool {
    e.is_io_error()
        || e.is_connection_dropped()
        || e.is_connection_refusal()
        || e.is_timeout()
        || e.is_cluster_error()
}

async fn drain(
    conn: CommandConnection,
    queue: Arc<Queue>,
    stats: Arc<PublisherStats>,
    limits: PublisherLimits,
    report: ProblemReporter,
) {
    let mut raw: Option<RawConnection> = None;
    loop {
        {
            let mut state = queue.state.lock().unwrap();
            if state.items.is_empty()
                && state.handed.is_none()
                && !queue.closed.load(Ordering::Relaxed)
            {
                state.direct = raw.as_ref().map(RawConnection::writer);
            }
        }
        queue.wake.notified().await;
        let handed = {
            let mut state = queue.state.lock().unwrap();
            state.direct = None;
            state.handed.take()
        };
        if let Some(Handed {
            mut batch,
            encoded,
            written,
        }) = handed
        {
            let first = finish_raw(&mut raw, &mut batch, &encoded, written).await;
            let sending = (&*stats, &limits, &report);
            send_with_retry(&conn, &mut raw, &mut batch, sending, Some(first)).await;
            release(&stats, &batch);
        }
        loop {
            let mut batch = take_batch(&mut queue.state.lock().unwrap().items);
            if batch.is_empty() {
                break;
            }
            let sending = (&*stats, &limits, &report);
            send_with_retry(&conn, &mut raw, &mut batch, sending, None).await;
            release(&stats, &batch);
        }
        // Shut down: everything queued before is sent (nothing more is admitted).
        if queue.closed.load(Ordering::Relaxed) {
            return;
        }
    }
}

/// What is left in a batch after sending no longer counts as buffered.
fn release(stats: &PublisherStats, batch: &[Outgoing]) {
    let bytes: usize = batch
        .iter()
        .map(|m| m.payload.len() + m.channel.len())
        .sum();
    stats.buffered_bytes.fetch_sub(bytes, Ordering::Relaxed);
}

/// Sends `batch` until Redis accepted it or its messages expired. `first`: the outcome of an
/// attempt already made (a batch a flush wrote directly), looked at before trying again.
async fn send_with_retry(
    conn: &CommandConnection,
    raw: &mut Option<RawConnection>,
    batch: &mut Vec<Outgoing>,
    (stats, limits, report): (&PublisherStats, &PublisherLimits, &ProblemReporter),
    mut first: Option<RedisResult<()>>,
) {
    let mut failures = 0u32;
    loop {
        let outcome = match first.take() {
            Some(outcome) => outcome,
            None => send_once(conn, raw, batch, stats).await,
        };
        match outcome {
            Ok(()) => {
                stats.published.fetch_add(
                    batch.iter().map(Outgoing::commands).sum::<usize>() as u64,
                    Ordering::Relaxed,
                );
                let bytes: usize = batch.iter().map(Outgoing::message_bytes).sum();
                stats
                    .published_bytes
                    .fetch_add(bytes as u64, Ordering::Relaxed);
                for msg in batch.iter_mut() {
                    if let Some(done) = msg.done.take() {
                        let _ = done.send(Ok(msg.count));
                    }
                }
                return;
            }
            Err(e) if is_transient(&e) => {
                failures += 1;
                stats.retries.fetch_add(1, Ordering::Relaxed);
                // Give up on what waited too long; keep the rest for the next attempt.
                let mut dropped = 0;
                let mut expired = Vec::new();
                batch.retain_mut(|m| {
                    let keep = m.queued_at.elapsed() < limits.max_retry;
                    if !keep {
                        dropped += m.commands().max(1);
                        // drain() only accounts for what is still in the batch.
                        stats
                            .buffered_bytes
                            .fetch_sub(m.payload.len() + m.channel.len(), Ordering::Relaxed);
                        expired.push(m.done.take());
                    }
                    keep
                });
                if dropped > 0 {
                    stats.failed.fetch_add(dropped as u64, Ordering::Relaxed);
                    report(format!(
                        "dropped {dropped} message(s) after {:?} without Redis: {e}",
                        limits.max_retry
                    ));
                    for done in expired.into_iter().flatten() {
                        let _ = done.send(Err(RedisError::from((
                            redis::ErrorKind::Io,
                            "publish failed: Redis unreachable",
                            e.to_string(),
                        ))));
                    }
                }
                if batch.is_empty() {
                    return;
                }
                if failures == 1 {
                    report(format!("publish failed, retrying: {e}"));
                }
                let delay = 25u64.saturating_mul(1 << failures.min(6)).min(1000);
                tokio::time::sleep(Duration::from_millis(delay)).await;
            }
            Err(e) => {
                let failed: usize = batch.iter().map(|m| m.commands().max(1)).sum();
                stats.failed.fetch_add(failed as u64, Ordering::Relaxed);
                report(format!("publish of {failed} message(s) failed: {e}"));
                let reason = e.to_string();
                for msg in batch.iter_mut() {
                    if let Some(done) = msg.done.take() {
                        let _ = done.send(Err(RedisError::from((
                            redis::ErrorKind::Io,
                            "publish failed",
                            reason.clone(),
                        ))));
                    }
                }
                return;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
