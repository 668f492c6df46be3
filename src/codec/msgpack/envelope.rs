//! Routing fields of classic broadcast envelopes and of request/response maps.

use std::borrow::Cow;

use super::reader::{read_value, ArrayRef, MapRef, ValueRef};
use super::DecodeError;
use crate::codec::json::format_js_number;

/// A room name as found on the wire: JS rooms are strings or numbers (PROTOCOL.md 1.2).
/// Number 123 and string "123" are different rooms on the receiver.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum RoomRef<'a> {
    Str(&'a str),
    /// A numeric room, as the JS number notepack decodes.
    Num(f64),
}

impl<'a> RoomRef<'a> {
    /// `String(room)` in JS: the string itself, or the number formatted like V8
    /// (`123`, `1.5`, `1e+21`). This is what the channel name `P#N#R#` uses.
    pub fn to_js_string(&self) -> Cow<'a, str> {
        match *self {
            RoomRef::Str(s) => Cow::Borrowed(s),
            RoomRef::Num(n) => {
                let mut s = String::new();
                format_js_number(n, &mut s);
                Cow::Owned(s)
            }
        }
    }

    pub fn as_str(&self) -> Option<&'a str> {
        match *self {
            RoomRef::Str(s) => Some(s),
            RoomRef::Num(_) => None,
        }
    }

    fn from_value(v: ValueRef<'a>) -> Result<Self, DecodeError> {
        match v {
            ValueRef::Str(s) => Ok(RoomRef::Str(s)),
            ValueRef::InvalidStr(_) => Err(DecodeError::InvalidUtf8),
            other => other
                .as_f64()
                .map(RoomRef::Num)
                .ok_or(DecodeError::UnexpectedType("room (str or number)")),
        }
    }
}

/// The classic adapter / emitter broadcast envelope `[uid, packet, opts]`
/// (PROTOCOL.md 2.3). Raw slices let the caller forward parts without re-encoding.
#[derive(Debug, Clone, PartialEq)]
pub struct BroadcastEnvelope<'a> {
    /// Sender uid (`"emitter"` for the emitter).
    pub uid: &'a str,
    /// `packet.nsp`; `None` when absent (JS receivers then assume `"/"`).
    pub packet_nsp: Option<&'a str>,
    /// `opts.rooms`; empty when absent or nil (JS `new Set(undefined)`).
    pub rooms: Vec<RoomRef<'a>>,
    /// `opts.except`; empty when absent or nil.
    pub except: Vec<RoomRef<'a>>,
    /// Whether `packet` has an `id` key (the connection-state-recovery case, 1.1).
    pub has_packet_id: bool,
    /// The encoded `packet` map.
    pub packet: &'a [u8],
    /// The encoded `opts` map.
    pub opts: &'a [u8],
    /// The encoded `opts.flags` value, when present.
    pub flags: Option<&'a [u8]>,
}

fn rooms_of<'a>(v: Option<ValueRef<'a>>) -> Result<Vec<RoomRef<'a>>, DecodeError> {
    match v {
        None | Some(ValueRef::Nil) => Ok(Vec::new()),
        Some(ValueRef::Array(a)) => {
            let mut out = Vec::with_capacity(a.len());
            for r in a {
                out.push(RoomRef::from_value(r)?);
            }
            Ok(out)
        }
        Some(_) => Err(DecodeError::UnexpectedType("rooms array")),
    }
}

