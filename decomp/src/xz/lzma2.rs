//! LZMA2 (xz file format, section 5.3.1) over LZMA, decoded straight into
//! the output buffer: the dictionary *is* the output, so a match copies
//! from earlier bytes of `out`, no further back than the last dictionary
//! reset and no further than the declared dictionary size.
//!
//! Every index into the probability tables is in bounds by construction
//! (masks and loop bounds), every index into `out` is checked against the
//! chunk's limits, and reading past a chunk's compressed bytes yields zeros
//! and is reported when the chunk ends: no input can make this panic, and
//! the work is linear in the output (each symbol writes at least a byte).

use crate::{Error, Format};

const X: Format = Format::Xz;

fn corrupt(why: &'static str) -> Error {
    Error::Corrupt(X, why)
}

/// The range decoder over one LZMA chunk's compressed bytes.
pub(crate) struct Rc<'a> {
    buf: &'a [u8],
    pos: usize,
    range: u32,
    code: u32,
}

impl<'a> Rc<'a> {
    /// Five init bytes: the first is always 0 from an encoder (and ignored,
    /// as xz-embedded does), the next four the initial code.
    pub(crate) fn new(buf: &'a [u8]) -> Option<Self> {
        let init = buf.get(..5)?;
        Some(Rc {
            buf,
            pos: 5,
            range: u32::MAX,
            code: u32::from_be_bytes([init[1], init[2], init[3], init[4]]),
        })
    }

    /// The chunk ended exactly at the end of its compressed bytes, with the
    /// code at zero (what the encoder's flush leaves), once normalized.
    pub(crate) fn finished(&mut self) -> bool {
        self.normalize();
        self.pos == self.buf.len() && self.code == 0
    }

    #[inline(always)]
    fn normalize(&mut self) {
        if self.range < 1 << 24 {
            self.range <<= 8;
            let b = self.buf.get(self.pos).copied().unwrap_or(0);
            self.pos += 1;
            self.code = (self.code << 8) | u32::from(b);
        }
    }

    /// One bit with an adaptive probability (11-bit, shift 5), inlined:
    /// for the hot paths (literals, the match flag).
    #[inline(always)]
    fn bit_inline(&mut self, p: &mut u16) -> usize {
        self.normalize();
        let bound = (self.range >> 11) * u32::from(*p);
        if self.code < bound {
            self.range = bound;
            *p += (2048 - *p) >> 5;
            0
        } else {
            self.range -= bound;
            self.code -= bound;
            *p -= *p >> 5;
            1
        }
    }

    /// One bit, out of line: one copy of the code for the rarer paths.
    #[inline(never)]
    pub(crate) fn bit(&mut self, p: &mut u16) -> usize {
        self.bit_inline(p)
    }

    /// A bit-tree symbol of log2(probs.len()) bits, most significant
    /// first (`probs.len()` is a power of two).
    #[inline(never)]
    pub(crate) fn tree(&mut self, probs: &mut [u16]) -> usize {
        let n = probs.len();
        let mut m = 1;
        while m < n {
            m = (m << 1) | self.bit_inline(&mut probs[m]);
        }
        m - n
    }

    /// A reverse bit-tree symbol of `bits` bits (at most 5), least
    /// significant first.
    #[inline(never)]
    pub(crate) fn reverse(&mut self, probs: &mut [u16], bits: u32) -> u32 {
        let mut m = 1;
        let mut sym = 0;
        for i in 0..bits {
            let b = self.bit_inline(&mut probs[m]);
            m = (m << 1) | b;
            sym |= (b as u32) << i;
        }
        sym
    }

    /// `n` bits of probability one half.
    #[inline(never)]
    pub(crate) fn direct(&mut self, n: u32) -> u32 {
        let mut r = 0u32;
        for _ in 0..n {
            self.normalize();
            self.range >>= 1;
            let b = u32::from(self.code >= self.range);
            self.code -= self.range & b.wrapping_neg();
            r = (r << 1) | b;
        }
        r
    }
}

