//! The system edge: output, file maps, small reads and directory listings,
//! all through rustix with no heap.

use core::ffi::CStr;
use core::fmt;
use core::mem::MaybeUninit;
use rustix::fd::{AsFd, BorrowedFd, OwnedFd};
use rustix::fs::{Mode, OFlags};
use rustix::mm::{MapFlags, ProtFlags};

/// Output buffer size: large, so a long plan (`-a -D` of every module,
/// megabytes) costs few write calls.
const OUT_BUF: usize = 64 * 1024;

/// A buffered writer on a file descriptor (stdout or stderr).
pub struct Out {
    fd: BorrowedFd<'static>,
    buf: [u8; OUT_BUF],
    len: usize,
}

impl Out {
    /// Standard output.
    pub fn stdout() -> Out {
        // SAFETY: fd 1 stays open for the life of the process.
        Out {
            fd: unsafe { rustix::stdio::stdout() },
            buf: [0; OUT_BUF],
            len: 0,
        }
    }

    /// Standard error.
    pub fn stderr() -> Out {
        // SAFETY: fd 2 stays open for the life of the process.
        Out {
            fd: unsafe { rustix::stdio::stderr() },
            buf: [0; OUT_BUF],
            len: 0,
        }
    }

    /// Appends bytes, flushing when the buffer fills.
    pub fn bytes(&mut self, mut b: &[u8]) {
        while !b.is_empty() {
            if self.len == self.buf.len() {
                self.flush();
            }
            let n = b.len().min(self.buf.len() - self.len);
            self.buf[self.len..self.len + n].copy_from_slice(&b[..n]);
            self.len += n;
            b = &b[n..];
        }
    }

    /// Writes out what is buffered (errors are ignored, as for stdio).
    pub fn flush(&mut self) {
        let mut b = &self.buf[..self.len];
        while !b.is_empty() {
            match rustix::io::write(self.fd, b) {
                Ok(0) | Err(_) => break,
                Ok(n) => b = &b[n..],
            }
        }
        self.len = 0;
    }
}

impl earlymod_core::text::Sink for Out {
    fn put(&mut self, bytes: &[u8]) {
        self.bytes(bytes);
    }
}

impl fmt::Write for Out {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        self.bytes(s.as_bytes());
        Ok(())
    }
}

impl Drop for Out {
    fn drop(&mut self) {
        self.flush();
    }
}

/// A NUL-terminated copy of a path, on the stack.
pub struct CPath {
    buf: heapless::Vec<u8, 4096>,
}

impl CPath {
    /// `a` + `b` + `c`, NUL-terminated; `None` when too long or with a NUL inside.
    pub fn join(parts: &[&str]) -> Option<CPath> {
        let mut buf = heapless::Vec::new();
        for p in parts {
            buf.extend_from_slice(p.as_bytes()).ok()?;
        }
        if buf.contains(&0) {
            return None;
        }
        buf.push(0).ok()?;
        Some(CPath { buf })
    }

    /// As a C string.
    pub fn as_cstr(&self) -> &CStr {
        CStr::from_bytes_with_nul(&self.buf).unwrap_or(c"")
    }

    /// As text, without the NUL.
    pub fn as_str(&self) -> &str {
        core::str::from_utf8(&self.buf[..self.buf.len() - 1]).unwrap_or("")
    }
}

/// Opens a file read-only. Without blocking: a FIFO planted where an
/// index, config file or module is expected would otherwise hang the open
/// for ever (regular files ignore `O_NONBLOCK`).
pub fn open(path: &CStr) -> rustix::io::Result<OwnedFd> {
    rustix::fs::open(
        path,
        OFlags::RDONLY | OFlags::CLOEXEC | OFlags::NONBLOCK,
        Mode::empty(),
    )
}

/// A whole file mapped privately; writable mappings are copy-on-write, so
/// parsers may rewrite the bytes in place without touching the file.
pub struct Mapped {
    ptr: *mut core::ffi::c_void,
    len: usize,
}

impl Mapped {
    /// Maps `path` (read-only, or private-writable with `writable`).
    /// `None` when it cannot be opened or mapped; an empty file maps to an
    /// empty slice.
    pub fn open(path: &CStr, writable: bool) -> Option<Mapped> {
        Self::open_checked(path, writable).ok()
    }

    /// [`Mapped::open`], or why not: the errno (`ENOENT` when there is no
    /// such file), or 0 for something that is not a regular file (a
    /// directory, a FIFO, a device).
    pub fn open_checked(path: &CStr, writable: bool) -> Result<Mapped, i32> {
        let fd = open(path).map_err(|e| e.raw_os_error())?;
        let st = rustix::fs::fstat(&fd).map_err(|e| e.raw_os_error())?;
        if rustix::fs::FileType::from_raw_mode(st.st_mode) != rustix::fs::FileType::RegularFile {
            return Err(0);
        }
        Self::from_fd(&fd, writable).ok_or(0)
    }

