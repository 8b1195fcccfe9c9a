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

/// Inflate one raw deflate stream, all input given at once: into the start
/// of `out` (`limit` None), or, to count the bytes, through `out` as a ring
/// keeping nothing (a power of two at least the 32 KiB window), with
/// [`Error::TooLarge`] as soon as the output passes `limit`. Returns (input
/// bytes used, output bytes).
fn inflate(input: &[u8], out: &mut [u8], limit: Option<u64>) -> Result<(usize, u64), Error> {
    // About 11 KB of tables; lives on the stack for the call.
    let mut state = DecompressorOxide::new();
    // No HAS_MORE_INPUT: running out of input is an error, not a request
    // for more. Without NON_WRAPPING the output buffer is a ring.
    let flags = match limit {
        None => inflate_flags::TINFL_FLAG_USING_NON_WRAPPING_OUTPUT_BUF,
        Some(_) => 0,
    };
    let (mut used, mut total, mut at) = (0usize, 0u64, 0usize);
    loop {
        let (status, n_in, n_out) = decompress(&mut state, &input[used..], out, at, flags);
        used += n_in;
        total += n_out.min(out.len()) as u64;
        at = (at + n_out) & out.len().wrapping_sub(1);
        match (status, limit) {
            (_, Some(limit)) if total > limit => return Err(Error::TooLarge(G)),
            (TINFLStatus::Done, _) => return Ok((used.min(input.len()), total)),
            (TINFLStatus::HasMoreOutput, None) => return Err(Error::OutputTooSmall),
            (TINFLStatus::HasMoreOutput, Some(_)) => {}
            (TINFLStatus::NeedsMoreInput | TINFLStatus::FailedCannotMakeProgress, _) => {
                return Err(Error::Truncated(G));
            }
            _ => return Err(Error::Corrupt(G, "invalid deflate data")),
        }
    }
}

pub(crate) fn decompress_into(data: &[u8], out: &mut [u8]) -> Result<usize, Error> {
    members(data, out, None)
}

/// The decompressed size of all members, found by inflating them without
/// keeping the output (constant memory); [`Error::TooLarge`] once it
/// passes `limit`. Checks nothing but the structure: [`decompress_into`]
/// verifies the trailers.
pub(crate) fn measure(data: &[u8], limit: usize) -> Result<usize, Error> {
    members(data, &mut [0u8; 32 * 1024], Some(limit as u64))
}

/// Every member of `data`: inflated into `out` with its trailer verified
/// (`limit` None), or counted through `out` as a ring up to `limit`.
fn members(data: &[u8], out: &mut [u8], limit: Option<u64>) -> Result<usize, Error> {
    let mut pos = 0usize;
    let mut opos = 0usize;
    loop {
        let member = &data[pos..];
        let hdr = header(member)?;
        let (dst, left) = match limit {
            None => (&mut out[opos..], None),
            Some(l) => (&mut out[..], Some(l - opos as u64)),
        };
        let (used, written) = inflate(&member[hdr..], dst, left)?;
        let written = written as usize;
        let tpos = hdr + used;
        let trailer = member.get(tpos..tpos + 8).ok_or(Error::Truncated(G))?;
        if limit.is_none() {
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
