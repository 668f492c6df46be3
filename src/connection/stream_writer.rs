//! XADD queue for the streams adapter. Calls are queued synchronously (so entries reach the
//! stream in call order) and drained by one task in pipelined writes.
//!
//! While Redis is unreachable the commands wait and are retried (bounded in age), so a
//! broadcast made during an outage reaches the stream, and thus every node, once Redis is
//! back; the official adapter fails the XADD and the message is lost for the other nodes.
//!
//! On a Redis Cluster one pipeline may only hold keys of one slot, so a batch is split by the
//! slot of each command's key (streams of `streamCount > 1` and session keys land on different
//! shards) and the groups are sent side by side; each stream keeps its order, as its commands
//! share a group.

use super::commands::{CommandConnection, RawTarget};
use super::raw_connection::{replied_in_time, server_error, RawConnection};
use super::resp::Item;
use super::slot::key_slot;
use futures_util::future::join_all;
use redis::{Cmd, RedisError, RedisResult, Value};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;

const MAX_PIPELINE: usize = 256;
const MIN_BACKOFF: Duration = Duration::from_millis(50);
const MAX_BACKOFF: Duration = Duration::from_secs(1);

struct Pending {
    cmd: Cmd,
    /// The key's cluster slot; `None` off a cluster (one pipeline for everything).
    slot: Option<u16>,
    queued_at: Instant,
    done: oneshot::Sender<RedisResult<Value>>,
}

/// `XADD stream MAXLEN ~ max_len * field value ...`, as the official adapter writes entries.
/// Sized at once (arguments and bytes): every broadcast of the streams adapter builds one.
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
    tx: mpsc::UnboundedSender<Pending>,
    cluster: bool,
    task: JoinHandle<()>,
    pub stats: Arc<WriterStats>,
}

impl StreamWriter {
    /// Must run inside a tokio runtime. `max_retry`: how long a command may wait for Redis.
    pub fn spawn(conn: CommandConnection, max_retry: Duration, report: WriterReport) -> Self {
        let (tx, rx) = mpsc::unbounded_channel();
        let stats = Arc::new(WriterStats::default());
        let cluster = conn.is_cluster();
        let task = tokio::spawn(drain(conn, rx, max_retry, stats.clone(), report));
        Self {
            tx,
            cluster,
            task,
            stats,
        }
    }

    /// Queues now, resolves with the reply (the entry id for XADD). `key` is the command's key.
    pub fn queue(
        &self,
        key: &str,
        cmd: Cmd,
    ) -> impl std::future::Future<Output = RedisResult<Value>> + Send + 'static {
        let (done, rx) = oneshot::channel();
        let queued = self
            .tx
            .send(Pending {
                cmd,
                slot: self.cluster.then(|| key_slot(key.as_bytes())),
                queued_at: Instant::now(),
                done,
            })
            .is_ok();
        async move {
            if !queued {
                return Err(closed());
            }
            rx.await.unwrap_or_else(|_| Err(closed()))
        }
    }

    pub fn shutdown(&self) {
        self.task.abort();
    }
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

/// What became of one pipeline of a batch.
enum GroupOutcome {
    Done,
    /// Redis unreachable: the commands are kept for the next attempt.
    Retry(RedisError),
}

/// Sends the commands of one slot (or all of them off a cluster) as one pipeline and answers
/// each of them, unless Redis could not be reached (then they stay in `group`).
async fn send_group(
    conn: &CommandConnection,
    group: &mut Vec<Pending>,
    stats: &WriterStats,
) -> GroupOutcome {
    let mut pipe = redis::pipe();
    pipe.ignore_errors();
    for p in group.iter() {
        pipe.add_command(p.cmd.clone());
    }
    match conn.pipeline_query::<Vec<RedisResult<Value>>>(&pipe).await {
        Ok(replies) if replies.len() == group.len() => {
            for (p, reply) in group.drain(..).zip(replies) {
                match &reply {
                    Ok(_) => stats.written.fetch_add(1, Ordering::Relaxed),
                    Err(_) => stats.failed.fetch_add(1, Ordering::Relaxed),
                };
                let _ = p.done.send(reply);
            }
            GroupOutcome::Done
        }
        Ok(replies) => {
            let e = RedisError::from((
                redis::ErrorKind::UnexpectedReturnType,
                "pipeline reply count mismatch",
                format!("{} for {}", replies.len(), group.len()),
            ));
            fail_all(group, &e, stats);
            GroupOutcome::Done
        }
        Err(e) if retryable(&e) => GroupOutcome::Retry(e),
        Err(e) => {
            fail_all(group, &e, stats);
            GroupOutcome::Done
        }
    }
}

