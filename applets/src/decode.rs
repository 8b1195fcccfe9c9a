//! Userspace decompression of a module, then `init_module`. The output
//! lives in an anonymous mapping sized from the container headers (or, for
//! a zstd frame without a content size, measured by decoding its sequences
//! first); the decoders need no other memory and no heap.

use core::ffi::CStr;
use earlymod_core::load::{Compression, Errno, LoadError, Reason};
use earlymod_core::text::{Piece, Sink};

/// An anonymous private mapping, unmapped on drop.
#[cfg(userspace_decoders)]
pub struct Anon {
    ptr: *mut core::ffi::c_void,
    len: usize,
}

#[cfg(userspace_decoders)]
impl Anon {
    fn new(len: usize) -> Result<Anon, LoadError> {
        if len == 0 {
            return Ok(Anon {
                ptr: core::ptr::null_mut(),
                len: 0,
            });
        }
        use rustix::mm::{MapFlags, ProtFlags};
        // SAFETY: a fresh private anonymous mapping, owned by the returned
        // value and unmapped in Drop.
        let ptr = unsafe {
            rustix::mm::mmap_anonymous(
                core::ptr::null_mut(),
                len,
                ProtFlags::READ | ProtFlags::WRITE,
                MapFlags::PRIVATE,
            )
        }
        .map_err(|e| LoadError::Kernel(Errno(e.raw_os_error())))?;
        Ok(Anon { ptr, len })
    }

    fn bytes_mut(&mut self) -> &mut [u8] {
        if self.len == 0 {
            return &mut [];
        }
        // SAFETY: `ptr` maps `len` writable bytes while `self` lives, and
        // `&mut self` makes this the only reference.
        unsafe { core::slice::from_raw_parts_mut(self.ptr.cast::<u8>(), self.len) }
    }
}

#[cfg(userspace_decoders)]
impl Drop for Anon {
    fn drop(&mut self) {
        if self.len > 0 {
            // SAFETY: unmapping exactly our mapping; no borrow outlives self.
            let _ = unsafe { rustix::mm::munmap(self.ptr, self.len) };
        }
    }
}

/// A [`Reason`] written piece by piece; the first piece that does not fit
/// ends it (as `core::fmt::write` into a full `heapless::String` did).
struct ReasonSink(Reason, bool);

impl Sink for ReasonSink {
    fn put(&mut self, bytes: &[u8]) {
        if self.1 {
            // Pieces write whole UTF-8 sequences.
            self.1 = core::str::from_utf8(bytes).is_ok_and(|s| self.0.push_str(s).is_ok());
        }
    }
}

fn reason(e: &dyn Piece) -> LoadError {
    let mut r = ReasonSink(Reason::new(), true);
    e.put_to(&mut r);
    LoadError::Decompress(r.0)
}

/// `FORMAT stream holds more than the LEN bytes its header records ...`.
#[cfg(userspace_decoders)]
struct Overfull(earlymod_decompress::Format, usize);

#[cfg(userspace_decoders)]
impl Piece for Overfull {
    fn put_to(&self, out: &mut dyn Sink) {
        earlymod_core::put!(out;
            self.0.name(), " stream holds more than the ", self.1,
            " bytes its header records (corrupt or hostile file)"
        );
    }
}

fn init_module(image: &[u8], params: &CStr) -> Result<(), LoadError> {
    earlymod_core::load::retry_transient(|| {
        rustix::system::init_module(image, params).map_err(|e| Errno(e.raw_os_error()))
    })
    .map_err(LoadError::Kernel)
}

/// Modules that decompress to at most this many bytes are decoded into a
/// static buffer (zero-initialised: in `.bss`, no bytes in the binary): no
/// mapping to make and unmap for them, as kmod decodes into its heap.
#[cfg(userspace_decoders)]
const SMALL: usize = 128 << 10;

/// The buffer for small modules, and whether it is in use.
#[cfg(userspace_decoders)]
struct Small(
    core::cell::UnsafeCell<[u8; SMALL]>,
    core::sync::atomic::AtomicBool,
);

// SAFETY: the buffer is reached only through a `Lease`, and the flag lets
// one lease exist at a time.
#[cfg(userspace_decoders)]
unsafe impl Sync for Small {}

