//! Splits a classic `REMOTE_FETCH` answer (PROTOCOL.md 2.4: the JSON text
//! `{"requestId":..,"sockets":[{"id","handshake","rooms","data"}, ..]}`) so that JS can build
//! the socket details without parsing every handshake up front.
//!
//! Why: the handshakes (headers, query, auth, ...) are about seven eighths of such an answer,
//! and `JSON.parse` of them was half of a requesting node's CPU time in `fetchSockets()`
//! across 3 nodes x 100 sockets, while most callers read `id`, `rooms` or `data` only. The
//! JS side parses the rest at once and each handshake when it is first used.

use crate::codec::{json_check, json_scan, msgpack};

/// Sets `slot` to `value` unless it is set already (a duplicate member: None).
fn set_once<'a>(slot: &mut Option<&'a [u8]>, value: &'a [u8]) -> Option<()> {
    slot.replace(value).is_none().then_some(())
}

/// The socket entry (an object) at `p` of `answer`: `[id, handshake, rooms, data]` and where it
/// ends. What socket.io's `RemoteSocket` reads; other members are checked and ignored, as there.
/// None when one of the four is missing or twice there, a key has an escape (it could still be
/// one of them), or the handshake is not an object.
fn socket_details(answer: &[u8], p: usize) -> Option<([&[u8]; 4], usize)> {
    let mut details: [Option<&[u8]>; 4] = [None; 4];
    let end = json_check::walk_object(answer, p, |key, start| {
        let end = json_check::value_end(answer, start)?;
        let value = &answer[start..end];
        match key {
            b"id" => set_once(&mut details[0], value)?,
            b"handshake" => set_once(&mut details[1], value)?,
            b"rooms" => set_once(&mut details[2], value)?,
            b"data" => set_once(&mut details[3], value)?,
            _ if key.contains(&b'\\') => return None,
            _ => {}
        }
        Some(end)
    })?;
    let [Some(id), Some(handshake), Some(rooms), Some(data)] = details else {
        return None;
    };
    handshake
        .starts_with(b"{")
        .then_some(([id, handshake, rooms, data], end))
}

/// Where the sockets array of a JSON fetchSockets answer is: `{requestId, sockets}` (classic
/// adapter) or `{type, data: {requestId, sockets}, uid, nsp}` (cluster adapters: sharded).
pub const CLASSIC_SOCKETS: &[&[u8]] = &[b"sockets"];
pub const CLUSTER_SOCKETS: &[&[u8]] = &[b"data", b"sockets"];

/// The sockets array found at the end of a path: its byte range and its entries.
struct SocketsArray<'a> {
    start: usize,
    end: usize,
    entries: Vec<[&'a [u8]; 4]>,
}

/// Walks the object at `p` (checking every byte of it) and, along `path`, the sockets array.
/// Returns where the object ends. None when a key on the way is twice there or has an escape
/// (it could still be the one looked for), or an entry is not as [`socket_details`] wants it.
fn walk_to_sockets<'a>(
    answer: &'a [u8],
    p: usize,
    path: &[&[u8]],
    found: &mut Option<SocketsArray<'a>>,
) -> Option<usize> {
    let (&wanted, rest) = path.split_first()?;
    let mut seen = false;
    json_check::walk_object(answer, p, |key, start| {
        if key.contains(&b'\\') {
            return None;
        }
        if key != wanted {
            return json_check::value_end(answer, start);
        }
        if std::mem::replace(&mut seen, true) {
            return None;
        }
        if !rest.is_empty() {
            return walk_to_sockets(answer, start, rest, found);
        }
        let mut entries = Vec::new();
        let end = json_check::walk_array(answer, start, |q| {
            let (details, end) = socket_details(answer, q)?;
            entries.push(details);
            Some(end)
        })?;
        *found = Some(SocketsArray {
            start,
            end,
            entries,
        });
        Some(end)
    })
}

/// First byte of a split answer.
pub const SPLIT_MARK: u8 = 0;
/// First byte of an answer handed over as published (then follows the answer).
pub const WHOLE_MARK: u8 = 1;

