//! zstd (RFC 8878), decoded without a heap. The output buffer is the
//! window: matches copy from what was already written, and a block's
//! literals are regenerated into the unused tail of the output before its
//! sequences move them into place (so bytes of `out` past the returned
//! length may be overwritten). The Huffman and FSE tables (~17 KiB)
//! live on the stack. Content checksums are the low 32 bits of XXH64.

use crate::{Error, Format, MAX_OUTPUT, ZSTD_MAGIC, le32};

const Z: Format = Format::Zstd;

/// Largest block content (Block_Maximum_Size).
const MAX_BLOCK: usize = 128 * 1024;

/// What [`scan`] learns from the frame and block headers.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Scan {
    /// Sum of all frames' content sizes; `None` if a frame has none.
    pub total: Option<usize>,
}

struct FrameHeader {
    /// Header length, magic included.
    len: usize,
    fcs: Option<u64>,
    checksum: bool,
    /// Window_Size (the content size for a single-segment frame).
    window: u64,
    /// A non-zero Dictionary_ID.
    dict: bool,
}

fn is_skippable(magic: u32) -> bool {
    magic & 0xffff_fff0 == 0x184d_2a50
}

/// Parse the frame header of the frame starting at `d[0]` (magic included).
fn frame_header(d: &[u8]) -> Result<FrameHeader, Error> {
    let fhd = *d.get(4).ok_or(Error::Truncated(Z))?;
    if fhd & 0x08 != 0 {
        return Err(Error::Corrupt(Z, "reserved frame header bit set"));
    }
    let single = fhd & 0x20 != 0;
    let did = [0usize, 1, 2, 4][usize::from(fhd & 3)];
    let fcs_len = match fhd >> 6 {
        0 => usize::from(single),
        1 => 2,
        2 => 4,
        _ => 8,
    };
    let len = 5 + usize::from(!single) + did + fcs_len;
    let h = d.get(..len).ok_or(Error::Truncated(Z))?;
    let p = len - fcs_len;
    let fcs = match fcs_len {
        0 => None,
        1 => Some(u64::from(h[p])),
        2 => Some(u64::from(u16::from_le_bytes([h[p], h[p + 1]])) + 256),
        4 => Some(u64::from(le32(h, p))),
        _ => Some(u64::from(le32(h, p)) | u64::from(le32(h, p + 4)) << 32),
    };
    let window = if single {
        fcs.unwrap_or(0)
    } else {
        let wd = h[5];
        let base = 1u64 << (10 + (wd >> 3));
        base + (base >> 3) * u64::from(wd & 7)
    };
    Ok(FrameHeader {
        len,
        fcs,
        checksum: fhd & 0x04 != 0,
        window,
        dict: h[5 + usize::from(!single)..p].iter().any(|&b| b != 0),
    })
}

/// Walk all frames (skippable ones included) and their block headers.
/// Detects truncation exactly; linear in the input, no allocation.
pub(crate) fn scan(data: &[u8]) -> Result<Scan, Error> {
    let mut pos = 0usize;
    let mut frames = 0usize;
    let mut total = Some(0u64);
    while pos < data.len() {
        let rest = &data[pos..];
        if frames > 0 && rest.iter().all(|&b| b == 0) {
            break;
        }
        let magic = le32(rest.get(..4).ok_or(Error::Truncated(Z))?, 0);
        if is_skippable(magic) {
            let len = le32(rest.get(..8).ok_or(Error::Truncated(Z))?, 4) as usize;
            pos = (pos + 8)
                .checked_add(len)
                .filter(|&e| e <= data.len())
                .ok_or(Error::Truncated(Z))?;
            continue;
        }
        if !rest.starts_with(&ZSTD_MAGIC) {
            return Err(Error::Corrupt(Z, "trailing garbage after zstd frame"));
        }
        let h = frame_header(rest)?;
        total = match (total, h.fcs) {
            (Some(t), Some(f)) => Some(t.saturating_add(f)),
            _ => None,
        };
        if total.is_some_and(|t| t > MAX_OUTPUT as u64) {
            return Err(Error::TooLarge(Z));
        }
        pos += h.len;
        loop {
            let b = data.get(pos..pos + 3).ok_or(Error::Truncated(Z))?;
            let b = u32::from(b[0]) | u32::from(b[1]) << 8 | u32::from(b[2]) << 16;
            let last = b & 1 != 0;
            let size = (b >> 3) as usize;
            let content = match (b >> 1) & 3 {
                1 => 1, // RLE: one byte repeated `size` times
                3 => return Err(Error::Corrupt(Z, "reserved block type")),
                _ => size,
            };
            if size > MAX_BLOCK {
                return Err(Error::Corrupt(Z, "block larger than 128 KiB"));
            }
            pos = (pos + 3)
                .checked_add(content)
                .filter(|&e| e <= data.len())
                .ok_or(Error::Truncated(Z))?;
            if last {
                break;
            }
        }
        if h.checksum {
            pos = pos
                .checked_add(4)
                .filter(|&e| e <= data.len())
                .ok_or(Error::Truncated(Z))?;
        }
        frames += 1;
    }
    if frames == 0 {
        return Err(Error::Truncated(Z));
    }
    Ok(Scan {
        total: total.map(|t| t as usize),
    })
}

// The larger steps are kept out of line (`#[inline(never)]`): inlined
// into their one caller they made the static build ~770 B bigger.

fn corrupt(why: &'static str) -> Error {
    Error::Corrupt(Z, why)
}

/// Little-endian u64 at `p`; 0 where `d` is too short.
fn le64(d: &[u8], p: usize) -> u64 {
    match d.get(p..p.wrapping_add(8)) {
        Some(&[a, b, c, e, f, g, h, i]) => u64::from_le_bytes([a, b, c, e, f, g, h, i]),
        _ => 0,
    }
}

