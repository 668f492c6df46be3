//! Reads just enough of a request or response to route it: type, sender uid, request id.
//! JSON when the first byte is `{` (as the official `onrequest`/`onresponse` sniff), MessagePack
//! otherwise. Nothing else of the message is decoded here.

use super::cluster_event::{self, EventText};
use crate::codec::json_scan::skip_ws;
use crate::codec::{json_check, msgpack};
use serde::Deserialize;
use serde_json::value::RawValue;
use std::borrow::Cow;

#[derive(Debug, Default, PartialEq)]
pub struct Header<'a> {
    pub msg_type: Option<i64>,
    pub uid: Option<Cow<'a, str>>,
    pub request_id: Option<Cow<'a, str>>,
    pub nsp: Option<Cow<'a, str>>,
    /// The raw `data` value of a JSON message (None for MessagePack).
    pub data: Option<&'a str>,
    /// The encoded `data` value of a MessagePack message (None for JSON).
    pub data_msgpack: Option<&'a [u8]>,
}

#[derive(Deserialize)]
struct JsonHeader<'a> {
    #[serde(rename = "type", default)]
    msg_type: Option<serde_json::Value>,
    #[serde(borrow, default)]
    uid: Option<Cow<'a, str>>,
    #[serde(rename = "requestId", borrow, default)]
    request_id: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    nsp: Option<Cow<'a, str>>,
    /// Any JSON value (a serverSideEmit answer's `data` is whatever the callback got).
    #[serde(borrow, default)]
    data: Option<&'a RawValue>,
}

/// Cluster-adapter messages keep their request id inside `data`.
#[derive(Deserialize)]
struct JsonData<'a> {
    #[serde(rename = "requestId", borrow, default)]
    request_id: Option<Cow<'a, str>>,
}

pub fn read_header(payload: &[u8]) -> Result<Header<'_>, String> {
    read_header_with(payload, true)
}

/// [`read_header`] for a broadcast channel's messages, which are routed without their request
/// id: a JSON message's `data` is not read a second time for a `requestId` inside it (it was
/// a third pass over every sharded broadcast's data, with the validation and the event walk).
pub fn read_broadcast_header(payload: &[u8]) -> Result<Header<'_>, String> {
    read_header_with(payload, false)
}

/// [`read_broadcast_header`] of a JSON message in its usual form, and the event of its `data`,
/// from one walk that checks the JSON as it goes ([`json_check`]): serde's reading of the
/// message and then the walk of its data for the event read the event's arguments twice,
/// both on every sharded receiver for every broadcast. "Usual": `type` a plain integer, `uid`
/// and `nsp` strings without escapes, no key written with escapes or given twice, no top-level
/// `requestId`. Anything else is None, and the caller reads the message with serde as before
/// (which also tells a malformed message apart).
pub fn read_json_broadcast_header(payload: &[u8]) -> Option<(Header<'_>, Option<EventText<'_>>)> {
    // JSON when the first byte is `{`, as read_header (and the official adapter) tell.
    if payload.first() != Some(&b'{') {
        return None;
    }
    let text = std::str::from_utf8(payload).ok()?;
    let bytes = text.as_bytes();
    let mut header = Header::default();
    let mut event = None;
    let mut unusual = false;
    let (mut has_type, mut has_data) = (false, false);
    let end = json_check::walk_object(bytes, skip_ws(bytes, 0), |key, at| {
        let given_before = match key {
            b"type" => std::mem::replace(&mut has_type, true),
            b"data" => std::mem::replace(&mut has_data, true),
            b"uid" => header.uid.is_some(),
            b"nsp" => header.nsp.is_some(),
            _ => false,
        };
        if given_before {
            unusual = true;
        }
        match key {
            b"type" => {
                let end = json_check::value_end(bytes, at)?;
                let digits = &text[at..end];
                if digits.len() <= 18 && digits.bytes().all(|b| b.is_ascii_digit()) {
                    header.msg_type = digits.parse().ok();
                } else {
                    unusual = true;
                }
                Some(end)
            }
            b"uid" | b"nsp" => {
                let end = json_check::value_end(bytes, at)?;
                let value = &text[at..end];
                match value.strip_prefix('"').and_then(|v| v.strip_suffix('"')) {
                    Some(plain) if !plain.contains('\\') => {
                        let slot = if key == b"uid" {
                            &mut header.uid
                        } else {
                            &mut header.nsp
                        };
                        *slot = Some(Cow::Borrowed(plain));
                    }
                    _ => unusual = true,
                }
                Some(end)
            }
            b"data" if bytes.get(at) == Some(&b'{') => {
                let (end, found) = cluster_event::walk_broadcast_data(text, at)?;
                event = found;
                header.data = text.get(at..end);
                Some(end)
            }
            b"data" => {
                let end = json_check::value_end(bytes, at)?;
                // As serde's Option<&RawValue>: null is no data.
                header.data = text.get(at..end).filter(|raw| *raw != "null");
                Some(end)
            }
            _ => {
                if key == b"requestId" || key.contains(&b'\\') {
                    unusual = true;
                }
                json_check::value_end(bytes, at)
            }
        }
    })?;
    if unusual || skip_ws(bytes, end) != bytes.len() {
        return None;
    }
    Some((header, event))
}

