//! The text socket.io sends to its clients for a broadcast EVENT, computed straight from the
//! MessagePack packet of a classic broadcast envelope (PROTOCOL.md 2.3).
//!
//! A JS receiver decodes the envelope with notepack, then socket.io-parser's `Encoder`
//! turns the packet into `"2" + (nsp == "/" ? "" : nsp + ",") + JSON.stringify(data)`, once
//! per broadcast. Doing that here saves both steps on the event loop. It is done only when the
//! result is certain to be the same string: otherwise [`event_wire_string`] returns `None` and
//! the message takes the ordinary JS path.

use super::plain_json::{write_plain_json, Plain};
use super::reader::{read_head, skip_at, Head};
use super::to_json::msgpack_to_json_validated;
use super::{validate, DecodeError, Limits};

/// `Some(text)` when `packet` (one MessagePack map) is an EVENT that socket.io-parser would
/// encode as a single text packet and [`msgpack_to_json`](super::msgpack_to_json) gives exactly
/// `JSON.stringify` of what notepack decodes. `None` for: other packet types, an ack id, binary
/// content (bin, ArrayBuffer or unknown ext: socket.io would send a BINARY_EVENT), map keys JS
/// would reorder (integer-like), merge (duplicates) or treat specially (`__proto__`),
/// non-string or non-UTF-8 keys and strings, and anything malformed.
pub fn event_wire_string(packet: &[u8], nsp: &str, limits: &Limits) -> Option<String> {
    validate(packet, limits).ok()?;
    text_of_validated_packet(packet, nsp)
}

/// [`event_wire_string`] for a packet validated already.
pub(super) fn text_of_validated_packet(packet: &[u8], nsp: &str) -> Option<String> {
    let (Head::Map(n), mut pos) = read_head(packet, 0).ok()? else {
        return None;
    };
    let mut data = None;
    let mut is_event = false;
    let mut keys = KeySet::default();
    for _ in 0..n {
        let (key, value) = str_at(packet, pos)?;
        let end = skip_at(packet, value, &Limits::UNLIMITED).ok()?;
        // A duplicated key would make "which one wins" a JS question.
        if !keys.insert(key) {
            return None;
        }
        match key {
            b"type" => is_event = matches!(read_head(packet, value).ok()?.0, Head::UInt(2)),
            b"data" => data = Some(&packet[value..end]),
            b"id" | b"attachments" => return None,
            _ => {}
        }
        pos = end;
    }
    let data = data?;
    if !is_event || !matches!(read_head(data, 0).ok()?.0, Head::Array(_)) {
        return None;
    }
    match wire_of_event_data(data, nsp)? {
        EventWire::Text(text) => Some(text),
        EventWire::Binary { .. } => None,
    }
}

/// What socket.io writes to clients for an EVENT: one text packet, or (when the data holds
/// binary values) a BINARY_EVENT text with placeholders followed by the attachments.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EventWire<'a> {
    Text(String),
    Binary {
        text: String,
        attachments: Vec<&'a [u8]>,
    },
}

/// [`EventWire`] of an EVENT packet whose `data` array is `data` (validated), when socket.io's
/// encoding of what notepack decodes is certain: one pass for the usual values
/// ([`write_plain_json`]; binary values are `bin`, which notepack decodes to Buffers, in
/// otherwise plain data), else the plain-JSON check and the general writer (dates,
/// `undefined`; no binary values there).
pub(super) fn wire_of_event_data<'a>(data: &'a [u8], nsp: &str) -> Option<EventWire<'a>> {
    let mut attachments = Vec::new();
    let mut out = String::with_capacity(data.len() + nsp.len() + 8);
    out.push('2');
    if nsp != "/" {
        out.push_str(nsp);
        out.push(',');
    }
    let json_at = out.len();
    match write_plain_json(data, &mut out, Some(&mut attachments)).ok()? {
        Plain::Written if attachments.is_empty() => Some(EventWire::Text(out)),
        Plain::Written => {
            // socket.io-parser's encodeAsString: "5" + attachments + "-" [+ nsp + ","] + JSON.
            let mut digits = itoa::Buffer::new();
            let count = digits.format(attachments.len());
            let mut text = String::with_capacity(out.len() + count.len() + 2);
            text.push('5');
            text.push_str(count);
            text.push('-');
            text.push_str(&out[1..json_at]);
            text.push_str(&out[json_at..]);
            Some(EventWire::Binary { text, attachments })
        }
        Plain::No => None,
        Plain::Unsure => {
            if !is_plain_json(data).ok()? {
                return None;
            }
            msgpack_to_json_validated(data, &mut out).ok()?;
            Some(EventWire::Text(out))
        }
    }
}

