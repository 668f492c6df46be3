//! Walks JSON text that is already known to be valid, without validating it again: the members
//! of an object as raw key and value slices, the items of an array. A receiving node validates a sharded broadcast
//! message once (serde, in `protocol::header`) and then needs `data.packet.data` out of it;
//! each further serde pass over a 4 KiB event scanned its string again (`skip_to_escape` was
//! 23 % of a receiver's CPU in `perf`). Strings are skipped with [`first_escape`], 32 bytes per
//! step.
//!
//! On text that is not valid JSON the results are unspecified but memory-safe (no panics,
//! slices stay in bounds): callers validate first.

use super::text_scan::first_escape;

/// The members of the JSON object `text` (leading and trailing whitespace allowed), in order,
/// as `(key, value)`: the key between its quotes as written (escapes not decoded), the value's
/// text. None when `text` is not an object or ends early.
pub fn object_members(text: &str) -> Option<Vec<(&str, &str)>> {
    let b = text.as_bytes();
    let mut i = skip_ws(b, 0);
    if b.get(i) != Some(&b'{') {
        return None;
    }
    i = skip_ws(b, i + 1);
    let mut members = Vec::new();
    if b.get(i) == Some(&b'}') {
        return Some(members);
    }
    loop {
        if b.get(i) != Some(&b'"') {
            return None;
        }
        let key_end = skip_string(b, i)?;
        let key = text.get(i + 1..key_end - 1)?;
        i = skip_ws(b, key_end);
        if b.get(i) != Some(&b':') {
            return None;
        }
        let value_start = skip_ws(b, i + 1);
        let value_end = skip_value(b, value_start)?;
        members.push((key, text.get(value_start..value_end)?));
        i = skip_ws(b, value_end);
        match b.get(i) {
            Some(b',') => i = skip_ws(b, i + 1),
            Some(b'}') => return Some(members),
            _ => return None,
        }
    }
}

/// The items of the JSON array `text` (leading and trailing whitespace allowed), in order, as
/// their texts. None when `text` is not an array or ends early.
pub fn array_items(text: &str) -> Option<Vec<&str>> {
    let b = text.as_bytes();
    let mut i = skip_ws(b, 0);
    if b.get(i) != Some(&b'[') {
        return None;
    }
    i = skip_ws(b, i + 1);
    let mut items = Vec::new();
    if b.get(i) == Some(&b']') {
        return Some(items);
    }
    loop {
        let end = skip_value(b, i)?;
        items.push(text.get(i..end)?);
        i = skip_ws(b, end);
        match b.get(i) {
            Some(b',') => i = skip_ws(b, i + 1),
            Some(b']') => return Some(items),
            _ => return None,
        }
    }
}

/// The first member of the JSON object `text` (no leading whitespace): its key between its
/// quotes as written, and where its value ends. None when `text` is not an object with at
/// least one member, or ends early.
pub fn first_member(text: &str) -> Option<(&str, usize)> {
    let b = text.as_bytes();
    if b.first() != Some(&b'{') {
        return None;
    }
    let i = skip_ws(b, 1);
    if b.get(i) != Some(&b'"') {
        return None;
    }
    let key_end = skip_string(b, i)?;
    let key = text.get(i + 1..key_end - 1)?;
    let colon = skip_ws(b, key_end);
    if b.get(colon) != Some(&b':') {
        return None;
    }
    let value_end = skip_value(b, skip_ws(b, colon + 1))?;
    Some((key, value_end))
}

/// The first byte at or after `i` that is not JSON whitespace.
pub(crate) fn skip_ws(b: &[u8], mut i: usize) -> usize {
    while matches!(b.get(i), Some(b' ' | b'\t' | b'\n' | b'\r')) {
        i += 1;
    }
    i
}

/// The end (after the closing quote) of the string starting at the quote at `i`.
fn skip_string(b: &[u8], i: usize) -> Option<usize> {
    let mut p = i + 1;
    loop {
        p += first_escape(b.get(p..)?);
        match b.get(p)? {
            b'"' => return Some(p + 1),
            b'\\' => p += 2,
            _ => p += 1, // a control character: not valid JSON, skipped
        }
    }
}

