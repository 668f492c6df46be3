//! Routing fields of classic broadcast envelopes and of request/response maps.

use std::borrow::Cow;

use super::reader::{decode_at, read_head, skip_at, Head, ValueRef};
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
    /// The packet's `data` array when the packet is an EVENT that socket.io-parser writes
    /// as one text packet (type 2, no ack id, no attachments, string keys once each).
    pub event_data: Option<&'a [u8]>,
}

/// The rooms of the encoded `opts.rooms` / `opts.except` value, when present.
fn rooms_of(value: Option<&[u8]>) -> Result<Vec<RoomRef<'_>>, DecodeError> {
    let value = value.map(|v| decode_at(v, 0)).transpose()?.map(|(v, _)| v);
    match value {
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
    // One validation walk over the buffer, which also reads the entries of the packet and
    // opts maps as it passes them (receivers run this for every broadcast). Element walks
    // start one level below the array, entry walks two, so together they make exactly the
    // checks of one walk over the whole buffer, in the same order.
    let limits = Limits::default();
    let (Head::Array(n), start) = read_head(buf, 0)? else {
        return Err(DecodeError::UnexpectedType("envelope array"));
    };
    if n > limits.max_len {
        return Err(DecodeError::TooLarge);
    }
    let element = Limits {
        max_depth: limits.max_depth - 1,
        ..limits
    };
    let mut packet = PacketScan::default();
    let mut opts = OptsScan::default();
    let mut bounds = [start; 4]; // start of uid, packet, opts; end of opts
    let mut end = start;
    for i in 0..n {
        end = match i {
            // Later duplicates overwrite earlier ones, as JS property assignment does.
            1 => {
                let (end, is_map) =
                    walk_map(buf, end, &element, |key, value| packet.entry(key, value))?;
                packet.is_map = is_map;
                end
            }
            2 => {
                let (end, is_map) = walk_map(buf, end, &element, |key, value| {
                    opts.entry(key, value);
                    Ok(())
                })?;
                opts.is_map = is_map;
                end
            }
            _ => skip_at(buf, end, &element)?,
        };
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
    if !packet.is_map {
        return Err(DecodeError::UnexpectedType("packet map"));
    }
    if !opts.is_map {
        return Err(DecodeError::UnexpectedType("opts map"));
    }
    envelope(
        uid,
        &packet,
        &opts,
        &buf[bounds[1]..bounds[2]],
        &buf[bounds[2]..bounds[3]],
    )
}

/// The envelope of sender `uid` from the scans of its packet and opts maps and their bytes.
fn envelope<'a>(
    uid: &'a str,
    packet: &PacketScan<'a>,
    opts: &OptsScan<'a>,
    packet_raw: &'a [u8],
    opts_raw: &'a [u8],
) -> Result<BroadcastEnvelope<'a>, DecodeError> {
    let packet_nsp = match packet.nsp {
        None => None,
        Some(value) => match decode_at(value, 0)?.0 {
            ValueRef::Str(s) => Some(s),
            ValueRef::InvalidStr(_) => return Err(DecodeError::InvalidUtf8),
            _ => return Err(DecodeError::UnexpectedType("packet.nsp str")),
        },
    };
    Ok(BroadcastEnvelope {
        uid,
        packet_nsp,
        rooms: rooms_of(opts.rooms)?,
        except: rooms_of(opts.except)?,
        has_packet_id: packet.has_id,
        packet: packet_raw,
        opts: opts_raw,
        flags: opts.flags,
        event_data: packet.event_data(),
    })
}

