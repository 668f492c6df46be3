//! A pub/sub connection that survives Redis restarts: it remembers every subscription and
//! replays them after each reconnection, with exponential backoff between attempts.
//!
//! Messages are handed to a [`MessageHandler`] in batches: everything that is already buffered
//! when one message arrives goes with it, so the JS side is crossed once per batch, not once
//! per message. Plain TCP connections are read by [`RawConnection`] (no allocation per message);
//! TLS and Unix sockets go through the redis crate.

use super::config::{ConnectionOptions, Topology};
use super::health::HealthCheck;
use super::message::{CrateMessage, PubSubMessage};
use super::raw_connection::{plain_tcp, RawConnection};
use super::sentinel::resolve_master;
use futures_util::{FutureExt, StreamExt};
use redis::aio::{PubSubSink, PubSubStream};
use redis::{RedisError, RedisResult};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;

/// Most messages handed over in one batch; bounds the latency of the first one.
const MAX_BATCH: usize = 1024;
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Subscription {
    Channel(String),
    Pattern(String),
}

#[derive(Debug, Clone)]
pub enum ConnectionEvent {
    /// Subscribed (again) to everything; `reconnected` is false for the first connection.
    Connected {
        reconnected: bool,
    },
    Disconnected {
        reason: String,
    },
}

