//! Broadcasts that JS queued during one event-loop turn, crossing into Rust as one string.
//!
//! Each napi method call costs about a microsecond before any work is done (argument
//! conversion, napi-rs's borrow bookkeeping for `&self`, a String allocation per argument),
//! as much as the whole transcoding of a 100 B event: `perf` of a sending node showed it as
//! the largest item. Small plain-JSON broadcasts therefore wait in a JS string until the
//! flush that ends the turn (which they waited for anyway), and cross together.
//!
//! A record is `ns \x01 room \x01 opts \x01 data \x00`, or with Buffers
//! `ns \x01 room \x01 opts \x01 data \x02 attachments \x00`:
//! - `ns`: the namespace id, decimal;
//! - `room`: empty for none, else the room name as a JSON string (`JSON.stringify(room)`);
//! - `opts`: empty for none, [`ONE_ROOM`] for `{rooms: [room], except: [], flags: {}}` (the
//!   usual `io.to(room)`, whose MessagePack the writer then builds from `room` without
//!   transcoding any text), else the JSON of `{rooms, except, flags}`;
//! - `data`: `JSON.stringify(packet.data)` (with socket.io-parser's placeholders for Buffers);
//! - `attachments`: where the Buffers' bytes are in the attachment buffer that crosses beside
//!   the text, as decimal `start,length` pairs joined by `,`. Buffers cross as bytes, not as
//!   a napi array of Buffers: that call cost 2.6-3.9 µs per broadcast, queueing 0.3.
//!
//! JSON text never holds a raw U+0000, U+0001 or U+0002 (`JSON.stringify` escapes every
//! control character), so the separators cannot occur inside a field.

use crate::connection::PublishBundle;
use crate::transport::Transport;
use std::fmt;

/// Ends a record.
pub const RECORD_END: char = '\0';
/// Separates the fields of a record.
pub const FIELD_SEPARATOR: char = '\u{1}';
/// Separates a record's data from where its attachments are.
pub const ATTACHMENTS_SEPARATOR: char = '\u{2}';
/// The `opts` field of a broadcast to the record's room alone (no JSON text starts with `r`).
pub const ONE_ROOM: &str = "r";

/// One queued broadcast, borrowing from the batch string.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueuedBroadcast<'a> {
    pub ns: u32,
    pub room: Option<String>,
    pub opts_json: Option<&'a str>,
    pub data_json: &'a str,
    /// The Buffers of the placeholders in `data_json`, in order, borrowing from the
    /// attachment buffer.
    pub attachments: Vec<&'a [u8]>,
}

/// A record that does not follow the layout above (a bug in the JS layer, not bad input from
/// Redis): reported and skipped, the records around it are still sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MalformedRecord {
    pub index: usize,
    pub reason: &'static str,
}

impl fmt::Display for MalformedRecord {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "queued broadcast {}: {}", self.index, self.reason)
    }
}

/// What became of a batch's records.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct BatchOutcome {
    /// Handed to the publisher.
    pub queued: usize,
    /// Refused: outgoing buffer full, adapter closed, or namespace gone (as a single
    /// broadcast's `false`).
    pub refused: usize,
    /// Skipped because malformed or not transcodable; `skip_reason` says why for the first.
    pub skipped: usize,
    pub skip_reason: Option<String>,
}

impl BatchOutcome {
    pub fn skip(&mut self, reason: String) {
        self.skipped += 1;
        self.skip_reason.get_or_insert(reason);
    }

    /// `None` when every record was queued, else a line for the debug log.
    pub fn problem(&self) -> Option<String> {
        if self.refused == 0 && self.skipped == 0 {
            return None;
        }
        let mut line = format!(
            "{} of {} queued broadcasts not sent: {} refused (outgoing buffer full or adapter closed)",
            self.refused + self.skipped,
            self.queued + self.refused + self.skipped,
            self.refused
        );
        if let Some(reason) = &self.skip_reason {
            line.push_str(&format!(", {} skipped ({reason})", self.skipped));
        }
        Some(line)
    }
}

