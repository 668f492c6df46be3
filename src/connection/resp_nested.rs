//! Whole RESP2 replies with nested arrays (XREAD, XINFO STREAM, EXEC), read in place.
//!
//! Why: the redis crate turns each such reply into an owned `Value` tree, then the stream
//! reader copied every id, field and value once more; under load that was most of the reader
//! threads' time. Here a reply is first checked to be complete ([`complete_value`], no
//! allocation), then walked with a [`Cursor`] whose bulk strings borrow from the read buffer.

use super::resp::{parse_int, read_line, ProtocolError};

/// Deepest nesting accepted. XREAD needs 4 levels, EXEC(XINFO STREAM) 5 (the first entry's
/// fields); anything far deeper is not a reply of ours and is refused.
pub const MAX_DEPTH: usize = 8;
/// Most elements in one array: far above any XREAD COUNT used, and it keeps hostile lengths
/// from being taken at face value.
pub const MAX_ARRAY: usize = 1 << 24;
/// Redis's own limit on a bulk string (proto-max-bulk-len).
pub const MAX_BULK: usize = 512 << 20;

/// The head of one value. An array's elements follow it in the buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Node<'a> {
    Int(i64),
    Bulk(&'a [u8]),
    Simple(&'a [u8]),
    Error(&'a [u8]),
    Nil,
    Array(usize),
}

/// Whether a whole value is at the start of a buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Completeness {
    /// It is, and ends at this offset.
    Complete(usize),
    /// Not yet; the buffer needs at least this many bytes in all (a hint for the reader).
    Incomplete(usize),
}

/// One value head at `pos`: the node and the offset after it (after the payload, for a bulk
/// string), or `None` when the buffer ends first.
pub(super) fn read_node(
    buf: &[u8],
    pos: usize,
) -> Result<Option<(Node<'_>, usize)>, ProtocolError> {
    let Some((line, after)) = read_line(buf, pos)? else {
        return Ok(None);
    };
    let node = match buf[pos] {
        b':' => Node::Int(parse_int(line)?),
        b'+' => Node::Simple(line),
        b'-' => Node::Error(line),
        b'*' => match length(line, MAX_ARRAY)? {
            None => Node::Nil,
            Some(n) => Node::Array(n),
        },
        b'$' => {
            let Some(n) = length(line, MAX_BULK)? else {
                return Ok(Some((Node::Nil, after)));
            };
            let end = after + n;
            if buf.len() < end + 2 {
                return Ok(None);
            }
            if &buf[end..end + 2] != b"\r\n" {
                return Err(ProtocolError("bulk string without CRLF".into()));
            }
            return Ok(Some((Node::Bulk(&buf[after..end]), end + 2)));
        }
        other => return Err(ProtocolError(format!("type byte {other:#04x}"))),
    };
    Ok(Some((node, after)))
}

/// A length field: `None` for -1 (nil), refused when negative otherwise or above `max`.
fn length(line: &[u8], max: usize) -> Result<Option<usize>, ProtocolError> {
    match parse_int(line)? {
        -1 => Ok(None),
        n if n < 0 || n as u64 > max as u64 => Err(ProtocolError(format!("length {n}"))),
        n => Ok(Some(n as usize)),
    }
}

/// How many bytes the value head at `pos` needs (at least one more than there are): a bulk
/// string's whole length once its header is in, so a large one is read in one go.
pub(super) fn needed(buf: &[u8], pos: usize) -> Result<usize, ProtocolError> {
    if pos < buf.len() && buf[pos] == b'$' {
        if let Some((line, after)) = read_line(buf, pos)? {
            if let Some(n) = length(line, MAX_BULK)? {
                return Ok((after + n + 2).max(buf.len() + 1));
            }
        }
    }
    Ok(buf.len() + 1)
}

/// Checks that one whole value (arrays to [`MAX_DEPTH`]) starts at `pos`, without allocating.
/// Every prefix of a valid reply is `Incomplete`, never an error.
pub fn complete_value(buf: &[u8], pos: usize) -> Result<Completeness, ProtocolError> {
    // Elements still expected by each open array, innermost last.
    let mut pending = [0usize; MAX_DEPTH];
    let mut depth = 0;
    let mut pos = pos;
    loop {
        if pos >= buf.len() {
            return Ok(Completeness::Incomplete(pos + 1));
        }
        let Some((node, after)) = read_node(buf, pos)? else {
            return Ok(Completeness::Incomplete(needed(buf, pos)?));
        };
        pos = after;
        if let Node::Array(n @ 1..) = node {
            if depth == MAX_DEPTH {
                return Err(ProtocolError("arrays nested too deep".into()));
            }
            pending[depth] = n;
            depth += 1;
            continue;
        }
        // A value is done: close every array it completes.
        loop {
            if depth == 0 {
                return Ok(Completeness::Complete(pos));
            }
            pending[depth - 1] -= 1;
            if pending[depth - 1] > 0 {
                break;
            }
            depth -= 1;
        }
    }
}

/// Reads the values of a buffer known to be complete (see [`complete_value`]) one head at a
/// time; the shape expected is the caller's to check.
#[derive(Debug, Clone)]
pub struct Cursor<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Cursor<'a> {
    pub fn new(buf: &'a [u8]) -> Self {
        Self { buf, pos: 0 }
    }

    pub fn pos(&self) -> usize {
        self.pos
    }

    pub fn node(&mut self) -> Result<Node<'a>, ProtocolError> {
        match read_node(self.buf, self.pos)? {
            Some((node, after)) => {
                self.pos = after;
                Ok(node)
            }
            None => Err(ProtocolError("reply ends early".into())),
        }
    }

    /// Passes over one whole value, nested arrays included.
    pub fn skip(&mut self) -> Result<(), ProtocolError> {
        let mut left = 1usize;
        while left > 0 {
            if let Node::Array(n) = self.node()? {
                left += n;
            }
            left -= 1;
        }
        Ok(())
    }

    pub fn array(&mut self, what: &str) -> Result<Option<usize>, ProtocolError> {
        match self.node()? {
            Node::Array(n) => Ok(Some(n)),
            Node::Nil => Ok(None),
            other => Err(unexpected(what, other)),
        }
    }

    pub fn bulk(&mut self, what: &str) -> Result<&'a [u8], ProtocolError> {
        match self.node()? {
            Node::Bulk(b) => Ok(b),
            other => Err(unexpected(what, other)),
        }
    }
}

