//! XADD queue for the streams adapter. Calls are queued synchronously (so entries reach the
//! stream in call order) and drained by one task in pipelined writes. A call queues one
//! [`CommandBatch`] (the commands of one JS tick, already RESP) and gets one answer for all of
//! them, or none when detached: a broadcast whose local delivery needs no entry id does not
//! wait for its XADD (failures are counted and reported).
//!
//! While Redis is unreachable the commands wait and are retried (bounded in age), so a
//! broadcast made during an outage reaches the stream, and thus every node, once Redis is
//! back; the official adapter fails the XADD and the message is lost for the other nodes.
//!
//! On a Redis Cluster one pipeline may only hold keys of one slot, so a batch is split by the
//! slot of each command's key (streams of `streamCount > 1` and session keys land on different
//! shards) and the groups are sent side by side; each stream keeps its order, as its commands
//! share a group.

use super::command_batch::CommandBatch;
use super::commands::{CommandConnection, RawTarget};
use super::raw_connection::{replied_in_time, server_error, RawConnection};
use super::resp::Item;
use futures_util::future::join_all;
use redis::{Cmd, RedisError, RedisResult, Value};
use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;

const MAX_PIPELINE: usize = 256;
const MIN_BACKOFF: Duration = Duration::from_millis(50);
const MAX_BACKOFF: Duration = Duration::from_secs(1);

/// A queued batch and who waits for its replies (nobody when detached).
struct Queued {
    batch: CommandBatch,
    queued_at: Instant,
    done: Option<oneshot::Sender<Vec<RedisResult<Value>>>>,
}

/// `XADD stream MAXLEN ~ max_len * field value ...`, as the official adapter writes entries.
/// Sized at once (arguments and bytes): used by the emitter's XADD.
pub fn xadd_command(
    stream: &str,
    max_len: u32,
    fields: &[impl AsRef<[u8]>],
) -> Result<Cmd, &'static str> {
    if !fields.len().is_multiple_of(2) {
        return Err("xadd needs field/value pairs");
    }
    let bytes = stream.len() + 16 + fields.iter().map(|f| f.as_ref().len()).sum::<usize>();
    let mut cmd = Cmd::with_capacity(6 + fields.len(), bytes);
    cmd.arg("XADD")
        .arg(stream)
        .arg("MAXLEN")
        .arg("~")
        .arg(max_len)
        .arg("*");
    for f in fields {
        cmd.arg(f.as_ref());
    }
    Ok(cmd)
}

#[derive(Debug, Default)]
pub struct WriterStats {
    pub written: AtomicU64,
    pub retries: AtomicU64,
    pub failed: AtomicU64,
}

pub type WriterReport = Arc<dyn Fn(String) + Send + Sync>;

pub struct StreamWriter {
    /// None once shut down: the drain task then ends after what was queued before.
    tx: std::sync::Mutex<Option<mpsc::UnboundedSender<Queued>>>,
    cluster: bool,
    task: JoinHandle<()>,
    runtime: tokio::runtime::Handle,
    pub stats: Arc<WriterStats>,
}

/// How long a shut-down writer may still take to write what was queued before.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(2);

impl StreamWriter {
    /// Must run inside a tokio runtime. `max_retry`: how long a command may wait for Redis.
    pub fn spawn(conn: CommandConnection, max_retry: Duration, report: WriterReport) -> Self {
        let (tx, rx) = mpsc::unbounded_channel();
        let stats = Arc::new(WriterStats::default());
        let cluster = conn.is_cluster();
        let task = tokio::spawn(drain(conn, rx, max_retry, stats.clone(), report));
        Self {
            tx: std::sync::Mutex::new(Some(tx)),
            cluster,
            task,
            runtime: tokio::runtime::Handle::current(),
            stats,
        }
    }

    /// An empty batch for this writer's deployment (key slots recorded on a cluster).
    pub fn batch(&self, bytes_hint: usize) -> CommandBatch {
        CommandBatch::new(self.cluster, bytes_hint)
    }

