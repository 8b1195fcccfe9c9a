//! Messages without `core::fmt`: strings and integers written piece by
//! piece into a [`Sink`].
//!
//! `core::fmt` costs a tiny static binary several kilobytes (the
//! formatting engine, padding, every integer's `Display`) and keeps the
//! arguments of every message alive as trait objects. earlymod's messages
//! need none of it: they are strings, decimal and hexadecimal numbers, and
//! a few padded columns. Each piece implements [`Piece`]; [`put!`](crate::put) writes a
//! sequence of them; the error types' `Display` impls are written with the
//! same pieces ([`display`]), so both paths print the same bytes.
//!
//! ```
//! use earlymod_core::{put, text::{Hex, Pad, Sink}};
//! struct Line(heapless::Vec<u8, 64>);
//! impl Sink for Line {
//!     fn put(&mut self, bytes: &[u8]) {
//!         self.0.extend_from_slice(bytes).expect("a short line");
//!     }
//! }
//! let mut out = Line(heapless::Vec::new());
//! put!(&mut out; "offset 0x", Hex(0x2a, 8), ": ", 42u32, " [", Pad::left(&"ab", 4), "]");
//! assert_eq!(&out.0[..], b"offset 0x0000002a: 42 [ab  ]");
//! ```

use core::fmt;

/// Where a message goes: bytes in, nothing fails (a full or failing output
/// is the sink's own concern, as with stdio).
pub trait Sink {
    /// Appends `bytes`.
    fn put(&mut self, bytes: &[u8]);
}

/// One piece of a message.
pub trait Piece {
    /// Writes the piece.
    fn put_to(&self, out: &mut dyn Sink);
}

/// Writes pieces into a sink, in order: `put!(&mut out; "a", n, "\n")`.
#[macro_export]
macro_rules! put {
    ($out:expr; $($piece:expr),+ $(,)?) => {{
        let out: &mut dyn $crate::text::Sink = $out;
        $( $crate::text::Piece::put_to(&$piece, out); )+
    }};
}

impl Piece for str {
    fn put_to(&self, out: &mut dyn Sink) {
        out.put(self.as_bytes());
    }
}

impl Piece for [u8] {
    fn put_to(&self, out: &mut dyn Sink) {
        out.put(self);
    }
}

impl<T: Piece + ?Sized> Piece for &T {
    fn put_to(&self, out: &mut dyn Sink) {
        (**self).put_to(out);
    }
}

/// A message made of pieces is a piece: `put!(out; prefix, pieces, "\n")`.
impl Piece for [&dyn Piece] {
    fn put_to(&self, out: &mut dyn Sink) {
        for p in self {
            p.put_to(out);
        }
    }
}

impl Piece for char {
    fn put_to(&self, out: &mut dyn Sink) {
        let mut b = [0u8; 4];
        out.put(self.encode_utf8(&mut b).as_bytes());
    }
}

macro_rules! unsigned {
    ($($t:ty),*) => {$(
        impl Piece for $t {
            fn put_to(&self, out: &mut dyn Sink) {
                Dec(*self as u64, 0).put_to(out);
            }
        }
    )*};
}
unsigned!(u8, u16, u32, u64, usize);

macro_rules! signed {
    ($($t:ty),*) => {$(
        impl Piece for $t {
            fn put_to(&self, out: &mut dyn Sink) {
                if *self < 0 {
                    out.put(b"-");
                }
                Dec((*self as i64).unsigned_abs(), 0).put_to(out);
            }
        }
    )*};
}
signed!(i8, i16, i32, i64, isize);

/// A number in decimal, zero-padded to a width (`{:06}`; width 0: none).
#[derive(Clone, Copy)]
pub struct Dec(pub u64, pub u8);

/// A number in lowercase hexadecimal, zero-padded to a width (`{:08x}`;
/// width 0: `{:x}`).
#[derive(Clone, Copy)]
pub struct Hex(pub u64, pub u8);

/// Digits of `v` in `radix` (10 or 16), at least `width` of them (one copy
/// for every integer type).
#[inline(never)]
fn digits(out: &mut dyn Sink, mut v: u64, radix: u64, width: u8) {
    let mut buf = [b'0'; 24];
    let mut i = buf.len();
    loop {
        i -= 1;
        buf[i] = b"0123456789abcdef"[(v % radix) as usize];
        v /= radix;
        if v == 0 {
            break;
        }
    }
    let start = i.min(buf.len().saturating_sub(width as usize));
    out.put(&buf[start..]);
}

impl Piece for Dec {
    fn put_to(&self, out: &mut dyn Sink) {
        digits(out, self.0, 10, self.1);
    }
}

impl Piece for Hex {
    fn put_to(&self, out: &mut dyn Sink) {
        digits(out, self.0, 16, self.1);
    }
}