pub fn unexpected(what: &str, node: Node<'_>) -> ProtocolError {
    let shown = match node {
        Node::Bulk(b) | Node::Simple(b) | Node::Error(b) => {
            format!("{:?}", String::from_utf8_lossy(&b[..b.len().min(80)]))
        }
        other => format!("{other:?}"),
    };
    ProtocolError(format!("{what}: {shown}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    const XREAD: &[u8] =
        b"*1\r\n*2\r\n$1\r\ns\r\n*2\r\n*2\r\n$3\r\n1-0\r\n*4\r\n$3\r\nuid\r\n$1\r\na\r\n\
        $3\r\nnsp\r\n$1\r\n/\r\n*2\r\n$3\r\n2-0\r\n*-1\r\n";

    #[test]
    fn every_prefix_of_a_nested_reply_is_incomplete_never_an_error() {
        for cut in 0..XREAD.len() {
            match complete_value(&XREAD[..cut], 0).unwrap() {
                Completeness::Incomplete(need) => assert!(need > cut, "cut {cut}: need {need}"),
                other => panic!("cut {cut}: {other:?}"),
            }
        }
        assert_eq!(
            complete_value(XREAD, 0).unwrap(),
            Completeness::Complete(XREAD.len())
        );
        // Two replies back to back: the first ends where the second starts.
        let two = [XREAD, b":5\r\n"].concat();
        assert_eq!(
            complete_value(&two, 0).unwrap(),
            Completeness::Complete(XREAD.len())
        );
        assert_eq!(
            complete_value(&two, XREAD.len()).unwrap(),
            Completeness::Complete(two.len())
        );
        // Empty arrays and nil are whole values.
        assert_eq!(
            complete_value(b"*0\r\n", 0).unwrap(),
            Completeness::Complete(4)
        );
        assert_eq!(
            complete_value(b"*-1\r\n", 0).unwrap(),
            Completeness::Complete(5)
        );
    }

    #[test]
    fn asks_for_a_large_bulk_string_in_one_go() {
        let head = b"*2\r\n$2\r\nab\r\n$100000\r\nxy";
        assert_eq!(
            complete_value(head, 0).unwrap(),
            Completeness::Incomplete(head.len() - 2 + 100_002)
        );
    }

    #[test]
    fn refuses_hostile_nesting_and_lengths() {
        let deep = b"*1\r\n".repeat(MAX_DEPTH + 1);
        assert!(complete_value(&deep, 0).is_err());
        // as deep as allowed is fine (and incomplete until the innermost value comes)
        let ok = b"*1\r\n".repeat(MAX_DEPTH);
        assert!(matches!(
            complete_value(&ok, 0),
            Ok(Completeness::Incomplete(_))
        ));
        assert_eq!(
            complete_value(&[&ok[..], b":1\r\n"].concat(), 0).unwrap(),
            Completeness::Complete(ok.len() + 4)
        );
        for bad in [
            &b"*99999999999\r\n"[..],
            b"$99999999999\r\n",
            b"$99999999999999999999999\r\n",
            b"*-2\r\n",
            b"$-7\r\n",
            b"*1\r\n$3\r\nabcXY",
            b"%1\r\n",
            b"*2\r\n:1\r\n:x\r\n",
        ] {
            assert!(complete_value(bad, 0).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn walks_and_skips_values() {
        let mut c = Cursor::new(XREAD);
        assert_eq!(c.array("streams").unwrap(), Some(1));
        assert_eq!(c.array("stream").unwrap(), Some(2));
        assert_eq!(c.bulk("name").unwrap(), b"s");
        assert_eq!(c.array("entries").unwrap(), Some(2));
        c.skip().unwrap();
        assert_eq!(c.array("entry").unwrap(), Some(2));
        assert_eq!(c.bulk("id").unwrap(), b"2-0");
        assert_eq!(c.array("fields").unwrap(), None);
        assert_eq!(c.pos(), XREAD.len());
        assert!(c.node().is_err());
        assert!(Cursor::new(b":1\r\n").bulk("id").is_err());
    }
}
