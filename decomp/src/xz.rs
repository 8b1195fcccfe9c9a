//! xz (the .xz file format 1.1.0, tukaani.org/xz/xz-file-format.txt):
//! the container — stream header and footer, block headers, index,
//! padding, integrity checks — and, in [`lzma2`], our own LZMA2 decoder,
//! which writes straight into the output buffer: the output is the
//! dictionary, so no scratch memory is needed. [`filters`] holds the BCJ
//! and delta filters (feature `xz-filters`).
//!
//! CRC32 is crc32fast's (the gzip decoder's too: one table in the binary),
//! CRC64 four bits at a time from a 128-byte table built at compile time, SHA-256 the sha2 crate's
//! (feature `xz-sha256`, host tools only).

#[cfg(feature = "xz-filters")]
mod filters;
mod lzma2;

use crate::{Error, Format, MAX_OUTPUT, XZ_MAGIC, le32};

const X: Format = Format::Xz;

/// What [`scan`] learns from the container.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Scan {
    /// Sum of the uncompressed sizes of all blocks of all streams.
    pub total: usize,
}

fn crc32(data: &[u8]) -> u32 {
    crc32fast::hash(data)
}

/// CRC64 as xz uses it (ECMA-182 polynomial, reflected), four bits at a
/// time: a 128-byte table instead of 2 KiB, still several times faster
/// than LZMA2 decodes (and kernel modules use CRC32 anyway).
const CRC64_TABLE: [u64; 16] = {
    let mut t = [0u64; 16];
    let mut i = 0;
    while i < 16 {
        let mut c = i as u64;
        let mut k = 0;
        while k < 4 {
            c = (c >> 1) ^ (0xc96c_5795_d787_0f42 & (c & 1).wrapping_neg());
            k += 1;
        }
        t[i] = c;
        i += 1;
    }
    t
};

/// CRC64 of `data` continuing from `crc` (0 to start).
fn crc64(crc: u64, data: &[u8]) -> u64 {
    // A static, so the table is in the binary once, not per use.
    static TABLE: [u64; 16] = CRC64_TABLE;
    let mut c = !crc;
    for &b in data {
        c ^= u64::from(b);
        c = TABLE[(c & 15) as usize] ^ (c >> 4);
        c = TABLE[(c & 15) as usize] ^ (c >> 4);
    }
    !c
}

/// Decode a multibyte integer (at most 9 bytes, at most 63 bits, no
/// superfluous trailing zero byte). Returns (value, length).
fn vli(b: &[u8]) -> Option<(u64, usize)> {
    let mut v = 0u64;
    for i in 0..9 {
        let byte = *b.get(i)?;
        v |= u64::from(byte & 0x7f) << (7 * i);
        if byte & 0x80 == 0 {
            if i > 0 && byte == 0 {
                return None;
            }
            return Some((v, i + 1));
        }
    }
    None
}

const fn round4(n: u64) -> u64 {
    (n + 3) & !3
}

/// A filter before LZMA2: its ID and its property (delta distance minus
/// one, or BCJ start offset).
#[derive(Debug, Clone, Copy, Default)]
struct Filter {
    id: u64,
    prop: u32,
}

/// A parsed block header (xz file format 3.1).
#[derive(Debug, Clone, Copy)]
struct BlockHeader {
    /// Header size in bytes (CRC32 included).
    size: usize,
    compressed: Option<u64>,
    uncompressed: Option<u64>,
    /// The LZMA2 dictionary size.
    dict: u64,
    /// The filters before LZMA2, in encoding order.
    #[cfg_attr(not(feature = "xz-filters"), allow(dead_code))]
    filters: [Filter; 3],
    nfilters: usize,
}