/// `n` bits at bit `bit` of a forward (LSB-first) bitstream, zeros past
/// its end (`n` <= 24).
fn fwd(d: &[u8], bit: usize, n: u32) -> u32 {
    let b = bit / 8;
    let mut w = 0u32;
    for i in 0..4 {
        w |= u32::from(d.get(b + i).copied().unwrap_or(0)) << (8 * i);
    }
    (w >> (bit % 8)) & ((1 << n) - 1)
}

/// A backward bitstream (RFC 8878 4.1): read from its last byte down, the
/// highest set bit of that byte marking the start. Reading past the
/// beginning yields zeros and is noted (`over`): whether that is an error
/// is the caller's to tell.
struct Rev<'a> {
    d: &'a [u8],
    /// Bytes of `d[..pos]` not yet loaded.
    pos: usize,
    /// The next `cnt` bits are the low `cnt` bits of `acc`, first bit highest.
    acc: u64,
    cnt: u32,
    /// Zero bits appended past the beginning.
    virt: u32,
}

impl<'a> Rev<'a> {
    fn new(d: &'a [u8]) -> Result<Self, Error> {
        let last = *d.last().ok_or(corrupt("empty bitstream"))?;
        if last == 0 {
            return Err(corrupt("bitstream without end mark"));
        }
        let mut r = Rev {
            d,
            pos: d.len(),
            acc: 0,
            cnt: 0,
            virt: 0,
        };
        r.refill();
        r.cnt -= last.leading_zeros() + 1;
        Ok(r)
    }

    /// Tops `acc` up to at least 56 bits (only called below 32).
    fn refill(&mut self) {
        if self.pos >= 8 {
            let k = (63 - self.cnt) / 8;
            let w = le64(self.d, self.pos - 8);
            self.acc = (self.acc << (8 * k)) | (w >> (64 - 8 * k));
            self.pos -= k as usize;
            self.cnt += 8 * k;
        } else {
            while self.cnt <= 55 {
                let b = if self.pos > 0 {
                    self.pos -= 1;
                    self.d.get(self.pos).copied().unwrap_or(0)
                } else {
                    self.virt += 8;
                    0
                };
                self.acc = (self.acc << 8) | u64::from(b);
                self.cnt += 8;
            }
        }
    }

    /// The next `n` (<= 32) bits without consuming them.
    fn peek(&mut self, n: u32) -> u32 {
        if self.cnt < n {
            self.refill();
        }
        ((self.acc >> (self.cnt - n)) & ((1u64 << n) - 1)) as u32
    }

    /// Reads `n` (<= 32) bits.
    fn bits(&mut self, n: u32) -> u32 {
        let v = self.peek(n);
        self.cnt -= n;
        v
    }

    /// Whether more bits were read than the stream holds.
    fn over(&self) -> bool {
        self.cnt < self.virt
    }

    /// Whether exactly every bit was read.
    fn done(&self) -> bool {
        self.pos == 0 && self.cnt == self.virt
    }
}

/// One FSE decoding state: the next state is `next` plus `nb` bits; the
/// symbol it stands for is already turned into its value: `base` plus
/// `extra` bits (for literal/match lengths and offset codes) or the symbol
/// itself (`extra` 0).
#[derive(Clone, Copy, Default)]
struct Cell {
    base: u32,
    next: u16,
    nb: u8,
    extra: u8,
}

/// An FSE decoding table with up to 512 states.
struct Table {
    t: [Cell; 512],
    log: u32,
    ok: bool,
}

/// What an FSE table's symbols are.
#[derive(Clone, Copy, PartialEq)]
enum Kind {
    /// Huffman weights: the symbol itself.
    Weight,
    LitLen,
    Offset,
    MatchLen,
}

const LL_EXTRA: [u8; 36] = [
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 3, 3, 4, 6, 7, 8, 9, 10, 11,
    12, 13, 14, 15, 16,
];
const ML_EXTRA: [u8; 53] = [
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    1, 1, 1, 1, 2, 2, 3, 3, 4, 4, 5, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16,
];

/// Baselines: each code's range follows the previous one's.
const fn bases<const N: usize>(extra: &[u8; N], first: u32) -> [u32; N] {
    let mut b = [0u32; N];
    let mut v = first;
    let mut i = 0;
    while i < N {
        b[i] = v;
        v += 1 << extra[i];
        i += 1;
    }
    b
}
const LL_BASE: [u32; 36] = bases(&LL_EXTRA, 0);
const ML_BASE: [u32; 53] = bases(&ML_EXTRA, 3);

/// The predefined distributions (RFC 8878 3.1.1.3.2.2).
const LL_DEFAULT: [i16; 36] = [
    4, 3, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 1, 1, 1, 2, 2, 2, 2, 2, 2, 2, 2, 2, 3, 2, 1, 1, 1, 1, 1,
    -1, -1, -1, -1,
];
const ML_DEFAULT: [i16; 53] = [
    1, 4, 3, 2, 2, 2, 2, 2, 2, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, -1, -1, -1, -1, -1, -1, -1,
];
const OF_DEFAULT: [i16; 29] = [
    1, 1, 1, 1, 1, 1, 2, 2, 2, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, -1, -1, -1, -1, -1,
];

impl Kind {
    /// (symbol count, largest accuracy log)
    fn limits(self) -> (usize, u32) {
        match self {
            Kind::Weight => (256, 6),
            Kind::LitLen => (36, 9),
            Kind::Offset => (32, 8),
            Kind::MatchLen => (53, 9),
        }
    }

