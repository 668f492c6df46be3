//! XADD queue for the streams adapter. Calls are queued synchronously (so entries reach the
//! stream in call order) and drained by one task in pipelined writes.
//!
//! While Redis is unreachable the commands wait and are retried (bounded in age), so a
//! broadcast made during an outage reaches the stream, and thus every node, once Redis is
//! back; the official adapter fails the XADD and the message is lost for the other nodes.

use super::commands::CommandConnection;
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
    queued_at: Instant,
    done: oneshot::Sender<RedisResult<Value>>,
}

/// `XADD stream MAXLEN ~ max_len * field value ...`, as the official adapter writes entries.
pub fn xadd_command(stream: &str, max_len: u32, fields: &[String]) -> Result<Cmd, &'static str> {
    if !fields.len().is_multiple_of(2) {
        return Err("xadd needs field/value pairs");
    }
    let mut cmd = redis::cmd("XADD");
    cmd.arg(stream).arg("MAXLEN").arg("~").arg(max_len).arg("*");
    for f in fields {
        cmd.arg(f);
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
    task: JoinHandle<()>,
    pub stats: Arc<WriterStats>,
}

impl StreamWriter {
    /// Must run inside a tokio runtime. `max_retry`: how long a command may wait for Redis.
    pub fn spawn(conn: CommandConnection, max_retry: Duration, report: WriterReport) -> Self {
        let (tx, rx) = mpsc::unbounded_channel();
        let stats = Arc::new(WriterStats::default());
        let task = tokio::spawn(drain(conn, rx, max_retry, stats.clone(), report));
        Self { tx, task, stats }
    }

    /// Queues now, resolves with the reply (the entry id for XADD).
    pub fn queue(
        &self,
        cmd: Cmd,
    ) -> impl std::future::Future<Output = RedisResult<Value>> + Send + 'static {
        let (done, rx) = oneshot::channel();
        let queued = self
            .tx
            .send(Pending {
                cmd,
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
fn retryable(e: &RedisError) -> bool {
    e.is_io_error() || e.is_connection_dropped() || e.is_connection_refusal() || e.is_timeout()
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
        let mut pipe = redis::pipe();
        pipe.ignore_errors();
        for p in &batch {
            pipe.add_command(p.cmd.clone());
        }
        match conn.pipeline_query::<Vec<RedisResult<Value>>>(&pipe).await {
            Ok(replies) if replies.len() == batch.len() => {
                backoff = MIN_BACKOFF;
                for (p, reply) in batch.drain(..).zip(replies) {
                    match &reply {
                        Ok(_) => stats.written.fetch_add(1, Ordering::Relaxed),
                        Err(_) => stats.failed.fetch_add(1, Ordering::Relaxed),
                    };
                    let _ = p.done.send(reply);
                }
            }
            Ok(replies) => {
                let e = RedisError::from((
                    redis::ErrorKind::UnexpectedReturnType,
                    "pipeline reply count mismatch",
                    format!("{} for {}", replies.len(), batch.len()),
                ));
                fail_all(&mut batch, &e, &stats);
            }
            Err(e) if retryable(&e) => {
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
            Err(e) => fail_all(&mut batch, &e, &stats),
        }
    }
}

fn fail_all(batch: &mut Vec<Pending>, e: &RedisError, stats: &WriterStats) {
    for p in batch.drain(..) {
        stats.failed.fetch_add(1, Ordering::Relaxed);
        let _ = p.done.send(Err(e.clone()));
    }
}
