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
