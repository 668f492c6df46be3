//! Stream entries as the readers hand them on: borrowed views ([`EntryView`]) over either the
//! redis crate's owned reply (cluster, TLS, Unix sockets; RESP2 or RESP3) or the read buffer of
//! a raw connection (plain TCP, RESP2), so framing them for JS copies each byte once.

use super::resp::ProtocolError;
use super::resp_nested::{unexpected as unexpected_node, Cursor, Node};
use redis::{FromRedisValue, RedisError, RedisResult, Value};
use std::ops::Range;

/// One stream entry, owned: what the redis crate's replies are turned into.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamEntry {
    pub id: String,
    pub fields: Vec<(Vec<u8>, Vec<u8>)>,
}

/// One stream entry: its id and its field/value pairs, borrowed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EntryView<'a> {
    pub id: &'a str,
    pub fields: &'a [(&'a [u8], &'a [u8])],
}

impl EntryView<'_> {
    pub fn field(&self, name: &[u8]) -> Option<&[u8]> {
        self.fields
            .iter()
            .find(|(k, _)| *k == name)
            .map(|(_, v)| *v)
    }
}

/// The entries of one reply, borrowed: the field pairs of all entries in one vector (a few
/// allocations per reply, none per entry or field).
#[derive(Debug, Default)]
pub struct EntryBatch<'a> {
    /// Per entry: its id and the range of its pairs in `pairs`.
    heads: Vec<(&'a str, Range<usize>)>,
    pairs: Vec<(&'a [u8], &'a [u8])>,
}

impl<'a> EntryBatch<'a> {
    pub fn from_owned(entries: &'a [StreamEntry]) -> Self {
        let mut batch = Self::default();
        for e in entries {
            let start = batch.pairs.len();
            batch
                .pairs
                .extend(e.fields.iter().map(|(k, v)| (k.as_slice(), v.as_slice())));
            batch.heads.push((&e.id, start..batch.pairs.len()));
        }
        batch
    }

    pub fn len(&self) -> usize {
        self.heads.len()
    }

    pub fn is_empty(&self) -> bool {
        self.heads.is_empty()
    }

    pub fn views(&self) -> Vec<EntryView<'_>> {
        self.heads
            .iter()
            .map(|(id, range)| EntryView {
                id,
                fields: &self.pairs[range.clone()],
            })
            .collect()
    }

    pub fn last_id(&self) -> Option<&'a str> {
        self.heads.last().map(|(id, _)| *id)
    }
}

/// The entries of a RESP2 XREAD reply for one stream (`*-1` or `[[name, entries]]`), read
/// from a complete reply.
pub fn xread_batch(reply: &[u8]) -> Result<EntryBatch<'_>, ProtocolError> {
    let mut c = Cursor::new(reply);
    match c.array("XREAD reply")? {
        None | Some(0) => return Ok(EntryBatch::default()),
        Some(_) => {}
    }
    if c.array("XREAD stream")? != Some(2) {
        return Err(ProtocolError(
            "XREAD stream: not a [name, entries] pair".into(),
        ));
    }
    c.skip()?;
    entries_batch(&mut c)
}

/// An array of entries (`[[id, [f, v, ...]], ...]`, as XRANGE returns) at the cursor.
pub fn entries_batch<'a>(c: &mut Cursor<'a>) -> Result<EntryBatch<'a>, ProtocolError> {
    let mut batch = EntryBatch::default();
    let Some(n) = c.array("stream entries")? else {
        return Ok(batch);
    };
    batch.heads.reserve(n);
    for _ in 0..n {
        if c.array("stream entry")? != Some(2) {
            return Err(ProtocolError(
                "stream entry: not an [id, fields] pair".into(),
            ));
        }
        let id = std::str::from_utf8(c.bulk("entry id")?)
            .map_err(|_| ProtocolError("entry id: not UTF-8".into()))?;
        let start = batch.pairs.len();
        let count = c.array("entry fields")?.unwrap_or(0);
        for _ in 0..count / 2 {
            let name = c.bulk("field name")?;
            let value = c.bulk("field value")?;
            batch.pairs.push((name, value));
        }
        // An odd one out (never sent by Redis) is dropped, as by the crate path.
        if count % 2 == 1 {
            match c.node()? {
                Node::Bulk(_) => {}
                other => return Err(unexpected_node("field name", other)),
            }
        }
        batch.heads.push((id, start..batch.pairs.len()));
    }
    Ok(batch)
}

