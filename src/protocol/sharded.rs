//! The sharded adapter of @socket.io/redis-adapter 8.3 (PROTOCOL.md section 4): channel names
//! per namespace, which incoming message goes where, and own-message filtering by uid.
//!
//! The cluster-adapter protocol itself (request correlation, answers) stays in socket.io-adapter's
//! JS `ClusterAdapter`; this side only moves bytes and drops what JS would drop anyway.

use super::broadcast_batch::{self, BatchOutcome};
use super::cluster_event::{broadcast_event_text_validated, BROADCAST};
use super::delivery::{
    deliver_connection_event, event_wire_head, push_event_wire, route_messages, DeliveryKind,
    DeliverySink, FrameBatch,
};
use super::header::{read_broadcast_header, read_json_broadcast_header};
use crate::codec::{fetch_sockets, msgpack};
use crate::connection::{ConnectionEvent, MessageHandler, PubSubMessage, Subscription};
use crate::transport::Transport;
use redis::RedisResult;
use std::collections::HashMap;
use std::future::Future;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock, RwLock};

/// The channels of one namespace (PROTOCOL.md 4.2).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShardedChannels {
    /// `P#N#`: every node subscribes it once, and SHARDNUMSUB on it is the server count.
    pub main: String,
    /// `P#N#U#`: answers to this node's requests.
    pub response: String,
}

impl ShardedChannels {
    pub fn new(prefix: &str, nsp: &str, uid: &str) -> Self {
        let main = format!("{prefix}#{nsp}#");
        Self {
            response: format!("{main}{uid}#"),
            main,
        }
    }

    /// `P#N#R#` for a dynamic room channel, `P#N#` otherwise.
    pub fn publish_channel(&self, room: Option<&str>) -> String {
        match room {
            Some(room) => format!("{}{room}#", self.main),
            None => self.main.clone(),
        }
    }

