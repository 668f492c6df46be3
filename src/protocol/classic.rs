//! The classic adapter protocol of @socket.io/redis-adapter 8.3 (PROTOCOL.md section 2):
//! channel names, which incoming message goes where, which ones a node ignores, and the
//! request/response flows whose correlation happens here rather than in JS.

use super::broadcast_batch::{self, BatchOutcome};
use super::delivery::DeliverySink;
use super::requests::{uid2, AnswerMap, Outcome, RequestRegistry};
use crate::codec::msgpack;
use crate::connection::Subscription;
use crate::transport::Transport;
use redis::RedisResult;
use std::collections::HashSet;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, OnceLock};
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

mod router;

use router::Namespace;
pub use router::{ClassicRouter, RouterStats};

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

    /// See [`DeliveryKind::EventText`](crate::protocol::delivery::DeliveryKind::EventText):
    /// set by JS once it knows its server's encoder.
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
