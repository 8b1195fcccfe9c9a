//! A module file's image as libkmod's `kmod_file_open` sees it: mapped,
//! and decompressed when its magic says so (the file name is not looked
//! at). Without the `decompress` feature the image is the file as it is,
//! as libkmod built without zlib/xz/zstd treats it.

use crate::sys::{self, CPath, Mapped};
use alloc::borrow::Cow;
#[cfg(userspace_decoders)]
use alloc::vec::Vec;

pub(crate) const EINVAL: i32 = 22;
const EFBIG: i32 = 27;
const ENAMETOOLONG: i32 = 36;

/// Largest module file read, compressed or not, and largest decompressed
/// image (the decoders' bound): the largest Debian module, amdgpu, is 28
/// MiB; a bigger file is garbage or an attack, refused before it is read.
pub const MAX_MODULE: usize = 256 << 20;
#[cfg(userspace_decoders)]
const _: () = assert!(MAX_MODULE == earlymod_decompress::MAX_OUTPUT);

/// Why a module image could not be had: the errno libkmod reports for
/// it, and the exact reason when there is more to say than the errno.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fail {
    /// The errno (its text is what kmod prints).
    pub errno: i32,
    /// What exactly is wrong.
    pub why: Option<Cow<'static, str>>,
}

impl From<i32> for Fail {
    fn from(errno: i32) -> Fail {
        Fail { errno, why: None }
    }
}

impl Fail {
    fn new(errno: i32, why: impl Into<Cow<'static, str>>) -> Fail {
        Fail {
            errno,
            why: Some(why.into()),
        }
    }
}

/// A module image: the mapped file, or its decompressed contents.
pub enum Image {
    /// The file as it is.
    Mapped(Mapped),
    /// Decompressed.
    #[cfg(userspace_decoders)]
    Owned(Vec<u8>),
}

impl Image {
    /// The bytes.
    pub fn bytes(&self) -> &[u8] {
        match self {
            Image::Mapped(m) => m.bytes(),
            #[cfg(userspace_decoders)]
            Image::Owned(v) => v,
        }
    }
}

/// Maps a whole file read-only; `Err(errno)` when it cannot be opened or
/// read.
pub fn map_file(path: &str) -> Result<Mapped, Fail> {
    let c = CPath::join(&[path]).ok_or(ENAMETOOLONG)?;
    // Non-blocking: a FIFO must not hang the open.
    let fd = sys::open(c.as_cstr()).map_err(|e| e.raw_os_error())?;
    let kind = rustix::fs::fstat(&fd)
        .map(|st| rustix::fs::FileType::from_raw_mode(st.st_mode))
        .map_err(|e| e.raw_os_error())?;
    if !matches!(
        kind,
        rustix::fs::FileType::RegularFile | rustix::fs::FileType::Directory
    ) {
        return Err(Fail::new(EINVAL, "not a regular file"));
    }
    Mapped::from_fd(&fd, false).ok_or_else(|| {
        // Not mappable (a directory, say): read(2) names the problem.
        Fail::from(match rustix::io::read(&fd, &mut [0u8; 1]) {
            Err(e) => e.raw_os_error(),
            Ok(_) => EINVAL,
        })
    })
}

/// The image of module file `path`; the errno as libkmod reports it, with
/// the reason when it is not the errno's. A file over [`MAX_MODULE`] is
/// refused unread (a sparse 2 GiB "module" costs nothing).
pub fn load(path: &str) -> Result<Image, Fail> {
    let raw = map_file(path)?;
    let len = raw.bytes().len();
    // libkmod refuses files shorter than the longest magic it probes (6).
    if len < 6 {
        return Err(EINVAL.into());
    }
    if len > MAX_MODULE {
        return Err(Fail::new(
            EFBIG,
            crate::log::text(&[
                &(len >> 20),
                &" MiB: a kernel module is at most ",
                &(MAX_MODULE >> 20),
                &" MiB",
            ]),
        ));
    }
    decompress(raw)
}

#[cfg(not(userspace_decoders))]
fn decompress(raw: Mapped) -> Result<Image, Fail> {
    Ok(Image::Mapped(raw))
}

