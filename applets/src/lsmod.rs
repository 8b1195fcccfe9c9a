//! The `lsmod` applet, in kmod's format, from `/proc/modules` and sysfs.

use crate::rmmod::{holders, refcnt};
use crate::sys::{Out, read_small};
use core::fmt::Write;

/// Prints the loaded modules; returns the exit code.
pub fn main(prog: &str) -> i32 {
    // /proc files report size 0: read them, do not map them.
    let mut buf = [0u8; 64 * 1024];
    let Some(text) = read_small(c"/proc/modules", &mut buf) else {
        let _ = writeln!(
            Out::stderr(),
            "{prog}: ERROR: could not get list of modules: cannot read /proc/modules"
        );
        return 1;
    };
    let mut out = Out::stdout();
    let _ = writeln!(out, "Module                  Size  Used by");
    for line in text.split(|&b| b == b'\n') {
        let mut f = line.split(|&b| b == b' ');
        let (Some(name), Some(size)) = (f.next(), f.next()) else {
            continue;
        };
        let (Ok(name), Ok(size)) = (core::str::from_utf8(name), core::str::from_utf8(size)) else {
            continue;
        };
        let used = refcnt(name).map_or(0i64, i64::from);
        let _ = write!(out, "{name:<19} {size:>8}  {used}");
        let mut first = true;
        holders(name, &mut |h| {
            out.bytes(if first { b" " } else { b"," });
            out.bytes(h.as_bytes());
            first = false;
        });
        out.bytes(b"\n");
    }
    0
}
