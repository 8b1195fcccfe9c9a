//! kmod-style diagnostics: `prog: LEVEL: message` on stderr.

use crate::sys::Out;
use earlymod_core::text::Piece;

/// syslog priorities as kmod uses them.
pub const LOG_CRIT: i32 = 2;
/// Errors.
pub const LOG_ERR: i32 = 3;
/// Warnings (kmod's default verbosity).
pub const LOG_WARNING: i32 = 4;
/// Notices (`-v`).
pub const LOG_NOTICE: i32 = 5;

/// A logger for one applet.
pub struct Log<'p> {
    /// The applet name printed first.
    pub prog: &'p str,
    /// Highest priority printed.
    pub verbose: i32,
}

impl Log<'_> {
    /// Prints the message made of `pieces` at `prio` when enabled:
    /// `log.say(LOG_ERR, &[&"Module ", &name, &" not found."])`.
    pub fn say(&self, prio: i32, pieces: &[&dyn Piece]) {
        if prio > self.verbose {
            return;
        }
        earlymod_core::put!(&mut Out::stderr(); self.prog, ": ", level_name(prio), ": ", pieces, "\n");
    }
}

/// A `String` as a [`Sink`](earlymod_core::text::Sink): the messages PID 1
/// and modinfo build on the heap.
#[cfg(any(feature = "init", feature = "coldplug", feature = "modinfo"))]
pub(crate) struct Text(pub alloc::string::String);

#[cfg(any(feature = "init", feature = "coldplug", feature = "modinfo"))]
impl earlymod_core::text::Sink for Text {
    fn put(&mut self, bytes: &[u8]) {
        // Pieces write whole UTF-8 sequences (strings, digits, ASCII).
        if let Ok(s) = core::str::from_utf8(bytes) {
            self.0.push_str(s);
        }
    }
}

/// The pieces as one string.
#[cfg(any(feature = "init", feature = "coldplug", feature = "modinfo"))]
pub(crate) fn text(pieces: &[&dyn Piece]) -> alloc::string::String {
    let mut t = Text(alloc::string::String::new());
    pieces.put_to(&mut t);
    t.0
}

/// kmod's name of a syslog priority.
fn level_name(prio: i32) -> &'static str {
    match prio {
        0..=2 => "FATAL",
        3 => "ERROR",
        4 => "WARNING",
        5 => "NOTICE",
        6 => "INFO",
        _ => "DEBUG",
    }
}