/// Parse and check the block header at the start of `h`.
fn block_header(h: &[u8]) -> Result<BlockHeader, Error> {
    let corrupt = |why| Error::Corrupt(X, why);
    let first = *h.first().ok_or(Error::Truncated(X))?;
    if first == 0 {
        return Err(corrupt("index found where a block header was expected"));
    }
    let size = (usize::from(first) + 1) * 4;
    let h = h.get(..size).ok_or(Error::Truncated(X))?;
    if crc32(&h[..size - 4]) != le32(h, size - 4) {
        return Err(corrupt("block header CRC32 mismatch"));
    }
    let flags = h[1];
    if flags & 0x3c != 0 {
        return Err(Error::Unsupported(X, "reserved block header flags set"));
    }
    let count = usize::from(flags & 3) + 1;
    let body = &h[..size - 4];
    let mut pos = 2usize;
    let bad = || corrupt("malformed block header");
    let next = |pos: &mut usize| -> Result<u64, Error> {
        let (v, n) = vli(body.get(*pos..).ok_or_else(bad)?).ok_or_else(bad)?;
        *pos += n;
        Ok(v)
    };
    let mut sizes = [None, None];
    for (i, bit) in [0x40u8, 0x80].into_iter().enumerate() {
        if flags & bit != 0 {
            sizes[i] = Some(next(&mut pos)?);
        }
    }
    let mut filters = [Filter::default(); 3];
    for i in 0..count {
        let id = next(&mut pos)?;
        let psize = usize::try_from(next(&mut pos)?).map_err(|_| bad())?;
        let props = body
            .get(pos..)
            .and_then(|p| p.get(..psize))
            .ok_or_else(bad)?;
        pos += psize;
        if let Some(f) = filters.get_mut(i) {
            if i + 1 < count {
                // delta (3) and the BCJ filters (4..=0x0b) may precede LZMA2.
                if !(3..=0x0b).contains(&id) {
                    return Err(Error::Unsupported(X, "filter other than LZMA2, BCJ, delta"));
                }
                f.id = id;
                f.prop = match (id, props) {
                    (3, &[d]) => u32::from(d),
                    (4.., &[]) => 0,
                    (4.., &[a, b, c, d]) => u32::from_le_bytes([a, b, c, d]),
                    _ => return Err(Error::Unsupported(X, "unsupported filter properties")),
                };
                continue;
            }
        }
        if id != 0x21 {
            return Err(Error::Unsupported(X, "last filter is not LZMA2"));
        }
        let &[p] = props else {
            return Err(bad());
        };
        if p > 39 {
            return Err(Error::Unsupported(X, "LZMA2 dictionary larger than 3 GiB"));
        }
        // Header padding: zeros up to the CRC32.
        if body[pos..].iter().any(|&b| b != 0) {
            return Err(Error::Unsupported(X, "unsupported header option"));
        }
        return Ok(BlockHeader {
            size,
            compressed: sizes[0],
            uncompressed: sizes[1],
            dict: u64::from(2 | (p & 1)) << (p / 2 + 11),
            filters,
            nfilters: count - 1,
        });
    }
    Err(bad())
}