    /// Symbol `s`'s baseline and extra bits; None beyond the alphabet.
    fn value(self, s: usize) -> Option<(u32, u8)> {
        match self {
            Kind::Weight => Some((s as u32, 0)),
            Kind::LitLen => Some((*LL_BASE.get(s)?, *LL_EXTRA.get(s)?)),
            Kind::Offset => (s < 32).then(|| (1u32 << s, s as u8)),
            Kind::MatchLen => Some((*ML_BASE.get(s)?, *ML_EXTRA.get(s)?)),
        }
    }
}

/// Reads an FSE table description (RFC 8878 4.1.1) at the start of `src`
/// into `norm`: returns (accuracy log, symbol count, bytes used).
fn read_counts(
    src: &[u8],
    kind: Kind,
    norm: &mut [i16; 256],
) -> Result<(u32, usize, usize), Error> {
    let bad = corrupt("invalid FSE table description");
    let (nmax, max_log) = kind.limits();
    let log = fwd(src, 0, 4) + 5;
    if log > max_log {
        return Err(bad);
    }
    let mut bit = 4usize;
    let mut remaining = (1i32 << log) + 1;
    let mut threshold = 1i32 << log;
    let mut nbits = log + 1;
    let mut sym = 0usize;
    while remaining > 1 {
        let max = 2 * threshold - 1 - remaining;
        let low = fwd(src, bit, nbits - 1) as i32;
        let v = if low < max {
            bit += nbits as usize - 1;
            low
        } else {
            let v = fwd(src, bit, nbits) as i32;
            bit += nbits as usize;
            if v >= threshold { v - max } else { v }
        };
        let count = v - 1;
        remaining -= count.abs();
        *norm.get_mut(sym).filter(|_| sym < nmax).ok_or(bad)? = count as i16;
        sym += 1;
        if count == 0 {
            loop {
                let r = fwd(src, bit, 2);
                bit += 2;
                for _ in 0..r {
                    *norm.get_mut(sym).filter(|_| sym < nmax).ok_or(bad)? = 0;
                    sym += 1;
                }
                if r != 3 {
                    break;
                }
            }
        }
        while remaining < threshold {
            nbits -= 1;
            threshold >>= 1;
        }
    }
    let used = bit.div_ceil(8);
    if remaining != 1 || used > src.len() {
        return Err(bad);
    }
    Ok((log, sym, used))
}

/// Builds the decoding table of `norm` (normalized counts summing to
/// `1 << log`, as [`read_counts`] or the predefined ones give) into `t`.
fn build(t: &mut [Cell], norm: &[i16], log: u32, kind: Kind) -> Result<(), Error> {
    let size = 1usize << log;
    let mut syms = [0u8; 512];
    let mut next = [0u16; 256];
    let mut high = size.wrapping_sub(1);
    for (s, &c) in norm.iter().enumerate() {
        let n = next.get_mut(s).ok_or(corrupt("invalid FSE table"))?;
        if c == -1 {
            if let Some(x) = syms.get_mut(high) {
                *x = s as u8;
            }
            high = high.wrapping_sub(1);
            *n = 1;
        } else {
            *n = c.max(0) as u16;
        }
    }
    let step = (size >> 1) + (size >> 3) + 3;
    let mask = size - 1;
    let mut pos = 0usize;
    for (s, &c) in norm.iter().enumerate() {
        for _ in 0..c {
            if let Some(x) = syms.get_mut(pos) {
                *x = s as u8;
            }
            loop {
                pos = (pos + step) & mask;
                if pos <= high {
                    break;
                }
            }
        }
    }
    for (u, &s) in syms.iter().enumerate().take(size) {
        let s = usize::from(s);
        let x = next.get(s).copied().unwrap_or(1).max(1);
        if let Some(n) = next.get_mut(s) {
            *n = x + 1;
        }
        let nb = log.saturating_sub(15 - x.leading_zeros());
        let (base, extra) = kind.value(s).ok_or(corrupt("invalid FSE table"))?;
        if let Some(c) = t.get_mut(u) {
            *c = Cell {
                base,
                next: ((u32::from(x) << nb) as usize).wrapping_sub(size) as u16,
                nb: nb as u8,
                extra,
            };
        }
    }
    Ok(())
}

impl Table {
    const fn new() -> Table {
        Table {
            t: [Cell {
                base: 0,
                next: 0,
                nb: 0,
                extra: 0,
            }; 512],
            log: 0,
            ok: false,
        }
    }

    /// Sets the table up by the mode of the sequences section header from
    /// the description at the start of `src`; returns the bytes used.
    fn setup(&mut self, mode: u8, src: &[u8], kind: Kind) -> Result<usize, Error> {
        let mut norm = [0i16; 256];
        let (log, used, def): (u32, usize, &[i16]) = match mode {
            0 => match kind {
                Kind::LitLen => (6, 0, &LL_DEFAULT),
                Kind::MatchLen => (6, 0, &ML_DEFAULT),
                _ => (5, 0, &OF_DEFAULT),
            },
            1 => {
                let s = usize::from(*src.first().ok_or(Error::Truncated(Z))?);
                let (base, extra) = kind.value(s).ok_or(corrupt("invalid RLE sequence code"))?;
                self.t[0] = Cell {
                    base,
                    next: 0,
                    nb: 0,
                    extra,
                };
                self.log = 0;
                self.ok = true;
                return Ok(1);
            }
            2 => {
                let (log, n, used) = read_counts(src, kind, &mut norm)?;
                (log, used, norm.get(..n).unwrap_or(&[]))
            }
            _ if self.ok => return Ok(0),
            _ => return Err(corrupt("repeated sequence table without a previous one")),
        };
        build(&mut self.t, def, log, kind)?;
        self.log = log;
        self.ok = true;
        Ok(used)
    }
}