#[cfg(userspace_decoders)]
static SMALL_BUF: Small = Small(
    core::cell::UnsafeCell::new([0; SMALL]),
    core::sync::atomic::AtomicBool::new(false),
);

/// The use of `SMALL_BUF` (its first `.0` bytes hold the image); the
/// buffer is free again when it drops.
#[cfg(userspace_decoders)]
pub struct Lease(usize);

#[cfg(userspace_decoders)]
impl Lease {
    fn take() -> Option<Lease> {
        use core::sync::atomic::Ordering;
        (!SMALL_BUF.1.swap(true, Ordering::Acquire)).then_some(Lease(0))
    }

    fn buf(&mut self) -> &mut [u8; SMALL] {
        // SAFETY: this lease holds the flag, so no other reference to the
        // buffer exists; `&mut self` makes this the only one of this lease.
        unsafe { &mut *SMALL_BUF.0.get() }
    }
}

#[cfg(userspace_decoders)]
impl Drop for Lease {
    fn drop(&mut self) {
        SMALL_BUF
            .1
            .store(false, core::sync::atomic::Ordering::Release);
    }
}

/// A decompressed module image.
#[cfg(userspace_decoders)]
pub enum Decoded {
    /// In an anonymous mapping, `.1` bytes of it used.
    Mapped(Anon, usize),
    /// In the static buffer for small modules.
    Small(Lease),
}

#[cfg(userspace_decoders)]
impl Decoded {
    /// The image.
    pub fn bytes(&mut self) -> &[u8] {
        match self {
            Decoded::Mapped(a, n) => &a.bytes_mut()[..*n],
            Decoded::Small(l) => {
                let n = l.0;
                &l.buf()[..n]
            }
        }
    }
}

/// Decompresses `data` (a whole module file) into memory sized from the
/// container's own record of the decompressed size, or (a zstd frame
/// without one) measured by [`earlymod_decompress::measure`] without
/// producing it. Never more than [`earlymod_decompress::MAX_OUTPUT`] is
/// produced; a stream holding more than its header records is refused as
/// soon as the output is full.
#[cfg(userspace_decoders)]
pub fn decode(data: &[u8]) -> Result<Decoded, LoadError> {
    use earlymod_decompress as d;
    let len = match d::decompressed_len(data) {
        Err(d::Error::UnknownSize(_)) => d::measure(data, d::MAX_OUTPUT),
        r => r,
    };
    let len = len.map_err(|e| reason(&e))?;
    let fail = |e| match (e, d::detect(data)) {
        (d::Error::OutputTooSmall, Some(f)) => reason(&Overfull(f, len)),
        (e, _) => reason(&e),
    };
    if len <= SMALL {
        if let Some(mut lease) = Lease::take() {
            lease.0 = d::decompress_into(data, &mut lease.buf()[..len]).map_err(fail)?;
            return Ok(Decoded::Small(lease));
        }
    }
    let mut out = Anon::new(len)?;
    let n = d::decompress_into(data, out.bytes_mut()).map_err(fail)?;
    Ok(Decoded::Mapped(out, n))
}

/// Decompresses `data` (a whole module file) and loads it.
#[cfg(userspace_decoders)]
pub fn init_module_from(data: &[u8], format: Compression, params: &CStr) -> Result<(), LoadError> {
    let built = match format {
        Compression::Gzip => cfg!(feature = "gzip"),
        Compression::Xz => cfg!(feature = "xz"),
        Compression::Zstd => cfg!(feature = "zstd"),
        Compression::None => true,
    };
    if !built {
        return Err(LoadError::NoDecoder(format));
    }
    let mut image = decode(data)?;
    init_module(image.bytes(), params)
}

/// Without decoders (the minimal build) only the kernel can decompress.
#[cfg(not(userspace_decoders))]
pub fn init_module_from(
    _data: &[u8],
    format: Compression,
    _params: &CStr,
) -> Result<(), LoadError> {
    let _ = (reason, init_module);
    Err(LoadError::NoDecoder(format))
}