/// Walk every stream from the end of the file: footer, index, stream
/// header, each block header. Checks the structure and CRC32s and sums the
/// uncompressed sizes. Linear in the input, no allocation.
pub(crate) fn scan(data: &[u8]) -> Result<Scan, Error> {
    let corrupt = |why| Error::Corrupt(X, why);
    let mut end = data.len();
    let mut total = 0u64;
    let mut max_dict = 0u64;
    loop {
        // Stream padding: groups of four NUL bytes.
        while end >= 4 && data[end - 4..end] == [0; 4] {
            end -= 4;
        }
        if end < 24 {
            return Err(Error::Truncated(X));
        }
        let footer = &data[end - 12..end];
        if footer[10..12] != *b"YZ" {
            // The file does not end in a stream footer: cut short.
            return Err(Error::Truncated(X));
        }
        if crc32(&footer[4..10]) != le32(footer, 0) {
            return Err(corrupt("stream footer CRC32 mismatch"));
        }
        let flags = [footer[8], footer[9]];
        let index_size = (u64::from(le32(footer, 4)) + 1) * 4;
        let index_end = end - 12;
        let index_start = usize::try_from(index_size)
            .ok()
            .and_then(|s| index_end.checked_sub(s))
            .ok_or(corrupt("index larger than the file"))?;
        let index = &data[index_start..index_end];
        if index.len() < 8 {
            return Err(corrupt("index too small"));
        }
        // Index: indicator 0, record count, (unpadded, uncompressed) pairs,
        // zero padding to a multiple of four, CRC32.
        if index[0] != 0 {
            return Err(corrupt("bad index indicator"));
        }
        let body = &index[..index.len() - 4];
        if crc32(body) != le32(index, index.len() - 4) {
            return Err(corrupt("index CRC32 mismatch"));
        }
        let bad_index = || corrupt("malformed index");
        let (count, n) = vli(&body[1..]).ok_or_else(bad_index)?;
        let mut pos = 1 + n;
        let records_start = pos;
        let mut blocks = 0u64;
        let mut stream_total = 0u64;
        for _ in 0..count {
            let (unpadded, n) =
                vli(body.get(pos..).ok_or_else(bad_index)?).ok_or_else(bad_index)?;
            pos += n;
            let (uncompressed, n) =
                vli(body.get(pos..).ok_or_else(bad_index)?).ok_or_else(bad_index)?;
            pos += n;
            if unpadded < 5 {
                return Err(bad_index());
            }
            blocks = blocks
                .checked_add(round4(unpadded))
                .filter(|&b| b <= data.len() as u64)
                .ok_or_else(|| corrupt("index describes more data than the file holds"))?;
            stream_total = stream_total.saturating_add(uncompressed);
        }
        // Padding must bring the index to exactly its declared size.
        if round4(pos as u64) != body.len() as u64 || body[pos..].iter().any(|&b| b != 0) {
            return Err(bad_index());
        }
        let stream_start = (index_start as u64)
            .checked_sub(blocks + 12)
            .ok_or_else(|| corrupt("index describes more data than the file holds"))?
            as usize;
        let header = &data[stream_start..stream_start + 12];
        if header[..6] != XZ_MAGIC {
            return Err(corrupt("stream header not where the index says"));
        }
        if crc32(&header[6..8]) != le32(header, 8) {
            return Err(corrupt("stream header CRC32 mismatch"));
        }
        if header[6..8] != flags {
            return Err(corrupt("stream header and footer flags differ"));
        }
        if flags[0] != 0 || flags[1] & 0xf0 != 0 {
            return Err(Error::Unsupported(X, "reserved stream flags set"));
        }
        let check = flags[1] & 0x0f;
        let sha256 = cfg!(feature = "xz-sha256");
        if !(matches!(check, 0 | 1 | 4) || check == 10 && sha256) {
            return Err(Error::XzCheckUnsupported(check));
        }
        // Second pass over the records: each block header's dictionary.
        let mut pos = records_start;
        let mut block = stream_start + 12;
        for _ in 0..count {
            let (unpadded, n) = vli(&body[pos..]).ok_or_else(bad_index)?;
            pos += n;
            let (_, n) = vli(&body[pos..]).ok_or_else(bad_index)?;
            pos += n;
            max_dict = max_dict.max(block_header(&data[block..index_start])?.dict);
            block += round4(unpadded) as usize;
        }
        total = total.saturating_add(stream_total);
        if total > MAX_OUTPUT as u64 {
            return Err(Error::TooLarge(X));
        }
        if max_dict > MAX_OUTPUT as u64 {
            return Err(Error::Unsupported(
                X,
                "LZMA2 dictionary larger than 256 MiB",
            ));
        }
        end = stream_start;
        if end == 0 {
            break;
        }
    }
    Ok(Scan {
        total: total as usize,
    })
}

/// Verify a block's integrity check (`check`: the check ID) over `data`.
#[inline(never)]
fn verify(check: u8, data: &[u8], value: &[u8]) -> Result<(), Error> {
    let ok = match check {
        0 => true,
        1 => value == crc32(data).to_le_bytes(),
        4 => value == crc64(0, data).to_le_bytes(),
        #[cfg(feature = "xz-sha256")]
        10 => {
            use sha2::Digest;
            value == sha2::Sha256::digest(data).as_slice()
        }
        _ => return Err(Error::XzCheckUnsupported(check)),
    };
    if ok {
        return Ok(());
    }
    Err(Error::XzCheckMismatch(match check {
        1 => "CRC32",
        4 => "CRC64",
        _ => "SHA-256",
    }))
}

/// The blocks' (unpadded size, uncompressed size) records, summed up as
/// they are decoded and again as the index lists them: equal counts, sums
/// and CRC64 of the records mean the index describes the blocks (the
/// approach of xz-embedded; no memory per block). (CRC64, not crc32fast's
/// Hasher: its streaming state keeps the SIMD code in the static binary.)
#[derive(Clone, Copy, PartialEq, Eq)]
struct Records {
    count: u64,
    sums: [u64; 2],
    crc: u64,
}

impl Records {
    fn new() -> Self {
        Records {
            count: 0,
            sums: [0; 2],
            crc: 0,
        }
    }

    fn add(&mut self, unpadded: u64, uncompressed: u64) {
        self.count += 1;
        self.sums[0] = self.sums[0].wrapping_add(unpadded);
        self.sums[1] = self.sums[1].wrapping_add(uncompressed);
        self.crc = crc64(self.crc, &unpadded.to_le_bytes());
        self.crc = crc64(self.crc, &uncompressed.to_le_bytes());
    }
}

