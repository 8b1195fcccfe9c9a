//! Compression of one cpio member of an initramfs image.
//!
//! Both encoders are deterministic: the same input always gives the same
//! bytes (no timestamps, no file names, no thread-dependent output).
//!
//! - gzip: a hand-written RFC 1952 wrapper (no name, mtime 0, OS "Unix")
//!   around miniz_oxide's raw deflate, then CRC32 and ISIZE.
//! - zstd: one frame from ruzstd's encoder at its only implemented level
//!   (`Fastest`; its other levels are unimplemented in ruzstd 0.8.1). The
//!   frame is standard: 128 KiB window (not single-segment), the content
//!   size added to the header here, an XXH64 content checksum, no
//!   dictionary. The kernel's initramfs decompressor
//!   (`lib/decompress_unzstd.c`, streaming, window limit 2^27) accepts it.

use core::fmt;
use core::str::FromStr;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

/// deflate level for gzip members. Measured on the 6.1 default set (19 MB
/// of plain modules, image 6.2 MB at level 3): level 6 gives a 3% smaller
/// image in 2.3× the time, level 1 a 17% bigger one.
pub const GZIP_LEVEL: u8 = 3;

/// How a cpio member is compressed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Compression {
    /// Stored as is.
    #[default]
    None,
    /// gzip (RFC 1952), deflate level [`GZIP_LEVEL`].
    Gzip,
    /// zstd, one frame (ruzstd `Fastest`).
    Zstd,
}

impl Compression {
    /// Every variant, in the order `FromStr` documents them.
    pub const ALL: [Compression; 3] = [Compression::None, Compression::Gzip, Compression::Zstd];

    /// Lower-case name: "none", "gzip", "zstd".
    pub const fn name(self) -> &'static str {
        match self {
            Compression::None => "none",
            Compression::Gzip => "gzip",
            Compression::Zstd => "zstd",
        }
    }
}

impl fmt::Display for Compression {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A compression name other than "none", "gzip" or "zstd".
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnknownCompression(pub String);

impl fmt::Display for UnknownCompression {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "unknown compression {:?} (expected none, gzip or zstd)",
            self.0
        )
    }
}

impl std::error::Error for UnknownCompression {}

impl FromStr for Compression {
    type Err = UnknownCompression;

    /// Parses "none", "gzip" or "zstd" (exactly, lower case).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Compression::ALL
            .into_iter()
            .find(|c| c.name() == s)
            .ok_or_else(|| UnknownCompression(s.to_owned()))
    }
}

/// Compress `data` as one member; `Compression::None` returns a copy.
pub fn compress(data: &[u8], how: Compression) -> Vec<u8> {
    match how {
        Compression::None => data.to_vec(),
        Compression::Gzip => gzip(data),
        Compression::Zstd => zstd(data),
    }
}

/// One zstd frame from ruzstd, with the content size added to its header.
fn zstd(data: &[u8]) -> Vec<u8> {
    let frame =
        ruzstd::encoding::compress_to_vec(data, ruzstd::encoding::CompressionLevel::Fastest);
    with_content_size(frame, data.len() as u64)
}

/// ruzstd 0.8 writes magic, Frame_Header_Descriptor 0x04 (content
/// checksum; no content size, no dictionary, not single-segment) and a
/// Window_Descriptor. Add a 4-byte (8 beyond 4 GiB) Frame_Content_Size so
/// that `zstd -l` and one-shot decoders (`earlymod_decompress::
/// decompressed_len`) know the size; the blocks and the checksum, which
/// covers the content only, are unchanged. Any other header is left alone.
fn with_content_size(frame: Vec<u8>, size: u64) -> Vec<u8> {
    const HEAD: [u8; 5] = [0x28, 0xb5, 0x2f, 0xfd, 0x04];
    if frame.len() < 6 || frame[..5] != HEAD {
        return frame;
    }
    let mut out = Vec::with_capacity(frame.len() + 8);
    out.extend_from_slice(&frame[..6]);
    match u32::try_from(size) {
        Ok(s) => {
            out[4] |= 2 << 6; // Frame_Content_Size_flag 2: 4 bytes
            out.extend_from_slice(&s.to_le_bytes());
        }
        Err(_) => {
            out[4] |= 3 << 6; // 8 bytes
            out.extend_from_slice(&size.to_le_bytes());
        }
    }
    out.extend_from_slice(&frame[6..]);
    out
}