/// `answer` as `SPLIT_MARK, head_len: u32 LE, head, handshakes`: `head` is the answer with
/// its sockets array (at `path`) written `[[id, rooms, data], ..]`, `handshakes` the JSON text
/// `[handshake, ..]` in the same order. None when the answer is not that shape (not JSON, a
/// socket entry without one of the four fields, a duplicate field, a key with escapes, a
/// handshake that is not an object): the caller then parses the whole answer as before. Every
/// byte is checked against the JSON grammar (`codec::json_check`), so the parts JS parses
/// later parse.
pub fn split_fetch_answer(answer: &[u8], path: &[&[u8]]) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    split_fetch_answer_into(answer, path, &mut out).then_some(out)
}

/// [`split_fetch_answer`] appended to `out` (a delivery batch: the answer is not copied a
/// second time); false, and `out` as it was, when the answer is not that shape.
pub fn split_fetch_answer_into(answer: &[u8], path: &[&[u8]], out: &mut Vec<u8>) -> bool {
    // As the official decoders: JSON is what starts with `{` (anything else is MessagePack).
    if answer.first() != Some(&b'{') {
        return false;
    }
    let mut found = None;
    let Some(end) = walk_to_sockets(answer, 0, path, &mut found) else {
        return false;
    };
    let (Some(()), Some(sockets)) = (json_check::whole(answer, end, ()), found) else {
        return false;
    };
    let at = out.len();
    out.reserve(answer.len() + 8);
    out.push(SPLIT_MARK);
    out.extend_from_slice(&[0; 4]);
    out.extend_from_slice(&answer[..sockets.start]);
    out.push(b'[');
    for (i, [id, _, rooms, data]) in sockets.entries.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        for (part, text) in [id, rooms, data].iter().enumerate() {
            out.push(if part == 0 { b'[' } else { b',' });
            out.extend_from_slice(text);
        }
        out.push(b']');
    }
    out.push(b']');
    out.extend_from_slice(&answer[sockets.end..]);
    let head_len = (out.len() - at - 5) as u32;
    out[at + 1..at + 5].copy_from_slice(&head_len.to_le_bytes());
    out.push(b'[');
    for (i, [_, handshake, ..]) in sockets.entries.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        out.extend_from_slice(handshake);
    }
    out.push(b']');
    true
}

/// socket.io-adapter's `MessageType.FETCH_SOCKETS_RESPONSE`.
const FETCH_SOCKETS_RESPONSE: i64 = 8;

/// First byte of an answer that [`msgpack_fetch_answer_into`] turned into JSON whole. No
/// published message starts with it (a MessagePack map does not, JSON text does not), nor
/// does a split answer ([`SPLIT_MARK`]), so JS tells the core's JSON from whatever a foreign
/// publisher sends: a JSON message on these channels is refused by the decoder, as by the
/// official adapter.
pub const JSON_ANSWER_MARK: u8 = 2;

/// A cluster adapter's MessagePack `fetchSockets()` answer (every matching socket's details,
/// handshakes included; the streams adapter's pub/sub messages are always @msgpack/msgpack)
/// as JSON text that `JSON.parse` turns into what the decoder would give
/// ([`msgpack::decoded_json`]), split as [`split_fetch_answer`] splits a JSON answer (JS then
/// parses the handshakes on first use), or whole after [`JSON_ANSWER_MARK`] when it is not
/// that shape. Decoding 100 handshakes in JS was most of a requesting node's time, and
/// parsing them all at once still half of it. Appended to `out` (a delivery batch: the answer
/// is not copied a second time); false, and `out` as it was, for every other message and for
/// answers JSON cannot carry exactly.
pub fn msgpack_fetch_answer_into(payload: &[u8], out: &mut Vec<u8>) -> bool {
    // decoded_json checks everything it writes: the type is only peeked at.
    if msgpack::peek_message_type(payload) != Some(FETCH_SOCKETS_RESPONSE) {
        return false;
    }
    let Some(json) = msgpack::decoded_json(payload, &msgpack::Limits::default()) else {
        return false;
    };
    if !split_fetch_answer_into(json.as_bytes(), CLUSTER_SOCKETS, out) {
        out.push(JSON_ANSWER_MARK);
        out.extend_from_slice(json.as_bytes());
    }
    true
}

