//! The one error type of the core: every bad input and every full buffer.
//!
//! Each variant says what went wrong in words a user can act on, and where
//! there is a bound, the bound: a full buffer is reported with its limit.

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

impl fmt::Display for IndexFault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            IndexFault::TooShort => f.write_str("index file too short for its header"),
            IndexFault::BadMagic(m) => write!(f, "bad index magic 0x{m:08x}"),
            IndexFault::BadVersion(v) => write!(f, "unsupported index version 0x{v:08x}"),
            IndexFault::OffsetOutOfBounds(o) => {
                write!(f, "index offset 0x{o:x} past end of file")
            }
            IndexFault::MissingNul(o) => {
                write!(f, "unterminated string at index offset 0x{o:x}")
            }
            IndexFault::BadChildRange(o) => {
                write!(f, "bad child range in index node at 0x{o:x}")
            }
            IndexFault::BadValueCount(o) => {
                write!(f, "absurd value count in index node at 0x{o:x}")
            }
            IndexFault::TooDeep => write!(
                f,
                "index trie deeper than {} levels (loop in the index: corrupt or hostile file)",
                crate::index::MAX_DEPTH
            ),
            IndexFault::NodeBudget => f.write_str(
                "index lookup exceeded its node budget (shared or looping nodes: corrupt or hostile file)",
            ),
            IndexFault::KeyTooLong => write!(
                f,
                "index key longer than {} bytes",
                crate::index::MAX_PATTERN
            ),
            IndexFault::TooManyMatches(n) => {
                write!(f, "too many modules matching one name (limit {n})")
            }
            IndexFault::Unreadable(0) => f.write_str("not a regular file"),
            IndexFault::Unreadable(e) => {
                write!(f, "cannot read the file: {}", crate::load::Errno(*e))
            }
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Index("", fault) => write!(f, "{fault}"),
            Error::Index(file, fault) => write!(f, "{file}: {fault}"),
            Error::Capacity(what, limit) => write!(f, "too many {what} (limit {limit})"),
            Error::TooLong(what, limit) => write!(f, "{what} too long (limit {limit} bytes)"),
            Error::ConfigFull {
                what,
                limit,
                line,
                ignored,
            } => {
                // The other lines may be of another kind that filled too.
                write!(f, "too many {what} (limit {limit}): line {line}")?;
                match ignored {
                    0 | 1 => f.write_str(" ignored"),
                    2 => f.write_str(" and 1 more line over a bound ignored"),
                    n => write!(f, " and {} more lines over a bound ignored", n - 1),
                }
            }
            Error::TooDeep => write!(
                f,
                "softdeps nested more than {} deep",
                crate::probe::MAX_SOFTDEP_DEPTH
            ),
            Error::InvalidAlias => f.write_str("invalid alias (unbalanced ']')"),
            Error::NotUtf8 => f.write_str("name is not valid UTF-8"),
        }
    }
}

/// Result with the core's error.
pub type Result<T> = core::result::Result<T, Error>;
