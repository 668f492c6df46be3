//! JSON text checked against the grammar (RFC 8259) while it is walked: the members of an
//! object and the items of an array as raw slices, for text from other nodes that JS will
//! `JSON.parse` later (fetchSockets answers split for lazy handshakes: a handshake that failed
//! to parse on first use would throw from a property read). Strings are skipped with
//! [`first_escape`], 32 bytes per step: serde_json's validation of the same answers was a
//! fifth of a requesting node's CPU in `perf` (`skip_to_escape`, `ignore_value`, `from_utf8`).
//!
//! UTF-8 is not checked: JS decodes the bytes with replacement characters before parsing, as
//! the official adapters do with the whole answer. Nesting depth is not limited (the walk
//! keeps its own stack, as V8's JSON.parse does).

use super::json_scan::skip_ws;
use super::text_scan::first_escape;

/// `(raw key between its quotes, value text)`, in order.
pub type Members<'a> = Vec<(&'a [u8], &'a [u8])>;

/// The end (after the closing quote) of the string whose opening quote is at `i`.
fn string_end(b: &[u8], i: usize) -> Option<usize> {
    let mut p = i + 1;
    loop {
        p += first_escape(b.get(p..)?);
        match *b.get(p)? {
            b'"' => return Some(p + 1),
            b'\\' => match *b.get(p + 1)? {
                b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't' => p += 2,
                b'u' => {
                    let hex = b.get(p + 2..p + 6)?;
                    if !hex.iter().all(u8::is_ascii_hexdigit) {
                        return None;
                    }
                    p += 6;
                }
                _ => return None,
            },
            _ => return None, // a control character
        }
    }
}

fn digits_end(b: &[u8], mut p: usize) -> usize {
    while b.get(p).is_some_and(u8::is_ascii_digit) {
        p += 1;
    }
    p
}

/// The end of the number starting at `i`: `-? (0 | [1-9][0-9]*) (.[0-9]+)? ([eE][+-]?[0-9]+)?`.
fn number_end(b: &[u8], i: usize) -> Option<usize> {
    let mut p = i + usize::from(b.get(i) == Some(&b'-'));
    match *b.get(p)? {
        b'0' => p += 1,
        b'1'..=b'9' => p = digits_end(b, p + 1),
        _ => return None,
    }
    if b.get(p) == Some(&b'.') {
        let end = digits_end(b, p + 1);
        if end == p + 1 {
            return None;
        }
        p = end;
    }
    if matches!(b.get(p), Some(b'e' | b'E')) {
        p += 1;
        if matches!(b.get(p), Some(b'+' | b'-')) {
            p += 1;
        }
        let end = digits_end(b, p);
        if end == p {
            return None;
        }
        p = end;
    }
    Some(p)
}

/// After the key whose opening quote is at `i`: the position after its colon.
fn after_key(b: &[u8], i: usize) -> Option<usize> {
    if b.get(i) != Some(&b'"') {
        return None;
    }
    let j = skip_ws(b, string_end(b, i)?);
    (b.get(j) == Some(&b':')).then_some(j + 1)
}

/// The containers a walk is inside, innermost last, as one bit each (set: an object): no
/// allocation for the first 64 levels (a fetchSockets answer walks some hundred handshakes,
/// each a few levels deep), a Vec past them.
#[derive(Default)]
struct OpenContainers {
    bits: u64,
    depth: usize,
    deeper: Vec<bool>,
}

impl OpenContainers {
    fn push(&mut self, object: bool) {
        if self.depth < 64 {
            self.bits = (self.bits << 1) | u64::from(object);
        } else {
            self.deeper.push(object);
        }
        self.depth += 1;
    }

    /// Whether the innermost container is an object; None outside any.
    fn innermost_is_object(&self) -> Option<bool> {
        match self.depth {
            0 => None,
            1..=64 => Some(self.bits & 1 == 1),
            _ => self.deeper.last().copied(),
        }
    }

    fn pop(&mut self) {
        self.depth -= 1;
        if self.depth >= 64 {
            self.deeper.pop();
        } else {
            self.bits >>= 1;
        }
    }
}

