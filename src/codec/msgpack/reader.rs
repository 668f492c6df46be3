//! Zero-copy MessagePack reader: marker decoding, iterative validation, lazy views.

use super::{DecodeError, Limits};

/// One decoded marker with its inline payload; str/bin/ext/array/map carry their length.
#[derive(Debug, Clone, Copy)]
pub(super) enum Head {
    Nil,
    Bool(bool),
    UInt(u64),
    Int(i64),
    F32(f32),
    F64(f64),
    Str(usize),
    Bin(usize),
    Array(usize),
    Map(usize),
    Ext(i8, usize),
}

#[inline]
fn take<const N: usize>(buf: &[u8], pos: usize) -> Result<[u8; N], DecodeError> {
    buf.get(pos..pos + N)
        .and_then(|s| s.try_into().ok())
        .ok_or(DecodeError::Truncated)
}

#[inline]
fn be_len<const N: usize>(buf: &[u8], pos: usize) -> Result<usize, DecodeError> {
    let bytes: [u8; N] = take(buf, pos)?;
    let v = bytes.iter().fold(0u64, |acc, &b| (acc << 8) | u64::from(b));
    usize::try_from(v).map_err(|_| DecodeError::TooLarge)
}

/// Decodes the marker at `pos`; returns the head and the position just after it
/// (i.e. at the payload of str/bin/ext or the first element of array/map).
#[inline]
pub(super) fn read_head(buf: &[u8], pos: usize) -> Result<(Head, usize), DecodeError> {
    let m = *buf.get(pos).ok_or(DecodeError::Truncated)?;
    let p = pos + 1;
    Ok(match m {
        0x00..=0x7f => (Head::UInt(u64::from(m)), p),
        0x80..=0x8f => (Head::Map(usize::from(m & 0x0f)), p),
        0x90..=0x9f => (Head::Array(usize::from(m & 0x0f)), p),
        0xa0..=0xbf => (Head::Str(usize::from(m & 0x1f)), p),
        0xc0 => (Head::Nil, p),
        0xc1 => return Err(DecodeError::InvalidMarker(m)),
        0xc2 => (Head::Bool(false), p),
        0xc3 => (Head::Bool(true), p),
        0xc4 => (Head::Bin(be_len::<1>(buf, p)?), p + 1),
        0xc5 => (Head::Bin(be_len::<2>(buf, p)?), p + 2),
        0xc6 => (Head::Bin(be_len::<4>(buf, p)?), p + 4),
        0xc7 => (
            Head::Ext(ext_type(buf, p + 1)?, be_len::<1>(buf, p)?),
            p + 2,
        ),
        0xc8 => (
            Head::Ext(ext_type(buf, p + 2)?, be_len::<2>(buf, p)?),
            p + 3,
        ),
        0xc9 => (
            Head::Ext(ext_type(buf, p + 4)?, be_len::<4>(buf, p)?),
            p + 5,
        ),
        0xca => (Head::F32(f32::from_be_bytes(take(buf, p)?)), p + 4),
        0xcb => (Head::F64(f64::from_be_bytes(take(buf, p)?)), p + 8),
        0xcc => (Head::UInt(u64::from(take::<1>(buf, p)?[0])), p + 1),
        0xcd => (
            Head::UInt(u64::from(u16::from_be_bytes(take(buf, p)?))),
            p + 2,
        ),
        0xce => (
            Head::UInt(u64::from(u32::from_be_bytes(take(buf, p)?))),
            p + 4,
        ),
        0xcf => (Head::UInt(u64::from_be_bytes(take(buf, p)?)), p + 8),
        0xd0 => (
            Head::Int(i64::from(i8::from_be_bytes(take(buf, p)?))),
            p + 1,
        ),
        0xd1 => (
            Head::Int(i64::from(i16::from_be_bytes(take(buf, p)?))),
            p + 2,
        ),
        0xd2 => (
            Head::Int(i64::from(i32::from_be_bytes(take(buf, p)?))),
            p + 4,
        ),
        0xd3 => (Head::Int(i64::from_be_bytes(take(buf, p)?)), p + 8),
        0xd4 => (Head::Ext(ext_type(buf, p)?, 1), p + 1),
        0xd5 => (Head::Ext(ext_type(buf, p)?, 2), p + 1),
        0xd6 => (Head::Ext(ext_type(buf, p)?, 4), p + 1),
        0xd7 => (Head::Ext(ext_type(buf, p)?, 8), p + 1),
        0xd8 => (Head::Ext(ext_type(buf, p)?, 16), p + 1),
        0xd9 => (Head::Str(be_len::<1>(buf, p)?), p + 1),
        0xda => (Head::Str(be_len::<2>(buf, p)?), p + 2),
        0xdb => (Head::Str(be_len::<4>(buf, p)?), p + 4),
        0xdc => (Head::Array(be_len::<2>(buf, p)?), p + 2),
        0xdd => (Head::Array(be_len::<4>(buf, p)?), p + 4),
        0xde => (Head::Map(be_len::<2>(buf, p)?), p + 2),
        0xdf => (Head::Map(be_len::<4>(buf, p)?), p + 4),
        0xe0..=0xff => (Head::Int(i64::from(m as i8)), p),
    })
}

