//! Splits a classic `REMOTE_FETCH` answer (PROTOCOL.md 2.4: the JSON text
//! `{"requestId":..,"sockets":[{"id","handshake","rooms","data"}, ..]}`) so that JS can build
//! the socket details without parsing every handshake up front.
//!
//! Why: the handshakes (headers, query, auth, ...) are about seven eighths of such an answer,
//! and `JSON.parse` of them was half of a requesting node's CPU time in `fetchSockets()`
//! across 3 nodes x 100 sockets, while most callers read `id`, `rooms` or `data` only. The
//! JS side parses the rest at once and each handshake when it is first used.

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

/// `answer` as `head_len: u32 LE, head, count: u32 LE, count x (len: u32 LE), handshakes`,
/// where `head` is the JSON text `[[id, rooms, data], ..]` and the handshakes are the JSON
/// texts of the entries' handshakes, in order. None when the answer is not that shape (not
/// JSON, a socket entry without one of the four fields, a duplicate field, a handshake that
/// is not an object): the caller then parses the whole answer as before.
pub fn split_fetch_answer(answer: &[u8]) -> Option<Vec<u8>> {
    let parsed: Answer<'_> = serde_json::from_slice(answer).ok()?;
    let mut head = Vec::with_capacity(answer.len() / 4);
    head.push(b'[');
    let mut handshake_bytes = 0;
    for (i, socket) in parsed.sockets.iter().enumerate() {
        if !socket.handshake.get().starts_with('{') {
            return None;
        }
        handshake_bytes += socket.handshake.get().len();
        if i > 0 {
            head.push(b',');
        }
        head.push(b'[');
        head.extend_from_slice(socket.id.get().as_bytes());
        head.push(b',');
        head.extend_from_slice(socket.rooms.get().as_bytes());
        head.push(b',');
        head.extend_from_slice(socket.data.get().as_bytes());
        head.push(b']');
    }
    head.push(b']');
    let count = parsed.sockets.len();
    let mut out = Vec::with_capacity(8 + head.len() + 4 * count + handshake_bytes);
    out.extend_from_slice(&(head.len() as u32).to_le_bytes());
    out.extend_from_slice(&head);
    out.extend_from_slice(&(count as u32).to_le_bytes());
    for socket in &parsed.sockets {
        out.extend_from_slice(&(socket.handshake.get().len() as u32).to_le_bytes());
    }
    for socket in &parsed.sockets {
        out.extend_from_slice(socket.handshake.get().as_bytes());
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(out: &[u8]) -> (String, Vec<String>) {
        let u32_at = |at: usize| u32::from_le_bytes(out[at..at + 4].try_into().unwrap()) as usize;
        let head_len = u32_at(0);
        let head = String::from_utf8(out[4..4 + head_len].to_vec()).unwrap();
        let count = u32_at(4 + head_len);
        let mut at = 8 + head_len + 4 * count;
        let mut handshakes = Vec::new();
        for i in 0..count {
            let len = u32_at(8 + head_len + 4 * i);
            handshakes.push(String::from_utf8(out[at..at + len].to_vec()).unwrap());
            at += len;
        }
        assert_eq!(at, out.len());
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
            vec![
                r#"{"headers":{"host":"h"},"query":{"EIO":"4"},"auth":{}}"#.to_string(),
                "{}".to_string()
            ]
        );
    }

    #[test]
    fn no_sockets() {
        let (head, handshakes) = read(&split_fetch_answer(br#"{"sockets":[]}"#).unwrap());
        assert_eq!(head, "[]");
        assert!(handshakes.is_empty());
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
        }
    }
}