#[cfg(userspace_decoders)]
fn decompress(raw: Mapped) -> Result<Image, Fail> {
    use earlymod_decompress as d;
    let data = raw.bytes();
    if d::detect(data).is_none() {
        return Ok(Image::Mapped(raw));
    }
    let why = |e: d::Error| Fail::new(EINVAL, crate::log::text(&[&e]));
    // kmod 34 (libzstd) decodes a .ko.zst into exactly the size its first
    // frame declares: a frame without that size (or with 0) is refused, and
    // so is a file that holds more, is cut or is corrupt.
    let limit = match d::detect(data) {
        Some(d::Format::Zstd) => match zstd_content_size(data) {
            Some(n) if n > 0 => usize::try_from(n).unwrap_or(usize::MAX),
            _ => {
                return Err(Fail::new(
                    EINVAL,
                    "zstd: Failed to determine decompression size",
                ));
            }
        },
        _ => d::MAX_OUTPUT,
    };
    d::decompress_to_vec(data, limit)
        .map(Image::Owned)
        .map_err(why)
}

/// The Frame_Content_Size of the zstd frame `data` starts with (libzstd's
/// `ZSTD_getFrameContentSize`); `None` when the frame does not record it
/// or the header is cut.
#[cfg(userspace_decoders)]
pub fn zstd_content_size(data: &[u8]) -> Option<u64> {
    if !data.starts_with(&earlymod_decompress::ZSTD_MAGIC) {
        return None;
    }
    let fhd = *data.get(4)?;
    let single = fhd & 0x20 != 0;
    let did = [0usize, 1, 2, 4][usize::from(fhd & 3)];
    let len = match fhd >> 6 {
        0 if single => 1,
        0 => return None,
        1 => 2,
        2 => 4,
        _ => 8,
    };
    let at = 5 + usize::from(!single) + did;
    let field = data.get(at..at + len)?;
    let n = field
        .iter()
        .rev()
        .fold(0u64, |v, &b| (v << 8) | u64::from(b));
    // The 2-byte form is stored less 256.
    Some(if len == 2 { n + 256 } else { n })
}

#[cfg(all(test, userspace_decoders))]
mod tests {
    extern crate std;
    use super::*;
    use crate::modinfo::tests::TempDir;
    use std::path::Path;
    use std::process::Command;
    use std::string::{String, ToString};
    use std::vec::Vec;

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

    /// `data` compressed by each available tool: (tool, bytes).
    fn fixtures(dir: &Path, data: &[u8]) -> Vec<(&'static str, Vec<u8>)> {
        let src = dir.join("in");
        std::fs::write(&src, data).unwrap();
        let mut v = Vec::new();
        let tools: [(&str, &[&str]); 4] = [
            ("gzip", &["-c", "-n"]),
            ("xz", &["-c", "--check=crc32"]),
            ("xz", &["-c", "--check=crc64"]),
            ("zstd", &["-c", "-q", "--check"]),
        ];
        for (tool, args) in tools {
            match Command::new(tool).args(args).arg(&src).output() {
                Ok(o) if o.status.success() => v.push((tool, o.stdout)),
                _ => std::eprintln!("note: {tool} not available, skipping its fixture"),
            }
        }
        v
    }

    fn load_bytes(dir: &Path, name: &str, data: &[u8]) -> Result<Vec<u8>, i32> {
        let p = dir.join(name);
        std::fs::write(&p, data).unwrap();
        load(p.to_str().unwrap())
            .map(|i| i.bytes().to_vec())
            .map_err(|f| f.errno)
    }

    #[test]
    fn loads_plain_and_compressed() {
        let d = TempDir::new("unpack");
        let dir = d.path();
        for len in [6usize, 1000, 300_000] {
            let data = payload(len);
            assert_eq!(load_bytes(dir, "plain", &data).unwrap(), data);
            for (tool, z) in fixtures(dir, &data) {
                assert_eq!(load_bytes(dir, "z", &z).unwrap(), data, "{tool} {len}");
                // cut files: EINVAL
                assert_eq!(load_bytes(dir, "z", &z[..z.len() / 2]), Err(EINVAL));
            }
        }
        assert_eq!(load_bytes(dir, "short", b"\x7fELF\x02"), Err(EINVAL));
        assert_eq!(
            load(&dir.join("missing").to_string_lossy()).err(),
            Some(Fail::from(2))
        );
        let s: String = dir.to_str().unwrap().to_string();
        assert_eq!(load(&s).err(), Some(Fail::from(21)), "a directory: EISDIR");
    }

