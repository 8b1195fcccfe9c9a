//! Userspace decompression of a module, then `init_module`. The output and
//! the xz dictionary live in anonymous mappings sized from the container
//! headers, so gzip and xz decode without a heap; zstd (ruzstd) allocates.

use core::ffi::CStr;
use earlymod_core::load::{Compression, Errno, LoadError, Reason};

#[cfg(feature = "decompress")]
struct Anon {
    ptr: *mut core::ffi::c_void,
    len: usize,
}

#[cfg(feature = "decompress")]
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

#[cfg(feature = "decompress")]
impl Drop for Anon {
    fn drop(&mut self) {
        if self.len > 0 {
            // SAFETY: unmapping exactly our mapping; no borrow outlives self.
            let _ = unsafe { rustix::mm::munmap(self.ptr, self.len) };
        }
    }
}

fn reason(e: &dyn core::fmt::Display) -> LoadError {
    let mut r = Reason::new();
    let _ = core::fmt::write(&mut r, format_args!("{e}"));
    LoadError::Decompress(r)
}

fn init_module(image: &[u8], params: &CStr) -> Result<(), LoadError> {
    earlymod_core::load::retry_transient(|| {
        rustix::system::init_module(image, params).map_err(|e| Errno(e.raw_os_error()))
    })
    .map_err(LoadError::Kernel)
}

/// Decompresses `data` (a whole module file) and loads it.
#[cfg(feature = "decompress")]
pub fn init_module_from(data: &[u8], _format: Compression, params: &CStr) -> Result<(), LoadError> {
    use earlymod_decompress as d;
    match d::decompressed_len(data) {
        Ok(len) => {
            let mut out = Anon::new(len)?;
            let mut scratch = Anon::new(d::scratch_len(data).map_err(|e| reason(&e))?)?;
            let n = d::decompress_into(data, out.bytes_mut(), scratch.bytes_mut())
                .map_err(|e| reason(&e))?;
            drop(scratch);
            init_module(&out.bytes_mut()[..n], params)
        }
        // A zstd frame without a content size: decode into a growing buffer.
        #[cfg(feature = "alloc-decoders")]
        Err(d::Error::UnknownSize(_)) => {
            let v = d::decompress_to_vec(data, d::MAX_OUTPUT).map_err(|e| reason(&e))?;
            init_module(&v, params)
        }
        Err(e) => Err(reason(&e)),
    }
}

/// Without decoders (the minimal build) only the kernel can decompress.
#[cfg(not(feature = "decompress"))]
pub fn init_module_from(
    _data: &[u8],
    format: Compression,
    _params: &CStr,
) -> Result<(), LoadError> {
    let _ = (reason, init_module);
    Err(LoadError::NoDecoder(format))
}
