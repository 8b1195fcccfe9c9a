//! The one error type of the core: every bad input and every full buffer.

use core::fmt;

/// What went wrong, in words a user can act on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Error {
    /// An index file shorter than its 12-byte header.
    IndexTooShort,
    /// The index magic is not `0xB007F457`.
    BadMagic(u32),
    /// The index major version is not 2.
    BadVersion(u32),
    /// A node or value points past the end of the index.
    OffsetOutOfBounds(u32),
    /// A string in the index has no terminating NUL.
    MissingNul(u32),
    /// A node's child range has `first > last`.
    BadChildRange(u32),
    /// A node's value count cannot fit in the file.
    BadValueCount(u32),
    /// The trie is deeper than any real index (a loop or a hostile file).
    TooDeep,
    /// A lookup visited more nodes than the file can hold (a loop or a hostile file).
    NodeBudget,
    /// A bounded collection is full; names the collection.
    Capacity(&'static str),
    /// A name or string is longer than its buffer; names the buffer.
    TooLong(&'static str),
    /// An alias with an unbalanced `]`.
    InvalidAlias,
    /// Text that is not valid UTF-8 where a name is expected.
    NotUtf8,
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::IndexTooShort => f.write_str("index file too short for its header"),
            Error::BadMagic(m) => write!(f, "bad index magic 0x{m:08x}"),
            Error::BadVersion(v) => write!(f, "unsupported index version 0x{v:08x}"),
            Error::OffsetOutOfBounds(o) => write!(f, "index offset 0x{o:x} past end of file"),
            Error::MissingNul(o) => write!(f, "unterminated string at index offset 0x{o:x}"),
            Error::BadChildRange(o) => write!(f, "bad child range in index node at 0x{o:x}"),
            Error::BadValueCount(o) => write!(f, "absurd value count in index node at 0x{o:x}"),
            Error::TooDeep => f.write_str("index trie too deep (corrupt or hostile index)"),
            Error::NodeBudget => {
                f.write_str("index lookup exceeded its node budget (loop in index)")
            }
            Error::Capacity(what) => write!(f, "too many {what} (bounded buffer full)"),
            Error::TooLong(what) => write!(f, "{what} too long"),
            Error::InvalidAlias => f.write_str("invalid alias (unbalanced ']')"),
            Error::NotUtf8 => f.write_str("name is not valid UTF-8"),
        }
    }
}

/// Result with the core's error.
pub type Result<T> = core::result::Result<T, Error>;
