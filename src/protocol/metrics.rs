//! The parts of `adapter.metrics()` shared by the three drivers, as JSON values.

use crate::connection::SubscriberStats;
use serde_json::{json, Value};
use std::sync::atomic::Ordering;

/// Resubscriptions and self-ping counters of a subscriber (see connection::health).
pub fn subscriber_json(stats: &SubscriberStats) -> Value {
    json!({
        "resubscribes": stats.resubscribes.load(Ordering::Relaxed),
        "pingsSent": stats.pings_sent.load(Ordering::Relaxed),
        "pingsReceived": stats.pings_received.load(Ordering::Relaxed),
        "pingFailures": stats.failures.load(Ordering::Relaxed),
    })
}
