//! Routing fields of classic broadcast envelopes and of request/response maps.

use std::borrow::Cow;

use super::reader::{decode_at, read_head, read_value, skip_at, Head, ValueRef};
use super::DecodeError;
use super::Limits;
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
    // One validation walk per element of the envelope array, which also gives each part's
    // bounds (receivers run this for every broadcast: the packet used to be walked three
    // times here). Element walks start one level below the array, so together they make
    // exactly the checks of one walk over the whole buffer, in the same order.
    let limits = Limits::default();
    let (Head::Array(n), start) = read_head(buf, 0)? else {
        return Err(DecodeError::UnexpectedType("envelope array"));
    };
    if n > limits.max_len {
        return Err(DecodeError::TooLarge);
    }
    let inner = Limits {
        max_depth: limits.max_depth - 1,
        ..limits
    };
    let mut bounds = [start; 4]; // start of uid, packet, opts; end of opts
    let mut end = start;
    for i in 0..n {
        end = skip_at(buf, end, &inner)?;
        if i < 3 {
            bounds[i + 1] = end;
        }
    }
    if end != buf.len() {
        return Err(DecodeError::TrailingBytes(buf.len() - end));
    }
    if n < 3 {
        return Err(DecodeError::UnexpectedType("envelope [uid, packet, opts]"));
    }
    let uid = match decode_at(buf, bounds[0])?.0 {
        ValueRef::Str(s) => s,
        ValueRef::InvalidStr(_) => return Err(DecodeError::InvalidUtf8),
        _ => return Err(DecodeError::UnexpectedType("uid str")),
    };
    let packet = &buf[bounds[1]..bounds[2]];
    let opts = &buf[bounds[2]..bounds[3]];

    let mut env = BroadcastEnvelope {
        uid,
        packet_nsp: None,
        rooms: Vec::new(),
        except: Vec::new(),
        has_packet_id: false,
        packet,
        opts,
        flags: None,
    };
    // Later duplicates overwrite earlier ones, as JS property assignment does.
    for_each_entry(packet, "packet map", |key, value| {
        match key {
            Some("nsp") => {
                env.packet_nsp = match decode_at(value, 0)?.0 {
                    ValueRef::Str(s) => Some(s),
                    ValueRef::InvalidStr(_) => return Err(DecodeError::InvalidUtf8),
                    _ => return Err(DecodeError::UnexpectedType("packet.nsp str")),
                }
            }
            Some("id") => env.has_packet_id = true,
            _ => {}
        }
        Ok(())
    })?;
    let (mut rooms, mut except) = (None, None);
    for_each_entry(opts, "opts map", |key, value| {
        match key {
            Some("rooms") => rooms = Some(value),
            Some("except") => except = Some(value),
            Some("flags") => env.flags = Some(value),
            _ => {}
        }
        Ok(())
    })?;
    env.rooms = rooms_of(rooms.map(|v| decode_at(v, 0)).transpose()?.map(|(v, _)| v))?;
    env.except = rooms_of(except.map(|v| decode_at(v, 0)).transpose()?.map(|(v, _)| v))?;
    Ok(env)
}

/// Calls `f(key, raw value)` for each entry of the validated map `map` (key `None` when it is
/// not a UTF-8 str), skipping each value once.
fn for_each_entry<'a>(
    map: &'a [u8],
    what: &'static str,
    mut f: impl FnMut(Option<&'a str>, &'a [u8]) -> Result<(), DecodeError>,
) -> Result<(), DecodeError> {
    let (Head::Map(n), mut pos) = read_head(map, 0)? else {
        return Err(DecodeError::UnexpectedType(what));
    };
    for _ in 0..n {
        let (key, value_pos) = match read_head(map, pos)? {
            (Head::Str(len), p) => (std::str::from_utf8(&map[p..p + len]).ok(), p + len),
            _ => (None, skip_at(map, pos, &Limits::UNLIMITED)?),
        };
        let value_end = skip_at(map, value_pos, &Limits::UNLIMITED)?;
        f(key, &map[value_pos..value_end])?;
        pos = value_end;
    }
    Ok(())
}

/// The sender uid of a broadcast envelope (`[uid, packet, opts]`), read without looking at the
/// rest: a node receives its own broadcasts through its pattern subscription, and this lets it
/// drop them before validating anything else. `None` when the envelope does not start with a
/// 3-element array and a UTF-8 str.
pub fn peek_envelope_uid(buf: &[u8]) -> Option<&str> {
    if buf.first() != Some(&0x93) {
        return None;
    }
    match read_head(buf, 1).ok()? {
        (Head::Str(n), p) => std::str::from_utf8(buf.get(p..p + n)?).ok(),
        _ => None,
    }
}

impl BroadcastEnvelope<'_> {
    /// The text socket.io would send to clients for this envelope's packet, when it is certain
    /// (see [`super::event_wire_string`]); the packet is known to be well-formed already.
    pub fn event_wire_text(&self, nsp: &str) -> Option<String> {
        super::event_wire::text_of_validated_packet(self.packet, nsp)
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