/// Decode one block whose header starts at `data[ip]` into `out[op..]`;
/// returns (input end, output end, its record).
#[inline(never)]
fn block(
    lz: &mut lzma2::Lzma,
    data: &[u8],
    ip: usize,
    out: &mut [u8],
    op: usize,
    check: u8,
) -> Result<(usize, usize, u64), Error> {
    let corrupt = |why| Error::Corrupt(X, why);
    let size_mismatch = corrupt("block size does not match its header");
    let h = block_header(data.get(ip..).ok_or(Error::Truncated(X))?)?;
    #[cfg(not(feature = "xz-filters"))]
    if h.nfilters > 0 {
        return Err(Error::Unsupported(
            X,
            "BCJ and delta filters not in this build",
        ));
    }
    let start = ip;
    let ip = ip + h.size;
    // Output room: the header's size if it says, else the buffer (which
    // holds what the index promises; more is the index's lie).
    let limit = match h.uncompressed {
        Some(u) => usize::try_from(u)
            .ok()
            .and_then(|u| op.checked_add(u))
            .filter(|&l| l <= out.len())
            .ok_or(corrupt("index does not match the blocks"))?,
        None => out.len(),
    };
    let input = match h.compressed {
        Some(c) => {
            let c = usize::try_from(c).map_err(|_| Error::Truncated(X))?;
            data.get(ip..)
                .and_then(|d| d.get(..c))
                .ok_or(Error::Truncated(X))?
        }
        None => data.get(ip..).ok_or(Error::Truncated(X))?,
    };
    let dict = usize::try_from(h.dict).unwrap_or(usize::MAX);
    let d = match lzma2::decode(lz, input, out, op, limit, dict) {
        Err(Error::OutputTooSmall) if h.uncompressed.is_some() => return Err(size_mismatch),
        Err(Error::OutputTooSmall) => return Err(corrupt("index does not match the blocks")),
        r => r?,
    };
    if h.compressed.is_some_and(|c| c != d.input as u64)
        || h.uncompressed.is_some_and(|u| u != (d.end - op) as u64)
    {
        return Err(size_mismatch);
    }
    // Unpadded size: header, compressed data, check (not the padding).
    let unpadded = (h.size + d.input) as u64;
    let mut ip = ip + d.input;
    // Block padding: zeros to a multiple of four.
    while (ip - start) % 4 != 0 {
        match data.get(ip) {
            Some(0) => ip += 1,
            Some(_) => return Err(corrupt("nonzero block padding")),
            None => return Err(Error::Truncated(X)),
        }
    }
    let decoded = out.get_mut(op..d.end).ok_or(Error::OutputTooSmall)?;
    #[cfg(feature = "xz-filters")]
    for f in h.filters[..h.nfilters.min(3)].iter().rev() {
        filters::apply(f.id, f.prop, decoded)?;
    }
    let check_size = match check {
        0 => 0,
        1 => 4,
        4 => 8,
        _ => 32,
    };
    let value = data.get(ip..ip + check_size).ok_or(Error::Truncated(X))?;
    verify(check, decoded, value)?;
    Ok((ip + check_size, d.end, unpadded + check_size as u64))
}

