//! The classic adapter protocol of @socket.io/redis-adapter 8.3 (PROTOCOL.md section 2):
//! channel names, which incoming message goes where, which ones a node ignores, and the
//! request/response flows whose correlation happens here rather than in JS.

use super::broadcast_batch::{self, BatchOutcome};
use super::delivery::{push_event_wire, DeliveryKind, DeliverySink, FrameBatch};
use super::header::{peek_json_request_id, read_header};
use super::requests::{uid2, AnswerMap, Outcome, RequestRegistry};
use crate::codec::msgpack;
use crate::connection::{ConnectionEvent, MessageHandler, PubSubMessage, Subscription};
use crate::transport::Transport;
use redis::RedisResult;
use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock, RwLock};
use std::time::Duration;

const SOCKETS: i64 = 0;
const ALL_ROOMS: i64 = 1;
const REMOTE_FETCH: i64 = 5;
const SERVER_SIDE_EMIT: i64 = 6;
const BROADCAST: i64 = 7;

#[derive(Debug, Clone)]
pub struct ClassicSettings {
    /// The `key` option, `P` in the protocol document.
    pub key: String,
    pub uid: String,
    pub publish_on_specific_response_channel: bool,
    /// With the default (notepack) parser the broadcast envelope can be inspected here;
    /// with a custom parser only JS can decode it.
    pub default_parser: bool,
}

impl ClassicSettings {
    pub fn new(
        key: &str,
        publish_on_specific_response_channel: bool,
        default_parser: bool,
    ) -> Self {
        Self {
            key: if key.is_empty() {
                "socket.io".into()
            } else {
                key.into()
            },
            uid: uid2(6),
            publish_on_specific_response_channel,
            default_parser,
        }
    }
}

/// The channels of one namespace (PROTOCOL.md 2.2).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NamespaceChannels {
    pub broadcast_prefix: String,
    pub pattern: String,
    pub request: String,
    pub response: String,
    pub specific_response: String,
}

impl NamespaceChannels {
    pub fn new(key: &str, nsp: &str, uid: &str) -> Self {
        let broadcast_prefix = format!("{key}#{nsp}#");
        Self {
            pattern: format!("{broadcast_prefix}*"),
            broadcast_prefix,
            request: format!("{key}-request#{nsp}#"),
            response: format!("{key}-response#{nsp}#"),
            specific_response: format!("{key}-response#{nsp}#{uid}#"),
        }
    }

    pub fn broadcast_channel(&self, room: Option<&str>) -> String {
        match room {
            Some(room) => format!("{}{room}#", self.broadcast_prefix),
            None => self.broadcast_prefix.clone(),
        }
    }

    fn subscriptions(&self) -> Vec<Subscription> {
        vec![
            Subscription::Pattern(self.pattern.clone()),
            Subscription::Channel(self.request.clone()),
            Subscription::Channel(self.response.clone()),
            Subscription::Channel(self.specific_response.clone()),
        ]
    }
}

struct Namespace {
    name: String,
    channels: NamespaceChannels,
    /// Local rooms, as `String(room)`: lets broadcasts for rooms without local members be
    /// dropped before any JS runs.
    rooms: HashSet<String>,
    /// The Socket.IO server of this namespace encodes packets with the default
    /// socket.io-parser, so broadcasts can be handed over as the text its clients receive.
    wire_text: bool,
}

#[derive(Default)]
/// Channels and patterns are looked up by their bytes as Redis sends them (no UTF-8 check
/// per message).
struct Routes {
    namespaces: HashMap<u32, Namespace>,
    by_pattern: HashMap<Vec<u8>, u32>,
    by_request: HashMap<Vec<u8>, u32>,
    by_response: HashMap<Vec<u8>, u32>,
}

#[derive(Debug, Default)]
pub struct RouterStats {
    pub received: AtomicU64,
    pub received_bytes: AtomicU64,
    pub delivered: AtomicU64,
    /// Of `delivered`: handed over as the text socket.io sends (no JS decode or encode).
    pub delivered_as_text: AtomicU64,
    pub skipped_no_local_room: AtomicU64,
    pub skipped_own: AtomicU64,
    pub skipped_foreign: AtomicU64,
    pub decode_errors: AtomicU64,
    pub responses_matched: AtomicU64,
    pub reconnects: AtomicU64,
}