#[cfg(all(test, userspace_decoders))]
mod tests {
    extern crate std;
    use super::*;
    use std::process::{Command, Stdio};
    use std::string::ToString;
    use std::vec::Vec;

    fn compress(tool: &[&str], data: &[u8]) -> Option<Vec<u8>> {
        use std::io::Write;
        let mut c = Command::new(tool[0])
            .args(&tool[1..])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .ok()?;
        let mut stdin = c.stdin.take()?;
        let data = data.to_vec();
        let w = std::thread::spawn(move || stdin.write_all(&data));
        let out = c.wait_with_output().ok()?;
        w.join().ok()?.ok()?;
        out.status.success().then_some(out.stdout)
    }

    fn why(e: LoadError) -> std::string::String {
        match e {
            LoadError::Decompress(r) => r.as_str().to_string(),
            e => std::format!("{e}"),
        }
    }

    fn shown(p: &dyn Piece) -> std::string::String {
        match reason(p) {
            LoadError::Decompress(r) => r.as_str().to_string(),
            _ => unreachable!(),
        }
    }

    #[test]
    fn overfull_reads_as_before() {
        // The decoders' own messages are tested in earlymod-decompress.
        use earlymod_decompress::Format as F;
        for c in [F::Gzip, F::Xz, F::Zstd] {
            assert_eq!(
                shown(&Overfull(c, 268_435_456)),
                std::format!(
                    "{c} stream holds more than the 268435456 bytes its header records (corrupt or hostile file)"
                )
            );
        }
    }

    #[test]
    fn decodes_what_the_header_records() {
        let data: Vec<u8> = (0..100_000u32).map(|i| (i % 251) as u8).collect();
        for tool in [&["gzip", "-c"][..], &["xz", "-c"], &["zstd", "-c", "-q"]] {
            let Some(z) = compress(tool, &data) else {
                continue;
            };
            assert_eq!(decode(&z).ok().unwrap().bytes(), &data[..], "{tool:?}");
        }
    }

    /// A zstd frame from a pipe records no content size: measured, then
    /// decoded into a mapping of exactly that size (no heap).
    #[test]
    fn decodes_a_zstd_frame_without_content_size() {
        let data: Vec<u8> = (0..300_000u32)
            .map(|i| (i % 253) as u8 ^ (i >> 9) as u8)
            .collect();
        let Some(z) = compress(&["zstd", "-c", "-q", "--no-content-size"], &data) else {
            return;
        };
        assert_eq!(
            earlymod_decompress::decompressed_len(&z),
            Err(earlymod_decompress::Error::UnknownSize(
                earlymod_decompress::Format::Zstd
            ))
        );
        assert_eq!(decode(&z).ok().unwrap().bytes(), &data[..]);
    }

    /// A gzip trailer whose ISIZE claims less than the stream holds: the
    /// output buffer (sized from ISIZE) fills and the load is refused with
    /// the reason, after decoding no more than the claim.
    #[test]
    fn a_lying_gzip_isize_is_refused_with_its_reason() {
        let Some(mut z) = compress(&["gzip", "-c"], &[0u8; 1 << 20]) else {
            return;
        };
        let n = z.len();
        z[n - 4..].copy_from_slice(&4096u32.to_le_bytes());
        assert_eq!(
            why(decode(&z).err().unwrap()),
            "gzip stream holds more than the 4096 bytes its header records (corrupt or hostile file)"
        );
    }

    /// 257 MiB of zeros, over the 256 MiB bound: refused from the size
    /// records alone where there are any (xz index, zstd frame header),
    /// after at most the bound's worth of decoding otherwise.
    #[test]
    fn bombs_are_refused() {
        let zeros = std::vec![0u8; 257 << 20];
        for (tool, want) in [
            (
                &["xz", "-c", "-0", "-T1"][..],
                "xz stream decompresses to more than 256 MiB",
            ),
            (
                &["zstd", "-c", "-q", "-1"],
                "zstd stream decompresses to more than 256 MiB",
            ),
        ] {
            let Some(z) = compress(tool, &zeros) else {
                continue;
            };
            assert_eq!(why(decode(&z).err().unwrap()), want, "{tool:?}");
        }
    }
}
