//! The one error type of the core: every bad input and every full buffer.
//!
//! Each variant says what went wrong in words a user can act on, and where
//! there is a bound, the bound: a full buffer is reported with its limit.

use crate::put;
use crate::text::{self, Hex, Piece, Sink};
use core::fmt;

/// What is wrong with an index file, or which of the reader's bounds a
/// walk of it hit (see [`Error::Index`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IndexFault {
    /// Shorter than the 12-byte header.
    TooShort,
    /// The magic is not `0xB007F457`.
    BadMagic(u32),
    /// The major version is not 2.
    BadVersion(u32),
    /// A node or value at this offset points past the end of the file.
    OffsetOutOfBounds(u32),
    /// A string at this offset has no terminating NUL.
    MissingNul(u32),
    /// The node at this offset has a child range with `first > last`.
    BadChildRange(u32),
    /// The node at this offset declares more values than the file can hold.
    BadValueCount(u32),
    /// The trie is deeper than [`crate::index::MAX_DEPTH`] (a loop).
    TooDeep,
    /// A walk visited more nodes and values than the file can hold: nodes
    /// are shared or looped, which a real (tree-shaped) index never does.
    NodeBudget,
    /// A key is longer than [`crate::index::MAX_PATTERN`] bytes.
    KeyTooLong,
    /// A wildcard lookup matched more values than its output holds (the
    /// bound).
    TooManyMatches(usize),
    /// The file exists but cannot be read: the errno, or 0 when it is not
    /// a regular file (a directory, a FIFO).
    Unreadable(i32),
}

/// What went wrong, in words a user can act on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Error {
    /// A corrupt or hostile index file: its name (`modules.alias.bin`;
    /// empty when the reader was not given one) and the fault.
    Index(&'static str, IndexFault),
    /// A bounded collection is full: what it holds and its bound.
    Capacity(&'static str, usize),
    /// A name or string is longer than its buffer: what it is and the
    /// bound in bytes.
    TooLong(&'static str, usize),
    /// A configuration file filled a bound: its first line over the bound
    /// is `line`; `ignored` lines of the file were dropped in all, of this
    /// kind or another that filled too (the rest of the file was used).
    ConfigFull {
        /// What filled (`config aliases`).
        what: &'static str,
        /// The bound.
        limit: usize,
        /// First line (1-based) that did not fit.
        line: u32,
        /// Lines of the file that did not fit.
        ignored: u32,
    },
    /// Softdeps nested deeper than [`crate::probe::MAX_SOFTDEP_DEPTH`].
    TooDeep,
    /// An alias with an unbalanced `]`.
    InvalidAlias,
    /// Text that is not valid UTF-8 where a name is expected.
    NotUtf8,
}

impl Piece for IndexFault {
    fn put_to(&self, out: &mut dyn Sink) {
        match *self {
            IndexFault::TooShort => put!(out; "index file too short for its header"),
            IndexFault::BadMagic(m) => put!(out; "bad index magic 0x", Hex(m.into(), 8)),
            IndexFault::BadVersion(v) => {
                put!(out; "unsupported index version 0x", Hex(v.into(), 8))
            }
            IndexFault::OffsetOutOfBounds(o) => {
                put!(out; "index offset 0x", Hex(o.into(), 0), " past end of file")
            }
            IndexFault::MissingNul(o) => {
                put!(out; "unterminated string at index offset 0x", Hex(o.into(), 0))
            }
            IndexFault::BadChildRange(o) => {
                put!(out; "bad child range in index node at 0x", Hex(o.into(), 0))
            }
            IndexFault::BadValueCount(o) => {
                put!(out; "absurd value count in index node at 0x", Hex(o.into(), 0))
            }
            IndexFault::TooDeep => put!(out;
                "index trie deeper than ",
                crate::index::MAX_DEPTH,
                " levels (loop in the index: corrupt or hostile file)"
            ),
            IndexFault::NodeBudget => put!(out;
                "index lookup exceeded its node budget (shared or looping nodes: corrupt or hostile file)"
            ),
            IndexFault::KeyTooLong => {
                put!(out; "index key longer than ", crate::index::MAX_PATTERN, " bytes")
            }
            IndexFault::TooManyMatches(n) => {
                put!(out; "too many modules matching one name (limit ", n, ")")
            }
            IndexFault::Unreadable(0) => put!(out; "not a regular file"),
            IndexFault::Unreadable(e) => {
                put!(out; "cannot read the file: ", crate::load::Errno(e).text())
            }
        }
    }
}

impl fmt::Display for IndexFault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        text::display(self, f)
    }
}

impl Piece for Error {
    fn put_to(&self, out: &mut dyn Sink) {
        match *self {
            Error::Index("", fault) => fault.put_to(out),
            Error::Index(file, fault) => put!(out; file, ": ", fault),
            Error::Capacity(what, limit) => put!(out; "too many ", what, " (limit ", limit, ")"),
            Error::TooLong(what, limit) => {
                put!(out; what, " too long (limit ", limit, " bytes)")
            }
            Error::ConfigFull {
                what,
                limit,
                line,
                ignored,
            } => {
                // The other lines may be of another kind that filled too.
                put!(out; "too many ", what, " (limit ", limit, "): line ", line);
                match ignored {
                    0 | 1 => put!(out; " ignored"),
                    2 => put!(out; " and 1 more line over a bound ignored"),
                    n => put!(out; " and ", n - 1, " more lines over a bound ignored"),
                }
            }
            Error::TooDeep => put!(out;
                "softdeps nested more than ",
                crate::probe::MAX_SOFTDEP_DEPTH,
                " deep"
            ),
            Error::InvalidAlias => put!(out; "invalid alias (unbalanced ']')"),
            Error::NotUtf8 => put!(out; "name is not valid UTF-8"),
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        text::display(self, f)
    }
}

/// Result with the core's error.
pub type Result<T> = core::result::Result<T, Error>;