    /// kmod 34's zstd rule: the first frame's content size is the output
    /// size. Without one (or cut, or holding more), EINVAL.
    #[test]
    fn zstd_needs_its_content_size() {
        let d = TempDir::new("zsize");
        let dir = d.path();
        let data = payload(300_000);
        let src = dir.join("in");
        std::fs::write(&src, &data).unwrap();
        let zstd = |args: &[&str]| {
            Command::new("zstd")
                .args(args)
                .arg(&src)
                .output()
                .ok()
                .filter(|o| o.status.success())
                .map(|o| o.stdout)
        };
        let Some(z) = zstd(&["-c", "-q"]) else {
            return;
        };
        assert_eq!(zstd_content_size(&z), Some(300_000));
        assert_eq!(load_bytes(dir, "z", &z).unwrap(), data);
        for cut in [8, z.len() / 2, z.len() - 2] {
            assert_eq!(load_bytes(dir, "z", &z[..cut]), Err(EINVAL), "cut at {cut}");
        }
        let nosize = zstd(&["-c", "-q", "--no-content-size"]).unwrap();
        assert_eq!(zstd_content_size(&nosize), None);
        let p = dir.join("nosize");
        std::fs::write(&p, &nosize).unwrap();
        let f = load(p.to_str().unwrap()).err().unwrap();
        assert_eq!(
            (f.errno, f.why.as_deref()),
            (EINVAL, Some("zstd: Failed to determine decompression size"))
        );
        // Two frames: only the first one's size counts, so the whole is
        // more than that.
        let mut two = z.clone();
        two.extend_from_slice(&z);
        assert_eq!(load_bytes(dir, "two", &two), Err(EINVAL));
        // Every header form: 1-byte (single segment), 2-byte (+256),
        // 4-byte and 8-byte sizes.
        assert_eq!(
            zstd_content_size(&[0x28, 0xb5, 0x2f, 0xfd, 0x20, 7]),
            Some(7)
        );
        assert_eq!(
            zstd_content_size(&[0x28, 0xb5, 0x2f, 0xfd, 0x60, 1, 0]),
            Some(257)
        );
        assert_eq!(
            zstd_content_size(&[0x28, 0xb5, 0x2f, 0xfd, 0x80, 0x58, 1, 0, 0, 0]),
            Some(1)
        );
        assert_eq!(
            zstd_content_size(&[0x28, 0xb5, 0x2f, 0xfd, 0xe0, 1, 0, 0, 0, 0, 0, 0, 1]),
            Some(1 << 56 | 1)
        );
        assert_eq!(
            zstd_content_size(&[0x28, 0xb5, 0x2f, 0xfd, 0x00, 0x58]),
            None
        );
        assert_eq!(
            zstd_content_size(&[0x28, 0xb5, 0x2f, 0xfd, 0x80, 0x58, 1]),
            None
        );
    }

    /// A file over the module bound is refused unread, whatever it holds
    /// (sparse: no disk, no memory); a bomb is refused with its reason.
    #[test]
    fn huge_files_and_bombs_are_refused_with_a_reason() {
        let d = TempDir::new("huge");
        for head in [
            &b"\x7fELF\x02\x01\x01"[..],
            &earlymod_decompress::GZIP_MAGIC,
        ] {
            let p = d.path().join("huge.ko");
            std::fs::write(&p, head).unwrap();
            std::fs::OpenOptions::new()
                .write(true)
                .open(&p)
                .unwrap()
                .set_len(MAX_MODULE as u64 + 1)
                .unwrap();
            let f = load(p.to_str().unwrap()).err().unwrap();
            assert_eq!(f.errno, EFBIG);
            assert_eq!(
                f.why.as_deref(),
                Some("256 MiB: a kernel module is at most 256 MiB")
            );
        }
        // 257 MiB of zeros through zstd with its content size: over the
        // bound, refused before decoding.
        let src = d.path().join("zeros");
        std::fs::write(&src, std::vec![0u8; 257 << 20]).unwrap();
        let Ok(o) = Command::new("zstd")
            .args(["-c", "-q", "-1"])
            .arg(&src)
            .output()
        else {
            return;
        };
        let p = d.path().join("bomb.ko.zst");
        std::fs::write(&p, &o.stdout).unwrap();
        let f = load(p.to_str().unwrap()).err().unwrap();
        assert_eq!(f.errno, EINVAL);
        assert_eq!(
            f.why.as_deref(),
            Some("zstd stream decompresses to more than 256 MiB")
        );
    }

    #[test]
    fn garbage_after_magic_never_panics() {
        let mut x: u32 = 7;
        for magic in [
            &earlymod_decompress::GZIP_MAGIC[..],
            &earlymod_decompress::XZ_MAGIC,
            &earlymod_decompress::ZSTD_MAGIC,
        ] {
            for len in 0..300usize {
                let mut v = magic.to_vec();
                for _ in 0..len {
                    x ^= x << 13;
                    x ^= x >> 17;
                    x ^= x << 5;
                    v.push(x as u8);
                }
                let _ = earlymod_decompress::decompress_to_vec(&v, 1 << 30);
                let _ = zstd_content_size(&v);
            }
        }
    }
}