// Every adaptive probability of the LZMA model in one array (one fill
// resets them all), at these offsets. lc + lp <= 4 and pb <= 4: at most 16
// literal coders and 16 position states.
/// `[state 12][pos state 16]`: a match (1) or a literal (0).
const IS_MATCH: usize = 0;
/// `[state 12]`: a repeated match.
const IS_REP: usize = IS_MATCH + 12 * 16;
/// `[state 12]`: the repeated distance is not rep0.
const IS_REP0: usize = IS_REP + 12;
/// `[state 12]`: ... not rep1.
const IS_REP1: usize = IS_REP0 + 12;
/// `[state 12]`: ... not rep2.
const IS_REP2: usize = IS_REP1 + 12;
/// `[state 12][pos state 16]`: rep0 with a length (not a short rep).
const IS_REP0_LONG: usize = IS_REP2 + 12;
/// `[length state 4][64]`: distance slot bit trees.
const SLOT: usize = IS_REP0_LONG + 12 * 16;
/// `[slot 4..14][32]`: low distance bits, reverse bit trees of 1..5 bits.
const SPECIAL: usize = SLOT + 4 * 64;
/// `[16]`: the lowest four bits of distances from slot 14 on.
const ALIGN: usize = SPECIAL + 10 * 32;
/// Length decoder: choice, choice2, low `[pos state 16][8]`, mid
/// `[16][8]`, high `[256]`.
const LEN_SIZE: usize = 2 + 16 * 8 * 2 + 256;
const LEN: usize = ALIGN + 16;
const REP_LEN: usize = LEN + LEN_SIZE;
/// `[coder 16][0x300]`: literal coders.
const LITERAL: usize = REP_LEN + LEN_SIZE;
const PROBS: usize = LITERAL + 16 * 0x300;

/// The LZMA decoder state that lives across chunks of a block.
pub(crate) struct Lzma {
    state: usize,
    rep: [u32; 4],
    lc: u32,
    lp_mask: usize,
    pb_mask: usize,
    p: [u16; PROBS],
}

impl Lzma {
    /// All zero (a memset, not a 28 KiB constant in the binary); every
    /// block's first LZMA chunk sets the properties, which resets.
    pub(crate) fn new() -> Self {
        Lzma {
            state: 0,
            rep: [0; 4],
            lc: 0,
            lp_mask: 0,
            pb_mask: 0,
            p: [0; PROBS],
        }
    }

    /// The lc/lp/pb properties byte: (pb * 5 + lp) * 9 + lc, with
    /// lc + lp <= 4 (LZMA2's limit) and pb <= 4. Resets the state.
    pub(crate) fn set_props(&mut self, props: u8) -> Result<(), Error> {
        if props > 224 {
            return Err(Error::Unsupported(X, "unsupported LZMA2 properties"));
        }
        let lc = u32::from(props % 9);
        let lp = u32::from(props / 9 % 5);
        let pb = u32::from(props / 45);
        if lc + lp > 4 {
            return Err(Error::Unsupported(X, "unsupported LZMA2 properties"));
        }
        self.lc = lc;
        self.lp_mask = (1 << lp) - 1;
        self.pb_mask = (1 << pb) - 1;
        self.reset();
        Ok(())
    }

    /// State reset: symbol state, repeat distances and every probability.
    pub(crate) fn reset(&mut self) {
        self.state = 0;
        self.rep = [0; 4];
        // Only the literal coders lc + lp can reach.
        let n = ((self.lp_mask + 1) << self.lc).min(16);
        self.p[..LITERAL + n * 0x300].fill(1024);
    }

