//! Read-only memory maps of index files, so a process that answers one
//! query touches only the index pages it needs (as libkmod does).

use rustix::fs::{Mode, OFlags};
use rustix::mm::{MapFlags, ProtFlags};
use std::path::Path;

/// A whole file mapped read-only, or read into memory when it cannot be mapped.
pub enum Mapped {
    /// A private read-only mapping.
    Map {
        ptr: *mut std::ffi::c_void,
        len: usize,
    },
    /// An empty file or a file that could not be mapped, read normally.
    Heap(Vec<u8>),
}

impl Mapped {
    /// Maps `path`; `None` when it cannot be opened.
    pub fn open(path: &Path) -> Option<Mapped> {
        let fd = rustix::fs::open(path, OFlags::RDONLY | OFlags::CLOEXEC, Mode::empty()).ok()?;
        let len = usize::try_from(rustix::fs::fstat(&fd).ok()?.st_size).ok()?;
        if len > 0 {
            // SAFETY: a fresh private read-only mapping of a whole file we
            // opened; nothing else aliases it, and it is unmapped in Drop.
            // (Like libkmod, we accept that truncating an index file while
            // it is mapped would fault.)
            let mapped = unsafe {
                rustix::mm::mmap(
                    std::ptr::null_mut(),
                    len,
                    ProtFlags::READ,
                    MapFlags::PRIVATE,
                    &fd,
                    0,
                )
            };
            if let Ok(ptr) = mapped {
                return Some(Mapped::Map { ptr, len });
            }
        }
        std::fs::read(path).ok().map(Mapped::Heap)
    }

    /// The file's bytes.
    pub fn bytes(&self) -> &[u8] {
        match self {
            // SAFETY: `ptr` maps `len` readable bytes for as long as `self` lives.
            Mapped::Map { ptr, len } => unsafe {
                std::slice::from_raw_parts(ptr.cast::<u8>(), *len)
            },
            Mapped::Heap(v) => v,
        }
    }
}

impl Drop for Mapped {
    fn drop(&mut self) {
        if let Mapped::Map { ptr, len } = *self {
            // SAFETY: unmapping exactly the mapping created in `open`; no
            // borrow of it outlives `self`.
            let _ = unsafe { rustix::mm::munmap(ptr, len) };
        }
    }
}