    /// Queues `batch` now; resolves with one reply per command, in order (the entry id for
    /// XADD).
    pub fn queue_batch(
        &self,
        batch: CommandBatch,
    ) -> impl std::future::Future<Output = Vec<RedisResult<Value>>> + Send + 'static {
        let count = batch.len();
        let (done, rx) = oneshot::channel();
        let queued = self.send(batch, Some(done));
        async move {
            if !queued {
                return closed_replies(count);
            }
            rx.await.unwrap_or_else(|_| closed_replies(count))
        }
    }

    /// Queues `batch` now without waiting for its replies; false once the writer is closed.
    pub fn queue_detached(&self, batch: CommandBatch) -> bool {
        self.send(batch, None)
    }

    fn send(
        &self,
        batch: CommandBatch,
        done: Option<oneshot::Sender<Vec<RedisResult<Value>>>>,
    ) -> bool {
        let tx = self.tx.lock().unwrap_or_else(|e| e.into_inner());
        tx.as_ref().is_some_and(|tx| {
            tx.send(Queued {
                batch,
                queued_at: Instant::now(),
                done,
            })
            .is_ok()
        })
    }

    /// Refuses what comes next, writes what was queued before (a broadcast made right before
    /// `close()` still reaches the other nodes, as the official adapter's XADD on the user's
    /// client does), and stops after at most [`SHUTDOWN_GRACE`] whatever is left (Redis away).
    pub fn shutdown(&self) {
        drop(self.tx.lock().unwrap_or_else(|e| e.into_inner()).take());
        let task = self.task.abort_handle();
        self.runtime.spawn(async move {
            tokio::time::sleep(SHUTDOWN_GRACE).await;
            task.abort();
        });
    }
}

/// The replies of `count` commands of a batch the writer could not take.
fn closed_replies(count: usize) -> Vec<RedisResult<Value>> {
    (0..count).map(|_| Err(closed())).collect()
}

fn closed() -> RedisError {
    RedisError::from((redis::ErrorKind::Io, "the adapter is closed"))
}

/// Errors after which the command most likely did not run and Redis may come back.
/// "Most likely": when the connection drops after Redis applied an XADD but before its reply
/// arrived, the retry writes the entry a second time, and readers deliver it twice. The
/// official entry format has no field for a client-chosen id to deduplicate on, and an
/// explicit XADD id cannot be chosen by several writers safely (README, streams section).
fn retryable(e: &RedisError) -> bool {
    e.is_io_error() || e.is_connection_dropped() || e.is_connection_refusal() || e.is_timeout()
}

/// One command of a queued batch: the batch's sequence number, its index in the batch and
/// its key's slot (`None` off a cluster).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct CommandRef {
    seq: u64,
    index: usize,
    slot: Option<u16>,
}

/// A batch whose replies are not all in yet.
struct InFlight {
    queued: Queued,
    replies: Vec<Option<RedisResult<Value>>>,
    unanswered: usize,
}

/// The drain task's state: the batches not answered yet (by sequence number) and their
/// commands still to send, in call order.
#[derive(Default)]
struct WriteQueue {
    batches: VecDeque<Option<InFlight>>,
    first_seq: u64,
    todo: VecDeque<CommandRef>,
    /// Failures of detached commands since the last report: how many, and the first error.
    detached_failures: Option<(usize, RedisError)>,
}

impl WriteQueue {
    fn push(&mut self, queued: Queued) {
        let seq = self.first_seq + self.batches.len() as u64;
        let count = queued.batch.len();
        self.todo.extend((0..count).map(|index| CommandRef {
            seq,
            index,
            slot: queued.batch.slot(index),
        }));
        self.batches.push_back(Some(InFlight {
            queued,
            replies: (0..count).map(|_| None).collect(),
            unanswered: count,
        }));
        if count == 0 {
            self.finish(seq);
        }
    }

    fn batch(&self, seq: u64) -> Option<&InFlight> {
        let i = usize::try_from(seq.checked_sub(self.first_seq)?).ok()?;
        self.batches.get(i)?.as_ref()
    }

    fn command(&self, r: CommandRef) -> &[u8] {
        self.batch(r.seq)
            .map_or(&[][..], |b| b.queued.batch.command(r.index))
    }

