//! One pass from MessagePack to `JSON.stringify`'s text for the values most events carry:
//! nil, booleans, numbers, UTF-8 strings, arrays and maps with ordinary string keys.
//!
//! A receiving node does this for every broadcast it hands to socket.io as wire text. The
//! general path ([`super::event_wire`]) checks the value, then writes it, in two walks, with
//! allocations on the way; this one checks while writing and allocates only the output.
//! Anything it is not certain about (dates, `undefined`, deep nesting, maps with many keys)
//! is [`Plain::Unsure`] and the caller takes the general path, so its rules stay the one
//! reference for those cases.

use super::reader::{read_head, Head};
use super::DecodeError;
use crate::codec::json::{write_json_number, write_json_string};

/// What [`write_plain_json`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Plain {
    /// `out` holds the JSON text.
    Written,
    /// Not representable as JSON text as JS would see it (binary, a key JS would reorder or
    /// merge, invalid UTF-8...): the general path would refuse it too.
    No,
    /// Outside this writer's cases: ask the general path.
    Unsure,
}

/// Containers open at once before the writer gives up (the general path has no such limit).
const MAX_DEPTH: usize = 16;
/// Keys of one map checked for duplicates inline before the writer gives up.
const MAX_KEYS: usize = 32;

#[derive(Clone, Copy)]
struct Level {
    left: usize,
    is_map: bool,
    first: bool,
    /// Where this map's keys start in the key list.
    keys_from: usize,
}

/// Appends the JSON text of the single value `buf` to `out`. `buf` must hold exactly one
/// value; it need not be validated before. On anything but [`Plain::Written`], `out` and
/// `attachments` are left as they were.
///
/// Without `attachments` a binary value (`bin`, a Buffer to JS) is [`Plain::No`]. With them
/// it is written as the placeholder socket.io-parser's `deconstructPacket` puts in its place,
/// `{"_placeholder":true,"num":N}` numbered in walk order (depth first, arrays in order, map
/// entries in wire order, which is the JS property order for the keys this writer accepts),
/// and its bytes are appended to `attachments`.
pub(super) fn write_plain_json<'a>(
    buf: &'a [u8],
    out: &mut String,
    mut attachments: Option<&mut Vec<&'a [u8]>>,
) -> Result<Plain, DecodeError> {
    let start = out.len();
    let before = attachments.as_ref().map_or(0, |a| a.len());
    let res = write(buf, out, attachments.as_deref_mut());
    if !matches!(res, Ok(Plain::Written)) {
        out.truncate(start);
        if let Some(attachments) = attachments {
            attachments.truncate(before);
        }
    }
    res
}

fn write<'a>(
    buf: &'a [u8],
    out: &mut String,
    mut attachments: Option<&mut Vec<&'a [u8]>>,
) -> Result<Plain, DecodeError> {
    let mut stack = [Level {
        left: 0,
        is_map: false,
        first: true,
        keys_from: 0,
    }; MAX_DEPTH];
    let mut depth = 0;
    let mut keys: [&[u8]; MAX_KEYS] = [&[]; MAX_KEYS];
    let mut key_count = 0;
    let mut pos = 0;
    loop {
        if depth > 0 {
            let top = &mut stack[depth - 1];
            if top.left == 0 {
                out.push(if top.is_map { '}' } else { ']' });
                key_count = top.keys_from;
                depth -= 1;
                if depth == 0 {
                    return Ok(finished(buf, pos));
                }
                continue;
            }
            top.left -= 1;
            if !std::mem::replace(&mut top.first, false) {
                out.push(',');
            }
            if top.is_map {
                let (Head::Str(n), p) = read_head(buf, pos)? else {
                    return Ok(Plain::No);
                };
                let key = buf.get(p..p + n).ok_or(DecodeError::Truncated)?;
                let Ok(text) = std::str::from_utf8(key) else {
                    return Ok(Plain::No);
                };
                if key == b"__proto__" || super::event_wire::is_array_index(key) {
                    return Ok(Plain::No);
                }
                if keys[top.keys_from..key_count].contains(&key) {
                    return Ok(Plain::No);
                }
                if key_count == MAX_KEYS {
                    return Ok(Plain::Unsure);
                }
                keys[key_count] = key;
                key_count += 1;
                write_json_string(text, out);
                out.push(':');
                pos = p + n;
            }
        }
        let (head, after) = read_head(buf, pos)?;
        pos = after;
        match head {
            Head::Array(n) | Head::Map(n) => {
                let is_map = matches!(head, Head::Map(_));
                if depth == MAX_DEPTH {
                    return Ok(Plain::Unsure);
                }
                out.push(if is_map { '{' } else { '[' });
                stack[depth] = Level {
                    left: n,
                    is_map,
                    first: true,
                    keys_from: key_count,
                };
                depth += 1;
                continue;
            }
            Head::Nil => out.push_str("null"),
            Head::Bool(b) => out.push_str(if b { "true" } else { "false" }),
            Head::UInt(u) => write_json_number(u as f64, out),
            Head::Int(i) => write_json_number(i as f64, out),
            Head::F32(f) => write_json_number(f64::from(f), out),
            Head::F64(f) => write_json_number(f, out),
            Head::Str(n) => {
                let bytes = buf.get(pos..pos + n).ok_or(DecodeError::Truncated)?;
                let Ok(text) = std::str::from_utf8(bytes) else {
                    return Ok(Plain::No);
                };
                write_json_string(text, out);
                pos += n;
            }
            Head::Bin(n) => {
                let Some(attachments) = attachments.as_deref_mut() else {
                    return Ok(Plain::No);
                };
                let bytes = buf.get(pos..pos + n).ok_or(DecodeError::Truncated)?;
                out.push_str("{\"_placeholder\":true,\"num\":");
                out.push_str(itoa::Buffer::new().format(attachments.len()));
                out.push('}');
                attachments.push(bytes);
                pos += n;
            }
            // Dates and `undefined` have their own JSON rules, other exts are binary: the
            // general path knows which is which.
            Head::Ext(..) => return Ok(Plain::Unsure),
        }
        if depth == 0 {
            return Ok(finished(buf, pos));
        }
    }
}

