//! A sharded pub/sub subscriber (SSUBSCRIBE / SUNSUBSCRIBE) that survives reconnections, master
//! failovers and resharding, on a standalone Redis 7 (or a sentinel-resolved master) and on a
//! Redis Cluster.
//!
//! On a cluster, and on a standalone Redis over TLS or a Unix socket, it uses the redis crate's
//! RESP3 push support: the cluster async connection or a `ConnectionManager` delivers every push
//! to one channel, read by a task of its own. Both already replay
//! the subscriptions they track after a reconnection, but that tracking is not enough on a
//! cluster: when a master loses a slot (failover, resharding), Redis sends an unsolicited
//! `sunsubscribe` for each shard channel of that slot, the crate's tracker records it as a
//! removal, and the subscription would be lost for good. So this module keeps its own list of
//! wanted channels and re-issues SSUBSCRIBE for them whenever the server drops one we still want
//! or a connection goes away; SSUBSCRIBE is idempotent, so a replay that overlaps the crate's own
//! is harmless, and on a cluster it goes to the master owning the slot according to a fresh
//! CLUSTER SLOTS (see `Conn::resubscribe`).
//!
//! On a standalone Redis or a sentinel-resolved master at a plain TCP address, the connection is
//! a [`RawConnection`](super::raw_connection::RawConnection) in RESP2,
//! read on the subscription task itself, messages handed over in batches of views into its read
//! buffer (see connection::resp for why). It does not reconnect by itself: any error drops it,
//! and the next resync opens a new one and subscribes every wanted channel again, exactly as
//! after the crate reports a disconnection. TLS, Unix sockets and clusters keep the crate.
//!
//! (Un)subscriptions go through one task in the order they were requested: a room created then
//! deleted at once must end unsubscribed.

mod conn;

use super::config::ConnectionOptions;
use super::health::{HealthCheck, Prober};
use super::message::{CrateMessage, PubSubMessage};
use super::subscriber::{backoff, ConnectionEvent, Deliver, MessageHandler};
use conn::{read_raw, Conn};
use redis::{Msg, PushInfo, PushKind, RedisError, RedisResult, Value};
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;

/// Most messages handed over in one batch; bounds the latency of the first one.
const MAX_BATCH: usize = 1024;
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
const RESPONSE_TIMEOUT: Duration = Duration::from_secs(5);

enum Control {
    Subscribe(Vec<String>, oneshot::Sender<RedisResult<()>>),
    Unsubscribe(Vec<String>, oneshot::Sender<RedisResult<()>>),
}

/// What the push reader tells the subscription task.
enum Event {
    Disconnected,
    /// The server dropped a shard channel (our own SUNSUBSCRIBE, or a slot that moved away).
    ShardUnsubscribed(String),
}

pub struct ShardSubscriber {
    control: mpsc::UnboundedSender<Control>,
    tasks: [JoinHandle<()>; 2],
}

impl ShardSubscriber {
    /// Starts on the current tokio runtime. Connects lazily: nothing fails while Redis is down.
    pub fn spawn(options: ConnectionOptions, handler: Arc<dyn MessageHandler>) -> Self {
        Self::spawn_with_health(options, handler, None)
    }

    /// With a [`HealthCheck`] (SPUBLISH on its own shard channel): a connection that stops
    /// delivering is dropped and every channel subscribed again (see connection::health).
    pub fn spawn_with_health(
        options: ConnectionOptions,
        handler: Arc<dyn MessageHandler>,
        health: Option<HealthCheck>,
    ) -> Self {
        let (control, control_rx) = mpsc::unbounded_channel();
        let (push_tx, push_rx) = mpsc::unbounded_channel();
        let (event_tx, event_rx) = mpsc::unbounded_channel();
        let reader = tokio::spawn(read_pushes(
            push_rx,
            event_tx,
            handler.clone(),
            health.clone(),
        ));
        let manager = tokio::spawn(run(options, push_tx, handler, control_rx, event_rx, health));
        Self {
            control,
            tasks: [manager, reader],
        }
    }

