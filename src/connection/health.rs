//! Self-ping of a subscription connection.
//!
//! A subscription can stop delivering without the socket ever closing: a half-open TCP
//! connection after a network fault, a proxy or load balancer that silently drops the stream,
//! a server that forgot the subscription. Reconnecting on errors alone never notices. So every
//! subscriber subscribes one channel of its own (`socket.io-redis-native:health:<random>`, which
//! no official adapter listens on or matches with its patterns), publishes a small token on it
//! through the command connection every `interval`, and expects to see the token come back on
//! the subscription within one more `interval`. When it does not, the subscriber drops the
//! connection, reconnects and subscribes everything again.
//!
//! Only pings that Redis accepted count: while the command connection is down nothing is
//! expected back, so a Redis outage is not mistaken for a dead subscription.

use super::commands::CommandConnection;
use super::config::ConnectionOptions;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::mpsc;

/// Default period of the self-ping; `healthCheckInterval: 0` disables it.
pub const DEFAULT_INTERVAL: Duration = Duration::from_secs(5);
const CHANNEL_PREFIX: &str = "socket.io-redis-native:health:";

/// Counters of one subscriber, shown by `adapter.metrics()` under `subscriber`.
#[derive(Debug, Default)]
pub struct SubscriberStats {
    /// Times every subscription was established again on a new connection (after a
    /// disconnection, a `CLIENT KILL`, a Redis restart or a failed self-ping).
    pub resubscribes: AtomicU64,
    pub pings_sent: AtomicU64,
    pub pings_received: AtomicU64,
    /// Pings Redis accepted but the subscription never delivered: each one made the subscriber
    /// reconnect and resubscribe.
    pub failures: AtomicU64,
}

/// What a subscriber needs to check itself.
#[derive(Clone)]
pub struct HealthCheck {
    pub channel: String,
    pub interval: Duration,
    /// SPUBLISH instead of PUBLISH (sharded subscribers).
    pub sharded: bool,
    pub commands: CommandConnection,
    pub stats: Arc<SubscriberStats>,
    /// Highest token seen on the subscription; shared with whatever reads the messages.
    seen: Arc<AtomicU64>,
}

impl HealthCheck {
    /// None when `interval` is zero (disabled).
    pub fn new(
        commands: CommandConnection,
        interval: Duration,
        sharded: bool,
        stats: Arc<SubscriberStats>,
    ) -> Option<Self> {
        if interval.is_zero() {
            return None;
        }
        let id: String = (0..12)
            .map(|_| char::from(b'a' + (rand::random::<u8>() % 26)))
            .collect();
        Some(Self {
            channel: format!("{CHANNEL_PREFIX}{id}"),
            interval,
            sharded,
            commands,
            stats,
            seen: Arc::new(AtomicU64::new(0)),
        })
    }

    /// The check a subscriber gets from the connection options (`healthCheckIntervalMs`), and
    /// the counters the driver shows (kept even when the self-ping is disabled).
    pub fn for_subscriber(
        commands: &CommandConnection,
        options: &ConnectionOptions,
        sharded: bool,
    ) -> (Option<Self>, Arc<SubscriberStats>) {
        let stats = Arc::new(SubscriberStats::default());
        let check = Self::new(
            commands.clone(),
            options.health_check_interval(),
            sharded,
            stats.clone(),
        );
        (check, stats)
    }

    /// True (and recorded) when `channel` is the health channel: the message is a ping and must
    /// not be handed to the adapter.
    pub fn take_ping(&self, channel: &[u8], payload: &[u8]) -> bool {
        if channel != self.channel.as_bytes() {
            return false;
        }
        self.stats.pings_received.fetch_add(1, Ordering::Relaxed);
        if let Some(token) = std::str::from_utf8(payload)
            .ok()
            .and_then(|s| s.parse::<u64>().ok())
        {
            self.seen.fetch_max(token, Ordering::Relaxed);
        }
        true
    }

    /// A prober for one connection: pings confirmed for an earlier connection do not count.
    pub fn count_resubscribe(&self) {
        self.stats.resubscribes.fetch_add(1, Ordering::Relaxed);
    }

    pub fn prober(&self) -> Prober {
        let (confirmed_tx, confirmed_rx) = mpsc::unbounded_channel();
        let mut ticker = tokio::time::interval(self.interval);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        Prober {
            check: self.clone(),
            ticker,
            confirmed_tx,
            confirmed_rx,
            awaiting: None,
            in_flight: false,
        }
    }
}

/// Why a subscription is considered dead.
#[derive(Debug)]
pub struct Overdue {
    pub waited: Duration,
}

impl std::fmt::Display for Overdue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "health check: own ping not received back after {} ms, resubscribing",
            self.waited.as_millis()
        )
    }
}

pub struct Prober {
    check: HealthCheck,
    ticker: tokio::time::Interval,
    confirmed_tx: mpsc::UnboundedSender<(u64, Instant)>,
    confirmed_rx: mpsc::UnboundedReceiver<(u64, Instant)>,
    /// The last ping Redis accepted and when.
    awaiting: Option<(u64, Instant)>,
    in_flight: bool,
}

impl Prober {
    /// Runs the ping cycle; resolves only when a ping is overdue. Cancel-safe (its state lives
    /// in `self`), so it can sit in a `select!` next to the message stream.
    pub async fn overdue(&mut self) -> Overdue {
        loop {
            tokio::select! {
                _ = self.ticker.tick() => {
                    if let Some(overdue) = self.check_overdue() {
                        self.check.stats.failures.fetch_add(1, Ordering::Relaxed);
                        return overdue;
                    }
                    self.send_ping();
                }
                Some((token, at)) = self.confirmed_rx.recv() => {
                    self.in_flight = false;
                    self.awaiting = Some((token, at));
                }
            }
        }
    }

    fn check_overdue(&self) -> Option<Overdue> {
        let (token, at) = self.awaiting?;
        let waited = at.elapsed();
        let seen = self.check.seen.load(Ordering::Relaxed);
        (seen < token && waited >= self.check.interval).then_some(Overdue { waited })
    }

    fn send_ping(&mut self) {
        if self.in_flight {
            return;
        }
        if let Some((token, _)) = self.awaiting {
            if self.check.seen.load(Ordering::Relaxed) < token {
                return; // still waiting for the previous one
            }
        }
        self.in_flight = true;
        let token = self.check.stats.pings_sent.fetch_add(1, Ordering::Relaxed) + 1;
        let mut cmd = redis::cmd(if self.check.sharded {
            "SPUBLISH"
        } else {
            "PUBLISH"
        });
        cmd.arg(&self.check.channel).arg(token.to_string());
        let commands = self.check.commands.clone();
        let confirmed = self.confirmed_tx.clone();
        tokio::spawn(async move {
            // On failure nothing is expected back; the next tick tries again.
            let accepted = commands.query::<i64>(&cmd).await.is_ok();
            let _ = confirmed.send(if accepted {
                (token, Instant::now())
            } else {
                (0, Instant::now())
            });
        });
    }
}
