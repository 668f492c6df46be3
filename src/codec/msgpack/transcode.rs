//! Streaming JSON -> MessagePack (notepack bytes); the way back is in `to_json`.

use std::fmt;

use super::{Limits, Writer};
use crate::codec::text_scan::first_escape;

/// Why a JSON text could not be transcoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TranscodeError {
    /// Invalid JSON at byte `offset`.
    Syntax { offset: usize, reason: &'static str },
    /// Nesting deeper than [`Limits::max_depth`] at byte `offset`.
    TooDeep { offset: usize },
    /// A container with more than [`Limits::max_len`] elements, or a string longer
    /// than it, at byte `offset`.
    TooLarge { offset: usize },
}

impl fmt::Display for TranscodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TranscodeError::Syntax { offset, reason } => {
                write!(f, "invalid JSON at byte {offset}: {reason}")
            }
            TranscodeError::TooDeep { offset } => {
                write!(f, "JSON nesting too deep at byte {offset}")
            }
            TranscodeError::TooLarge { offset } => {
                write!(f, "JSON value too large at byte {offset}")
            }
        }
    }
}

impl std::error::Error for TranscodeError {}

/// Transcodes one JSON text into the MessagePack bytes notepack.io would produce for
/// `JSON.parse(json)`, appended to `out` (left unchanged on error), with default limits.
///
/// - Object keys keep their text order. For text produced by `JSON.stringify` this is
///   the JS property order notepack walks (integer-like keys already come first).
/// - Numbers are parsed to the nearest double (as `JSON.parse`) and then encoded with
///   [`Writer::write_f64_as_js_number`]: integral values take the smallest integer
///   format, including notepack's `cf`/`d3` quirks at and beyond 2^53 and 2^64.
/// - Escapes are decoded; a lone surrogate escape (`\ud800`) becomes U+FFFD, the
///   bytes Node's `Buffer` would write (notepack's output differs for short strings,
///   PROTOCOL.md 7.1 calls that case unsupported).
/// - Iterative: deep nesting gives [`TranscodeError::TooDeep`], never a stack overflow.
pub fn json_to_msgpack(json: &str, out: &mut Vec<u8>) -> Result<(), TranscodeError> {
    json_to_msgpack_with_limits(json, &Limits::default(), out)
}

struct Open {
    header_pos: usize,
    count: usize,
    is_map: bool,
}

/// [`json_to_msgpack`] with explicit limits.
pub fn json_to_msgpack_with_limits(
    json: &str,
    limits: &Limits,
    out: &mut Vec<u8>,
) -> Result<(), TranscodeError> {
    transcode(json, limits, &[], out)
}

/// [`json_to_msgpack`] for a JSON text in which socket.io-parser's placeholders
/// (`{"_placeholder":true,"num":N}`, exactly so written by `JSON.stringify`) stand for the
/// binary values `attachments[N]`: each is written as the `bin` notepack writes for that
/// Buffer. A placeholder without its attachment is a syntax error. (The caller makes sure
/// no object of the original value had a `_placeholder` key.)
pub fn json_to_msgpack_with_attachments(
    json: &str,
    attachments: &[&[u8]],
    out: &mut Vec<u8>,
) -> Result<(), TranscodeError> {
    transcode(json, &Limits::default(), attachments, out)
}

fn transcode(
    json: &str,
    limits: &Limits,
    attachments: &[&[u8]],
    out: &mut Vec<u8>,
) -> Result<(), TranscodeError> {
    let start_len = out.len();
    let mut w = Writer::from_vec(std::mem::take(out));
    let res = JsonParser {
        s: json,
        b: json.as_bytes(),
        i: 0,
        scratch: String::new(),
        limits,
        attachments,
    }
    .run(&mut w);
    *out = w.into_inner();
    if res.is_err() {
        out.truncate(start_len);
    }
    res
}

struct JsonParser<'s, 'l> {
    s: &'s str,
    b: &'s [u8],
    i: usize,
    scratch: String,
    limits: &'l Limits,
    /// What placeholders stand for (see [`json_to_msgpack_with_attachments`]).
    attachments: &'l [&'l [u8]],
}

impl JsonParser<'_, '_> {
    fn err(&self, reason: &'static str) -> TranscodeError {
        TranscodeError::Syntax {
            offset: self.i,
            reason,
        }
    }

    fn ws(&mut self) {
        while let Some(b' ' | b'\t' | b'\n' | b'\r') = self.b.get(self.i) {
            self.i += 1;
        }
    }

    fn peek(&self) -> Option<u8> {
        self.b.get(self.i).copied()
    }