/// Input bytes per independently deflated block of [`compress_parallel`].
/// Fixed, so the output does not depend on the thread count; large enough
/// that starting each block without the previous 32 KiB costs nothing
/// measurable.
pub const GZIP_BLOCK: usize = 1 << 20;

/// [`compress`] with `jobs` threads. gzip is one RFC 1952 member whose
/// deflate stream is made of [`GZIP_BLOCK`]-sized blocks deflated in
/// parallel, each ended with a sync flush (an empty stored block) so they
/// concatenate into one valid stream, the way pigz does; any gzip reader
/// (the kernel, `gzip -d`, `unmkinitramfs`) sees an ordinary file. The
/// bytes are the same for every `jobs`. zstd and none are not split.
pub fn compress_parallel(data: &[u8], how: Compression, jobs: usize) -> Vec<u8> {
    if how != Compression::Gzip || data.len() <= GZIP_BLOCK {
        return compress(data, how);
    }
    let blocks: Vec<&[u8]> = data.chunks(GZIP_BLOCK).collect();
    let next = AtomicUsize::new(0);
    let out: Vec<Mutex<Vec<u8>>> = blocks.iter().map(|_| Mutex::new(Vec::new())).collect();
    std::thread::scope(|s| {
        for _ in 0..jobs.clamp(1, blocks.len()) {
            s.spawn(|| {
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let Some(b) = blocks.get(i) else { break };
                    let last = i + 1 == blocks.len();
                    let d = deflate_block(b, last);
                    *out[i].lock().unwrap_or_else(|e| e.into_inner()) = d;
                }
            });
        }
    });
    let mut deflated = Vec::new();
    for m in out {
        deflated.extend_from_slice(&m.into_inner().unwrap_or_else(|e| e.into_inner()));
    }
    gzip_wrap(&deflated, data)
}

/// Raw deflate of one block: ends with a sync flush, or the final block.
fn deflate_block(data: &[u8], last: bool) -> Vec<u8> {
    use miniz_oxide::deflate::core::{
        CompressorOxide, TDEFLFlush, TDEFLStatus, compress_to_output,
        create_comp_flags_from_zip_params,
    };
    let flags = create_comp_flags_from_zip_params(i32::from(GZIP_LEVEL), -15, 0);
    let mut c = CompressorOxide::new(flags);
    let mut out = Vec::with_capacity(data.len() / 3);
    let flush = if last {
        TDEFLFlush::Finish
    } else {
        TDEFLFlush::Sync
    };
    let mut rest = data;
    loop {
        let (status, used) = compress_to_output(&mut c, rest, flush, |b| {
            out.extend_from_slice(b);
            true
        });
        rest = &rest[used.min(rest.len())..];
        // Done after Finish; Okay once a sync flush consumed everything.
        if status == TDEFLStatus::Done || (status == TDEFLStatus::Okay && rest.is_empty()) {
            return out;
        }
        assert!(status == TDEFLStatus::Okay, "deflate failed: {status:?}");
    }
}

/// RFC 1952 member: fixed 10-byte header, raw deflate, CRC32, ISIZE.
fn gzip(data: &[u8]) -> Vec<u8> {
    gzip_wrap(
        &miniz_oxide::deflate::compress_to_vec(data, GZIP_LEVEL),
        data,
    )
}

