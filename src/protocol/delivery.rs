//! What crosses from Rust to JS: many messages framed into one buffer per call, because a
//! threadsafe-function call costs 2-3 µs while a framed message costs about 0.2 µs.
//!
//! Frame: `kind: u8, namespace: u32 LE, length: u32 LE, payload`.

use std::sync::Arc;

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
    /// `mode: u8` (0: no rooms/except/flags, 1: options follow), `opts_len: u32 LE`, the
    /// options as JSON (`{rooms, except, flags}`), then the text (UTF-8).
    EventText = 6,
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

    /// One [`DeliveryKind::EventText`] frame (see [`write_event_text`]).
    pub fn push_event_text(&mut self, namespace: u32, opts: Option<&str>, text: &[&[u8]]) {
        let len = 5 + opts.map_or(0, str::len) + text.iter().map(|p| p.len()).sum::<usize>();
        self.buf.reserve(9 + len);
        self.buf.push(DeliveryKind::EventText as u8);
        self.buf.extend_from_slice(&namespace.to_le_bytes());
        self.buf.extend_from_slice(&(len as u32).to_le_bytes());
        write_event_text(&mut self.buf, opts, text);
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

/// Appends the payload of a broadcast delivered as wire text (lib/event-text.js
/// `readEventText` reads it): `mode: u8` (1 when options follow), `opts_len: u32 LE`, the
/// options JSON (`{rooms, except, flags}`), then the text, given in parts. The one writer of
/// this layout for the three adapters.
pub fn write_event_text(out: &mut Vec<u8>, opts: Option<&str>, text: &[&[u8]]) {
    let opts_json = opts.unwrap_or("");
    out.push(u8::from(opts.is_some()));
    out.extend_from_slice(&(opts_json.len() as u32).to_le_bytes());
    out.extend_from_slice(opts_json.as_bytes());
    for part in text {
        out.extend_from_slice(part);
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
}