/// Keys of one map. Maps in events are small: a linear scan beats hashing until they are not.
#[derive(Default)]
struct KeySet<'a> {
    keys: Vec<&'a [u8]>,
}

impl<'a> KeySet<'a> {
    /// False when `key` was there already.
    fn insert(&mut self, key: &'a [u8]) -> bool {
        if self.keys.contains(&key) {
            return false;
        }
        self.keys.push(key);
        true
    }
}

/// The bytes of the str at `pos` and the position after it.
fn str_at(buf: &[u8], pos: usize) -> Option<(&[u8], usize)> {
    match read_head(buf, pos).ok()? {
        (Head::Str(n), p) => Some((buf.get(p..p + n)?, p + n)),
        _ => None,
    }
}

/// JS turns canonical array-index keys ("0", "17", below 2^32 - 1) into integer keys and
/// enumerates them first, so `JSON.stringify` would not keep the wire order.
pub(super) fn is_array_index(key: &[u8]) -> bool {
    match key {
        [b'0'] => true,
        [b'1'..=b'9', rest @ ..] if rest.len() < 10 && rest.iter().all(u8::is_ascii_digit) => {
            std::str::from_utf8(key)
                .ok()
                .and_then(|s| s.parse::<u64>().ok())
                .is_some_and(|n| n < u64::from(u32::MAX))
        }
        _ => false,
    }
}

struct Level<'a> {
    left: usize,
    /// Keys of an open map (None for arrays).
    keys: Option<KeySet<'a>>,
}

#[cfg(test)]
pub(super) fn is_plain_json_for_tests(buf: &[u8]) -> bool {
    is_plain_json(buf).unwrap_or(false)
}

/// The JSON text whose `JSON.parse` is deep-equal to what a JS MessagePack decoder (notepack.io,
/// @msgpack/msgpack) gives for `buf`: same types, values and property order, for nil,
/// booleans, numbers, UTF-8 strings, arrays and maps with string keys that JS keeps as they
/// are. None for everything else (binary, exts such as dates, keys JS would reorder, merge or
/// take as the prototype, -0, anything malformed): the caller hands those to the decoder.
///
/// Why: V8's `JSON.parse` builds the objects of a large message faster than a decoder written
/// in JS (a streams `fetchSockets()` answer of 100 handshakes).
pub fn decoded_json(buf: &[u8], limits: &Limits) -> Option<String> {
    // JSON has no -0 (it would come back as 0). The byte search may also hit the contents of
    // a string: such a message merely takes the decoder's path.
    let negative_zero = |pattern: &[u8]| memchr::memmem::find(buf, pattern).is_some();
    if negative_zero(&[0xcb, 0x80, 0, 0, 0, 0, 0, 0, 0]) || negative_zero(&[0xca, 0x80, 0, 0, 0]) {
        return None;
    }
    let mut out = String::with_capacity(buf.len() + buf.len() / 4);
    match write_plain_json(buf, &mut out, None).ok()? {
        Plain::Written => Some(out),
        Plain::No => None,
        Plain::Unsure => {
            // Deep nesting or many keys: the general check, without the exts whose JSON text
            // differs from what a decoder gives (dates, `undefined`).
            validate(buf, limits).ok()?;
            if !is_plain(buf, false).ok()? {
                return None;
            }
            msgpack_to_json_validated(buf, &mut out).ok()?;
            Some(out)
        }
    }
}

