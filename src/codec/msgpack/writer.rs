//! MessagePack writer following notepack.io 3.0.1 lib/encode.js (PROTOCOL.md 7.1).

const TWO_32: f64 = 4_294_967_296.0;

/// JS `ToUint32`: truncate, then reduce modulo 2^32 (NaN and infinities give 0).
pub(crate) fn to_uint32(x: f64) -> u32 {
    if !x.is_finite() {
        return 0;
    }
    let m = x.trunc() % TWO_32; // exact
    let m = if m < 0.0 { m + TWO_32 } else { m }; // exact: an integer in (-2^32, 0) + 2^32
    m as u32
}

/// Appends MessagePack to a `Vec<u8>` with notepack's format choices.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Writer {
    buf: Vec<u8>,
}

impl Writer {
    pub fn new() -> Self {
        Writer { buf: Vec::new() }
    }

    pub fn with_capacity(capacity: usize) -> Self {
        Writer {
            buf: Vec::with_capacity(capacity),
        }
    }

    /// Continues writing at the end of an existing buffer.
    pub fn from_vec(buf: Vec<u8>) -> Self {
        Writer { buf }
    }

    pub fn as_slice(&self) -> &[u8] {
        &self.buf
    }

    pub fn len(&self) -> usize {
        self.buf.len()
    }

    pub fn is_empty(&self) -> bool {
        self.buf.is_empty()
    }

    pub fn into_inner(self) -> Vec<u8> {
        self.buf
    }

    pub fn write_nil(&mut self) {
        self.buf.push(0xc0);
    }

    pub fn write_bool(&mut self, v: bool) {
        self.buf.push(if v { 0xc3 } else { 0xc2 });
    }

    /// Always `cb` + IEEE 754 double (notepack never writes float32).
    pub fn write_f64(&mut self, v: f64) {
        self.buf.push(0xcb);
        self.buf.extend_from_slice(&v.to_be_bytes());
    }

    /// Encodes a JS number exactly like notepack: integral finite values take the
    /// smallest integer format (`-0` gives `00`; at or above 2^32 `cf` with the high word
    /// reduced modulo 2^32, so 2^64 wraps to zero; below -2^31 `d3`), everything else
    /// (fractions, NaN, ±Infinity) is float64.
    pub fn write_f64_as_js_number(&mut self, v: f64) {
        if !v.is_finite() || v.floor() != v {
            self.write_f64(v);
        } else if v >= 0.0 {
            if v < TWO_32 {
                self.write_u64(v as u64);
            } else {
                self.write_hi_lo(0xcf, v);
            }
        } else if v >= -2_147_483_648.0 {
            self.write_i64(v as i64);
        } else {
            self.write_hi_lo(0xd3, v);
        }
    }

    /// notepack's 64-bit path: `hi = floor(v / 2^32)` and `lo = v >>> 0`, each written
    /// as four bytes (every byte store reduces modulo 256).
    fn write_hi_lo(&mut self, marker: u8, v: f64) {
        self.buf.push(marker);
        self.buf
            .extend_from_slice(&to_uint32((v / TWO_32).floor()).to_be_bytes());
        self.buf.extend_from_slice(&to_uint32(v).to_be_bytes());
    }

    /// Smallest unsigned format: fixint, `cc`, `cd`, `ce`, `cf` (notepack's choice for
    /// non-negative integers).
    pub fn write_u64(&mut self, v: u64) {
        if v < 128 {
            self.buf.push(v as u8);
        } else if v < 256 {
            self.buf.extend_from_slice(&[0xcc, v as u8]);
        } else if v < 65_536 {
            self.buf.push(0xcd);
            self.buf.extend_from_slice(&(v as u16).to_be_bytes());
        } else if v < 1 << 32 {
            self.buf.push(0xce);
            self.buf.extend_from_slice(&(v as u32).to_be_bytes());
        } else {
            self.buf.push(0xcf);
            self.buf.extend_from_slice(&v.to_be_bytes());
        }
    }