#[inline]
fn ext_type(buf: &[u8], pos: usize) -> Result<i8, DecodeError> {
    Ok(take::<1>(buf, pos)?[0] as i8)
}

/// Stack of "items still expected" per open container. The first 16 levels live inline,
/// so ordinary payloads validate without allocating.
struct PendingStack {
    inline: [u64; 16],
    len: usize,
    spill: Vec<u64>,
}

impl PendingStack {
    fn new() -> Self {
        PendingStack {
            inline: [0; 16],
            len: 0,
            spill: Vec::new(),
        }
    }
    fn push(&mut self, v: u64) {
        if self.len < self.inline.len() {
            self.inline[self.len] = v;
        } else {
            self.spill.push(v);
        }
        self.len += 1;
    }
    fn top_mut(&mut self) -> Option<&mut u64> {
        match self.len {
            0 => None,
            n if n <= self.inline.len() => Some(&mut self.inline[n - 1]),
            _ => self.spill.last_mut(),
        }
    }
    fn pop(&mut self) {
        if self.len > self.inline.len() {
            self.spill.pop();
        }
        self.len = self.len.saturating_sub(1);
    }
}

/// Returns the encoded length of the first value of `buf`, validating its structure
/// (markers, lengths within the input, depth and length limits). Iterative: the work
/// is linear in the input size and memory is bounded by `limits.max_depth`.
pub fn skip_value(buf: &[u8], limits: &Limits) -> Result<usize, DecodeError> {
    skip_at(buf, 0, limits)
}

