//! The `lsmod` applet, in kmod's format, from `/proc/modules` and sysfs.
//! `/proc/modules` is streamed through a small buffer: any number of
//! modules, no heap.

use crate::rmmod::{holders, refcnt};
use crate::sys::Out;
use earlymod_core::load::Errno;
use earlymod_core::put;
use earlymod_core::text::Pad;

/// The read buffer: far longer than the two fields used of each line
/// (a module name is at most 55 bytes, its size at most 20 digits).
const CHUNK: usize = 4096;

/// Calls `line` with every line of the stream `read` fills (`Ok(0)` at its
/// end), without the newline. A line longer than `buf` is passed once, as
/// its first `buf.len()` bytes (lsmod uses only its first two fields), and
/// the rest of it skipped; a last line without a newline still counts.
pub fn for_each_line(
    read: &mut dyn FnMut(&mut [u8]) -> Result<usize, Errno>,
    buf: &mut [u8],
    line: &mut dyn FnMut(&[u8]),
) -> Result<(), Errno> {
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

/// Prints the loaded modules; returns the exit code.
pub fn main(prog: &str) -> i32 {
    // /proc files report size 0: read them, do not map them.
    let fd = match crate::sys::open(c"/proc/modules") {
        Ok(fd) => fd,
        Err(e) => return cannot_list(prog, Errno(e.raw_os_error())),
    };
    let mut out = Out::stdout();
    out.bytes(b"Module                  Size  Used by\n");
    let mut buf = [0u8; CHUNK];
    let mut read = |b: &mut [u8]| loop {
        match rustix::io::read(&fd, &mut *b) {
            Err(rustix::io::Errno::INTR) => continue,
            r => return r.map_err(|e| Errno(e.raw_os_error())),
        }
    };
    let r = for_each_line(&mut read, &mut buf, &mut |line| {
        let mut f = line.split(|&b| b == b' ');
        let (Some(name), Some(size)) = (f.next(), f.next()) else {
            return;
        };
        let (Ok(name), Ok(size)) = (core::str::from_utf8(name), core::str::from_utf8(size)) else {
            return;
        };
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
        for chunks in [&[CHUNK][..], &[1, 7, 300], &[4095, 1, 2]] {
            assert_eq!(lines(&text, chunks, CHUNK), want, "chunks {chunks:?}");
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