    /// Smallest format for a signed integer; non-negative values use [`Writer::write_u64`]
    /// (as notepack does), negative ones fixint, `d0`, `d1`, `d2`, `d3`.
    pub fn write_i64(&mut self, v: i64) {
        if v >= 0 {
            self.write_u64(v as u64);
        } else if v >= -32 {
            self.buf.push(v as i8 as u8);
        } else if v >= -128 {
            self.buf.extend_from_slice(&[0xd0, v as i8 as u8]);
        } else if v >= -32_768 {
            self.buf.push(0xd1);
            self.buf.extend_from_slice(&(v as i16).to_be_bytes());
        } else if v >= -2_147_483_648 {
            self.buf.push(0xd2);
            self.buf.extend_from_slice(&(v as i32).to_be_bytes());
        } else {
            self.buf.push(0xd3);
            self.buf.extend_from_slice(&v.to_be_bytes());
        }
    }

    /// Header for a str of `len` UTF-8 bytes: fixstr (< 32), `d9`, `da`, `db`.
    pub fn write_str_len(&mut self, len: usize) {
        self.write_len(len, 0xa0, 32, [0xd9, 0xda, 0xdb]);
    }

    pub fn write_str(&mut self, s: &str) {
        self.write_str_len(s.len());
        self.buf.extend_from_slice(s.as_bytes());
    }

    /// Header for a bin of `len` bytes: `c4` (< 256), `c5`, `c6`.
    pub fn write_bin_len(&mut self, len: usize) {
        self.write_len(len, 0, 0, [0xc4, 0xc5, 0xc6]);
    }

    pub fn write_bin(&mut self, data: &[u8]) {
        self.write_bin_len(data.len());
        self.buf.extend_from_slice(data);
    }

    /// Array header: fixarray (< 16), `dc`, `dd`.
    pub fn write_array_len(&mut self, len: usize) {
        self.write_len(len, 0x90, 16, [0, 0xdc, 0xdd]);
    }

    /// Map header: fixmap (< 16), `de`, `df`.
    pub fn write_map_len(&mut self, len: usize) {
        self.write_len(len, 0x80, 16, [0, 0xde, 0xdf]);
    }

    /// `fix` format below `fix_limit`, else the 8/16/32-bit length markers in `sized`
    /// (a zero entry means "this width does not exist for the type").
    fn write_len(&mut self, len: usize, fix: u8, fix_limit: usize, sized: [u8; 3]) {
        if len < fix_limit {
            self.buf.push(fix | len as u8);
        } else if len < 256 && sized[0] != 0 {
            self.buf.extend_from_slice(&[sized[0], len as u8]);
        } else if len < 65_536 {
            self.buf.push(sized[1]);
            self.buf.extend_from_slice(&(len as u16).to_be_bytes());
        } else {
            // Lengths of 2^32 and more cannot be represented; MessagePack caps them.
            self.buf.push(sized[2]);
            let len = u32::try_from(len).unwrap_or(u32::MAX);
            self.buf.extend_from_slice(&len.to_be_bytes());
        }
    }

    /// Extension value: fixext for 1/2/4/8/16 bytes, else `c7`/`c8`/`c9`.
    pub fn write_ext(&mut self, ext_type: i8, data: &[u8]) {
        let fixed = match data.len() {
            1 => Some(0xd4),
            2 => Some(0xd5),
            4 => Some(0xd6),
            8 => Some(0xd7),
            16 => Some(0xd8),
            _ => None,
        };
        match fixed {
            Some(m) => self.buf.push(m),
            None => self.write_len(data.len(), 0, 0, [0xc7, 0xc8, 0xc9]),
        }
        self.buf.push(ext_type as u8);
        self.buf.extend_from_slice(data);
    }

    /// A JS `Date` with time value `ms` (milliseconds since the epoch) as the timestamp
    /// extension (type -1), with notepack's choice of timestamp32/64/96. `ms` goes through
    /// JS TimeClip first (non-finite or beyond ±8.64e15 is an invalid Date, which notepack
    /// writes as an all-zero timestamp96).
    pub fn write_timestamp_ms(&mut self, ms: f64) {
        let ms = if ms.is_finite() && ms.abs() <= 8.64e15 {
            ms.trunc() + 0.0
        } else {
            f64::NAN
        };
        let s = (ms / 1000.0).floor();
        let ns = (ms - s * 1000.0) * 1e6;
        if s >= 0.0 && ns >= 0.0 && s < 17_179_869_184.0 {
            if ns == 0.0 && s < TWO_32 {
                self.buf.extend_from_slice(&[0xd6, 0xff]);
                self.buf.extend_from_slice(&(s as u32).to_be_bytes());
            } else {
                self.buf.extend_from_slice(&[0xd7, 0xff]);
                let v = ((ns as u64) << 34) | s as u64;
                self.buf.extend_from_slice(&v.to_be_bytes());
            }
        } else {
            self.buf.extend_from_slice(&[0xc7, 0x0c, 0xff]);
            self.buf.extend_from_slice(&to_uint32(ns).to_be_bytes());
            self.buf
                .extend_from_slice(&to_uint32((s / TWO_32).floor()).to_be_bytes());
            self.buf.extend_from_slice(&to_uint32(s).to_be_bytes());
        }
    }