    /// Queued at once (so calls apply in call order); the future resolves when Redis confirmed,
    /// or with the error while Redis is away. Either way the channels are kept and replayed.
    pub fn subscribe(
        &self,
        channels: Vec<String>,
    ) -> impl Future<Output = RedisResult<()>> + Send + 'static {
        let (tx, rx) = oneshot::channel();
        let sent = self.control.send(Control::Subscribe(channels, tx)).is_ok();
        async move {
            if !sent {
                return Err(closed());
            }
            rx.await.map_err(|_| closed())?
        }
    }

    pub fn unsubscribe(
        &self,
        channels: Vec<String>,
    ) -> impl Future<Output = RedisResult<()>> + Send + 'static {
        let (tx, rx) = oneshot::channel();
        let sent = self
            .control
            .send(Control::Unsubscribe(channels, tx))
            .is_ok();
        async move {
            if !sent {
                return Err(closed());
            }
            rx.await.map_err(|_| closed())?
        }
    }

    pub fn shutdown(&self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

impl Drop for ShardSubscriber {
    fn drop(&mut self) {
        self.shutdown();
    }
}

fn closed() -> RedisError {
    RedisError::from((redis::ErrorKind::Io, "subscriber closed"))
}

struct State {
    options: ConnectionOptions,
    push: mpsc::UnboundedSender<PushInfo>,
    handler: Arc<dyn MessageHandler>,
    health: Option<HealthCheck>,
    conn: Option<Conn>,
    /// Every channel we want, in subscription order, without duplicates.
    wanted: Vec<String>,
    /// Some wanted channel may not be subscribed: replay all of them.
    dirty: bool,
    failures: u32,
    connected_once: bool,
}

/// How a batch of channels is sent.
#[derive(Clone, Copy)]
enum Exchange {
    Subscribe,
    Unsubscribe,
    /// Subscribe again after a connection loss or a slot move (see `Conn::resubscribe`).
    Resubscribe,
}

impl State {
    /// Sends `channels` on the connection, opened first if there is none. Returns the outcome
    /// and the shard channels Redis dropped on its own meanwhile (see `on_server_dropped`).
    async fn exchange(
        &mut self,
        exchange: Exchange,
        channels: &[String],
    ) -> (RedisResult<()>, Vec<String>) {
        if self.conn.is_none() {
            match Conn::open(&self.options, &self.push).await {
                Ok(conn) => self.conn = Some(conn),
                Err(e) => return (Err(e), Vec::new()),
            }
        }
        let conn = self.conn.as_mut().expect("just opened");
        // Messages that arrive on a raw connection while it waits for confirmations.
        let deliver = Deliver {
            handler: &*self.handler,
            health: self.health.as_ref(),
        };
        let mut dropped = Vec::new();
        let result = match exchange {
            Exchange::Subscribe => conn.apply(true, channels, &deliver, &mut dropped).await,
            Exchange::Unsubscribe => conn.apply(false, channels, &deliver, &mut dropped).await,
            Exchange::Resubscribe => conn.resubscribe(channels, &deliver, &mut dropped).await,
        };
        if result.is_err() && conn.is_raw() {
            self.drop_raw_connection();
        }
        (result, dropped)
    }

    /// A raw connection does not reconnect by itself (the crate's do): after an error it is
    /// dropped, and every wanted channel is replayed on the next one.
    fn drop_raw_connection(&mut self) {
        self.conn = None;
        self.dirty = true;
    }

    /// Redis dropped these shard channels (a slot moved away from the node holding them):
    /// subscribe again, on the slot's new owner, those still wanted.
    fn on_server_dropped(&mut self, channels: &[String]) {
        if channels.iter().any(|c| self.wanted.contains(c)) {
            self.dirty = true;
        }
    }

    fn report(&mut self, result: &RedisResult<()>) {
        match result {
            Ok(()) if !self.dirty => {
                if !self.connected_once {
                    self.connected_once = true;
                    self.handler
                        .on_connection_event(ConnectionEvent::Connected { reconnected: false });
                }
            }
            Ok(()) => {}
            Err(e) => {
                self.failures += 1;
                self.handler
                    .on_connection_event(ConnectionEvent::Disconnected {
                        reason: e.to_string(),
                    });
            }
        }
    }

    async fn on_control(&mut self, cmd: Control) {
        let (channels, ack, subscribe) = match cmd {
            Control::Subscribe(c, ack) => (c, ack, true),
            Control::Unsubscribe(c, ack) => (c, ack, false),
        };
        if subscribe {
            for c in &channels {
                if !self.wanted.contains(c) {
                    self.wanted.push(c.clone());
                }
            }
        } else {
            self.wanted.retain(|c| !channels.contains(c));
        }
        let exchange = if subscribe {
            Exchange::Subscribe
        } else {
            Exchange::Unsubscribe
        };
        let (result, dropped) = self.exchange(exchange, &channels).await;
        if result.is_err() && subscribe {
            // Recorded: the resync replays it once Redis answers again.
            self.dirty = true;
        }
        self.report(&result);
        self.on_server_dropped(&dropped);
        let _ = ack.send(result);
    }

    async fn resync(&mut self) {
        let wanted = self.wanted.clone();
        let (result, dropped) = self.exchange(Exchange::Resubscribe, &wanted).await;
        if result.is_ok() {
            self.dirty = false;
            self.failures = 0;
            let reconnected = self.connected_once;
            self.connected_once = true;
            self.handler
                .on_connection_event(ConnectionEvent::Connected { reconnected });
        } else {
            self.report(&result);
        }
        // After the state above: a channel dropped during the replay is replayed again.
        self.on_server_dropped(&dropped);
    }
}

async fn run(
    options: ConnectionOptions,
    push: mpsc::UnboundedSender<PushInfo>,
    handler: Arc<dyn MessageHandler>,
    mut control: mpsc::UnboundedReceiver<Control>,
    mut events: mpsc::UnboundedReceiver<Event>,
    health: Option<HealthCheck>,
) {
    let mut state = State {
        options,
        push,
        handler: handler.clone(),
        health: health.clone(),
        conn: None,
        wanted: Vec::new(),
        dirty: false,
        failures: 0,
        connected_once: false,
    };
    if let Some(h) = &health {
        state.wanted.push(h.channel.clone());
        state.dirty = true;
    }
    // Messages read from a raw connection, on this task.
    let deliver = Deliver {
        handler: &*handler,
        health: health.as_ref(),
    };
    // Probes only while everything is believed subscribed; a new one per resync.
    let mut prober: Option<Prober> = None;
    loop {
        let delay = backoff(state.failures);
        if state.dirty {
            prober = None;
        }
        tokio::select! {
            overdue = async {
                match prober.as_mut() {
                    Some(p) => p.overdue().await,
                    None => std::future::pending().await,
                }
            } => {
                // Drop the silent connection: the next resync opens a new one.
                state.conn = None;
                state.dirty = true;
                state.handler.on_connection_event(ConnectionEvent::Disconnected {
                    reason: overdue.to_string(),
                });
            }
            cmd = control.recv() => match cmd {
                Some(cmd) => state.on_control(cmd).await,
                None => return,
            },
            read = read_raw(&mut state.conn, &deliver) => match read {
                Ok(dropped) => state.on_server_dropped(&dropped),
                Err(e) => {
                    state.drop_raw_connection();
                    state.handler.on_connection_event(ConnectionEvent::Disconnected {
                        reason: e.to_string(),
                    });
                }
            },
            event = events.recv() => match event {
                Some(Event::Disconnected) => {
                    state.dirty = true;
                    state.handler.on_connection_event(ConnectionEvent::Disconnected {
                        reason: "connection lost".into(),
                    });
                }
                Some(Event::ShardUnsubscribed(channel)) => state.on_server_dropped(&[channel]),
                None => return,
            },
            _ = tokio::time::sleep(delay), if state.dirty && !state.wanted.is_empty() => {
                let reconnecting = state.connected_once;
                state.resync().await;
                if !state.dirty {
                    if let (true, Some(h)) = (reconnecting, &health) {
                        h.count_resubscribe();
                    }
                    prober = health.as_ref().map(HealthCheck::prober);
                }
            }
        }
    }
}

fn channel_of(push: &PushInfo) -> Option<String> {
    match push.data.first() {
        Some(Value::BulkString(bytes)) => Some(String::from_utf8_lossy(bytes).into_owned()),
        _ => None,
    }
}

/// Reads the pushes of the redis crate's connections (not of a raw one, read by `run`).
async fn read_pushes(
    mut rx: mpsc::UnboundedReceiver<PushInfo>,
    events: mpsc::UnboundedSender<Event>,
    handler: Arc<dyn MessageHandler>,
    health: Option<HealthCheck>,
) {
    let deliver = Deliver {
        handler: &*handler,
        health: health.as_ref(),
    };
    let mut batch: Vec<CrateMessage> = Vec::with_capacity(64);
    let take = |push: PushInfo, batch: &mut Vec<CrateMessage>| match push.kind {
        PushKind::SMessage | PushKind::Message | PushKind::PMessage => {
            if let Some(msg) = Msg::from_push_info(push) {
                batch.push(msg.into());
            }
        }
        PushKind::SUnsubscribe => {
            if let Some(channel) = channel_of(&push) {
                let _ = events.send(Event::ShardUnsubscribed(channel));
            }
        }
        PushKind::Disconnection => {
            let _ = events.send(Event::Disconnected);
        }
        _ => {}
    };
    while let Some(push) = rx.recv().await {
        take(push, &mut batch);
        while batch.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(push) => take(push, &mut batch),
                Err(_) => break,
            }
        }
        if !batch.is_empty() {
            let views: Vec<PubSubMessage<'_>> = batch.iter().map(CrateMessage::view).collect();
            deliver.deliver(&views);
            drop(views);
            batch.clear();
        }
    }
}
