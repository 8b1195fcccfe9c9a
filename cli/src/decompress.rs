//! Userspace decompression of kernel module files (`.ko.gz`, `.ko.xz`,
//! `.ko.zst`).
//!
//! Detection is by magic bytes, like libkmod does: the file extension is not
//! looked at. Uncompressed data is returned borrowed. The decoding itself is
//! `earlymod-decompress` (the same no_std crate the static binary uses),
//! capped at [`MAX_OUTPUT`]; no input, however malformed, may cause a panic.
//! What stays here is the host binary's error type and kmod-specific
//! behaviour: [`zstd_truncation`] models libkmod's streaming zstd loop.

use std::borrow::Cow;
use std::fmt;

use earlymod_decompress as d;

/// Largest decompressed size accepted (1 GiB). A kernel module is a few MiB
/// at most; anything beyond this is a decompression bomb or garbage.
pub const MAX_OUTPUT: usize = d::MAX_OUTPUT;

const ZSTD_MAGIC: &[u8] = &d::ZSTD_MAGIC;
#[cfg(test)]
const GZIP_MAGIC: &[u8] = &d::GZIP_MAGIC;
#[cfg(test)]
const XZ_MAGIC: &[u8] = &d::XZ_MAGIC;

/// Compression format of a module file, as told by its first bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    None,
    Gzip,
    Xz,
    Zstd,
}

impl Compression {
    /// Lower-case name of the format ("none", "gzip", "xz", "zstd").
    pub fn name(self) -> &'static str {
        match self {
            Compression::None => "none",
            Compression::Gzip => "gzip",
            Compression::Xz => "xz",
            Compression::Zstd => "zstd",
        }
    }
}

impl From<d::Format> for Compression {
    fn from(f: d::Format) -> Self {
        match f {
            d::Format::Gzip => Compression::Gzip,
            d::Format::Xz => Compression::Xz,
            d::Format::Zstd => Compression::Zstd,
        }
    }
}

/// Identify the compression format of `data` by its magic number.
pub fn detect(data: &[u8]) -> Compression {
    d::detect(data).map_or(Compression::None, Compression::from)
}

/// Why a compressed buffer could not be decompressed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DecompressError {
    /// The input ended before the stream did.
    Truncated(Compression),
    /// The stream is malformed; the string says what is wrong.
    Corrupt(Compression, String),
    /// The gzip trailer's CRC32 does not match the decompressed data.
    GzipCrcMismatch { expected: u32, actual: u32 },
    /// The gzip trailer's ISIZE does not match the decompressed length.
    GzipSizeMismatch { expected: u32, actual: u32 },
    /// The zstd frame's content checksum does not match.
    ZstdChecksumMismatch { expected: u32, actual: u32 },
    /// The stream uses a feature this decoder does not implement.
    Unsupported(Compression, String),
    /// The decompressed data would exceed [`MAX_OUTPUT`].
    TooLarge(Compression),
}

impl fmt::Display for DecompressError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DecompressError::Truncated(c) => write!(f, "truncated {} stream", c.name()),
            DecompressError::Corrupt(Compression::Zstd, why) => {
                write!(f, "corrupt zstd frame: {why}")
            }
            DecompressError::Corrupt(c, why) => write!(f, "corrupt {} stream: {why}", c.name()),
            DecompressError::GzipCrcMismatch { expected, actual } => write!(
                f,
                "gzip CRC32 mismatch (trailer says {expected:08x}, data has {actual:08x})"
            ),
            DecompressError::GzipSizeMismatch { expected, actual } => write!(
                f,
                "gzip size mismatch (trailer says {expected} bytes mod 2^32, data has {actual})"
            ),
            DecompressError::ZstdChecksumMismatch { expected, actual } => write!(
                f,
                "zstd content checksum mismatch (frame says {expected:08x}, data has {actual:08x})"
            ),
            DecompressError::Unsupported(c, why) => {
                write!(f, "unsupported {} stream: {why}", c.name())
            }
            DecompressError::TooLarge(c) => write!(
                f,
                "{} stream decompresses to more than {} bytes",
                c.name(),
                MAX_OUTPUT
            ),
        }
    }
}

impl std::error::Error for DecompressError {}