/// [`send_group`] on the writer's own connection (standalone Redis over plain TCP): the
/// commands go out as RESP bytes in one write and the replies are read in place, without the
/// redis crate's pipeline (a task hop to its connection driver and a `Value` tree per reply).
/// Entries whose reply arrived are answered even when the connection fails afterwards; only
/// the rest are kept for the retry.
async fn send_group_raw(
    target: &RawTarget,
    raw: &mut Option<RawConnection>,
    group: &mut Vec<Pending>,
    stats: &WriterStats,
) -> GroupOutcome {
    let mut commands = Vec::new();
    for p in group.iter() {
        p.cmd.write_packed_command(&mut commands);
    }
    if raw.is_none() {
        match RawConnection::connect(&target.info, target.connect_timeout).await {
            Ok(conn) => *raw = Some(conn),
            Err(e) if retryable(&e) => return GroupOutcome::Retry(e),
            Err(e) => {
                fail_all(group, &e, stats);
                return GroupOutcome::Done;
            }
        }
    }
    let conn = raw.as_mut().expect("connected above");
    let mut replies: Vec<RedisResult<Value>> = Vec::with_capacity(group.len());
    let exchange = conn.pipeline_with(&commands, group.len(), |_, items| {
        replies.push(reply_value(items));
    });
    let outcome = replied_in_time(exchange).await;
    let answered = replies.len();
    for (p, reply) in group.drain(..answered).zip(replies) {
        match &reply {
            Ok(_) => stats.written.fetch_add(1, Ordering::Relaxed),
            Err(_) => stats.failed.fetch_add(1, Ordering::Relaxed),
        };
        let _ = p.done.send(reply);
    }
    match outcome {
        // Every reply is in: an error among them was one command's, answered above.
        _ if group.is_empty() => GroupOutcome::Done,
        Err(e) if retryable(&e) => {
            *raw = None;
            GroupOutcome::Retry(e)
        }
        Err(e) => {
            *raw = None;
            fail_all(group, &e, stats);
            GroupOutcome::Done
        }
        Ok(()) => GroupOutcome::Done,
    }
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

/// Splits `batch` by slot, keeping the call order inside each group.
fn group_by_slot(batch: Vec<Pending>) -> Vec<Vec<Pending>> {
    let mut groups: Vec<Vec<Pending>> = Vec::new();
    for p in batch {
        match groups.iter_mut().find(|g| g[0].slot == p.slot) {
            Some(group) => group.push(p),
            None => groups.push(vec![p]),
        }
    }
    groups
}

async fn drain(
    conn: CommandConnection,
    mut rx: mpsc::UnboundedReceiver<Pending>,
    max_retry: Duration,
    stats: Arc<WriterStats>,
    report: WriterReport,
) {
    let mut batch: Vec<Pending> = Vec::new();
    let mut backoff = MIN_BACKOFF;
    let mut raw: Option<RawConnection> = None;
    loop {
        if batch.is_empty() {
            match rx.recv().await {
                Some(p) => batch.push(p),
                None => return,
            }
        }
        while batch.len() < MAX_PIPELINE {
            match rx.try_recv() {
                Ok(p) => batch.push(p),
                Err(_) => break,
            }
        }
        let mut groups = group_by_slot(std::mem::take(&mut batch));
        let outcomes = match conn.raw_target() {
            // Standalone: one group.
            Some(target) => {
                let mut outcomes = Vec::with_capacity(groups.len());
                for group in groups.iter_mut() {
                    outcomes.push(send_group_raw(target, &mut raw, group, &stats).await);
                }
                outcomes
            }
            None => {
                join_all(
                    groups
                        .iter_mut()
                        .map(|group| send_group(&conn, group, &stats)),
                )
                .await
            }
        };
        // What is left in the groups could not be sent: keep it, in order, for a retry.
        batch = groups.into_iter().flatten().collect();
        let Some(e) = outcomes.into_iter().find_map(|o| match o {
            GroupOutcome::Retry(e) => Some(e),
            GroupOutcome::Done => None,
        }) else {
            backoff = MIN_BACKOFF;
            continue;
        };
        // Keep the batch (order preserved), drop only what waited too long.
        let now = Instant::now();
        let (expired, kept): (Vec<_>, Vec<_>) = batch
            .drain(..)
            .partition(|p| now.duration_since(p.queued_at) > max_retry);
        batch = kept;
        if !expired.is_empty() {
            report(format!(
                "{} stream writes dropped after {} ms without Redis: {e}",
                expired.len(),
                max_retry.as_millis()
            ));
            let mut expired = expired;
            fail_all(&mut expired, &e, &stats);
        }
        stats.retries.fetch_add(1, Ordering::Relaxed);
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(MAX_BACKOFF);
    }
}

fn fail_all(batch: &mut Vec<Pending>, e: &RedisError, stats: &WriterStats) {
    for p in batch.drain(..) {
        stats.failed.fetch_add(1, Ordering::Relaxed);
        let _ = p.done.send(Err(e.clone()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pending(key: &str, n: u32) -> Pending {
        let (done, _) = oneshot::channel();
        let mut cmd = redis::cmd("XADD");
        cmd.arg(key).arg(n);
        Pending {
            cmd,
            slot: Some(key_slot(key.as_bytes())),
            queued_at: Instant::now(),
            done,
        }
    }

    #[test]
    fn groups_a_batch_by_slot_keeping_each_streams_order() {
        let batch = vec![
            pending("socket.io-0", 1),
            pending("socket.io-2", 2),
            pending("socket.io-0", 3),
            pending("sio:session:x", 4),
            pending("socket.io-2", 5),
        ];
        let groups = group_by_slot(batch);
        let shape: Vec<Vec<Vec<u8>>> = groups
            .iter()
            .map(|g| g.iter().map(|p| p.cmd.get_packed_command()).collect())
            .collect();
        let packed = |key: &str, n: u32| pending(key, n).cmd.get_packed_command();
        assert_eq!(
            shape,
            vec![
                vec![packed("socket.io-0", 1), packed("socket.io-0", 3)],
                vec![packed("socket.io-2", 2), packed("socket.io-2", 5)],
                vec![packed("sio:session:x", 4)],
            ]
        );
    }
}
