//! The stream reader's commands over a [`RawConnection`] (plain TCP, RESP2), their replies
//! read in place: XREAD entries reach JS without the redis crate's `Value` tree or per-field
//! copies (see resp_nested). The commands and what is concluded from the replies are the same
//! as on the crate path in stream_reader.

use super::raw_connection::{server_error, RawConnection};
use super::resp::{write_command, ProtocolError};
use super::resp_nested::{unexpected, Cursor, Node};
use super::stream_entry::entries_batch;
use super::stream_loss::StreamInfo;
use redis::{ConnectionInfo, RedisError, RedisResult};
use std::ops::Range;
use std::time::Duration;

pub struct RawReader {
    conn: RawConnection,
    /// Longest wait for a reply: the server-side BLOCK and a margin.
    response_timeout: Duration,
    /// Reused for each command written.
    out: Vec<u8>,
}

fn protocol_error(e: ProtocolError) -> RedisError {
    RedisError::from((
        redis::ErrorKind::UnexpectedReturnType,
        "unexpected reply",
        e.0,
    ))
}

fn is_no_such_key(text: &[u8]) -> bool {
    text.windows(11).any(|w| w == b"no such key")
}

impl RawReader {
    pub async fn open(
        info: &ConnectionInfo,
        connect_timeout: Duration,
        response_timeout: Duration,
    ) -> RedisResult<Self> {
        Ok(Self {
            conn: RawConnection::connect(info, connect_timeout).await?,
            response_timeout,
            out: Vec::with_capacity(256),
        })
    }

    /// Sends the commands in `self.out` and waits for `replies` replies (see
    /// [`RawConnection::request`]); the previous replies are released first.
    async fn send(&mut self, replies: usize) -> RedisResult<Range<usize>> {
        self.conn.release();
        let request = self.conn.request(&self.out, replies);
        tokio::time::timeout(self.response_timeout, request)
            .await
            .map_err(|_| RedisError::from((redis::ErrorKind::Io, "stream read timed out")))?
    }

    /// Bytes of the replies of the last command sent (until the next one).
    pub fn held(&self, range: Range<usize>) -> &[u8] {
        self.conn.held(range)
    }

    /// `XREAD COUNT 1 BLOCK ms`: whether an entry came after `offset` in time.
    pub async fn wait(&mut self, stream: &str, offset: &str, block_ms: u32) -> RedisResult<bool> {
        self.out.clear();
        let block = block_ms.to_string();
        let args: [&[u8]; 8] = [
            b"XREAD",
            b"COUNT",
            b"1",
            b"BLOCK",
            block.as_bytes(),
            b"STREAMS",
            stream.as_bytes(),
            offset.as_bytes(),
        ];
        write_command(&mut self.out, &args);
        let range = self.send(1).await?;
        match Cursor::new(self.held(range))
            .node()
            .map_err(protocol_error)?
        {
            Node::Nil => Ok(false),
            Node::Array(n) => Ok(n > 0),
            Node::Error(e) => Err(server_error(e)),
            other => Err(protocol_error(unexpected("XREAD reply", other))),
        }
    }

    /// `XINFO STREAM`, or `None` when the stream does not exist.
    pub async fn stream_info(&mut self, stream: &str) -> RedisResult<Option<StreamInfo>> {
        self.out.clear();
        write_command(&mut self.out, &[b"XINFO", b"STREAM", stream.as_bytes()]);
        let range = self.send(1).await?;
        stream_info_at(&mut Cursor::new(self.held(range)))
    }

    /// `MULTI; XINFO STREAM; XREAD COUNT n STREAMS s offset; EXEC`: the stream's counters and
    /// the byte range of the XREAD reply (for `xread_batch` over [`Self::held`]).
    pub async fn read_with_info(
        &mut self,
        stream: &str,
        read_count: u32,
        offset: &str,
    ) -> RedisResult<(Option<StreamInfo>, Range<usize>)> {
        self.out.clear();
        let count = read_count.to_string();
        write_command(&mut self.out, &[b"MULTI"]);
        write_command(&mut self.out, &[b"XINFO", b"STREAM", stream.as_bytes()]);
        let xread: [&[u8]; 6] = [
            b"XREAD",
            b"COUNT",
            count.as_bytes(),
            b"STREAMS",
            stream.as_bytes(),
            offset.as_bytes(),
        ];
        write_command(&mut self.out, &xread);
        write_command(&mut self.out, &[b"EXEC"]);
        let range = self.send(4).await?;
        let mut c = Cursor::new(self.held(range.clone()));
        // +OK, +QUEUED, +QUEUED; a refused command is told here, and EXEC then fails too.
        let mut first_error = None;
        for _ in 0..3 {
            match c.node().map_err(protocol_error)? {
                Node::Simple(_) => {}
                Node::Error(e) => {
                    first_error.get_or_insert_with(|| server_error(e));
                }
                other => return Err(protocol_error(unexpected("MULTI reply", other))),
            }
        }
        match c.node().map_err(protocol_error)? {
            Node::Array(2) => {}
            Node::Error(e) => return Err(first_error.unwrap_or_else(|| server_error(e))),
            other => return Err(protocol_error(unexpected("EXEC reply", other))),
        }
        let info = stream_info_at(&mut c)?;
        if let Node::Error(e) = c.clone().node().map_err(protocol_error)? {
            return Err(server_error(e));
        }
        // The XREAD reply is EXEC's last element, so it ends where the replies do (`request`
        // checked them complete): no walk over the entries to find its end.
        Ok((info, range.start + c.pos()..range.end))
    }

