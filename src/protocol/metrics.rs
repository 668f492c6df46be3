//! The parts of `adapter.metrics()` shared by the drivers: latency histograms with fixed,
//! Prometheus-style bucket boundaries, request counters per request type, and JSON views of
//! the connection-layer counters.
//!
//! Histograms are lock-free (one atomic per bucket) so recording from the subscriber task or
//! a request future costs a few relaxed increments. The JSON gives cumulative counts per upper
//! bound (`le`), a sum and a count, which is exactly what the Prometheus text format needs.

use super::header::read_header;
use crate::connection::publisher::PublisherStats;
use crate::connection::SubscriberStats;
use serde_json::{json, Map, Value};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Upper bounds in milliseconds, from sub-millisecond Redis round trips to the 10 s range of a
/// request that waits for a slow or missing node.
pub const LATENCY_BUCKETS_MS: [f64; 14] = [
    0.5, 1.0, 2.5, 5.0, 10.0, 25.0, 50.0, 100.0, 250.0, 500.0, 1000.0, 2500.0, 5000.0, 10000.0,
];

#[derive(Debug, Default)]
pub struct Histogram {
    /// Observations per bucket (not cumulative); the last one is above every bound (+Inf).
    counts: [AtomicU64; LATENCY_BUCKETS_MS.len() + 1],
    sum_us: AtomicU64,
}

impl Histogram {
    pub fn observe(&self, elapsed: Duration) {
        let ms = elapsed.as_secs_f64() * 1000.0;
        let index = LATENCY_BUCKETS_MS
            .iter()
            .position(|&bound| ms <= bound)
            .unwrap_or(LATENCY_BUCKETS_MS.len());
        self.counts[index].fetch_add(1, Ordering::Relaxed);
        self.sum_us
            .fetch_add(elapsed.as_micros() as u64, Ordering::Relaxed);
    }

    /// `{"buckets": {"0.5": n, ..., "+Inf": n}, "sum": ms, "count": n}`, buckets cumulative.
    pub fn to_json(&self) -> Value {
        let mut buckets = Map::new();
        let mut cumulative = 0u64;
        for (i, count) in self.counts.iter().enumerate() {
            cumulative += count.load(Ordering::Relaxed);
            let le = match LATENCY_BUCKETS_MS.get(i) {
                Some(bound) => bound.to_string(),
                None => "+Inf".to_string(),
            };
            buckets.insert(le, json!(cumulative));
        }
        json!({
            "buckets": buckets,
            "sum": self.sum_us.load(Ordering::Relaxed) as f64 / 1000.0,
            // From the buckets, not `self.count`: Prometheus wants `+Inf` == `_count` even while
            // observations are being recorded concurrently.
            "count": cumulative,
        })
    }
}

/// Request types of the classic protocol that wait for answers (PROTOCOL.md 2.4).
const REQUEST_KINDS: [(i64, &str); 4] = [
    (0, "sockets"),
    (1, "allRooms"),
    (5, "fetchSockets"),
    (6, "serverSideEmit"),
];

#[derive(Debug, Default)]
pub struct RequestKindStats {
    /// Published and waited for (a request that no other node could answer is not sent).
    pub sent: AtomicU64,
    /// Ended by `requestsTimeout` before every expected answer arrived.
    pub timed_out: AtomicU64,
    /// Redis refused the publish.
    pub failed: AtomicU64,
    /// Answers that arrived in time (summed over requests).
    pub answers: AtomicU64,
    /// Answers expected but missing when the request ended.
    pub missing_answers: AtomicU64,
    pub round_trip: Histogram,
}

/// Per-type counters and round-trip times of the requests a node makes.
#[derive(Debug, Default)]
pub struct RequestMetrics {
    kinds: [RequestKindStats; REQUEST_KINDS.len() + 1],
}

impl RequestMetrics {
    /// Index of the request type of an encoded request (last slot: other or unreadable).
    pub fn kind_of(payload: &[u8]) -> usize {
        let msg_type = read_header(payload).ok().and_then(|h| h.msg_type);
        REQUEST_KINDS
            .iter()
            .position(|(t, _)| Some(*t) == msg_type)
            .unwrap_or(REQUEST_KINDS.len())
    }

    pub fn kind(&self, index: usize) -> &RequestKindStats {
        &self.kinds[index.min(REQUEST_KINDS.len())]
    }

    /// Records one request that was published: how long until it ended and how it ended.
    pub fn record(
        &self,
        kind: usize,
        elapsed: Duration,
        expected: usize,
        answers: usize,
        timed_out: bool,
    ) {
        let k = self.kind(kind);
        k.sent.fetch_add(1, Ordering::Relaxed);
        k.answers.fetch_add(answers as u64, Ordering::Relaxed);
        k.missing_answers
            .fetch_add(expected.saturating_sub(answers) as u64, Ordering::Relaxed);
        if timed_out {
            k.timed_out.fetch_add(1, Ordering::Relaxed);
        }
        k.round_trip.observe(elapsed);
    }