/// A value followed by more bytes is malformed: the general path reports it.
fn finished(buf: &[u8], pos: usize) -> Plain {
    if pos == buf.len() {
        Plain::Written
    } else {
        Plain::Unsure
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec::msgpack::json_to_msgpack;
    use crate::codec::msgpack::to_json::msgpack_to_json_validated;

    /// The general path's answer: the text when the value is plain, else `None`.
    fn general(buf: &[u8]) -> Option<String> {
        if !super::super::event_wire::is_plain_json_for_tests(buf) {
            return None;
        }
        let mut out = String::new();
        msgpack_to_json_validated(buf, &mut out).ok()?;
        Some(out)
    }

    fn from_json(json: &str) -> Vec<u8> {
        let mut buf = Vec::new();
        json_to_msgpack(json, &mut buf).unwrap();
        buf
    }

    /// Whatever the one-pass writer decides agrees with the general path.
    fn check(buf: &[u8]) -> Plain {
        let mut out = String::from("prefix");
        let plain = write_plain_json(buf, &mut out, None).unwrap_or(Plain::Unsure);
        match plain {
            Plain::Written => assert_eq!(Some(&out["prefix".len()..]), general(buf).as_deref()),
            Plain::No => {
                assert_eq!(general(buf), None, "{buf:x?}");
                assert_eq!(out, "prefix");
            }
            Plain::Unsure => assert_eq!(out, "prefix"),
        }
        plain
    }

    #[test]
    fn agrees_with_the_general_path() {
        let deep = format!("{}1{}", "[".repeat(20), "]".repeat(20));
        let many_keys = format!(
            "{{{}}}",
            (0..40)
                .map(|i| format!("\"k{i}\":{i}"))
                .collect::<Vec<_>>()
                .join(",")
        );
        let written = [
            r#"["ev"]"#,
            r#"["ev",1,-1,0,1.5,-2.25,1e300,9007199254740993,-9007199254740993,null,true,false]"#,
            r#"["ev","a\"b\\c\n\u0001é€😀",{"a":{"b":[1,{"c":"d"}]},"e":[]},{}]"#,
            r#"["ev",{"b":1,"a":2,"01":3,"4294967295":4,"a b":5}]"#,
            r#"[{"x":1},{"x":2}]"#,
        ];
        for json in written {
            assert_eq!(check(&from_json(json)), Plain::Written, "{json}");
        }
        let refused = [
            r#"["ev",{"1":1}]"#,
            r#"["ev",{"__proto__":1}]"#,
            r#"["ev",{"a":1,"a":2}]"#,
        ];
        for json in refused {
            assert_eq!(check(&from_json(json)), Plain::No, "{json}");
        }
        for json in [deep.as_str(), many_keys.as_str()] {
            assert_eq!(check(&from_json(json)), Plain::Unsure, "{json}");
        }
        let hand_made: &[(&[u8], Plain)] = &[
            (b"\x92\xa2ev\xc4\x01\x00", Plain::No),                 // bin
            (b"\x92\xa2ev\xa2\xff\xfe", Plain::No),                 // invalid UTF-8 str
            (b"\x92\xa2ev\x81\x01\x01", Plain::No),                 // integer key
            (b"\x92\xa2ev\x81\xa2\xff\xfe\x01", Plain::No),         // invalid UTF-8 key
            (b"\x92\xa2ev\xd4\x00\x00", Plain::Unsure),             // undefined
            (b"\x92\xa2ev\xd6\xff\x00\x00\x00\x00", Plain::Unsure), // Date
            (b"\x92\xa2ev\xca\x3f\xc0\x00\x00", Plain::Written),    // f32 1.5
            (
                b"\x92\xa2ev\xcb\x7f\xf8\x00\x00\x00\x00\x00\x00",
                Plain::Written,
            ), // NaN
            (
                b"\x92\xa2ev\xcf\xff\xff\xff\xff\xff\xff\xff\xff",
                Plain::Written,
            ), // u64 max
            (
                b"\x92\xa2ev\xd3\x80\x00\x00\x00\x00\x00\x00\x00",
                Plain::Written,
            ), // i64 min
            (b"\x92\xa2ev\xc0\x01", Plain::Unsure),                 // trailing byte
        ];
        for (buf, want) in hand_made {
            assert_eq!(check(buf), *want, "{buf:x?}");
        }
    }

    #[test]
    fn truncated_input_is_an_error_not_a_text() {
        let mut out = String::new();
        assert!(write_plain_json(b"\x92\xa2ev\xa5ab", &mut out, None).is_err());
        assert!(write_plain_json(b"\x93\xa2ev", &mut out, None).is_err());
        assert!(out.is_empty());
    }
}