    /// Ids of `XRANGE stream start end [COUNT 1]` (Redis < 7.0 loss checks only).
    pub async fn xrange_ids(
        &mut self,
        stream: &str,
        start: &str,
        end: &str,
        first_only: bool,
    ) -> RedisResult<Vec<String>> {
        self.out.clear();
        let mut args: Vec<&[u8]> = vec![
            b"XRANGE",
            stream.as_bytes(),
            start.as_bytes(),
            end.as_bytes(),
        ];
        if first_only {
            args.extend([&b"COUNT"[..], b"1"]);
        }
        write_command(&mut self.out, &args);
        let range = self.send(1).await?;
        let mut c = Cursor::new(self.held(range));
        if let Node::Error(e) = c.clone().node().map_err(protocol_error)? {
            return Err(server_error(e));
        }
        let batch = entries_batch(&mut c).map_err(protocol_error)?;
        Ok(batch.views().iter().map(|e| e.id.to_string()).collect())
    }
}

/// An `XINFO STREAM` reply at the cursor (RESP2: flat name/value pairs, the first and last
/// entries nested), or `None` for the "no such key" error.
pub fn stream_info_at(c: &mut Cursor<'_>) -> RedisResult<Option<StreamInfo>> {
    let n = match c.node().map_err(protocol_error)? {
        Node::Array(n) => n,
        Node::Error(e) if is_no_such_key(e) => return Ok(None),
        Node::Error(e) => return Err(server_error(e)),
        other => return Err(protocol_error(unexpected("XINFO STREAM reply", other))),
    };
    let mut info = StreamInfo {
        length: 0,
        last_generated_id: "0-0".to_string(),
        entries_added: None,
        first_entry_id: None,
    };
    let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
    for _ in 0..n / 2 {
        let name = c.bulk("XINFO field").map_err(protocol_error)?;
        let value = match name {
            b"length" | b"entries-added" | b"last-generated-id" | b"first-entry" => {
                c.node().map_err(protocol_error)?
            }
            _ => {
                c.skip().map_err(protocol_error)?;
                continue;
            }
        };
        match (name, value) {
            (b"length", Node::Int(n)) => info.length = n.max(0) as u64,
            (b"entries-added", Node::Int(n)) => info.entries_added = Some(n.max(0) as u64),
            (b"last-generated-id", Node::Bulk(id)) => info.last_generated_id = text(id),
            (b"first-entry", Node::Array(len)) => {
                if len > 0 {
                    info.first_entry_id =
                        Some(text(c.bulk("first entry id").map_err(protocol_error)?));
                    for _ in 1..len {
                        c.skip().map_err(protocol_error)?;
                    }
                }
            }
            (b"first-entry", Node::Nil) => {}
            (_, other) => return Err(protocol_error(unexpected("XINFO STREAM value", other))),
        }
    }
    if n % 2 == 1 {
        c.skip().map_err(protocol_error)?;
    }
    Ok(Some(info))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Redis 7 `XINFO STREAM` in RESP2, trimmed of a few fields.
    const INFO: &[u8] = b"*14\r\n$6\r\nlength\r\n:1\r\n$15\r\nradix-tree-keys\r\n:1\r\n\
        $17\r\nlast-generated-id\r\n$3\r\n7-1\r\n$20\r\nmax-deleted-entry-id\r\n$3\r\n0-0\r\n\
        $13\r\nentries-added\r\n:3\r\n$11\r\nfirst-entry\r\n*2\r\n$3\r\n7-1\r\n*2\r\n$1\r\na\r\n$1\r\n3\r\n\
        $10\r\nlast-entry\r\n*2\r\n$3\r\n7-1\r\n*2\r\n$1\r\na\r\n$1\r\n3\r\n";

    #[test]
    fn reads_xinfo_stream_in_resp2() {
        let mut c = Cursor::new(INFO);
        let info = stream_info_at(&mut c).unwrap().unwrap();
        assert_eq!(
            info,
            StreamInfo {
                length: 1,
                last_generated_id: "7-1".into(),
                entries_added: Some(3),
                first_entry_id: Some("7-1".into()),
            }
        );
        assert_eq!(c.pos(), INFO.len());
        // Redis 6: no entries-added; an empty stream's first entry is nil.
        let old = b"*4\r\n$6\r\nlength\r\n:0\r\n$11\r\nfirst-entry\r\n*-1\r\n";
        let info = stream_info_at(&mut Cursor::new(old)).unwrap().unwrap();
        assert_eq!((info.entries_added, info.first_entry_id), (None, None));
        assert_eq!(info.last_generated_id, "0-0");
        let missing = b"-ERR no such key\r\n";
        assert_eq!(stream_info_at(&mut Cursor::new(missing)).unwrap(), None);
        assert!(stream_info_at(&mut Cursor::new(b"-ERR other\r\n")).is_err());
        assert!(stream_info_at(&mut Cursor::new(b"*2\r\n$6\r\nlength\r\n$1\r\nx\r\n")).is_err());
    }
}