impl DecompressError {
    /// The host error for a decoder error on data of format `c`.
    fn from_decoder(c: Compression, e: d::Error) -> Self {
        use d::Error as E;
        match e {
            E::Truncated(f) => DecompressError::Truncated(f.into()),
            E::Corrupt(f, why) => DecompressError::Corrupt(f.into(), why.into()),
            E::Unsupported(f, why) => DecompressError::Unsupported(f.into(), why.into()),
            E::GzipCrcMismatch { expected, actual } => {
                DecompressError::GzipCrcMismatch { expected, actual }
            }
            E::GzipSizeMismatch { expected, actual } => {
                DecompressError::GzipSizeMismatch { expected, actual }
            }
            E::ZstdChecksumMismatch { expected, actual } => {
                DecompressError::ZstdChecksumMismatch { expected, actual }
            }
            E::XzCheckUnsupported(id) => {
                DecompressError::Unsupported(Compression::Xz, format!("check type {id}"))
            }
            E::XzCheckMismatch(name) => {
                DecompressError::Corrupt(Compression::Xz, format!("{name} check mismatch"))
            }
            E::TooLarge(f) => DecompressError::TooLarge(f.into()),
            // decompress_to_vec grows its buffer up to the limit, so running
            // out of room means the limit was hit.
            E::OutputTooSmall => DecompressError::TooLarge(c),
            other => DecompressError::Corrupt(c, other.to_string()),
        }
    }
}

/// Decompress `data` according to its magic number. Data that is not
/// compressed is returned as is, borrowed.
pub fn decompress(data: &[u8]) -> Result<Cow<'_, [u8]>, DecompressError> {
    decompress_with_limit(data, MAX_OUTPUT)
}

/// Like [`decompress`] with a caller-chosen output cap (at most
/// [`MAX_OUTPUT`] is ever honoured).
pub fn decompress_with_limit(data: &[u8], limit: usize) -> Result<Cow<'_, [u8]>, DecompressError> {
    match detect(data) {
        Compression::None => Ok(Cow::Borrowed(data)),
        c => d::decompress_to_vec(data, limit.min(MAX_OUTPUT))
            .map(Cow::Owned)
            .map_err(|e| DecompressError::from_decoder(c, e)),
    }
}

/// How far a truncated zstd file gets with a streaming decoder that simply
/// stops at end of input (as libkmod's libzstd loop does), found by walking
/// frame and block headers without decoding.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ZstdTruncation {
    /// The input is not truncated (or is not zstd at all).
    NotTruncated,
    /// Not even the first block is complete: no output at all.
    NothingDecoded,
    /// Some blocks are complete, a later one is cut.
    PartiallyDecoded,
    /// Every block is complete, only the trailing content checksum is cut.
    /// Holds an equivalent input without the checksum flag, which decodes
    /// to everything a streaming decoder would have produced.
    OnlyChecksumMissing(Vec<u8>),
}

