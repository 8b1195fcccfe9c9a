//! Decompression of Linux kernel modules (`.ko.gz`, `.ko.xz`, `.ko.zst`)
//! for an early-boot loader that decodes in userspace and hands the image to
//! `init_module(2)`.
//!
//! `#![no_std]`. The intended use is two calls, neither of which allocates:
//!
//! 1. [`decompressed_len`] reads the exact output size from the container
//!    (gzip ISIZE, the xz index, the zstd frame content size) without
//!    decoding ([`measure`] finds it by decoding when the container does not
//!    record it);
//! 2. [`decompress_into`] decodes into the caller's buffer — typically an
//!    anonymous `mmap` of exactly that size — and verifies every check the
//!    format carries (gzip CRC32 + ISIZE, xz CRC32/CRC64/SHA-256 and index,
//!    zstd content checksum and content size).
//!
//! No decoder needs memory besides the output: the xz decoder uses it as
//! its LZMA2 dictionary and zstd as its window; their tables are on the
//! stack. Only the `alloc` conveniences allocate.
//!
//! Every function is total: malformed input gives an [`Error`], never a
//! panic, in time linear in the input and output, and no output beyond
//! [`MAX_OUTPUT`] is ever produced. [`decompress_to_vec`] (and
//! [`measure`]) never hold more memory than the true decompressed size,
//! whatever the container claims.
#![no_std]
#![deny(missing_docs)]
#![forbid(unsafe_code)]

#[cfg(feature = "alloc")]
extern crate alloc;

use core::fmt;
use earlymod_core::put;
use earlymod_core::text::{self, Hex, Piece, Sink};

#[cfg(feature = "gzip")]
mod gzip;
#[cfg(feature = "xz")]
mod xz;
#[cfg(feature = "zstd")]
mod zstd;

/// Largest decompressed size ever produced, and largest input accepted
/// (256 MiB). The largest Debian module, amdgpu, is 27.9 MiB decompressed
/// (6.12, `xz -l`) and 18.5 MiB (6.1, a plain `.ko`): nine times that is
/// room for growth; anything beyond is a decompression bomb or garbage.
/// Refusing it keeps time and memory bounded: a sparse 2 GiB "module" is
/// refused without reading it, a stream whose header records more is
/// refused before decoding, and one that records nothing (or lies) is
/// [`measure`]d in constant memory and refused after at most this much
/// decoding.
pub const MAX_OUTPUT: usize = 256 << 20;

/// gzip magic (RFC 1952 ID1 ID2).
pub const GZIP_MAGIC: [u8; 2] = [0x1f, 0x8b];
/// xz stream header magic.
pub const XZ_MAGIC: [u8; 6] = [0xfd, b'7', b'z', b'X', b'Z', 0x00];
/// zstd frame magic (0xFD2FB528 little-endian).
pub const ZSTD_MAGIC: [u8; 4] = [0x28, 0xb5, 0x2f, 0xfd];

/// A compression format, as told by its magic number.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Format {
    /// gzip (RFC 1952), `.ko.gz`.
    Gzip,
    /// xz (LZMA2), `.ko.xz`.
    Xz,
    /// zstd (RFC 8878), `.ko.zst`.
    Zstd,
}

impl Format {
    /// Lower-case name, as `/sys/module/compression` spells it.
    pub const fn name(self) -> &'static str {
        match self {
            Format::Gzip => "gzip",
            Format::Xz => "xz",
            Format::Zstd => "zstd",
        }
    }

    /// Whether this build can decode the format.
    pub const fn enabled(self) -> bool {
        match self {
            Format::Gzip => cfg!(feature = "gzip"),
            Format::Xz => cfg!(feature = "xz"),
            Format::Zstd => cfg!(feature = "zstd"),
        }
    }
}

impl Piece for Format {
    fn put_to(&self, out: &mut dyn Sink) {
        out.put(self.name().as_bytes());
    }
}

