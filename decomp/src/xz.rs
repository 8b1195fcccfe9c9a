//! xz: container parsing (footer, index, block headers) done here without
//! decoding; the LZMA2 data and the checks are decoded by `xz4rust`
//! (a port of xz-embedded) with the dictionary in caller-provided scratch.

use xz4rust::{XzDecoder, XzError, XzNextBlockResult};

use crate::{Error, Format, MAX_OUTPUT, XZ_MAGIC, le32};

const X: Format = Format::Xz;

/// What [`scan`] learns from the container.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Scan {
    /// Sum of the uncompressed sizes of all blocks of all streams.
    pub total: usize,
    /// Largest LZMA2 dictionary any block declares.
    pub max_dict: usize,
}

fn crc32(data: &[u8]) -> u32 {
    // xz4rust's crc32 is private; a small bitwise CRC is plenty for the
    // few header bytes checked here.
    let mut crc = !0u32;
    for &b in data {
        crc ^= u32::from(b);
        for _ in 0..8 {
            crc = (crc >> 1) ^ (0xedb8_8320 & (crc & 1).wrapping_neg());
        }
    }
    !crc
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

/// LZMA2 dictionary size from a block header (xz file format 3.1).
fn block_dict(h: &[u8]) -> Result<u64, Error> {
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
    let filters = usize::from(flags & 3) + 1;
    let body = &h[..size - 4];
    let mut pos = 2usize;
    let bad = || corrupt("malformed block header");
    for present in [flags & 0x40 != 0, flags & 0x80 != 0] {
        if present {
            let (_, n) = vli(body.get(pos..).ok_or_else(bad)?).ok_or_else(bad)?;
            pos += n;
        }
    }
    for i in 0..filters {
        let (id, n) = vli(body.get(pos..).ok_or_else(bad)?).ok_or_else(bad)?;
        pos += n;
        let (psize, n) = vli(body.get(pos..).ok_or_else(bad)?).ok_or_else(bad)?;
        pos += n;
        let psize = usize::try_from(psize).map_err(|_| bad())?;
        let props = body
            .get(pos..)
            .and_then(|p| p.get(..psize))
            .ok_or_else(bad)?;
        pos += psize;
        if i + 1 < filters {
            // delta (3) and the BCJ filters (4..=0x0b) may precede LZMA2.
            if !(3..=0x0b).contains(&id) {
                return Err(Error::Unsupported(X, "filter other than LZMA2, BCJ, delta"));
            }
            continue;
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
        return Ok(u64::from(2 | (p & 1)) << (p / 2 + 11));
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
            max_dict = max_dict.max(block_dict(&data[block..index_start])?);
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
        max_dict: max_dict as usize,
    })
}

fn map_err(e: XzError) -> Error {
    let corrupt = |why| Error::Corrupt(X, why);
    match e {
        XzError::ContentCrc32Mismatch(..) => Error::XzCheckMismatch("CRC32"),
        XzError::ContentCrc64Mismatch(..) => Error::XzCheckMismatch("CRC64"),
        #[cfg(feature = "xz-sha256")]
        #[cfg(feature = "xz-sha256")]
        XzError::ContentSha256Mismatch(..) => Error::XzCheckMismatch("SHA-256"),
        #[cfg(not(feature = "xz-sha256"))]
        XzError::Sha256NotSupported => Error::XzCheckUnsupported(10),
        XzError::UnsupportedCheckType(id) => Error::XzCheckUnsupported(id as u8),
        XzError::DictionaryTooLarge(n) => Error::ScratchTooSmall {
            needed: usize::try_from(n).unwrap_or(usize::MAX),
        },
        XzError::UnsupportedStreamHeaderOption | XzError::UnsupportedBlockHeaderOption => {
            Error::Unsupported(X, "unsupported header option")
        }
        XzError::UnsupportedLzmaProperties(_) | XzError::LzmaPropertiesTooLarge => {
            Error::Unsupported(X, "unsupported LZMA2 properties")
        }
        #[cfg(feature = "xz-filters")]
        XzError::UnsupportedBcjFilter(_) => Error::Unsupported(X, "unsupported BCJ filter"),
        #[cfg(not(feature = "xz-filters"))]
        XzError::DeltaFilterUnsupported => {
            Error::Unsupported(X, "BCJ and delta filters not in this build")
        }
        XzError::StreamHeaderMagicNumberMismatch => corrupt("bad stream header magic"),
        XzError::StreamHeaderCrc32Mismatch(..) => corrupt("stream header CRC32 mismatch"),
        XzError::BlockHeaderCrc32Mismatch(..) => corrupt("block header CRC32 mismatch"),
        XzError::IndexCrc32Mismatch(..) => corrupt("index CRC32 mismatch"),
        XzError::FooterCrc32Mismatch(..) => corrupt("stream footer CRC32 mismatch"),
        XzError::FooterMagicNumberMismatch => corrupt("bad stream footer magic"),
        XzError::FooterCheckTypeMismatch(..) => corrupt("stream header and footer flags differ"),
        XzError::FooterDecoderIndexMismatch(..) | XzError::CorruptedDataInBlockIndex => {
            corrupt("index does not match the blocks")
        }
        XzError::MoreDataInBlockBodyThanHeaderIndicated
        | XzError::LessDataInBlockBodyThanHeaderIndicated
        | XzError::CorruptedCompressedLengthVliInBlockHeader
        | XzError::CorruptedUncompressedLengthVliInBlockHeader => {
            corrupt("block size does not match its header")
        }
        XzError::BlockHeaderTooSmall => corrupt("malformed block header"),
        XzError::LzmaPropertiesInvalid
        | XzError::LzmaPropertiesMissing
        | XzError::LzmaDictionaryResetExcepted => corrupt("invalid LZMA2 chunk header"),
        XzError::DictionaryOverflow => corrupt("LZMA match distance beyond the data"),
        _ => corrupt("invalid LZMA2 data"),
    }
}

pub(crate) fn decompress_into(
    data: &[u8],
    out: &mut [u8],
    scratch: &mut [u8],
) -> Result<usize, Error> {
    // The container walk finds truncation and structural damage up front
    // and tells the exact sizes needed.
    let s = scan(data)?;
    if s.total > out.len() {
        return Err(Error::OutputTooSmall);
    }
    if s.max_dict > scratch.len() {
        return Err(Error::ScratchTooSmall { needed: s.max_dict });
    }
    let mut dec = XzDecoder::with_fixed_size_dict(&mut scratch[..s.max_dict]);
    let mut ipos = 0usize;
    let mut opos = 0usize;
    loop {
        dec.reset();
        loop {
            let input = &data[ipos..];
            if input.is_empty() {
                return Err(Error::Truncated(X));
            }
            let dst = &mut out[opos..];
            let room = dst.len();
            match dec.decode(input, dst) {
                Ok(XzNextBlockResult::NeedMoreData(i, o)) => {
                    ipos += i.min(input.len());
                    opos += o.min(room);
                    if i == 0 && o == 0 {
                        return Err(if room == 0 {
                            Error::OutputTooSmall
                        } else {
                            Error::Truncated(X)
                        });
                    }
                }
                Ok(XzNextBlockResult::EndOfStream(i, o)) => {
                    ipos += i.min(input.len());
                    opos += o.min(room);
                    break;
                }
                Err(XzError::NeedsLargerInputBuffer) => {
                    return Err(if opos == out.len() {
                        Error::OutputTooSmall
                    } else {
                        Error::Truncated(X)
                    });
                }
                Err(e) => return Err(map_err(e)),
            }
        }
        // Stream padding, then either the end or another stream.
        let rest = &data[ipos..];
        let zeros = rest.iter().position(|&b| b != 0).unwrap_or(rest.len());
        if zeros % 4 != 0 {
            return Err(Error::Corrupt(X, "stream padding is not a multiple of 4"));
        }
        ipos += zeros;
        if ipos == data.len() {
            return Ok(opos);
        }
        if !data[ipos..].starts_with(&XZ_MAGIC) {
            return Err(Error::Corrupt(X, "trailing garbage after xz stream"));
        }
    }
}