pub(super) fn skip_at(buf: &[u8], start: usize, limits: &Limits) -> Result<usize, DecodeError> {
    // Most values skipped are scalars or strings (map keys, uids, flags): done without
    // setting up the container walk (this runs several times per received broadcast).
    match read_head(buf, start)? {
        (Head::Str(len) | Head::Bin(len) | Head::Ext(_, len), p) => {
            if len > limits.max_len {
                return Err(DecodeError::TooLarge);
            }
            if buf.len() - p < len {
                return Err(DecodeError::Truncated);
            }
            return Ok(p + len);
        }
        (Head::Array(_) | Head::Map(_), _) => {}
        (_, p) => return Ok(p),
    }
    let mut pos = start;
    let mut stack = PendingStack::new();
    loop {
        let (head, p) = read_head(buf, pos)?;
        pos = p;
        match head {
            Head::Str(len) | Head::Bin(len) | Head::Ext(_, len) => {
                if len > limits.max_len {
                    return Err(DecodeError::TooLarge);
                }
                if buf.len() - pos < len {
                    return Err(DecodeError::Truncated);
                }
                pos += len;
            }
            Head::Array(n) | Head::Map(n) => {
                if n > limits.max_len {
                    return Err(DecodeError::TooLarge);
                }
                let items = if matches!(head, Head::Map(_)) {
                    2 * n as u64
                } else {
                    n as u64
                };
                if items > 0 {
                    // Every item takes at least one byte: reject impossible counts at once.
                    if items > (buf.len() - pos) as u64 {
                        return Err(DecodeError::Truncated);
                    }
                    if stack.len >= limits.max_depth {
                        return Err(DecodeError::TooDeep);
                    }
                    stack.push(items);
                    continue;
                }
            }
            _ => {}
        }
        // One value is complete: account for it in the enclosing containers.
        loop {
            match stack.top_mut() {
                None => return Ok(pos),
                Some(left) => {
                    *left -= 1;
                    if *left > 0 {
                        break;
                    }
                }
            }
            stack.pop();
        }
    }
}

/// Checks that `buf` holds exactly one well-formed value and nothing else.
pub fn validate(buf: &[u8], limits: &Limits) -> Result<(), DecodeError> {
    let end = skip_value(buf, limits)?;
    if end != buf.len() {
        return Err(DecodeError::TrailingBytes(buf.len() - end));
    }
    Ok(())
}

/// Zero-copy view of one encoded value.
///
/// Integers keep their wire family: positive fixint and `cc..cf` give [`ValueRef::UInt`],
/// negative fixint and `d0..d3` give [`ValueRef::Int`] (notepack turns both into JS
/// numbers; see [`ValueRef::as_f64`]).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum ValueRef<'a> {
    Nil,
    Bool(bool),
    Int(i64),
    UInt(u64),
    F32(f32),
    F64(f64),
    /// A str whose bytes are valid UTF-8.
    Str(&'a str),
    /// A str whose bytes are not valid UTF-8 (JS would decode it with U+FFFD replacements).
    InvalidStr(&'a [u8]),
    Bin(&'a [u8]),
    Array(ArrayRef<'a>),
    Map(MapRef<'a>),
    /// Extension type and payload (type -1 is the timestamp used for `Date`).
    Ext(i8, &'a [u8]),
}

impl<'a> ValueRef<'a> {
    /// The value as a JS number (what notepack's decoder yields), for numeric variants.
    pub fn as_f64(&self) -> Option<f64> {
        match *self {
            ValueRef::Int(i) => Some(i as f64),
            ValueRef::UInt(u) => Some(u as f64),
            ValueRef::F32(f) => Some(f64::from(f)),
            ValueRef::F64(f) => Some(f),
            _ => None,
        }
    }

    /// The value as an `i64` when it is an integer, or an integral float in range.
    pub fn as_i64(&self) -> Option<i64> {
        match *self {
            ValueRef::Int(i) => Some(i),
            ValueRef::UInt(u) => i64::try_from(u).ok(),
            ValueRef::F32(_) | ValueRef::F64(_) => {
                let f = self.as_f64()?;
                let in_range = (-9.223_372_036_854_776e18..9.223_372_036_854_776e18).contains(&f);
                (f.fract() == 0.0 && in_range).then_some(f as i64)
            }
            _ => None,
        }
    }

    /// The string, when this is a valid UTF-8 str.
    pub fn as_str(&self) -> Option<&'a str> {
        match *self {
            ValueRef::Str(s) => Some(s),
            _ => None,
        }
    }

    pub fn as_array(&self) -> Option<ArrayRef<'a>> {
        match *self {
            ValueRef::Array(a) => Some(a),
            _ => None,
        }
    }

    pub fn as_map(&self) -> Option<MapRef<'a>> {
        match *self {
            ValueRef::Map(m) => Some(m),
            _ => None,
        }
    }

    pub fn is_nil(&self) -> bool {
        matches!(self, ValueRef::Nil)
    }

    /// A short name of the variant, for error messages.
    pub fn type_name(&self) -> &'static str {
        match self {
            ValueRef::Nil => "nil",
            ValueRef::Bool(_) => "bool",
            ValueRef::Int(_) | ValueRef::UInt(_) => "int",
            ValueRef::F32(_) | ValueRef::F64(_) => "float",
            ValueRef::Str(_) | ValueRef::InvalidStr(_) => "str",
            ValueRef::Bin(_) => "bin",
            ValueRef::Array(_) => "array",
            ValueRef::Map(_) => "map",
            ValueRef::Ext(..) => "ext",
        }
    }
}

/// A validated array: its element count and the encoded bytes of its elements.
///
/// Cost note: yielding a nested container skips over it once to find its end, so a full
/// recursive walk costs O(size x depth) (depth is bounded by [`Limits::max_depth`]);
/// [`msgpack_to_json`](super::msgpack_to_json) uses a single-pass walker instead.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ArrayRef<'a> {
    len: usize,
    body: &'a [u8],
}