    fn cmd(&self, r: CommandRef) -> Cmd {
        self.batch(r.seq)
            .map_or_else(Cmd::new, |b| b.queued.batch.cmd(r.index))
    }

    fn queued_at(&self, r: CommandRef) -> Option<Instant> {
        self.batch(r.seq).map(|b| b.queued.queued_at)
    }

    fn answer(&mut self, r: CommandRef, reply: RedisResult<Value>, stats: &WriterStats) {
        match &reply {
            Ok(_) => stats.written.fetch_add(1, Ordering::Relaxed),
            Err(_) => stats.failed.fetch_add(1, Ordering::Relaxed),
        };
        let Some(i) = r
            .seq
            .checked_sub(self.first_seq)
            .and_then(|i| usize::try_from(i).ok())
        else {
            return;
        };
        let Some(Some(b)) = self.batches.get_mut(i) else {
            return;
        };
        if let (Err(e), None) = (&reply, &b.queued.done) {
            match &mut self.detached_failures {
                Some((n, _)) => *n += 1,
                None => self.detached_failures = Some((1, e.clone())),
            }
        }
        if b.replies[r.index].replace(reply).is_none() {
            b.unanswered -= 1;
        }
        if b.unanswered == 0 {
            self.finish(r.seq);
        }
    }

    fn fail(
        &mut self,
        refs: impl IntoIterator<Item = CommandRef>,
        e: &RedisError,
        stats: &WriterStats,
    ) {
        for r in refs {
            self.answer(r, Err(e.clone()), stats);
        }
    }

    /// Answers batch `seq` (all its replies are in) and forgets the answered batches in front.
    fn finish(&mut self, seq: u64) {
        let i = (seq - self.first_seq) as usize;
        if let Some(b) = self.batches.get_mut(i).and_then(Option::take) {
            if let Some(done) = b.queued.done {
                let replies = b
                    .replies
                    .into_iter()
                    .map(|r| r.unwrap_or_else(|| Err(closed())))
                    .collect();
                let _ = done.send(replies);
            }
        }
        while let Some(None) = self.batches.front() {
            self.batches.pop_front();
            self.first_seq += 1;
        }
    }

    fn report_detached_failures(&mut self, report: &WriterReport) {
        if let Some((n, e)) = self.detached_failures.take() {
            report(format!("{n} stream writes failed: {e}"));
        }
    }
}

/// What became of one pipeline: the replies that arrived (those of its first commands) and,
/// when not all did, why.
struct GroupOutcome {
    replies: Vec<RedisResult<Value>>,
    error: Option<RedisError>,
}

/// Sends the commands of one slot (or all of them off a cluster) as one pipeline through the
/// redis crate (cluster, TLS, Unix sockets).
async fn send_group(conn: &CommandConnection, cmds: Vec<Cmd>) -> GroupOutcome {
    let count = cmds.len();
    let mut pipe = redis::pipe();
    pipe.ignore_errors();
    for cmd in cmds {
        pipe.add_command(cmd);
    }
    match conn.pipeline_query::<Vec<RedisResult<Value>>>(&pipe).await {
        Ok(replies) if replies.len() == count => GroupOutcome {
            replies,
            error: None,
        },
        Ok(replies) => GroupOutcome {
            replies: Vec::new(),
            error: Some(RedisError::from((
                redis::ErrorKind::UnexpectedReturnType,
                "pipeline reply count mismatch",
                format!("{} for {count}", replies.len()),
            ))),
        },
        Err(e) => GroupOutcome {
            replies: Vec::new(),
            error: Some(e),
        },
    }
}

