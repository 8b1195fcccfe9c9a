//! gzip (RFC 1952) around miniz_oxide's heap-free raw inflate.

use miniz_oxide::inflate::TINFLStatus;
use miniz_oxide::inflate::core::{DecompressorOxide, decompress, inflate_flags};

use crate::{Error, Format, GZIP_MAGIC, MAX_OUTPUT, le32};

const G: Format = Format::Gzip;

const FTEXT: u8 = 1;
const FHCRC: u8 = 2;
const FEXTRA: u8 = 4;
const FNAME: u8 = 8;
const FCOMMENT: u8 = 16;

/// Deflate cannot expand by more than 1032:1 (a 258-byte match per bit pair).
const MAX_RATIO: u64 = 1032;

/// Parse one member header; returns the offset of the deflate data.
fn header(data: &[u8]) -> Result<usize, Error> {
    if data.len() < 10 {
        return Err(Error::Truncated(G));
    }
    if !data.starts_with(&GZIP_MAGIC) {
        return Err(Error::Corrupt(G, "bad member magic"));
    }
    if data[2] != 8 {
        return Err(Error::Unsupported(G, "compression method is not deflate"));
    }
    let flags = data[3];
    if flags & !(FTEXT | FHCRC | FEXTRA | FNAME | FCOMMENT) != 0 {
        return Err(Error::Corrupt(G, "reserved header flag bits set"));
    }
    let mut pos = 10usize;
    if flags & FEXTRA != 0 {
        let x = data.get(pos..pos + 2).ok_or(Error::Truncated(G))?;
        let xlen = usize::from(u16::from_le_bytes([x[0], x[1]]));
        pos += 2;
        if data.len() - pos < xlen {
            return Err(Error::Truncated(G));
        }
        pos += xlen;
    }
    for flag in [FNAME, FCOMMENT] {
        if flags & flag != 0 {
            let nul = data[pos..]
                .iter()
                .position(|&b| b == 0)
                .ok_or(Error::Truncated(G))?;
            pos += nul + 1;
        }
    }
    if flags & FHCRC != 0 {
        let s = data.get(pos..pos + 2).ok_or(Error::Truncated(G))?;
        let stored = u16::from_le_bytes([s[0], s[1]]);
        if stored != crc32fast::hash(&data[..pos]) as u16 {
            return Err(Error::Corrupt(G, "header CRC16 mismatch"));
        }
        pos += 2;
    }
    Ok(pos)
}

pub(crate) fn decompressed_len(data: &[u8]) -> Result<usize, Error> {
    let hdr = header(data)?;
    // At least an empty final block (2 bytes) and the 8-byte trailer.
    if data.len() - hdr < 10 {
        return Err(Error::Truncated(G));
    }
    let isize = le32(data, data.len() - 4);
    let deflate_len = (data.len() - hdr - 8) as u64;
    // ISIZE is only the size mod 2^32 and, in a cut file, arbitrary bytes:
    // reject what cannot be right rather than claim a huge output.
    if isize as usize > MAX_OUTPUT || u64::from(isize) > deflate_len.saturating_mul(MAX_RATIO) {
        return Err(Error::Corrupt(
            G,
            "implausible ISIZE in the trailer (file truncated?)",
        ));
    }
    Ok(isize as usize)
}

/// Inflate one raw deflate stream into the start of `out`; returns
/// (input bytes used, output bytes written).
fn inflate(input: &[u8], out: &mut [u8]) -> Result<(usize, usize), Error> {
    // About 11 KB of tables; lives on the stack for the call.
    let mut state = DecompressorOxide::new();
    // The whole input is given at once (no HAS_MORE_INPUT), so running out
    // of it is reported as an error instead of a request for more.
    let flags = inflate_flags::TINFL_FLAG_USING_NON_WRAPPING_OUTPUT_BUF;
    let (status, used, written) = decompress(&mut state, input, out, 0, flags);
    match status {
        TINFLStatus::Done => Ok((used.min(input.len()), written.min(out.len()))),
        TINFLStatus::HasMoreOutput => Err(Error::OutputTooSmall),
        TINFLStatus::NeedsMoreInput | TINFLStatus::FailedCannotMakeProgress => {
            Err(Error::Truncated(G))
        }
        _ => Err(Error::Corrupt(G, "invalid deflate data")),
    }
}

