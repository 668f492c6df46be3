//! Sending what the publisher queued: the drain task, one pipelined write per batch (raw RESP
//! on a standalone server, command objects on a cluster or over TLS), and retries while Redis
//! is away.

use super::{
    Encoded, Handed, Outgoing, ProblemReporter, PublishKind, PublisherLimits, PublisherStats,
    Queue, MAX_PIPELINE, MAX_PIPELINE_BYTES,
};
use crate::connection::commands::{CommandConnection, RawTarget};
use crate::connection::raw_connection::{replied_in_time, RawConnection};
use crate::connection::resp::{write_command, Item};
use crate::connection::slot::key_slot;
use futures_util::future::join_all;
use redis::{RedisError, RedisResult};
use std::collections::VecDeque;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

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
pub(super) fn encode_raw(batch: &[Outgoing]) -> Encoded {
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
pub(super) fn take_batch(items: &mut VecDeque<Outgoing>) -> Vec<Outgoing> {
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

pub(super) async fn drain(
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
