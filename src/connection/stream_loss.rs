//! Telling whether a stream reader missed entries because `MAXLEN ~` trimmed them before it
//! read them (it was disconnected, or too slow), and how many.
//!
//! Redis ≥ 7.0 counts the entries ever added to a stream (`XINFO STREAM` `entries-added`). A
//! reader that knows its *position*, the value of that counter at the entry it last read, can
//! tell exactly: the entries before the first one still in the stream number
//! `entries-added - length`; if that is more than the position, the difference was trimmed
//! unread. This is exact at the boundary (a trim that removed the reader's own entry but
//! nothing after it is no loss), which the id-based guess of older versions is not. It
//! assumes nobody XDELs entries (the adapters never do): a deleted entry counts as trimmed.

use redis::{FromRedisValue, RedisError, RedisResult, Value};

/// What `XINFO STREAM` says about a stream's history.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamInfo {
    pub length: u64,
    pub last_generated_id: String,
    /// Entries ever added; `None` before Redis 7.0.
    pub entries_added: Option<u64>,
    pub first_entry_id: Option<String>,
}

/// Parses an `XINFO STREAM` reply (RESP2 flat pairs or RESP3 map).
pub fn parse_stream_info(value: &Value) -> RedisResult<StreamInfo> {
    let pairs: Vec<(&Value, &Value)> = match value {
        Value::Array(items) => items
            .chunks(2)
            .filter_map(|p| p.get(1).map(|v| (&p[0], v)))
            .collect(),
        Value::Map(items) => items.iter().map(|(k, v)| (k, v)).collect(),
        other => {
            return Err(RedisError::from((
                redis::ErrorKind::UnexpectedReturnType,
                "unexpected XINFO STREAM reply",
                format!("{other:?}"),
            )))
        }
    };
    let get = |name: &str| {
        pairs
            .iter()
            .find(|(k, _)| String::from_redis_value_ref(k).is_ok_and(|k| k == name))
            .map(|(_, v)| *v)
    };
    let first_entry_id = match get("first-entry") {
        Some(Value::Array(entry)) if !entry.is_empty() => {
            Some(String::from_redis_value_ref(&entry[0])?)
        }
        _ => None,
    };
    Ok(StreamInfo {
        length: get("length")
            .map(u64::from_redis_value_ref)
            .transpose()?
            .unwrap_or(0),
        last_generated_id: get("last-generated-id")
            .map(String::from_redis_value_ref)
            .transpose()?
            .unwrap_or_else(|| "0-0".to_string()),
        entries_added: get("entries-added")
            .map(u64::from_redis_value_ref)
            .transpose()?,
        first_entry_id,
    })
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Intact,
    /// This many entries after the reader's offset were trimmed before it read them.
    Lost(u64),
    /// Redis < 7.0: the counter is missing; fall back to comparing entry ids.
    Unknown,
}

/// The reader's position in the stream's history: `entries-added` as of its last read entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HistoryPosition(Option<u64>);

impl HistoryPosition {
    /// Starting at the stream's end (`$`); `info` is `None` when the stream does not exist.
    pub fn at_end(info: Option<&StreamInfo>) -> Self {
        match info {
            None => Self(Some(0)),
            Some(info) => Self(info.entries_added),
        }
    }

    /// After reading `n` more entries (XREAD returns them in order, without gaps unless
    /// trimmed, which `check` finds).
    pub fn advance(&mut self, n: usize) {
        if let Some(p) = &mut self.0 {
            *p += n as u64;
        }
    }

    /// Compares with the stream now, and moves past a loss so it is reported once.
    pub fn check(&mut self, info: Option<&StreamInfo>) -> Verdict {
        let Some(info) = info else {
            // The stream is gone (Redis restarted without persistence): nothing is left to
            // miss, and a new stream counts from zero.
            self.0 = Some(0);
            return Verdict::Intact;
        };
        let (Some(added), Some(position)) = (info.entries_added, self.0) else {
            return Verdict::Unknown;
        };
        let before_first = added.saturating_sub(info.length);
        if added < position {
            // A new stream under the same name (restarted, then written to): start over.
            self.0 = Some(before_first);
            return Verdict::Intact;
        }
        if before_first > position {
            self.0 = Some(before_first);
            return Verdict::Lost(before_first - position);
        }
        Verdict::Intact
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bulk(s: &str) -> Value {
        Value::BulkString(s.as_bytes().to_vec())
    }

    fn info(length: u64, added: Option<u64>) -> StreamInfo {
        StreamInfo {
            length,
            last_generated_id: "9-0".into(),
            entries_added: added,
            first_entry_id: Some("5-0".into()),
        }
    }

    #[test]
    fn parses_resp2_and_resp3_replies() {
        let items = vec![
            (bulk("length"), Value::Int(1)),
            (bulk("last-generated-id"), bulk("7-1")),
            (bulk("entries-added"), Value::Int(3)),
            (
                bulk("first-entry"),
                Value::Array(vec![bulk("7-1"), Value::Array(vec![bulk("a"), bulk("3")])]),
            ),
            (bulk("last-entry"), Value::Nil),
        ];
        let flat = Value::Array(
            items
                .iter()
                .flat_map(|(k, v)| [k.clone(), v.clone()])
                .collect(),
        );
        let expected = StreamInfo {
            length: 1,
            last_generated_id: "7-1".into(),
            entries_added: Some(3),
            first_entry_id: Some("7-1".into()),
        };
        assert_eq!(parse_stream_info(&flat).unwrap(), expected);
        assert_eq!(parse_stream_info(&Value::Map(items)).unwrap(), expected);
        let old = Value::Array(vec![
            bulk("length"),
            Value::Int(0),
            bulk("first-entry"),
            Value::Nil,
        ]);
        let parsed = parse_stream_info(&old).unwrap();
        assert_eq!(parsed.entries_added, None);
        assert_eq!(parsed.first_entry_id, None);
    }

    #[test]
    fn a_trim_that_stops_right_after_the_readers_entry_is_no_loss() {
        // read up to entry #10; then one entry added and everything before it trimmed
        let mut position = HistoryPosition(Some(10));
        assert_eq!(position.check(Some(&info(1, Some(11)))), Verdict::Intact);
        // one more added, and the previous one trimmed while unread: 1 lost
        assert_eq!(position.check(Some(&info(1, Some(12)))), Verdict::Lost(1));
        // reported once: the position moved past the gap
        assert_eq!(position.check(Some(&info(1, Some(12)))), Verdict::Intact);
        position.advance(1);
        assert_eq!(position, HistoryPosition(Some(12)));
    }

    #[test]
    fn counts_every_entry_trimmed_unread() {
        let mut position = HistoryPosition::at_end(Some(&info(3, Some(3))));
        assert_eq!(position.check(Some(&info(1, Some(8)))), Verdict::Lost(4));
    }

    #[test]
    fn missing_streams_and_old_servers() {
        let mut position = HistoryPosition::at_end(None);
        assert_eq!(position, HistoryPosition(Some(0)));
        position.advance(5);
        assert_eq!(position.check(None), Verdict::Intact);
        assert_eq!(position, HistoryPosition(Some(0)));
        // restarted: a new stream with fewer entries than our position
        let mut position = HistoryPosition(Some(50));
        assert_eq!(position.check(Some(&info(2, Some(2)))), Verdict::Intact);
        assert_eq!(position, HistoryPosition(Some(0)));
        let mut old = HistoryPosition::at_end(Some(&info(3, None)));
        assert_eq!(old.check(Some(&info(1, None))), Verdict::Unknown);
    }
}