impl<'a> ArrayRef<'a> {
    pub fn len(&self) -> usize {
        self.len
    }
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
    /// The concatenated encodings of the elements (without the array header).
    pub fn body(&self) -> &'a [u8] {
        self.body
    }
    pub fn iter(&self) -> ArrayIter<'a> {
        ArrayIter {
            body: self.body,
            pos: 0,
            left: self.len,
        }
    }
    /// Element `index`, decoding (skipping) the elements before it.
    pub fn get(&self, index: usize) -> Option<ValueRef<'a>> {
        self.iter().nth(index)
    }
}

impl<'a> IntoIterator for ArrayRef<'a> {
    type Item = ValueRef<'a>;
    type IntoIter = ArrayIter<'a>;
    fn into_iter(self) -> ArrayIter<'a> {
        self.iter()
    }
}

/// Lazy iterator over array elements. Each element is decoded on demand (nested
/// containers are skipped over, not decoded).
#[derive(Debug, Clone)]
pub struct ArrayIter<'a> {
    body: &'a [u8],
    pos: usize,
    left: usize,
}

impl<'a> ArrayIter<'a> {
    /// The encoded bytes of the next element, without decoding it.
    pub fn next_raw(&mut self) -> Option<&'a [u8]> {
        if self.left == 0 {
            return None;
        }
        let end = skip_at(self.body, self.pos, &Limits::UNLIMITED).ok()?;
        let raw = &self.body[self.pos..end];
        self.pos = end;
        self.left -= 1;
        Some(raw)
    }
}

impl<'a> Iterator for ArrayIter<'a> {
    type Item = ValueRef<'a>;
    fn next(&mut self) -> Option<ValueRef<'a>> {
        if self.left == 0 {
            return None;
        }
        // The body was validated when the ArrayRef was built; an error here is impossible,
        // and ends the iteration rather than panicking.
        let (v, end) = decode_at(self.body, self.pos).ok()?;
        self.pos = end;
        self.left -= 1;
        Some(v)
    }
    fn size_hint(&self) -> (usize, Option<usize>) {
        (0, Some(self.left))
    }
}

/// A validated map: its entry count and the encoded bytes of its keys and values.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct MapRef<'a> {
    len: usize,
    body: &'a [u8],
}

