//! The text socket.io sends to its clients for a cluster-adapter BROADCAST message in JSON
//! (PROTOCOL.md 3.1 and 4.4: the sharded adapter's messages without binary).
//!
//! A JS receiver would `JSON.parse` the whole message, then socket.io-parser would
//! `JSON.stringify(packet.data)` again for its clients. A JSON message already holds that text:
//! the `packet.data` slice is what the sender's `JSON.stringify` wrote for it, so the wire text is
//! `"2" + (nsp == "/" ? "" : nsp + ",") + slice`, with no decode or encode on the event loop.
//! (A slice that is valid but not in `JSON.stringify`'s form, which no JS sender writes, reaches
//! clients with the same meaning: they `JSON.parse` it.)

use crate::codec::{json_check, json_scan};
use serde::de::IgnoredAny;
use serde::{Deserialize, Deserializer};
use std::ops::Range;

/// `MessageType.BROADCAST` of socket.io-adapter's cluster adapter.
pub const BROADCAST: i64 = 3;

/// A broadcast ready for `DeliveryKind::EventText`.
#[derive(Debug, PartialEq, Eq)]
pub struct EventText<'a> {
    /// The options JSON, or None when they target every socket (no rooms, no except, no flags).
    pub opts: Option<&'a str>,
    /// The JSON array of the event's arguments.
    pub data: &'a str,
}

/// True when the field is present, whatever its value (`null` included: JS tests
/// `!== undefined`).
pub(crate) fn present<'de, D: Deserializer<'de>>(d: D) -> Result<bool, D::Error> {
    IgnoredAny::deserialize(d).map(|_| true)
}

/// Options that target every socket, as `encodeOptions` writes them for `io.emit`.
const NO_TARGETS: [&str; 2] = [
    r#"{"rooms":[],"except":[],"flags":{}}"#,
    r#"{"rooms":[],"except":[]}"#,
];

/// `data`: the raw `data` field of a BROADCAST message. None when JS must handle it (a broadcast
/// with acks, not an EVENT, an ack id, no options, data that is not an array, not valid JSON).
///
/// One walk that checks the grammar as it goes (json_check) and picks `opts`, `packet.type`
/// and `packet.data` on the way: a validation pass and then the walk of
/// [`broadcast_event_text_validated`] read the event's data three times (a streams receiver
/// does this for every entry). Same rules as that function; the tests compare the two.
pub fn broadcast_event_text(data: &str) -> Option<EventText<'_>> {
    let (end, event) = walk_broadcast_data(data, json_scan::skip_ws(data.as_bytes(), 0))?;
    if json_scan::skip_ws(data.as_bytes(), end) != data.len() {
        return None;
    }
    event
}

/// Walks the BROADCAST `data` object starting at `at` in `text`, checking it (see
/// [`broadcast_event_text`]): where it ends, and its event when the rules allow one. None when
/// the object is not valid JSON.
pub fn walk_broadcast_data(text_str: &str, at: usize) -> Option<(usize, Option<EventText<'_>>)> {
    let (data, text) = (text_str, text_str.as_bytes());
    let mut refused = false;
    let (mut packet, mut opts, mut packet_type, mut args) = (None, None, None, None);
    let once = |slot: &mut Option<Range<usize>>, range: Range<usize>, refused: &mut bool| {
        if slot.replace(range).is_some() {
            *refused = true;
        }
    };
    let end = json_check::walk_object(text, at, |key, at| {
        let end = match key {
            b"packet" => json_check::walk_object(text, at, |key, at| {
                let end = json_check::value_end(text, at)?;
                match key {
                    b"type" => once(&mut packet_type, at..end, &mut refused),
                    b"data" => once(&mut args, at..end, &mut refused),
                    b"id" | b"attachments" => refused = true,
                    _ if key.contains(&b'\\') => refused = true,
                    _ => {}
                }
                Some(end)
            })
            // Not an object: still checked, left to JS.
            .or_else(|| {
                refused = true;
                json_check::value_end(text, at)
            })?,
            _ => json_check::value_end(text, at)?,
        };
        match key {
            b"packet" => once(&mut packet, at..end, &mut refused),
            b"opts" => once(&mut opts, at..end, &mut refused),
            b"requestId" => refused = true, // a broadcast with acks, even with a null id
            _ if key.contains(&b'\\') => refused = true,
            _ => {}
        }
        Some(end)
    })?;
    let text_of = |range: Range<usize>| data.get(range);
    let event = || {
        if refused || packet.is_none() {
            return None;
        }
        let opts = text_of(opts?)?;
        if text_of(packet_type?)?.parse::<f64>().ok()? != 2.0 {
            return None;
        }
        let args = text_of(args?)?;
        if !args.starts_with('[') {
            return None;
        }
        Some(EventText {
            opts: (!NO_TARGETS.contains(&opts)).then_some(opts),
            data: args,
        })
    };
    Some((end, event()))
}