impl fmt::Display for Format {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Identify the compression format of `data` by its magic number; `None`
/// for anything else (an ELF module, garbage, or too short to tell).
pub fn detect(data: &[u8]) -> Option<Format> {
    if data.starts_with(&XZ_MAGIC) {
        Some(Format::Xz)
    } else if data.starts_with(&ZSTD_MAGIC) {
        Some(Format::Zstd)
    } else if data.starts_with(&GZIP_MAGIC) {
        Some(Format::Gzip)
    } else {
        None
    }
}

/// Why data could not be sized or decompressed. [`Piece`] (and `Display`,
/// through it) gives the reason in words.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Error {
    /// No gzip, xz or zstd magic at the start of the data.
    NotCompressed,
    /// The format was recognised but its decoder is not compiled in.
    Disabled(Format),
    /// The input ends before the stream does.
    Truncated(Format),
    /// The stream is malformed; the string says how.
    Corrupt(Format, &'static str),
    /// The stream is well formed but uses a feature this decoder lacks.
    Unsupported(Format, &'static str),
    /// The gzip trailer's CRC32 does not match the decompressed data.
    GzipCrcMismatch {
        /// The trailer's CRC32.
        expected: u32,
        /// The CRC32 of the decoded data.
        actual: u32,
    },
    /// The gzip trailer's ISIZE does not match the decompressed length.
    GzipSizeMismatch {
        /// The trailer's ISIZE (the length modulo 2^32).
        expected: u32,
        /// The decoded length modulo 2^32.
        actual: u32,
    },
    /// The xz stream's integrity check type is not one of none, CRC32,
    /// CRC64, SHA-256 (SHA-256 only with the `xz-sha256` feature).
    XzCheckUnsupported(u8),
    /// An xz block's integrity check does not match its data; the string
    /// names the check ("CRC32", "CRC64", "SHA-256").
    XzCheckMismatch(&'static str),
    /// The zstd frame's content checksum (low 32 bits of XXH64) differs.
    ZstdChecksumMismatch {
        /// The frame's checksum field.
        expected: u32,
        /// The low 32 bits of the decoded data's XXH64.
        actual: u32,
    },
    /// A zstd frame does not record its content size, so
    /// [`decompressed_len`] cannot tell; decode into a growing buffer
    /// instead (see `decompress_to_vec` with the `alloc` feature).
    UnknownSize(Format),
    /// The output buffer cannot hold the decompressed data.
    OutputTooSmall,
    /// The data decompresses (or claims to) to more than [`MAX_OUTPUT`].
    TooLarge(Format),
    /// The compressed file itself is larger than [`MAX_OUTPUT`].
    InputTooLarge(Format),
}

impl Piece for Error {
    fn put_to(&self, out: &mut dyn Sink) {
        const MIB: usize = MAX_OUTPUT >> 20;
        match *self {
            Error::NotCompressed => put!(out; "not a gzip, xz or zstd stream"),
            Error::Disabled(c) => put!(out; c, " support is not compiled in"),
            Error::Truncated(c) => put!(out; "truncated ", c, " stream"),
            Error::Corrupt(Format::Zstd, why) => put!(out; "corrupt zstd frame: ", why),
            Error::Corrupt(c, why) => put!(out; "corrupt ", c, " stream: ", why),
            Error::Unsupported(c, why) => put!(out; "unsupported ", c, " stream: ", why),
            Error::GzipCrcMismatch { expected, actual } => put!(out;
                "gzip CRC32 mismatch (trailer says ", Hex(expected.into(), 8),
                ", data has ", Hex(actual.into(), 8), ")"
            ),
            Error::GzipSizeMismatch { expected, actual } => put!(out;
                "gzip size mismatch (trailer says ", expected,
                " bytes mod 2^32, data has ", actual, ")"
            ),
            Error::XzCheckUnsupported(id) => {
                put!(out; "xz check type unsupported (check ID ", id, ")")
            }
            Error::XzCheckMismatch(name) => put!(out; "xz ", name, " check mismatch"),
            Error::ZstdChecksumMismatch { expected, actual } => put!(out;
                "zstd content checksum mismatch (frame says ", Hex(expected.into(), 8),
                ", data has ", Hex(actual.into(), 8), ")"
            ),
            Error::UnknownSize(c) => {
                put!(out; c, " stream does not record its decompressed size")
            }
            Error::OutputTooSmall => put!(out; "output buffer too small"),
            Error::TooLarge(c) => put!(out; c, " stream decompresses to more than ", MIB, " MiB"),
            Error::InputTooLarge(c) => {
                put!(out; c, " file larger than ", MIB, " MiB: not a kernel module")
            }
        }
    }
}

/// The reason in words: what [`Piece::put_to`] writes.
impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        text::display(self, f)
    }
}

impl core::error::Error for Error {}

fn identify(data: &[u8]) -> Result<Format, Error> {
    let c = detect(data).ok_or(Error::NotCompressed)?;
    if !c.enabled() {
        Err(Error::Disabled(c))
    } else if data.len() > MAX_OUTPUT {
        Err(Error::InputTooLarge(c))
    } else {
        Ok(c)
    }
}

/// The exact decompressed size of `data`, read from the container without
/// decoding (and without allocating).
///
/// - gzip: the last member's ISIZE. Exact for the single-member files every
///   module tool writes; for concatenated members it is only the last
///   member's size, and [`decompress_into`] then reports
///   [`Error::OutputTooSmall`]. An ISIZE above [`MAX_OUTPUT`] or beyond what
///   the deflate data could possibly expand to is reported as
///   [`Error::Corrupt`] (a truncated file ends in arbitrary bytes).
/// - xz: every stream's footer and index are parsed and checked (CRC32,
///   structure), and the uncompressed sizes of all blocks are summed.
/// - zstd: every frame's header and block headers are walked and the
///   Frame_Content_Size fields summed; a frame without one gives
///   [`Error::UnknownSize`].
///
/// A truncated xz or zstd file is usually already detected here.
pub fn decompressed_len(data: &[u8]) -> Result<usize, Error> {
    match identify(data)? {
        #[cfg(feature = "gzip")]
        Format::Gzip => gzip::decompressed_len(data),
        #[cfg(feature = "xz")]
        Format::Xz => xz::scan(data).map(|s| s.total),
        #[cfg(feature = "zstd")]
        Format::Zstd => zstd::scan(data)?
            .total
            .ok_or(Error::UnknownSize(Format::Zstd)),
        #[allow(unreachable_patterns)]
        c => Err(Error::Disabled(c)),
    }
}

/// Decompress `data` into `out`, returning the number of bytes written.
///
/// All members / streams / frames are decoded and concatenated; zero
/// padding after the last one is accepted, anything else is not. Every
/// integrity check present in the data is verified. Bytes of `out` past
/// the returned length may have been written (zstd regenerates literals
/// there). Fails with [`Error::OutputTooSmall`] if `out` is too short,
/// [`Error::TooLarge`] if more than [`MAX_OUTPUT`] bytes would be needed.
pub fn decompress_into(data: &[u8], out: &mut [u8]) -> Result<usize, Error> {
    let c = identify(data)?;
    let limit = out.len().min(MAX_OUTPUT);
    let capped = out.len() > MAX_OUTPUT;
    let out = &mut out[..limit];
    let _ = &out;
    let r = match c {
        #[cfg(feature = "gzip")]
        Format::Gzip => gzip::decompress_into(data, out),
        #[cfg(feature = "xz")]
        Format::Xz => xz::decompress_into(data, out),
        #[cfg(feature = "zstd")]
        Format::Zstd => zstd::decompress_into(data, out),
        #[allow(unreachable_patterns)]
        c => Err(Error::Disabled(c)),
    };
    match r {
        Err(Error::OutputTooSmall) if capped => Err(Error::TooLarge(c)),
        r => r,
    }
}

/// The exact decompressed size of `data`, found by decoding it without
/// keeping the output (memory: 32 KiB of window for gzip; zstd only
/// decodes its sequences, counting literals and matches), for streams that do not record their size or
/// record it wrongly. [`Error::TooLarge`] as soon as the output passes
/// `limit` (capped at [`MAX_OUTPUT`]), so a decompression bomb costs at most
/// that much decoding time and no memory. xz records every block's size in
/// its index (checked while decoding): this is [`decompressed_len`].
/// Integrity checks are left to [`decompress_into`].
pub fn measure(data: &[u8], limit: usize) -> Result<usize, Error> {
    let c = identify(data)?;
    let limit = limit.min(MAX_OUTPUT);
    let n = match c {
        #[cfg(feature = "gzip")]
        Format::Gzip => gzip::measure(data, limit)?,
        #[cfg(feature = "zstd")]
        Format::Zstd => zstd::measure(data, limit)?,
        _ => decompressed_len(data)?,
    };
    if n > limit {
        return Err(Error::TooLarge(c));
    }
    Ok(n)
}

/// Decompress `data` into a new vector of at most `limit` bytes (capped at
/// [`MAX_OUTPUT`]). The vector is
/// sized from [`decompressed_len`] when the container records the size,
/// and from [`measure`] when it does not or when the record proves wrong
/// (a gzip ISIZE is only the size modulo 2^32, and may lie): memory is the
/// true decompressed size, never more. [`Error::TooLarge`] if the output
/// would exceed the limit.
#[cfg(feature = "alloc")]
pub fn decompress_to_vec(data: &[u8], limit: usize) -> Result<alloc::vec::Vec<u8>, Error> {
    use alloc::vec;
    let c = identify(data)?;
    let limit = limit.min(MAX_OUTPUT);
    let recorded = match decompressed_len(data) {
        Ok(n) if n > limit => return Err(Error::TooLarge(c)),
        Ok(n) => Some(n),
        // Size not recorded, or a gzip ISIZE that cannot be right (a cut
        // file ends in arbitrary bytes): measure, and let the decoder name
        // any problem.
        Err(Error::UnknownSize(_) | Error::Corrupt(Format::Gzip, _)) => None,
        Err(e) => return Err(e),
    };
    let mut len = match recorded {
        Some(n) => n,
        None => measure(data, limit)?,
    };
    let mut measured = recorded.is_none();
    loop {
        let mut out = vec![0u8; len];
        match decompress_into(data, &mut out) {
            Ok(n) => {
                out.truncate(n);
                return Ok(out);
            }
            // The stream holds more than its record says.
            Err(Error::OutputTooSmall) if !measured => {
                len = measure(data, limit)?;
                measured = true;
            }
            Err(Error::OutputTooSmall) => return Err(Error::TooLarge(c)),
            Err(e) => return Err(e),
        }
    }
}

/// Little-endian u32 at `pos` (caller guarantees bounds).
#[allow(dead_code)]
fn le32(b: &[u8], pos: usize) -> u32 {
    u32::from_le_bytes([b[pos], b[pos + 1], b[pos + 2], b[pos + 3]])
}

#[cfg(test)]
mod tests {
    extern crate std;
    use super::*;
    use std::format;
    use std::string::{String, ToString};

