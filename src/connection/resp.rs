//! Just enough RESP2 for the hot paths: writing commands and reading the replies and pub/sub
//! pushes of a subscription or a pipeline of PUBLISH calls, straight from the read buffer.
//!
//! Why not the redis crate here: its general parser turns every pushed message into an owned
//! `Value` tree (three or four allocations and copies), then a `Msg` sent through a channel to
//! another task. Profiled on a receiving node at full load, that was about a third of the
//! Tokio thread's time. Frames read here borrow from the buffer and allocate nothing.

use super::resp_nested::{needed, read_node, Node};

/// Appends one command as a RESP array of bulk strings.
pub fn write_command(out: &mut Vec<u8>, args: &[&[u8]]) {
    write_len(out, b'*', args.len());
    for arg in args {
        write_len(out, b'$', arg.len());
        out.extend_from_slice(arg);
        out.extend_from_slice(b"\r\n");
    }
}

pub fn write_len(out: &mut Vec<u8>, tag: u8, n: usize) {
    out.push(tag);
    let mut digits = [0u8; 20];
    let mut i = digits.len();
    let mut n = n;
    loop {
        i -= 1;
        digits[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    out.extend_from_slice(&digits[i..]);
    out.extend_from_slice(b"\r\n");
}

/// One element of a reply: what pub/sub pushes and PUBLISH replies are made of.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Item<'a> {
    Int(i64),
    Bulk(&'a [u8]),
    Nil,
    Simple(&'a [u8]),
    Error(&'a [u8]),
}

/// A whole frame: a scalar, or an array of up to [`MAX_ITEMS`] scalars (pub/sub pushes have
/// 3 or 4; nested or longer arrays are not expected on these connections and are refused).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Frame<'a> {
    Item(Item<'a>),
    Array {
        len: usize,
        items: [Item<'a>; MAX_ITEMS],
    },
}

pub const MAX_ITEMS: usize = 4;

impl<'a> Frame<'a> {
    pub fn items(&self) -> &[Item<'a>] {
        match self {
            Frame::Item(item) => std::slice::from_ref(item),
            Frame::Array { len, items } => &items[..*len],
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProtocolError(pub String);

impl std::fmt::Display for ProtocolError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "unexpected data from Redis: {}", self.0)
    }
}

/// Outcome of reading at the start of a buffer.
#[derive(Debug, PartialEq, Eq)]
pub enum Parsed<'a> {
    /// A frame and the bytes it used.
    Frame(Frame<'a>, usize),
    /// Not all there yet; at least this many bytes in all are needed (a hint for the buffer).
    Incomplete(usize),
}

/// Reads one frame at the start of `buf`.
pub fn parse_frame(buf: &[u8]) -> Result<Parsed<'_>, ProtocolError> {
    let Some((head, body)) = read_line(buf, 0)? else {
        return Ok(Parsed::Incomplete(buf.len() + 1));
    };
    if buf[0] != b'*' {
        return Ok(match parse_item(buf, 0)? {
            Some((item, end)) => Parsed::Frame(Frame::Item(item), end),
            None => Parsed::Incomplete(needed(buf, 0)?),
        });
    }
    let n = parse_int(head)?;
    if n < 0 {
        return Ok(Parsed::Frame(Frame::Item(Item::Nil), body));
    }
    let len = n as usize;
    if len > MAX_ITEMS {
        return Err(ProtocolError(format!("array of {len} items")));
    }
    let mut items = [Item::Nil; MAX_ITEMS];
    let mut pos = body;
    for slot in items.iter_mut().take(len) {
        if pos >= buf.len() {
            return Ok(Parsed::Incomplete(pos + 1));
        }
        if buf[pos] == b'*' {
            return Err(ProtocolError("nested array".into()));
        }
        match parse_item(buf, pos)? {
            Some((item, end)) => {
                *slot = item;
                pos = end;
            }
            None => return Ok(Parsed::Incomplete(needed(buf, pos)?)),
        }
    }
    Ok(Parsed::Frame(Frame::Array { len, items }, pos))
}

/// `(line without the tag and CRLF, offset after CRLF)`, or None when the line is incomplete.
pub(super) fn read_line(buf: &[u8], start: usize) -> Result<Option<(&[u8], usize)>, ProtocolError> {
    let rest = &buf[start..];
    let Some(cr) = rest.iter().position(|&b| b == b'\r') else {
        if rest.len() > 64 * 1024 {
            return Err(ProtocolError("line without end".into()));
        }
        return Ok(None);
    };
    if rest.len() < cr + 2 {
        return Ok(None);
    }
    if rest[cr + 1] != b'\n' || cr == 0 {
        return Err(ProtocolError("malformed line".into()));
    }
    Ok(Some((&rest[1..cr], start + cr + 2)))
}

pub(super) fn parse_int(digits: &[u8]) -> Result<i64, ProtocolError> {
    std::str::from_utf8(digits)
        .ok()
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| ProtocolError(format!("bad number {:?}", String::from_utf8_lossy(digits))))
}

/// One scalar at `pos`, or None when incomplete (the nested parser's heads, arrays refused).
fn parse_item(buf: &[u8], pos: usize) -> Result<Option<(Item<'_>, usize)>, ProtocolError> {
    let Some((node, end)) = read_node(buf, pos)? else {
        return Ok(None);
    };
    let item = match node {
        Node::Int(n) => Item::Int(n),
        Node::Bulk(b) => Item::Bulk(b),
        Node::Simple(s) => Item::Simple(s),
        Node::Error(e) => Item::Error(e),
        Node::Nil => Item::Nil,
        Node::Array(_) => return Err(ProtocolError("nested array".into())),
    };
    Ok(Some((item, end)))
}

/// What a subscription connection receives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Push<'a> {
    /// A `message` of a SUBSCRIBE, or an `smessage` of an SSUBSCRIBE (sharded): the same three
    /// items, and a connection only ever receives one of the two kinds.
    Message {
        channel: &'a [u8],
        payload: &'a [u8],
    },
    PMessage {
        pattern: &'a [u8],
        channel: &'a [u8],
        payload: &'a [u8],
    },
    /// `subscribe`, `psubscribe`, `unsubscribe`, `ssubscribe`... confirmations, one per channel
    /// or pattern. A `sunsubscribe` may also come unasked: Redis sends it when the slot of a
    /// shard channel moves to another node.
    Confirmation {
        kind: &'a [u8],
        name: &'a [u8],
    },
    Error(&'a [u8]),
    /// Anything else (a `pong`...): ignored.
    Other,
}

impl<'a> Frame<'a> {
    pub fn as_push(&self) -> Push<'a> {
        use Item::Bulk;
        match *self.items() {
            [Bulk(b"message" | b"smessage"), Bulk(channel), Bulk(payload)] => {
                Push::Message { channel, payload }
            }
            [Bulk(b"pmessage"), Bulk(pattern), Bulk(channel), Bulk(payload)] => Push::PMessage {
                pattern,
                channel,
                payload,
            },
            [Bulk(kind), Bulk(name), Item::Int(_)] if kind.ends_with(b"subscribe") => {
                Push::Confirmation { kind, name }
            }
            [Item::Error(e)] => Push::Error(e),
            _ => Push::Other,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(buf: &[u8]) -> (Frame<'_>, usize) {
        match parse_frame(buf).unwrap() {
            Parsed::Frame(f, n) => (f, n),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn writes_commands_as_arrays_of_bulk_strings() {
        let mut out = Vec::new();
        write_command(&mut out, &[b"PUBLISH", b"ch", b""]);
        assert_eq!(out, b"*3\r\n$7\r\nPUBLISH\r\n$2\r\nch\r\n$0\r\n\r\n");
        out.clear();
        write_command(&mut out, &[&[0u8; 1234][..]]);
        assert!(out.starts_with(b"*1\r\n$1234\r\n"));
    }

    #[test]
    fn reads_messages_pmessages_and_confirmations() {
        let buf = b"*3\r\n$7\r\nmessage\r\n$2\r\nch\r\n$5\r\nh\r\n\0y\r\n:7\r\n";
        let (f, n) = frame(buf);
        assert_eq!(
            f.as_push(),
            Push::Message {
                channel: b"ch",
                payload: b"h\r\n\0y"
            }
        );
        assert_eq!(frame(&buf[n..]).0, Frame::Item(Item::Int(7)));
        let (f, _) = frame(b"*4\r\n$8\r\npmessage\r\n$3\r\np#*\r\n$3\r\np#a\r\n$0\r\n\r\n");
        assert_eq!(
            f.as_push(),
            Push::PMessage {
                pattern: b"p#*",
                channel: b"p#a",
                payload: b""
            }
        );
        let (f, _) = frame(b"*3\r\n$10\r\npsubscribe\r\n$3\r\np#*\r\n:1\r\n");
        assert_eq!(
            f.as_push(),
            Push::Confirmation {
                kind: b"psubscribe",
                name: b"p#*"
            }
        );
        let (f, _) = frame(b"-NOPERM no\r\n");
        assert_eq!(f.as_push(), Push::Error(b"NOPERM no"));
    }

    #[test]
    fn reads_shard_messages_and_shard_confirmations() {
        let (f, _) = frame(b"*3\r\n$8\r\nsmessage\r\n$4\r\n{r}1\r\n$3\r\nabc\r\n");
        assert_eq!(
            f.as_push(),
            Push::Message {
                channel: b"{r}1",
                payload: b"abc"
            }
        );
        for (buf, kind) in [
            (
                &b"*3\r\n$10\r\nssubscribe\r\n$2\r\nch\r\n:1\r\n"[..],
                &b"ssubscribe"[..],
            ),
            (
                b"*3\r\n$12\r\nsunsubscribe\r\n$2\r\nch\r\n:0\r\n",
                b"sunsubscribe",
            ),
        ] {
            assert_eq!(
                frame(buf).0.as_push(),
                Push::Confirmation { kind, name: b"ch" }
            );
        }
        // A kind that only ends like `message` is not one.
        let (f, _) = frame(b"*3\r\n$9\r\nxsmessage\r\n$2\r\nch\r\n$0\r\n\r\n");
        assert_eq!(f.as_push(), Push::Other);
    }

    #[test]
    fn every_prefix_of_a_frame_is_incomplete_never_an_error() {
        let buf = b"*3\r\n$7\r\nmessage\r\n$2\r\nch\r\n$11\r\nhello world\r\n";
        for cut in 0..buf.len() {
            match parse_frame(&buf[..cut]).unwrap() {
                Parsed::Incomplete(need) => assert!(need > cut, "cut {cut}: need {need}"),
                other => panic!("cut {cut}: {other:?}"),
            }
        }
        assert!(matches!(parse_frame(buf).unwrap(), Parsed::Frame(_, n) if n == buf.len()));
        // The hint for a large bulk string is its whole length, so the buffer grows once.
        let big = b"*3\r\n$7\r\nmessage\r\n$2\r\nch\r\n$100000\r\nab";
        assert_eq!(
            parse_frame(big).unwrap(),
            Parsed::Incomplete(big.len() - 2 + 100002)
        );
    }

    #[test]
    fn refuses_what_these_connections_never_receive() {
        assert!(parse_frame(b"*9\r\n").is_err());
        assert!(parse_frame(b"*1\r\n*1\r\n:1\r\n").is_err());
        assert!(parse_frame(b"!oops\r\n").is_err());
        assert!(parse_frame(b"$3\r\nabcXY").is_err());
        assert!(parse_frame(b":12x\r\n").is_err());
    }
}
