//! Where the next byte that JSON text cannot carry raw is: a control character (below 0x20),
//! `"` or a backslash. Every string of every event is scanned for them, on the sender (is the
//! JS string its own JSON? where does the JSON string end?) and on each receiver (MessagePack
//! str to JSON): for 4 KiB payloads these scans were 10-14 % of a node's CPU in `perf` when
//! done eight bytes at a time. SSE2 (part of every x86_64 CPU) looks at 32 bytes per step;
//! other targets keep the word-at-a-time test.
//!
//! Bytes of non-ASCII characters are all >= 0x80 in UTF-8, so none of them ever matches.

/// The index of the first byte of `bytes` that JSON escapes, or `bytes.len()` if none does.
#[inline]
pub fn first_escape(bytes: &[u8]) -> usize {
    #[cfg(target_arch = "x86_64")]
    {
        // SAFETY: SSE2 is part of the x86_64 baseline; every load stays inside `bytes`.
        unsafe { sse2::first_escape(bytes) }
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        portable::first_escape(bytes)
    }
}

/// Whether a byte is one that JSON escapes.
#[inline]
pub fn is_escaped(b: u8) -> bool {
    b < 0x20 || b == b'"' || b == b'\\'
}

#[cfg(target_arch = "x86_64")]
mod sse2 {
    use core::arch::x86_64::{
        __m128i, _mm_cmpeq_epi8, _mm_loadu_si128, _mm_min_epu8, _mm_movemask_epi8, _mm_or_si128,
        _mm_set1_epi8,
    };

    /// Bit i set when byte i of the 16 at `p` is escaped.
    #[inline(always)]
    unsafe fn mask16(p: *const u8) -> u32 {
        unsafe {
            let v = _mm_loadu_si128(p.cast::<__m128i>());
            // v <= 0x1f (unsigned) exactly when min(v, 0x1f) == v.
            let control = _mm_cmpeq_epi8(_mm_min_epu8(v, _mm_set1_epi8(0x1f)), v);
            let quote = _mm_cmpeq_epi8(v, _mm_set1_epi8(b'"' as i8));
            let backslash = _mm_cmpeq_epi8(v, _mm_set1_epi8(b'\\' as i8));
            _mm_movemask_epi8(_mm_or_si128(control, _mm_or_si128(quote, backslash))) as u32
        }
    }

    #[inline]
    pub unsafe fn first_escape(bytes: &[u8]) -> usize {
        let n = bytes.len();
        let p = bytes.as_ptr();
        let mut i = 0;
        unsafe {
            // Most strings of JSON text (keys, header values) end within 16 bytes.
            if n >= 16 {
                let m = mask16(p);
                if m != 0 {
                    return m.trailing_zeros() as usize;
                }
                i = 16;
            }
            while i + 32 <= n {
                let m = mask16(p.add(i)) | (mask16(p.add(i + 16)) << 16);
                if m != 0 {
                    return i + m.trailing_zeros() as usize;
                }
                i += 32;
            }
            if i + 16 <= n {
                let m = mask16(p.add(i));
                if m != 0 {
                    return i + m.trailing_zeros() as usize;
                }
                i += 16;
            }
            if i < n && n >= 16 {
                // The last 16 bytes, overlapping bytes already found clean.
                let m = mask16(p.add(n - 16)) >> (16 - (n - i));
                return if m != 0 {
                    i + m.trailing_zeros() as usize
                } else {
                    n
                };
            }
        }
        i + super::portable::first_escape(&bytes[i..])
    }
}

mod portable {
    /// Whether one of the eight bytes of `w` is escaped ("Bit Twiddling Hacks": haszero and
    /// hasless, exact for the word as a whole).
    #[inline]
    fn word_has_escape(w: u64) -> bool {
        const ONES: u64 = 0x0101_0101_0101_0101;
        const HIGHS: u64 = 0x8080_8080_8080_8080;
        let has_zero = |v: u64| v.wrapping_sub(ONES) & !v & HIGHS;
        let below_space = w.wrapping_sub(ONES * 0x20) & !w & HIGHS;
        (below_space
            | has_zero(w ^ (ONES * u64::from(b'"')))
            | has_zero(w ^ (ONES * u64::from(b'\\'))))
            != 0
    }

    #[allow(dead_code)] // the x86_64 build uses it for short tails only
    pub fn first_escape(bytes: &[u8]) -> usize {
        let mut i = 0;
        while let Some(word) = bytes.get(i..i + 8) {
            if word_has_escape(u64::from_le_bytes(word.try_into().unwrap())) {
                break;
            }
            i += 8;
        }
        i + bytes[i..]
            .iter()
            .position(|&b| super::is_escaped(b))
            .unwrap_or(bytes.len() - i)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reference(bytes: &[u8]) -> usize {
        bytes
            .iter()
            .position(|&b| is_escaped(b))
            .unwrap_or(bytes.len())
    }

    #[test]
    fn every_length_and_position_matches_a_byte_loop() {
        // Lengths around the 8/16/32-byte steps, one escaped byte at each position, each kind.
        for len in 0..100usize {
            let clean: Vec<u8> = (0..len).map(|i| b"ab\xc3\xa9 ~\x7f\xff"[i % 8]).collect();
            assert_eq!(first_escape(&clean), len, "clean, len {len}");
            assert_eq!(portable::first_escape(&clean), len);
            for at in 0..len {
                for bad in [0u8, 0x1f, b'"', b'\\', b'\n'] {
                    let mut v = clean.clone();
                    v[at] = bad;
                    if at + 3 < len {
                        v[at + 3] = b'"'; // a later hit must not win
                    }
                    assert_eq!(
                        first_escape(&v),
                        reference(&v),
                        "len {len} at {at} byte {bad}"
                    );
                    assert_eq!(portable::first_escape(&v), reference(&v));
                }
            }
        }
    }

    #[test]
    fn bytes_next_to_the_escaped_ones_are_not_escaped() {
        for b in 0..=255u8 {
            let v = vec![b; 40];
            let want = if is_escaped(b) { 0 } else { 40 };
            assert_eq!(first_escape(&v), want, "byte {b:#x}");
            assert_eq!(portable::first_escape(&v), want, "byte {b:#x}");
        }
    }
}
