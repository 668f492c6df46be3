//! What crosses from Rust to JS: many messages framed into one buffer per call, because a
//! threadsafe-function call costs 2-3 µs while a framed message costs about 0.2 µs.
//!
//! Frame: `kind: u8, namespace: u32 LE, length: u32 LE, payload`.

use crate::codec::msgpack::{self, EventWire, RoomRef};
use crate::connection::{ConnectionEvent, PubSubMessage};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum DeliveryKind {
    /// A broadcast envelope to apply to local sockets.
    Broadcast = 1,
    /// A request (join/leave/disconnect/fetch/server-side emit/broadcast with ack...) to answer.
    Request = 2,
    /// A client count or client ack for one of our broadcasts with ack: JS holds the callbacks.
    AckResponse = 3,
    /// Connection state change (UTF-8 text).
    Connection = 4,
    /// Something was skipped or failed: a line for the `debug` logger (UTF-8 text).
    Log = 5,
    /// A broadcast EVENT already turned into the text socket.io writes to its clients:
    /// `mode: u8` (see [`EventTargets`]), `opts_len: u32 LE`, the options, `head_len: u8`,
    /// the WebSocket frame header of an Engine.IO message carrying the text, `"4"`, then
    /// the text (UTF-8).
    EventText = 6,
    /// A broadcast EVENT with binary values, as socket.io writes it to its clients: `mode`,
    /// `opts_len` and the options as for [`DeliveryKind::EventText`], `text_len: u32 LE`, the
    /// BINARY_EVENT text (placeholders for the binary values), `count: u32 LE`, then each
    /// attachment as `len: u32 LE` and its bytes.
    EventBinary = 9,
}

pub trait DeliverySink: Send + Sync + 'static {
    fn deliver(&self, frames: Vec<u8>);
}

/// Accumulates frames for one hand-over.
#[derive(Default)]
pub struct FrameBatch {
    buf: Vec<u8>,
}

impl FrameBatch {
    pub fn push(&mut self, kind: DeliveryKind, namespace: u32, payload: &[u8]) {
        self.push_parts(kind, namespace, &[payload]);
    }

    /// One frame whose payload is the concatenation of `parts` (no intermediate buffer).
    pub fn push_parts(&mut self, kind: DeliveryKind, namespace: u32, parts: &[&[u8]]) {
        self.push_kind_parts(kind as u8, namespace, parts);
    }

    /// A frame of a kind one adapter defines for itself (the streams adapter's entries).
    pub fn push_raw(&mut self, kind: u8, namespace: u32, payload: &[u8]) {
        self.push_kind_parts(kind, namespace, &[payload]);
    }

    fn push_kind_parts(&mut self, kind: u8, namespace: u32, parts: &[&[u8]]) {
        let len: usize = parts.iter().map(|p| p.len()).sum();
        self.buf.reserve(9 + len);
        self.buf.push(kind);
        self.buf.extend_from_slice(&namespace.to_le_bytes());
        self.buf.extend_from_slice(&(len as u32).to_le_bytes());
        for part in parts {
            self.buf.extend_from_slice(part);
        }
    }

    /// One frame whose payload `write` appends to the batch's buffer; false, and nothing
    /// pushed, when `write` returns false (it must then leave the buffer as it found it).
    pub fn push_with(
        &mut self,
        kind: DeliveryKind,
        namespace: u32,
        write: impl FnOnce(&mut Vec<u8>) -> bool,
    ) -> bool {
        let start = self.buf.len();
        self.buf.push(kind as u8);
        self.buf.extend_from_slice(&namespace.to_le_bytes());
        self.buf.extend_from_slice(&[0; 4]);
        let body = self.buf.len();
        if !write(&mut self.buf) {
            self.buf.truncate(start);
            return false;
        }
        let len = (self.buf.len() - body) as u32;
        self.buf[body - 4..body].copy_from_slice(&len.to_le_bytes());
        true
    }

    /// One [`DeliveryKind::EventText`] frame (see [`write_event_text`]).
    pub fn push_event_text(&mut self, namespace: u32, targets: EventTargets<'_>, text: &[&[u8]]) {
        let len = event_text_len(targets, text);
        self.buf.reserve(9 + len);
        self.buf.push(DeliveryKind::EventText as u8);
        self.buf.extend_from_slice(&namespace.to_le_bytes());
        self.buf.extend_from_slice(&(len as u32).to_le_bytes());
        write_event_text(&mut self.buf, targets, text);
    }

