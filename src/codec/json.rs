//! The parts of V8's `JSON.stringify` that matter for byte equality (PROTOCOL.md 7.4).

use std::fmt::Write as _;

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
    for (i, &b) in bytes.iter().enumerate() {
        let esc: &str = match b {
            b'"' => "\\\"",
            b'\\' => "\\\\",
            b'\n' => "\\n",
            b'\r' => "\\r",
            b'\t' => "\\t",
            0x08 => "\\b",
            0x0c => "\\f",
            0x00..=0x1f => "",
            _ => continue,
        };
        // `i` is at an ASCII byte, hence on a char boundary.
        out.push_str(&s[start..i]);
        if esc.is_empty() {
            let _ = write!(out, "\\u{b:04x}");
        } else {
            out.push_str(esc);
        }
        start = i + 1;
    }
    out.push_str(&s[start..]);
    out.push('"');
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
}