    /// Splices pre-encoded MessagePack bytes (one or more complete values) verbatim.
    pub fn write_raw(&mut self, bytes: &[u8]) {
        self.buf.extend_from_slice(bytes);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn js(v: f64) -> Vec<u8> {
        let mut w = Writer::new();
        w.write_f64_as_js_number(v);
        w.into_inner()
    }

    #[test]
    fn js_number_boundaries() {
        assert_eq!(js(0.0), [0x00]);
        assert_eq!(js(-0.0), [0x00]);
        assert_eq!(js(127.0), [0x7f]);
        assert_eq!(js(128.0), [0xcc, 0x80]);
        assert_eq!(js(65_535.0), [0xcd, 0xff, 0xff]);
        assert_eq!(js(4_294_967_295.0), [0xce, 0xff, 0xff, 0xff, 0xff]);
        assert_eq!(js(4_294_967_296.0), [0xcf, 0, 0, 0, 1, 0, 0, 0, 0]);
        assert_eq!(js(2f64.powi(64)), [0xcf, 0, 0, 0, 0, 0, 0, 0, 0]);
        assert_eq!(js(1e300), [0xcf, 0, 0, 0, 0, 0, 0, 0, 0]);
        assert_eq!(js(-1.0), [0xff]);
        assert_eq!(js(-32.0), [0xe0]);
        assert_eq!(js(-33.0), [0xd0, 0xdf]);
        assert_eq!(js(-129.0), [0xd1, 0xff, 0x7f]);
        assert_eq!(
            js(-2_147_483_649.0),
            [0xd3, 0xff, 0xff, 0xff, 0xff, 0x7f, 0xff, 0xff, 0xff]
        );
        assert_eq!(js(-(2f64.powi(53))), [0xd3, 0xff, 0xe0, 0, 0, 0, 0, 0, 0]);
        assert_eq!(js(1.5), [0xcb, 0x3f, 0xf8, 0, 0, 0, 0, 0, 0]);
        assert_eq!(js(f64::NAN)[0], 0xcb);
        assert_eq!(js(f64::NEG_INFINITY), [0xcb, 0xff, 0xf0, 0, 0, 0, 0, 0, 0]);
    }

    #[test]
    fn lengths_and_ext() {
        let mut w = Writer::new();
        w.write_str(&"a".repeat(31));
        assert_eq!(w.as_slice()[0], 0xbf);
        let mut w = Writer::new();
        w.write_str(&"a".repeat(32));
        assert_eq!(&w.as_slice()[..2], [0xd9, 32]);
        let mut w = Writer::new();
        w.write_bin(&[0; 256]);
        assert_eq!(&w.as_slice()[..3], [0xc5, 1, 0]);
        let mut w = Writer::new();
        w.write_array_len(16);
        w.write_map_len(15);
        w.write_map_len(70_000);
        assert_eq!(w.as_slice(), [0xdc, 0, 16, 0x8f, 0xdf, 0, 1, 0x11, 0x70]);
        let mut w = Writer::new();
        w.write_ext(5, &[1]);
        w.write_ext(5, &[1, 2, 3]);
        assert_eq!(w.as_slice(), [0xd4, 5, 1, 0xc7, 3, 5, 1, 2, 3]);
    }

    #[test]
    fn timestamps() {
        let ts = |ms: f64| {
            let mut w = Writer::new();
            w.write_timestamp_ms(ms);
            w.into_inner()
        };
        assert_eq!(ts(0.0), [0xd6, 0xff, 0, 0, 0, 0]);
        assert_eq!(ts(1500.0), [0xd7, 0xff, 0x77, 0x35, 0x94, 0, 0, 0, 0, 1]);
        assert_eq!(
            ts(-1.0),
            [
                0xc7, 0x0c, 0xff, 0x3b, 0x8b, 0x87, 0xc0, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
                0xff
            ]
        );
        assert_eq!(
            ts(f64::NAN),
            [0xc7, 0x0c, 0xff, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]
        );
    }
}