    /// Decode one LZMA chunk: the bytes `out[pos..end]`, with the
    /// dictionary starting at `dict` (the last reset) and at most
    /// `dict_size` long. The caller checks `end <= out.len()` and the range
    /// decoder's end.
    #[inline(never)]
    pub(crate) fn run(
        &mut self,
        rc: &mut Rc,
        out: &mut [u8],
        dict: usize,
        dict_size: usize,
        pos: usize,
        end: usize,
    ) -> Result<(), Error> {
        let out = out.get_mut(..end).ok_or(Error::OutputTooSmall)?;
        if pos < dict || pos > end {
            return Err(corrupt("invalid LZMA2 data"));
        }
        let (lc, lp_mask, pb_mask) = (self.lc, self.lp_mask, self.pb_mask);
        let mut state = self.state;
        let [mut r0, mut r1, mut r2, mut r3] = self.rep;
        let p = &mut self.p;
        let mut pos = pos;
        while pos < out.len() {
            let ps = (pos - dict) & pb_mask & 15;
            let st = state % 12;
            if rc.bit_inline(&mut p[IS_MATCH + st * 16 + ps]) == 0 {
                // Literal, coded with the previous byte's top lc bits and
                // the position's low lp bits.
                let prev = if pos > dict { out[pos - 1] } else { 0 };
                let li = ((((pos - dict) & lp_mask) << lc) + (usize::from(prev) >> (8 - lc))) & 15;
                let probs = &mut p[LITERAL + li * 0x300..][..0x300];
                let mut sym = 1usize;
                if st < 7 {
                    while sym < 0x100 {
                        sym = (sym << 1) | rc.bit_inline(&mut probs[sym]);
                    }
                } else {
                    // After a match: the byte at rep0 steers the
                    // probabilities until the first differing bit. rep0
                    // was checked against the dictionary when decoded.
                    let at = pos.wrapping_sub(r0 as usize).wrapping_sub(1);
                    let mut mb = usize::from(out.get(at).copied().unwrap_or(0));
                    let mut offset = 0x100;
                    while sym < 0x100 {
                        mb <<= 1;
                        let match_bit = mb & offset;
                        let b = rc.bit_inline(&mut probs[(offset + match_bit + sym) % 0x300]);
                        sym = (sym << 1) | b;
                        offset &= if b == 0 { !match_bit } else { match_bit };
                    }
                }
                out[pos] = sym as u8;
                pos += 1;
                state = match st {
                    0..=3 => 0,
                    4..=9 => st - 3,
                    _ => st - 6,
                };
                continue;
            }
            let len;
            if rc.bit(&mut p[IS_REP + st]) == 0 {
                // A match with a new distance.
                len = decode_len(rc, &mut p[LEN..][..LEN_SIZE], ps);
                state = if st < 7 { 7 } else { 10 };
                let slot = rc.tree(&mut p[SLOT + (len - 2).min(3) * 64..][..64]) as u32;
                let dist = if slot < 4 {
                    slot
                } else {
                    let bits = (slot >> 1) - 1;
                    let base = (2 | (slot & 1)) << bits;
                    if slot < 14 {
                        base | rc.reverse(&mut p[SPECIAL + (slot as usize - 4) * 32..][..32], bits)
                    } else {
                        base | rc.direct(bits - 4) << 4 | rc.reverse(&mut p[ALIGN..][..16], 4)
                    }
                };
                r3 = r2;
                r2 = r1;
                r1 = r0;
                r0 = dist;
            } else if rc.bit(&mut p[IS_REP0 + st]) == 0 {
                if rc.bit(&mut p[IS_REP0_LONG + st * 16 + ps]) == 0 {
                    // Short rep: one byte from rep0.
                    state = if st < 7 { 9 } else { 11 };
                    len = 1;
                } else {
                    state = if st < 7 { 8 } else { 11 };
                    len = decode_len(rc, &mut p[REP_LEN..][..LEN_SIZE], ps);
                }
            } else {
                let d;
                if rc.bit(&mut p[IS_REP1 + st]) == 0 {
                    d = r1;
                } else {
                    if rc.bit(&mut p[IS_REP2 + st]) == 0 {
                        d = r2;
                    } else {
                        d = r3;
                        r3 = r2;
                    }
                    r2 = r1;
                }
                r1 = r0;
                r0 = d;
                state = if st < 7 { 8 } else { 11 };
                len = decode_len(rc, &mut p[REP_LEN..][..LEN_SIZE], ps);
            }
            // Copy len bytes from distance rep0 + 1, within the dictionary
            // and within the chunk.
            let full = (pos - dict).min(dict_size);
            if r0 as usize >= full {
                return Err(corrupt("LZMA match distance beyond the data"));
            }
            let dist = r0 as usize + 1;
            if len > out.len() - pos {
                return Err(corrupt("LZMA match past the end of its chunk"));
            }
            let to = pos + len;
            if dist >= len {
                out.copy_within(pos - dist..to - dist, pos);
            } else {
                for i in pos..to {
                    out[i] = out[i - dist];
                }
            }
            pos = to;
        }
        self.state = state;
        self.rep = [r0, r1, r2, r3];
        Ok(())
    }
}

/// A match length, 2..=273.
#[inline(never)]
fn decode_len(rc: &mut Rc, l: &mut [u16], ps: usize) -> usize {
    let (choice, rest) = l.split_at_mut(2);
    if rc.bit(&mut choice[0]) == 0 {
        2 + rc.tree(&mut rest[ps * 8..][..8])
    } else if rc.bit(&mut choice[1]) == 0 {
        10 + rc.tree(&mut rest[128 + ps * 8..][..8])
    } else {
        18 + rc.tree(&mut rest[256..][..256])
    }
}

fn be16(b: &[u8], pos: usize) -> Option<usize> {
    let s = b.get(pos..pos + 2)?;
    Some(usize::from(u16::from_be_bytes([s[0], s[1]])))
}

/// What an LZMA2 stream decoded to.
pub(crate) struct Decoded {
    /// Compressed bytes read, end marker included.
    pub input: usize,
    /// End of the output written (it started at `start`).
    pub end: usize,
}