/// Routes incoming messages; shared by the subscriber task and the core.
pub struct ClassicRouter {
    settings: ClassicSettings,
    routes: RwLock<Routes>,
    registry: RequestRegistry,
    sink: Arc<dyn DeliverySink>,
    stats: RouterStats,
}

fn bump(counter: &AtomicU64) {
    counter.fetch_add(1, Ordering::Relaxed);
}

impl ClassicRouter {
    pub fn new(settings: ClassicSettings, sink: Arc<dyn DeliverySink>) -> Self {
        Self {
            settings,
            routes: RwLock::new(Routes::default()),
            registry: RequestRegistry::default(),
            sink,
            stats: RouterStats::default(),
        }
    }

    pub fn stats(&self) -> &RouterStats {
        &self.stats
    }

    fn log(&self, batch: &mut FrameBatch, ns: u32, line: String) {
        batch.push(DeliveryKind::Log, ns, line.as_bytes());
    }

    fn route(&self, routes: &Routes, msg: &PubSubMessage<'_>, batch: &mut FrameBatch) {
        let payload = msg.payload;
        bump(&self.stats.received);
        self.stats
            .received_bytes
            .fetch_add(payload.len() as u64, Ordering::Relaxed);
        let channel = msg.channel;
        if let Some(pattern) = msg.pattern {
            if let Some(&id) = routes.by_pattern.get(pattern) {
                self.route_broadcast(id, &routes.namespaces[&id], channel, payload, batch);
            }
        } else if let Some(&id) = routes.by_request.get(channel) {
            self.route_request(id, payload, batch);
        } else if let Some(&id) = routes.by_response.get(channel) {
            self.route_response(id, payload, batch);
        } else {
            bump(&self.stats.skipped_foreign);
        }
    }

    fn route_broadcast(
        &self,
        id: u32,
        ns: &Namespace,
        channel: &[u8],
        payload: &[u8],
        batch: &mut FrameBatch,
    ) {
        // The pattern may match channels of other namespaces when names contain glob chars.
        let Some(rest) = channel.strip_prefix(ns.channels.broadcast_prefix.as_bytes()) else {
            bump(&self.stats.skipped_foreign);
            return;
        };
        let Ok(room) = std::str::from_utf8(rest.strip_suffix(b"#").unwrap_or(rest)) else {
            bump(&self.stats.skipped_foreign);
            return;
        };
        if !room.is_empty() && !ns.rooms.contains(room) {
            bump(&self.stats.skipped_no_local_room);
            return;
        }
        if self.settings.default_parser {
            if msgpack::peek_envelope_uid(payload) == Some(self.settings.uid.as_str()) {
                bump(&self.stats.skipped_own);
                return;
            }
            match msgpack::read_broadcast_envelope(payload) {
                Ok(env) => {
                    if env.uid == self.settings.uid {
                        bump(&self.stats.skipped_own);
                        return;
                    }
                    if env.packet_nsp.is_some_and(|nsp| nsp != ns.name) {
                        bump(&self.stats.skipped_foreign);
                        return;
                    }
                    // Several target rooms, none of them here: nothing to deliver.
                    if room.is_empty()
                        && !env.rooms.is_empty()
                        && !env
                            .rooms
                            .iter()
                            .any(|r| ns.rooms.contains(r.to_js_string().as_ref()))
                    {
                        bump(&self.stats.skipped_no_local_room);
                        return;
                    }
                    // A missing packet.nsp means "/" to a JS receiver, which drops it elsewhere.
                    if ns.wire_text
                        && env.packet_nsp.unwrap_or("/") == ns.name
                        && push_event_wire(&env, &ns.name, id, batch)
                    {
                        bump(&self.stats.delivered);
                        bump(&self.stats.delivered_as_text);
                        return;
                    }
                }
                Err(e) => {
                    bump(&self.stats.decode_errors);
                    self.log(
                        batch,
                        id,
                        format!(
                            "skipped a malformed broadcast on {}: {e}",
                            String::from_utf8_lossy(channel)
                        ),
                    );
                    return;
                }
            }
        }
        bump(&self.stats.delivered);
        batch.push(DeliveryKind::Broadcast, id, payload);
    }