pub(crate) fn decompress_into(data: &[u8], out: &mut [u8]) -> Result<usize, Error> {
    let mut pos = 0usize;
    let mut opos = 0usize;
    loop {
        let member = &data[pos..];
        let hdr = header(member)?;
        let dst = &mut out[opos..];
        let (used, written) = inflate(&member[hdr..], dst)?;
        let tpos = hdr + used;
        let trailer = member.get(tpos..tpos + 8).ok_or(Error::Truncated(G))?;
        let crc = le32(trailer, 0);
        let isize = le32(trailer, 4);
        let actual = crc32fast::hash(&dst[..written]);
        if crc != actual {
            return Err(Error::GzipCrcMismatch {
                expected: crc,
                actual,
            });
        }
        let actual = written as u32; // modulo 2^32 by definition
        if isize != actual {
            return Err(Error::GzipSizeMismatch {
                expected: isize,
                actual,
            });
        }
        opos += written;
        pos += tpos + 8;
        let rest = &data[pos..];
        if rest.iter().all(|&b| b == 0) {
            return Ok(opos);
        }
        if !rest.starts_with(&GZIP_MAGIC) {
            return Err(Error::Corrupt(G, "trailing garbage after gzip member"));
        }
    }
}

/// Inflate one raw deflate stream through a 32 KiB ring (the deflate
/// window), keeping nothing; returns (input bytes used, output bytes),
/// or [`Error::TooLarge`] as soon as the output passes `limit`.
fn measure_member(input: &[u8], limit: u64) -> Result<(usize, u64), Error> {
    let mut state = DecompressorOxide::new();
    let mut ring = [0u8; 32 * 1024];
    let (mut used, mut total, mut at) = (0usize, 0u64, 0usize);
    loop {
        // No flags: a wrapping output buffer (a power of two at least the
        // window size), raw deflate, all input given at once.
        let (status, n_in, n_out) = decompress(&mut state, &input[used..], &mut ring, at, 0);
        used += n_in;
        total += n_out as u64;
        at = (at + n_out) & (ring.len() - 1);
        if total > limit {
            return Err(Error::TooLarge(G));
        }
        match status {
            TINFLStatus::Done => return Ok((used.min(input.len()), total)),
            TINFLStatus::HasMoreOutput => {}
            TINFLStatus::NeedsMoreInput | TINFLStatus::FailedCannotMakeProgress => {
                return Err(Error::Truncated(G));
            }
            _ => return Err(Error::Corrupt(G, "invalid deflate data")),
        }
    }
}

/// The decompressed size of all members, found by inflating them without
/// keeping the output (constant memory); [`Error::TooLarge`] once it
/// passes `limit`. Checks nothing but the structure: [`decompress_into`]
/// verifies the trailers.
pub(crate) fn measure(data: &[u8], limit: usize) -> Result<usize, Error> {
    let (mut pos, mut total) = (0usize, 0u64);
    loop {
        let member = &data[pos..];
        let hdr = header(member)?;
        let (used, n) = measure_member(&member[hdr..], limit as u64 - total)?;
        total += n;
        let tpos = hdr + used;
        member.get(tpos..tpos + 8).ok_or(Error::Truncated(G))?;
        pos += tpos + 8;
        let rest = &data[pos..];
        if rest.iter().all(|&b| b == 0) {
            return Ok(total as usize);
        }
        if !rest.starts_with(&GZIP_MAGIC) {
            return Err(Error::Corrupt(G, "trailing garbage after gzip member"));
        }
    }
}