/// Turns each record of `batch` into a message with `message_of` (`Ok(None)`: refused, as a
/// single broadcast's `false`; `Err`: skipped, with why) and queues them on `transport`
/// under one lock, in order.
pub fn queue_records<T: Transport>(
    batch: &str,
    attachments: &[u8],
    transport: &T,
    mut message_of: impl FnMut(QueuedBroadcast<'_>) -> Result<Option<(String, Vec<u8>)>, String>,
) -> BatchOutcome {
    let mut messages = Vec::new();
    let mut outcome = read_records(batch, attachments, |record| {
        Ok(message_of(record)?
            .map(|message| messages.push(message))
            .is_some())
    });
    let offered = messages.len();
    let queued = transport.publish_deferred_many(messages);
    outcome.queued += queued;
    outcome.refused += offered - queued;
    outcome
}

/// [`queue_records`] for PUBLISH messages that `write` appends to one bundle (`Ok(false)`:
/// refused, nothing appended), queued as one entry.
pub fn queue_records_bundled<T: Transport>(
    batch: &str,
    attachments: &[u8],
    transport: &T,
    mut write: impl FnMut(QueuedBroadcast<'_>, &mut PublishBundle) -> Result<bool, String>,
) -> BatchOutcome {
    let mut bundle = PublishBundle::default();
    let mut outcome = read_records(batch, attachments, |record| write(record, &mut bundle));
    let offered = bundle.len();
    let queued = transport.publish_deferred_bundle(bundle);
    outcome.queued += queued;
    outcome.refused += offered - queued;
    outcome
}

/// Hands each well-formed record to `take` (`Ok(false)`: refused) and counts the refused and
/// the skipped ones (malformed, or `Err` from `take`, with why).
fn read_records<'a>(
    batch: &'a str,
    attachments: &'a [u8],
    mut take: impl FnMut(QueuedBroadcast<'_>) -> Result<bool, String>,
) -> BatchOutcome {
    let mut outcome = BatchOutcome::default();
    for record in records(batch, attachments) {
        match record
            .map_err(|malformed| malformed.to_string())
            .and_then(&mut take)
        {
            Ok(true) => {}
            Ok(false) => outcome.refused += 1,
            Err(reason) => outcome.skip(reason),
        }
    }
    outcome
}

/// The records of `batch`, in order, their Buffers read from `attachments`. Text after the
/// last `\0` is reported as malformed.
pub fn records<'a>(
    batch: &'a str,
    attachments: &'a [u8],
) -> impl Iterator<Item = Result<QueuedBroadcast<'a>, MalformedRecord>> {
    let mut rest = batch;
    let mut index = 0;
    std::iter::from_fn(move || {
        if rest.is_empty() {
            return None;
        }
        let (record, after) = match memchr::memchr(RECORD_END as u8, rest.as_bytes()) {
            Some(end) => (&rest[..end], &rest[end + 1..]),
            None => (rest, ""),
        };
        let unterminated = after.is_empty() && !rest.ends_with(RECORD_END);
        rest = after;
        let parsed = if unterminated {
            Err("no record end")
        } else {
            parse_record(record, attachments)
        };
        let item = parsed.map_err(|reason| MalformedRecord { index, reason });
        index += 1;
        Some(item)
    })
}

fn parse_record<'a>(
    record: &'a str,
    attachment_bytes: &'a [u8],
) -> Result<QueuedBroadcast<'a>, &'static str> {
    let mut fields = record.splitn(4, FIELD_SEPARATOR);
    let (Some(ns), Some(room), Some(opts), Some(data)) =
        (fields.next(), fields.next(), fields.next(), fields.next())
    else {
        return Err("fewer than 4 fields");
    };
    let ns = ns.parse::<u32>().map_err(|_| "namespace id is not a u32")?;
    let room = if room.is_empty() {
        None
    } else {
        Some(serde_json::from_str::<String>(room).map_err(|_| "room is not a JSON string")?)
    };
    let (data, attachments) = match data.split_once(ATTACHMENTS_SEPARATOR) {
        Some((data, places)) => (data, attachments_at(places, attachment_bytes)?),
        None => (data, Vec::new()),
    };
    if data.is_empty() {
        return Err("no data");
    }
    Ok(QueuedBroadcast {
        ns,
        room,
        opts_json: (!opts.is_empty()).then_some(opts),
        data_json: data,
        attachments,
    })
}