/// [`send_group`] on the writer's own connection (standalone Redis over plain TCP): the
/// commands go out as their RESP bytes in one write and the replies are read in place, without
/// the redis crate's pipeline (a task hop to its connection driver and a `Value` tree per
/// reply). The replies that arrived count even when the connection fails afterwards.
async fn send_group_raw(
    target: &RawTarget,
    raw: &mut Option<RawConnection>,
    commands: &[u8],
    count: usize,
) -> GroupOutcome {
    if raw.is_none() {
        match RawConnection::connect(&target.info, target.connect_timeout).await {
            Ok(conn) => *raw = Some(conn),
            Err(e) => {
                return GroupOutcome {
                    replies: Vec::new(),
                    error: Some(e),
                }
            }
        }
    }
    let conn = raw.as_mut().expect("connected above");
    let mut replies: Vec<RedisResult<Value>> = Vec::with_capacity(count);
    let exchange = conn.pipeline_with(commands, count, |_, items| {
        replies.push(reply_value(items));
    });
    let outcome = replied_in_time(exchange).await;
    let error = match outcome {
        // Every reply is in: an error among them was one command's.
        _ if replies.len() == count => None,
        Ok(()) => Some(RedisError::from((
            redis::ErrorKind::Io,
            "replies missing from a pipeline",
        ))),
        Err(e) => Some(e),
    };
    if error.is_some() {
        *raw = None;
    }
    GroupOutcome { replies, error }
}

