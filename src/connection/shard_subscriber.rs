//! A sharded pub/sub subscriber (SSUBSCRIBE / SUNSUBSCRIBE) that survives reconnections, master
//! failovers and resharding, on a standalone Redis 7 (or a sentinel-resolved master) and on a
//! Redis Cluster.
//!
//! It uses the redis crate's RESP3 push support: a `ConnectionManager` (standalone) or the
//! cluster async connection (cluster) delivers every push to one channel. Both already replay
//! the subscriptions they track after a reconnection, but that tracking is not enough on a
//! cluster: when a master loses a slot (failover, resharding), Redis sends an unsolicited
//! `sunsubscribe` for each shard channel of that slot, the crate's tracker records it as a
//! removal, and the subscription would be lost for good. So this module keeps its own list of
//! wanted channels and re-issues SSUBSCRIBE for them whenever the server drops one we still want
//! or a connection goes away; SSUBSCRIBE is idempotent, so a replay that overlaps the crate's own
//! is harmless, and on a cluster it goes to the master owning the slot according to a fresh
//! CLUSTER SLOTS (see `Conn::resubscribe`).
//!
//! (Un)subscriptions go through one task in the order they were requested: a room created then
//! deleted at once must end unsubscribed.

use super::config::{ConnectionOptions, Topology};
use super::health::{HealthCheck, Prober};
use super::message::{CrateMessage, PubSubMessage};
use super::sentinel::resolve_master;
use super::slot::key_slot;
use super::subscriber::{ConnectionEvent, MessageHandler};
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::cluster::ClusterClient;
use redis::cluster_async::ClusterConnection;
use redis::cluster_routing::{RoutingInfo, SingleNodeRoutingInfo};
use redis::{
    ConnectionInfo, Msg, ProtocolVersion, PushInfo, PushKind, RedisError, RedisResult, Value,
};
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

fn config_error(e: impl ToString) -> RedisError {
    RedisError::from((
        redis::ErrorKind::InvalidClientConfig,
        "invalid connection options",
        e.to_string(),
    ))
}

fn resp3(info: ConnectionInfo) -> ConnectionInfo {
    let settings = info
        .redis_settings()
        .clone()
        .set_protocol(ProtocolVersion::RESP3);
    info.set_redis_settings(settings)
}

enum Conn {
    Single(ConnectionManager),
    Cluster(ClusterConnection),
}

impl Conn {
    async fn open(
        options: &ConnectionOptions,
        push: &mpsc::UnboundedSender<PushInfo>,
    ) -> RedisResult<Self> {
        match options.topology {
            Topology::Cluster => {
                let infos: Vec<ConnectionInfo> = options
                    .connection_infos()
                    .map_err(config_error)?
                    .into_iter()
                    .map(resp3)
                    .collect();
                let mut builder = ClusterClient::builder(infos)
                    .use_protocol(ProtocolVersion::RESP3)
                    .push_sender(push.clone())
                    .connection_timeout(CONNECT_TIMEOUT)
                    .response_timeout(RESPONSE_TIMEOUT);
                if let Some(certs) = options.tls_certificates() {
                    builder = builder.certs(certs);
                }
                let client = builder.build()?;
                let conn = tokio::time::timeout(CONNECT_TIMEOUT * 2, client.get_async_connection())
                    .await
                    .map_err(|_| RedisError::from((redis::ErrorKind::Io, "connect timed out")))??;
                Ok(Conn::Cluster(conn))
            }
            Topology::Standalone | Topology::Sentinel => {
                let info = if options.topology == Topology::Sentinel {
                    resolve_master(options).await?
                } else {
                    options
                        .connection_infos()
                        .map_err(config_error)?
                        .into_iter()
                        .next()
                        .ok_or_else(|| config_error("no node"))?
                };
                let client = redis::Client::open(resp3(info))?;
                let config = ConnectionManagerConfig::new()
                    .set_connection_timeout(Some(CONNECT_TIMEOUT))
                    .set_response_timeout(Some(RESPONSE_TIMEOUT))
                    .set_number_of_retries(1)
                    .set_push_sender(push.clone())
                    .set_automatic_resubscription();
                Ok(Conn::Single(ConnectionManager::new_lazy_with_config(
                    client, config,
                )?))
            }
        }
    }

    /// One channel per command: on a cluster each one is routed by its own slot, and on a
    /// standalone connection the single confirmation push is the command's reply.
    async fn send(&mut self, subscribe: bool, channel: &str) -> RedisResult<()> {
        match self {
            Conn::Cluster(c) if subscribe => c.ssubscribe(channel).await,
            Conn::Cluster(c) => c.sunsubscribe(channel).await,
            Conn::Single(c) => {
                let name = if subscribe {
                    "SSUBSCRIBE"
                } else {
                    "SUNSUBSCRIBE"
                };
                let _: Value = redis::cmd(name).arg(channel).query_async(c).await?;
                Ok(())
            }
        }
    }