/// Decodes a broadcast envelope published on `P#N#` / `P#N#R#`. The whole buffer must
/// be exactly one valid value (notepack throws on trailing bytes). Strings that must be
/// text (uid, nsp, rooms) give [`DecodeError::InvalidUtf8`] when they are not UTF-8; a
/// present but non-string `packet.nsp` gives [`DecodeError::UnexpectedType`] (a JS node
/// would drop such a message, since it cannot equal the namespace name).
pub fn read_broadcast_envelope(buf: &[u8]) -> Result<BroadcastEnvelope<'_>, DecodeError> {
    let (top, end) = read_value(buf)?;
    if end != buf.len() {
        return Err(DecodeError::TrailingBytes(buf.len() - end));
    }
    let arr: ArrayRef<'_> = top
        .as_array()
        .ok_or(DecodeError::UnexpectedType("envelope array"))?;
    if arr.len() < 3 {
        return Err(DecodeError::UnexpectedType("envelope [uid, packet, opts]"));
    }
    let mut it = arr.iter();
    let uid = match it.next() {
        Some(ValueRef::Str(s)) => s,
        Some(ValueRef::InvalidStr(_)) => return Err(DecodeError::InvalidUtf8),
        _ => return Err(DecodeError::UnexpectedType("uid str")),
    };
    let packet_raw = it.next_raw().ok_or(DecodeError::Truncated)?;
    let opts_raw = it.next_raw().ok_or(DecodeError::Truncated)?;
    let packet: MapRef<'_> = read_value(packet_raw)?
        .0
        .as_map()
        .ok_or(DecodeError::UnexpectedType("packet map"))?;
    let opts: MapRef<'_> = read_value(opts_raw)?
        .0
        .as_map()
        .ok_or(DecodeError::UnexpectedType("opts map"))?;

    let mut packet_nsp = None;
    let mut has_packet_id = false;
    for (k, v) in packet {
        match k.as_str() {
            Some("nsp") => {
                packet_nsp = match v {
                    ValueRef::Str(s) => Some(s),
                    ValueRef::InvalidStr(_) => return Err(DecodeError::InvalidUtf8),
                    _ => return Err(DecodeError::UnexpectedType("packet.nsp str")),
                }
            }
            Some("id") => has_packet_id = true,
            _ => {}
        }
    }
    Ok(BroadcastEnvelope {
        uid,
        packet_nsp,
        rooms: rooms_of(opts.get("rooms"))?,
        except: rooms_of(opts.get("except"))?,
        has_packet_id,
        packet: packet_raw,
        opts: opts_raw,
        flags: opts.get_raw("flags"),
    })
}

/// The sender uid of a broadcast envelope (`[uid, packet, opts]`), read without looking at the
/// rest: a node receives its own broadcasts through its pattern subscription, and this lets it
/// drop them before validating anything else. `None` when the envelope does not start with a
/// 3-element array and a UTF-8 str.
pub fn peek_envelope_uid(buf: &[u8]) -> Option<&str> {
    if buf.first() != Some(&0x93) {
        return None;
    }
    match super::reader::read_head(buf, 1).ok()? {
        (super::reader::Head::Str(n), p) => std::str::from_utf8(buf.get(p..p + n)?).ok(),
        _ => None,
    }
}

/// Top-level routing fields of a MessagePack request/response map: classic types 7 and
/// 9 (PROTOCOL.md 2.5) and cluster-adapter messages `{type, data, uid, nsp}` (3.1).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct MessageHeader<'a> {
    /// `type`, when it is an integer (or an integral float).
    pub msg_type: Option<i64>,
    /// `uid`, when it is a str.
    pub uid: Option<&'a str>,
    /// `requestId` at the top level (classic), else `data.requestId` (cluster adapter).
    pub request_id: Option<&'a str>,
    /// `nsp`, when it is a str (cluster adapter).
    pub nsp: Option<&'a str>,
    /// The encoded `data` value, when present.
    pub data: Option<&'a [u8]>,
}

/// Reads a [`MessageHeader`]. The buffer must be exactly one valid map. Fields with an
/// unexpected type (or invalid UTF-8) are reported as `None`; the last duplicate wins.
pub fn read_message_header(buf: &[u8]) -> Result<MessageHeader<'_>, DecodeError> {
    let (top, end) = read_value(buf)?;
    if end != buf.len() {
        return Err(DecodeError::TrailingBytes(buf.len() - end));
    }
    let map = top
        .as_map()
        .ok_or(DecodeError::UnexpectedType("message map"))?;
    let mut h = MessageHeader {
        msg_type: None,
        uid: None,
        request_id: None,
        nsp: None,
        data: None,
    };
    let mut data_map = None;
    for (k, v) in map {
        match k.as_str() {
            Some("type") => h.msg_type = v.as_i64(),
            Some("uid") => h.uid = v.as_str(),
            Some("requestId") => h.request_id = v.as_str(),
            Some("nsp") => h.nsp = v.as_str(),
            Some("data") => data_map = v.as_map(),
            _ => {}
        }
    }
    h.data = map.get_raw("data");
    if h.request_id.is_none() {
        h.request_id = data_map
            .and_then(|d| d.get("requestId"))
            .and_then(|v| v.as_str());
    }
    Ok(h)
}