impl<'a> MapRef<'a> {
    pub fn len(&self) -> usize {
        self.len
    }
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
    /// The concatenated encodings of keys and values (without the map header).
    pub fn body(&self) -> &'a [u8] {
        self.body
    }
    pub fn iter(&self) -> MapIter<'a> {
        MapIter {
            inner: ArrayIter {
                body: self.body,
                pos: 0,
                left: self.len.saturating_mul(2),
            },
        }
    }
    /// The value of the **last** entry whose key is the str `key` (JS property
    /// assignment semantics: a later duplicate overwrites an earlier one).
    pub fn get(&self, key: &str) -> Option<ValueRef<'a>> {
        self.iter()
            .filter(|(k, _)| k.as_str() == Some(key))
            .last()
            .map(|(_, v)| v)
    }
    /// Like [`MapRef::get`] but returns the raw encoded value bytes.
    pub fn get_raw(&self, key: &str) -> Option<&'a [u8]> {
        let mut it = self.iter();
        let mut found = None;
        while let Some(k) = it.inner.next() {
            let raw = it.inner.next_raw()?;
            if k.as_str() == Some(key) {
                found = Some(raw);
            }
        }
        found
    }
}

impl<'a> IntoIterator for MapRef<'a> {
    type Item = (ValueRef<'a>, ValueRef<'a>);
    type IntoIter = MapIter<'a>;
    fn into_iter(self) -> MapIter<'a> {
        self.iter()
    }
}

/// Lazy iterator over `(key, value)` pairs in wire order.
#[derive(Debug, Clone)]
pub struct MapIter<'a> {
    inner: ArrayIter<'a>,
}

impl<'a> Iterator for MapIter<'a> {
    type Item = (ValueRef<'a>, ValueRef<'a>);
    fn next(&mut self) -> Option<Self::Item> {
        let k = self.inner.next()?;
        let v = self.inner.next()?;
        Some((k, v))
    }
    fn size_hint(&self) -> (usize, Option<usize>) {
        (0, Some(self.inner.left / 2))
    }
}

/// Decodes the value at `pos` of an already validated buffer; returns it and its end.
pub(super) fn decode_at(buf: &[u8], pos: usize) -> Result<(ValueRef<'_>, usize), DecodeError> {
    let (head, p) = read_head(buf, pos)?;
    let bytes = |len: usize| {
        p.checked_add(len)
            .and_then(|end| buf.get(p..end))
            .ok_or(DecodeError::Truncated)
    };
    Ok(match head {
        Head::Nil => (ValueRef::Nil, p),
        Head::Bool(b) => (ValueRef::Bool(b), p),
        Head::UInt(u) => (ValueRef::UInt(u), p),
        Head::Int(i) => (ValueRef::Int(i), p),
        Head::F32(f) => (ValueRef::F32(f), p),
        Head::F64(f) => (ValueRef::F64(f), p),
        Head::Str(len) => {
            let b = bytes(len)?;
            let v = match std::str::from_utf8(b) {
                Ok(s) => ValueRef::Str(s),
                Err(_) => ValueRef::InvalidStr(b),
            };
            (v, p + len)
        }
        Head::Bin(len) => (ValueRef::Bin(bytes(len)?), p + len),
        Head::Ext(t, len) => (ValueRef::Ext(t, bytes(len)?), p + len),
        Head::Array(len) => {
            let end = skip_at(buf, pos, &Limits::UNLIMITED)?;
            let body = &buf[p..end];
            (ValueRef::Array(ArrayRef { len, body }), end)
        }
        Head::Map(len) => {
            let end = skip_at(buf, pos, &Limits::UNLIMITED)?;
            let body = &buf[p..end];
            (ValueRef::Map(MapRef { len, body }), end)
        }
    })
}

/// Reads the first value of `buf` with the default [`Limits`]; returns it and the number
/// of bytes it occupies. The value is fully validated before it is returned.
pub fn read_value(buf: &[u8]) -> Result<(ValueRef<'_>, usize), DecodeError> {
    read_value_with_limits(buf, &Limits::default())
}

/// [`read_value`] with explicit limits.
pub fn read_value_with_limits<'a>(
    buf: &'a [u8],
    limits: &Limits,
) -> Result<(ValueRef<'a>, usize), DecodeError> {
    let end = skip_value(buf, limits)?;
    decode_at(&buf[..end], 0)
}