/// The end of the value starting at `i`.
fn skip_value(b: &[u8], i: usize) -> Option<usize> {
    match *b.get(i)? {
        b'"' => skip_string(b, i),
        b'{' | b'[' => {
            let mut depth = 0usize;
            let mut p = i;
            loop {
                match *b.get(p)? {
                    b'"' => {
                        p = skip_string(b, p)?;
                        continue;
                    }
                    b'{' | b'[' => depth += 1,
                    b'}' | b']' => {
                        depth -= 1;
                        if depth == 0 {
                            return Some(p + 1);
                        }
                    }
                    _ => {}
                }
                p += 1;
            }
        }
        _ => {
            // A number or a literal: up to the next delimiter.
            let mut p = i;
            while let Some(&c) = b.get(p) {
                if matches!(c, b',' | b'}' | b']' | b' ' | b'\t' | b'\n' | b'\r') {
                    break;
                }
                p += 1;
            }
            (p > i).then_some(p)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_member_is_the_first_key_and_where_its_value_ends() {
        let text = r#"{ "id" : "a,}" , "rooms":[]}"#;
        let (key, end) = first_member(text).unwrap();
        assert_eq!(key, "id");
        assert_eq!(&text[end..], r#" , "rooms":[]}"#);
        assert_eq!(first_member(r#"{"k":{"x":[1]}}"#), Some(("k", 14)));
        for not in ["{}", "[1]", r#"{"k""#, r#"{"k":"#, r#"{"k" 1}"#] {
            assert_eq!(first_member(not), None, "{not}");
        }
    }

    /// serde's reading of the same object: keys decoded, values raw, duplicates kept.
    fn with_serde(text: &str) -> Vec<(String, String)> {
        let entries: entries::Entries<'_> = serde_json::from_str(text).unwrap();
        entries
            .0
            .into_iter()
            .map(|(k, v)| (k, v.get().to_string()))
            .collect()
    }

    /// An object read entry by entry, raw values kept (serde_json's Map would merge duplicates).
    mod entries {
        use serde::de::{Deserialize, Deserializer, MapAccess, Visitor};
        use serde_json::value::RawValue;
        use std::fmt;

        pub struct Entries<'a>(pub Vec<(String, &'a RawValue)>);

        impl<'de: 'a, 'a> Deserialize<'de> for Entries<'a> {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                struct V;
                impl<'de> Visitor<'de> for V {
                    type Value = Entries<'de>;
                    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                        f.write_str("an object")
                    }
                    fn visit_map<A: MapAccess<'de>>(
                        self,
                        mut m: A,
                    ) -> Result<Self::Value, A::Error> {
                        let mut out = Vec::new();
                        while let Some((k, v)) = m.next_entry::<String, &'de RawValue>()? {
                            out.push((k, v));
                        }
                        Ok(Entries(out))
                    }
                }
                d.deserialize_map(V)
            }
        }
    }

    #[test]
    fn members_match_serde_on_valid_objects() {
        let long = "x".repeat(5000);
        let cases = [
            "{}".to_string(),
            " { } ".to_string(),
            r#"{"a":1}"#.to_string(),
            r#"{"packet":{"type":2,"data":["m",1.5e3,"q\"\\}]{["]},"opts":{"rooms":["r"],"except":[],"flags":{}},"requestId":null}"#.to_string(),
            format!(r#"{{ "a" : [ "{long}" , {{"b":"}}"}} ] , "c":true,"d":false,"e":null,"f":-0.5E-3 }}"#),
            r#"{"é\u00e9":"\u2028😀","n":[[[]]],"s":"\\\\"}"#.to_string(),
            "{\n\t\"a\"\r\n:\n[1,\n2]\n}".to_string(),
        ];
        for text in &cases {
            let ours: Vec<(String, String)> = object_members(text)
                .unwrap()
                .into_iter()
                .map(|(k, v)| {
                    let key: String = serde_json::from_str(&format!("\"{k}\"")).unwrap();
                    (key, v.to_string())
                })
                .collect();
            assert_eq!(ours, with_serde(text), "{text}");
        }
    }

    #[test]
    fn items_match_serde_on_valid_arrays() {
        for text in [
            "[]",
            " [ ] ",
            r#"[1,"a",{"b":[2,"]"]},[],null,true,-1.5e3]"#,
            "[\n{\"id\":\"x\"} ,\t\"\\\"]\" ]",
        ] {
            let ours: Vec<&str> = array_items(text).unwrap();
            let theirs: Vec<&serde_json::value::RawValue> = serde_json::from_str(text).unwrap();
            let theirs: Vec<&str> = theirs.iter().map(|v| v.get()).collect();
            assert_eq!(ours, theirs, "{text}");
        }
        for text in ["{}", "[", "[1", "[1,", "[1 2]", "\"[]\""] {
            assert_eq!(array_items(text), None, "{text}");
        }
    }

    #[test]
    fn not_objects_and_truncated_text() {
        for text in [
            "[]",
            "1",
            "\"{}\"",
            "{",
            r#"{"a":"#,
            r#"{"a":1"#,
            r#"{"a" 1}"#,
            r#"{"a":"x}"#,
        ] {
            assert_eq!(object_members(text), None, "{text}");
        }
    }

    proptest::proptest! {
        #[test]
        fn arbitrary_text_never_panics(text in "[{}\\[\\]\",:\\\\ a-z0-9\u{1}é]{0,64}") {
            let _ = object_members(&text);
            let _ = array_items(&text);
        }
    }

    #[test]
    fn invalid_text_never_panics() {
        // Callers validate first; this only checks that garbage stays memory-safe.
        for text in [
            "{\"a\":]}",
            "{\"a\":}",
            "{\"\\",
            "{\"a\":[\"\\",
            "{\"a\":\u{1}}",
            "}{",
        ] {
            let _ = object_members(text);
        }
    }
}