/// The gzip header and trailer around a raw deflate stream of `data`.
fn gzip_wrap(deflated: &[u8], data: &[u8]) -> Vec<u8> {
    const HEADER: [u8; 10] = [
        0x1f, 0x8b, // ID1 ID2
        0x08, // CM = deflate
        0x00, // FLG: no FTEXT/FHCRC/FEXTRA/FNAME/FCOMMENT
        0x00, 0x00, 0x00, 0x00, // MTIME = 0: no time stamp (reproducible)
        0x00, // XFL: neither "maximum" (2) nor "fastest" (4)
        0x03, // OS = Unix
    ];
    let mut out = Vec::with_capacity(HEADER.len() + deflated.len() + 8);
    out.extend_from_slice(&HEADER);
    out.extend_from_slice(deflated);
    out.extend_from_slice(&crc32fast::hash(data).to_le_bytes());
    // ISIZE is the input size modulo 2^32 (truncation intended).
    out.extend_from_slice(&(data.len() as u32).to_le_bytes());
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::process::Command;

    fn sample() -> Vec<u8> {
        let mut v = Vec::new();
        for i in 0u32..50_000 {
            v.extend_from_slice(format!("line {i} {}\n", i.wrapping_mul(2_654_435_761)).as_bytes());
        }
        v.extend((0..70_000u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8));
        v
    }

    /// Runs `cmd args` with `input` on stdin, returns stdout (panics on failure).
    fn pipe(cmd: &str, args: &[&str], input: &[u8]) -> Vec<u8> {
        crate::testutil::run(cmd, args, None, input).stdout
    }

    #[test]
    fn names_round_trip() {
        for c in Compression::ALL {
            assert_eq!(c.to_string().parse::<Compression>(), Ok(c));
        }
        assert_eq!("gzip".parse(), Ok(Compression::Gzip));
        assert!("GZIP".parse::<Compression>().is_err());
        assert!("xz".parse::<Compression>().is_err());
        let e = "lz4".parse::<Compression>().unwrap_err();
        assert_eq!(
            e.to_string(),
            "unknown compression \"lz4\" (expected none, gzip or zstd)"
        );
        assert_eq!(Compression::default(), Compression::None);
    }

    #[test]
    fn none_is_identity() {
        let d = sample();
        assert_eq!(compress(&d, Compression::None), d);
    }

    #[test]
    fn gzip_header_is_fixed() {
        let z = compress(b"hello", Compression::Gzip);
        assert_eq!(&z[..10], &[0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 3]);
        assert_eq!(&z[z.len() - 4..], &5u32.to_le_bytes());
        assert_eq!(
            &z[z.len() - 8..z.len() - 4],
            &crc32fast::hash(b"hello").to_le_bytes()
        );
    }

    #[test]
    fn gzip_system_tool_decodes() {
        for d in [Vec::new(), b"x".to_vec(), sample()] {
            let z = compress(&d, Compression::Gzip);
            assert_eq!(pipe("gzip", &["-dc"], &z), d);
            assert_eq!(pipe("gzip", &["-t"], &z), b"");
        }
    }

    #[test]
    fn parallel_gzip_is_one_member_and_independent_of_jobs() {
        // 3.5 blocks, plus exact multiples of the block size.
        let mut d = Vec::new();
        while d.len() < GZIP_BLOCK * 7 / 2 {
            d.extend_from_slice(&sample());
        }
        for len in [d.len(), GZIP_BLOCK * 2, GZIP_BLOCK + 1] {
            let d = &d[..len];
            let one = compress_parallel(d, Compression::Gzip, 1);
            for jobs in [2, 3, 8] {
                assert!(compress_parallel(d, Compression::Gzip, jobs) == one);
            }
            assert!(pipe("gzip", &["-dc"], &one) == d);
            assert!(earlymod_decompress::decompress_to_vec(&one, d.len()).unwrap() == d);
            // One member: a reader that stops after the first one sees all.
            let raw = &one[10..one.len() - 8];
            assert!(miniz_oxide::inflate::decompress_to_vec(raw).unwrap() == d);
        }
        // Small inputs and other formats are not split.
        let s = &sample()[..100_000];
        assert!(compress_parallel(s, Compression::Gzip, 4) == compress(s, Compression::Gzip));
        assert!(compress_parallel(&d, Compression::Zstd, 4) == compress(&d, Compression::Zstd));
    }

    #[test]
    fn zstd_system_tool_decodes() {
        for d in [Vec::new(), b"x".to_vec(), sample()] {
            let z = compress(&d, Compression::Zstd);
            assert_eq!(pipe("zstd", &["-dc"], &z), d);
        }
    }

    #[test]
    fn zstd_frame_header() {
        let z = compress(&sample(), Compression::Zstd);
        assert_eq!(&z[..4], &[0x28, 0xb5, 0x2f, 0xfd]);
        let fhd = z[4];
        // Frame_Content_Size_flag 2 (4 bytes), Single_Segment 0,
        // Content_Checksum 1, no dictionary: a Window_Descriptor follows.
        assert_eq!(fhd, 0b1000_0100, "frame header descriptor {fhd:#010b}");
        let wd = z[5];
        let (exp, mant) = (u64::from(wd >> 3), u64::from(wd & 7));
        let base = 1u64 << (10 + exp);
        let window = base + base / 8 * mant;
        assert_eq!(window, 128 * 1024);
        let fcs = u32::from_le_bytes([z[6], z[7], z[8], z[9]]);
        assert_eq!(fcs as usize, sample().len());
        for d in [Vec::new(), b"x".to_vec(), sample()] {
            let z = compress(&d, Compression::Zstd);
            assert_eq!(earlymod_decompress::decompressed_len(&z), Ok(d.len()));
        }
        // `zstd -l` reads the size from the header.
        let t = std::env::temp_dir().join(format!("earlymod-zstd-{}.zst", std::process::id()));
        std::fs::write(&t, &z).unwrap();
        let out = Command::new("zstd").arg("-lv").arg(&t).output().unwrap();
        let _ = std::fs::remove_file(&t);
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(text.contains(&format!("({} B)", sample().len())), "{text}");
        assert!(text.contains("XXH64"), "{text}");
    }

    #[test]
    fn zstd_content_size_beyond_4g_header() {
        let frame = vec![0x28, 0xb5, 0x2f, 0xfd, 0x04, 0x38, 1, 2, 3];
        let z = with_content_size(frame.clone(), 1 << 33);
        assert_eq!(z[4], 0xc4);
        assert_eq!(&z[6..14], &(1u64 << 33).to_le_bytes());
        assert_eq!(&z[14..], &[1, 2, 3]);
        // Anything but the expected ruzstd header is left alone.
        let mut other = frame;
        other[4] = 0x24;
        assert_eq!(with_content_size(other.clone(), 5), other);
    }

    #[test]
    fn decodable_by_earlymod_decompress() {
        let d = sample();
        for c in [Compression::Gzip, Compression::Zstd] {
            let z = compress(&d, c);
            assert_eq!(
                earlymod_decompress::decompress_to_vec(&z, usize::MAX).unwrap(),
                d,
                "{c}"
            );
        }
    }

    #[test]
    fn deterministic() {
        let d = sample();
        for c in Compression::ALL {
            assert_eq!(compress(&d, c), compress(&d, c), "{c}");
        }
    }

    /// Timing and ratio on a real input:
    /// `EARLYMOD_COMPRESS_BENCH=/path/to/file cargo test --release -p
    /// earlymod-initrd --lib compress::tests::bench -- --ignored --nocapture`
    #[test]
    #[ignore = "benchmark; needs EARLYMOD_COMPRESS_BENCH"]
    fn bench() {
        let Ok(path) = std::env::var("EARLYMOD_COMPRESS_BENCH") else {
            eprintln!("set EARLYMOD_COMPRESS_BENCH to a file");
            return;
        };
        let d = std::fs::read(path).unwrap();
        let report = |name: &str, f: &dyn Fn() -> Vec<u8>| {
            let t = std::time::Instant::now();
            let z = f();
            let s = t.elapsed();
            eprintln!(
                "{name}: {} -> {} bytes ({:.2}%) in {:.2?}",
                d.len(),
                z.len(),
                100.0 * z.len() as f64 / d.len() as f64,
                s
            );
            z
        };
        for level in [1u8, 6, 9] {
            report(&format!("miniz deflate level {level}"), &|| {
                miniz_oxide::deflate::compress_to_vec(&d, level)
            });
        }
        for c in [Compression::Gzip, Compression::Zstd] {
            let z = report(&format!("{c} (compress)"), &|| compress(&d, c));
            let t = std::time::Instant::now();
            let back = earlymod_decompress::decompress_to_vec(&z, usize::MAX).unwrap();
            eprintln!("{c}: earlymod_decompress decodes in {:.2?}", t.elapsed());
            assert!(back == d);
            assert!(
                pipe(
                    if c == Compression::Gzip {
                        "gzip"
                    } else {
                        "zstd"
                    },
                    &["-dc"],
                    &z
                ) == d
            );
        }
    }
}