/// A piece padded with spaces to a width in characters, as `{:<w}` (left:
/// text first) and `{:>w}` (right) pad; a longer piece is not cut.
#[derive(Clone, Copy)]
pub struct Pad<'a> {
    piece: &'a dyn Piece,
    width: usize,
    left: bool,
}

impl<'a> Pad<'a> {
    /// `{:<width}`: the piece, then spaces.
    pub fn left(piece: &'a dyn Piece, width: usize) -> Pad<'a> {
        Pad {
            piece,
            width,
            left: true,
        }
    }

    /// `{:>width}`: spaces, then the piece.
    pub fn right(piece: &'a dyn Piece, width: usize) -> Pad<'a> {
        Pad {
            piece,
            width,
            left: false,
        }
    }
}

/// Counts the characters written into it.
struct CharCount(usize);

impl Sink for CharCount {
    fn put(&mut self, bytes: &[u8]) {
        self.0 += bytes.iter().filter(|&&b| b & 0xc0 != 0x80).count();
    }
}

fn spaces(out: &mut dyn Sink, mut n: usize) {
    const SP: &[u8; 16] = b"                ";
    while n > 0 {
        let k = n.min(SP.len());
        out.put(&SP[..k]);
        n -= k;
    }
}

impl Piece for Pad<'_> {
    fn put_to(&self, out: &mut dyn Sink) {
        let mut count = CharCount(0);
        self.piece.put_to(&mut count);
        let fill = self.width.saturating_sub(count.0);
        if !self.left {
            spaces(out, fill);
        }
        self.piece.put_to(out);
        if self.left {
            spaces(out, fill);
        }
    }
}

/// A line of pieces (a diagnostic, an event's words) as a `Display`:
/// `format!("{}", Shown(line))`.
#[derive(Clone, Copy)]
pub struct Shown<'a>(pub &'a [&'a dyn Piece]);

impl fmt::Display for Shown<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        display(&self.0, f)
    }
}

/// `Display` through pieces: `impl Display for T { fn fmt(&self, f) {
/// text::display(self, f) } }` prints what [`Piece::put_to`] writes.
pub fn display(piece: &dyn Piece, f: &mut fmt::Formatter<'_>) -> fmt::Result {
    struct Formatted<'f, 'g>(&'f mut fmt::Formatter<'g>, fmt::Result);
    impl Sink for Formatted<'_, '_> {
        fn put(&mut self, bytes: &[u8]) {
            if self.1.is_ok() {
                // Pieces write whole UTF-8 sequences.
                self.1 = match core::str::from_utf8(bytes) {
                    Ok(s) => self.0.write_str(s),
                    Err(_) => Err(fmt::Error),
                };
            }
        }
    }
    let mut sink = Formatted(f, Ok(()));
    piece.put_to(&mut sink);
    sink.1
}

#[cfg(test)]
mod tests {
    extern crate std;
    use super::*;
    use std::format;
    use std::string::String;

    struct Buf(String);
    impl Sink for Buf {
        fn put(&mut self, b: &[u8]) {
            self.0.push_str(core::str::from_utf8(b).unwrap());
        }
    }
    fn show(p: &dyn Piece) -> String {
        let mut b = Buf(String::new());
        p.put_to(&mut b);
        b.0
    }

    #[test]
    fn pieces_print_what_core_fmt_prints() {
        for v in [0u64, 1, 9, 10, 255, 4096, 99_999, u32::MAX as u64, u64::MAX] {
            assert_eq!(show(&v), format!("{v}"));
            assert_eq!(show(&Hex(v, 0)), format!("{v:x}"));
            assert_eq!(show(&Hex(v, 8)), format!("{v:08x}"));
            assert_eq!(show(&Dec(v, 6)), format!("{v:06}"));
            assert_eq!(show(&Dec(v, 3)), format!("{v:03}"));
        }
        for v in [0i32, -1, 7, i32::MIN, i32::MAX] {
            assert_eq!(show(&v), format!("{v}"));
        }
        assert_eq!(show(&i64::MIN), format!("{}", i64::MIN));
        for s in ["", "a", "ext4", "a_very_long_module_name_indeed", "é€x"] {
            assert_eq!(show(&Pad::left(&s, 19)), format!("{s:<19}"));
            assert_eq!(show(&Pad::right(&s, 8)), format!("{s:>8}"));
        }
        assert_eq!(show(&Pad::right(&12345u64, 8)), format!("{:>8}", 12345));
        assert_eq!(show(&'ß'), "ß");
    }

    #[test]
    fn display_goes_through_the_pieces() {
        struct Both;
        impl Piece for Both {
            fn put_to(&self, out: &mut dyn Sink) {
                crate::put!(out; "n=", 5u8, " x=", Hex(0xbeef, 0));
            }
        }
        impl fmt::Display for Both {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                display(self, f)
            }
        }
        assert_eq!(format!("{}", Both), "n=5 x=beef");
        let parts: &[&dyn Piece] = &[&"a", &1u8, &Both];
        assert_eq!(show(&parts), "a1n=5 x=beef");
    }
}
