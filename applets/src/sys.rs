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

/// `ms` milliseconds as a `Timespec` (for `nanosleep` and `poll`).
pub fn ms_timespec(ms: u64) -> rustix::time::Timespec {
    rustix::time::Timespec {
        tv_sec: (ms / 1000) as i64,
        tv_nsec: ((ms % 1000) * 1_000_000) as i64,
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
        // The size from the fstat above: one fstat per mapped file.
        Self::map(&fd, usize::try_from(st.st_size).map_err(|_| 0)?, writable).ok_or(0)
    }

    /// Maps an open file.
    pub fn from_fd<Fd: AsFd>(fd: Fd, writable: bool) -> Option<Mapped> {
        let len = usize::try_from(rustix::fs::fstat(&fd).ok()?.st_size).ok()?;
        Self::map(fd, len, writable)
    }

    /// Maps the first `len` bytes of an open file (its size).
    fn map<Fd: AsFd>(fd: Fd, len: usize, writable: bool) -> Option<Mapped> {
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

/// Calls `line` with every line of the stream `read` fills (`Ok(0)` at its
/// end), without the newline. A line longer than `buf` is passed once, as
/// its first `buf.len()` bytes (lsmod uses only its first two fields), and
/// the rest of it skipped; a last line without a newline still counts.
pub fn for_each_line(
    read: &mut dyn FnMut(&mut [u8]) -> Result<usize, earlymod_core::load::Errno>,
    buf: &mut [u8],
    line: &mut dyn FnMut(&[u8]),
) -> Result<(), earlymod_core::load::Errno> {
    let mut len = 0;
    // Inside a line whose head was already passed on.
    let mut skipping = false;
    loop {
        let n = read(&mut buf[len..])?;
        if n == 0 {
            if len > 0 && !skipping {
                line(&buf[..len]);
            }
            return Ok(());
        }
        let end = len + n.min(buf.len() - len);
        let mut start = 0;
        while let Some(nl) = buf[start..end].iter().position(|&b| b == b'\n') {
            if !skipping {
                line(&buf[start..start + nl]);
            }
            skipping = false;
            start += nl + 1;
        }
        if start == 0 && end == buf.len() {
            // A full buffer and no newline: pass the head, drop the rest.
            if !skipping {
                line(&buf[..end]);
            }
            skipping = true;
            len = 0;
        } else if skipping {
            len = 0;
        } else {
            buf.copy_within(start..end, 0);
            len = end - start;
        }
    }
}

#[cfg(test)]
mod tests {
    extern crate std;
    use super::*;
    use std::string::String;
    use std::vec::Vec;

    /// Feeds `text` in chunks of the given sizes (cycled) to
    /// [`for_each_line`] over a `cap`-byte buffer.
    fn lines(text: &[u8], chunks: &[usize], cap: usize) -> Vec<String> {
        let mut pos = 0;
        let mut k = 0;
        let mut read = |b: &mut [u8]| {
            let n = chunks[k % chunks.len()].min(b.len()).min(text.len() - pos);
            k += 1;
            b[..n].copy_from_slice(&text[pos..pos + n]);
            pos += n;
            Ok(n)
        };
        let mut buf = std::vec![0u8; cap];
        let mut got = Vec::new();
        for_each_line(&mut read, &mut buf, &mut |l| {
            got.push(String::from_utf8_lossy(l).into_owned())
        })
        .unwrap();
        got
    }

    /// `/proc/modules` far over the old fixed 64 KiB buffer: every module
    /// is listed, whatever the read sizes; an over-long line keeps its
    /// head (name and size) and does not eat the next line.
    #[test]
    fn proc_modules_of_any_size_is_streamed() {
        let mut text = Vec::new();
        let mut want = Vec::new();
        for i in 0..5000 {
            let l = std::format!("module_{i} {} 0 - Live 0x0000000000000000", 4096 + i);
            text.extend_from_slice(l.as_bytes());
            text.push(b'\n');
            want.push(l);
        }
        assert!(text.len() > 3 * 64 * 1024);
        for chunks in [&[4096][..], &[1, 7, 300], &[4095, 1, 2]] {
            assert_eq!(lines(&text, chunks, 4096), want, "chunks {chunks:?}");
        }
        // A line longer than the buffer (a module used by very many
        // others), then one without a final newline.
        let long = std::format!("big 123 9 {} Live 0x0", "holder,".repeat(50));
        let text = std::format!("a 1 0 - Live 0x0\n{long}\nz 2 0 - Live 0x0");
        let got = lines(text.as_bytes(), &[5, 64], 64);
        assert_eq!(got.len(), 3, "{got:?}");
        assert_eq!(got[0], "a 1 0 - Live 0x0");
        assert_eq!(got[1], long[..64]);
        assert_eq!(got[2], "z 2 0 - Live 0x0");
        // A long line ending exactly at the buffer's end, newline next.
        let text = std::format!("{}\nb 2\n", "x".repeat(64));
        assert_eq!(
            lines(text.as_bytes(), &[64, 1, 64], 64),
            ["x".repeat(64), "b 2".into()]
        );
    }
}
