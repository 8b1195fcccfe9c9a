//! The `lsmod` applet, in kmod's format, from `/proc/modules` and sysfs
//! ([`crate::kernel::Loaded`]).

use crate::kernel::{Loaded, holders, refcnt};
use crate::sys::Out;
use earlymod_core::load::Errno;
use earlymod_core::put;
use earlymod_core::text::Pad;

/// Prints the loaded modules; returns the exit code.
pub fn main(prog: &str) -> i32 {
    let modules = match Loaded::open() {
        Ok(m) => m,
        Err(e) => return cannot_list(prog, e),
    };
    let mut out = Out::stdout();
    out.bytes(b"Module                  Size  Used by\n");
    let r = modules.for_each(&mut |name, size| {
        let used = refcnt(name).map_or(0i64, i64::from);
        put!(&mut out; Pad::left(&name, 19), " ", Pad::right(&size, 8), "  ", used);
        let mut first = true;
        holders(name, &mut |h| {
            out.bytes(if first { b" " } else { b"," });
            out.bytes(h.as_bytes());
            first = false;
        });
        out.bytes(b"\n");
    });
    out.flush();
    if let Err(e) = r {
        return cannot_list(prog, e);
    }
    0
}

/// kmod's error when `/proc/modules` cannot be read; the exit code.
fn cannot_list(prog: &str, e: Errno) -> i32 {
    put!(&mut Out::stderr();
        prog, ": ERROR: could not get list of modules: /proc/modules: ", e, "\n");
    1
}