/// A Huffman decoding table: entry = symbol | bits << 8, indexed by the
/// next `bits` bits of the stream.
struct Huf {
    t: [u16; 2048],
    bits: u32,
    ok: bool,
}

impl Huf {
    /// Reads a Huffman tree description (RFC 8878 4.2.1) at the start of
    /// `src` and builds the table; returns the bytes used.
    #[inline(never)]
    fn read(&mut self, src: &[u8]) -> Result<usize, Error> {
        let bad = corrupt("invalid Huffman tree");
        let hb = usize::from(*src.first().ok_or(bad)?);
        let mut w = [0u8; 256];
        let mut n = 0usize;
        let used = if hb >= 128 {
            n = hb - 127;
            let d = src.get(1..1 + n.div_ceil(2)).ok_or(bad)?;
            for (i, x) in w.iter_mut().take(n).enumerate() {
                *x = d
                    .get(i / 2)
                    .map_or(0, |b| if i % 2 == 0 { b >> 4 } else { b & 15 });
            }
            1 + d.len()
        } else {
            let d = src.get(1..1 + hb).ok_or(bad)?;
            let mut norm = [0i16; 256];
            let (log, nsym, hl) = read_counts(d, Kind::Weight, &mut norm)?;
            let mut t = [Cell::default(); 64];
            build(&mut t, norm.get(..nsym).unwrap_or(&[]), log, Kind::Weight)?;
            let mut br = Rev::new(d.get(hl..).unwrap_or(&[]))?;
            let mut s = [br.bits(log) as usize, br.bits(log) as usize];
            let mut k = 0;
            loop {
                if n > 253 {
                    return Err(bad);
                }
                let c = t[s[k] & 63];
                w[n] = c.base as u8;
                n += 1;
                s[k] = usize::from(c.next) + br.bits(u32::from(c.nb)) as usize;
                k ^= 1;
                if br.over() {
                    w[n] = t[s[k] & 63].base as u8;
                    n += 1;
                    break;
                }
            }
            1 + d.len()
        };
        // The last weight is implied: it completes a power of two.
        let mut sum = 0u32;
        for &x in &w[..n] {
            if x > 11 {
                return Err(bad);
            }
            if x > 0 {
                sum += 1 << (x - 1);
            }
        }
        if sum == 0 {
            return Err(bad);
        }
        let bits = 32 - sum.leading_zeros();
        let rest = (1u32 << bits) - sum;
        if bits > 11 || !rest.is_power_of_two() {
            return Err(bad);
        }
        *w.get_mut(n).ok_or(bad)? = rest.trailing_zeros() as u8 + 1;
        n += 1;
        // Symbols by weight, then by value; each takes 2^(weight-1) entries.
        let mut start = [0usize; 13];
        for &x in &w[..n] {
            if x > 0 {
                start[usize::from(x) + 1] += 1 << (x - 1);
            }
        }
        for i in 1..13 {
            start[i] += start[i - 1];
        }
        for (s, &x) in w[..n].iter().enumerate() {
            if x > 0 {
                let len = 1usize << (x - 1);
                let p = start[usize::from(x)];
                start[usize::from(x)] += len;
                let e = s as u16 | ((bits + 1 - u32::from(x)) as u16) << 8;
                for i in p..p + len {
                    self.t[i & 2047] = e;
                }
            }
        }
        self.bits = bits;
        self.ok = true;
        Ok(used)
    }

    /// Decodes one Huffman stream that must fill `dst` exactly.
    fn stream(&self, src: &[u8], dst: &mut [u8]) -> Result<(), Error> {
        let mut br = Rev::new(src)?;
        for b in dst.iter_mut() {
            let e = self.t[br.peek(self.bits) as usize & 2047];
            *b = e as u8;
            br.cnt -= u32::from(e >> 8);
        }
        if !br.done() {
            return Err(corrupt("Huffman stream of the wrong length"));
        }
        Ok(())
    }
}

/// The decoder's state across the blocks of a frame.
struct Dec {
    huf: Huf,
    ll: Table,
    of: Table,
    ml: Table,
    rep: [usize; 3],
}

/// Where a frame's blocks go.
struct Frame {
    /// Output position of the frame's first byte.
    start: usize,
    window: u64,
    /// Block_Maximum_Size.
    bmax: usize,
    /// Only count the output (`out` is not written).
    count: bool,
}