/// The `data` of a socket.io-adapter cluster `BROADCAST` message, `{packet, opts}` (PROTOCOL.md
/// 3.1; the sharded adapter sends MessagePack when the packet holds binary values), read as a
/// [`BroadcastEnvelope`] of sender `uid`. A `requestId` key (a broadcast with acks, which JS
/// answers) or a missing packet or opts is an error: the message then goes to JS as it is.
pub fn read_cluster_broadcast<'a>(
    uid: &'a str,
    data: &'a [u8],
) -> Result<BroadcastEnvelope<'a>, DecodeError> {
    let limits = Limits::default();
    let (mut packet_at, mut opts_at, mut request_id) = (None, None, false);
    let (end, is_map) = walk_map(data, 0, &limits, |key, value| {
        match key {
            Some(b"packet") => packet_at = Some(value),
            Some(b"opts") => opts_at = Some(value),
            Some(b"requestId") => request_id = true,
            _ => {}
        }
        Ok(())
    })?;
    if end != data.len() {
        return Err(DecodeError::TrailingBytes(data.len() - end));
    }
    if !is_map || request_id {
        return Err(DecodeError::UnexpectedType("data {packet, opts}"));
    }
    let (Some(packet_raw), Some(opts_raw)) = (packet_at, opts_at) else {
        return Err(DecodeError::UnexpectedType("data {packet, opts}"));
    };
    let mut packet = PacketScan::default();
    let (_, packet_is_map) = walk_map(packet_raw, 0, &limits, |k, v| packet.entry(k, v))?;
    let mut opts = OptsScan::default();
    let (_, opts_is_map) = walk_map(opts_raw, 0, &limits, |k, v| {
        opts.entry(k, v);
        Ok(())
    })?;
    if !packet_is_map || !opts_is_map {
        return Err(DecodeError::UnexpectedType("packet and opts maps"));
    }
    envelope(uid, &packet, &opts, packet_raw, opts_raw)
}

/// What the walk over a packet map noticed.
#[derive(Default)]
struct PacketScan<'a> {
    is_map: bool,
    nsp: Option<&'a [u8]>,
    has_id: bool,
    /// `type` is the unsigned integer 2 (EVENT).
    is_event: bool,
    data: Option<&'a [u8]>,
    /// A key that is not a UTF-8 str, a key seen twice, or `attachments`: socket.io-parser's
    /// text for the packet could then depend on more than type, nsp, data and id.
    odd_keys: bool,
    /// The keys seen so far (a packet has four at most; more only mark it odd).
    keys: [&'a [u8]; 4],
    key_count: usize,
}

impl<'a> PacketScan<'a> {
    fn entry(&mut self, key: Option<&'a [u8]>, value: &'a [u8]) -> Result<(), DecodeError> {
        let Some(key) = key else {
            self.odd_keys = true;
            return Ok(());
        };
        if self.keys[..self.key_count].contains(&key) || self.key_count == self.keys.len() {
            self.odd_keys = true;
        } else {
            self.keys[self.key_count] = key;
            self.key_count += 1;
        }
        match key {
            b"nsp" => self.nsp = Some(value),
            b"id" => self.has_id = true,
            b"type" => self.is_event = matches!(read_head(value, 0)?.0, Head::UInt(2)),
            b"data" => self.data = Some(value),
            b"attachments" => self.odd_keys = true,
            // Only a key that is none of the above can be other than UTF-8.
            _ if std::str::from_utf8(key).is_err() => self.odd_keys = true,
            _ => {}
        }
        Ok(())
    }

    /// The packet's data when it is an EVENT that socket.io-parser writes as one text packet,
    /// if the data is plain (which `super::event_wire` checks).
    fn event_data(&self) -> Option<&'a [u8]> {
        let data = self.data?;
        let event = self.is_event && !self.has_id && !self.odd_keys;
        (event && matches!(read_head(data, 0).ok()?.0, Head::Array(_))).then_some(data)
    }
}

/// What the walk over an opts map noticed.
#[derive(Default)]
struct OptsScan<'a> {
    is_map: bool,
    rooms: Option<&'a [u8]>,
    except: Option<&'a [u8]>,
    flags: Option<&'a [u8]>,
}

impl<'a> OptsScan<'a> {
    fn entry(&mut self, key: Option<&'a [u8]>, value: &'a [u8]) {
        match key {
            Some(b"rooms") => self.rooms = Some(value),
            Some(b"except") => self.except = Some(value),
            Some(b"flags") => self.flags = Some(value),
            _ => {}
        }
    }
}