    fn run(&mut self, w: &mut Writer) -> Result<(), TranscodeError> {
        let mut stack: Vec<Open> = Vec::new();
        'value: loop {
            // Parse one value (or open a container).
            self.ws();
            match self.peek() {
                Some(b'{') if self.placeholder(w)? => {}
                Some(b'{') | Some(b'[') => {
                    let is_map = self.peek() == Some(b'{');
                    if stack.len() >= self.limits.max_depth {
                        return Err(TranscodeError::TooDeep { offset: self.i });
                    }
                    self.i += 1;
                    stack.push(Open {
                        header_pos: w.len(),
                        count: 0,
                        is_map,
                    });
                    w.write_raw(&[if is_map { 0x80 } else { 0x90 }]);
                    self.ws();
                    let close = if is_map { b'}' } else { b']' };
                    if self.peek() == Some(close) {
                        self.i += 1;
                        close_container(w, &mut stack);
                    } else {
                        self.begin_element(w, &mut stack)?;
                        continue 'value;
                    }
                }
                Some(b'"') => {
                    self.string(w)?;
                }
                Some(b't') => self.literal("true", w, |w| w.write_bool(true))?,
                Some(b'f') => self.literal("false", w, |w| w.write_bool(false))?,
                Some(b'n') => self.literal("null", w, Writer::write_nil)?,
                Some(b'-' | b'0'..=b'9') => self.number(w)?,
                Some(_) => return Err(self.err("unexpected character")),
                None => return Err(self.err("unexpected end of input")),
            }
            // After a complete value: separators and closing brackets.
            loop {
                self.ws();
                let Some(top) = stack.last() else {
                    if self.i != self.b.len() {
                        return Err(self.err("trailing characters"));
                    }
                    return Ok(());
                };
                let close = if top.is_map { b'}' } else { b']' };
                match self.peek() {
                    Some(b',') => {
                        self.i += 1;
                        self.begin_element(w, &mut stack)?;
                        continue 'value;
                    }
                    Some(c) if c == close => {
                        self.i += 1;
                        close_container(w, &mut stack);
                    }
                    Some(_) => return Err(self.err("expected ',' or closing bracket")),
                    None => return Err(self.err("unexpected end of input")),
                }
            }
        }
    }

    /// Counts a new element of the innermost container; for objects also parses the key
    /// and the `:`.
    fn begin_element(&mut self, w: &mut Writer, stack: &mut [Open]) -> Result<(), TranscodeError> {
        let offset = self.i;
        let Some(top) = stack.last_mut() else {
            return Ok(());
        };
        top.count += 1;
        if top.count > self.limits.max_len {
            return Err(TranscodeError::TooLarge { offset });
        }
        if top.is_map {
            self.ws();
            if self.peek() != Some(b'"') {
                return Err(self.err("expected string key"));
            }
            self.string(w)?;
            self.ws();
            if self.peek() != Some(b':') {
                return Err(self.err("expected ':'"));
            }
            self.i += 1;
        }
        Ok(())
    }

    /// At a `{`: when attachments were given and a placeholder starts here, writes its
    /// attachment and returns true.
    fn placeholder(&mut self, w: &mut Writer) -> Result<bool, TranscodeError> {
        const HEAD: &[u8] = b"{\"_placeholder\":true,\"num\":";
        if self.attachments.is_empty() || !self.b[self.i..].starts_with(HEAD) {
            return Ok(false);
        }
        let digits_at = self.i + HEAD.len();
        let digits = self.b[digits_at..]
            .iter()
            .take_while(|c| c.is_ascii_digit())
            .count();
        let index = std::str::from_utf8(&self.b[digits_at..digits_at + digits])
            .ok()
            .and_then(|d| d.parse::<usize>().ok());
        let end = digits_at + digits;
        match (index, self.b.get(end)) {
            (Some(index), Some(b'}')) if index < self.attachments.len() => {
                w.write_bin(self.attachments[index]);
                self.i = end + 1;
                Ok(true)
            }
            _ => Err(self.err("placeholder without its attachment")),
        }
    }

    fn literal(
        &mut self,
        word: &'static str,
        w: &mut Writer,
        emit: impl FnOnce(&mut Writer),
    ) -> Result<(), TranscodeError> {
        if self.b[self.i..].starts_with(word.as_bytes()) {
            self.i += word.len();
            emit(w);
            Ok(())
        } else {
            Err(self.err("invalid literal"))
        }
    }

    fn number(&mut self, w: &mut Writer) -> Result<(), TranscodeError> {
        let start = self.i;
        let digits = |p: &mut Self| {
            let s = p.i;
            while let Some(b'0'..=b'9') = p.peek() {
                p.i += 1;
            }
            p.i - s
        };
        if self.peek() == Some(b'-') {
            self.i += 1;
        }
        let int_start = self.i;
        let n = digits(self);
        if n == 0 {
            return Err(self.err("invalid number"));
        }
        if n > 1 && self.b[int_start] == b'0' {
            return Err(TranscodeError::Syntax {
                offset: int_start,
                reason: "leading zero in number",
            });
        }
        if self.peek() == Some(b'.') {
            self.i += 1;
            if digits(self) == 0 {
                return Err(self.err("invalid fraction"));
            }
        }
        if let Some(b'e' | b'E') = self.peek() {
            self.i += 1;
            if let Some(b'+' | b'-') = self.peek() {
                self.i += 1;
            }
            if digits(self) == 0 {
                return Err(self.err("invalid exponent"));
            }
        }
        // A plain integer of up to 15 digits is exactly its i64 (and exactly a double):
        // most numbers on the wire (ids, counts, timestamps) skip the float parser.
        if self.i - int_start == n && n <= 15 {
            let magnitude = self.b[int_start..self.i]
                .iter()
                .fold(0i64, |acc, &d| acc * 10 + i64::from(d - b'0'));
            let negative = int_start > start;
            // -0 stays a float parse: it is the double -0.0, not the integer 0.
            if !(negative && magnitude == 0) {
                w.write_f64_as_js_number(if negative { -magnitude } else { magnitude } as f64);
                return Ok(());
            }
        }
        // The grammar checked above is a subset of what `f64::from_str` accepts, and that
        // parse is correctly rounded like `JSON.parse`.
        let v: f64 = self.s[start..self.i]
            .parse()
            .map_err(|_| TranscodeError::Syntax {
                offset: start,
                reason: "invalid number",
            })?;
        w.write_f64_as_js_number(v);
        Ok(())
    }

    fn hex4(&mut self) -> Result<u32, TranscodeError> {
        let h = self
            .b
            .get(self.i..self.i + 4)
            .ok_or_else(|| self.err("truncated \\u escape"))?;
        let mut v = 0u32;
        for &c in h {
            let d = (c as char)
                .to_digit(16)
                .ok_or_else(|| self.err("invalid \\u escape"))?;
            v = v * 16 + d;
        }
        self.i += 4;
        Ok(v)
    }

    /// Parses the string starting at the opening quote and writes it as a msgpack str.
    fn string(&mut self, w: &mut Writer) -> Result<(), TranscodeError> {
        let start = self.i + 1;
        // Fast path: no escapes, the text between the quotes is the string.
        let p = start + first_escape(&self.b[start..]);
        match self.b.get(p) {
            Some(b'"') => {
                self.check_len(p - start)?;
                w.write_str(&self.s[start..p]);
                self.i = p + 1;
                return Ok(());
            }
            Some(b'\\') => {}
            Some(_) => {
                self.i = p;
                return Err(self.err("control character in string"));
            }
            None => {
                self.i = p;
                return Err(self.err("unterminated string"));
            }
        }
        let mut buf = std::mem::take(&mut self.scratch);
        buf.clear();
        buf.push_str(&self.s[start..p]);
        self.i = p;
        let res = self.string_slow(&mut buf);
        if res.is_ok() {
            match self.check_len(buf.len()) {
                Ok(()) => w.write_str(&buf),
                Err(e) => {
                    self.scratch = buf;
                    return Err(e);
                }
            }
        }
        self.scratch = buf;
        res
    }

    fn check_len(&self, len: usize) -> Result<(), TranscodeError> {
        if len > self.limits.max_len {
            return Err(TranscodeError::TooLarge { offset: self.i });
        }
        Ok(())
    }

    fn string_slow(&mut self, buf: &mut String) -> Result<(), TranscodeError> {
        loop {
            let run_start = self.i;
            self.i += first_escape(&self.b[self.i..]);
            buf.push_str(&self.s[run_start..self.i]);
            match self.peek() {
                Some(b'"') => {
                    self.i += 1;
                    return Ok(());
                }
                Some(b'\\') => {
                    self.i += 1;
                    let c = self.peek().ok_or_else(|| self.err("unterminated escape"))?;
                    self.i += 1;
                    match c {
                        b'"' => buf.push('"'),
                        b'\\' => buf.push('\\'),
                        b'/' => buf.push('/'),
                        b'b' => buf.push('\u{8}'),
                        b'f' => buf.push('\u{c}'),
                        b'n' => buf.push('\n'),
                        b'r' => buf.push('\r'),
                        b't' => buf.push('\t'),
                        b'u' => {
                            let u = self.hex4()?;
                            let ch = if (0xd800..0xdc00).contains(&u)
                                && self.b.get(self.i..self.i + 2) == Some(b"\\u")
                            {
                                let save = self.i;
                                self.i += 2;
                                let lo = self.hex4()?;
                                if (0xdc00..0xe000).contains(&lo) {
                                    char::from_u32(0x10000 + ((u - 0xd800) << 10) + (lo - 0xdc00))
                                } else {
                                    self.i = save; // lone high surrogate; re-read the next escape
                                    None
                                }
                            } else {
                                char::from_u32(u)
                            };
                            buf.push(ch.unwrap_or('\u{fffd}'));
                        }
                        _ => {
                            self.i -= 1;
                            return Err(self.err("invalid escape"));
                        }
                    }
                }
                Some(_) => return Err(self.err("control character in string")),
                None => return Err(self.err("unterminated string")),
            }
        }
    }
}

/// Rewrites the placeholder header of the innermost container with its final count,
/// growing it (shifting the body) when the count needs a 16- or 32-bit header.
fn close_container(w: &mut Writer, stack: &mut Vec<Open>) {
    let Some(open) = stack.pop() else { return };
    let mut hdr = Writer::with_capacity(5);
    if open.is_map {
        hdr.write_map_len(open.count);
    } else {
        hdr.write_array_len(open.count);
    }
    let mut buf = std::mem::take(w).into_inner();
    buf.splice(open.header_pos..open.header_pos + 1, hdr.into_inner());
    *w = Writer::from_vec(buf);
}