/// The end of the JSON value starting at `i` (no leading whitespace), every part of it checked.
pub fn value_end(b: &[u8], i: usize) -> Option<usize> {
    let mut open = OpenContainers::default();
    let mut p = i;
    loop {
        // A value starts at p.
        p = skip_ws(b, p);
        p = match *b.get(p)? {
            b'{' => {
                let q = skip_ws(b, p + 1);
                if b.get(q) != Some(&b'}') {
                    open.push(true);
                    p = after_key(b, q)?;
                    continue;
                }
                q + 1
            }
            b'[' => {
                let q = skip_ws(b, p + 1);
                if b.get(q) != Some(&b']') {
                    open.push(false);
                    p = q;
                    continue;
                }
                q + 1
            }
            b'"' => string_end(b, p)?,
            b't' => literal_end(b, p, b"true")?,
            b'f' => literal_end(b, p, b"false")?,
            b'n' => literal_end(b, p, b"null")?,
            _ => number_end(b, p)?,
        };
        // A value ended at p: close what it ends, or go on to the next value.
        loop {
            let Some(in_object) = open.innermost_is_object() else {
                return Some(p);
            };
            p = skip_ws(b, p);
            match (*b.get(p)?, in_object) {
                (b',', true) => {
                    p = after_key(b, skip_ws(b, p + 1))?;
                    break;
                }
                (b',', false) => {
                    p += 1;
                    break;
                }
                (b'}', true) | (b']', false) => {
                    open.pop();
                    p += 1;
                }
                _ => return None,
            }
        }
    }
}

fn literal_end(b: &[u8], i: usize, word: &[u8]) -> Option<usize> {
    (b.get(i..i + word.len())? == word).then_some(i + word.len())
}

/// Walks the object whose `{` is at `p`: `member(raw key, value start)` is called for each
/// member and returns where its value ends (after checking it, with [`value_end`] or a walk of
/// its own). Returns where the object ends. The text is walked once whatever the nesting.
pub fn walk_object<'a>(
    text: &'a [u8],
    p: usize,
    mut member: impl FnMut(&'a [u8], usize) -> Option<usize>,
) -> Option<usize> {
    if text.get(p) != Some(&b'{') {
        return None;
    }
    let mut p = skip_ws(text, p + 1);
    if text.get(p) == Some(&b'}') {
        return Some(p + 1);
    }
    loop {
        let value_start = skip_ws(text, after_key(text, p)?);
        let key = text.get(p + 1..string_end(text, p)? - 1)?;
        p = skip_ws(text, member(key, value_start)?);
        match *text.get(p)? {
            b',' => p = skip_ws(text, p + 1),
            b'}' => return Some(p + 1),
            _ => return None,
        }
    }
}

/// Walks the array whose `[` is at `p`: `item(start)` is called for each item and returns where
/// it ends (see [`walk_object`]). Returns where the array ends.
pub fn walk_array(
    text: &[u8],
    p: usize,
    mut item: impl FnMut(usize) -> Option<usize>,
) -> Option<usize> {
    if text.get(p) != Some(&b'[') {
        return None;
    }
    let mut p = skip_ws(text, p + 1);
    if text.get(p) == Some(&b']') {
        return Some(p + 1);
    }
    loop {
        p = skip_ws(text, item(p)?);
        match *text.get(p)? {
            b',' => p = skip_ws(text, p + 1),
            b']' => return Some(p + 1),
            _ => return None,
        }
    }
}

/// The members of the object that is the whole of `text` (whitespace allowed around it), every
/// part checked. None when `text` is not exactly one valid JSON object.
pub fn object_members(text: &[u8]) -> Option<Members<'_>> {
    let mut members = Vec::new();
    let end = walk_object(text, skip_ws(text, 0), |key, start| {
        let end = value_end(text, start)?;
        members.push((key, &text[start..end]));
        Some(end)
    })?;
    whole(text, end, members)
}

/// The items of the array that is the whole of `text` (whitespace allowed around it), every
/// part checked. None when `text` is not exactly one valid JSON array.
pub fn array_items(text: &[u8]) -> Option<Vec<&[u8]>> {
    let mut items = Vec::new();
    let end = walk_array(text, skip_ws(text, 0), |start| {
        let end = value_end(text, start)?;
        items.push(&text[start..end]);
        Some(end)
    })?;
    whole(text, end, items)
}

/// Whether `text` is one JSON value (whitespace around it allowed), as `JSON.parse` takes.
pub fn is_valid(text: &[u8]) -> bool {
    let p = skip_ws(text, 0);
    p < text.len() && value_end(text, p).is_some_and(|end| skip_ws(text, end) == text.len())
}