/// Whether every value in the (validated) `buf` is one that JSON text represents exactly as
/// JS would see it.
fn is_plain_json(buf: &[u8]) -> Result<bool, DecodeError> {
    is_plain(buf, true)
}

/// [`is_plain_json`]; `json_exts`: dates and `undefined` count as plain (their JSON text is
/// what `JSON.stringify` writes of them).
fn is_plain(buf: &[u8], json_exts: bool) -> Result<bool, DecodeError> {
    let mut stack: Vec<Level<'_>> = Vec::new();
    let mut pos = 0;
    loop {
        // Map entries: check the key, then fall through to the value.
        if let Some(top) = stack.last_mut() {
            if top.left == 0 {
                stack.pop();
                if stack.is_empty() {
                    return Ok(pos == buf.len());
                }
                continue;
            }
            top.left -= 1;
            if let Some(keys) = top.keys.as_mut() {
                let Some((key, after)) = str_at(buf, pos) else {
                    return Ok(false);
                };
                if std::str::from_utf8(key).is_err()
                    || key == b"__proto__"
                    || is_array_index(key)
                    || !keys.insert(key)
                {
                    return Ok(false);
                }
                pos = after;
            }
        }
        let (head, after) = read_head(buf, pos)?;
        match head {
            Head::Array(n) | Head::Map(n) => {
                let is_map = matches!(head, Head::Map(_));
                stack.push(Level {
                    left: n,
                    keys: is_map.then(KeySet::default),
                });
                pos = after;
                continue;
            }
            Head::Bin(_) => return Ok(false),
            Head::Str(n) => {
                if std::str::from_utf8(&buf[after..after + n]).is_err() {
                    return Ok(false);
                }
                pos = after + n;
            }
            Head::Ext(t, n) => {
                // Dates (timestamp ext, legacy type 0 of 8 bytes) and `undefined` (d4 00 xx)
                // become JSON; any other ext decodes to a Buffer or ArrayBuffer: binary.
                if !json_exts || !matches!((t, n), (-1, 4 | 8 | 12) | (0, 1 | 8)) {
                    return Ok(false);
                }
                pos = after + n;
            }
            _ => pos = after,
        }
        if stack.is_empty() {
            return Ok(pos == buf.len());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec::msgpack::Writer;

    fn packet(data: &[u8], extra: &[(&str, u8)]) -> Vec<u8> {
        let mut w = Writer::new();
        w.write_map_len(3 + extra.len());
        w.write_str("type");
        w.write_u64(2);
        w.write_str("data");
        let mut v = w.into_inner();
        v.extend_from_slice(data);
        let mut w = Writer::from_vec(v);
        w.write_str("nsp");
        w.write_str("/");
        for (k, n) in extra {
            w.write_str(k);
            w.write_u64(u64::from(*n));
        }
        w.into_inner()
    }

    fn wire(p: &[u8], nsp: &str) -> Option<String> {
        event_wire_string(p, nsp, &Limits::default())
    }

    #[test]
    fn plain_event() {
        // ["ev", "x", 1.5, {"a": true}]
        let data = b"\x94\xa2ev\xa1x\xcb\x3f\xf8\x00\x00\x00\x00\x00\x00\x81\xa1a\xc3";
        let p = packet(data, &[]);
        assert_eq!(wire(&p, "/").unwrap(), r#"2["ev","x",1.5,{"a":true}]"#);
        assert_eq!(
            wire(&p, "/chat").unwrap(),
            r#"2/chat,["ev","x",1.5,{"a":true}]"#
        );
    }

    #[test]
    fn js_only_cases_are_refused() {
        let bin = b"\x92\xa2ev\xc4\x01\x00";
        assert!(wire(&packet(bin, &[]), "/").is_none(), "binary");
        let ext = b"\x92\xa2ev\xd4\x05\x00";
        assert!(wire(&packet(ext, &[]), "/").is_none(), "unknown ext");
        let index_key = b"\x92\xa2ev\x82\xa1b\x01\xa11\x02";
        assert!(
            wire(&packet(index_key, &[]), "/").is_none(),
            "integer-like key"
        );
        let dup = b"\x92\xa2ev\x82\xa1b\x01\xa1b\x02";
        assert!(wire(&packet(dup, &[]), "/").is_none(), "duplicate key");
        let proto = b"\x92\xa2ev\x81\xa9__proto__\x01";
        assert!(wire(&packet(proto, &[]), "/").is_none(), "__proto__");
        let num_key = b"\x92\xa2ev\x81\x01\x01";
        assert!(wire(&packet(num_key, &[]), "/").is_none(), "non-string key");
        let ok = b"\x91\xa2ev";
        assert!(wire(&packet(ok, &[("id", 1)]), "/").is_none(), "ack id");
        let mut truncated = packet(ok, &[]);
        truncated.pop();
        assert!(wire(&truncated, "/").is_none(), "truncated");
    }

    #[test]
    fn keys_that_stay_in_order_are_kept() {
        // {"b":1,"a":2,"01":3,"4294967295":4}: none of them is an array index.
        let data = b"\x92\xa2ev\x84\xa1b\x01\xa1a\x02\xa201\x03\xaa4294967295\x04";
        assert_eq!(
            wire(&packet(data, &[]), "/").unwrap(),
            r#"2["ev",{"b":1,"a":2,"01":3,"4294967295":4}]"#
        );
        assert!(is_array_index(b"4294967294") && !is_array_index(b"4294967295"));
        assert!(!is_array_index(b"01") && !is_array_index(b"1a") && is_array_index(b"0"));
    }

    #[test]
    fn binary_values_become_numbered_placeholders_in_walk_order() {
        // ["ev", bin[1], {"a": bin[], "b": [nil, bin[2,3]]}]
        let data = b"\x93\xa2ev\xc4\x01\x01\x82\xa1a\xc4\x00\xa1b\x92\xc0\xc4\x02\x02\x03";
        let wire = wire_of_event_data(data, "/chat").unwrap();
        assert_eq!(
            wire,
            EventWire::Binary {
                text: concat!(
                    r#"53-/chat,["ev",{"_placeholder":true,"num":0},"#,
                    r#"{"a":{"_placeholder":true,"num":1},"b":[null,{"_placeholder":true,"num":2}]}]"#
                )
                .into(),
                attachments: vec![&[1u8][..], &[][..], &[2u8, 3][..]],
            }
        );
        let plain = b"\x92\xa2ev\x01";
        assert_eq!(
            wire_of_event_data(plain, "/").unwrap(),
            EventWire::Text(r#"2["ev",1]"#.into())
        );
        // A binary value next to a date: only JS knows (the general path has no binary).
        let date = b"\x93\xa2ev\xc4\x01\x01\xd6\xff\x00\x00\x00\x00";
        assert_eq!(wire_of_event_data(date, "/"), None);
        // Keys JS would reorder stay refused with binary values too.
        let index_key = b"\x92\xa2ev\x81\xa11\xc4\x00";
        assert_eq!(wire_of_event_data(index_key, "/"), None);
    }

    #[test]
    fn dates_and_undefined_follow_json_stringify() {
        // ["ev", Date(0) as timestamp32, undefined]
        let data = b"\x93\xa2ev\xd6\xff\x00\x00\x00\x00\xd4\x00\x00";
        assert_eq!(
            wire(&packet(data, &[]), "/").unwrap(),
            r#"2["ev","1970-01-01T00:00:00.000Z",null]"#
        );
    }
}