/// Compact encoding of entries for JS: per entry a u32 LE count of strings (1 + 2 per field),
/// then each string as u32 LE length + bytes (id first, then field, value, ...).
pub fn encode_entries(entries: &[EntryView<'_>]) -> Vec<u8> {
    let size: usize = entries
        .iter()
        .map(|e| {
            8 + e.id.len()
                + e.fields
                    .iter()
                    .map(|(k, v)| 8 + k.len() + v.len())
                    .sum::<usize>()
        })
        .sum();
    let mut out = Vec::with_capacity(size);
    let put = |out: &mut Vec<u8>, bytes: &[u8]| {
        out.extend_from_slice(&(bytes.len() as u32).to_le_bytes());
        out.extend_from_slice(bytes);
    };
    for e in entries {
        out.extend_from_slice(&((1 + 2 * e.fields.len()) as u32).to_le_bytes());
        put(&mut out, e.id.as_bytes());
        for (k, v) in e.fields {
            put(&mut out, k);
            put(&mut out, v);
        }
    }
    out
}

/// Parses the entries of an XRANGE reply (`[[id, [f, v, ...]], ...]`).
pub fn parse_entries(value: &Value) -> RedisResult<Vec<StreamEntry>> {
    let items = match value {
        Value::Nil => return Ok(Vec::new()),
        Value::Array(items) => items,
        other => return Err(unexpected("stream entries", other)),
    };
    let mut entries = Vec::with_capacity(items.len());
    for item in items {
        let Value::Array(pair) = item else {
            return Err(unexpected("stream entry", item));
        };
        if pair.len() != 2 {
            return Err(unexpected("stream entry", item));
        }
        let id = String::from_redis_value_ref(&pair[0])?;
        let flat: Vec<Vec<u8>> = match &pair[1] {
            Value::Nil => Vec::new(),
            v => Vec::<Vec<u8>>::from_redis_value_ref(v)?,
        };
        let mut fields = Vec::with_capacity(flat.len() / 2);
        let mut it = flat.into_iter();
        while let (Some(k), Some(v)) = (it.next(), it.next()) {
            fields.push((k, v));
        }
        entries.push(StreamEntry { id, fields });
    }
    Ok(entries)
}

/// Parses an XREAD reply for a single stream (RESP2 array or RESP3 map).
pub fn parse_xread(value: &Value) -> RedisResult<Vec<StreamEntry>> {
    match value {
        Value::Nil => Ok(Vec::new()),
        Value::Array(streams) => match streams.first() {
            None => Ok(Vec::new()),
            Some(Value::Array(pair)) if pair.len() == 2 => parse_entries(&pair[1]),
            Some(other) => Err(unexpected("XREAD stream", other)),
        },
        Value::Map(streams) => match streams.first() {
            None => Ok(Vec::new()),
            Some((_, entries)) => parse_entries(entries),
        },
        other => Err(unexpected("XREAD reply", other)),
    }
}

pub fn unexpected(what: &str, value: &Value) -> RedisError {
    RedisError::from((
        redis::ErrorKind::UnexpectedReturnType,
        "unexpected reply",
        format!("{what}: {value:?}"),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::connection::resp_nested::{complete_value, Completeness};

    fn bulk(s: &str) -> Value {
        Value::BulkString(s.as_bytes().to_vec())
    }

    fn expected() -> Vec<StreamEntry> {
        vec![
            StreamEntry {
                id: "1-0".into(),
                fields: vec![
                    (b"uid".to_vec(), b"a".to_vec()),
                    (b"nsp".to_vec(), b"/".to_vec()),
                ],
            },
            StreamEntry {
                id: "2-0".into(),
                fields: vec![(b"d".to_vec(), b"x\r\ny".to_vec())],
            },
        ]
    }

    #[test]
    fn parses_resp2_and_resp3_xread_replies() {
        let entries = Value::Array(vec![Value::Array(vec![
            bulk("1-0"),
            Value::Array(vec![bulk("uid"), bulk("a"), bulk("nsp"), bulk("/")]),
        ])]);
        let resp2 = Value::Array(vec![Value::Array(vec![bulk("s"), entries.clone()])]);
        let resp3 = Value::Map(vec![(bulk("s"), entries)]);
        let one = &expected()[..1];
        assert_eq!(parse_xread(&resp2).unwrap(), one);
        assert_eq!(parse_xread(&resp3).unwrap(), one);
        assert!(parse_xread(&Value::Nil).unwrap().is_empty());
    }

    #[test]
    fn raw_and_owned_replies_give_the_same_views() {
        let raw = b"*1\r\n*2\r\n$1\r\ns\r\n*2\r\n*2\r\n$3\r\n1-0\r\n*4\r\n$3\r\nuid\r\n$1\r\na\r\n\
            $3\r\nnsp\r\n$1\r\n/\r\n*2\r\n$3\r\n2-0\r\n*2\r\n$1\r\nd\r\n$4\r\nx\r\ny\r\n";
        assert_eq!(
            complete_value(raw, 0).unwrap(),
            Completeness::Complete(raw.len())
        );
        let from_raw = xread_batch(raw).unwrap();
        let owned = expected();
        let from_owned = EntryBatch::from_owned(&owned);
        assert_eq!(from_raw.views(), from_owned.views());
        assert_eq!(from_raw.len(), 2);
        assert_eq!(from_raw.last_id(), Some("2-0"));
        assert_eq!(from_raw.views()[0].field(b"nsp"), Some(&b"/"[..]));
        assert_eq!(from_raw.views()[0].field(b"data"), None);
        assert!(xread_batch(b"*-1\r\n").unwrap().is_empty());
        assert!(xread_batch(b"*0\r\n").unwrap().is_empty());
        // deleted entries' fields come as nil
        let nil_fields = b"*1\r\n*2\r\n$3\r\n3-0\r\n*-1\r\n";
        let batch = entries_batch(&mut Cursor::new(nil_fields)).unwrap();
        assert_eq!(batch.views()[0].fields, &[]);
    }

    #[test]
    fn refuses_replies_of_another_shape() {
        for bad in [
            &b":1\r\n"[..],
            b"*1\r\n*3\r\n$1\r\ns\r\n*0\r\n*0\r\n",
            b"*1\r\n*2\r\n$1\r\ns\r\n*1\r\n*2\r\n:1\r\n*0\r\n",
            b"*1\r\n*2\r\n$1\r\ns\r\n*1\r\n*2\r\n$2\r\n\xff\xfe\r\n*0\r\n",
            b"*1\r\n*2\r\n$1\r\ns\r\n*1\r\n*2\r\n$1\r\n1\r\n*2\r\n:1\r\n:2\r\n",
        ] {
            assert!(xread_batch(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn encodes_entries_compactly() {
        let pairs = [(&b"k"[..], &b"vv"[..])];
        let out = encode_entries(&[EntryView {
            id: "1-2",
            fields: &pairs,
        }]);
        assert_eq!(
            out,
            [
                &3u32.to_le_bytes()[..],
                &3u32.to_le_bytes(),
                b"1-2",
                &1u32.to_le_bytes(),
                b"k",
                &2u32.to_le_bytes(),
                b"vv"
            ]
            .concat()
        );
    }
}