/// Decode the LZMA2 data at the start of `data` into `out[start..limit]`
/// (`limit <= out.len()`), with a dictionary of at most `dict_size` bytes.
/// Output beyond `limit` is [`Error::OutputTooSmall`]; the caller names it.
#[inline(never)]
pub(crate) fn decode(
    lz: &mut Lzma,
    data: &[u8],
    out: &mut [u8],
    start: usize,
    limit: usize,
    dict_size: usize,
) -> Result<Decoded, Error> {
    let limit = limit.min(out.len());
    if start > limit {
        return Err(Error::OutputTooSmall);
    }
    let truncated = Error::Truncated(X);
    let mut ip = 0usize;
    let mut pos = start;
    let mut dict = start;
    let mut need_dict_reset = true;
    let mut need_props = true;
    loop {
        let c = *data.get(ip).ok_or(truncated)?;
        ip += 1;
        if c == 0 {
            return Ok(Decoded {
                input: ip,
                end: pos,
            });
        }
        if c >= 0xe0 || c == 1 {
            need_props = true;
            need_dict_reset = false;
            dict = pos;
        } else if need_dict_reset {
            return Err(corrupt("LZMA2 data does not start with a dictionary reset"));
        }
        if c < 0x80 {
            // Uncompressed chunk (1: after a dictionary reset).
            if c > 2 {
                return Err(corrupt("invalid LZMA2 chunk header"));
            }
            let size = be16(data, ip).ok_or(truncated)? + 1;
            ip += 2;
            let src = data.get(ip..ip + size).ok_or(truncated)?;
            if size > limit - pos {
                return Err(Error::OutputTooSmall);
            }
            out.get_mut(pos..pos + size)
                .ok_or(Error::OutputTooSmall)?
                .copy_from_slice(src);
            ip += size;
            pos += size;
            continue;
        }
        // LZMA chunk: sizes, then properties if they change.
        let usize_ = (usize::from(c & 0x1f) << 16) + be16(data, ip).ok_or(truncated)? + 1;
        let csize = be16(data, ip + 2).ok_or(truncated)? + 1;
        ip += 4;
        if c >= 0xc0 {
            let props = *data.get(ip).ok_or(truncated)?;
            ip += 1;
            lz.set_props(props)?;
            need_props = false;
        } else if need_props {
            return Err(corrupt("LZMA2 chunk without properties after a reset"));
        } else if c >= 0xa0 {
            lz.reset();
        }
        let src = data.get(ip..ip + csize).ok_or(truncated)?;
        if usize_ > limit - pos {
            return Err(Error::OutputTooSmall);
        }
        let mut rc = Rc::new(src).ok_or(corrupt("invalid LZMA2 chunk header"))?;
        lz.run(&mut rc, out, dict, dict_size, pos, pos + usize_)?;
        if !rc.finished() {
            return Err(corrupt("LZMA chunk does not end where its header says"));
        }
        ip += csize;
        pos += usize_;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A minimal range encoder (the LZMA SDK's), for round trips of the
    /// decoder's primitives.
    struct Enc {
        low: u64,
        range: u32,
        cache: u8,
        cache_size: u64,
        out: std::vec::Vec<u8>,
    }

    extern crate std;

    impl Enc {
        fn new() -> Self {
            Enc {
                low: 0,
                range: u32::MAX,
                cache: 0,
                cache_size: 1,
                out: std::vec::Vec::new(),
            }
        }
        fn shift_low(&mut self) {
            if (self.low as u32) < 0xff00_0000 || (self.low >> 32) != 0 {
                let carry = (self.low >> 32) as u8;
                let mut temp = self.cache;
                loop {
                    self.out.push(temp.wrapping_add(carry));
                    temp = 0xff;
                    self.cache_size -= 1;
                    if self.cache_size == 0 {
                        break;
                    }
                }
                self.cache = ((self.low >> 24) & 0xff) as u8;
            }
            self.cache_size += 1;
            self.low = (self.low & 0x00ff_ffff) << 8;
        }
        fn bit(&mut self, p: &mut u16, b: u32) {
            let bound = (self.range >> 11) * u32::from(*p);
            if b == 0 {
                self.range = bound;
                *p += (2048 - *p) >> 5;
            } else {
                self.low += u64::from(bound);
                self.range -= bound;
                *p -= *p >> 5;
            }
            while self.range < 1 << 24 {
                self.range <<= 8;
                self.shift_low();
            }
        }
        fn direct(&mut self, v: u32, n: u32) {
            for i in (0..n).rev() {
                self.range >>= 1;
                if (v >> i) & 1 == 1 {
                    self.low += u64::from(self.range);
                }
                while self.range < 1 << 24 {
                    self.range <<= 8;
                    self.shift_low();
                }
            }
        }
        fn finish(mut self) -> std::vec::Vec<u8> {
            for _ in 0..5 {
                self.shift_low();
            }
            self.out
        }
    }

    #[test]
    fn range_decoder_round_trip() {
        let mut x = 12345u32;
        let mut bits = std::vec::Vec::new();
        for i in 0..20_000u32 {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            // Skewed bits, so the probabilities move.
            bits.push(u32::from(x % 10 < if i % 1000 < 500 { 1 } else { 8 }));
        }
        let mut enc = Enc::new();
        let mut pe = [1024u16; 4];
        for (i, &b) in bits.iter().enumerate() {
            enc.bit(&mut pe[i % 4], b);
            if i % 97 == 0 {
                enc.direct(i as u32 & 0x3ff, 10);
            }
        }
        let z = enc.finish();
        assert_eq!(z[0], 0);
        let mut rc = Rc::new(&z).unwrap();
        let mut pd = [1024u16; 4];
        for (i, &b) in bits.iter().enumerate() {
            assert_eq!(rc.bit(&mut pd[i % 4]) as u32, b, "bit {i}");
            if i % 97 == 0 {
                assert_eq!(rc.direct(10), i as u32 & 0x3ff);
            }
        }
        assert_eq!(pd, pe);
        // Skewed data compresses.
        assert!(z.len() < bits.len() / 8);
        // Bit trees, both ways.
        let mut enc = Enc::new();
        let mut t = [1024u16; 64];
        let mut r = [1024u16; 32];
        for v in 0..64u32 {
            let mut m = 1usize;
            for i in (0..6).rev() {
                let b = (v >> i) & 1;
                enc.bit(&mut t[m], b);
                m = (m << 1) | b as usize;
            }
            let mut m = 1usize;
            for i in 0..5 {
                let b = (v >> i) & 1;
                enc.bit(&mut r[m], b);
                m = (m << 1) | b as usize;
            }
        }
        let z = enc.finish();
        let mut rc = Rc::new(&z).unwrap();
        let mut t = [1024u16; 64];
        let mut r = [1024u16; 32];
        for v in 0..64u32 {
            assert_eq!(rc.tree(&mut t), v as usize);
            assert_eq!(rc.reverse(&mut r, 5), v & 31);
        }
        assert!(rc.finished());
        assert!(Rc::new(&z[..4]).is_none());
    }

    #[test]
    fn props() {
        let mut lz = Lzma::new();
        assert!(lz.set_props(93).is_ok()); // lc=3 lp=0 pb=2
        assert_eq!((lz.lc, lz.lp_mask, lz.pb_mask), (3, 0, 3));
        assert!(lz.set_props(4 + 9).is_err()); // lc 4 + lp 1
        assert!(lz.set_props(225).is_err());
        assert!(lz.set_props(4 * 45 + 4 * 9).is_ok()); // lc 0 lp 4 pb 4
    }

    #[test]
    fn lzma2_chunks() {
        let mut lz = Lzma::new();
        let mut out = [0u8; 8];
        // Dictionary reset + uncompressed "abc", uncompressed "de", end.
        let z = [1, 0, 2, b'a', b'b', b'c', 2, 0, 1, b'd', b'e', 0];
        let d = decode(&mut lz, &z, &mut out, 1, 8, 4096).ok().unwrap();
        assert_eq!((d.input, d.end), (z.len(), 6));
        assert_eq!(&out[..6], b"\0abcde");
        // No dictionary reset first; output too small; truncated.
        let e = decode(&mut lz, &[2, 0, 0, b'x', 0], &mut out, 0, 8, 4096);
        assert!(matches!(e, Err(Error::Corrupt(..))));
        let e = decode(&mut lz, &z, &mut out, 0, 4, 4096);
        assert!(matches!(e, Err(Error::OutputTooSmall)));
        let e = decode(&mut lz, &z[..7], &mut out, 0, 8, 4096);
        assert!(matches!(e, Err(Error::Truncated(_))));
        // An LZMA chunk after a dictionary reset needs properties.
        let e = decode(
            &mut lz,
            &[1, 0, 0, b'x', 0x80, 0, 0, 0, 4],
            &mut out,
            0,
            8,
            4096,
        );
        assert!(matches!(e, Err(Error::Corrupt(..))));
    }
}
