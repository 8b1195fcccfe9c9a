//! zstd (RFC 8878): frame and block headers walked here without decoding;
//! blocks decoded by `ruzstd`, which allocates its window and tables.

use ruzstd::decoding::errors::{FrameDecoderError, ReadFrameHeaderError};
use ruzstd::decoding::{BlockDecodingStrategy, FrameDecoder};
use ruzstd::io::Read;

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
    Ok(FrameHeader {
        len,
        fcs,
        checksum: fhd & 0x04 != 0,
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

fn map_err(e: FrameDecoderError) -> Error {
    let corrupt = |why| Error::Corrupt(Z, why);
    match e {
        FrameDecoderError::DictNotProvided { .. } => {
            Error::Unsupported(Z, "frame needs a dictionary")
        }
        FrameDecoderError::WindowSizeTooBig { .. } => {
            Error::Unsupported(Z, "window larger than 128 MiB")
        }
        FrameDecoderError::ReadFrameHeaderError(_)
        | FrameDecoderError::FrameHeaderError(_)
        | FrameDecoderError::FailedToInitialize(_) => corrupt("invalid frame header"),
        FrameDecoderError::FailedToReadBlockHeader(_) => corrupt("invalid block header"),
        FrameDecoderError::FailedToReadBlockBody(_) => corrupt("invalid block data"),
        FrameDecoderError::TargetTooSmall => Error::OutputTooSmall,
        _ => corrupt("invalid frame"),
    }
}

pub(crate) fn decompress_into(data: &[u8], out: &mut [u8]) -> Result<usize, Error> {
    decode(data, out, None)
}

/// The decompressed size of all frames, found by decoding them without
/// keeping the output (memory: the frame's window); [`Error::TooLarge`]
/// once it passes `limit`. [`decompress_into`] verifies the checksums.
pub(crate) fn measure(data: &[u8], limit: usize) -> Result<usize, Error> {
    decode(data, &mut alloc::vec![0u8; 64 * 1024], Some(limit))
}

/// Decodes every frame of `data`: into `out` (`count` None: the checksums
/// and content sizes verified), or, to count the bytes (`count`: the
/// limit), through `out` as a reused chunk.
fn decode(data: &[u8], out: &mut [u8], count: Option<usize>) -> Result<usize, Error> {
    let s = scan(data)?;
    if count.is_none() && s.total.is_some_and(|t| t > out.len()) {
        return Err(Error::OutputTooSmall);
    }
    let mut input = data;
    let mut opos = 0usize;
    let mut frames = 0usize;
    let mut dec = FrameDecoder::new();
    while !input.is_empty() {
        if frames > 0 && input.iter().all(|&b| b == 0) {
            break;
        }
        let header = if input.starts_with(&ZSTD_MAGIC) {
            Some(frame_header(input)?)
        } else {
            None
        };
        match dec.init(&mut input) {
            Ok(()) => {}
            Err(FrameDecoderError::ReadFrameHeaderError(ReadFrameHeaderError::SkipFrame {
                length,
                ..
            })) => {
                input = input.get(length as usize..).ok_or(Error::Truncated(Z))?;
                continue;
            }
            Err(e) => return Err(map_err(e)),
        }
        let Some(header) = header else {
            return Err(Error::Corrupt(Z, "bad frame magic"));
        };
        frames += 1;
        let start = opos;
        loop {
            dec.decode_blocks(&mut input, BlockDecodingStrategy::UptoBytes(1 << 20))
                .map_err(map_err)?;
            loop {
                let dst = match count {
                    None => &mut out[opos..],
                    Some(_) => &mut out[..],
                };
                let room = dst.len();
                let n = dec
                    .read(dst)
                    .map_err(|_| Error::Corrupt(Z, "invalid frame"))?;
                opos += n.min(room);
                match count {
                    Some(limit) if opos > limit => return Err(Error::TooLarge(Z)),
                    Some(_) if n > 0 && dec.can_collect() > 0 => {}
                    Some(_) => break,
                    None if dec.can_collect() > 0 => return Err(Error::OutputTooSmall),
                    None => break,
                }
            }
            if dec.is_finished() {
                break;
            }
            if input.is_empty() {
                return Err(Error::Truncated(Z));
            }
        }
        if count.is_some() {
            continue;
        }
        if let (true, Some(expected), Some(actual)) = (
            header.checksum,
            dec.get_checksum_from_data(),
            dec.get_calculated_checksum(),
        ) {
            if expected != actual {
                return Err(Error::ZstdChecksumMismatch { expected, actual });
            }
        }
        if header.fcs.is_some_and(|f| f != (opos - start) as u64) {
            return Err(Error::Corrupt(
                Z,
                "content size differs from the frame header",
            ));
        }
    }
    if frames == 0 {
        return Err(Error::Truncated(Z));
    }
    Ok(opos)
}