/// What the JS side of a classic fetchSockets gets for each answer: split when it can be,
/// else [`WHOLE_MARK`] and the answer as published (whatever a custom parser made of it).
pub fn fetch_answer_for_js(answer: &[u8]) -> Vec<u8> {
    split_fetch_answer(answer, CLASSIC_SOCKETS).unwrap_or_else(|| {
        let mut whole = Vec::with_capacity(answer.len() + 1);
        whole.push(WHOLE_MARK);
        whole.extend_from_slice(answer);
        whole
    })
}

/// A message of a cluster adapter's response channel split when it is a JSON fetchSockets
/// answer (`{"type":8,` first, as JSON.stringify writes every such answer); None for every
/// other message, handed over as published.
pub fn split_cluster_fetch_answer(payload: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    split_cluster_fetch_answer_into(payload, &mut out).then_some(out)
}

/// [`split_cluster_fetch_answer`] appended to `out`; false, and `out` as it was, for every
/// other message.
pub fn split_cluster_fetch_answer_into(payload: &[u8], out: &mut Vec<u8>) -> bool {
    payload.starts_with(br#"{"type":8,"#) && split_fetch_answer_into(payload, CLUSTER_SOCKETS, out)
}

/// A handshake left out of its socket's details (JSON.stringify left it out: undefined).
pub const NO_HANDSHAKE: u32 = u32::MAX;

/// An answering node's fetchSockets answer from its parts (lib/socket-details.js): `head`, then
/// the JSON array of every socket's `{id, handshake, rooms, data}`, then `tail`. `details` is
/// the JSON.stringify text of `[{id, rooms, data}, ..]`; the handshakes' JSON texts are
/// `handshakes` one after the other, `lengths[i]` bytes for the i-th socket
/// ([`NO_HANDSHAKE`]: none). Each handshake goes right after its socket's `id` member, where
/// JSON.stringify of `{id, handshake, rooms, data}` writes it, so the answer is the same text.
///
/// Why: the handshakes' texts are kept by JS between answers (they rarely change), and joining
/// some 50 KB of them into one string in JS cost a third of what serializing them again did.
/// None when the parts do not fit together (a caller's bug: the caller then fails loudly).
pub fn join_fetch_answer(
    head: &str,
    details: &str,
    handshakes: &[u8],
    lengths: &[u32],
    tail: &str,
) -> Option<Vec<u8>> {
    let sockets = json_scan::array_items(details)?;
    if sockets.len() != lengths.len() {
        return None;
    }
    let mut out = Vec::with_capacity(
        head.len() + details.len() + handshakes.len() + tail.len() + 16 * lengths.len(),
    );
    out.extend_from_slice(head.as_bytes());
    out.push(b'[');
    let mut next = 0usize;
    for (i, (socket, &length)) in sockets.iter().zip(lengths).enumerate() {
        let handshake = if length == NO_HANDSHAKE {
            None
        } else {
            let end = next.checked_add(length as usize)?;
            let text = handshakes.get(next..end)?;
            next = end;
            Some(text)
        };
        if i > 0 {
            out.push(b',');
        }
        let Some(text) = handshake else {
            if !socket.starts_with('{') {
                return None;
            }
            out.extend_from_slice(socket.as_bytes());
            continue;
        };
        // `id` is the first member when it is there at all (lib/socket-details.js writes it
        // so): the handshake goes right after it, else first. The rest is copied as it is.
        let (before, after) = match json_scan::first_member(socket) {
            Some(("id", id_end)) => (&socket[..id_end], &socket[id_end..]),
            _ => {
                let open = socket.get(..1).filter(|open| *open == "{")?;
                let rest = &socket[json_scan::skip_ws(socket.as_bytes(), 1)..];
                (open, rest)
            }
        };
        out.extend_from_slice(before.as_bytes());
        out.extend_from_slice(if before == "{" {
            b"\"handshake\":"
        } else {
            b",\"handshake\":"
        });
        out.extend_from_slice(text);
        if before == "{" && !after.starts_with('}') {
            out.push(b',');
        }
        out.extend_from_slice(after.as_bytes());
    }
    if next != handshakes.len() {
        return None;
    }
    out.push(b']');
    out.extend_from_slice(tail.as_bytes());
    Some(out)
}

/// A cluster adapter's MessagePack fetchSockets answer (`{type, data: {requestId, sockets},
/// uid, nsp}`, as @msgpack/msgpack encodes it) from its parts: `encoded` is the answer encoded
/// with one nil per socket in `sockets`; `details` holds, one after the other, each socket's
/// encoded `{id, handshake, rooms, data}`, with `handshake: null` where `lengths[i]` is not
/// [`NO_HANDSHAKE`]; those nils are replaced, in order, by the handshakes' encodings, one
/// after the other in `handshakes`. MessagePack values do not depend on where they sit, so the
/// result is the encoding of the whole answer (lib/socket-details.js keeps each socket's
/// details and each handshake's encoding while they stay the same). None when the parts do
/// not fit together.
pub fn splice_msgpack_answer(
    encoded: &[u8],
    details: &[u8],
    handshakes: &[u8],
    lengths: &[u32],
) -> Option<Vec<u8>> {
    let (answer, end) = msgpack::read_value(encoded).ok()?;
    let sockets = answer
        .as_map()?
        .get("data")?
        .as_map()?
        .get("sockets")?
        .as_array()?;
    if end != encoded.len() || sockets.len() != lengths.len() {
        return None;
    }
    let mut out = Vec::with_capacity(encoded.len() + details.len() + handshakes.len());
    let mut slots = sockets.iter();
    let (mut copied, mut next_detail, mut next_handshake) = (0usize, 0usize, 0usize);
    for &length in lengths {
        let slot = slots.next_raw()?;
        if slot != [0xc0] {
            return None;
        }
        let at = offset_in(encoded, slot);
        out.extend_from_slice(&encoded[copied..at]);
        copied = at + 1;
        let rest = &details[next_detail..];
        let (socket, used) = msgpack::read_value(rest).ok()?;
        let detail = &rest[..used];
        next_detail += used;
        if length == NO_HANDSHAKE {
            out.extend_from_slice(detail);
            continue;
        }
        let nil = socket.as_map()?.get_raw("handshake")?;
        if nil != [0xc0] {
            return None;
        }
        let nil_at = offset_in(detail, nil);
        let end = next_handshake.checked_add(length as usize)?;
        out.extend_from_slice(&detail[..nil_at]);
        out.extend_from_slice(handshakes.get(next_handshake..end)?);
        out.extend_from_slice(&detail[nil_at + 1..]);
        next_handshake = end;
    }
    if next_detail != details.len() || next_handshake != handshakes.len() {
        return None;
    }
    out.extend_from_slice(&encoded[copied..]);
    Some(out)
}

/// Where `part`, a subslice of `whole`, starts in it.
fn offset_in(whole: &[u8], part: &[u8]) -> usize {
    part.as_ptr() as usize - whole.as_ptr() as usize
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec::msgpack::Writer;

    /// A MessagePack fetchSockets answer up to its sockets: a map of `members` (the rest for
    /// the caller to write after the sockets), `type: 8`, `data: {requestId: "q", sockets:`
    /// and the header of an array of `sockets`.
    fn write_answer_head(w: &mut Writer, members: usize, sockets: usize) {
        w.write_map_len(members);
        w.write_str("type");
        w.write_u64(8);
        w.write_str("data");
        w.write_map_len(2);
        w.write_str("requestId");
        w.write_str("q");
        w.write_str("sockets");
        w.write_array_len(sockets);
    }

    #[test]
    fn joins_details_and_handshakes_as_json_stringify_writes_them() {
        let details = r#"[{"id":"a","rooms":["a","r"],"data":{"x":1}},{"rooms":[]},{"id":"c","rooms":[],"data":null}]"#;
        let handshakes = br#"{"headers":{"host":"h"}}{"auth":{}}"#;
        let out = join_fetch_answer(
            r#"{"requestId":"q","sockets":"#,
            details,
            handshakes,
            &[24, NO_HANDSHAKE, 11],
            "}",
        )
        .unwrap();
        assert_eq!(
            String::from_utf8(out).unwrap(),
            r#"{"requestId":"q","sockets":[{"id":"a","handshake":{"headers":{"host":"h"}},"rooms":["a","r"],"data":{"x":1}},{"rooms":[]},{"id":"c","handshake":{"auth":{}},"rooms":[],"data":null}]}"#
        );
        let empty = join_fetch_answer("", "[]", b"", &[], "").unwrap();
        assert_eq!(empty, b"[]");
        // Without an id first, the handshake comes first; the rest is kept as written.
        let out = join_fetch_answer(
            "",
            r#"[{"rooms":[]},{},{"id":"x"},{"data":1,"id":"y"}]"#,
            b"1234",
            &[1, 1, 1, 1],
            "",
        )
        .unwrap();
        assert_eq!(
            String::from_utf8(out).unwrap(),
            r#"[{"handshake":1,"rooms":[]},{"handshake":2},{"id":"x","handshake":3},{"handshake":4,"data":1,"id":"y"}]"#
        );
        // Socket details that are not objects do not fit, with or without a handshake.
        for lengths in [[1], [NO_HANDSHAKE]] {
            let handshakes: &[u8] = if lengths[0] == 1 { b"1" } else { b"" };
            assert!(join_fetch_answer("", "[null]", handshakes, &lengths, "").is_none());
        }
    }

    #[test]
    fn splices_socket_details_and_handshakes_in_place_of_nils() {
        type Part<'a> = &'a dyn Fn(&mut Writer);
        let socket = |w: &mut Writer, i: usize, handshake: Part| {
            w.write_map_len(3);
            w.write_str("id");
            w.write_str(&format!("s{i}"));
            w.write_str("handshake");
            handshake(w);
            w.write_str("rooms");
            w.write_array_len(0);
        };
        // {type: 8, data: {requestId: "q", sockets: [..]}, uid: "u"}, each socket written by
        // `item(w, i)`.
        let answer = |item: &dyn Fn(&mut Writer, usize)| {
            let mut w = Writer::new();
            write_answer_head(&mut w, 3, 3);
            for i in 0..3 {
                item(&mut w, i);
            }
            w.write_str("uid");
            w.write_str("u");
            w.into_inner()
        };
        let nil = |w: &mut Writer| w.write_nil();
        let h0 = |w: &mut Writer| {
            w.write_map_len(1);
            w.write_str("a");
            w.write_u64(1);
        };
        let h2 = |w: &mut Writer| w.write_str("not nil, kept as is");
        let parts: [Part; 3] = [&h0, &nil, &h2];
        let handshake_of = |i: usize| parts[i];
        let expected = answer(&|w, i| socket(w, i, handshake_of(i)));
        let encoded = answer(&|w, _| w.write_nil());
        // Sockets 0 and 1 with nil placeholders, socket 2 with its own (non-object) handshake.
        let details = {
            let mut w = Writer::new();
            for i in 0..3 {
                socket(&mut w, i, if i < 2 { &nil } else { &h2 });
            }
            w.into_inner()
        };
        // The handshake bytes of sockets 0 and 1: h0's map, then a nil (an undefined handshake).
        let h0_bytes = {
            let mut w = Writer::new();
            h0(&mut w);
            w.into_inner()
        };
        let handshakes = [h0_bytes.as_slice(), &[0xc0]].concat();
        let lengths = [h0_bytes.len() as u32, 1, NO_HANDSHAKE];
        let splice = |encoded: &[u8], details: &[u8], handshakes: &[u8], lengths: &[u32]| {
            splice_msgpack_answer(encoded, details, handshakes, lengths)
        };
        assert_eq!(
            splice(&encoded, &details, &handshakes, &lengths).unwrap(),
            expected
        );
        // Not fitting: too few lengths, handshake or detail bytes left over or missing, a slot
        // or a handshake that is not nil, a truncated answer.
        assert!(splice(&encoded, &details, &handshakes, &lengths[..2]).is_none());
        let longer = |bytes: &[u8]| [bytes, &[1]].concat();
        assert!(splice(&encoded, &details, &longer(&handshakes), &lengths).is_none());
        assert!(splice(&encoded, &longer(&details), &handshakes, &lengths).is_none());
        assert!(splice(
            &encoded,
            &details[..details.len() - 1],
            &handshakes,
            &lengths
        )
        .is_none());
        assert!(splice(&expected, &details, &handshakes, &lengths).is_none());
        let placed = answer(&|w, i| socket(w, i, &nil));
        assert!(splice(&encoded, &placed[..0], &handshakes, &lengths).is_none());
        let all_placed = [h0_bytes.as_slice(), &[0xc0], &h0_bytes].concat();
        let h0_len = h0_bytes.len() as u32;
        assert!(splice(&encoded, &details, &all_placed, &[h0_len, 1, h0_len]).is_none());
        assert!(splice(
            &encoded[..encoded.len() - 1],
            &details,
            &handshakes,
            &lengths
        )
        .is_none());
    }

    #[test]
    fn msgpack_answers_go_to_js_split_else_whole_json() {
        let msgpack_fetch_answer_for_js = |payload: &[u8]| {
            let mut out = b"before".to_vec();
            let done = msgpack_fetch_answer_into(payload, &mut out);
            assert_eq!(out[..6], *b"before", "appended after what the buffer held");
            assert_eq!(done, out.len() > 6, "nothing appended when refused");
            done.then(|| out[6..].to_vec())
        };
        // {type: 8, data: {requestId: "q", sockets: [{id, handshake, rooms, data}]}, uid, nsp}
        let answer = |handshake: &dyn Fn(&mut Writer)| {
            let mut w = Writer::new();
            write_answer_head(&mut w, 4, 1);
            w.write_map_len(4);
            w.write_str("id");
            w.write_str("s0");
            w.write_str("handshake");
            handshake(&mut w);
            w.write_str("rooms");
            w.write_array_len(1);
            w.write_str("r");
            w.write_str("data");
            w.write_nil();
            w.write_str("uid");
            w.write_str("u");
            w.write_str("nsp");
            w.write_str("/");
            w.into_inner()
        };
        let object = answer(&|w| {
            w.write_map_len(1);
            w.write_str("auth");
            w.write_map_len(0);
        });
        let split = msgpack_fetch_answer_for_js(&object).unwrap();
        assert_eq!(split[0], SPLIT_MARK);
        let head_len = u32::from_le_bytes(split[1..5].try_into().unwrap()) as usize;
        assert_eq!(
            std::str::from_utf8(&split[5..5 + head_len]).unwrap(),
            r#"{"type":8,"data":{"requestId":"q","sockets":[["s0",["r"],null]]},"uid":"u","nsp":"/"}"#
        );
        assert_eq!(&split[5 + head_len..], br#"[{"auth":{}}]"#);
        // A handshake that is not an object: the whole answer in JSON.
        let whole = msgpack_fetch_answer_for_js(&answer(&|w| w.write_str("h"))).unwrap();
        assert_eq!(whole[0], JSON_ANSWER_MARK);
        assert!(whole[1..].starts_with(
            br#"{"type":8,"data":{"requestId":"q","sockets":[{"id":"s0","handshake":"h","#
        ));
        // Not a fetchSockets answer, or not MessagePack.
        let mut other = object.clone();
        other[6] = 3; // type 3 (the first value: "type" is 1 + 4 bytes after the map header)
        assert!(msgpack_fetch_answer_for_js(&other).is_none());
        assert!(msgpack_fetch_answer_for_js(br#"{"type":8}"#).is_none());
    }

    #[test]
    fn parts_that_do_not_fit_are_refused() {
        let details = r#"[{"id":"a"}]"#;
        for (handshakes, lengths) in [
            (&b"{}"[..], &[][..]), // fewer lengths than sockets
            (b"{}", &[2, 2]),      // more
            (b"{}", &[3]),         // past the end
            (b"{}{}", &[2]),       // bytes left over
        ] {
            assert!(join_fetch_answer("", details, handshakes, lengths, "").is_none());
        }
        assert!(join_fetch_answer("", "{}", b"", &[], "").is_none());
    }

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
        let (head, handshakes) = read(&split_fetch_answer(answer, CLASSIC_SOCKETS).unwrap());
        assert_eq!(
            head,
            r#"{"requestId":"abc","sockets":[["s1",["s1","r"],{"user":"\u00e9\"x"}],["s2",[],null]]}"#
        );
        assert_eq!(
            handshakes,
            r#"[{"headers":{"host":"h"},"query":{"EIO":"4"},"auth":{}},{}]"#
        );
    }

    #[test]
    fn no_sockets() {
        let (head, handshakes) =
            read(&split_fetch_answer(br#"{"sockets":[]}"#, CLASSIC_SOCKETS).unwrap());
        assert_eq!(
            (head.as_str(), handshakes.as_str()),
            ("{\"sockets\":[]}", "[]")
        );
    }

    #[test]
    fn splits_cluster_answers_keeping_the_rest_of_the_message() {
        let answer = br#"{"type":8,"data":{"requestId":"q","sockets":[{"id":"a","handshake":{"h":1},"rooms":["a"],"data":{}}]},"uid":"u","nsp":"/"}"#;
        let (head, handshakes) = read(&split_cluster_fetch_answer(answer).unwrap());
        assert_eq!(
            head,
            r#"{"type":8,"data":{"requestId":"q","sockets":[["a",["a"],{}]]},"uid":"u","nsp":"/"}"#
        );
        assert_eq!(handshakes, r#"[{"h":1}]"#);
        for other in [
            &br#"{"type":6,"data":{"requestId":"q","packet":1},"uid":"u","nsp":"/"}"#[..],
            br#"{"data":{"sockets":[]},"type":8}"#, // not as JSON.stringify writes answers
            br#"{"type":8,"data":{"sockets":[]},"data":{"sockets":[]}}"#, // twice
            br#"{"type":8,"dat\u0061":{"sockets":[]}}"#, // an escaped key
            br#"{"type":8,"data":{"requestId":"q"}}"#, // no sockets
        ] {
            assert!(split_cluster_fetch_answer(other).is_none(), "{other:?}");
            let mut out = b"before".to_vec();
            assert!(!split_cluster_fetch_answer_into(other, &mut out));
            assert_eq!(out, b"before", "left as it was");
        }
        // Appended after what the buffer holds, the same bytes (head length included).
        let mut out = b"before".to_vec();
        assert!(split_cluster_fetch_answer_into(answer, &mut out));
        assert_eq!(out[..6], *b"before");
        assert_eq!(out[6..], split_cluster_fetch_answer(answer).unwrap());
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
            br#"{"sockets":[{"id":"s","handshake":{"a":01},"rooms":[],"data":1}]}"#, // bad number
            br#"{"sockets":[{"id":"s","handshake":{"a":"\q"},"rooms":[],"data":1}]}"#, // bad escape
            br#"{"sockets":[{"id":"s","handshake":{},"rooms":[],"data":1,}]}"#, // trailing comma
            br#"{"sock\u0065ts":[{"id":"s","handshake":{},"rooms":[],"data":1}]}"#, // escaped key
            br#" {"sockets":[]}"#, // not `{` first: MessagePack for the official decoders
            br#"{"sockets":[]} x"#, // trailing text
        ] {
            assert!(
                split_fetch_answer(answer, CLASSIC_SOCKETS).is_none(),
                "{answer:?}"
            );
            assert_eq!(
                fetch_answer_for_js(answer),
                [&[WHOLE_MARK], answer].concat()
            );
        }
    }

    /// What JSON.parse of the whole answer gives for the four details of each socket.
    fn parsed_details(answer: &[u8]) -> Option<Vec<[serde_json::Value; 4]>> {
        let value: serde_json::Value = serde_json::from_slice(answer).ok()?;
        let sockets = value.get("sockets")?.as_array()?;
        sockets
            .iter()
            .map(|s| {
                let field = |k: &str| s.get(k).cloned();
                let details = [
                    field("id")?,
                    field("handshake")?,
                    field("rooms")?,
                    field("data")?,
                ];
                details[1].is_object().then_some(details)
            })
            .collect()
    }

    proptest::proptest! {
        // Answers, whole or with one byte changed: split exactly when JSON.parse would give the
        // same details, and then the parts parse to those details.
        #[test]
        fn splits_what_json_parse_reads_the_same(
            sockets in proptest::collection::vec(("[a-z]{1,4}", "[a-z\"\\\\ ]{0,6}", 0u32..5), 0..4),
            damage in proptest::option::of((proptest::prelude::any::<proptest::sample::Index>(), proptest::sample::select(b"{}[],:\" \\0x".to_vec()))),
        ) {
            let entries: Vec<String> = sockets
                .iter()
                .map(|(id, header, n)| {
                    let header = serde_json::to_string(header).unwrap();
                    format!(
                        r#"{{"id":"{id}","handshake":{{"headers":{{"h":{header}}},"n":[{n},1.5e3]}},"rooms":["{id}"],"data":{{"n":{n}}}}}"#
                    )
                })
                .collect();
            let mut answer = format!(r#"{{"requestId":"q","sockets":[{}]}}"#, entries.join(",")).into_bytes();
            if let Some((at, byte)) = damage {
                let i = at.index(answer.len());
                answer[i] = byte;
            }
            let split = split_fetch_answer(&answer, CLASSIC_SOCKETS);
            // A damage can turn a top-level key into one written with an escape (`"reque\tId"`):
            // the splitter leaves such answers whole to JS, whatever JSON.parse makes of them.
            let plain_keys = serde_json::from_slice::<serde_json::Value>(&answer)
                .ok()
                .and_then(|v| {
                    // What a key written with an escape decodes to, from these damages.
                    let escaped = |b: u8| b < 0x20 || matches!(b, b'"' | b'\\' | b'/');
                    v.as_object().map(|o| o.keys().all(|k| !k.bytes().any(escaped)))
                })
                .unwrap_or(false);
            match parsed_details(&answer) {
                // Answers JSON.parse reads, with the four details, start with `{` here.
                Some(expected) if answer[0] == b'{' && plain_keys => {
                    let out = split.expect("split");
                    let head_len = u32::from_le_bytes(out[1..5].try_into().unwrap()) as usize;
                    let head: serde_json::Value = serde_json::from_slice(&out[5..5 + head_len]).unwrap();
                    // Everything but the sockets is as JSON.parse reads it.
                    let whole: serde_json::Value = serde_json::from_slice(&answer).unwrap();
                    proptest::prop_assert_eq!(&head["requestId"], &whole["requestId"]);
                    let head: Vec<[serde_json::Value; 3]> = serde_json::from_value(head["sockets"].clone()).unwrap();
                    let handshakes: Vec<serde_json::Value> = serde_json::from_slice(&out[5 + head_len..]).unwrap();
                    let got: Vec<[serde_json::Value; 4]> = head
                        .into_iter()
                        .zip(handshakes)
                        .map(|([id, rooms, data], handshake)| [id, handshake, rooms, data])
                        .collect();
                    proptest::prop_assert_eq!(got, expected);
                }
                _ => proptest::prop_assert!(split.is_none(), "{}", String::from_utf8_lossy(&answer)),
            }
        }
    }
}