    /// Every message, as `write!` worded it before the pieces.
    #[test]
    fn messages_are_what_core_fmt_wrote() {
        let mib = MAX_OUTPUT >> 20;
        let mut cases: std::vec::Vec<(Error, String)> = std::vec![
            (Error::NotCompressed, "not a gzip, xz or zstd stream".into()),
            (Error::OutputTooSmall, "output buffer too small".into()),
            (
                Error::GzipCrcMismatch {
                    expected: 0xab,
                    actual: 0xdead_beef
                },
                format!(
                    "gzip CRC32 mismatch (trailer says {:08x}, data has {:08x})",
                    0xab, 0xdead_beefu32
                ),
            ),
            (
                Error::GzipSizeMismatch {
                    expected: 7,
                    actual: u32::MAX
                },
                format!(
                    "gzip size mismatch (trailer says 7 bytes mod 2^32, data has {})",
                    u32::MAX
                ),
            ),
            (
                Error::XzCheckUnsupported(10),
                "xz check type unsupported (check ID 10)".into()
            ),
            (
                Error::XzCheckMismatch("CRC64"),
                "xz CRC64 check mismatch".into()
            ),
            (
                Error::ZstdChecksumMismatch {
                    expected: 1,
                    actual: 0x1234_5678
                },
                "zstd content checksum mismatch (frame says 00000001, data has 12345678)".into(),
            ),
            (
                Error::Corrupt(Format::Zstd, "why"),
                "corrupt zstd frame: why".into()
            ),
        ];
        for c in [Format::Gzip, Format::Xz, Format::Zstd] {
            cases.extend([
                (
                    Error::Disabled(c),
                    format!("{c} support is not compiled in"),
                ),
                (Error::Truncated(c), format!("truncated {c} stream")),
                (
                    Error::Unsupported(c, "w"),
                    format!("unsupported {c} stream: w"),
                ),
                (
                    Error::UnknownSize(c),
                    format!("{c} stream does not record its decompressed size"),
                ),
                (
                    Error::TooLarge(c),
                    format!("{c} stream decompresses to more than {mib} MiB"),
                ),
                (
                    Error::InputTooLarge(c),
                    format!("{c} file larger than {mib} MiB: not a kernel module"),
                ),
            ]);
            if c != Format::Zstd {
                cases.push((Error::Corrupt(c, "w"), format!("corrupt {c} stream: w")));
            }
        }
        for (e, want) in cases {
            assert_eq!(e.to_string(), want);
        }
    }
}