fn read_header_with(payload: &[u8], request_id_in_data: bool) -> Result<Header<'_>, String> {
    if payload.first() == Some(&b'{') {
        let h: JsonHeader =
            serde_json::from_slice(payload).map_err(|e| format!("bad JSON: {e}"))?;
        let msg_type = match h.msg_type {
            Some(serde_json::Value::Number(n)) => n.as_i64(),
            _ => None,
        };
        let request_id = h.request_id.or_else(|| {
            h.data
                .filter(|raw| request_id_in_data && raw.get().starts_with('{'))
                .and_then(|raw| serde_json::from_str::<JsonData>(raw.get()).ok())
                .and_then(|d| d.request_id)
        });
        Ok(Header {
            msg_type,
            uid: h.uid,
            request_id,
            nsp: h.nsp,
            data: h.data.map(RawValue::get),
            data_msgpack: None,
        })
    } else {
        let h = msgpack::read_message_header(payload, request_id_in_data)
            .map_err(|e| format!("bad MessagePack: {e}"))?;
        Ok(Header {
            msg_type: h.msg_type,
            uid: h.uid.map(Cow::Borrowed),
            request_id: h.request_id.map(Cow::Borrowed),
            nsp: h.nsp.map(Cow::Borrowed),
            data: None,
            data_msgpack: h.data,
        })
    }
}

/// The top-level `requestId` of a JSON message, read without looking past it: found when it
/// is a plain string (no escapes) after nothing but scalar members. Why: every node gets every
/// other node's answers on the common response channel (a fetchSockets answer is ~0.5 KB per
/// socket), and reading a whole answer's header only to drop it as foreign was a sixth of a
/// responding node's CPU in fetchSockets across 3 nodes x 100 sockets. None: not found that
/// cheaply (the caller reads the whole header). The rest of the message is not validated here.
pub fn peek_json_request_id(payload: &[u8]) -> Option<&str> {
    let mut scan = Scan {
        bytes: payload,
        at: 0,
    };
    scan.expect(b'{')?;
    // Answers put `requestId` first or second (after `type`); a few scalars are allowed before.
    for _ in 0..4 {
        let key = scan.plain_string()?;
        scan.expect(b':')?;
        if key == b"requestId" {
            return std::str::from_utf8(scan.plain_string()?).ok();
        }
        scan.skip_scalar()?;
        scan.expect(b',')?;
    }
    None
}