pub trait MessageHandler: Send + Sync + 'static {
    fn on_messages(&self, batch: &[PubSubMessage<'_>]);
    fn on_connection_event(&self, event: ConnectionEvent);
}

enum Control {
    Subscribe(Vec<Subscription>, oneshot::Sender<RedisResult<()>>),
    Unsubscribe(Vec<Subscription>, oneshot::Sender<RedisResult<()>>),
}

pub struct Subscriber {
    control: mpsc::UnboundedSender<Control>,
    task: JoinHandle<()>,
}

impl Subscriber {
    /// Starts the connection task on the current tokio runtime.
    pub fn spawn(options: ConnectionOptions, handler: Arc<dyn MessageHandler>) -> Self {
        Self::spawn_with_health(options, handler, None)
    }

    /// With a [`HealthCheck`]: the subscriber pings itself and reconnects when its own pings
    /// stop coming back (see connection::health).
    pub fn spawn_with_health(
        options: ConnectionOptions,
        handler: Arc<dyn MessageHandler>,
        health: Option<HealthCheck>,
    ) -> Self {
        let (control, rx) = mpsc::unbounded_channel();
        let task = tokio::spawn(run(options, handler, rx, health));
        Self { control, task }
    }

    /// Resolves once Redis confirmed, or at once while disconnected: the subscription is
    /// recorded either way and replayed on the next connection.
    pub async fn subscribe(&self, subs: Vec<Subscription>) -> RedisResult<()> {
        let (tx, rx) = oneshot::channel();
        self.control
            .send(Control::Subscribe(subs, tx))
            .map_err(|_| closed())?;
        rx.await.map_err(|_| closed())?
    }

    pub async fn unsubscribe(&self, subs: Vec<Subscription>) -> RedisResult<()> {
        let (tx, rx) = oneshot::channel();
        self.control
            .send(Control::Unsubscribe(subs, tx))
            .map_err(|_| closed())?;
        rx.await.map_err(|_| closed())?
    }

    /// Drops the connection; pending and future calls fail with "subscriber closed".
    pub fn shutdown(&self) {
        self.task.abort();
    }
}

impl Drop for Subscriber {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn closed() -> RedisError {
    RedisError::from((redis::ErrorKind::Io, "subscriber closed"))
}

/// One subscription connection, read directly (plain TCP) or through the redis crate.
enum Conn {
    Raw(RawConnection),
    Crate(PubSubSink, PubSubStream),
}

async fn connect(options: &ConnectionOptions, attempt: usize) -> RedisResult<Conn> {
    let info = match options.topology {
        Topology::Sentinel => resolve_master(options).await?,
        // Classic PUBLISH reaches every node of a Redis Cluster, so any node will do; rotate
        // through the configured ones so a dead node is skipped on the next attempt.
        Topology::Standalone | Topology::Cluster => {
            let infos = options.connection_infos().map_err(|e| {
                RedisError::from((
                    redis::ErrorKind::InvalidClientConfig,
                    "options",
                    e.to_string(),
                ))
            })?;
            infos[attempt % infos.len()].clone()
        }
    };
    if plain_tcp(&info).is_some() {
        return Ok(Conn::Raw(
            RawConnection::connect(&info, CONNECT_TIMEOUT).await?,
        ));
    }
    let client = redis::Client::open(info)?;
    let pubsub = tokio::time::timeout(CONNECT_TIMEOUT, client.get_async_pubsub())
        .await
        .map_err(|_| RedisError::from((redis::ErrorKind::Io, "connection timed out")))??;
    let (sink, stream) = pubsub.split();
    Ok(Conn::Crate(sink, stream))
}

impl Conn {
    async fn apply(
        &mut self,
        subs: &[Subscription],
        subscribe: bool,
        deliver: &Deliver<'_>,
    ) -> RedisResult<()> {
        match self {
            Conn::Raw(raw) => raw.apply(subs, subscribe, &|m| deliver.deliver(m)).await,
            Conn::Crate(sink, _) => apply(sink, subs, subscribe).await,
        }
    }

    /// Waits for messages and hands over everything already received. Cancel-safe.
    async fn next_batch(&mut self, deliver: &Deliver<'_>) -> Result<(), String> {
        match self {
            Conn::Raw(raw) => {
                raw.read_some().await.map_err(|e| e.to_string())?;
                raw.drain(&|m| deliver.deliver(m), |_| {})
                    .map_err(|e| e.to_string())
            }
            Conn::Crate(_, stream) => {
                let Some(msg) = stream.next().await else {
                    return Err("connection closed".into());
                };
                let mut batch: Vec<CrateMessage> = vec![msg.into()];
                while batch.len() < MAX_BATCH {
                    match stream.next().now_or_never() {
                        Some(Some(msg)) => batch.push(msg.into()),
                        _ => break,
                    }
                }
                let views: Vec<PubSubMessage<'_>> = batch.iter().map(CrateMessage::view).collect();
                deliver.deliver(&views);
                Ok(())
            }
        }
    }
}

/// Hands batches to the handler, minus the subscriber's own health pings (classic and sharded
/// subscribers alike).
pub(super) struct Deliver<'a> {
    pub handler: &'a dyn MessageHandler,
    pub health: Option<&'a HealthCheck>,
}

impl Deliver<'_> {
    pub fn deliver(&self, msgs: &[PubSubMessage<'_>]) {
        let Some(health) = self.health else {
            self.handler.on_messages(msgs);
            return;
        };
        let own = health.channel.as_bytes();
        if !msgs.iter().any(|m| m.channel == own) {
            self.handler.on_messages(msgs);
            return;
        }
        let rest: Vec<PubSubMessage<'_>> = msgs
            .iter()
            .filter(|m| !health.take_ping(m.channel, m.payload))
            .copied()
            .collect();
        if !rest.is_empty() {
            self.handler.on_messages(&rest);
        }
    }
}

async fn apply(sink: &mut PubSubSink, subs: &[Subscription], subscribe: bool) -> RedisResult<()> {
    let channels: Vec<&str> = subs
        .iter()
        .filter_map(|s| match s {
            Subscription::Channel(c) => Some(c.as_str()),
            _ => None,
        })
        .collect();
    let patterns: Vec<&str> = subs
        .iter()
        .filter_map(|s| match s {
            Subscription::Pattern(p) => Some(p.as_str()),
            _ => None,
        })
        .collect();
    // Patterns first: the official adapter PSUBSCRIBEs before it SUBSCRIBEs.
    if !patterns.is_empty() {
        if subscribe {
            sink.psubscribe(&patterns).await?;
        } else {
            sink.punsubscribe(&patterns).await?;
        }
    }
    if !channels.is_empty() {
        if subscribe {
            sink.subscribe(&channels).await?;
        } else {
            sink.unsubscribe(&channels).await?;
        }
    }
    Ok(())
}

/// Capped low: every moment the subscriber is away after Redis came back, broadcasts are lost
/// (pub/sub keeps nothing), while the publisher already delivers what it queued during the
/// outage. A reconnection attempt every ~half second to a Redis that is down costs nothing.
const MAX_BACKOFF_MS: u64 = 400;

/// Delay before reconnection attempt `failures` of a subscription (classic and sharded).
pub(crate) fn backoff(failures: u32) -> Duration {
    let base = 50u64.saturating_mul(1 << failures.min(6));
    let jitter = rand::random::<u64>() % 50;
    Duration::from_millis(base.min(MAX_BACKOFF_MS) + jitter)
}

/// Keeps the wanted set in order (subscription order is visible to other tools) without dups.
fn add_all(wanted: &mut Vec<Subscription>, subs: &[Subscription]) {
    for s in subs {
        if !wanted.contains(s) {
            wanted.push(s.clone());
        }
    }
}

async fn run(
    options: ConnectionOptions,
    handler: Arc<dyn MessageHandler>,
    mut control: mpsc::UnboundedReceiver<Control>,
    health: Option<HealthCheck>,
) {
    let mut wanted: Vec<Subscription> = Vec::new();
    if let Some(h) = &health {
        wanted.push(Subscription::Channel(h.channel.clone()));
    }
    let mut attempt = 0usize;
    let mut failures = 0u32;
    let mut connected_once = false;
    loop {
        let deliver = Deliver {
            handler: &*handler,
            health: health.as_ref(),
        };
        let mut conn = match connect(&options, attempt).await {
            Ok(conn) => conn,
            Err(e) => {
                attempt += 1;
                failures += 1;
                handler.on_connection_event(ConnectionEvent::Disconnected {
                    reason: e.to_string(),
                });
                // Keep taking (un)subscriptions while Redis is away; they apply on reconnect.
                let sleep = tokio::time::sleep(backoff(failures));
                tokio::pin!(sleep);
                loop {
                    tokio::select! {
                        _ = &mut sleep => break,
                        cmd = control.recv() => match cmd {
                            Some(cmd) => record(&mut wanted, cmd),
                            None => return,
                        },
                    }
                }
                continue;
            }
        };
        if let Err(e) = conn.apply(&wanted, true, &deliver).await {
            handler.on_connection_event(ConnectionEvent::Disconnected {
                reason: e.to_string(),
            });
            failures += 1;
            tokio::time::sleep(backoff(failures)).await;
            continue;
        }
        failures = 0;
        handler.on_connection_event(ConnectionEvent::Connected {
            reconnected: connected_once,
        });
        if let (true, Some(h)) = (connected_once, &health) {
            h.count_resubscribe();
        }
        connected_once = true;
        let served = serve(
            &mut conn,
            &mut wanted,
            &mut control,
            &deliver,
            health.as_ref(),
        );
        match served.await {
            Served::ControlClosed => return,
            Served::Disconnected(reason) => {
                handler.on_connection_event(ConnectionEvent::Disconnected { reason });
            }
        }
    }
}

fn record(wanted: &mut Vec<Subscription>, cmd: Control) {
    match cmd {
        Control::Subscribe(subs, ack) => {
            add_all(wanted, &subs);
            let _ = ack.send(Ok(()));
        }
        Control::Unsubscribe(subs, ack) => {
            wanted.retain(|s| !subs.contains(s));
            let _ = ack.send(Ok(()));
        }
    }
}

enum Served {
    ControlClosed,
    Disconnected(String),
}

async fn serve(
    conn: &mut Conn,
    wanted: &mut Vec<Subscription>,
    control: &mut mpsc::UnboundedReceiver<Control>,
    deliver: &Deliver<'_>,
    health: Option<&HealthCheck>,
) -> Served {
    let mut prober = health.map(HealthCheck::prober);
    loop {
        tokio::select! {
            overdue = async {
                match prober.as_mut() {
                    Some(p) => p.overdue().await,
                    None => std::future::pending().await,
                }
            } => return Served::Disconnected(overdue.to_string()),
            cmd = control.recv() => {
                let Some(cmd) = cmd else { return Served::ControlClosed };
                let (subs, ack, subscribe) = match cmd {
                    Control::Subscribe(subs, ack) => (subs, ack, true),
                    Control::Unsubscribe(subs, ack) => (subs, ack, false),
                };
                if subscribe {
                    add_all(wanted, &subs);
                } else {
                    wanted.retain(|s| !subs.contains(s));
                }
                let result = conn.apply(&subs, subscribe, deliver).await;
                let failed = result.as_ref().err().map(|e| e.to_string());
                let _ = ack.send(result);
                if let Some(reason) = failed {
                    return Served::Disconnected(reason);
                }
            }
            received = conn.next_batch(deliver) => {
                if let Err(reason) = received {
                    return Served::Disconnected(reason);
                }
            }
        }
    }
}