    /// Where the answers to the request of node `uid` go.
    pub fn response_channel_of(&self, uid: &str) -> String {
        format!("{}{uid}#", self.main)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ChannelKind {
    /// Main or dynamic room channel: messages for `onMessage`.
    Message,
    /// Our own response channel: answers for `onResponse`.
    Response,
}

struct Namespace {
    name: String,
    uid: String,
    channels: ShardedChannels,
    /// Room → its dynamic channel, for the rooms this node subscribed.
    rooms: HashMap<String, String>,
    /// Hand JSON broadcasts over as socket.io wire text (see protocol::cluster_event).
    wire_text: bool,
    /// `,"uid":"<uid>","nsp":<nsp>}`: how every JSON message this node sends ends (see
    /// [`Namespace::is_own_json`]).
    own_json_suffix: Vec<u8>,
}

impl Namespace {
    /// Whether a JSON message is one of ours, without parsing it: a node receives everything it
    /// publishes on the main channel. Cluster-adapter messages are `JSON.stringify` of
    /// `{type, data, uid, nsp}` (uid and nsp set last, by publishAndReturnOffset), so ours end
    /// with this suffix; in valid JSON that suffix can only be the top level's last two members
    /// (a nested object would leave another `}` after it). Anything else is parsed.
    fn is_own_json(&self, payload: &[u8]) -> bool {
        payload.first() == Some(&b'{') && payload.ends_with(&self.own_json_suffix)
    }
}

fn own_json_suffix(uid: &str, nsp: &str) -> Vec<u8> {
    let quote = |s: &str| serde_json::to_string(s).unwrap_or_default();
    format!(",\"uid\":{},\"nsp\":{}}}", quote(uid), quote(nsp)).into_bytes()
}

/// How upstream's BROADCAST message JSON for an EVENT starts (`JSON.stringify` of
/// `{type, data: {packet: {type, data}, opts}, uid, nsp}`), up to the event's arguments.
const BROADCAST_MESSAGE_HEAD: &str = r#"{"type":3,"data":{"packet":{"type":2,"data":"#;

/// Upstream's BROADCAST message JSON for an EVENT whose arguments' JSON is `args` and options'
/// JSON `opts`, ending with the namespace's `suffix` (`,"uid":..,"nsp":..}`): what the sharded
/// adapter's JS wrote itself before (lib/sharded-adapter.js).
fn broadcast_message_json(args: &str, opts: &str, suffix: &[u8]) -> String {
    let suffix = std::str::from_utf8(suffix).unwrap_or_default();
    let mut json = String::with_capacity(
        BROADCAST_MESSAGE_HEAD.len() + args.len() + opts.len() + suffix.len() + 12,
    );
    json.push_str(BROADCAST_MESSAGE_HEAD);
    json.push_str(args);
    json.push_str(r#"},"opts":"#);
    json.push_str(opts);
    json.push('}');
    json.push_str(suffix);
    json
}

#[derive(Default)]
struct Routes {
    namespaces: HashMap<u32, Namespace>,
    by_channel: HashMap<String, (u32, ChannelKind)>,
}

#[derive(Debug, Default)]
pub struct ShardedStats {
    pub received: AtomicU64,
    pub received_bytes: AtomicU64,
    pub delivered: AtomicU64,
    /// Of `delivered`: handed over as the text socket.io sends (no JS decode or encode).
    pub delivered_as_text: AtomicU64,
    pub skipped_own: AtomicU64,
    pub skipped_foreign: AtomicU64,
    pub decode_errors: AtomicU64,
    pub reconnects: AtomicU64,
}

fn bump(counter: &AtomicU64) {
    counter.fetch_add(1, Ordering::Relaxed);
}

pub struct ShardedRouter {
    routes: RwLock<Routes>,
    sink: Arc<dyn DeliverySink>,
    stats: ShardedStats,
}

impl ShardedRouter {
    fn new(sink: Arc<dyn DeliverySink>) -> Self {
        Self {
            routes: RwLock::new(Routes::default()),
            sink,
            stats: ShardedStats::default(),
        }
    }

    pub fn stats(&self) -> &ShardedStats {
        &self.stats
    }

    fn route(&self, routes: &Routes, msg: &PubSubMessage<'_>, batch: &mut FrameBatch) {
        let payload = msg.payload;
        bump(&self.stats.received);
        self.stats
            .received_bytes
            .fetch_add(payload.len() as u64, Ordering::Relaxed);
        let Some(&(id, kind)) = msg.channel_str().and_then(|c| routes.by_channel.get(c)) else {
            bump(&self.stats.skipped_foreign);
            return;
        };
        let Some(ns) = routes.namespaces.get(&id) else {
            return;
        };
        if kind == ChannelKind::Message && ns.is_own_json(payload) {
            bump(&self.stats.skipped_own);
            return;
        }
        if kind == ChannelKind::Response {
            // onResponse checks neither uid nor nsp (PROTOCOL.md 3.2): hand everything over,
            // fetchSockets answers split for lazy handshakes (as the classic adapter's).
            bump(&self.stats.delivered);
            // Split straight into the batch: a 100-socket answer is some 70 KB.
            let split = batch.push_with(DeliveryKind::AckResponse, id, |out| {
                fetch_sockets::split_cluster_fetch_answer_into(payload, out)
            });
            if !split {
                batch.push(DeliveryKind::AckResponse, id, payload);
            }
            return;
        }
        // The usual JSON message in one checking walk, its event included; the rest by serde.
        let (read, walked_event) = match read_json_broadcast_header(payload) {
            Some((header, event)) => (Ok(header), Some(event)),
            None => (read_broadcast_header(payload), None),
        };
        match read {
            Ok(header) => {
                if header.uid.as_deref() == Some(ns.uid.as_str()) {
                    bump(&self.stats.skipped_own);
                    return;
                }
                if header.nsp.as_deref().is_some_and(|nsp| nsp != ns.name) {
                    bump(&self.stats.skipped_foreign);
                    return;
                }
                if ns.wire_text
                    && header.msg_type == Some(BROADCAST)
                    && header.nsp.as_deref() == Some(ns.name.as_str())
                {
                    // Either walk checked the whole message: its data is walked as it is.
                    let event = walked_event
                        .unwrap_or_else(|| header.data.and_then(broadcast_event_text_validated));
                    if let Some(event) = event {
                        let [two, nsp, comma] = event_wire_head(&ns.name);
                        let text = [two, nsp, comma, event.data.as_bytes()];
                        batch.push_event_text(id, event.opts.into(), &text);
                        bump(&self.stats.delivered);
                        bump(&self.stats.delivered_as_text);
                        return;
                    }
                    // MessagePack: a packet with binary values (the official encoder's choice).
                    // socket.io-adapter applies it to the receiving namespace whatever its
                    // packet.nsp says (Adapter#broadcast sets it).
                    let envelope = header
                        .data_msgpack
                        .and_then(|data| msgpack::read_cluster_broadcast("", data).ok());
                    if let Some(env) = envelope {
                        if push_event_wire(&env, &ns.name, id, batch) {
                            bump(&self.stats.delivered);
                            bump(&self.stats.delivered_as_text);
                            return;
                        }
                    }
                }
            }
            // JSON that does not parse would be dropped by JS too.
            Err(e) if payload.first() == Some(&b'{') => {
                bump(&self.stats.decode_errors);
                let line = format!("skipped a malformed message: {e}");
                batch.push(DeliveryKind::Log, id, line.as_bytes());
                return;
            }
            // MessagePack the header reader could not read: JS decodes it and filters by uid.
            Err(_) => {}
        }
        bump(&self.stats.delivered);
        batch.push(DeliveryKind::Broadcast, id, payload);
    }
}

impl MessageHandler for ShardedRouter {
    fn on_messages(&self, msgs: &[PubSubMessage<'_>]) {
        route_messages(&*self.sink, &self.routes, msgs, |routes, msg, batch| {
            self.route(routes, msg, batch)
        });
    }

    fn on_connection_event(&self, event: ConnectionEvent) {
        deliver_connection_event(&*self.sink, event, Some(&self.stats.reconnects));
    }
}

/// One sharded-adapter node: every namespace of one `createShardedAdapter()` call shares it.
pub struct ShardedCore<T: Transport> {
    prefix: String,
    router: Arc<ShardedRouter>,
    transport: OnceLock<T>,
    next_namespace: AtomicU32,
}

fn unknown(id: u32) -> redis::RedisError {
    redis::RedisError::from((
        redis::ErrorKind::Client,
        "unknown or closed namespace",
        id.to_string(),
    ))
}

fn subs(channels: impl IntoIterator<Item = String>) -> Vec<Subscription> {
    channels.into_iter().map(Subscription::Channel).collect()
}

impl<T: Transport> ShardedCore<T> {
    /// The transport is attached afterwards because it needs the router as its handler.
    pub fn new(prefix: &str, sink: Arc<dyn DeliverySink>) -> Self {
        Self {
            prefix: if prefix.is_empty() {
                "socket.io".into()
            } else {
                prefix.into()
            },
            router: Arc::new(ShardedRouter::new(sink)),
            transport: OnceLock::new(),
            next_namespace: AtomicU32::new(1),
        }
    }

    pub fn router(&self) -> Arc<ShardedRouter> {
        self.router.clone()
    }

    pub fn attach(&self, transport: T) {
        let _ = self.transport.set(transport);
    }

    fn transport(&self) -> &T {
        self.transport
            .get()
            .expect("transport attached at creation")
    }

    fn channels(&self, id: u32) -> Option<ShardedChannels> {
        let routes = self.router.routes.read().unwrap();
        routes.namespaces.get(&id).map(|ns| ns.channels.clone())
    }

    /// The channels of namespace `id` and how its messages end ([`own_json_suffix`]).
    fn channels_and_suffix(&self, id: u32) -> Option<(ShardedChannels, Vec<u8>)> {
        let routes = self.router.routes.read().unwrap();
        routes
            .namespaces
            .get(&id)
            .map(|ns| (ns.channels.clone(), ns.own_json_suffix.clone()))
    }

    /// Registers the namespace of the adapter with uid `uid` and subscribes its main channel,
    /// then its response channel, as the official constructor does. The subscription is queued
    /// before this returns; the future tells when Redis confirmed it.
    pub fn add_namespace(
        &self,
        name: &str,
        uid: &str,
    ) -> (
        u32,
        impl Future<Output = RedisResult<()>> + Send + use<'_, T>,
    ) {
        let id = self.next_namespace.fetch_add(1, Ordering::Relaxed);
        let channels = ShardedChannels::new(&self.prefix, name, uid);
        {
            let mut routes = self.router.routes.write().unwrap();
            routes
                .by_channel
                .insert(channels.main.clone(), (id, ChannelKind::Message));
            routes
                .by_channel
                .insert(channels.response.clone(), (id, ChannelKind::Response));
            routes.namespaces.insert(
                id,
                Namespace {
                    name: name.to_string(),
                    uid: uid.to_string(),
                    channels: channels.clone(),
                    rooms: HashMap::new(),
                    wire_text: false,
                    own_json_suffix: own_json_suffix(uid, name),
                },
            );
        }
        let done = self
            .transport()
            .subscribe(subs([channels.main, channels.response]));
        (id, done)
    }

    /// Resolves once every (un)subscription queued before it was applied.
    pub fn flush(&self) -> impl Future<Output = RedisResult<()>> + Send + use<'_, T> {
        self.transport().subscribe(Vec::new())
    }

    /// Unsubscribes everything of the namespace and forgets it. Returns whether namespaces remain.
    pub async fn remove_namespace(&self, id: u32) -> RedisResult<bool> {
        let (channels, remaining) = {
            let mut routes = self.router.routes.write().unwrap();
            let Some(ns) = routes.namespaces.remove(&id) else {
                return Ok(!routes.namespaces.is_empty());
            };
            let mut channels = vec![ns.channels.main, ns.channels.response];
            channels.extend(ns.rooms.into_values());
            for c in &channels {
                if routes
                    .by_channel
                    .get(c)
                    .is_some_and(|(owner, _)| *owner == id)
                {
                    routes.by_channel.remove(c);
                }
            }
            (channels, !routes.namespaces.is_empty())
        };
        self.transport().unsubscribe(subs(channels)).await?;
        Ok(remaining)
    }

    /// Hand broadcasts of this namespace over as socket.io wire text (default parser only).
    pub fn set_wire_text(&self, id: u32, enabled: bool) {
        if let Some(ns) = self.router.routes.write().unwrap().namespaces.get_mut(&id) {
            ns.wire_text = enabled;
        }
    }

    /// SSUBSCRIBE the dynamic channel of `room` (queued at once; errors are logged by the
    /// subscriber and the channel is replayed when Redis is back).
    pub fn add_room(&self, id: u32, room: &str) -> bool {
        let channel = {
            let mut routes = self.router.routes.write().unwrap();
            let Some(ns) = routes.namespaces.get_mut(&id) else {
                return false;
            };
            let channel = ns.channels.publish_channel(Some(room));
            ns.rooms.insert(room.to_string(), channel.clone());
            routes
                .by_channel
                .insert(channel.clone(), (id, ChannelKind::Message));
            channel
        };
        drop(self.transport().subscribe(subs([channel])));
        true
    }

    pub fn remove_room(&self, id: u32, room: &str) -> bool {
        let channel = {
            let mut routes = self.router.routes.write().unwrap();
            let Some(ns) = routes.namespaces.get_mut(&id) else {
                return false;
            };
            let Some(channel) = ns.rooms.remove(room) else {
                return false;
            };
            routes.by_channel.remove(&channel);
            channel
        };
        drop(self.transport().unsubscribe(subs([channel])));
        true
    }

    /// SPUBLISH on `P#N#` or, with a room, on its dynamic channel `P#N#R#`.
    pub fn publish(&self, id: u32, room: Option<&str>, payload: Vec<u8>) -> bool {
        match self.channels(id) {
            Some(c) => self.transport().publish(c.publish_channel(room), payload),
            None => false,
        }
    }

    /// As [`ShardedCore::publish`], queued without waking the sender: the JS layer calls
    /// [`ShardedCore::send_queued`] once per event-loop turn, so a burst of broadcasts is one
    /// pipelined write per slot.
    pub fn publish_deferred(&self, id: u32, room: Option<&str>, payload: Vec<u8>) -> bool {
        match self.channels(id) {
            Some(c) => self
                .transport()
                .publish_deferred(c.publish_channel(room), payload),
            None => false,
        }
    }

    /// [`ShardedCore::publish_deferred`] of a message given as JSON with socket.io-parser's
    /// placeholders (`{"_placeholder":true,"num":N}`) where `attachments[N]` go: the
    /// MessagePack notepack.io writes for the message with its Buffers (what the official
    /// adapter publishes when a packet holds binary values). Ok(false) when refused.
    pub fn publish_json_attachments_deferred(
        &self,
        id: u32,
        room: Option<&str>,
        message_json: &str,
        attachments: &[&[u8]],
    ) -> Result<bool, msgpack::TranscodeError> {
        let payload = binary_message(message_json, attachments)?;
        Ok(self.publish_deferred(id, room, payload))
    }

    /// [`ShardedCore::publish_deferred`] for the broadcast messages JS queued during one
    /// event-loop turn (see [`broadcast_batch`]: each record's data is the message JSON, its
    /// room the channel's room), in order. A record that cannot be read is skipped with its
    /// reason in the outcome. A record with Buffers (`attachments` holds their bytes) is
    /// sent as MessagePack, as upstream sends messages with binary data.
    ///
    /// A record with options holds only the event's arguments: the message is upstream's JSON
    /// around them, written here ([`broadcast_message_json`]) instead of by JS into every
    /// record (its head and its uid/nsp tail were a large part of what a sender wrote per
    /// broadcast).
    pub fn publish_text_batch(&self, batch: &str, attachments: &[u8]) -> BatchOutcome {
        let mut namespace: Option<(u32, ShardedChannels, Vec<u8>)> = None;
        broadcast_batch::queue_records(batch, attachments, self.transport(), |queued| {
            // Records of one turn are almost always of one namespace: look it up once.
            if namespace.as_ref().is_none_or(|(id, _, _)| *id != queued.ns) {
                namespace = self
                    .channels_and_suffix(queued.ns)
                    .map(|(c, suffix)| (queued.ns, c, suffix));
            }
            let Some((_, c, suffix)) = namespace.as_ref() else {
                return Ok(None);
            };
            let assembled;
            let message_json = match queued.opts_json {
                Some(opts) => {
                    assembled = broadcast_message_json(queued.data_json, opts, suffix);
                    assembled.as_str()
                }
                None => queued.data_json,
            };
            let payload = if queued.attachments.is_empty() {
                message_json.as_bytes().to_vec()
            } else {
                binary_message(message_json, &queued.attachments)
                    .map_err(|e| format!("queued broadcast not transcodable: {e}"))?
            };
            Ok(Some((c.publish_channel(queued.room.as_deref()), payload)))
        })
    }

    pub fn send_queued(&self) {
        self.transport().flush();
    }

    /// SPUBLISH an answer on `P#N#<requester uid>#`.
    pub fn publish_response(&self, id: u32, requester_uid: &str, payload: Vec<u8>) -> bool {
        match self.channels(id) {
            Some(c) => self
                .transport()
                .publish(c.response_channel_of(requester_uid), payload),
            None => false,
        }
    }

    /// `PUBSUB SHARDNUMSUB P#N#`, summed over the cluster nodes.
    pub async fn server_count(&self, id: u32) -> RedisResult<i64> {
        let channels = self.channels(id).ok_or_else(|| unknown(id))?;
        self.transport().count_listeners(&channels.main).await
    }

    /// `server_count` and a publish on the main channel in one round trip where the transport
    /// can (SHARDNUMSUB then SPUBLISH in one write): a request no longer waits for the count
    /// before it leaves. Resolves with the count, taken before the publish.
    pub async fn count_and_publish(&self, id: u32, payload: Vec<u8>) -> RedisResult<i64> {
        let channels = self.channels(id).ok_or_else(|| unknown(id))?;
        self.transport()
            .count_and_publish(channels.main, payload)
            .await
    }

    pub fn shutdown(&self) {
        if let Some(t) = self.transport.get() {
            t.shutdown();
        }
    }
}

/// The MessagePack of a message whose JSON has socket.io-parser's placeholders for
/// `attachments`, with the Buffers in their places, as notepack encodes it.
fn binary_message(
    message_json: &str,
    attachments: &[&[u8]],
) -> Result<Vec<u8>, msgpack::TranscodeError> {
    let mut payload = Vec::with_capacity(
        message_json.len() + attachments.iter().map(|a| a.len() + 5).sum::<usize>(),
    );
    msgpack::json_to_msgpack_with_attachments(message_json, attachments, &mut payload)?;
    Ok(payload)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_queued_event_becomes_upstreams_message_json() {
        let suffix = own_json_suffix("Ab1", "/chät");
        assert_eq!(
            broadcast_message_json(
                r#"["ev",{"a":[1]}]"#,
                r#"{"rooms":["r"],"except":[],"flags":{}}"#,
                &suffix
            ),
            r#"{"type":3,"data":{"packet":{"type":2,"data":["ev",{"a":[1]}]},"opts":{"rooms":["r"],"except":[],"flags":{}}},"uid":"Ab1","nsp":"/chät"}"#
        );
    }

    #[test]
    fn own_json_messages_are_told_by_their_last_members() {
        let ns = Namespace {
            name: "/chat".into(),
            uid: "u1".into(),
            channels: ShardedChannels::new("p", "/chat", "u1"),
            rooms: HashMap::new(),
            wire_text: false,
            own_json_suffix: own_json_suffix("u1", "/chat"),
        };
        let ours = br#"{"type":3,"data":{"packet":{"type":2,"data":[1]},"opts":{}},"uid":"u1","nsp":"/chat"}"#;
        assert!(ns.is_own_json(ours));
        // Another node, another namespace, the same members nested, MessagePack.
        for other in [
            &br#"{"type":3,"data":{},"uid":"u2","nsp":"/chat"}"#[..],
            br#"{"type":3,"data":{},"uid":"u1","nsp":"/"}"#,
            br#"{"type":3,"data":{"x":{"uid":"u1","nsp":"/chat"}},"uid":"u2","nsp":"/chat"}"#,
            br#"{"type":3,"data":{"x":{"uid":"u1","nsp":"/chat"}}}"#,
            b"\x84\xa3uid",
        ] {
            assert!(!ns.is_own_json(other));
        }
    }

    #[test]
    fn channel_names_match_the_official_adapter() {
        let c = ShardedChannels::new("socket.io", "/", "db62b89f32ac9397");
        assert_eq!(c.main, "socket.io#/#");
        assert_eq!(c.response, "socket.io#/#db62b89f32ac9397#");
        assert_eq!(c.publish_channel(Some("room1")), "socket.io#/#room1#");
        assert_eq!(c.publish_channel(None), "socket.io#/#");
        assert_eq!(
            c.response_channel_of("4cbe5598dd18f676"),
            "socket.io#/#4cbe5598dd18f676#"
        );
        let custom = ShardedChannels::new("my-app", "/admin", "u");
        assert_eq!(custom.publish_channel(Some("r")), "my-app#/admin#r#");
    }
}