/// Walks the value at `pos` as [`skip_at`] with `limits` would (same checks, same order);
/// when it is a map, calls `f(key, raw value)` for each entry (key `None` when it is not a
/// str; its bytes, not checked for UTF-8: the callers compare them with known ASCII keys).
/// Returns its end and whether it is a map.
fn walk_map<'a>(
    buf: &'a [u8],
    pos: usize,
    limits: &Limits,
    mut f: impl FnMut(Option<&'a [u8]>, &'a [u8]) -> Result<(), DecodeError>,
) -> Result<(usize, bool), DecodeError> {
    let (Head::Map(n), mut at) = read_head(buf, pos)? else {
        return Ok((skip_at(buf, pos, limits)?, false));
    };
    if n > limits.max_len {
        return Err(DecodeError::TooLarge);
    }
    if n > 0 {
        if 2 * n as u64 > (buf.len() - at) as u64 {
            return Err(DecodeError::Truncated);
        }
        if limits.max_depth == 0 {
            return Err(DecodeError::TooDeep);
        }
    }
    let entry = Limits {
        max_depth: limits.max_depth.saturating_sub(1),
        ..*limits
    };
    for _ in 0..n {
        // A str key is read once, with skip_at's checks for a str, in its order.
        let (key, value_at) = match read_head(buf, at)? {
            (Head::Str(len), p) => {
                if len > entry.max_len {
                    return Err(DecodeError::TooLarge);
                }
                if buf.len() - p < len {
                    return Err(DecodeError::Truncated);
                }
                (Some(&buf[p..p + len]), p + len)
            }
            _ => (None, skip_at(buf, at, &entry)?),
        };
        at = skip_at(buf, value_at, &entry)?;
        f(key, &buf[value_at..at])?;
    }
    Ok((at, true))
}

/// The integer `type` of a MessagePack message map, read without validating the rest (the
/// entries before it are skipped, the ones after are not looked at): a cheap filter before a
/// whole read. None when the map, or its `type`, is not there.
pub fn peek_message_type(buf: &[u8]) -> Option<i64> {
    let (Head::Map(n), mut at) = read_head(buf, 0).ok()? else {
        return None;
    };
    for _ in 0..n {
        let (Head::Str(len), p) = read_head(buf, at).ok()? else {
            return None;
        };
        let key = buf.get(p..p + len)?;
        at = p + len;
        if key == b"type" {
            return match read_head(buf, at).ok()?.0 {
                Head::UInt(v) => i64::try_from(v).ok(),
                Head::Int(v) => Some(v),
                _ => None,
            };
        }
        at = skip_at(buf, at, &Limits::default()).ok()?;
    }
    None
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
    /// What socket.io would send to clients for this envelope's packet, binary attachments
    /// included, when it is certain (see [`super::EventWire`]).
    pub fn event_wire(&self, nsp: &str) -> Option<super::EventWire<'_>> {
        super::event_wire::wire_of_event_data(self.event_data?, nsp)
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

/// The str at the start of `value`, if it is one (valid UTF-8).
fn str_of(value: &[u8]) -> Option<&str> {
    decode_at(value, 0).ok().and_then(|(v, _)| v.as_str())
}

/// Reads a [`MessageHeader`]. The buffer must be exactly one valid map. Fields with an
/// unexpected type (or invalid UTF-8) are reported as `None`; the last duplicate wins.
/// A `requestId` missing at the top level is looked for inside `data` only with
/// `request_id_in_data`: a broadcast channel's messages are routed without it, and looking
/// inside `data` skipped through the whole packet a second time (with the validating walk and
/// the broadcast's own reading, a third of a sharded receiver's MessagePack work in `perf`).
pub fn read_message_header(
    buf: &[u8],
    request_id_in_data: bool,
) -> Result<MessageHeader<'_>, DecodeError> {
    // One validating walk over the message (every receiver runs this for every message of a
    // cluster adapter); each field's value is decoded from its own bytes.
    let limits = Limits::default();
    let mut h = MessageHeader {
        msg_type: None,
        uid: None,
        request_id: None,
        nsp: None,
        data: None,
    };
    let (end, is_map) = walk_map(buf, 0, &limits, |key, value| {
        match key {
            Some(b"type") => h.msg_type = decode_at(value, 0)?.0.as_i64(),
            Some(b"uid") => h.uid = str_of(value),
            Some(b"requestId") => h.request_id = str_of(value),
            Some(b"nsp") => h.nsp = str_of(value),
            Some(b"data") => h.data = Some(value),
            _ => {}
        }
        Ok(())
    })?;
    if !is_map {
        return Err(DecodeError::UnexpectedType("message map"));
    }
    if end != buf.len() {
        return Err(DecodeError::TrailingBytes(buf.len() - end));
    }
    if h.request_id.is_none() && request_id_in_data {
        // The data was validated by the walk above: its entries are only skipped through.
        h.request_id = h.data.and_then(|data| {
            let mut found = None;
            walk_map(data, 0, &Limits::UNLIMITED, |key, value| {
                if key == Some(b"requestId") {
                    found = str_of(value);
                }
                Ok(())
            })
            .ok()?;
            found
        });
    }
    Ok(h)
}
