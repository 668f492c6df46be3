//! The receiving side of a classic node: which incoming message goes to which namespace, which
//! ones it ignores (its own, rooms without local members, other namespaces), and the answers
//! to requests, correlated here rather than in JS.

use super::{
    ClassicSettings, NamespaceChannels, ALL_ROOMS, BROADCAST, REMOTE_FETCH, SERVER_SIDE_EMIT,
    SOCKETS,
};
use crate::codec::msgpack;
use crate::connection::{ConnectionEvent, MessageHandler, PubSubMessage};
use crate::protocol::delivery::{
    deliver_connection_event, push_event_wire, route_messages, DeliveryKind, DeliverySink,
    FrameBatch,
};
use crate::protocol::header::{peek_json_request_id, read_header};
use crate::protocol::requests::RequestRegistry;
use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};

pub(super) struct Namespace {
    pub(super) name: String,
    pub(super) channels: NamespaceChannels,
    /// Local rooms, as `String(room)`: lets broadcasts for rooms without local members be
    /// dropped before any JS runs.
    pub(super) rooms: HashSet<String>,
    /// The Socket.IO server of this namespace encodes packets with the default
    /// socket.io-parser, so broadcasts can be handed over as the text its clients receive.
    pub(super) wire_text: bool,
}

#[derive(Default)]
/// Channels and patterns are looked up by their bytes as Redis sends them (no UTF-8 check
/// per message).
pub(super) struct Routes {
    pub(super) namespaces: HashMap<u32, Namespace>,
    pub(super) by_pattern: HashMap<Vec<u8>, u32>,
    pub(super) by_request: HashMap<Vec<u8>, u32>,
    pub(super) by_response: HashMap<Vec<u8>, u32>,
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
    pub(super) settings: ClassicSettings,
    pub(super) routes: RwLock<Routes>,
    pub(super) registry: RequestRegistry,
    pub(super) sink: Arc<dyn DeliverySink>,
    pub(super) stats: RouterStats,
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
        route_messages(&*self.sink, &self.routes, msgs, |routes, msg, batch| {
            self.route(routes, msg, batch)
        });
    }

    fn on_connection_event(&self, event: ConnectionEvent) {
        deliver_connection_event(&*self.sink, event, Some(&self.stats.reconnects));
    }
}