impl Dec {
    /// Decodes the literals section at the start of block `b`: regenerated
    /// into the tail of `out` (unless counting). Returns (literal count,
    /// section length).
    #[inline(never)]
    fn literals(
        &mut self,
        b: &[u8],
        out: &mut [u8],
        pos: usize,
        f: &Frame,
    ) -> Result<(usize, usize), Error> {
        let b0 = *b.first().ok_or(corrupt("empty compressed block"))?;
        let ty = b0 & 3;
        let sf = (b0 >> 2) & 3;
        let x = (0..5).fold(0u64, |a, i| {
            a | u64::from(b.get(i).copied().unwrap_or(0)) << (8 * i)
        });
        let (hlen, regen, comp) = if ty < 2 {
            let (hlen, regen) = match sf {
                1 => (2, (x >> 4) & 0xfff),
                3 => (3, (x >> 4) & 0xf_ffff),
                _ => (1, x >> 3 & 31),
            };
            (
                hlen,
                regen as usize,
                if ty == 0 { regen as usize } else { 1 },
            )
        } else {
            let (hlen, w) = match sf {
                0 | 1 => (3, 10),
                2 => (4, 14),
                _ => (5, 18),
            };
            let m = (1u64 << w) - 1;
            (hlen, (x >> 4 & m) as usize, (x >> (4 + w) & m) as usize)
        };
        let content = b
            .get(hlen..hlen + comp)
            .ok_or(corrupt("literals beyond the block"))?;
        if regen > f.bmax {
            return Err(corrupt("literals larger than the block"));
        }
        if ty == 3 && !self.huf.ok {
            return Err(corrupt("treeless literals without a previous tree"));
        }
        if f.count {
            self.huf.ok |= ty == 2;
            return Ok((regen, hlen + comp));
        }
        let free = out.len() - pos.min(out.len());
        if regen > free {
            return Err(Error::OutputTooSmall);
        }
        let len = out.len();
        let lit = &mut out[len - regen..];
        match ty {
            0 => lit.copy_from_slice(content),
            1 => lit.fill(content.first().copied().unwrap_or(0)),
            _ => {
                let mut src = content;
                if ty == 2 {
                    let used = self.huf.read(src)?;
                    src = src.get(used..).unwrap_or(&[]);
                }
                if sf == 0 {
                    self.huf.stream(src, lit)?;
                } else {
                    let bad = corrupt("invalid literal streams");
                    let seg = regen.div_ceil(4);
                    if regen < 3 * seg {
                        return Err(bad);
                    }
                    let (jump, mut src) = src.split_at_checked(6).ok_or(bad)?;
                    let mut lit = lit;
                    for i in 0..4 {
                        let (n, m) = if i < 3 {
                            let n = usize::from(u16::from_le_bytes([jump[2 * i], jump[2 * i + 1]]));
                            (n, seg)
                        } else {
                            (src.len(), lit.len())
                        };
                        let (s, rest) = src.split_at_checked(n).ok_or(bad)?;
                        let (d, more) = lit.split_at_mut(m);
                        self.huf.stream(s, d)?;
                        src = rest;
                        lit = more;
                    }
                }
            }
        }
        Ok((regen, hlen + comp))
    }

    /// Decodes compressed block `b` to `out[pos..]` (or counts it);
    /// returns the new output position.
    #[inline(never)]
    fn block(
        &mut self,
        b: &[u8],
        out: &mut [u8],
        mut pos: usize,
        f: &Frame,
    ) -> Result<usize, Error> {
        let (nlit, used) = self.literals(b, out, pos, f)?;
        let s = b.get(used..).unwrap_or(&[]);
        let h = |i: usize| usize::from(s.get(i).copied().unwrap_or(0));
        let (nseq, mut i) = match h(0) {
            _ if s.is_empty() => return Err(corrupt("missing sequences section")),
            0 => (0, 1),
            b0 @ 1..=127 => (b0, 1),
            b0 @ 128..=254 => (((b0 - 128) << 8) + h(1), 2),
            _ => (h(1) + (h(2) << 8) + 0x7f00, 3),
        };
        let mut lits = nlit;
        let block_start = pos;
        if nseq > 0 {
            let modes = s.get(i).copied().ok_or(Error::Truncated(Z))?;
            if modes & 3 != 0 {
                return Err(corrupt("reserved sequence mode bits set"));
            }
            i += 1;
            let rest = |i: usize| s.get(i..).unwrap_or(&[]);
            i += self.ll.setup(modes >> 6, rest(i), Kind::LitLen)?;
            i += self.of.setup(modes >> 4 & 3, rest(i), Kind::Offset)?;
            i += self.ml.setup(modes >> 2 & 3, rest(i), Kind::MatchLen)?;
            let mut br = Rev::new(rest(i))?;
            let (ll, of, ml) = (&self.ll, &self.of, &self.ml);
            let mut sl = br.bits(ll.log) as usize;
            let mut so = br.bits(of.log) as usize;
            let mut sm = br.bits(ml.log) as usize;
            let rep = &mut self.rep;
            for k in 0..nseq {
                let (l, o, m) = (ll.t[sl & 511], of.t[so & 511], ml.t[sm & 511]);
                let ov = o.base + br.bits(u32::from(o.extra));
                let mlen = (m.base + br.bits(u32::from(m.extra))) as usize;
                let llen = (l.base + br.bits(u32::from(l.extra))) as usize;
                if k + 1 < nseq {
                    sl = usize::from(l.next) + br.bits(u32::from(l.nb)) as usize;
                    sm = usize::from(m.next) + br.bits(u32::from(m.nb)) as usize;
                    so = usize::from(o.next) + br.bits(u32::from(o.nb)) as usize;
                }
                if br.over() {
                    return Err(corrupt("sequences beyond their bitstream"));
                }
                // Repeat offsets (RFC 8878 3.1.1.5).
                let off = if ov > 3 {
                    let off = ov as usize - 3;
                    *rep = [off, rep[0], rep[1]];
                    off
                } else {
                    match ov as usize - 1 + usize::from(llen == 0) {
                        0 => rep[0],
                        1 => {
                            rep.swap(0, 1);
                            rep[0]
                        }
                        2 => {
                            *rep = [rep[2], rep[0], rep[1]];
                            rep[0]
                        }
                        _ => {
                            let off = rep[0].wrapping_sub(1);
                            if off == 0 {
                                return Err(corrupt("zero offset"));
                            }
                            *rep = [off, rep[0], rep[1]];
                            off
                        }
                    }
                };
                if llen > lits {
                    return Err(corrupt("sequence beyond the literals"));
                }
                if !f.count {
                    let lr = out.len() - lits;
                    out.copy_within(lr..lr + llen, pos);
                }
                pos += llen;
                lits -= llen;
                if off > pos - f.start || off as u64 > f.window {
                    return Err(corrupt("offset beyond the window"));
                }
                if pos - block_start + mlen > f.bmax {
                    return Err(corrupt("block larger than its maximum size"));
                }
                if !f.count {
                    if mlen > out.len() - lits - pos {
                        return Err(Error::OutputTooSmall);
                    }
                    copy_match(out, pos, off, mlen);
                }
                pos += mlen;
            }
            if !br.done() {
                return Err(corrupt("sequences bitstream of the wrong length"));
            }
        } else if i != s.len() {
            return Err(corrupt("data after the sequences section"));
        }
        if !f.count {
            let lr = out.len() - lits;
            out.copy_within(lr.., pos);
        }
        pos += lits;
        if pos - block_start > f.bmax {
            return Err(corrupt("block larger than its maximum size"));
        }
        Ok(pos)
    }
}