/// `parts` when only whitespace follows `end`.
pub fn whole<T>(text: &[u8], end: usize, parts: T) -> Option<T> {
    (skip_ws(text, end) == text.len()).then_some(parts)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::de::IgnoredAny;

    fn serde_valid(text: &[u8]) -> bool {
        serde_json::from_slice::<IgnoredAny>(text).is_ok()
    }

    #[test]
    fn agrees_with_serde_on_valid_and_invalid_text() {
        let cases: &[&str] = &[
            "{}",
            "[]",
            " { } ",
            "0",
            "-0",
            "1.5e3",
            "-1.25E-7",
            "1e+2",
            "true",
            "false",
            "null",
            r#""a\"b\\c\/\b\f\n\r\t\u00e9\uD83D\uDE00""#,
            r#"{"a":[1,{"b":"}"},[[]],"]"],"c":{"d":null}}"#,
            "[1 , 2 ,\n3\t]\r\n",
            r#"{"é":"ü","x":"\u2028"}"#,
            // invalid
            "",
            " ",
            "{",
            "}",
            "[",
            "[1,]",
            "[,1]",
            "{,}",
            r#"{"a":1,}"#,
            r#"{"a" 1}"#,
            r#"{"a":}"#,
            r#"{a:1}"#,
            "01",
            "1.",
            ".5",
            "-",
            "1e",
            "1e+",
            "+1",
            "0x1",
            "tru",
            "nul",
            "truex",
            r#""a"#,
            r#""\x""#,
            r#""\u12g4""#,
            r#""\u12""#,
            "\"a\u{1}b\"",
            "[1]]",
            "{}}",
            "[1 2]",
            r#"{"a":1 "b":2}"#,
            "[\"a\"\"b\"]",
            "NaN",
            "Infinity",
            "[-]",
            "[1,{]",
            r#"{"a":[}"#,
            "1 2",
        ];
        for text in cases {
            assert_eq!(
                is_valid(text.as_bytes()),
                serde_valid(text.as_bytes()),
                "{text:?}"
            );
        }
    }

    #[test]
    fn members_and_items_as_serde_reads_them() {
        let text = br#" {"id":"s1","handshake":{"h":[1,"}"]},"rooms":["a"],"data":null} "#;
        let members = object_members(text).unwrap();
        let keys: Vec<&[u8]> = members.iter().map(|m| m.0).collect();
        assert_eq!(keys, [&b"id"[..], b"handshake", b"rooms", b"data"]);
        assert_eq!(members[1].1, br#"{"h":[1,"}"]}"#);
        let items = array_items(br#"[1, "x" ,{"a":[]}]"#).unwrap();
        assert_eq!(items, [&b"1"[..], br#""x""#, br#"{"a":[]}"#]);
        assert_eq!(array_items(b"[] "), Some(vec![]));
        for bad in [&b"[1]x"[..], b"[1,2", b"{\"a\":1}", b"[01]"] {
            assert_eq!(array_items(bad), None);
        }
        for bad in [&b"{\"a\":1}x"[..], b"[]", b"{\"a\":01}", b"{\"a\":1,}"] {
            assert_eq!(object_members(bad), None);
        }
    }

    #[test]
    fn deep_nesting_is_walked_without_recursion() {
        let deep = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
        assert!(is_valid(deep.as_bytes()));
        assert!(!is_valid(&deep.as_bytes()[1..]));
    }

    /// Random JSON values, as text.
    fn json_text() -> impl proptest::strategy::Strategy<Value = String> {
        use proptest::prelude::*;
        let leaf = prop_oneof![
            Just("null".to_string()),
            any::<bool>().prop_map(|b| b.to_string()),
            any::<i32>().prop_map(|n| n.to_string()),
            (-1e9f64..1e9).prop_map(|f| serde_json::to_string(&f).unwrap()),
            "[a-z\\\\\"\u{e9}\u{1} ]{0,8}".prop_map(|s| serde_json::to_string(&s).unwrap()),
        ];
        leaf.prop_recursive(4, 32, 6, |inner| {
            prop_oneof![
                proptest::collection::vec(inner.clone(), 0..6)
                    .prop_map(|v| format!("[{}]", v.join(","))),
                proptest::collection::vec(("[a-z]{0,3}", inner), 0..6).prop_map(|v| {
                    let members: Vec<String> = v
                        .into_iter()
                        .map(|(k, v)| format!("\"{k}\" : {v}"))
                        .collect();
                    format!("{{ {} }}", members.join(" ,"))
                }),
            ]
        })
    }

    proptest::proptest! {
        // Valid JSON, and the same with one byte changed: the two validators agree.
        #[test]
        fn agrees_with_serde_on_valid_and_damaged_json(
            text in json_text(),
            at in proptest::prelude::any::<proptest::sample::Index>(),
            byte in proptest::sample::select(b"{}[],:\" \\0.e-tx\x01".to_vec()),
        ) {
            proptest::prop_assert!(is_valid(text.as_bytes()));
            let mut damaged = text.into_bytes();
            let i = at.index(damaged.len());
            damaged[i] = byte;
            proptest::prop_assert_eq!(is_valid(&damaged), serde_valid(&damaged));
        }

        // Short texts over the grammar's own bytes: the two validators agree on all of them.
        #[test]
        fn agrees_with_serde_on_arbitrary_text(text in "[{}\\[\\]\",:\\\\ 0-9.eE+\\-tfnrulsa\u{1}]{0,24}") {
            proptest::prop_assert_eq!(is_valid(text.as_bytes()), serde_valid(text.as_bytes()));
        }
    }
}
