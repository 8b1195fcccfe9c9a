//! PID 1's log: every line with a monotonic timestamp to `/dev/kmsg`, and to
//! the console (stderr) when `earlymod.debug` is set or the line matters
//! to the user (errors, failures).

use alloc::string::String;

use earlymod_core::put;
use earlymod_core::text::{Dec, Piece};
use rustix::fd::OwnedFd;
use rustix::fs::{Mode, OFlags};

use crate::log::Text;
use crate::sys::Out;

/// The logger.
pub struct Klog {
    kmsg: Option<OwnedFd>,
    /// Also print debug lines on the console.
    pub debug: bool,
    /// Print every line on the console (helper modes run from a shell).
    pub console: bool,
}

impl Klog {
    /// A logger that opens `/dev/kmsg` when it can.
    pub fn new() -> Klog {
        let mut k = Klog {
            kmsg: None,
            debug: false,
            console: false,
        };
        k.reopen();
        k
    }

    /// A logger that writes only to the console (tests, no `/dev/kmsg`).
    #[cfg(test)]
    pub fn console_only() -> Klog {
        Klog {
            kmsg: None,
            debug: false,
            console: false,
        }
    }

    /// (Re)opens `/dev/kmsg` (after devtmpfs is mounted).
    pub fn reopen(&mut self) {
        if self.kmsg.is_none() {
            self.kmsg = rustix::fs::open(
                c"/dev/kmsg",
                OFlags::WRONLY | OFlags::CLOEXEC | OFlags::NOCTTY,
                Mode::empty(),
            )
            .ok();
        }
    }

    fn emit(&mut self, level: u8, console: bool, pieces: &[&dyn Piece]) {
        let t = super::now_us();
        let mut s = Text(String::new());
        put!(&mut s; "<", level, ">earlymod: [", t / 1_000_000, ".", Dec(t % 1_000_000, 6), "] ",
            pieces, "\n");
        let s = s.0;
        if let Some(fd) = &self.kmsg {
            let _ = rustix::io::write(fd, s.as_bytes());
        }
        if console || self.console {
            let mut err = Out::stderr();
            err.bytes(&s.as_bytes()[3..]);
            err.flush();
        }
    }

    /// A line the user should see (errors, failures, milestones).
    pub fn line(&mut self, pieces: &[&dyn Piece]) {
        self.emit(5, true, pieces);
    }

    /// A step: kmsg always, the console with `earlymod.debug`.
    pub fn debug(&mut self, pieces: &[&dyn Piece]) {
        let d = self.debug;
        self.emit(7, d, pieces);
    }
}

impl super::Logger for Klog {
    fn line(&mut self, msg: &[&dyn Piece]) {
        Klog::line(self, msg)
    }
    fn debug(&mut self, msg: &[&dyn Piece]) {
        Klog::debug(self, msg)
    }
    fn dev_mounted(&mut self) {
        self.reopen()
    }
}

impl Default for Klog {
    fn default() -> Self {
        Self::new()
    }
}