/// Copies `len` bytes from `off` back to `out[pos..]`, overlapping when
/// `off < len` (the caller checked `0 < off <= pos`, `pos + len` fits).
#[inline(never)]
fn copy_match(out: &mut [u8], pos: usize, off: usize, len: usize) {
    let src = pos - off;
    if off >= len {
        out.copy_within(src..src + len, pos);
    } else {
        // Each copy doubles the repeated pattern available behind `pos`.
        let mut done = 0;
        while done < len {
            let n = (len - done).min(off + done);
            out.copy_within(src..src + n, pos + done);
            done += n;
        }
    }
}

/// XXH64 with seed 0 (the frame content checksum is its low 32 bits).
#[inline(never)]
fn xxh64(d: &[u8]) -> u64 {
    const P1: u64 = 0x9E37_79B1_85EB_CA87;
    const P2: u64 = 0xC2B2_AE3D_27D4_EB4F;
    const P3: u64 = 0x1656_67B1_9E37_79F9;
    const P4: u64 = 0x85EB_CA77_C2B2_AE63;
    const P5: u64 = 0x27D4_EB2F_1656_67C5;
    fn round(acc: u64, x: u64) -> u64 {
        acc.wrapping_add(x.wrapping_mul(P2))
            .rotate_left(31)
            .wrapping_mul(P1)
    }
    let mut chunks = d.chunks_exact(32);
    let mut h = if d.len() >= 32 {
        let mut v = [P1.wrapping_add(P2), P2, 0, P1.wrapping_neg()];
        for c in &mut chunks {
            for (i, v) in v.iter_mut().enumerate() {
                *v = round(*v, le64(c, 8 * i));
            }
        }
        let mut h = v[0]
            .rotate_left(1)
            .wrapping_add(v[1].rotate_left(7))
            .wrapping_add(v[2].rotate_left(12))
            .wrapping_add(v[3].rotate_left(18));
        for v in v {
            h = (h ^ round(0, v)).wrapping_mul(P1).wrapping_add(P4);
        }
        h
    } else {
        P5
    };
    h = h.wrapping_add(d.len() as u64);
    let mut rest = chunks.remainder();
    while rest.len() >= 8 {
        h = (h ^ round(0, le64(rest, 0)))
            .rotate_left(27)
            .wrapping_mul(P1)
            .wrapping_add(P4);
        rest = &rest[8..];
    }
    if rest.len() >= 4 {
        let x = u64::from(le32(rest, 0));
        h = (h ^ x.wrapping_mul(P1))
            .rotate_left(23)
            .wrapping_mul(P2)
            .wrapping_add(P3);
        rest = &rest[4..];
    }
    for &b in rest {
        h = (h ^ u64::from(b).wrapping_mul(P5))
            .rotate_left(11)
            .wrapping_mul(P1);
    }
    h ^= h >> 33;
    h = h.wrapping_mul(P2);
    h ^= h >> 29;
    h = h.wrapping_mul(P3);
    h ^ h >> 32
}

pub(crate) fn decompress_into(data: &[u8], out: &mut [u8]) -> Result<usize, Error> {
    decode(data, out, None)
}

/// The decompressed size of all frames, found by decoding their headers
/// and sequences (literals and matches are counted, not produced; no
/// memory beyond the stack); [`Error::TooLarge`] once it passes `limit`.
/// [`decompress_into`] verifies the checksums and content sizes.
pub(crate) fn measure(data: &[u8], limit: usize) -> Result<usize, Error> {
    decode(data, &mut [], Some(limit))
}