    /// One [`DeliveryKind::EventBinary`] frame (see [`write_event_binary`]).
    pub fn push_event_binary(
        &mut self,
        namespace: u32,
        targets: EventTargets<'_>,
        text: &str,
        attachments: &[&[u8]],
    ) {
        let len = event_binary_len(targets, text, attachments);
        self.buf.reserve(9 + len);
        self.buf.push(DeliveryKind::EventBinary as u8);
        self.buf.extend_from_slice(&namespace.to_le_bytes());
        self.buf.extend_from_slice(&(len as u32).to_le_bytes());
        write_event_binary(&mut self.buf, targets, text, attachments);
    }

    pub fn is_empty(&self) -> bool {
        self.buf.is_empty()
    }

    pub fn bytes(&self) -> &[u8] {
        &self.buf
    }

    pub fn into_bytes(self) -> Vec<u8> {
        self.buf
    }

    pub fn flush_to(&mut self, sink: &dyn DeliverySink) {
        if !self.buf.is_empty() {
            sink.deliver(std::mem::take(&mut self.buf));
        }
    }
}

/// Which local sockets an [`DeliveryKind::EventText`] broadcast is for: its `mode` byte and
/// what its options field holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventTargets<'a> {
    /// Mode 0: every socket of the namespace (no rooms, no except, no flags); no options.
    All,
    /// Mode 1: the options as JSON, `{rooms, except, flags}`.
    Json(&'a str),
    /// Mode 2: the sockets of one room (a string), no except, no flags; the room name.
    /// The usual `io.to(room).emit()`, without a JSON parse on the receiving event loop.
    Room(&'a str),
}

impl<'a> From<Option<&'a str>> for EventTargets<'a> {
    /// The targets an options JSON (`JSON.stringify` of `{rooms, except, flags}`) gives:
    /// every socket without one, [`EventTargets::Room`] for exactly one room (a string with
    /// nothing JSON escapes), nothing excepted and no flags, else the JSON itself.
    fn from(opts: Option<&'a str>) -> Self {
        let Some(json) = opts else {
            return EventTargets::All;
        };
        let room = json
            .strip_prefix(r#"{"rooms":[""#)
            .and_then(|rest| rest.strip_suffix(r#""],"except":[],"flags":{}}"#))
            .filter(|room| !room.bytes().any(|b| b == b'"' || b == b'\\' || b < 0x20));
        room.map_or(EventTargets::Json(json), EventTargets::Room)
    }
}

impl EventTargets<'_> {
    fn mode_and_field(&self) -> (u8, &str) {
        match *self {
            EventTargets::All => (0, ""),
            EventTargets::Json(json) => (1, json),
            EventTargets::Room(room) => (2, room),
        }
    }
}

/// Set in the `mode` byte of [`write_event_text`]'s layout when the text is all ASCII: JS then
/// makes its string as Latin-1 (a copy) instead of decoding UTF-8 (V8's decoder was 4 % of a
/// receiving node's CPU in `perf` with 4 KiB events).
pub const TEXT_ASCII: u8 = 0x80;

/// Appends the payload of a broadcast delivered as wire text (lib/event-text.js
/// `applyEventText` reads it): `mode: u8` and `opts_len: u32 LE` then the options field (see
/// [`EventTargets`]), `head_len: u8`, the WebSocket frame header, `"4"` (Engine.IO's message
/// type), then the text, given in parts. The one writer of this layout for the three
/// adapters.
///
/// From `head_len` on, the bytes are the WebSocket frame socket.io-adapter builds for every
/// broadcast (`_encode`: `Sender.frame(Buffer.from("4" + text))`, unmasked, final, text):
/// JS hands it to engine.io as it is instead of copying the text into a new Buffer and
/// framing it once per message.
pub fn write_event_text(out: &mut Vec<u8>, targets: EventTargets<'_>, text: &[&[u8]]) {
    let (mode, field) = targets.mode_and_field();
    let ascii = text.iter().all(|part| part.is_ascii());
    out.push(if ascii { mode | TEXT_ASCII } else { mode });
    out.extend_from_slice(&(field.len() as u32).to_le_bytes());
    out.extend_from_slice(field.as_bytes());
    let (head, head_len) = websocket_text_head(1 + text.iter().map(|p| p.len()).sum::<usize>());
    out.push(head_len as u8);
    out.extend_from_slice(&head[..head_len]);
    out.push(b'4');
    for part in text {
        out.extend_from_slice(part);
    }
}

/// The length of [`write_event_text`]'s output.
pub fn event_text_len(targets: EventTargets<'_>, text: &[&[u8]]) -> usize {
    let text_len = text.iter().map(|p| p.len()).sum::<usize>();
    let field = targets.mode_and_field().1.len();
    5 + field + 1 + websocket_text_head(1 + text_len).1 + 1 + text_len
}

/// The header of an unmasked, final WebSocket text frame of `payload_len` bytes (RFC 6455
/// 5.2), as ws's `Sender.frame` writes it: 7-bit length, or 126 + u16, or 127 + u64 (BE).
pub fn websocket_text_head(payload_len: usize) -> ([u8; 10], usize) {
    websocket_head(0x81, payload_len)
}

/// [`websocket_text_head`] for a binary frame (opcode 2), as ws frames a Buffer.
pub fn websocket_binary_head(payload_len: usize) -> ([u8; 10], usize) {
    websocket_head(0x82, payload_len)
}

/// `first`: FIN and the opcode.
fn websocket_head(first: u8, payload_len: usize) -> ([u8; 10], usize) {
    let mut head = [0u8; 10];
    head[0] = first;
    if payload_len < 126 {
        head[1] = payload_len as u8;
        (head, 2)
    } else if payload_len <= 0xffff {
        head[1] = 126;
        head[2..4].copy_from_slice(&(payload_len as u16).to_be_bytes());
        (head, 4)
    } else {
        head[1] = 127;
        head[2..10].copy_from_slice(&(payload_len as u64).to_be_bytes());
        (head, 10)
    }
}

/// `"2"` then `nsp + ","` unless it is `/`: what socket.io writes before an EVENT's JSON.
pub fn event_wire_head(nsp: &str) -> [&[u8]; 3] {
    if nsp == "/" {
        [b"2", b"", b""]
    } else {
        [b"2", nsp.as_bytes(), b","]
    }
}

/// A reporter that turns a problem line into a `Log` frame for the JS `debug` logger.
pub fn log_reporter(sink: Arc<dyn DeliverySink>) -> Arc<dyn Fn(String) + Send + Sync> {
    Arc::new(move |line: String| {
        let mut batch = FrameBatch::default();
        batch.push(DeliveryKind::Log, 0, line.as_bytes());
        batch.flush_to(&*sink);
    })
}

/// Hands a subscriber's connection event to JS as a `Connection` frame ("connected",
/// "reconnected", "disconnected: reason": the adapters log it and emit it as
/// "redis-connection"), counting a reconnection in `reconnects` when given.
pub fn deliver_connection_event(
    sink: &dyn DeliverySink,
    event: ConnectionEvent,
    reconnects: Option<&AtomicU64>,
) {
    let text = match event {
        ConnectionEvent::Connected { reconnected: false } => "connected".to_string(),
        ConnectionEvent::Connected { reconnected: true } => {
            if let Some(counter) = reconnects {
                counter.fetch_add(1, Ordering::Relaxed);
            }
            "reconnected".to_string()
        }
        ConnectionEvent::Disconnected { reason } => format!("disconnected: {reason}"),
    };
    let mut batch = FrameBatch::default();
    batch.push(DeliveryKind::Connection, 0, text.as_bytes());
    batch.flush_to(sink);
}

/// Routes a subscriber's batch of messages with `route` under one read lock of `routes`, and
/// hands whatever it framed to JS in one call.
pub fn route_messages<R>(
    sink: &dyn DeliverySink,
    routes: &RwLock<R>,
    msgs: &[PubSubMessage<'_>],
    route: impl Fn(&R, &PubSubMessage<'_>, &mut FrameBatch),
) {
    let mut batch = FrameBatch::default();
    {
        let routes = routes.read().unwrap();
        for msg in msgs {
            route(&routes, msg, &mut batch);
        }
    }
    batch.flush_to(sink);
}

/// Frames a MessagePack broadcast (classic envelope, or a cluster adapter's `{packet, opts}`)
/// as what socket.io writes to clients (see [`DeliveryKind::EventText`] and
/// [`DeliveryKind::EventBinary`]); false when only JS can encode it. The caller has checked
/// that the packet is for namespace `nsp`.
pub fn push_event_wire(
    env: &msgpack::BroadcastEnvelope<'_>,
    nsp: &str,
    id: u32,
    batch: &mut FrameBatch,
) -> bool {
    let Some(wire) = env.event_wire(nsp) else {
        return false;
    };
    let mut opts = String::new();
    let Some(targets) = event_wire_targets(env, &mut opts) else {
        return false;
    };
    match wire {
        EventWire::Text(text) => batch.push_event_text(id, targets, &[text.as_bytes()]),
        EventWire::Binary { text, attachments } => {
            batch.push_event_binary(id, targets, &text, &attachments)
        }
    }
    true
}

/// The local sockets a MessagePack broadcast is for: every one (no rooms, no except, no
/// flags: JS needs no options at all), one room's, or its options as JSON (written into
/// `opts_json`). None when those options cannot be written as JSON.
pub fn event_wire_targets<'a>(
    env: &msgpack::BroadcastEnvelope<'a>,
    opts_json: &'a mut String,
) -> Option<EventTargets<'a>> {
    let no_flags = env.flags.is_none_or(|f| f == [0x80] || f == [0xc0]);
    Some(
        match (env.rooms.as_slice(), env.except.is_empty() && no_flags) {
            ([], true) => EventTargets::All,
            ([RoomRef::Str(room)], true) => EventTargets::Room(room),
            _ => {
                msgpack::msgpack_to_json(env.opts, &msgpack::Limits::default(), opts_json).ok()?;
                EventTargets::Json(opts_json)
            }
        },
    )
}

/// Appends the payload of a broadcast with binary values delivered as socket.io's wire
/// (lib/event-text.js `applyEventBinary` reads it): the targets as in [`write_event_text`]
/// (with `TEXT_ASCII` when the text is ASCII), then each WebSocket message Engine.IO sends
/// for it, as `frame_len: u32 LE`, `head_len: u8` and the frame: first the text frame of
/// `"4"` and the BINARY_EVENT text, then `count: u32 LE` and one binary frame per
/// attachment. JS hands the frames to engine.io as they are (`wsPreEncodedFrame`), and the
/// text and the attachments' bytes, read inside them, to other transports and listeners.
pub fn write_event_binary(
    out: &mut Vec<u8>,
    targets: EventTargets<'_>,
    text: &str,
    attachments: &[&[u8]],
) {
    let (mode, field) = targets.mode_and_field();
    out.push(if text.is_ascii() {
        mode | TEXT_ASCII
    } else {
        mode
    });
    out.extend_from_slice(&(field.len() as u32).to_le_bytes());
    out.extend_from_slice(field.as_bytes());
    let (head, head_len) = websocket_text_head(1 + text.len());
    write_frame(out, &head[..head_len], &[b"4", text.as_bytes()]);
    out.extend_from_slice(&(attachments.len() as u32).to_le_bytes());
    for attachment in attachments {
        let (head, head_len) = websocket_binary_head(attachment.len());
        write_frame(out, &head[..head_len], &[attachment]);
    }
}

/// `frame_len: u32 LE`, `head_len: u8`, the header, the parts.
fn write_frame(out: &mut Vec<u8>, head: &[u8], parts: &[&[u8]]) {
    let len = head.len() + parts.iter().map(|p| p.len()).sum::<usize>();
    out.extend_from_slice(&(len as u32).to_le_bytes());
    out.push(head.len() as u8);
    out.extend_from_slice(head);
    for part in parts {
        out.extend_from_slice(part);
    }
}

/// The length of [`write_event_binary`]'s output.
pub fn event_binary_len(targets: EventTargets<'_>, text: &str, attachments: &[&[u8]]) -> usize {
    let field = targets.mode_and_field().1.len();
    let frame = |payload_len: usize| 5 + websocket_head(0, payload_len).1 + payload_len;
    5 + field
        + frame(1 + text.len())
        + 4
        + attachments.iter().map(|a| frame(a.len())).sum::<usize>()
}

/// Reads [`write_event_text`]'s layout back: `(mode, opts JSON, text)`; `None` when the
/// WebSocket header does not frame exactly `"4"` and the text, or the ASCII flag is wrong
/// (used by tests and tools; JS has its own reader).
pub fn parse_event_text(payload: &[u8]) -> Option<(u8, &str, &[u8])> {
    let opts_len = u32::from_le_bytes(payload.get(1..5)?.try_into().ok()?) as usize;
    let opts = std::str::from_utf8(payload.get(5..5 + opts_len)?).ok()?;
    let head_at = 5 + opts_len;
    let head_len = usize::from(*payload.get(head_at)?);
    let frame = payload.get(head_at + 1..)?;
    let (want, want_len) = websocket_text_head(frame.len().checked_sub(head_len)?);
    if head_len != want_len || frame.get(..head_len)? != &want[..head_len] {
        return None;
    }
    let text = frame.get(head_len..)?.strip_prefix(b"4")?;
    let mode = payload[0];
    if (mode & TEXT_ASCII != 0) != text.is_ascii() {
        return None;
    }
    Some((mode & !TEXT_ASCII, opts, text))
}

/// Splits a framed buffer back into frames (used by tests and tools; JS has its own reader).
pub fn parse_frames(mut buf: &[u8]) -> Vec<(u8, u32, Vec<u8>)> {
    let mut out = Vec::new();
    while buf.len() >= 9 {
        let kind = buf[0];
        let ns = u32::from_le_bytes(buf[1..5].try_into().unwrap());
        let len = u32::from_le_bytes(buf[5..9].try_into().unwrap()) as usize;
        let end = (9 + len).min(buf.len());
        out.push((kind, ns, buf[9..end].to_vec()));
        buf = &buf[end..];
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_round_trip() {
        let mut batch = FrameBatch::default();
        batch.push(DeliveryKind::Broadcast, 7, b"abc");
        batch.push(DeliveryKind::Log, 0, b"");
        let frames = parse_frames(&batch.buf);
        assert_eq!(frames, vec![(1, 7, b"abc".to_vec()), (5, 0, Vec::new())]);
    }

    #[test]
    fn a_frame_written_in_place_is_the_frame_pushed() {
        let mut pushed = FrameBatch::default();
        pushed.push(DeliveryKind::Log, 1, b"x");
        pushed.push(DeliveryKind::AckResponse, 9, b"written");
        let mut written = FrameBatch::default();
        written.push(DeliveryKind::Log, 1, b"x");
        // A write that fails leaves nothing behind, even after appending.
        assert!(!written.push_with(DeliveryKind::AckResponse, 9, |out| {
            out.extend_from_slice(b"partial");
            false
        }));
        assert!(written.push_with(DeliveryKind::AckResponse, 9, |out| {
            out.extend_from_slice(b"written");
            true
        }));
        assert_eq!(written.buf, pushed.buf);
    }

    #[test]
    fn options_json_of_one_room_becomes_room_targets() {
        let of = |json: Option<&'static str>| EventTargets::from(json);
        assert_eq!(of(None), EventTargets::All);
        assert_eq!(
            of(Some(r#"{"rooms":["r 1"],"except":[],"flags":{}}"#)),
            EventTargets::Room("r 1")
        );
        for other in [
            r#"{"rooms":["a","b"],"except":[],"flags":{}}"#,
            r#"{"rooms":["a"],"except":["b"],"flags":{}}"#,
            r#"{"rooms":["a"],"except":[],"flags":{"volatile":true}}"#,
            r#"{"rooms":[1],"except":[],"flags":{}}"#,
            r#"{"rooms":["a\"b"],"except":[],"flags":{}}"#,
            r#"{"rooms":["a\u0001"],"except":[],"flags":{}}"#,
            r#"{"rooms":[""],"except":[],"flags":{}}"#,
        ] {
            let want = if other.contains(r#"[""]"#) {
                EventTargets::Room("")
            } else {
                EventTargets::Json(other)
            };
            assert_eq!(of(Some(other)), want, "{other}");
        }
    }

    #[test]
    fn event_text_carries_the_websocket_frame_at_every_length_class() {
        // "4" + text: 125 bytes (7-bit length), 126 and 65535 (16-bit), 65536 (64-bit).
        for (text_len, head) in [
            (124usize, vec![0x81u8, 125]),
            (125, vec![0x81, 126, 0, 126]),
            (65534, vec![0x81, 126, 0xff, 0xff]),
            (65535, vec![0x81, 127, 0, 0, 0, 0, 0, 1, 0, 0]),
        ] {
            let text = vec![b'x'; text_len];
            let mut batch = FrameBatch::default();
            batch.push_event_text(3, EventTargets::Json("{}"), &[&text[..1], &text[1..]]);
            let frames = parse_frames(&batch.buf);
            let (kind, ns, payload) = &frames[0];
            assert_eq!((*kind, *ns), (DeliveryKind::EventText as u8, 3));
            assert_eq!(
                payload.len(),
                event_text_len(EventTargets::Json("{}"), &[&text])
            );
            let head_at = 5 + 2;
            assert_eq!(usize::from(payload[head_at]), head.len());
            assert_eq!(&payload[head_at + 1..head_at + 1 + head.len()], &head[..]);
            let (mode, opts, got) = parse_event_text(payload).unwrap();
            assert_eq!((mode, opts, got), (1, "{}", &text[..]));
        }
    }

    #[test]
    fn the_mode_byte_says_whether_the_text_is_ascii() {
        for (parts, ascii) in [
            (&[&b"2[\"a\""[..], b"]"][..], true),
            (&[&b"2[\"\xc3\xa9\""[..], b"]"][..], false),
            (&[&b"2[\"a\""[..], b"\xf0\x9f\x98\x80\"]"][..], false),
            (&[][..], true),
        ] {
            for targets in [
                EventTargets::All,
                EventTargets::Room("r"),
                EventTargets::Json("{}"),
            ] {
                let mut out = Vec::new();
                write_event_text(&mut out, targets, parts);
                let mode = targets.mode_and_field().0;
                assert_eq!(out[0], if ascii { mode | TEXT_ASCII } else { mode });
                assert_eq!(parse_event_text(&out).map(|(m, ..)| m), Some(mode));
                // A flag that does not match the text is refused by the reader.
                out[0] ^= TEXT_ASCII;
                assert_eq!(parse_event_text(&out), None);
            }
        }
    }

    #[test]
    fn event_binary_carries_each_websocket_frame() {
        let text = "51-[\"ev\",{\"_placeholder\":true,\"num\":0}]";
        let (small, medium, big) = (vec![7u8; 3], vec![8u8; 126], vec![9u8; 65536]);
        let attachments: [&[u8]; 4] = [&small, &[], &medium, &big];
        let mut batch = FrameBatch::default();
        batch.push_event_binary(2, EventTargets::Room("r"), text, &attachments);
        let frames = parse_frames(&batch.buf);
        let (kind, ns, payload) = &frames[0];
        assert_eq!((*kind, *ns), (DeliveryKind::EventBinary as u8, 2));
        assert_eq!(
            payload.len(),
            event_binary_len(EventTargets::Room("r"), text, &attachments)
        );
        assert_eq!(payload[0], 2 | TEXT_ASCII);
        assert_eq!(&payload[1..6], b"\x01\0\0\0r");
        // Each frame: frame_len u32 LE, head_len u8, then the frame itself; the count of
        // attachments after the text's.
        let mut at = 6;
        let mut next_frame = |count_before: bool| {
            if count_before {
                assert_eq!(&payload[at..at + 4], &4u32.to_le_bytes());
                at += 4;
            }
            let len = u32::from_le_bytes(payload[at..at + 4].try_into().unwrap()) as usize;
            let head_len = usize::from(payload[at + 4]);
            let frame = &payload[at + 5..at + 5 + len];
            at += 5 + len;
            (frame[..head_len].to_vec(), frame[head_len..].to_vec())
        };
        let text_frame = (
            vec![0x81, (1 + text.len()) as u8],
            [b"4", text.as_bytes()].concat(),
        );
        assert_eq!(next_frame(false), text_frame);
        assert_eq!(next_frame(true), (vec![0x82, 3], small.clone()));
        assert_eq!(next_frame(false), (vec![0x82, 0], vec![]));
        assert_eq!(next_frame(false), (vec![0x82, 126, 0, 126], medium.clone()));
        let big_head = vec![0x82, 127, 0, 0, 0, 0, 0, 1, 0, 0];
        assert_eq!(next_frame(false), (big_head, big.clone()));
        assert_eq!(at, payload.len());
        // A text that is not ASCII leaves the flag off.
        let mut out = Vec::new();
        write_event_binary(&mut out, EventTargets::All, "51-[\"é\"]", &[&small]);
        assert_eq!(out[0], 0);
    }
}
