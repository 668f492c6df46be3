//! Reads just enough of a request or response to route it: type, sender uid, request id.
//! JSON when the first byte is `{` (as the official `onrequest`/`onresponse` sniff), MessagePack
//! otherwise. Nothing else of the message is decoded here.

use crate::codec::msgpack;
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
    if payload.first() == Some(&b'{') {
        let h: JsonHeader =
            serde_json::from_slice(payload).map_err(|e| format!("bad JSON: {e}"))?;
        let msg_type = match h.msg_type {
            Some(serde_json::Value::Number(n)) => n.as_i64(),
            _ => None,
        };
        let request_id = h.request_id.or_else(|| {
            h.data
                .filter(|raw| raw.get().starts_with('{'))
                .and_then(|raw| serde_json::from_str::<JsonData>(raw.get()).ok())
                .and_then(|d| d.request_id)
        });
        Ok(Header {
            msg_type,
            uid: h.uid,
            request_id,
            nsp: h.nsp,
            data: h.data.map(RawValue::get),
        })
    } else {
        let h =
            msgpack::read_message_header(payload).map_err(|e| format!("bad MessagePack: {e}"))?;
        Ok(Header {
            msg_type: h.msg_type,
            uid: h.uid.map(Cow::Borrowed),
            request_id: h.request_id.map(Cow::Borrowed),
            nsp: h.nsp.map(Cow::Borrowed),
            data: None,
        })
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
}