    /// Subscribes `channels` again after a connection loss or a slot move. On a cluster each
    /// one goes to the master that owns its slot *now*, as told by a fresh CLUSTER SLOTS: the
    /// crate's slot map may still be stale, and a stale route can land on the old master, now a
    /// replica, which accepts SSUBSCRIBE too. The crate would later resubscribe the channel on
    /// the new master as well, and the node would count (and receive) twice.
    async fn resubscribe(&mut self, channels: &[String]) -> RedisResult<()> {
        let Conn::Cluster(c) = self else {
            for channel in channels {
                self.send(true, channel).await?;
            }
            return Ok(());
        };
        let slots: Value = c
            .route_command(
                redis::cmd("CLUSTER").arg("SLOTS").clone(),
                RoutingInfo::SingleNode(SingleNodeRoutingInfo::Random),
            )
            .await?;
        let owners = parse_slot_owners(&slots);
        for channel in channels {
            let slot = key_slot(channel.as_bytes());
            let Some((_, _, host, port)) = owners.iter().find(|o| o.0 <= slot && slot <= o.1)
            else {
                return Err(RedisError::from((
                    redis::ErrorKind::Io,
                    "no master serves the slot",
                    channel.clone(),
                )));
            };
            let routing = RoutingInfo::SingleNode(SingleNodeRoutingInfo::ByAddress {
                host: host.clone(),
                port: *port,
            });
            c.route_command(redis::cmd("SSUBSCRIBE").arg(channel).clone(), routing)
                .await?;
        }
        Ok(())
    }
}

/// `CLUSTER SLOTS` → (first slot, last slot, master host, master port) per range.
fn parse_slot_owners(value: &Value) -> Vec<(u16, u16, String, u16)> {
    let int = |v: &Value| match v {
        Value::Int(i) => u16::try_from(*i).ok(),
        _ => None,
    };
    let text = |v: &Value| match v {
        Value::BulkString(b) => Some(String::from_utf8_lossy(b).into_owned()),
        Value::SimpleString(s) => Some(s.clone()),
        _ => None,
    };
    let Value::Array(ranges) = value else {
        return Vec::new();
    };
    ranges
        .iter()
        .filter_map(|range| {
            let Value::Array(items) = range else {
                return None;
            };
            let Value::Array(master) = items.get(2)? else {
                return None;
            };
            Some((
                int(items.first()?)?,
                int(items.get(1)?)?,
                text(master.first()?)?,
                int(master.get(1)?)?,
            ))
        })
        .collect()
}

fn backoff(failures: u32) -> Duration {
    let base = 50u64.saturating_mul(1 << failures.min(6));
    Duration::from_millis(base.min(2000) + rand::random::<u64>() % 50)
}

struct State {
    options: ConnectionOptions,
    push: mpsc::UnboundedSender<PushInfo>,
    handler: Arc<dyn MessageHandler>,
    conn: Option<Conn>,
    /// Every channel we want, in subscription order, without duplicates.
    wanted: Vec<String>,
    /// Some wanted channel may not be subscribed: replay all of them.
    dirty: bool,
    failures: u32,
    connected_once: bool,
}

impl State {
    async fn conn(&mut self) -> RedisResult<&mut Conn> {
        if self.conn.is_none() {
            self.conn = Some(Conn::open(&self.options, &self.push).await?);
        }
        Ok(self.conn.as_mut().expect("just set"))
    }

    async fn apply(&mut self, subscribe: bool, channels: &[String]) -> RedisResult<()> {
        let conn = self.conn().await?;
        for channel in channels {
            conn.send(subscribe, channel).await?;
        }
        Ok(())
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
        let result = self.apply(subscribe, &channels).await;
        if result.is_err() && subscribe {
            // Recorded: the resync replays it once Redis answers again.
            self.dirty = true;
        }
        self.report(&result);
        let _ = ack.send(result);
    }

    async fn resync(&mut self) {
        let wanted = self.wanted.clone();
        let result = match self.conn().await {
            Ok(conn) => conn.resubscribe(&wanted).await,
            Err(e) => Err(e),
        };
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
        handler,
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
            event = events.recv() => match event {
                Some(Event::Disconnected) => {
                    state.dirty = true;
                    state.handler.on_connection_event(ConnectionEvent::Disconnected {
                        reason: "connection lost".into(),
                    });
                }
                // A slot moved away from the node holding this subscription: subscribe again,
                // on the slot's new owner.
                Some(Event::ShardUnsubscribed(channel)) if state.wanted.contains(&channel) => {
                    state.dirty = true;
                }
                Some(Event::ShardUnsubscribed(_)) => {}
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

async fn read_pushes(
    mut rx: mpsc::UnboundedReceiver<PushInfo>,
    events: mpsc::UnboundedSender<Event>,
    handler: Arc<dyn MessageHandler>,
    health: Option<HealthCheck>,
) {
    let mut batch: Vec<CrateMessage> = Vec::with_capacity(64);
    let take = |push: PushInfo, batch: &mut Vec<CrateMessage>| match push.kind {
        PushKind::SMessage | PushKind::Message | PushKind::PMessage => {
            if let Some(msg) = Msg::from_push_info(push) {
                let ping = health.as_ref().is_some_and(|h| {
                    h.take_ping(msg.get_channel_name().as_bytes(), msg.get_payload_bytes())
                });
                if !ping {
                    batch.push(msg.into());
                }
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
            handler.on_messages(&views);
            drop(views);
            batch.clear();
        }
    }
}