    /// Maps an open file.
    pub fn from_fd<Fd: AsFd>(fd: Fd, writable: bool) -> Option<Mapped> {
        let len = usize::try_from(rustix::fs::fstat(&fd).ok()?.st_size).ok()?;
        if len == 0 {
            return Some(Mapped {
                ptr: core::ptr::null_mut(),
                len: 0,
            });
        }
        let prot = if writable {
            ProtFlags::READ | ProtFlags::WRITE
        } else {
            ProtFlags::READ
        };
        // SAFETY: a fresh private mapping of a whole file we hold open;
        // nothing aliases it and Drop unmaps it. (As with libkmod, a file
        // truncated while mapped would fault.)
        let ptr =
            unsafe { rustix::mm::mmap(core::ptr::null_mut(), len, prot, MapFlags::PRIVATE, fd, 0) }
                .ok()?;
        Some(Mapped { ptr, len })
    }

    /// The bytes.
    pub fn bytes(&self) -> &[u8] {
        if self.len == 0 {
            return &[];
        }
        // SAFETY: `ptr` maps `len` readable bytes while `self` lives.
        unsafe { core::slice::from_raw_parts(self.ptr.cast::<u8>(), self.len) }
    }

    /// The bytes, writable (only for maps opened `writable`).
    pub fn bytes_mut(&mut self) -> &mut [u8] {
        if self.len == 0 {
            return &mut [];
        }
        // SAFETY: `ptr` maps `len` private writable bytes while `self`
        // lives, and `&mut self` makes this the only reference.
        unsafe { core::slice::from_raw_parts_mut(self.ptr.cast::<u8>(), self.len) }
    }
}

impl Drop for Mapped {
    fn drop(&mut self) {
        if self.len > 0 {
            // SAFETY: unmapping exactly our mapping; no borrow outlives self.
            let _ = unsafe { rustix::mm::munmap(self.ptr, self.len) };
        }
    }
}

/// Reads up to `buf.len()` bytes of a small file (sysfs, procfs).
pub fn read_small<'b>(path: &CStr, buf: &'b mut [u8]) -> Option<&'b [u8]> {
    let fd = open(path).ok()?;
    let mut n = 0;
    while n < buf.len() {
        match rustix::io::read(&fd, &mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(rustix::io::Errno::INTR) => continue,
            Err(_) => return None,
        }
    }
    Some(&buf[..n])
}

/// Kind of a directory entry, as far as config discovery cares.
#[derive(PartialEq, Eq)]
pub enum Kind {
    /// A directory.
    Dir,
    /// Anything else (or unknown).
    Other,
}

/// Calls `f(name, kind)` for every entry of directory `path`; false when
/// it cannot be opened as a directory.
pub fn list_dir(path: &CStr, f: &mut dyn FnMut(&str, Kind)) -> bool {
    let Ok(fd) = rustix::fs::open(
        path,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    ) else {
        return false;
    };
    let mut buf = [MaybeUninit::<u8>::uninit(); 4096];
    let mut dir = rustix::fs::RawDir::new(&fd, &mut buf);
    while let Some(Ok(e)) = dir.next() {
        let Ok(name) = e.file_name().to_str() else {
            continue;
        };
        let kind = match e.file_type() {
            rustix::fs::FileType::Directory => Kind::Dir,
            rustix::fs::FileType::Unknown => {
                match rustix::fs::statat(&fd, e.file_name(), rustix::fs::AtFlags::empty()) {
                    Ok(st)
                        if rustix::fs::FileType::from_raw_mode(st.st_mode)
                            == rustix::fs::FileType::Directory =>
                    {
                        Kind::Dir
                    }
                    _ => Kind::Other,
                }
            }
            _ => Kind::Other,
        };
        f(name, kind);
    }
    true
}

/// True when `path` is a directory.
pub fn is_dir(path: &CStr) -> bool {
    rustix::fs::stat(path).is_ok_and(|st| {
        rustix::fs::FileType::from_raw_mode(st.st_mode) == rustix::fs::FileType::Directory
    })
}

/// The running kernel's release (`uname -r`).
pub fn kernel_release(buf: &mut heapless::String<128>) {
    buf.clear();
    let u = rustix::system::uname();
    let _ = buf.push_str(u.release().to_str().unwrap_or(""));
}

/// The current directory, for making relative paths absolute.
pub fn current_dir(buf: &mut [MaybeUninit<u8>; 4096]) -> Option<&str> {
    let (done, _) =
        rustix::fs::readlinkat_raw(rustix::fs::CWD, c"/proc/self/cwd", &mut buf[..]).ok()?;
    core::str::from_utf8(done).ok()
}