/// Decodes every frame of `data` into `out` (`limit` None: checksums and
/// content sizes verified), or only counts the output (`limit`: where to
/// stop).
#[inline(never)]
fn decode(data: &[u8], out: &mut [u8], limit: Option<usize>) -> Result<usize, Error> {
    let s = scan(data)?;
    let count = limit.is_some();
    if !count && s.total.is_some_and(|t| t > out.len()) {
        return Err(Error::OutputTooSmall);
    }
    let mut dec = Dec {
        huf: Huf {
            t: [0; 2048],
            bits: 0,
            ok: false,
        },
        ll: Table::new(),
        of: Table::new(),
        ml: Table::new(),
        rep: [1, 4, 8],
    };
    let mut ip = 0usize;
    let mut pos = 0usize;
    let mut frames = 0usize;
    let truncated = Error::Truncated(Z);
    while let Some(rest) = data.get(ip..).filter(|r| !r.is_empty()) {
        if frames > 0 && rest.iter().all(|&b| b == 0) {
            break;
        }
        let magic = le32(rest.get(..4).ok_or(truncated)?, 0);
        if is_skippable(magic) {
            let len = le32(rest.get(..8).ok_or(truncated)?, 4) as usize;
            ip = ip.saturating_add(8).saturating_add(len);
            continue;
        }
        if !rest.starts_with(&ZSTD_MAGIC) {
            return Err(corrupt("bad frame magic"));
        }
        let h = frame_header(rest)?;
        if h.dict {
            return Err(Error::Unsupported(Z, "frame needs a dictionary"));
        }
        ip += h.len;
        let f = Frame {
            start: pos,
            window: h.window,
            bmax: h.window.min(MAX_BLOCK as u64) as usize,
            count,
        };
        dec.huf.ok = false;
        dec.ll.ok = false;
        dec.of.ok = false;
        dec.ml.ok = false;
        dec.rep = [1, 4, 8];
        loop {
            let b = data.get(ip..ip + 3).ok_or(truncated)?;
            let b = u32::from(b[0]) | u32::from(b[1]) << 8 | u32::from(b[2]) << 16;
            let size = (b >> 3) as usize;
            ip += 3;
            if size > f.bmax {
                return Err(corrupt("block larger than its maximum size"));
            }
            match (b >> 1) & 3 {
                0 | 1 => {
                    let rle = (b >> 1) & 3 == 1;
                    let src = data
                        .get(ip..ip + if rle { 1 } else { size })
                        .ok_or(truncated)?;
                    if !count {
                        let dst = out.get_mut(pos..pos + size).ok_or(Error::OutputTooSmall)?;
                        match src {
                            [x] if rle => dst.fill(*x),
                            _ => dst.copy_from_slice(src),
                        }
                    }
                    ip += src.len();
                    pos += size;
                }
                2 => {
                    let src = data.get(ip..ip + size).ok_or(truncated)?;
                    pos = dec.block(src, out, pos, &f)?;
                    ip += size;
                }
                _ => return Err(corrupt("reserved block type")),
            }
            if limit.is_some_and(|l| pos > l) {
                return Err(Error::TooLarge(Z));
            }
            if b & 1 != 0 {
                break;
            }
        }
        frames += 1;
        let sum = if h.checksum {
            let c = data.get(ip..ip + 4).ok_or(truncated)?;
            ip += 4;
            Some(le32(c, 0))
        } else {
            None
        };
        if count {
            continue;
        }
        if let Some(expected) = sum {
            let actual = xxh64(out.get(f.start..pos).unwrap_or(&[])) as u32;
            if expected != actual {
                return Err(Error::ZstdChecksumMismatch { expected, actual });
            }
        }
        if h.fcs.is_some_and(|n| n != (pos - f.start) as u64) {
            return Err(corrupt("content size differs from the frame header"));
        }
    }
    if frames == 0 {
        return Err(truncated);
    }
    Ok(pos)
}

#[cfg(test)]
mod tests {
    extern crate std;
    use super::*;
    use std::vec::Vec;

    /// The encoder's side of a backward bitstream: values appended low
    /// bits first, then the end mark; [`Rev`] reads them last first.
    #[derive(Default)]
    struct Writer {
        out: Vec<u8>,
        acc: u64,
        n: u32,
    }

    impl Writer {
        fn put(&mut self, v: u32, n: u32) {
            self.acc |= u64::from(v) << self.n;
            self.n += n;
            while self.n >= 8 {
                self.out.push(self.acc as u8);
                self.acc >>= 8;
                self.n -= 8;
            }
        }

        fn finish(mut self) -> Vec<u8> {
            self.put(1, 1);
            if self.n > 0 {
                self.out.push(self.acc as u8);
            }
            self.out
        }
    }

    #[test]
    fn backward_bits_by_hand() {
        // 0x85 = 1000_0101: the mark, then 000 and 0101; then whole bytes.
        let d = [0x12, 0x34, 0x85];
        let mut r = Rev::new(&d).unwrap();
        assert_eq!(r.bits(3), 0);
        assert_eq!(r.bits(4), 5);
        assert!(!r.done());
        assert_eq!(r.bits(8), 0x34);
        assert_eq!(r.bits(0), 0);
        assert_eq!(r.bits(8), 0x12);
        assert!(r.done() && !r.over());
        assert_eq!(r.bits(5), 0);
        assert!(r.over() && !r.done());
        // Only the mark: nothing to read; no mark at all: refused.
        assert!(Rev::new(&[1]).unwrap().done());
        assert!(Rev::new(&[0x12, 0]).is_err());
        assert!(Rev::new(&[]).is_err());
    }

    #[test]
    fn backward_bits_round_trip() {
        let mut x = 0x9e37_79b9u32;
        let mut vals = Vec::new();
        for _ in 0..5000 {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            let n = x % 33;
            let v = if n == 32 { x } else { x & ((1 << n) - 1) };
            vals.push((
                v.rotate_left(7) & if n == 32 { !0 } else { (1 << n) - 1 },
                n,
            ));
        }
        let mut w = Writer::default();
        for &(v, n) in &vals {
            w.put(v, n);
        }
        let d = w.finish();
        let mut r = Rev::new(&d).unwrap();
        for &(v, n) in vals.iter().rev() {
            assert_eq!(r.bits(n), v);
        }
        assert!(r.done());
    }

    #[test]
    fn forward_bits() {
        let d = [0b1010_1100, 0xff, 0x01];
        assert_eq!(fwd(&d, 0, 4), 0b1100);
        assert_eq!(fwd(&d, 2, 4), 0b1011);
        assert_eq!(fwd(&d, 4, 12), 0xffa);
        assert_eq!(fwd(&d, 16, 8), 1);
        assert_eq!(fwd(&d, 17, 8), 0, "zeros past the end");
    }