/// [`broadcast_event_text`] of a `data` that is valid JSON already (a part of a message that
/// serde read whole): walked with `json_scan`, not validated a second time. The rules are those
/// serde's derive applied here before: `packet` and `opts` required, `requestId` present means
/// acks, `packet.type` a number equal to 2, no `id` or `attachments`, and a duplicate of any of
/// these keys (or a key written with escapes) leaves the message to JS.
pub fn broadcast_event_text_validated(data: &str) -> Option<EventText<'_>> {
    let (mut packet, mut opts) = (None, None);
    for (key, value) in json_scan::object_members(data)? {
        let slot = match key {
            "packet" => &mut packet,
            "opts" => &mut opts,
            "requestId" => return None, // a broadcast with acks, even with a null id
            _ if key.contains('\\') => return None,
            _ => continue,
        };
        if slot.replace(value).is_some() {
            return None;
        }
    }
    let (packet, opts) = (packet?, opts?);
    let (mut packet_type, mut args) = (None, None);
    for (key, value) in json_scan::object_members(packet)? {
        let slot = match key {
            "type" => &mut packet_type,
            "data" => &mut args,
            "id" | "attachments" => return None,
            _ if key.contains('\\') => return None,
            _ => continue,
        };
        if slot.replace(value).is_some() {
            return None;
        }
    }
    if packet_type?.parse::<f64>().ok()? != 2.0 {
        return None;
    }
    let args = args?;
    if !args.starts_with('[') {
        return None;
    }
    Some(EventText {
        opts: (!NO_TARGETS.contains(&opts)).then_some(opts),
        data: args,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn takes_the_data_slice_as_it_is() {
        let text = broadcast_event_text(
            r#"{"packet":{"type":2,"data":["hi",{"a":1.5}],"nsp":"/"},"opts":{"rooms":[],"except":[],"flags":{}}}"#,
        )
        .unwrap();
        assert_eq!(text.data, r#"["hi",{"a":1.5}]"#);
        assert_eq!(text.opts, None);
        let text = broadcast_event_text(
            r#"{"opts":{"rooms":["r"],"except":[],"flags":{"volatile":true}},"packet":{"data":[1],"type":2}}"#,
        )
        .unwrap();
        assert_eq!(
            text.opts,
            Some(r#"{"rooms":["r"],"except":[],"flags":{"volatile":true}}"#)
        );
    }

    #[test]
    fn a_type_written_as_another_number_form_of_2_is_an_event() {
        for packet in [r#"{"type":2.0,"data":[1]}"#, r#"{"type":2e0,"data":[1]}"#] {
            let data = format!(r#"{{ "packet" : {packet} , "opts":{{"rooms":[],"except":[]}} }}"#);
            assert_eq!(broadcast_event_text(&data).unwrap().data, "[1]");
        }
    }

    proptest::proptest! {
        /// Callers validate before the walk; garbage must still stay memory-safe.
        #[test]
        fn arbitrary_text_never_panics(
            text in "[{}\\[\\]\",:\\\\ a-z0-9\u{1}]{0,48}",
            wrap in proptest::bool::ANY,
        ) {
            let data = if wrap { format!(r#"{{"packet":{text},"opts":{text}}}"#) } else { text };
            let _ = broadcast_event_text_validated(&data);
            let _ = broadcast_event_text(&data);
        }
    }

    /// What the one walk replaced: serde's validation, then the walk of valid text.
    fn reference(data: &str) -> Option<EventText<'_>> {
        serde_json::from_str::<IgnoredAny>(data).ok()?;
        broadcast_event_text_validated(data)
    }

    const EVENTS: [&str; 6] = [
        r#"{"packet":{"type":2,"data":["hi",{"a":1.5}],"nsp":"/"},"opts":{"rooms":[],"except":[],"flags":{}}}"#,
        r#"{"opts":{"rooms":["r"],"except":[],"flags":{"volatile":true}},"packet":{"data":[1],"type":2}}"#,
        r#" { "packet" : { "type" : 2e0 , "data" : [ "\"}]" , null ] } , "opts" : { "rooms" : [ ] , "except" : [ ] } } "#,
        r#"{"x":{"packet":1},"packet":{"nsp":"/a","type":2.0,"data":[[],{}]},"opts":{"rooms":["é"],"except":["\u0041"],"flags":{}},"y":[1,"2"]}"#,
        r#"{"packet":{"type":2,"data":[1]},"opts":{"rooms":[],"except":[]},"requestId":"x"}"#,
        r#"{"packet":5,"opts":{}}"#,
    ];

    #[test]
    fn one_walk_agrees_with_validation_then_walk() {
        for case in EVENTS {
            assert_eq!(broadcast_event_text(case), reference(case), "{case}");
        }
        assert!(broadcast_event_text(EVENTS[3]).is_some());
    }

    proptest::proptest! {
        /// Every event above with one byte removed, replaced or inserted: the same answer.
        #[test]
        fn one_walk_agrees_on_damaged_events(
            which in 0..EVENTS.len(),
            at in 0usize..200,
            edit in 0u8..3,
            byte in proptest::sample::select(b"{}[]\",:\\ a0\x01eE.-+".to_vec()),
        ) {
            let bytes = crate::test_support::damaged(EVENTS[which], at, edit, byte);
            if let Ok(text) = std::str::from_utf8(&bytes) {
                proptest::prop_assert_eq!(broadcast_event_text(text), reference(text), "{}", text);
            }
        }
    }

    #[test]
    fn leaves_to_js_what_it_must_see() {
        let cases = [
            // with acks, even a null request id (JS tests !== undefined)
            r#"{"packet":{"type":2,"data":[1]},"opts":{"rooms":[],"except":[]},"requestId":"x"}"#,
            r#"{"packet":{"type":2,"data":[1]},"opts":{"rooms":[],"except":[]},"requestId":null}"#,
            // not an EVENT, an ack id, binary attachments
            r#"{"packet":{"type":3,"data":[1]},"opts":{"rooms":[],"except":[]}}"#,
            r#"{"packet":{"type":2,"data":[1],"id":4},"opts":{"rooms":[],"except":[]}}"#,
            r#"{"packet":{"type":2,"data":[1],"attachments":1},"opts":{"rooms":[],"except":[]}}"#,
            // no options (JS would throw), data not an array, malformed
            r#"{"packet":{"type":2,"data":[1]}}"#,
            r#"{"packet":{"type":2,"data":"x"},"opts":{"rooms":[],"except":[]}}"#,
            r#"{"packet":{"type":2,"data":[1]},"opts":"#,
            // a duplicated key, a key with escapes, a type that is not the number 2
            r#"{"packet":{"type":2,"data":[1]},"packet":{"type":2,"data":[2]},"opts":{}}"#,
            r#"{"packet":{"type":2,"data":[1],"data":[2]},"opts":{}}"#,
            r#"{"packet":{"\u0074ype":2,"data":[1]},"opts":{}}"#,
            r#"{"packet":{"type":"2","data":[1]},"opts":{}}"#,
            r#"{"packet":{"type":null,"data":[1]},"opts":{}}"#,
            r#"{"packet":{"data":[1]},"opts":{}}"#,
        ];
        for case in cases {
            assert_eq!(broadcast_event_text(case), None, "{case}");
        }
    }
}