/// Classify a zstd input's truncation; see [`ZstdTruncation`].
pub fn zstd_truncation(data: &[u8]) -> ZstdTruncation {
    let mut pos = 0usize;
    let mut produced = false;
    let cut = |produced: bool| {
        if produced {
            ZstdTruncation::PartiallyDecoded
        } else {
            ZstdTruncation::NothingDecoded
        }
    };
    while pos < data.len() {
        let Some(magic) = data.get(pos..pos + 4) else {
            return cut(produced);
        };
        let magic = u32::from_le_bytes([magic[0], magic[1], magic[2], magic[3]]);
        if magic & 0xffff_fff0 == 0x184d_2a50 {
            let Some(l) = data.get(pos + 4..pos + 8) else {
                return cut(produced);
            };
            let len = u32::from_le_bytes([l[0], l[1], l[2], l[3]]) as usize;
            pos = match (pos + 8).checked_add(len) {
                Some(end) if end <= data.len() => end,
                _ => return cut(produced),
            };
            continue;
        }
        if !data[pos..].starts_with(ZSTD_MAGIC) {
            return ZstdTruncation::NotTruncated; // garbage: a real error
        }
        let Some(&fhd) = data.get(pos + 4) else {
            return cut(produced);
        };
        let fhd_pos = pos + 4;
        let single = fhd & 0x20 != 0;
        let did = [0usize, 1, 2, 4][usize::from(fhd & 3)];
        let fcs = match fhd >> 6 {
            0 => usize::from(single),
            1 => 2,
            2 => 4,
            _ => 8,
        };
        let has_checksum = fhd & 0x04 != 0;
        pos = fhd_pos + 1 + usize::from(!single) + did + fcs;
        loop {
            let Some(h) = data.get(pos..pos + 3) else {
                return cut(produced);
            };
            let h = u32::from(h[0]) | u32::from(h[1]) << 8 | u32::from(h[2]) << 16;
            let last = h & 1 != 0;
            let size = (h >> 3) as usize;
            let content = if (h >> 1) & 3 == 1 { 1 } else { size };
            match (pos + 3).checked_add(content) {
                Some(end) if end <= data.len() => pos = end,
                _ => return cut(produced),
            }
            produced = true;
            if last {
                break;
            }
        }
        if has_checksum {
            if pos + 4 > data.len() {
                let mut patched = data[..pos].to_vec();
                patched[fhd_pos] &= !0x04;
                return ZstdTruncation::OnlyChecksumMissing(patched);
            }
            pos += 4;
        }
    }
    ZstdTruncation::NotTruncated
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;
    use std::process::Command;

    use crate::testutil::TempDir;

    /// Deterministic, moderately compressible payload.
    fn payload(len: usize) -> Vec<u8> {
        let mut x: u32 = 0x1234_5678;
        (0..len)
            .map(|i| {
                x ^= x << 13;
                x ^= x >> 17;
                x ^= x << 5;
                if i % 7 == 0 {
                    (x & 0xff) as u8
                } else {
                    b"modinfo="[i % 8]
                }
            })
            .collect()
    }

    /// Compress `data` with an external tool; None when the tool is missing.
    fn compress_with(dir: &Path, tool: &str, args: &[&str], data: &[u8]) -> Option<Vec<u8>> {
        let src = dir.join(format!("in-{tool}"));
        std::fs::write(&src, data).unwrap();
        let out = Command::new(tool).args(args).arg(&src).output().ok()?;
        if !out.status.success() {
            return None;
        }
        Some(out.stdout)
    }

    fn fixtures(tag: &str, data: &[u8]) -> Vec<(Compression, Vec<u8>)> {
        let dir = TempDir::new(tag);
        let mut v = Vec::new();
        let tools: [(Compression, &str, &[&str]); 4] = [
            (Compression::Gzip, "gzip", &["-c", "-n"]),
            (Compression::Xz, "xz", &["-c", "--check=crc32"]),
            (Compression::Xz, "xz", &["-c", "--check=crc64"]),
            (Compression::Zstd, "zstd", &["-c", "-q", "--check"]),
        ];
        for (c, tool, args) in tools {
            match compress_with(dir.path(), tool, args, data) {
                Some(z) => v.push((c, z)),
                None => eprintln!("note: {tool} not available, skipping its fixture"),
            }
        }
        v
    }

    #[test]
    fn detect_magic() {
        assert_eq!(detect(b"\x1f\x8b\x08"), Compression::Gzip);
        assert_eq!(detect(b"\xfd7zXZ\x00\x00"), Compression::Xz);
        assert_eq!(detect(b"\x28\xb5\x2f\xfd\x00"), Compression::Zstd);
        assert_eq!(detect(b"\x7fELF"), Compression::None);
        assert_eq!(detect(b""), Compression::None);
        assert_eq!(detect(b"\xfd7zX"), Compression::None);
    }

    #[test]
    fn uncompressed_is_borrowed() {
        let d = b"\x7fELF plain".to_vec();
        match decompress(&d).unwrap() {
            Cow::Borrowed(b) => assert_eq!(b, &d[..]),
            Cow::Owned(_) => panic!("expected borrowed"),
        }
    }

    #[test]
    fn round_trip_with_cli_tools() {
        for len in [0usize, 1, 1000, 300_000] {
            let data = payload(len);
            for (c, z) in fixtures(&format!("rt{len}"), &data) {
                assert_eq!(detect(&z), c);
                let got = decompress(&z).unwrap_or_else(|e| panic!("{c:?} len {len}: {e}"));
                assert_eq!(&got[..], &data[..], "{c:?} len {len}");
            }
        }
    }

    #[test]
    fn multi_member_and_multi_frame() {
        let a = payload(5000);
        let b = payload(7000);
        let fa = fixtures("mma", &a);
        let fb = fixtures("mmb", &b);
        for ((c, za), (_, zb)) in fa.iter().zip(fb.iter()) {
            let mut cat = za.clone();
            cat.extend_from_slice(zb);
            let got = decompress(&cat).unwrap_or_else(|e| panic!("{c:?}: {e}"));
            let mut want = a.clone();
            want.extend_from_slice(&b);
            assert_eq!(&got[..], &want[..], "{c:?}");
        }
    }

    #[test]
    fn truncated_inputs_fail() {
        let data = payload(200_000);
        for (c, z) in fixtures("trunc", &data) {
            for cut in [6usize, 7, 12, 20, z.len() / 2, z.len() - 9, z.len() - 1] {
                if cut >= z.len() {
                    continue;
                }
                let r = decompress(&z[..cut]);
                assert!(r.is_err(), "{c:?} cut at {cut} of {} decoded", z.len());
                let e = r.unwrap_err();
                assert!(!e.to_string().is_empty());
            }
            // a cut well into the data is reported as truncation
            let e = decompress(&z[..z.len() / 2]).unwrap_err();
            assert_eq!(e, DecompressError::Truncated(c), "{c:?}: {e}");
            assert_eq!(e.to_string(), format!("truncated {} stream", c.name()));
        }
    }

    #[test]
    fn corrupt_inputs_fail_without_panic() {
        let data = payload(50_000);
        for (c, z) in fixtures("corrupt", &data) {
            // flip bytes all over the stream; it must never panic, and a
            // checksummed format must never return wrong data silently.
            let mut x: u32 = 0xdead_beef;
            for i in 0..400 {
                x ^= x << 13;
                x ^= x >> 17;
                x ^= x << 5;
                let mut m = z.clone();
                let pos = if i < 40 {
                    i % m.len()
                } else {
                    (x as usize) % m.len()
                };
                m[pos] ^= 1 << (x % 8);
                if detect(&m) != c {
                    continue; // the magic itself was hit: not compressed any more
                }
                if let Ok(out) = decompress(&m) {
                    assert!(out[..] == data[..], "{c:?} flip at {pos} decoded wrongly");
                }
            }
        }
    }

    #[test]
    fn gzip_crc_and_size_mismatch() {
        let data = payload(10_000);
        let Some((_, z)) = fixtures("gzcrc", &data)
            .into_iter()
            .find(|(c, _)| *c == Compression::Gzip)
        else {
            return;
        };
        let n = z.len();
        let mut bad = z.clone();
        bad[n - 8] ^= 0xff;
        let e = decompress(&bad).unwrap_err();
        assert!(matches!(e, DecompressError::GzipCrcMismatch { .. }), "{e}");
        assert!(e.to_string().starts_with("gzip CRC32 mismatch"));
        let mut bad = z.clone();
        bad[n - 1] ^= 0x01;
        let e = decompress(&bad).unwrap_err();
        assert!(matches!(e, DecompressError::GzipSizeMismatch { .. }), "{e}");
        // trailing garbage
        let mut bad = z.clone();
        bad.extend_from_slice(b"junk");
        assert!(decompress(&bad).is_err());
        // trailing zero padding is fine
        let mut ok = z.clone();
        ok.extend_from_slice(&[0; 16]);
        assert_eq!(&decompress(&ok).unwrap()[..], &data[..]);
    }

    #[test]
    fn zstd_truncation_classes() {
        let data = payload(300_000);
        let Some((_, z)) = fixtures("ztrunc", &data)
            .into_iter()
            .find(|(c, _)| *c == Compression::Zstd)
        else {
            return;
        };
        assert_eq!(zstd_truncation(&z), ZstdTruncation::NotTruncated);
        assert_eq!(zstd_truncation(&z[..8]), ZstdTruncation::NothingDecoded);
        assert_eq!(
            zstd_truncation(&z[..z.len() - 10]),
            ZstdTruncation::PartiallyDecoded
        );
        match zstd_truncation(&z[..z.len() - 2]) {
            ZstdTruncation::OnlyChecksumMissing(p) => {
                assert_eq!(&decompress(&p).unwrap()[..], &data[..]);
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn garbage_after_magic() {
        let mut x: u32 = 7;
        for magic in [GZIP_MAGIC, XZ_MAGIC, ZSTD_MAGIC] {
            for len in 0..300usize {
                let mut v = magic.to_vec();
                for _ in 0..len {
                    x ^= x << 13;
                    x ^= x >> 17;
                    x ^= x << 5;
                    v.push(x as u8);
                }
                let _ = decompress(&v);
            }
            assert!(decompress(magic).is_err());
        }
    }

    #[test]
    fn output_cap_enforced() {
        let data = vec![0u8; 1 << 20];
        for (c, z) in fixtures("cap", &data) {
            let e = decompress_with_limit(&z, 1000).unwrap_err();
            assert_eq!(e, DecompressError::TooLarge(c), "{c:?}: {e}");
            assert_eq!(&decompress_with_limit(&z, 1 << 20).unwrap()[..], &data[..]);
        }
    }
}