    pub fn to_json(&self) -> Value {
        let names = REQUEST_KINDS
            .iter()
            .map(|(_, name)| *name)
            .chain(std::iter::once("other"));
        let mut out = Map::new();
        for (name, k) in names.zip(self.kinds.iter()) {
            let load = |c: &AtomicU64| c.load(Ordering::Relaxed);
            out.insert(
                name.to_string(),
                json!({
                    "sent": load(&k.sent),
                    "timedOut": load(&k.timed_out),
                    "failed": load(&k.failed),
                    "answers": load(&k.answers),
                    "missingAnswers": load(&k.missing_answers),
                    "roundTripMs": k.round_trip.to_json(),
                }),
            );
        }
        Value::Object(out)
    }
}

/// Resubscriptions and self-ping counters of a subscriber (see connection::health).
pub fn subscriber_json(stats: &SubscriberStats) -> Value {
    json!({
        "resubscribes": stats.resubscribes.load(Ordering::Relaxed),
        "pingsSent": stats.pings_sent.load(Ordering::Relaxed),
        "pingsReceived": stats.pings_received.load(Ordering::Relaxed),
        "pingFailures": stats.failures.load(Ordering::Relaxed),
    })
}

/// What the publisher sent, refused and retried.
pub fn publisher_json(stats: &PublisherStats) -> Value {
    let load = |c: &AtomicU64| c.load(Ordering::Relaxed);
    json!({
        "messages": load(&stats.published),
        "bytes": load(&stats.published_bytes),
        "failed": load(&stats.failed),
        "droppedOverflow": load(&stats.dropped_overflow),
        "retries": load(&stats.retries),
        "bufferedBytes": stats.buffered_bytes.load(Ordering::Relaxed),
        "directWrites": load(&stats.direct_writes),
    })
}

/// Milliseconds between a stream entry's id (`<ms>-<seq>`, set by Redis at XADD) and now: how
/// late the entry is read. None for an id that is not a time.
pub fn stream_entry_age(id: &str, now: std::time::SystemTime) -> Option<Duration> {
    let ms: u64 = id.split('-').next()?.parse().ok()?;
    let now_ms = now.duration_since(std::time::UNIX_EPOCH).ok()?.as_millis() as u64;
    Some(Duration::from_millis(now_ms.saturating_sub(ms)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histogram_buckets_are_cumulative_with_inf_equal_to_count() {
        let h = Histogram::default();
        for ms in [0.2, 0.7, 3.0, 3.0, 700.0, 20_000.0] {
            h.observe(Duration::from_secs_f64(ms / 1000.0));
        }
        let v = h.to_json();
        let b = &v["buckets"];
        assert_eq!(b["0.5"], 1);
        assert_eq!(b["1"], 2);
        assert_eq!(b["2.5"], 2);
        assert_eq!(b["5"], 4);
        assert_eq!(b["500"], 4);
        assert_eq!(b["1000"], 5);
        assert_eq!(b["10000"], 5);
        assert_eq!(b["+Inf"], 6);
        assert_eq!(v["count"], 6);
        let sum = v["sum"].as_f64().unwrap();
        assert!((sum - 20_706.9).abs() < 0.01, "sum {sum}");
        // bounds in ascending order, as Prometheus requires
        let les: Vec<&String> = b.as_object().unwrap().keys().collect();
        assert_eq!(les.first().unwrap().as_str(), "0.5");
        assert_eq!(les.last().unwrap().as_str(), "+Inf");
    }

    #[test]
    fn a_value_on_a_bound_falls_in_that_bucket() {
        let h = Histogram::default();
        h.observe(Duration::from_millis(10));
        assert_eq!(h.to_json()["buckets"]["10"], 1);
        assert_eq!(h.to_json()["buckets"]["5"], 0);
    }

    #[test]
    fn request_kinds_are_read_from_json_and_msgpack_requests() {
        assert_eq!(
            RequestMetrics::kind_of(br#"{"type":5,"requestId":"x"}"#),
            2 // fetchSockets
        );
        assert_eq!(RequestMetrics::kind_of(b"\xff garbage"), 4);
        let m = RequestMetrics::default();
        m.record(2, Duration::from_millis(3), 2, 1, true);
        let v = m.to_json();
        assert_eq!(v["fetchSockets"]["sent"], 1);
        assert_eq!(v["fetchSockets"]["timedOut"], 1);
        assert_eq!(v["fetchSockets"]["missingAnswers"], 1);
        assert_eq!(v["fetchSockets"]["roundTripMs"]["count"], 1);
        assert_eq!(v["sockets"]["sent"], 0);
    }

    #[test]
    fn stream_entry_age_reads_the_id_time() {
        let now = std::time::UNIX_EPOCH + Duration::from_millis(10_500);
        assert_eq!(
            stream_entry_age("10000-3", now),
            Some(Duration::from_millis(500))
        );
        assert_eq!(stream_entry_age("not-an-id", now), None);
    }
}