/// One reply as the redis crate would give it.
fn reply_value(items: &[Item<'_>]) -> RedisResult<Value> {
    match items {
        [Item::Bulk(bytes)] => Ok(Value::BulkString(bytes.to_vec())),
        [Item::Simple(b"OK")] => Ok(Value::Okay),
        [Item::Simple(text)] => Ok(Value::SimpleString(
            String::from_utf8_lossy(text).into_owned(),
        )),
        [Item::Int(n)] => Ok(Value::Int(*n)),
        [Item::Nil] => Ok(Value::Nil),
        [Item::Error(text)] => Err(server_error(text)),
        _ => Err(RedisError::from((
            redis::ErrorKind::UnexpectedReturnType,
            "unexpected reply to a stream write",
        ))),
    }
}

/// Splits `round` by slot, keeping the call order inside each group.
fn group_by_slot(round: Vec<CommandRef>) -> Vec<Vec<CommandRef>> {
    let mut groups: Vec<Vec<CommandRef>> = Vec::new();
    for r in round {
        match groups.iter_mut().find(|g| g[0].slot == r.slot) {
            Some(group) => group.push(r),
            None => groups.push(vec![r]),
        }
    }
    groups
}

async fn drain(
    conn: CommandConnection,
    mut rx: mpsc::UnboundedReceiver<Queued>,
    max_retry: Duration,
    stats: Arc<WriterStats>,
    report: WriterReport,
) {
    let mut queue = WriteQueue::default();
    let mut backoff = MIN_BACKOFF;
    let mut raw: Option<RawConnection> = None;
    let mut commands = Vec::new();
    loop {
        if queue.todo.is_empty() {
            match rx.recv().await {
                Some(q) => queue.push(q),
                None => return,
            }
        }
        while queue.todo.len() < MAX_PIPELINE {
            match rx.try_recv() {
                Ok(q) => queue.push(q),
                Err(_) => break,
            }
        }
        let take = queue.todo.len().min(MAX_PIPELINE);
        let groups = group_by_slot(queue.todo.drain(..take).collect());
        let outcomes = match conn.raw_target() {
            // Standalone: one group.
            Some(target) => {
                let mut outcomes = Vec::with_capacity(groups.len());
                for group in &groups {
                    commands.clear();
                    for r in group {
                        commands.extend_from_slice(queue.command(*r));
                    }
                    outcomes.push(send_group_raw(target, &mut raw, &commands, group.len()).await);
                }
                outcomes
            }
            None => {
                let sends = groups.iter().map(|group| {
                    let cmds = group.iter().map(|r| queue.cmd(*r)).collect();
                    send_group(&conn, cmds)
                });
                join_all(sends).await
            }
        };
        // Replies answer their commands; what could not be sent is kept for a retry, in order.
        let mut retry: Option<RedisError> = None;
        let mut kept = Vec::new();
        for (group, outcome) in groups.into_iter().zip(outcomes) {
            let answered = outcome.replies.len().min(group.len());
            for (r, reply) in group.iter().zip(outcome.replies) {
                queue.answer(*r, reply, &stats);
            }
            match outcome.error {
                None => {}
                Some(e) if retryable(&e) => {
                    kept.extend_from_slice(&group[answered..]);
                    retry.get_or_insert(e);
                }
                Some(e) => queue.fail(group[answered..].iter().copied(), &e, &stats),
            }
        }
        queue.report_detached_failures(&report);
        let Some(e) = retry else {
            backoff = MIN_BACKOFF;
            continue;
        };
        // Keep the commands (call order preserved), drop only what waited too long.
        kept.sort_by_key(|r| (r.seq, r.index));
        for r in kept.into_iter().rev() {
            queue.todo.push_front(r);
        }
        let now = Instant::now();
        let todo = std::mem::take(&mut queue.todo);
        let (expired, todo): (VecDeque<CommandRef>, VecDeque<CommandRef>) =
            todo.into_iter().partition(|r| {
                queue
                    .queued_at(*r)
                    .is_some_and(|t| now.duration_since(t) > max_retry)
            });
        queue.todo = todo;
        if !expired.is_empty() {
            report(format!(
                "{} stream writes dropped after {} ms without Redis: {e}",
                expired.len(),
                max_retry.as_millis()
            ));
            queue.fail(expired, &e, &stats);
            queue.detached_failures = None;
        }
        stats.retries.fetch_add(1, Ordering::Relaxed);
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(MAX_BACKOFF);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn command_ref(seq: u64, index: usize, key: &str) -> CommandRef {
        CommandRef {
            seq,
            index,
            slot: Some(super::super::slot::key_slot(key.as_bytes())),
        }
    }

    #[test]
    fn groups_a_round_by_slot_keeping_each_streams_order() {
        let round = vec![
            command_ref(0, 0, "socket.io-0"),
            command_ref(0, 1, "socket.io-2"),
            command_ref(0, 2, "socket.io-0"),
            command_ref(1, 0, "sio:session:x"),
            command_ref(1, 1, "socket.io-2"),
        ];
        let groups = group_by_slot(round.clone());
        assert_eq!(
            groups,
            vec![
                vec![round[0], round[2]],
                vec![round[1], round[4]],
                vec![round[3]],
            ]
        );
    }

    fn xadd_batch(keys: &[&str]) -> CommandBatch {
        let mut batch = CommandBatch::new(false, 0);
        for key in keys {
            batch
                .push_xadd(key, 10, [b"f".as_slice(), b"v"].into_iter())
                .unwrap();
        }
        batch
    }

    #[test]
    fn a_batch_is_answered_once_all_its_replies_are_in_whatever_their_order() {
        let stats = WriterStats::default();
        let mut queue = WriteQueue::default();
        let (done, mut rx) = oneshot::channel();
        queue.push(Queued {
            batch: xadd_batch(&["a", "b", "c"]),
            queued_at: Instant::now(),
            done: Some(done),
        });
        queue.push(Queued {
            batch: xadd_batch(&["d"]),
            queued_at: Instant::now(),
            done: None,
        });
        let refs: Vec<_> = queue.todo.drain(..).collect();
        assert_eq!(refs.len(), 4);
        queue.answer(refs[2], Ok(Value::Int(3)), &stats);
        queue.answer(refs[3], Err(closed()), &stats);
        queue.answer(refs[0], Ok(Value::Int(1)), &stats);
        assert!(rx.try_recv().is_err(), "one reply still missing");
        queue.answer(refs[1], Err(closed()), &stats);
        let replies = rx.try_recv().expect("answered");
        assert_eq!(replies.len(), 3);
        assert_eq!(replies[0].as_ref().ok(), Some(&Value::Int(1)));
        assert!(replies[1].is_err());
        assert_eq!(replies[2].as_ref().ok(), Some(&Value::Int(3)));
        assert!(queue.batches.is_empty(), "answered batches are forgotten");
        assert_eq!(queue.first_seq, 2);
        assert_eq!(stats.written.load(Ordering::Relaxed), 2);
        assert_eq!(stats.failed.load(Ordering::Relaxed), 2);
        assert_eq!(queue.detached_failures.as_ref().map(|(n, _)| *n), Some(1));
    }
}
