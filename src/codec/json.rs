//! The parts of V8's `JSON.stringify` that matter for byte equality (PROTOCOL.md 7.4).

use super::text_scan::first_escape;
use std::fmt::Write as _;

/// 2^53: integral doubles below it print as their integer digits.
const MAX_SAFE_INTEGER_PLUS_ONE: f64 = 9_007_199_254_740_992.0;

/// Appends `String(v)` as JavaScript computes it (Number::toString with radix 10):
/// shortest round-trip digits, integral values without `.0`, plain notation for
/// 1e-7 < |v| < 1e21, otherwise exponent notation like `1e+21` / `1.5e-7`.
/// `NaN`, `Infinity` and `-Infinity` are spelled out and `-0` gives `0`; for JSON use
/// [`write_json_number`], which turns non-finite values into `null`.
pub fn format_js_number(v: f64, out: &mut String) {
    if v.is_nan() {
        out.push_str("NaN");
        return;
    }
    if v == 0.0 {
        out.push('0');
        return;
    }
    if v.is_infinite() {
        out.push_str(if v > 0.0 { "Infinity" } else { "-Infinity" });
        return;
    }
    // Integers are most numbers on the wire (ids, counts, timestamps): digits at once, without
    // the two allocations of the general path below (it was a visible share of a receiving
    // node's Tokio time in `perf`). Below 2^53 every integral double is exactly an i64.
    if v.fract() == 0.0 && v.abs() < MAX_SAFE_INTEGER_PLUS_ONE {
        out.push_str(itoa::Buffer::new().format(v as i64));
        return;
    }
    if v < 0.0 {
        out.push('-');
    }
    // Rust's `{:e}` prints the shortest digits that round-trip, as "d.ddde<exp>".
    let mut sci = String::with_capacity(32);
    let _ = write!(sci, "{:e}", v.abs());
    let (mantissa, exp) = sci.split_once('e').unwrap_or((sci.as_str(), "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    let digits: String = mantissa.chars().filter(|c| *c != '.').collect();
    let k = digits.len() as i32;
    let n = exp + 1; // position of the decimal point relative to the digits
    if k <= n && n <= 21 {
        out.push_str(&digits);
        out.extend(std::iter::repeat_n('0', (n - k) as usize));
    } else if 0 < n && n <= 21 {
        out.push_str(&digits[..n as usize]);
        out.push('.');
        out.push_str(&digits[n as usize..]);
    } else if -6 < n && n <= 0 {
        out.push_str("0.");
        out.extend(std::iter::repeat_n('0', (-n) as usize));
        out.push_str(&digits);
    } else {
        out.push_str(&digits[..1]);
        if k > 1 {
            out.push('.');
            out.push_str(&digits[1..]);
        }
        let e = n - 1;
        let _ = write!(out, "e{}{}", if e < 0 { '-' } else { '+' }, e.abs());
    }
}

/// A number as `JSON.stringify` writes it: [`format_js_number`], with `null` for NaN and
/// the infinities.
pub fn write_json_number(v: f64, out: &mut String) {
    if v.is_finite() {
        format_js_number(v, out);
    } else {
        out.push_str("null");
    }
}

/// Appends `s` as a JSON string literal escaped like `JSON.stringify`: `"` and `\`
/// backslash-escaped, `\b \f \n \r \t`, other control characters as `\u00xx`
/// (lowercase hex), everything else (including non-ASCII) raw.
pub fn write_json_string(s: &str, out: &mut String) {
    out.push('"');
    let bytes = s.as_bytes();
    let mut start = 0;
    loop {
        let i = start + first_escape(&bytes[start..]);
        // `i` is at an ASCII byte (or the end), hence on a char boundary.
        out.push_str(&s[start..i]);
        let Some(&b) = bytes.get(i) else { break };
        match b {
            b'"' => out.push_str("\\\""),
            b'\\' => out.push_str("\\\\"),
            b'\n' => out.push_str("\\n"),
            b'\r' => out.push_str("\\r"),
            b'\t' => out.push_str("\\t"),
            0x08 => out.push_str("\\b"),
            0x0c => out.push_str("\\f"),
            _ => {
                let _ = write!(out, "\\u{b:04x}");
            }
        }
        start = i + 1;
    }
    out.push('"');
}

/// Whether the UTF-8 text `bytes` holds a byte that `JSON.stringify` escapes (a control
/// character, `"` or a backslash): if not, the JSON string is the text between quotes (V8 11's
/// own escaping loop runs at about 2 ns per character).
pub fn utf8_needs_json_escape(bytes: &[u8]) -> bool {
    first_escape(bytes) < bytes.len()
}

/// Appends `new Date(ms).toISOString()` (`YYYY-MM-DDTHH:mm:ss.sssZ`, with a signed
/// six-digit year outside 0..=9999). Returns `false`, appending nothing, for an
/// invalid Date (non-finite or |ms| > 8.64e15), where `JSON.stringify` writes `null`.
pub fn format_iso_date(ms: f64, out: &mut String) -> bool {
    if !ms.is_finite() || ms.abs() > 8.64e15 {
        return false;
    }
    let ms = ms.trunc() as i64;
    let days = ms.div_euclid(86_400_000);
    let in_day = ms.rem_euclid(86_400_000);
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    if (0..=9999).contains(&year) {
        let _ = write!(out, "{year:04}");
    } else {
        let _ = write!(out, "{}{:06}", if year < 0 { '-' } else { '+' }, year.abs());
    }
    let _ = write!(
        out,
        "-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:03}Z",
        in_day / 3_600_000,
        in_day / 60_000 % 60,
        in_day / 1000 % 60,
        in_day % 1000
    );
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    fn num(v: f64) -> String {
        let mut s = String::new();
        format_js_number(v, &mut s);
        s
    }

    #[test]
    fn numbers_like_v8() {
        let cases: &[(f64, &str)] = &[
            (0.0, "0"),
            (-0.0, "0"),
            (1.0, "1"),
            (-1.0, "-1"),
            (1.5, "1.5"),
            (0.1, "0.1"),
            (100.0, "100"),
            (1795373718447.0, "1795373718447"),
            (1e20, "100000000000000000000"),
            (1e21, "1e+21"),
            (1.5e21, "1.5e+21"),
            (123456789012345680000.0, "123456789012345680000"),
            (1e-6, "0.000001"),
            (1.5e-6, "0.0000015"),
            (1e-7, "1e-7"),
            (1.2345e-7, "1.2345e-7"),
            (2f64.powi(53), "9007199254740992"),
            (1e300, "1e+300"),
            (5e-324, "5e-324"),
            (f64::MAX, "1.7976931348623157e+308"),
            (0.1 + 0.2, "0.30000000000000004"),
            (f64::NAN, "NaN"),
            (f64::INFINITY, "Infinity"),
            (f64::NEG_INFINITY, "-Infinity"),
            (-2.5, "-2.5"),
            (9007199254740991.0, "9007199254740991"),
            (-9007199254740991.0, "-9007199254740991"),
            (-9007199254740992.0, "-9007199254740992"),
            (9007199254740994.0, "9007199254740994"),
            (-123.0, "-123"),
            (255.0, "255"),
        ];
        for (v, want) in cases {
            assert_eq!(num(*v), *want, "{v:?}");
        }
        let mut s = String::new();
        write_json_number(f64::NAN, &mut s);
        assert_eq!(s, "null");
    }

    #[test]
    fn strings_like_json_stringify() {
        let mut s = String::new();
        write_json_string("a\"b\\c\n\r\t\u{8}\u{c}\u{1}\u{1f}é€😀/\u{7f}", &mut s);
        assert_eq!(s, "\"a\\\"b\\\\c\\n\\r\\t\\b\\f\\u0001\\u001fé€😀/\u{7f}\"");
    }

    /// Byte-at-a-time reference for the word-at-a-time scan.
    fn escaped_slowly(s: &str) -> String {
        let mut out = String::from("\"");
        for c in s.chars() {
            match c {
                '"' => out.push_str("\\\""),
                '\\' => out.push_str("\\\\"),
                '\n' => out.push_str("\\n"),
                '\r' => out.push_str("\\r"),
                '\t' => out.push_str("\\t"),
                '\u{8}' => out.push_str("\\b"),
                '\u{c}' => out.push_str("\\f"),
                c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
                c => out.push(c),
            }
        }
        out.push('"');
        out
    }

    #[test]
    fn escapes_at_every_position_of_a_word() {
        let specials = [
            '"', '\\', '\n', '\u{0}', '\u{1f}', ' ', '\u{7f}', 'é', '€', '😀',
        ];
        for len in 0..20 {
            for at in 0..len.max(1) {
                for &c in &specials {
                    let mut text: String = (0..len).map(|i| (b'a' + i as u8) as char).collect();
                    if len > 0 {
                        text.replace_range(at..at + 1, &c.to_string());
                    }
                    let mut got = String::new();
                    write_json_string(&text, &mut got);
                    assert_eq!(got, escaped_slowly(&text), "{text:?}");
                }
            }
        }
        for b in 0..=0x7fu8 {
            let text = format!("{}{}{}", "x".repeat(9), b as char, "y".repeat(9));
            let mut got = String::new();
            write_json_string(&text, &mut got);
            assert_eq!(got, escaped_slowly(&text), "byte {b:#x}");
        }
    }

    #[test]
    fn iso_dates() {
        let iso = |ms: f64| {
            let mut s = String::new();
            if !format_iso_date(ms, &mut s) {
                s.push_str("null");
            }
            s
        };
        assert_eq!(iso(0.0), "1970-01-01T00:00:00.000Z");
        assert_eq!(iso(1500.0), "1970-01-01T00:00:01.500Z");
        assert_eq!(iso(-1.0), "1969-12-31T23:59:59.999Z");
        assert_eq!(iso(1704067200000.0), "2024-01-01T00:00:00.000Z");
        assert_eq!(iso(951782400000.0), "2000-02-29T00:00:00.000Z");
        assert_eq!(iso(8.64e15), "+275760-09-13T00:00:00.000Z");
        assert_eq!(iso(-8.64e15), "-271821-04-20T00:00:00.000Z");
        assert_eq!(iso(-62198755200000.0), "-000001-01-01T00:00:00.000Z");
        assert_eq!(iso(f64::NAN), "null");
        assert_eq!(iso(8.64e15 + 1.0), "null");
    }
    #[test]
    fn utf8_needs_json_escape_agrees_with_the_writer() {
        let mut cases: Vec<String> = vec![String::new(), "plain text".into(), "é€😀".repeat(9)];
        for special in ['"', '\\', '\n', '\u{0}', '\u{1f}', '\u{7f}', '\u{2028}'] {
            for at in [0, 5, 7, 8, 15, 16, 40] {
                let mut s: String = "x".repeat(40);
                s.insert(at, special);
                cases.push(s);
            }
        }
        for s in cases {
            let mut json = String::new();
            write_json_string(&s, &mut json);
            let plain = json == format!("\"{s}\"");
            assert_eq!(utf8_needs_json_escape(s.as_bytes()), !plain, "{s:?}");
        }
    }
}
