//! The text socket.io sends to its clients for a cluster-adapter BROADCAST message in JSON
//! (PROTOCOL.md 3.1 and 4.4: the sharded adapter's messages without binary).
//!
//! A JS receiver would `JSON.parse` the whole message, then socket.io-parser would
//! `JSON.stringify(packet.data)` again for its clients. A JSON message already holds that text:
//! the `packet.data` slice is what the sender's `JSON.stringify` wrote for it, so the wire text is
//! `"2" + (nsp == "/" ? "" : nsp + ",") + slice`, with no decode or encode on the event loop.
//! (A slice that is valid but not in `JSON.stringify`'s form, which no JS sender writes, reaches
//! clients with the same meaning: they `JSON.parse` it.)

use serde::de::IgnoredAny;
use serde::{Deserialize, Deserializer};
use serde_json::value::RawValue;

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

#[derive(Deserialize)]
struct BroadcastData<'a> {
    #[serde(borrow)]
    packet: &'a RawValue,
    #[serde(borrow, default)]
    opts: Option<&'a RawValue>,
    /// A broadcast with acks: answered from JS.
    #[serde(rename = "requestId", default, deserialize_with = "present")]
    with_ack: bool,
}

#[derive(Deserialize)]
struct EventPacket<'a> {
    #[serde(rename = "type")]
    packet_type: f64,
    #[serde(borrow, default)]
    data: Option<&'a RawValue>,
    #[serde(default, deserialize_with = "present")]
    id: bool,
    #[serde(default, deserialize_with = "present")]
    attachments: bool,
}

/// Options that target every socket, as `encodeOptions` writes them for `io.emit`.
const NO_TARGETS: [&str; 2] = [
    r#"{"rooms":[],"except":[],"flags":{}}"#,
    r#"{"rooms":[],"except":[]}"#,
];

/// `data`: the raw `data` field of a BROADCAST message. None when JS must handle it (a broadcast
/// with acks, not an EVENT, an ack id, no options, data that is not an array).
pub fn broadcast_event_text(data: &str) -> Option<EventText<'_>> {
    let data: BroadcastData<'_> = serde_json::from_str(data).ok()?;
    if data.with_ack {
        return None;
    }
    let opts = data.opts?.get();
    let packet: EventPacket<'_> = serde_json::from_str(data.packet.get()).ok()?;
    if packet.packet_type != 2.0 || packet.id || packet.attachments {
        return None;
    }
    let args = packet.data?.get();
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
        ];
        for case in cases {
            assert_eq!(broadcast_event_text(case), None, "{case}");
        }
    }
}
