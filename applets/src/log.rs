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
        let mut err = Out::stderr();
        earlymod_core::put!(&mut err; self.prog, ": ", level_name(prio), ": ");
        for p in pieces {
            p.put_to(&mut err);
        }
        err.bytes(b"\n");
    }
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
