//! Splits a classic `REMOTE_FETCH` answer (PROTOCOL.md 2.4: the JSON text
//! `{"requestId":..,"sockets":[{"id","handshake","rooms","data"}, ..]}`) so that JS can build
//! the socket details without parsing every handshake up front.
//!
//! Why: the handshakes (headers, query, auth, ...) are about seven eighths of such an answer,
//! and `JSON.parse` of them was half of a requesting node's CPU time in `fetchSockets()`
//! across 3 nodes x 100 sockets, while most callers read `id`, `rooms` or `data` only. The
//! JS side parses the rest at once and each handshake when it is first used.

use crate::codec::msgpack;
use serde::Deserialize;
use serde_json::value::RawValue;

#[derive(Deserialize)]
struct Answer<'a> {
    #[serde(borrow)]
    sockets: Vec<Details<'a>>,
}

/// What socket.io's `RemoteSocket` reads of each entry; other fields are ignored, as there.
#[derive(Deserialize)]
struct Details<'a> {
    #[serde(borrow)]
    id: &'a RawValue,
    #[serde(borrow)]
    handshake: &'a RawValue,
    #[serde(borrow)]
    rooms: &'a RawValue,
    #[serde(borrow)]
    data: &'a RawValue,
}

/// First byte of a split answer.
pub const SPLIT_MARK: u8 = 0;
/// First byte of an answer handed over as published (then follows the answer).
pub const WHOLE_MARK: u8 = 1;

/// `answer` as `SPLIT_MARK, head_len: u32 LE, head, handshakes`, where `head` is the JSON text
/// `[[id, rooms, data], ..]` and `handshakes` the JSON text `[handshake, ..]`, in the same
/// order. None when the answer is not that shape (not JSON, a socket entry without one of the
/// four fields, a duplicate field, a handshake that is not an object): the caller then parses
/// the whole answer as before.
pub fn split_fetch_answer(answer: &[u8]) -> Option<Vec<u8>> {
    let parsed: Answer<'_> = serde_json::from_slice(answer).ok()?;
    let mut out = Vec::with_capacity(answer.len() + 8);
    out.push(SPLIT_MARK);
    out.extend_from_slice(&[0; 4]);
    out.push(b'[');
    for (i, socket) in parsed.sockets.iter().enumerate() {
        if !socket.handshake.get().starts_with('{') {
            return None;
        }
        if i > 0 {
            out.push(b',');
        }
        for (part, text) in [socket.id, socket.rooms, socket.data].iter().enumerate() {
            out.push(if part == 0 { b'[' } else { b',' });
            out.extend_from_slice(text.get().as_bytes());
        }
        out.push(b']');
    }
    out.push(b']');
    let head_len = (out.len() - 5) as u32;
    out[1..5].copy_from_slice(&head_len.to_le_bytes());
    out.push(b'[');
    for (i, socket) in parsed.sockets.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        out.extend_from_slice(socket.handshake.get().as_bytes());
    }
    out.push(b']');
    Some(out)
}

/// socket.io-adapter's `MessageType.FETCH_SOCKETS_RESPONSE`.
const FETCH_SOCKETS_RESPONSE: i64 = 8;

/// First byte of an answer that [`cluster_fetch_answer_as_json`] turned into JSON. No published
/// message starts with it (a MessagePack map does not, JSON text does not), so JS tells the
/// core's JSON from whatever a foreign publisher sends: a JSON message on these channels is
/// refused by the decoder, as by the official adapter.
pub const JSON_ANSWER_MARK: u8 = 0;

/// A cluster adapter's MessagePack `fetchSockets()` answer (every matching socket's details,
/// handshakes included; the streams adapter's pub/sub messages are always @msgpack/msgpack) as
/// [`JSON_ANSWER_MARK`] then the JSON text that `JSON.parse` turns into what the decoder would
/// give ([`msgpack::decoded_json`]): decoding 100 handshakes in JS was most of a requesting
/// node's time. None for every other message, and for answers JSON cannot carry exactly.
pub fn cluster_fetch_answer_as_json(payload: &[u8]) -> Option<Vec<u8>> {
    // decoded_json checks everything it writes: the type is only peeked at.
    if msgpack::peek_message_type(payload) != Some(FETCH_SOCKETS_RESPONSE) {
        return None;
    }
    let json = msgpack::decoded_json(payload, &msgpack::Limits::default())?;
    let mut out = Vec::with_capacity(json.len() + 1);
    out.push(JSON_ANSWER_MARK);
    out.extend_from_slice(json.as_bytes());
    Some(out)
}

/// What the JS side of a classic fetchSockets gets for each answer: split when it can be,
/// else [`WHOLE_MARK`] and the answer as published (whatever a custom parser made of it).
pub fn fetch_answer_for_js(answer: &[u8]) -> Vec<u8> {
    split_fetch_answer(answer).unwrap_or_else(|| {
        let mut whole = Vec::with_capacity(answer.len() + 1);
        whole.push(WHOLE_MARK);
        whole.extend_from_slice(answer);
        whole
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(out: &[u8]) -> (String, String) {
        assert_eq!(out[0], SPLIT_MARK);
        let head_len = u32::from_le_bytes(out[1..5].try_into().unwrap()) as usize;
        let head = String::from_utf8(out[5..5 + head_len].to_vec()).unwrap();
        let handshakes = String::from_utf8(out[5 + head_len..].to_vec()).unwrap();
        (head, handshakes)
    }

    #[test]
    fn splits_ids_rooms_data_from_handshakes() {
        let answer = br#"{"requestId":"abc","sockets":[
            {"id":"s1","handshake":{"headers":{"host":"h"},"query":{"EIO":"4"},"auth":{}},"rooms":["s1","r"],"data":{"user":"\u00e9\"x"},"extra":1},
            {"data":null,"rooms":[],"id":"s2","handshake":{}}]}"#;
        let (head, handshakes) = read(&split_fetch_answer(answer).unwrap());
        assert_eq!(
            head,
            r#"[["s1",["s1","r"],{"user":"\u00e9\"x"}],["s2",[],null]]"#
        );
        assert_eq!(
            handshakes,
            r#"[{"headers":{"host":"h"},"query":{"EIO":"4"},"auth":{}},{}]"#
        );
    }

    #[test]
    fn no_sockets() {
        let (head, handshakes) = read(&split_fetch_answer(br#"{"sockets":[]}"#).unwrap());
        assert_eq!((head.as_str(), handshakes.as_str()), ("[]", "[]"));
    }

    #[test]
    fn other_shapes_are_left_to_the_caller() {
        for answer in [
            &b"\x82\xa9requestId"[..],                                // MessagePack
            br#"{"requestId":"a"}"#,                                  // no sockets
            br#"{"sockets":[{"id":"s","rooms":[],"data":{}}]}"#,      // no handshake
            br#"{"sockets":[{"id":"s","handshake":{},"rooms":[]}]}"#, // no data
            br#"{"sockets":[{"id":"s","handshake":null,"rooms":[],"data":1}]}"#, // not an object
            br#"{"sockets":[{"id":"s","id":"t","handshake":{},"rooms":[],"data":1}]}"#, // duplicate
            br#"{"sockets":[{"id":"s","handshake":{},"rooms":[],"data":1}"#, // truncated
        ] {
            assert!(split_fetch_answer(answer).is_none(), "{answer:?}");
            assert_eq!(
                fetch_answer_for_js(answer),
                [&[WHOLE_MARK], answer].concat()
            );
        }
    }
}