/// A forward-only reader for [`peek_json_request_id`].
struct Scan<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Scan<'a> {
    fn skip_whitespace(&mut self) {
        while matches!(self.bytes.get(self.at), Some(b' ' | b'\t' | b'\n' | b'\r')) {
            self.at += 1;
        }
    }

    fn expect(&mut self, byte: u8) -> Option<()> {
        self.skip_whitespace();
        (self.bytes.get(self.at) == Some(&byte)).then(|| self.at += 1)
    }

    /// A string's contents when it holds no escape.
    fn plain_string(&mut self) -> Option<&'a [u8]> {
        self.expect(b'"')?;
        let rest = &self.bytes[self.at..];
        let end = rest.iter().position(|&b| b == b'"' || b == b'\\')?;
        if rest[end] != b'"' {
            return None;
        }
        self.at += end + 1;
        Some(&rest[..end])
    }

    /// A number, true, false, null or a string without escapes.
    fn skip_scalar(&mut self) -> Option<()> {
        self.skip_whitespace();
        match self.bytes.get(self.at)? {
            b'"' => self.plain_string().map(drop),
            b'-' | b'0'..=b'9' | b't' | b'f' | b'n' => {
                let rest = &self.bytes[self.at..];
                let len = rest.iter().position(
                    |b| !matches!(b, b'-' | b'+' | b'.' | b'0'..=b'9' | b'a'..=b'z' | b'E'),
                )?;
                self.at += len;
                Some(())
            }
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_json_headers_with_escapes() {
        let h = read_header(br#"{"uid":"a\"b","requestId":"r1","type":5,"opts":{"rooms":[]}}"#)
            .unwrap();
        assert_eq!(h.msg_type, Some(5));
        assert_eq!(h.uid.as_deref(), Some("a\"b"));
        assert_eq!(h.request_id.as_deref(), Some("r1"));
    }

    #[test]
    fn reads_request_id_inside_data() {
        let h = read_header(
            br#"{"type":11,"data":{"requestId":"x","clientCount":1},"uid":"u","nsp":"/"}"#,
        )
        .unwrap();
        assert_eq!(h.request_id.as_deref(), Some("x"));
        assert_eq!(h.nsp.as_deref(), Some("/"));
    }

    /// What the one walk replaced: serde's header, then the walk of its data.
    fn reference(payload: &[u8]) -> Option<(Header<'_>, Option<EventText<'_>>)> {
        let header = read_broadcast_header(payload).ok()?;
        let event = header
            .data
            .and_then(cluster_event::broadcast_event_text_validated);
        Some((header, event))
    }

    const MESSAGES: [&str; 6] = [
        r#"{"type":3,"data":{"packet":{"type":2,"data":["ev",1]},"opts":{"rooms":[],"except":[],"flags":{}}},"uid":"Ab12","nsp":"/"}"#,
        r#"{ "uid" : "u" , "type" : 3 , "nsp" : "/chat" , "data" : { "opts" : { "rooms" : [ "r" ] , "except" : [ ] } , "packet" : { "data" : [ "é" ] , "type" : 2 } } } "#,
        r#"{"type":5,"data":["x",{"y":[1,2]}],"uid":"u","nsp":"/","extra":{"a":null}}"#,
        r#"{"type":3,"data":{"requestId":"r","packet":{"type":2,"data":[1]},"opts":{}},"uid":"u","nsp":"/"}"#,
        r#"{"type":3,"data":{"packet":{"type":2,"data":[1]}},"uid":"u"}"#,
        r#"{"type":4,"uid":"u","nsp":"/","data":null}"#,
    ];

    #[test]
    fn one_walk_reads_usual_messages_as_serde_and_the_walk_do() {
        for message in MESSAGES {
            let fast = read_json_broadcast_header(message.as_bytes());
            assert!(fast.is_some(), "usual: {message}");
            assert_eq!(fast, reference(message.as_bytes()), "{message}");
        }
        // Unusual forms are left to serde.
        for message in [
            r#"{"type":3.0,"data":{},"uid":"u"}"#,
            r#"{"type":3,"uid":"a\"b","data":{}}"#,
            r#"{"type":3,"uid":null,"data":{}}"#,
            r#"{"type":3,"type":3,"data":{}}"#,
            r#"{"\u0074ype":3,"data":{}}"#,
            r#"{"type":3,"requestId":"r","data":{}}"#,
            r#"{"type":3,"data":{"packet":}}"#,
        ] {
            assert_eq!(
                read_json_broadcast_header(message.as_bytes()),
                None,
                "{message}"
            );
        }
    }

    proptest::proptest! {
        /// Damaged messages: whatever the one walk still reads, serde and the walk read alike.
        #[test]
        fn one_walk_agrees_on_damaged_messages(
            which in 0..MESSAGES.len(),
            at in 0usize..300,
            edit in 0u8..3,
            byte in proptest::sample::select(b"{}[]\",:\\ a03\x01.-".to_vec()),
        ) {
            let bytes = crate::test_support::damaged(MESSAGES[which], at, edit, byte);
            if let Some(fast) = read_json_broadcast_header(&bytes) {
                proptest::prop_assert_eq!(Some(fast), reference(&bytes));
            }
        }
    }

    #[test]
    fn broadcast_headers_leave_data_unread_but_still_validated() {
        let payload =
            br#"{"type":3,"data":{"requestId":"x","packet":{"type":2,"data":[1]}},"uid":"u","nsp":"/"}"#;
        let h = read_broadcast_header(payload).unwrap();
        assert_eq!(h.request_id, None);
        assert_eq!(h.msg_type, Some(3));
        assert_eq!(h.uid.as_deref(), Some("u"));
        assert_eq!(
            h.data,
            Some(r#"{"requestId":"x","packet":{"type":2,"data":[1]}}"#)
        );
        assert!(read_broadcast_header(br#"{"type":3,"data":{"packet":[1,]},"uid":"u"}"#).is_err());
    }

    #[test]
    fn msgpack_broadcast_headers_leave_data_unread_but_still_validated() {
        // {type: 3, data: {requestId: "x", packet: {type: 5, data: [bin 1 2]}}, uid: "u"}
        let payload: &[u8] = &[
            0x83, 0xa4, b't', b'y', b'p', b'e', 0x03, 0xa4, b'd', b'a', b't', b'a', 0x82, 0xa9,
            b'r', b'e', b'q', b'u', b'e', b's', b't', b'I', b'd', 0xa1, b'x', 0xa6, b'p', b'a',
            b'c', b'k', b'e', b't', 0x82, 0xa4, b't', b'y', b'p', b'e', 0x05, 0xa4, b'd', b'a',
            b't', b'a', 0x91, 0xc4, 0x02, 0x01, 0x02, 0xa3, b'u', b'i', b'd', 0xa1, b'u',
        ];
        let h = read_broadcast_header(payload).unwrap();
        assert_eq!(h.request_id, None);
        assert_eq!((h.msg_type, h.uid.as_deref()), (Some(3), Some("u")));
        assert_eq!(h.data_msgpack.map(<[u8]>::len), Some(37));
        assert_eq!(
            read_header(payload).unwrap().request_id.as_deref(),
            Some("x")
        );
        // Still the whole message's walk: a damaged packet inside data is refused.
        let mut damaged = payload.to_vec();
        damaged[45] = 0xc1; // never used in MessagePack, in place of the bin's 0xc4
        assert!(read_broadcast_header(&damaged).is_err());
    }

    #[test]
    fn accepts_any_data_value() {
        let h = read_header(br#"{"type":6,"requestId":"r","data":"pong"}"#).unwrap();
        assert_eq!(h.request_id.as_deref(), Some("r"));
        let h = read_header(br#"{"type":6,"requestId":"r","data":[1,{"a":null}]}"#).unwrap();
        assert_eq!(h.msg_type, Some(6));
    }

    #[test]
    fn rejects_garbage() {
        assert!(read_header(b"{not json").is_err());
        assert!(read_header(b"\xc1").is_err());
        assert!(read_header(b"").is_err());
    }
    #[test]
    fn peeks_a_leading_request_id() {
        let big = format!(
            r#"{{"requestId":"r1","sockets":[{}]}}"#,
            "[1],".repeat(1000) + "2"
        );
        assert_eq!(peek_json_request_id(big.as_bytes()), Some("r1"));
        let ack = br#"{ "type" : 6 , "requestId":"r2","data":{"a":1}}"#;
        assert_eq!(peek_json_request_id(ack), Some("r2"));
        let after_scalars = br#"{"uid":"u","x":-1.5e3,"y":null,"requestId":"r3"}"#;
        assert_eq!(peek_json_request_id(after_scalars), Some("r3"));
        // Agrees with the whole read wherever it answers.
        for msg in [big.as_bytes(), ack, after_scalars] {
            assert_eq!(
                read_header(msg).unwrap().request_id.as_deref(),
                peek_json_request_id(msg)
            );
        }
    }

    #[test]
    fn peek_leaves_the_rest_to_the_whole_read() {
        for msg in [
            &br#"{"sockets":[],"requestId":"r"}"#[..], // after a non-scalar
            br#"{"requestId":"a\"b"}"#,                // escaped
            br#"{"type":11,"data":{"requestId":"x"}}"#, // inside data
            br#"{"requestId":7}"#,
            br#"{"a":1,"b":2,"c":3,"d":4,"requestId":"late"}"#,
            br#"{"requestId""#,
            b"{",
            b"",
            b"\x82\xa9requestId",
        ] {
            assert_eq!(
                peek_json_request_id(msg),
                None,
                "{}",
                String::from_utf8_lossy(msg)
            );
        }
    }
}
