//! The real kernel behind earlymod-core's [`Kernel`] trait: sysfs for
//! state, `finit_module`/`init_module` for loading.

use crate::sys::{self, CPath, Mapped};
use core::ffi::CStr;
use earlymod_core::load::{Compression, Errno, Kernel, LoadError};
use earlymod_core::probe::{InitState, KernelState};
use rustix::fd::OwnedFd;

/// The running kernel.
pub struct Live {
    compression: Option<Option<Compression>>,
}

impl Live {
    /// A handle on the running kernel.
    pub fn new() -> Live {
        Live { compression: None }
    }
}

impl Default for Live {
    fn default() -> Self {
        Self::new()
    }
}

/// `/sys/module/NAME/initstate`.
pub fn initstate(name: &str) -> InitState {
    let Some(path) = CPath::join(&["/sys/module/", name, "/initstate"]) else {
        return InitState::Absent;
    };
    let mut buf = [0u8; 32];
    match sys::read_small(path.as_cstr(), &mut buf) {
        Some(b"live\n") => InitState::Live,
        Some(_) => InitState::Transient,
        None => match CPath::join(&["/sys/module/", name]) {
            Some(dir) if sys::is_dir(dir.as_cstr()) => InitState::Transient,
            _ => InitState::Absent,
        },
    }
}

impl KernelState for Live {
    fn initstate(&self, name: &str) -> InitState {
        initstate(name)
    }
}

fn errno(e: rustix::io::Errno) -> Errno {
    Errno(e.raw_os_error())
}

impl Kernel for Live {
    type File = OwnedFd;

    fn open(&mut self, path: &CStr) -> Result<OwnedFd, Errno> {
        sys::open(path).map_err(errno)
    }

    fn read_at(&mut self, file: &OwnedFd, offset: u64, buf: &mut [u8]) -> Result<usize, Errno> {
        rustix::io::pread(file, buf, offset).map_err(errno)
    }

    fn finit_module(&mut self, file: &OwnedFd, params: &CStr, flags: u32) -> Result<(), Errno> {
        rustix::system::finit_module(file, params, flags as i32).map_err(errno)
    }

    fn init_module_decompressed(
        &mut self,
        file: &OwnedFd,
        format: Compression,
        params: &CStr,
    ) -> Result<(), LoadError> {
        let Some(map) = Mapped::from_fd(file, false) else {
            return Err(LoadError::Open(Errno(5)));
        };
        crate::decode::init_module_from(map.bytes(), format, params)
    }

    fn kernel_compression(&mut self) -> Option<Compression> {
        *self.compression.get_or_insert_with(|| {
            let mut buf = [0u8; 16];
            sys::read_small(c"/sys/module/compression", &mut buf).and_then(Compression::from_sysfs)
        })
    }

    fn run_command(&mut self, command: &str, options: &str) -> Result<(), LoadError> {
        crate::command::run_install(command, options)
    }
}

/// `/sys/module/NAME/refcnt`, if readable.
pub fn refcnt(name: &str) -> Option<u32> {
    let path = CPath::join(&["/sys/module/", name, "/refcnt"])?;
    let mut buf = [0u8; 16];
    let b = sys::read_small(path.as_cstr(), &mut buf)?;
    core::str::from_utf8(b).ok()?.trim().parse().ok()
}

/// Calls `f` with each holder of module `name` (`/sys/module/NAME/holders`).
pub fn holders(name: &str, f: &mut dyn FnMut(&str)) {
    if let Some(path) = CPath::join(&["/sys/module/", name, "/holders"]) {
        sys::list_dir(path.as_cstr(), &mut |h, _| {
            if h != "." && h != ".." {
                f(h)
            }
        });
    }
}

/// The read buffer for `/proc/modules`: far longer than the two fields
/// used of each line (a module name is at most 55 bytes, its size at most
/// 20 digits).
const CHUNK: usize = 4096;

/// The running kernel's module list (`/proc/modules`), open: what `lsmod`
/// lists ([`refcnt`] and [`holders`] give the rest).
pub struct Loaded(OwnedFd);

impl Loaded {
    /// Opens `/proc/modules`; the error is its errno.
    pub fn open() -> Result<Loaded, Errno> {
        // /proc files report size 0: read them, do not map them.
        sys::open(c"/proc/modules").map(Loaded).map_err(errno)
    }

    /// Calls `f` with the name and size (in bytes, as text) of every
    /// module, in `/proc/modules` order. Streamed through a small buffer:
    /// any number of modules, no heap. The error is a read's errno.
    pub fn for_each(&self, f: &mut dyn FnMut(&str, &str)) -> Result<(), Errno> {
        let mut buf = [0u8; CHUNK];
        let mut read = |b: &mut [u8]| loop {
            match rustix::io::read(&self.0, &mut *b) {
                Err(rustix::io::Errno::INTR) => continue,
                r => return r.map_err(errno),
            }
        };
        sys::for_each_line(&mut read, &mut buf, &mut |line| {
            let mut fields = line.split(|&b| b == b' ');
            if let (Some(name), Some(size)) = (fields.next(), fields.next()) {
                if let (Ok(name), Ok(size)) =
                    (core::str::from_utf8(name), core::str::from_utf8(size))
                {
                    f(name, size);
                }
            }
        })
    }
}
