//! A bound on what waits for the JS thread.
//!
//! Deliveries cross to JS through a threadsafe function whose queue has no limit: while the
//! JS event loop is blocked (a long synchronous task, a debugger, a GC storm), every message
//! received meanwhile would pile up in memory. The backlog counts the bytes handed over and not
//! yet consumed by JS; past the limit, new batches are dropped (the newest: what is queued
//! keeps its order), counted, and reported in one log line once JS is served again.

use super::delivery::{DeliveryKind, FrameBatch};
use serde_json::{json, Value};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

/// Default `maxPendingDeliveryBytes`.
pub const DEFAULT_MAX_PENDING_BYTES: usize = 64 << 20;

#[derive(Debug)]
pub struct DeliveryBacklog {
    /// 0: no limit.
    limit: usize,
    pending_bytes: AtomicUsize,
    peak_bytes: AtomicUsize,
    dropped_messages: AtomicU64,
    dropped_bytes: AtomicU64,
    /// Dropped since the last log line.
    unreported_messages: AtomicU64,
    unreported_bytes: AtomicU64,
}

/// Frames in a framed buffer (`kind u8, ns u32, len u32, payload`).
pub fn count_frames(mut buf: &[u8]) -> u64 {
    let mut n = 0;
    while buf.len() >= 9 {
        let len = u32::from_le_bytes(buf[5..9].try_into().expect("4 bytes")) as usize;
        buf = &buf[(9 + len).min(buf.len())..];
        n += 1;
    }
    n
}

impl DeliveryBacklog {
    pub fn new(limit: usize) -> Self {
        Self {
            limit,
            pending_bytes: AtomicUsize::new(0),
            peak_bytes: AtomicUsize::new(0),
            dropped_messages: AtomicU64::new(0),
            dropped_bytes: AtomicU64::new(0),
            unreported_messages: AtomicU64::new(0),
            unreported_bytes: AtomicU64::new(0),
        }
    }

    /// Accounts for `frames` about to be handed over; None when they must be dropped. Some
    /// returns the frames to send, preceded by a log frame when earlier batches were dropped.
    /// A batch is always accepted when nothing is pending, so one oversized message still
    /// gets through an idle JS thread.
    pub fn admit(&self, frames: Vec<u8>) -> Option<Vec<u8>> {
        let len = frames.len();
        let pending = self.pending_bytes.fetch_add(len, Ordering::AcqRel) + len;
        if self.limit > 0 && pending > self.limit && pending != len {
            self.pending_bytes.fetch_sub(len, Ordering::AcqRel);
            let messages = count_frames(&frames);
            self.dropped_messages.fetch_add(messages, Ordering::Relaxed);
            self.dropped_bytes.fetch_add(len as u64, Ordering::Relaxed);
            self.unreported_messages
                .fetch_add(messages, Ordering::Relaxed);
            self.unreported_bytes
                .fetch_add(len as u64, Ordering::Relaxed);
            return None;
        }
        self.peak_bytes.fetch_max(pending, Ordering::Relaxed);
        let dropped = self.unreported_messages.swap(0, Ordering::Relaxed);
        if dropped == 0 {
            return Some(frames);
        }
        let bytes = self.unreported_bytes.swap(0, Ordering::Relaxed);
        let mut batch = FrameBatch::default();
        let line = format!(
            "dropped {dropped} incoming messages ({bytes} bytes) while the JS thread was busy: \
             more than maxPendingDeliveryBytes ({}) were waiting for it",
            self.limit
        );
        batch.push(DeliveryKind::Log, 0, line.as_bytes());
        let mut out = batch.into_bytes();
        // The log line is not accounted: it is small and only follows drops.
        out.extend_from_slice(&frames);
        Some(out)
    }

    /// JS consumed a batch of `len` bytes (as returned by `admit`, minus any log line).
    /// Bytes handed to JS and not consumed yet.
    pub fn pending_bytes(&self) -> usize {
        self.pending_bytes.load(Ordering::Acquire)
    }

    pub fn release(&self, len: usize) {
        self.pending_bytes.fetch_sub(len, Ordering::AcqRel);
    }

    pub fn to_json(&self) -> Value {
        json!({
            "pendingBytes": self.pending_bytes.load(Ordering::Relaxed),
            "peakPendingBytes": self.peak_bytes.load(Ordering::Relaxed),
            "maxPendingBytes": self.limit,
            "droppedMessages": self.dropped_messages.load(Ordering::Relaxed),
            "droppedBytes": self.dropped_bytes.load(Ordering::Relaxed),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::delivery::parse_frames;

    fn batch(n: usize, size: usize) -> Vec<u8> {
        let mut b = FrameBatch::default();
        for _ in 0..n {
            b.push(DeliveryKind::Broadcast, 1, &vec![7u8; size]);
        }
        b.into_bytes()
    }

    #[test]
    fn drops_newest_past_the_limit_and_reports_once_served_again() {
        let backlog = DeliveryBacklog::new(1000);
        let first = backlog.admit(batch(1, 600)).unwrap();
        assert!(backlog.admit(batch(2, 300)).is_none()); // 600 + 618 > 1000
        assert!(backlog.admit(batch(1, 500)).is_none());
        backlog.release(first.len());
        let next = backlog.admit(batch(1, 10)).unwrap();
        let frames = parse_frames(&next);
        assert_eq!(frames.len(), 2);
        assert_eq!(frames[0].0, DeliveryKind::Log as u8);
        let line = String::from_utf8(frames[0].2.clone()).unwrap();
        assert!(line.starts_with("dropped 3 incoming messages"), "{line}");
        assert_eq!(frames[1].2, vec![7u8; 10]);
        let v = backlog.to_json();
        assert_eq!(v["droppedMessages"], 3);
        assert_eq!(v["peakPendingBytes"], 609);
        // reported once
        assert_eq!(parse_frames(&backlog.admit(batch(1, 1)).unwrap()).len(), 1);
    }

    #[test]
    fn an_oversized_batch_passes_when_nothing_is_pending_and_zero_means_no_limit() {
        let backlog = DeliveryBacklog::new(10);
        assert!(backlog.admit(batch(1, 100)).is_some());
        let unbounded = DeliveryBacklog::new(0);
        for _ in 0..100 {
            assert!(unbounded.admit(batch(1, 1000)).is_some());
        }
        assert_eq!(unbounded.to_json()["pendingBytes"], 100 * 1009);
    }

    #[test]
    fn counts_frames() {
        assert_eq!(count_frames(&batch(5, 3)), 5);
        assert_eq!(count_frames(&[]), 0);
    }
}