/// Decode the stream at `data[ip..]` into `out[op..]`; returns the input
/// and output positions after it.
#[inline(never)]
fn stream(
    lz: &mut lzma2::Lzma,
    data: &[u8],
    ip: usize,
    out: &mut [u8],
    op: usize,
) -> Result<(usize, usize), Error> {
    let corrupt = |why| Error::Corrupt(X, why);
    let header = data.get(ip..ip + 12).ok_or(Error::Truncated(X))?;
    if header[..6] != XZ_MAGIC {
        return Err(corrupt("bad stream header magic"));
    }
    if crc32(&header[6..8]) != le32(header, 8) {
        return Err(corrupt("stream header CRC32 mismatch"));
    }
    let flags = [header[6], header[7]];
    if flags[0] != 0 || flags[1] & 0xf0 != 0 {
        return Err(Error::Unsupported(X, "reserved stream flags set"));
    }
    let check = flags[1];
    if !(matches!(check, 0 | 1 | 4) || check == 10 && cfg!(feature = "xz-sha256")) {
        return Err(Error::XzCheckUnsupported(check));
    }
    let (mut ip, mut op) = (ip + 12, op);
    let mut blocks = Records::new();
    while data.get(ip).ok_or(Error::Truncated(X))? != &0 {
        let (i, o, unpadded) = block(lz, data, ip, out, op, check)?;
        blocks.add(unpadded, (o - op) as u64);
        (ip, op) = (i, o);
    }
    // Index: indicator 0, count, records, padding, CRC32.
    let bad_index = || corrupt("malformed index");
    let index_start = ip;
    let mut pos = ip + 1;
    let next = |pos: &mut usize| -> Result<u64, Error> {
        let (v, n) = vli(data.get(*pos..).ok_or(Error::Truncated(X))?).ok_or_else(bad_index)?;
        *pos += n;
        Ok(v)
    };
    let count = next(&mut pos)?;
    if count != blocks.count {
        return Err(corrupt("index does not match the blocks"));
    }
    let mut listed = Records::new();
    for _ in 0..count {
        let unpadded = next(&mut pos)?;
        let uncompressed = next(&mut pos)?;
        listed.add(unpadded, uncompressed);
    }
    if listed != blocks {
        return Err(corrupt("index does not match the blocks"));
    }
    while (pos - index_start) % 4 != 0 {
        match data.get(pos) {
            Some(0) => pos += 1,
            Some(_) => return Err(bad_index()),
            None => return Err(Error::Truncated(X)),
        }
    }
    let crc = data.get(pos..pos + 4).ok_or(Error::Truncated(X))?;
    if crc32(&data[index_start..pos]) != le32(crc, 0) {
        return Err(corrupt("index CRC32 mismatch"));
    }
    let index_size = pos + 4 - index_start;
    // Footer: CRC32, backward size, flags, "YZ".
    let footer = data.get(pos + 4..pos + 16).ok_or(Error::Truncated(X))?;
    if footer[10..12] != *b"YZ" {
        return Err(corrupt("bad stream footer magic"));
    }
    if crc32(&footer[4..10]) != le32(footer, 0) {
        return Err(corrupt("stream footer CRC32 mismatch"));
    }
    if footer[8..10] != flags {
        return Err(corrupt("stream header and footer flags differ"));
    }
    if (u64::from(le32(footer, 4)) + 1) * 4 != index_size as u64 {
        return Err(corrupt("index size does not match the footer"));
    }
    Ok((pos + 16, op))
}

pub(crate) fn decompress_into(data: &[u8], out: &mut [u8]) -> Result<usize, Error> {
    // The container walk finds truncation and structural damage up front
    // and tells the exact size needed.
    let s = scan(data)?;
    if s.total > out.len() {
        return Err(Error::OutputTooSmall);
    }
    // The LZMA model's probabilities (about 30 KiB) live on the stack.
    let mut lz = lzma2::Lzma::new();
    let mut ipos = 0usize;
    let mut opos = 0usize;
    loop {
        (ipos, opos) = stream(&mut lz, data, ipos, out, opos)?;
        // Stream padding, then either the end or another stream.
        let rest = data.get(ipos..).unwrap_or(&[]);
        let zeros = rest.iter().position(|&b| b != 0).unwrap_or(rest.len());
        if zeros % 4 != 0 {
            return Err(Error::Corrupt(X, "stream padding is not a multiple of 4"));
        }
        ipos += zeros;
        if ipos >= data.len() {
            return Ok(opos);
        }
        if !data[ipos..].starts_with(&XZ_MAGIC) {
            return Err(Error::Corrupt(X, "trailing garbage after xz stream"));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crc64_known_vectors() {
        assert_eq!(crc64(0, b"123456789"), 0x995d_c9bb_df19_39fa);
        assert_eq!(crc64(crc64(0, b"1234"), b"56789"), 0x995d_c9bb_df19_39fa);
        assert_eq!(crc64(0, b""), 0);
        assert_eq!(crc32(b"123456789"), 0xcbf4_3926);
    }

    #[test]
    fn vli_encoding() {
        assert_eq!(vli(&[0]), Some((0, 1)));
        assert_eq!(vli(&[0x7f, 0xff]), Some((0x7f, 1)));
        assert_eq!(vli(&[0x80, 0x01]), Some((0x80, 2)));
        assert_eq!(vli(&[0xff, 0xff, 0x03]), Some((0xffff, 3)));
        // A superfluous zero byte, a truncated value, more than 63 bits.
        assert_eq!(vli(&[0x80, 0x00]), None);
        assert_eq!(vli(&[0x80]), None);
        assert_eq!(vli(&[0xff; 9]), None);
        assert_eq!(
            vli(&[0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f]),
            Some((u64::MAX >> 1, 9))
        );
    }
}