    fn route_request(&self, id: u32, payload: &[u8], batch: &mut FrameBatch) {
        let header = match read_header(payload) {
            Ok(h) => h,
            Err(e) => {
                bump(&self.stats.decode_errors);
                self.log(batch, id, format!("skipped a malformed request: {e}"));
                return;
            }
        };
        let request_id = header.request_id.as_deref().unwrap_or("");
        let own = match header.msg_type {
            Some(SOCKETS | ALL_ROOMS | REMOTE_FETCH) => self.registry.is_pending(request_id),
            Some(BROADCAST) => self.registry.is_ack_request(request_id),
            Some(SERVER_SIDE_EMIT) => header.uid.as_deref() == Some(self.settings.uid.as_str()),
            Some(_) => false,
            None => {
                bump(&self.stats.decode_errors);
                self.log(batch, id, "skipped a request without a numeric type".into());
                return;
            }
        };
        if own {
            bump(&self.stats.skipped_own);
            return;
        }
        bump(&self.stats.delivered);
        batch.push(DeliveryKind::Request, id, payload);
    }

    fn route_response(&self, id: u32, payload: &[u8], batch: &mut FrameBatch) {
        // Most answers are other nodes' (the common channel) or plain answers to a pending
        // request, whose reader (JS, or codec::fetch_sockets) validates them: no whole read.
        if let Some(request_id) = peek_json_request_id(payload) {
            if !self.registry.is_ack_request(request_id) {
                if self.registry.add_response(request_id, payload) {
                    bump(&self.stats.responses_matched);
                } else {
                    bump(&self.stats.skipped_foreign);
                }
                return;
            }
        }
        let header = match read_header(payload) {
            Ok(h) => h,
            Err(e) => {
                bump(&self.stats.decode_errors);
                self.log(batch, id, format!("skipped a malformed response: {e}"));
                return;
            }
        };
        let Some(request_id) = header.request_id.as_deref() else {
            bump(&self.stats.decode_errors);
            return;
        };
        if self.registry.is_ack_request(request_id) {
            bump(&self.stats.delivered);
            batch.push(DeliveryKind::AckResponse, id, payload);
        } else if self.registry.add_response(request_id, payload) {
            bump(&self.stats.responses_matched);
        } else {
            // An answer to another node's request, or a late one.
            bump(&self.stats.skipped_foreign);
        }
    }
}