/// The Buffers that `places` (`start,length` pairs) locate in `bytes`.
fn attachments_at<'a>(places: &str, bytes: &'a [u8]) -> Result<Vec<&'a [u8]>, &'static str> {
    let numbers = places
        .split(',')
        .map(str::parse::<usize>)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|_| "attachment places are not numbers")?;
    if numbers.len() % 2 != 0 {
        return Err("attachment places are not start,length pairs");
    }
    numbers
        .chunks_exact(2)
        .map(|pair| {
            pair[0]
                .checked_add(pair[1])
                .and_then(|end| bytes.get(pair[0]..end))
                .ok_or("attachment beyond the attachment buffer")
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn all(batch: &str) -> Vec<Result<QueuedBroadcast<'_>, MalformedRecord>> {
        records(batch, &[]).collect()
    }

    #[test]
    fn reads_records_in_order() {
        let batch = "3\u{1}\u{1}\u{1}[\"a\",1]\0\
                     7\u{1}\"room \\u0001 \\\"x\\\"\"\u{1}{\"rooms\":[\"r\"]}\u{1}[\"b\"]\0";
        let got = all(batch);
        assert_eq!(
            got,
            vec![
                Ok(QueuedBroadcast {
                    ns: 3,
                    room: None,
                    opts_json: None,
                    data_json: "[\"a\",1]",
                    attachments: vec![],
                }),
                Ok(QueuedBroadcast {
                    ns: 7,
                    room: Some("room \u{1} \"x\"".into()),
                    opts_json: Some("{\"rooms\":[\"r\"]}"),
                    data_json: "[\"b\"]",
                    attachments: vec![],
                }),
            ]
        );
    }

    #[test]
    fn empty_batch_has_no_records() {
        assert!(all("").is_empty());
    }

    #[test]
    fn malformed_records_are_reported_and_the_others_kept() {
        let batch = "x\u{1}\u{1}\u{1}[1]\0\
                     1\u{1}\u{1}[1]\0\
                     2\u{1}not json\u{1}\u{1}[1]\0\
                     3\u{1}\u{1}\u{1}\0\
                     4\u{1}\u{1}\u{1}[4]\0\
                     5\u{1}\u{1}\u{1}[5]";
        let got = all(batch);
        let reasons: Vec<_> = got
            .iter()
            .map(|r| r.as_ref().err().map(|e| (e.index, e.reason)))
            .collect();
        assert_eq!(
            reasons,
            vec![
                Some((0, "namespace id is not a u32")),
                Some((1, "fewer than 4 fields")),
                Some((2, "room is not a JSON string")),
                Some((3, "no data")),
                None,
                Some((5, "no record end")),
            ]
        );
        assert_eq!(got[4].as_ref().unwrap().data_json, "[4]");
    }

    #[test]
    fn data_keeps_everything_after_the_third_separator() {
        // Only the first three separators split; data is JSON and cannot hold one, but a
        // stray one must stay in data (and fail transcoding there) rather than shift fields.
        let got = all("1\u{1}\u{1}\u{1}[\"a\u{1}b\"]\0");
        assert_eq!(got[0].as_ref().unwrap().data_json, "[\"a\u{1}b\"]");
    }

    #[test]
    fn attachments_are_read_from_their_places() {
        let bytes = b"abcdefgh";
        let batch = "1\u{1}\u{1}\u{1}[{\"_placeholder\":true,\"num\":0}]\u{2}2,3\0\
                     2\u{1}\u{1}\u{1}[0,1]\u{2}0,1,5,3\0\
                     3\u{1}\u{1}\u{1}[]\u{2}4,0\0";
        let got: Vec<_> = records(batch, bytes).map(Result::unwrap).collect();
        assert_eq!(got[0].data_json, "[{\"_placeholder\":true,\"num\":0}]");
        assert_eq!(got[0].attachments, vec![&b"cde"[..]]);
        assert_eq!(got[1].attachments, vec![&b"a"[..], &b"fgh"[..]]);
        assert_eq!(got[2].attachments, vec![&b""[..]]);
    }

    #[test]
    fn records_with_bad_attachment_places_are_skipped_alone() {
        let bytes = b"abcd";
        let batch = "1\u{1}\u{1}\u{1}[1]\u{2}0,5\0\
                     1\u{1}\u{1}\u{1}[2]\u{2}0\0\
                     1\u{1}\u{1}\u{1}[3]\u{2}x,1\0\
                     1\u{1}\u{1}\u{1}[4]\u{2}\0\
                     1\u{1}\u{1}\u{1}[5]\u{2}18446744073709551615,2\0\
                     1\u{1}\u{1}\u{1}\u{2}0,1\0\
                     1\u{1}\u{1}\u{1}[7]\u{2}1,2\0";
        let reasons: Vec<_> = records(batch, bytes)
            .map(|r| r.err().map(|e| e.reason))
            .collect();
        assert_eq!(
            reasons,
            vec![
                Some("attachment beyond the attachment buffer"),
                Some("attachment places are not start,length pairs"),
                Some("attachment places are not numbers"),
                Some("attachment places are not numbers"),
                Some("attachment beyond the attachment buffer"),
                Some("no data"),
                None,
            ]
        );
    }
}