    #[test]
    fn fse_description_by_hand() {
        let mut norm = [0i16; 256];
        // Accuracy log 5; 16 (17 in 5 bits); 16 (31 in 5 bits: 31 - max 14).
        assert_eq!(
            read_counts(&[0x10, 0x3f], Kind::Offset, &mut norm),
            Ok((5, 2, 2))
        );
        assert_eq!(&norm[..2], &[16, 16]);
        // -1; 0 and a repeat of 1 (another 0); 31 (63 in 6 bits).
        assert_eq!(
            read_counts(&[0x00, 0x42, 0x3f], Kind::LitLen, &mut norm),
            Ok((5, 4, 3))
        );
        assert_eq!(&norm[..4], &[-1, 0, 0, 31]);
        let mut t = [Cell::default(); 512];
        build(&mut t, &norm[..4], 5, Kind::Weight).unwrap();
        // The "less than 1" symbol takes the last state, with a full reload.
        assert_eq!((t[31].base, t[31].nb, t[31].next), (0, 5, 0));
        let mut nexts: Vec<(u8, u16)> = t[..31].iter().map(|c| (c.nb, c.next)).collect();
        assert!(t[..31].iter().all(|c| c.base == 3));
        nexts.sort();
        let want: Vec<(u8, u16)> = (0..30).map(|n| (0, n)).chain([(1, 30)]).collect();
        assert_eq!(nexts, want);
        // Accuracy log above the kind's limit; counts not summing up; a
        // symbol beyond the alphabet.
        assert!(read_counts(&[0x05], Kind::Offset, &mut norm).is_err());
        assert!(read_counts(&[0x10], Kind::Offset, &mut norm).is_err());
        assert!(read_counts(&[0x00, 0x42, 0x3f], Kind::Weight, &mut norm).is_ok());
    }

    /// Every predefined table: each symbol has as many states as its
    /// count, and every state's successors stay in the table.
    #[test]
    fn predefined_tables() {
        for (def, log, kind) in [
            (&LL_DEFAULT[..], 6, Kind::LitLen),
            (&ML_DEFAULT[..], 6, Kind::MatchLen),
            (&OF_DEFAULT[..], 5, Kind::Offset),
        ] {
            assert_eq!(
                def.iter().map(|&c| i32::from(c.abs())).sum::<i32>(),
                1 << log
            );
            let mut t = [Cell::default(); 512];
            build(&mut t, def, log, kind).unwrap();
            let size = 1usize << log;
            for (s, &c) in def.iter().enumerate() {
                let v = kind.value(s).unwrap();
                let n = t[..size].iter().filter(|c| (c.base, c.extra) == v).count();
                assert_eq!(n as i16, c.max(1), "{s}");
            }
            for c in &t[..size] {
                assert!(usize::from(c.next) + (1 << c.nb) <= size);
            }
        }
        // RFC 8878 Appendix A: the first literal length states.
        let mut t = [Cell::default(); 512];
        build(&mut t, &LL_DEFAULT, 6, Kind::LitLen).unwrap();
        let first: Vec<(u32, u8, u16)> = t[..4].iter().map(|c| (c.base, c.nb, c.next)).collect();
        assert_eq!(first, [(0, 4, 0), (0, 4, 16), (1, 5, 32), (3, 5, 0)]);
        assert_eq!((LL_BASE[35], ML_BASE[52], ML_BASE[43]), (65536, 65539, 131));
    }

    #[test]
    fn huffman_by_hand() {
        // RFC 8878 4.2.1.1's example: weights 4 3 2 0 1 and the implied 1.
        let mut h = Huf {
            t: [0; 2048],
            bits: 0,
            ok: false,
        };
        assert_eq!(h.read(&[127 + 5, 0x43, 0x20, 0x10, 0xaa]), Ok(4));
        assert_eq!(h.bits, 4);
        let want: [(u8, u8); 16] = [
            (4, 4),
            (5, 4),
            (2, 3),
            (2, 3),
            (1, 2),
            (1, 2),
            (1, 2),
            (1, 2),
            (0, 1),
            (0, 1),
            (0, 1),
            (0, 1),
            (0, 1),
            (0, 1),
            (0, 1),
            (0, 1),
        ];
        for (i, &(s, nb)) in want.iter().enumerate() {
            assert_eq!(h.t[i], u16::from(s) | u16::from(nb) << 8, "{i}");
        }
        // Prefix codes 1, 01, 001, 0000, 0001; written last symbol first.
        let code = [(1, 1), (1, 2), (1, 3), (0, 0), (0, 4), (1, 4)];
        let msg = [0u8, 1, 2, 4, 5, 0, 0, 5, 4, 2, 1, 0, 0, 0];
        let mut w = Writer::default();
        for &s in msg.iter().rev() {
            let (c, n) = code[usize::from(s)];
            w.put(c, n);
        }
        let d = w.finish();
        let mut out = [0u8; 14];
        h.stream(&d, &mut out).unwrap();
        assert_eq!(out, msg);
        // One symbol short or over: the stream's length must match.
        assert!(h.stream(&d, &mut [0u8; 13]).is_err());
        assert!(h.stream(&d, &mut [0u8; 15]).is_err());
        // Weights that do not complete a power of two; none at all.
        assert!(h.read(&[127 + 2, 0x31]).is_err());
        assert!(h.read(&[127 + 2, 0x00]).is_err());
    }

    #[test]
    fn xxh64_matches_twox_hash() {
        let d: Vec<u8> = (0..2000u32).map(|i| (i * 7 + i / 13) as u8).collect();
        assert_eq!(xxh64(b""), 0xef46_db37_51d8_e999);
        for n in (0..100).chain([255, 256, 1000, 1999, 2000]) {
            assert_eq!(
                xxh64(&d[..n]),
                twox_hash::XxHash64::oneshot(0, &d[..n]),
                "{n}"
            );
        }
    }
}