impl MessageHandler for ClassicRouter {
    fn on_messages(&self, msgs: &[PubSubMessage<'_>]) {
        let mut batch = FrameBatch::default();
        {
            let routes = self.routes.read().unwrap();
            for msg in msgs {
                self.route(&routes, msg, &mut batch);
            }
        }
        batch.flush_to(&*self.sink);
    }

    fn on_connection_event(&self, event: ConnectionEvent) {
        let text = match event {
            ConnectionEvent::Connected { reconnected: false } => "connected".to_string(),
            ConnectionEvent::Connected { reconnected: true } => {
                bump(&self.stats.reconnects);
                "reconnected".to_string()
            }
            ConnectionEvent::Disconnected { reason } => format!("disconnected: {reason}"),
        };
        let mut batch = FrameBatch::default();
        batch.push(DeliveryKind::Connection, 0, text.as_bytes());
        batch.flush_to(&*self.sink);
    }
}

/// The options `{rooms, except, flags}` of an envelope written from JSON data.
#[derive(Debug, Clone, Copy)]
enum EnvelopeOptions<'a> {
    /// No rooms, except or flags.
    None,
    /// `io.to(room)`: that room, nothing else.
    OneRoom(&'a str),
    /// Their JSON text.
    Json(&'a str),
}

/// One classic-adapter node: all namespaces created by one `createAdapter()` call share it,
/// as they share the official adapter's pub and sub clients.
pub struct ClassicCore<T: Transport> {
    router: Arc<ClassicRouter>,
    transport: OnceLock<T>,
    next_namespace: AtomicU32,
}

impl<T: Transport> ClassicCore<T> {
    /// The transport is attached afterwards because it needs the router as its handler.
    pub fn new(settings: ClassicSettings, sink: Arc<dyn DeliverySink>) -> Self {
        Self {
            router: Arc::new(ClassicRouter::new(settings, sink)),
            transport: OnceLock::new(),
            next_namespace: AtomicU32::new(1),
        }
    }

    pub fn router(&self) -> Arc<ClassicRouter> {
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

    pub fn settings(&self) -> &ClassicSettings {
        &self.router.settings
    }

    pub fn registry(&self) -> &RequestRegistry {
        &self.router.registry
    }

    /// Registers a namespace's routes at once; `subscribe_namespace` then subscribes.
    pub fn add_namespace(&self, name: &str) -> u32 {
        let id = self.next_namespace.fetch_add(1, Ordering::Relaxed);
        let channels = NamespaceChannels::new(&self.settings().key, name, &self.settings().uid);
        let mut routes = self.router.routes.write().unwrap();
        routes
            .by_pattern
            .insert(channels.pattern.clone().into_bytes(), id);
        routes
            .by_request
            .insert(channels.request.clone().into_bytes(), id);
        routes
            .by_response
            .insert(channels.response.clone().into_bytes(), id);
        routes
            .by_response
            .insert(channels.specific_response.clone().into_bytes(), id);
        routes.namespaces.insert(
            id,
            Namespace {
                name: name.to_string(),
                channels,
                rooms: HashSet::new(),
                wire_text: false,
            },
        );
        id
    }

    /// See [`DeliveryKind::EventText`]: set by JS once it knows its server's encoder.
    pub fn set_wire_text(&self, id: u32, enabled: bool) {
        if let Some(ns) = self.router.routes.write().unwrap().namespaces.get_mut(&id) {
            ns.wire_text = enabled;
        }
    }

    fn channels(&self, id: u32) -> Option<NamespaceChannels> {
        let routes = self.router.routes.read().unwrap();
        routes.namespaces.get(&id).map(|ns| ns.channels.clone())
    }

    fn unknown(id: u32) -> redis::RedisError {
        redis::RedisError::from((
            redis::ErrorKind::Client,
            "unknown or closed namespace",
            id.to_string(),
        ))
    }

    pub async fn subscribe_namespace(&self, id: u32) -> RedisResult<()> {
        let channels = self.channels(id).ok_or_else(|| Self::unknown(id))?;
        self.transport().subscribe(channels.subscriptions()).await
    }

    /// Unsubscribes and forgets the namespace. Returns whether namespaces remain.
    pub async fn remove_namespace(&self, id: u32) -> RedisResult<bool> {
        let (channels, remaining) = {
            let mut routes = self.router.routes.write().unwrap();
            let Some(ns) = routes.namespaces.remove(&id) else {
                return Ok(!routes.namespaces.is_empty());
            };
            routes.by_pattern.remove(ns.channels.pattern.as_bytes());
            routes.by_request.remove(ns.channels.request.as_bytes());
            routes.by_response.remove(ns.channels.response.as_bytes());
            routes
                .by_response
                .remove(ns.channels.specific_response.as_bytes());
            (ns.channels, !routes.namespaces.is_empty())
        };
        self.transport()
            .unsubscribe(channels.subscriptions())
            .await?;
        Ok(remaining)
    }

    pub fn add_room(&self, id: u32, room: &str) {
        if let Some(ns) = self.router.routes.write().unwrap().namespaces.get_mut(&id) {
            ns.rooms.insert(room.to_string());
        }
    }

    pub fn remove_room(&self, id: u32, room: &str) {
        if let Some(ns) = self.router.routes.write().unwrap().namespaces.get_mut(&id) {
            ns.rooms.remove(room);
        }
    }

    /// PUBLISH an encoded envelope on `P#N#` or `P#N#R#`. Queued only: the JS layer calls
    /// [`ClassicCore::flush`] once per event-loop turn, so a burst is one pipelined write.
    pub fn broadcast(&self, id: u32, room: Option<&str>, payload: Vec<u8>) -> bool {
        let channel = {
            let routes = self.router.routes.read().unwrap();
            match routes.namespaces.get(&id) {
                Some(ns) => ns.channels.broadcast_channel(room),
                None => return false,
            }
        };
        self.transport().publish_deferred(channel, payload)
    }

    /// As [`ClassicCore::broadcast`] for an EVENT whose `data` JS serialized with
    /// `JSON.stringify` (only plain JSON values, checked in JS): the envelope
    /// `[uid, {type: 2, data, nsp}, opts]` is written here, byte-identical to notepack's.
    /// `opts_json`: `{rooms, except, flags}` as JSON, `None` for no rooms, except or flags.
    /// `Ok(false)`: refused (buffer full, unknown namespace); `Err`: not transcodable.
    pub fn broadcast_json(
        &self,
        id: u32,
        room: Option<&str>,
        data_json: &str,
        opts_json: Option<&str>,
    ) -> Result<bool, msgpack::TranscodeError> {
        self.broadcast_json_attachments(id, room, data_json, opts_json, &[])
    }

    /// [`ClassicCore::broadcast_json`] for an EVENT whose data holds Buffers: `data_json` is
    /// `JSON.stringify` of the data with socket.io-parser's placeholders in their place, and
    /// `attachments` their bytes (see `msgpack::json_to_msgpack_with_attachments`).
    pub fn broadcast_json_attachments(
        &self,
        id: u32,
        room: Option<&str>,
        data_json: &str,
        opts_json: Option<&str>,
        attachments: &[&[u8]],
    ) -> Result<bool, msgpack::TranscodeError> {
        let Some((channel, nsp)) = self.broadcast_route(id, room) else {
            return Ok(false);
        };
        let envelope = self.json_envelope(&nsp, data_json, opts_json, attachments)?;
        Ok(self.transport().publish_deferred(channel, envelope))
    }

    /// [`ClassicCore::broadcast_json`] for the broadcasts JS queued during one event-loop
    /// turn (see [`broadcast_batch`]), queued under one lock, in order. A record that cannot
    /// be read or transcoded is skipped with its reason in the outcome. `attachments`: the
    /// bytes the records' Buffers are in.
    pub fn broadcast_json_batch(&self, batch: &str, attachments: &[u8]) -> BatchOutcome {
        // One read lock for the batch: the namespaces' channels and names are borrowed.
        let routes = self.router.routes.read().unwrap();
        let transport = self.transport();
        broadcast_batch::queue_records_bundled(batch, attachments, transport, |queued, bundle| {
            let Some(ns) = routes.namespaces.get(&queued.ns) else {
                return Ok(false);
            };
            let prefix = ns.channels.broadcast_prefix.as_bytes();
            let channel: &[&[u8]] = match queued.room.as_deref() {
                Some(room) => &[prefix, room.as_bytes(), b"#"],
                None => &[prefix],
            };
            let opts = match (queued.opts_json, queued.room.as_deref()) {
                (Some(broadcast_batch::ONE_ROOM), Some(room)) => EnvelopeOptions::OneRoom(room),
                (Some(broadcast_batch::ONE_ROOM), None) => {
                    return Err("one-room options without a room".into())
                }
                (Some(json), _) => EnvelopeOptions::Json(json),
                (None, _) => EnvelopeOptions::None,
            };
            bundle
                .push(channel, |out| {
                    let data = queued.data_json;
                    self.write_json_envelope(out, &ns.name, data, opts, &queued.attachments)
                })
                .map(|()| true)
                .map_err(|e| format!("queued broadcast not transcodable: {e}"))
        })
    }

    /// The channel of a broadcast to `room` (or to all) and the namespace's name.
    fn broadcast_route(&self, id: u32, room: Option<&str>) -> Option<(String, String)> {
        let routes = self.router.routes.read().unwrap();
        let ns = routes.namespaces.get(&id)?;
        Some((ns.channels.broadcast_channel(room), ns.name.clone()))
    }

    /// The envelope `[uid, {type: 2, data, nsp}, opts]` of an EVENT whose `data` JS serialized
    /// with `JSON.stringify`, byte-identical to notepack's. `opts_json`: `{rooms, except,
    /// flags}` as JSON, `None` for no rooms, except or flags.
    fn json_envelope(
        &self,
        nsp: &str,
        data_json: &str,
        opts_json: Option<&str>,
        attachments: &[&[u8]],
    ) -> Result<Vec<u8>, msgpack::TranscodeError> {
        let mut out = Vec::with_capacity(data_json.len() + nsp.len() + 64);
        let opts = opts_json.map_or(EnvelopeOptions::None, EnvelopeOptions::Json);
        self.write_json_envelope(&mut out, nsp, data_json, opts, attachments)?;
        Ok(out)
    }

    /// [`Self::json_envelope`] appended to `out`.
    fn write_json_envelope(
        &self,
        out: &mut Vec<u8>,
        nsp: &str,
        data_json: &str,
        opts: EnvelopeOptions<'_>,
        attachments: &[&[u8]],
    ) -> Result<(), msgpack::TranscodeError> {
        /// `{rooms: [], except: [], flags: {}}` as notepack encodes it.
        const NO_OPTS: &[u8] = b"\x83\xa5rooms\x90\xa6except\x90\xa5flags\x80";
        let uid = &self.settings().uid;
        let mut w = msgpack::Writer::from_vec(std::mem::take(out));
        w.write_array_len(3);
        w.write_str(uid);
        w.write_map_len(3);
        w.write_str("type");
        w.write_u64(2);
        w.write_str("data");
        let mut buf = w.into_inner();
        if attachments.is_empty() {
            msgpack::json_to_msgpack(data_json, &mut buf)?;
        } else {
            msgpack::json_to_msgpack_with_attachments(data_json, attachments, &mut buf)?;
        }
        let mut w = msgpack::Writer::from_vec(buf);
        w.write_str("nsp");
        w.write_str(nsp);
        match opts {
            EnvelopeOptions::None => w.write_raw(NO_OPTS),
            EnvelopeOptions::OneRoom(room) => {
                w.write_map_len(3);
                w.write_str("rooms");
                w.write_array_len(1);
                w.write_str(room);
                w.write_raw(b"\xa6except\x90\xa5flags\x80");
            }
            EnvelopeOptions::Json(json) => {
                *out = w.into_inner();
                return msgpack::json_to_msgpack(json, out);
            }
        }
        *out = w.into_inner();
        Ok(())
    }

    pub fn flush(&self) {
        self.transport().flush();
    }

    /// A request nobody answers (socketsJoin/Leave, disconnectSockets, serverSideEmit).
    pub fn publish_request(&self, id: u32, payload: Vec<u8>) -> bool {
        match self.channels(id) {
            Some(channels) => self.transport().publish(channels.request, payload),
            None => false,
        }
    }

    /// Answers a request on the requester's channel when this node is configured so, else on
    /// the common one. `common_only`: the serverSideEmit ack always uses the common channel.
    pub fn publish_response(
        &self,
        id: u32,
        requester_uid: Option<&str>,
        payload: Vec<u8>,
        common_only: bool,
    ) -> bool {
        let Some(channels) = self.channels(id) else {
            return false;
        };
        let channel = match requester_uid {
            Some(uid) if self.settings().publish_on_specific_response_channel && !common_only => {
                format!("{}{uid}#", channels.response)
            }
            _ => channels.response,
        };
        self.transport().publish(channel, payload)
    }

    /// `PUBSUB NUMSUB P-request#N#`: every node subscribes exactly once per namespace.
    pub async fn server_count(&self, id: u32) -> RedisResult<i64> {
        let channels = self.channels(id).ok_or_else(|| Self::unknown(id))?;
        self.transport().count_listeners(&channels.request).await
    }

    /// Publishes a request that every other node answers and collects the answers. The nodes
    /// are counted (`PUBSUB NUMSUB`) right before the publish, in the same round trip where the
    /// transport allows; answers arriving before the count is known are kept.
    pub async fn request(
        &self,
        id: u32,
        request_id: &str,
        payload: Vec<u8>,
        timeout: Duration,
    ) -> RedisResult<Outcome> {
        self.request_mapped(id, request_id, payload, timeout, None)
            .await
    }

    /// [`Self::request`], each answer turned by `map` as it arrives.
    pub async fn request_mapped(
        &self,
        id: u32,
        request_id: &str,
        payload: Vec<u8>,
        timeout: Duration,
        map: Option<AnswerMap>,
    ) -> RedisResult<Outcome> {
        let channels = self.channels(id).ok_or_else(|| Self::unknown(id))?;
        let waiter = self.registry().register_mapped(request_id, usize::MAX, map);
        let listeners = self
            .transport()
            .count_and_publish(channels.request, payload)
            .await?;
        // Every node subscribes once per namespace, this one included.
        let expected = (listeners - 1).max(0) as usize;
        self.registry().set_expected(request_id, expected);
        Ok(waiter.wait(timeout).await)
    }

    /// A broadcast with acks: answers are forwarded to JS until `timeout` elapses.
    pub fn ack_request(
        &self,
        id: u32,
        request_id: &str,
        payload: Vec<u8>,
        timeout: Duration,
    ) -> bool
    where
        Self: Sized,
    {
        let Some(channels) = self.channels(id) else {
            return false;
        };
        self.registry().register_ack(request_id);
        let router = self.router.clone();
        let request_id = request_id.to_string();
        tokio::spawn(async move {
            tokio::time::sleep(timeout).await;
            router.registry.remove_ack(&request_id);
        });
        self.transport().publish(channels.request, payload)
    }

    pub fn shutdown(&self) {
        if let Some(t) = self.transport.get() {
            t.shutdown();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn channel_names_match_the_official_adapter() {
        let c = NamespaceChannels::new("socket.io", "/", "MwqrMp");
        assert_eq!(c.pattern, "socket.io#/#*");
        assert_eq!(c.broadcast_channel(Some("room1")), "socket.io#/#room1#");
        assert_eq!(c.broadcast_channel(None), "socket.io#/#");
        assert_eq!(c.request, "socket.io-request#/#");
        assert_eq!(c.response, "socket.io-response#/#");
        assert_eq!(c.specific_response, "socket.io-response#/#MwqrMp#");
    }

    struct NoSink;
    impl DeliverySink for NoSink {
        fn deliver(&self, _frames: Vec<u8>) {}
    }

    #[test]
    fn one_room_options_are_written_as_their_json_would_be_transcoded() {
        let core = ClassicCore::<crate::transport::PubSubTransport>::new(
            ClassicSettings::new("socket.io", false, true),
            Arc::new(NoSink),
        );
        let long = "ü".repeat(200); // str16 in MessagePack
        for room in [
            "r",
            "room with \"quotes\" é",
            "0123456789012345678901234567890123",
            &long,
        ] {
            let room_json = serde_json::to_string(room).unwrap();
            let json = format!(r#"{{"rooms":[{room_json}],"except":[],"flags":{{}}}}"#);
            let expected = core
                .json_envelope("/chat", "[\"ev\",1]", Some(&json), &[])
                .unwrap();
            let mut out = Vec::new();
            let opts = EnvelopeOptions::OneRoom(room);
            core.write_json_envelope(&mut out, "/chat", "[\"ev\",1]", opts, &[])
                .unwrap();
            assert_eq!(out, expected, "{room}");
        }
    }

    #[test]
    fn empty_key_falls_back_to_default() {
        assert_eq!(ClassicSettings::new("", false, true).key, "socket.io");
    }
}
