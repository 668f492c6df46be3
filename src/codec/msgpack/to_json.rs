//! Streaming MessagePack -> JSON (the text V8 gives for what notepack.io decodes); the way
//! there is in `transcode`.

use super::reader::{decode_at, read_head, skip_at, validate, Head, ValueRef};
use super::{DecodeError, Limits};
use crate::codec::json::{format_iso_date, format_js_number, write_json_number, write_json_string};

struct Level {
    left: usize,
    is_map: bool,
    first: bool,
}

/// Writes one MessagePack value as the JSON text `JSON.stringify(notepack.decode(buf))`
/// would give: bin as `{"type":"Buffer","data":[..]}`, timestamps (and legacy type-0
/// Dates) as ISO strings (`null` when invalid), other ext as `[type, Buffer]`, legacy
/// `undefined` (`d4 00 xx`) as `null` in arrays and omitted in maps, numbers formatted
/// like V8 (non-finite as `null`), non-string map keys stringified like JS. Maps keep
/// their wire order and duplicates (JS would reorder integer-like keys and merge
/// duplicates); a top-level `undefined` gives `null`. `buf` must hold exactly one value.
///
/// Single pass over the bytes after validation (linear time, no recursion); `out` is
/// left unchanged on error.
pub fn msgpack_to_json(buf: &[u8], limits: &Limits, out: &mut String) -> Result<(), DecodeError> {
    validate(buf, limits)?;
    msgpack_to_json_validated(buf, out)
}

/// [`msgpack_to_json`] for a buffer already known to hold exactly one well-formed value.
pub(super) fn msgpack_to_json_validated(buf: &[u8], out: &mut String) -> Result<(), DecodeError> {
    let start = out.len();
    let res = write_json(buf, out);
    if res.is_err() {
        out.truncate(start);
    }
    res
}

fn write_json(buf: &[u8], out: &mut String) -> Result<(), DecodeError> {
    let mut stack: Vec<Level> = Vec::new();
    let mut pos = write_value(buf, 0, out, &mut stack)?;
    while let Some(top) = stack.last_mut() {
        if top.left == 0 {
            out.push(if top.is_map { '}' } else { ']' });
            stack.pop();
            continue;
        }
        top.left -= 1;
        if top.is_map {
            let value_pos = skip_at(buf, pos, &Limits::UNLIMITED)?;
            if let (Head::Ext(0, 1), _) = read_head(buf, value_pos)? {
                // An `undefined` property is dropped by JSON.stringify.
                pos = skip_at(buf, value_pos, &Limits::UNLIMITED)?;
                continue;
            }
            if !std::mem::take(&mut top.first) {
                out.push(',');
            }
            write_key(decode_at(buf, pos)?.0, out);
            out.push(':');
            pos = value_pos;
        } else if !std::mem::take(&mut top.first) {
            out.push(',');
        }
        pos = write_value(buf, pos, out, &mut stack)?;
    }
    Ok(())
}

/// Writes the scalar at `pos`, or opens the container there; returns the next position.
fn write_value(
    buf: &[u8],
    pos: usize,
    out: &mut String,
    stack: &mut Vec<Level>,
) -> Result<usize, DecodeError> {
    let (head, p) = read_head(buf, pos)?;
    let (left, is_map) = match head {
        Head::Array(n) => (n, false),
        Head::Map(n) => (n, true),
        _ => {
            let (v, end) = decode_at(buf, pos)?;
            emit_scalar(v, out);
            return Ok(end);
        }
    };
    out.push(if is_map { '{' } else { '[' });
    stack.push(Level {
        left,
        is_map,
        first: true,
    });
    Ok(p)
}

fn is_undefined(v: &ValueRef<'_>) -> bool {
    matches!(v, ValueRef::Ext(0, d) if d.len() == 1)
}

fn write_key(k: ValueRef<'_>, out: &mut String) {
    let mut s = String::new();
    let key: &str = match k {
        ValueRef::Str(s) => s,
        ValueRef::InvalidStr(b) | ValueRef::Bin(b) => {
            s = String::from_utf8_lossy(b).into_owned();
            &s
        }
        ValueRef::Nil => "null",
        ValueRef::Bool(b) => {
            if b {
                "true"
            } else {
                "false"
            }
        }
        ValueRef::Array(_) | ValueRef::Map(_) | ValueRef::Ext(..) => "[object Object]",
        num => {
            format_js_number(num.as_f64().unwrap_or(f64::NAN), &mut s);
            &s
        }
    };
    write_json_string(key, out);
}

/// Time value of a Date extension as notepack decodes it, or `None` if not a Date.
fn ext_date_ms(t: i8, d: &[u8]) -> Option<f64> {
    let be = |b: &[u8]| b.iter().fold(0u64, |a, &x| (a << 8) | u64::from(x));
    match (t, d.len()) {
        (-1, 4) => Some(be(d) as f64 * 1000.0),
        (-1, 8) => {
            let v = be(d);
            Some((v & 0x3_ffff_ffff) as f64 * 1000.0 + (v >> 34) as f64 / 1e6)
        }
        (-1, 12) => {
            let ns = be(&d[..4]) as f64;
            let s = be(&d[4..]) as i64 as f64;
            Some(s * 1000.0 + ns / 1e6)
        }
        (0, 8) => Some(be(d) as i64 as f64),
        _ => None,
    }
}

fn write_buffer(b: &[u8], out: &mut String) {
    out.push_str("{\"type\":\"Buffer\",\"data\":[");
    for (i, x) in b.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        format_js_number(f64::from(*x), out);
    }
    out.push_str("]}");
}

/// Writes a non-container value.
fn emit_scalar(v: ValueRef<'_>, out: &mut String) {
    match v {
        ValueRef::Nil | ValueRef::Array(_) | ValueRef::Map(_) => out.push_str("null"),
        ValueRef::Bool(b) => out.push_str(if b { "true" } else { "false" }),
        ValueRef::Int(_) | ValueRef::UInt(_) | ValueRef::F32(_) | ValueRef::F64(_) => {
            write_json_number(v.as_f64().unwrap_or(f64::NAN), out)
        }
        ValueRef::Str(s) => write_json_string(s, out),
        ValueRef::InvalidStr(b) => write_json_string(&String::from_utf8_lossy(b), out),
        ValueRef::Bin(b) => write_buffer(b, out),
        ValueRef::Ext(t, d) => {
            if let Some(ms) = ext_date_ms(t, d) {
                let mut iso = String::with_capacity(26);
                if format_iso_date(ms, &mut iso) {
                    write_json_string(&iso, out);
                } else {
                    out.push_str("null");
                }
            } else if is_undefined(&v) {
                out.push_str("null");
            } else if t == 0 {
                out.push_str("{}"); // legacy ArrayBuffer
            } else {
                out.push('[');
                format_js_number(f64::from(t), out);
                out.push(',');
                write_buffer(d, out);
                out.push(']');
            }
        }
    }
}
