//! newc ("070701") cpio archives, as Linux unpacks them into the initramfs.
//!
//! Format: each entry is a 110-byte ASCII header — the magic `070701` and 13
//! fields of 8 hex digits (ino, mode, uid, gid, nlink, mtime, filesize,
//! devmajor, devminor, rdevmajor, rdevminor, namesize including the NUL,
//! check) — then the name and its NUL, padded so that header + name end on a
//! 4-byte boundary, then the data, padded to 4 bytes. The archive ends with
//! an entry named `TRAILER!!!`.
//!
//! [`write_newc`] writes what `cpio -o -H newc --reproducible` would for the
//! same tree (upper-case hex, trailer with nlink 1, dev 0), with fixed
//! owners, times and inode numbers, and without the 512-byte block padding
//! (the kernel does not need it).
//!
//! [`read_image`] reads a whole initramfs image the way the kernel's
//! `init/initramfs.c` walks it: uncompressed archives and gzip / xz / zstd
//! members, concatenated, with NUL padding in between.

use core::fmt;

use earlymod_decompress::{Error as DecompressError, Format};

/// File type bits of `st_mode`.
pub const S_IFMT: u32 = 0o170_000;
/// Directory.
pub const S_IFDIR: u32 = 0o040_000;
/// Regular file.
pub const S_IFREG: u32 = 0o100_000;
/// Symbolic link.
pub const S_IFLNK: u32 = 0o120_000;
/// Character device.
pub const S_IFCHR: u32 = 0o020_000;

/// Magic of a newc header.
pub const NEWC_MAGIC: &[u8; 6] = b"070701";
/// Magic of a newc header whose `check` field is the byte sum of the data
/// (`cpio -H crc`); the kernel verifies it for regular files, so do we.
pub const CRC_MAGIC: &[u8; 6] = b"070702";
/// Length of a newc header.
pub const HEADER_LEN: usize = 110;
/// Name of the entry that ends an archive.
pub const TRAILER_NAME: &str = "TRAILER!!!";
/// Largest `namesize` (name plus NUL) the kernel unpacks; it silently
/// skips entries with longer names.
pub const PATH_MAX: usize = 4096;
/// Default cap on the total decompressed size of an image's compressed
/// members (1 GiB), see [`read_image_with_limit`].
pub const MAX_DECOMPRESSED: usize = earlymod_decompress::MAX_OUTPUT;

/// Largest major / minor device numbers of the kernel's `dev_t`
/// (12 and 20 bits).
const MAX_MAJOR: u32 = (1 << 12) - 1;
const MAX_MINOR: u32 = (1 << 20) - 1;

/// Names of the 13 header fields, in order (for error messages).
const FIELDS: [&str; 13] = [
    "ino",
    "mode",
    "uid",
    "gid",
    "nlink",
    "mtime",
    "filesize",
    "devmajor",
    "devminor",
    "rdevmajor",
    "rdevminor",
    "namesize",
    "check",
];

/// What an [`Entry`] is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EntryKind {
    /// A directory (written with nlink 2).
    Dir,
    /// A regular file with these contents (at most `u32::MAX` bytes).
    File(Vec<u8>),
    /// A symbolic link to this target (stored as the data, without NUL).
    Symlink(String),
    /// A character device node (`rdevmajor` / `rdevminor`).
    CharDev {
        /// Device major number.
        major: u32,
        /// Device minor number.
        minor: u32,
    },
}

/// One entry to write.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// Relative path without a leading '/', e.g. `"dev/console"`. The
    /// kernel does not create parent directories: list them first.
    pub path: String,
    /// Permission bits only (`mode & !0o7777 == 0`), e.g. `0o755`.
    pub mode: u32,
    /// Type and contents.
    pub kind: EntryKind,
}

impl Entry {
    /// A directory.
    pub fn dir(path: impl Into<String>, mode: u32) -> Self {
        Entry {
            path: path.into(),
            mode,
            kind: EntryKind::Dir,
        }
    }

    /// A regular file.
    pub fn file(path: impl Into<String>, mode: u32, data: impl Into<Vec<u8>>) -> Self {
        Entry {
            path: path.into(),
            mode,
            kind: EntryKind::File(data.into()),
        }
    }

    /// A symbolic link (mode 0o777, as `ln -s` makes them).
    pub fn symlink(path: impl Into<String>, target: impl Into<String>) -> Self {
        Entry {
            path: path.into(),
            mode: 0o777,
            kind: EntryKind::Symlink(target.into()),
        }
    }

    /// A character device.
    pub fn char_dev(path: impl Into<String>, mode: u32, major: u32, minor: u32) -> Self {
        Entry {
            path: path.into(),
            mode,
            kind: EntryKind::CharDev { major, minor },
        }
    }
}

/// One entry read back from an image, with its header fields.
/// One entry as read back from an archive.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReadEntry {
    /// Name as stored (without the NUL).
    pub path: String,
    /// Full `st_mode`, type bits included.
    pub mode: u32,
    /// Inode number.
    pub ino: u32,
    /// Owner.
    pub uid: u32,
    /// Group.
    pub gid: u32,
    /// Link count.
    pub nlink: u32,
    /// Modification time (seconds since the epoch).
    pub mtime: u32,
    /// (rdevmajor, rdevminor).
    pub rdev: (u32, u32),
    /// File contents, or the symlink target; whatever `filesize` covers.
    pub data: Vec<u8>,
}

/// Where in an image a reading error was found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Location {
    /// The compressed member being read: its offset in the image and its
    /// format. `None` for data stored uncompressed in the image.
    pub member: Option<(usize, Format)>,
    /// Offset of the header (or byte) at fault: in the image, or in the
    /// member's decompressed data.
    pub offset: usize,
    /// The entry being read, once its name is known.
    pub entry: Option<String>,
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.member {
            None => write!(f, "offset {}", self.offset)?,
            Some((at, format)) => write!(
                f,
                "{format} member at offset {at}, decompressed offset {}",
                self.offset
            )?,
        }
        if let Some(entry) = &self.entry {
            write!(f, ", entry {entry:?}")?;
        }
        Ok(())
    }
}

/// Why an archive could not be written or read. `Display` gives one line
/// naming the entry or offset and the reason.
#[derive(Debug)]
#[non_exhaustive]
pub enum CpioError {
    /// The writer was given an entry it must not encode.
    InvalidEntry {
        /// The entry's path.
        path: String,
        /// Why it cannot be written.
        reason: String,
    },
    /// No `070701` / `070702` magic where a header must start.
    BadMagic {
        /// Where: the entry or byte offset.
        at: Location,
        /// The six bytes found instead.
        found: [u8; 6],
    },
    /// A header field is not 8 hex digits.
    BadField {
        /// Where: the entry or byte offset.
        at: Location,
        /// The field's name.
        field: &'static str,
    },
    /// The entry name is empty, too long, not NUL-terminated or not UTF-8.
    BadName {
        /// Where: the entry or byte offset.
        at: Location,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// The input ends inside an entry; `what` names the part.
    Truncated {
        /// Where: the entry or byte offset.
        at: Location,
        /// The part cut off.
        what: &'static str,
    },
    /// The input ends between entries, before a `TRAILER!!!` entry.
    MissingTrailer {
        /// Where: the entry or byte offset.
        at: Location,
    },
    /// A `070702` entry's data does not sum to its `check` field.
    Checksum {
        /// Where: the entry or byte offset.
        at: Location,
        /// The header's `check` field.
        expected: u32,
        /// The sum of the data's bytes.
        actual: u32,
    },
    /// Bytes the kernel would reject around or between archives: junk,
    /// misaligned archives, an empty compressed member.
    Layout {
        /// Where: the entry or byte offset.
        at: Location,
        /// What the kernel would reject.
        reason: &'static str,
    },
    /// A compressed member failed to decompress.
    Decompress {
        /// Byte offset of the member.
        offset: usize,
        /// Its compression format.
        format: Format,
        /// The decoder's error.
        error: DecompressError,
    },
    /// The compressed members decompress to more than the limit.
    TooLarge {
        /// Byte offset of the member that passed the limit.
        offset: usize,
        /// Its compression format.
        format: Format,
        /// The limit, in bytes.
        limit: usize,
    },
}

impl fmt::Display for CpioError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CpioError::InvalidEntry { path, reason } => {
                write!(f, "invalid cpio entry {path:?}: {reason}")
            }
            CpioError::BadMagic { at, found } => write!(
                f,
                "{at}: no newc cpio header (found {:?}, expected \"070701\")",
                String::from_utf8_lossy(found)
            ),
            CpioError::BadField { at, field } => {
                write!(f, "{at}: cpio header field {field} is not 8 hex digits")
            }
            CpioError::BadName { at, reason } => write!(f, "{at}: bad cpio entry name: {reason}"),
            CpioError::Truncated { at, what } => {
                write!(f, "{at}: cpio archive truncated in the {what}")
            }
            CpioError::MissingTrailer { at } => {
                write!(f, "{at}: cpio archive ends without a {TRAILER_NAME} entry")
            }
            CpioError::Checksum {
                at,
                expected,
                actual,
            } => write!(
                f,
                "{at}: data sums to {actual:08x}, the 070702 header says {expected:08x}"
            ),
            CpioError::Layout { at, reason } => write!(f, "{at}: {reason}"),
            CpioError::Decompress {
                offset,
                format,
                error,
            } => write!(f, "{format} member at offset {offset}: {error}"),
            CpioError::TooLarge {
                offset,
                format,
                limit,
            } => write!(
                f,
                "{format} member at offset {offset}: the image decompresses to more than {limit} bytes"
            ),
        }
    }
}

impl std::error::Error for CpioError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            CpioError::Decompress { error, .. } => Some(error),
            _ => None,
        }
    }
}

// ---------------------------------------------------------------- writer

/// Round up to a multiple of 4.
const fn align4(n: usize) -> usize {
    (n + 3) & !3
}

fn invalid(path: &str, reason: impl Into<String>) -> CpioError {
    CpioError::InvalidEntry {
        path: path.to_owned(),
        reason: reason.into(),
    }
}

/// Checks one entry against what newc and the kernel's unpacker accept.
fn check_entry(e: &Entry) -> Result<(), CpioError> {
    let p = e.path.as_str();
    if p.is_empty() {
        return Err(invalid(p, "path is empty"));
    }
    if p.contains('\0') {
        return Err(invalid(p, "path contains a NUL byte"));
    }
    if p.starts_with('/') {
        return Err(invalid(p, "path is absolute (starts with '/')"));
    }
    if p.split('/').any(|c| c == "..") {
        return Err(invalid(p, "path has a \"..\" component"));
    }
    if p == TRAILER_NAME {
        return Err(invalid(p, "path is the archive trailer's name"));
    }
    if p.len() >= PATH_MAX {
        return Err(invalid(
            p,
            format!(
                "path is {} bytes, the kernel skips names over {} bytes",
                p.len(),
                PATH_MAX - 1
            ),
        ));
    }
    if e.mode & !0o7777 != 0 {
        return Err(invalid(
            p,
            format!(
                "mode {:#o} has bits outside 0o7777 (give permission bits only)",
                e.mode
            ),
        ));
    }
    match &e.kind {
        EntryKind::Dir => {}
        EntryKind::File(data) => {
            if u32::try_from(data.len()).is_err() {
                return Err(invalid(
                    p,
                    format!(
                        "file is {} bytes, newc stores at most {} bytes",
                        data.len(),
                        u32::MAX
                    ),
                ));
            }
        }
        EntryKind::Symlink(target) => {
            if target.is_empty() {
                return Err(invalid(p, "symlink target is empty"));
            }
            if target.contains('\0') {
                return Err(invalid(p, "symlink target contains a NUL byte"));
            }
            if target.len() >= PATH_MAX {
                return Err(invalid(
                    p,
                    format!("symlink target is {} bytes, too long", target.len()),
                ));
            }
        }
        &EntryKind::CharDev { major, minor } => {
            if major > MAX_MAJOR || minor > MAX_MINOR {
                return Err(invalid(
                    p,
                    format!("device {major}:{minor} out of range (major < 4096, minor < 1048576)"),
                ));
            }
        }
    }
    Ok(())
}

/// Appends 8 upper-case hex digits (as GNU cpio and the kernel's
/// `gen_init_cpio` write them).
fn put_hex(out: &mut Vec<u8>, v: u32) {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    for shift in (0..8).rev() {
        out.push(HEX[((v >> (shift * 4)) & 0xf) as usize]);
    }
}

/// Appends NULs until `out.len() - start` is a multiple of 4.
fn pad4(out: &mut Vec<u8>, start: usize) {
    let len = out.len() - start;
    out.resize(start + align4(len), 0);
}

/// Appends one entry: header fields (without namesize, which is computed),
/// name, NUL, padding, data, padding.
fn put_entry(out: &mut Vec<u8>, start: usize, fields: [u32; 11], name: &[u8], data: &[u8]) {
    out.extend_from_slice(NEWC_MAGIC);
    for v in fields {
        put_hex(out, v);
    }
    // Name lengths are checked against PATH_MAX: the casts cannot truncate.
    put_hex(out, name.len() as u32 + 1);
    put_hex(out, 0); // check
    out.extend_from_slice(name);
    out.push(0);
    pad4(out, start);
    out.extend_from_slice(data);
    pad4(out, start);
}

/// Writes `entries` in the given order plus the trailer, appending to
/// `out`; returns the next free inode number.
///
/// Reproducible: uid/gid 0, `mtime` for every entry, inode numbers
/// assigned sequentially from `first_ino` in entry order (so members of one
/// image can continue numbering), nlink 2 for directories and 1 otherwise
/// (a regular file with nlink >= 2 would be a hard-link candidate to the
/// kernel), devmajor/devminor 0. Padding is relative to where the archive
/// starts in `out`; in an image, an uncompressed archive must start at a
/// 4-byte-aligned offset. Every entry is checked before anything is
/// written: on error `out` is unchanged.
pub fn write_newc(
    entries: &[Entry],
    mtime: u32,
    first_ino: u32,
    out: &mut Vec<u8>,
) -> Result<u32, CpioError> {
    for e in entries {
        check_entry(e)?;
    }
    let next_ino = u32::try_from(entries.len())
        .ok()
        .and_then(|n| first_ino.checked_add(n));
    let Some(next_ino) = next_ino else {
        let last = entries.last().map_or("", |e| e.path.as_str());
        return Err(invalid(
            last,
            format!(
                "{} inode numbers from {first_ino} overflow u32",
                entries.len()
            ),
        ));
    };
    let start = out.len();
    for (i, e) in entries.iter().enumerate() {
        // i < entries.len() and first_ino + entries.len() fits in u32.
        let ino = first_ino + i as u32;
        let (kind, nlink, data, (rmaj, rmin)): (u32, u32, &[u8], _) = match &e.kind {
            EntryKind::Dir => (S_IFDIR, 2, &[], (0, 0)),
            EntryKind::File(d) => (S_IFREG, 1, d, (0, 0)),
            EntryKind::Symlink(t) => (S_IFLNK, 1, t.as_bytes(), (0, 0)),
            &EntryKind::CharDev { major, minor } => (S_IFCHR, 1, &[], (major, minor)),
        };
        let fields = [
            ino,
            kind | e.mode,
            0, // uid
            0, // gid
            nlink,
            mtime,
            data.len() as u32, // checked in check_entry
            0,                 // devmajor
            0,                 // devminor
            rmaj,
            rmin,
        ];
        put_entry(out, start, fields, e.path.as_bytes(), data);
    }
    // GNU cpio's trailer: everything 0 but nlink 1.
    let trailer = [0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0];
    put_entry(out, start, trailer, TRAILER_NAME.as_bytes(), &[]);
    Ok(next_ino)
}

// ---------------------------------------------------------------- reader

/// Reads one or more concatenated members of a Linux initramfs image and
/// returns all entries in order (trailers dropped), with the default cap
/// [`MAX_DECOMPRESSED`] on decompressed data.
///
/// Each member is a newc archive, stored or compressed (gzip, zstd, xz, by
/// magic; decoded with `earlymod_decompress`, every checksum verified). The
/// rules are the kernel's (`init/initramfs.c`):
///
/// - NUL bytes between members are skipped;
/// - an uncompressed archive starts at a 4-byte-aligned image offset, and
///   whatever follows an uncompressed archive (after NULs) starts at one too;
/// - a compressed member holds one or more archives (NUL padding between
///   them, each 4-byte aligned in the decompressed data) and nothing else.
///
/// The result is `Ok` only if every archive ends with a complete
/// `TRAILER!!!` entry, its padding included; an empty or all-NUL image
/// gives `Ok` with no entries. Any truncation is an error.
///
/// Never panics; allocates no more than the input size plus the
/// decompressed size (sizes in headers are checked against the bytes
/// present before anything is allocated).
pub fn read_image(data: &[u8]) -> Result<Vec<ReadEntry>, CpioError> {
    read_image_with_limit(data, MAX_DECOMPRESSED)
}

/// [`read_image`] with a cap on the total decompressed size of the
/// compressed members (at most [`MAX_DECOMPRESSED`] is ever produced).
pub fn read_image_with_limit(
    data: &[u8],
    max_decompressed: usize,
) -> Result<Vec<ReadEntry>, CpioError> {
    let mut entries = Vec::new();
    let mut budget = max_decompressed;
    let mut pos = 0;
    let mut after_archive = false;
    while let Some(&byte) = data.get(pos) {
        if byte == 0 {
            pos += 1;
            continue;
        }
        let at = Location {
            member: None,
            offset: pos,
            entry: None,
        };
        if after_archive && pos % 4 != 0 {
            return Err(CpioError::Layout {
                at,
                reason: "data after a cpio trailer does not start on a 4-byte boundary",
            });
        }
        if byte == b'0' {
            if pos % 4 != 0 {
                return Err(CpioError::Layout {
                    at,
                    reason: "uncompressed cpio archive does not start on a 4-byte boundary",
                });
            }
            pos = read_archive(data, pos, None, &mut entries)?;
            after_archive = true;
        } else if let Some(format) = earlymod_decompress::detect(&data[pos..]) {
            let (out, used) =
                decompress_member(&data[pos..], format, pos, budget, max_decompressed)?;
            budget = budget.saturating_sub(out.len());
            read_member(&out, (pos, format), &mut entries)?;
            pos += used;
            after_archive = false;
        } else {
            return Err(CpioError::Layout {
                at,
                reason: unknown_member(&data[pos..]),
            });
        }
    }
    Ok(entries)
}

/// Explains bytes that are neither a cpio header nor a supported member.
fn unknown_member(data: &[u8]) -> &'static str {
    // Magics the kernel knows (lib/decompress.c) but we do not decode.
    if data.starts_with(b"BZh") {
        "bzip2-compressed member (not supported here)"
    } else if data.starts_with(&[0x5d, 0x00, 0x00]) {
        "lzma-compressed member (not supported here)"
    } else if data.starts_with(&[0x89, b'L', b'Z', b'O']) {
        "lzo-compressed member (not supported here)"
    } else if data.starts_with(&[0x02, 0x21, 0x4c, 0x18]) {
        "lz4-compressed member (not supported here)"
    } else {
        "neither a cpio header nor a gzip, xz or zstd member"
    }
}

/// Reads the archives in a member's decompressed data.
fn read_member(
    out: &[u8],
    member: (usize, Format),
    entries: &mut Vec<ReadEntry>,
) -> Result<(), CpioError> {
    let mut pos = 0;
    let mut archives = 0usize;
    loop {
        while out.get(pos) == Some(&0) {
            pos += 1;
        }
        let at = Location {
            member: Some(member),
            offset: pos,
            entry: None,
        };
        match out.get(pos) {
            None if archives == 0 => {
                return Err(CpioError::Layout {
                    at,
                    reason: "compressed member holds no cpio archive",
                });
            }
            None => return Ok(()),
            Some(&b) if b != b'0' => {
                return Err(CpioError::Layout {
                    at,
                    reason: "junk in compressed member (expected a cpio header or NUL padding)",
                });
            }
            Some(_) if pos % 4 != 0 => {
                return Err(CpioError::Layout {
                    at,
                    reason: "cpio archive does not start on a 4-byte boundary",
                });
            }
            Some(_) => {}
        }
        pos = read_archive(out, pos, Some(member), entries)?;
        archives += 1;
    }
}

/// Parses 8 hex digits (either case).
fn parse_hex(digits: &[u8]) -> Option<u32> {
    digits.iter().try_fold(0u32, |acc, &d| {
        let v = (d as char).to_digit(16)?;
        Some(acc << 4 | v)
    })
}

/// Reads one archive starting at `start` (a header) through its trailer;
/// returns the offset just past the trailer's padding. Offsets are in
/// `buf`, which the kernel aligns from its start.
fn read_archive(
    buf: &[u8],
    start: usize,
    member: Option<(usize, Format)>,
    entries: &mut Vec<ReadEntry>,
) -> Result<usize, CpioError> {
    let mut pos = start;
    loop {
        let at = |entry: Option<&str>| Location {
            member,
            offset: pos,
            entry: entry.map(str::to_owned),
        };
        let rest = &buf[pos..];
        if rest.is_empty() {
            return Err(CpioError::MissingTrailer { at: at(None) });
        }
        let Some(header) = rest.get(..HEADER_LEN) else {
            return Err(CpioError::Truncated {
                at: at(None),
                what: "header",
            });
        };
        let crc = match &header[..6] {
            m if m == NEWC_MAGIC => false,
            m if m == CRC_MAGIC => true,
            m => {
                let mut found = [0u8; 6];
                found.copy_from_slice(m);
                return Err(CpioError::BadMagic {
                    at: at(None),
                    found,
                });
            }
        };
        let mut f = [0u32; 13];
        for (i, (v, digits)) in f.iter_mut().zip(header[6..].chunks_exact(8)).enumerate() {
            *v = parse_hex(digits).ok_or(CpioError::BadField {
                at: at(None),
                field: FIELDS[i],
            })?;
        }
        let [
            ino,
            mode,
            uid,
            gid,
            nlink,
            mtime,
            filesize,
            _,
            _,
            rmaj,
            rmin,
            namesize,
            check,
        ] = f;

        // The name, checked against the bytes present before allocating.
        let namesize = namesize as usize;
        if namesize == 0 {
            return Err(CpioError::BadName {
                at: at(None),
                reason: "namesize is 0",
            });
        }
        if namesize > PATH_MAX {
            return Err(CpioError::BadName {
                at: at(None),
                reason: "name longer than PATH_MAX (4096 bytes with its NUL)",
            });
        }
        let Some(raw) = rest.get(HEADER_LEN..HEADER_LEN + namesize) else {
            return Err(CpioError::Truncated {
                at: at(None),
                what: "name",
            });
        };
        let (name, nul) = raw.split_at(namesize - 1);
        let bad_name = |reason| CpioError::BadName {
            at: at(Some(&String::from_utf8_lossy(name))),
            reason,
        };
        if nul != [0] {
            return Err(bad_name("name is not NUL-terminated"));
        }
        if name.contains(&0) {
            return Err(bad_name("name contains a NUL byte before its end"));
        }
        let Ok(name) = core::str::from_utf8(name) else {
            return Err(bad_name("name is not UTF-8"));
        };

        // Data and padding; every offset is at most buf.len() + 3.
        let truncated = |what| CpioError::Truncated {
            at: at(Some(name)),
            what,
        };
        let data_start = align4(pos + HEADER_LEN + namesize);
        if data_start > buf.len() {
            return Err(truncated("padding after the name"));
        }
        let filesize = filesize as usize;
        if buf.len() - data_start < filesize {
            return Err(truncated("data"));
        }
        let data_end = data_start + filesize;
        let next = align4(data_end);
        if next > buf.len() {
            return Err(truncated("padding after the data"));
        }
        if name == TRAILER_NAME {
            return Ok(next);
        }
        let data = &buf[data_start..data_end];
        if crc && mode & S_IFMT == S_IFREG {
            let actual = data.iter().fold(0u32, |s, &b| s.wrapping_add(u32::from(b)));
            if actual != check {
                return Err(CpioError::Checksum {
                    at: at(Some(name)),
                    expected: check,
                    actual,
                });
            }
        }
        entries.push(ReadEntry {
            path: name.to_owned(),
            mode,
            ino,
            uid,
            gid,
            nlink,
            mtime,
            rdev: (rmaj, rmin),
            data: data.to_vec(),
        });
        pos = next;
    }
}

/// Decompresses the member at the start of `data` (image offset
/// `offset`); returns its decompressed bytes and its compressed length.
/// Like the kernel, one gzip member, one xz stream or one zstd frame.
fn decompress_member(
    data: &[u8],
    format: Format,
    offset: usize,
    budget: usize,
    limit: usize,
) -> Result<(Vec<u8>, usize), CpioError> {
    let fail = |error| match error {
        DecompressError::TooLarge(_) => CpioError::TooLarge {
            offset,
            format,
            limit,
        },
        error => CpioError::Decompress {
            offset,
            format,
            error,
        },
    };
    let len = match format {
        Format::Gzip => gzip_member_len(data, budget).map_err(fail)?,
        Format::Zstd => zstd_frame_len(data).map_err(fail)?,
        Format::Xz => return xz_stream(data, budget).map_err(fail),
    };
    let out = earlymod_decompress::decompress_to_vec(&data[..len], budget).map_err(fail)?;
    Ok((out, len))
}

/// Length of the gzip member at the start of `data`: header, deflate
/// stream (found by inflating into a 32 KiB ring, stopping beyond
/// `budget` output bytes) and the 8-byte trailer. The trailer's CRC32 and
/// ISIZE are checked by the real decode.
fn gzip_member_len(data: &[u8], budget: usize) -> Result<usize, DecompressError> {
    use miniz_oxide::inflate::TINFLStatus;
    use miniz_oxide::inflate::core::{DecompressorOxide, decompress};

    const G: Format = Format::Gzip;
    const FHCRC: u8 = 2;
    const FEXTRA: u8 = 4;
    const FNAME: u8 = 8;
    const FCOMMENT: u8 = 16;

    let truncated = DecompressError::Truncated(G);
    let hdr = data.get(..10).ok_or(truncated)?;
    if hdr[2] != 8 {
        return Err(DecompressError::Unsupported(
            G,
            "compression method is not deflate",
        ));
    }
    let flags = hdr[3];
    if flags & 0xe0 != 0 {
        return Err(DecompressError::Corrupt(G, "reserved header flag bits set"));
    }
    let mut pos = 10usize;
    if flags & FEXTRA != 0 {
        let x = data.get(pos..pos + 2).ok_or(truncated)?;
        pos += 2 + usize::from(u16::from_le_bytes([x[0], x[1]]));
    }
    for flag in [FNAME, FCOMMENT] {
        if flags & flag != 0 {
            let nul = data
                .get(pos..)
                .and_then(|s| s.iter().position(|&b| b == 0))
                .ok_or(truncated)?;
            pos += nul + 1;
        }
    }
    if flags & FHCRC != 0 {
        pos += 2;
    }
    let mut input = data.get(pos..).ok_or(truncated)?;
    let mut inflater = Box::<DecompressorOxide>::default();
    let mut ring = vec![0u8; 32 * 1024];
    let mut ring_pos = 0;
    let mut total = 0usize;
    loop {
        let (status, used, made) = decompress(&mut inflater, input, &mut ring, ring_pos, 0);
        input = &input[used..];
        ring_pos = (ring_pos + made) % ring.len();
        total = total.saturating_add(made);
        if total > budget {
            return Err(DecompressError::TooLarge(G));
        }
        match status {
            TINFLStatus::Done => break,
            // The ring is always writable: no progress would be a bug.
            TINFLStatus::HasMoreOutput if used == 0 && made == 0 => {
                return Err(DecompressError::Corrupt(G, "inflate made no progress"));
            }
            TINFLStatus::HasMoreOutput => {}
            TINFLStatus::FailedCannotMakeProgress | TINFLStatus::NeedsMoreInput => {
                return Err(truncated);
            }
            _ => return Err(DecompressError::Corrupt(G, "invalid deflate data")),
        }
    }
    let end = data.len() - input.len() + 8;
    if end > data.len() {
        return Err(truncated);
    }
    Ok(end)
}

/// Length of the zstd frame at the start of `data`, by walking its header
/// and block headers (RFC 8878).
fn zstd_frame_len(data: &[u8]) -> Result<usize, DecompressError> {
    const Z: Format = Format::Zstd;
    let truncated = DecompressError::Truncated(Z);
    let fhd = *data.get(4).ok_or(truncated)?;
    if fhd & 0x08 != 0 {
        return Err(DecompressError::Corrupt(Z, "reserved frame header bit set"));
    }
    let single_segment = fhd & 0x20 != 0;
    let fcs_len = match fhd >> 6 {
        0 => usize::from(single_segment),
        1 => 2,
        2 => 4,
        _ => 8,
    };
    let did_len = [0, 1, 2, 4][usize::from(fhd & 3)];
    let mut pos = 5 + usize::from(!single_segment) + did_len + fcs_len;
    loop {
        let b = data.get(pos..pos + 3).ok_or(truncated)?;
        let bh = u32::from(b[0]) | u32::from(b[1]) << 8 | u32::from(b[2]) << 16;
        let last = bh & 1 != 0;
        let size = (bh >> 3) as usize;
        pos += 3 + match (bh >> 1) & 3 {
            0 | 2 => size, // raw, compressed
            1 => 1,        // RLE: one byte repeated
            _ => return Err(DecompressError::Corrupt(Z, "reserved block type")),
        };
        if pos > data.len() {
            return Err(truncated);
        }
        if last {
            break;
        }
    }
    if fhd & 0x04 != 0 {
        pos += 4; // content checksum
    }
    if pos > data.len() {
        return Err(truncated);
    }
    Ok(pos)
}

/// Decodes the xz stream at the start of `data`; returns its output and
/// length. The stream's end is its footer ("YZ", the header's stream
/// flags, a valid CRC32, pointing back at an index): candidates are tried
/// in order, a few at most, and the first that decodes wins.
fn xz_stream(data: &[u8], budget: usize) -> Result<(Vec<u8>, usize), DecompressError> {
    const X: Format = Format::Xz;
    const MAX_TRIES: usize = 8;
    let flags = data.get(6..8).ok_or(DecompressError::Truncated(X))?;
    let mut first_error = None;
    let mut tries = 0;
    // Header (12) + index (>= 8) + footer (12); streams are 4-byte multiples.
    let mut end = 32;
    while end <= data.len() && tries < MAX_TRIES {
        let footer = &data[end - 12..end];
        let backward = u32::from_le_bytes([footer[4], footer[5], footer[6], footer[7]]);
        let index_len = (u64::from(backward) + 1) * 4;
        if &footer[10..] == b"YZ"
            && footer[8..10] == *flags
            && crc32fast::hash(&footer[4..10]).to_le_bytes() == footer[..4]
            && index_len <= (end - 24) as u64
            && data[end - 12 - index_len as usize] == 0
        {
            tries += 1;
            match earlymod_decompress::decompress_to_vec(&data[..end], budget) {
                Ok(out) => return Ok((out, end)),
                Err(e) => {
                    first_error.get_or_insert(e);
                }
            }
        }
        end += 4;
    }
    Err(first_error.unwrap_or(DecompressError::Truncated(X)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::compress::{Compression, compress};
    use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
    use std::path::Path;

    const MTIME: u32 = 1_700_000_000;

    use crate::testutil::{TempDir, run};

    fn is_root() -> bool {
        let t = TempDir::new("uid");
        std::fs::metadata(&t.0).unwrap().uid() == 0
    }

    /// Deterministic pseudo-random bytes.
    fn noise(len: usize, mut seed: u64) -> Vec<u8> {
        (0..len)
            .map(|_| {
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                (seed >> 24) as u8
            })
            .collect()
    }

    /// Dirs, files of 0, 1, 3 and 100 KB bytes, symlinks, a char device.
    fn sample(with_dev: bool) -> Vec<Entry> {
        let mut big = b"\x7fELF".to_vec();
        big.extend(noise(100 * 1024 - 4, 1));
        let mut v = vec![
            Entry::dir("bin", 0o755),
            Entry::dir("etc", 0o755),
            Entry::dir("lib", 0o755),
            Entry::dir("lib/modules", 0o755),
            Entry::dir("lib/modules/6.1.0", 0o700),
            Entry::dir("tmp", 0o1777),
            Entry::file("etc/empty", 0o644, Vec::new()),
            Entry::file("etc/one", 0o600, b"x".to_vec()),
            Entry::file("etc/three", 0o640, b"abc".to_vec()),
            Entry::file("lib/modules/6.1.0/big.ko", 0o644, big),
            Entry::file("bin/init", 0o755, b"#!/bin/sh\nexec /bin/sh\n".to_vec()),
            Entry::symlink("lib/modules/6.1.0/link.ko", "big.ko"),
            Entry::symlink("init", "bin/init"),
            Entry::dir("dev", 0o755),
        ];
        if with_dev {
            v.push(Entry::char_dev("dev/console", 0o600, 5, 1));
        }
        v
    }

    fn archive(entries: &[Entry], first_ino: u32) -> Vec<u8> {
        let mut out = Vec::new();
        write_newc(entries, MTIME, first_ino, &mut out).unwrap();
        out
    }

    /// What reading `entries` written from `first_ino` must give.
    fn expected(entries: &[Entry], first_ino: u32) -> Vec<ReadEntry> {
        entries
            .iter()
            .zip(first_ino..)
            .map(|(e, ino)| {
                let (kind, nlink, data, rdev) = match &e.kind {
                    EntryKind::Dir => (S_IFDIR, 2, Vec::new(), (0, 0)),
                    EntryKind::File(d) => (S_IFREG, 1, d.clone(), (0, 0)),
                    EntryKind::Symlink(t) => (S_IFLNK, 1, t.as_bytes().to_vec(), (0, 0)),
                    &EntryKind::CharDev { major, minor } => {
                        (S_IFCHR, 1, Vec::new(), (major, minor))
                    }
                };
                ReadEntry {
                    path: e.path.clone(),
                    mode: kind | e.mode,
                    ino,
                    uid: 0,
                    gid: 0,
                    nlink,
                    mtime: MTIME,
                    rdev,
                    data,
                }
            })
            .collect()
    }

    /// glibc's `major()` / `minor()`.
    fn dev_split(dev: u64) -> (u64, u64) {
        (
            ((dev >> 8) & 0xfff) | ((dev >> 32) & !0xfff),
            (dev & 0xff) | ((dev >> 12) & !0xff),
        )
    }

    #[test]
    fn gnu_cpio_extracts_tree() {
        let root = is_root();
        let entries = sample(root);
        let t = TempDir::new("extract");
        let out = run(
            "cpio",
            &["-idmv", "--no-absolute-filenames"],
            Some(&t.0),
            &archive(&entries, 1),
        );
        let listed = String::from_utf8_lossy(&out.stderr);
        for e in &entries {
            assert!(listed.lines().any(|l| l == e.path), "{listed}");
            let p = t.0.join(&e.path);
            let md = std::fs::symlink_metadata(&p).unwrap();
            match &e.kind {
                EntryKind::Dir => assert!(md.is_dir(), "{}", e.path),
                EntryKind::File(d) => {
                    assert!(md.is_file(), "{}", e.path);
                    assert_eq!(&std::fs::read(&p).unwrap(), d, "{}", e.path);
                    assert_eq!(md.mtime(), i64::from(MTIME), "{}", e.path);
                    assert_eq!(md.nlink(), 1);
                }
                EntryKind::Symlink(target) => {
                    assert!(md.file_type().is_symlink(), "{}", e.path);
                    assert_eq!(std::fs::read_link(&p).unwrap(), Path::new(target));
                }
                &EntryKind::CharDev { major, minor } => {
                    assert!(md.file_type().is_char_device(), "{}", e.path);
                    assert_eq!(dev_split(md.rdev()), (major.into(), minor.into()));
                }
            }
            if !matches!(e.kind, EntryKind::Symlink(_)) {
                assert_eq!(md.permissions().mode() & 0o7777, e.mode, "{}", e.path);
            }
        }
        if root {
            let md = std::fs::symlink_metadata(t.0.join("dev/console")).unwrap();
            assert!(md.file_type().is_char_device());
            assert_eq!(dev_split(md.rdev()), (5, 1));
        } else {
            eprintln!("not root: dev/console extraction not checked");
        }
    }

    #[test]
    fn gnu_cpio_lists_names_in_order() {
        let entries = sample(true);
        let out = run("cpio", &["-t", "--quiet"], None, &archive(&entries, 1));
        let names: Vec<&str> = std::str::from_utf8(&out.stdout).unwrap().lines().collect();
        let want: Vec<&str> = entries.iter().map(|e| e.path.as_str()).collect();
        assert_eq!(names, want);
    }

    /// Byte for byte what `cpio -o -H newc --reproducible` writes for the
    /// same tree (up to its 512-byte block padding), for a tree whose
    /// directories have no subdirectories (GNU counts them in nlink).
    #[test]
    fn same_bytes_as_gnu_cpio() {
        if !is_root() {
            eprintln!("not root: owners would differ, skipped");
            return;
        }
        let entries = vec![
            Entry::dir("etc", 0o755),
            Entry::file("etc/empty", 0o644, Vec::new()),
            Entry::file("etc/three", 0o640, b"abc".to_vec()),
            Entry::file("etc/big", 0o600, noise(5000, 7)),
            Entry::symlink("etc/link", "three"),
            Entry::dir("dev", 0o755),
            Entry::char_dev("dev/console", 0o600, 5, 1),
            Entry::file("init", 0o755, b"#!/bin/sh\n".to_vec()),
        ];
        let ours = archive(&entries, 0);
        let t = TempDir::new("gnu");
        run("cpio", &["-idm", "--quiet"], Some(&t.0), &ours);
        // cpio -m restores file times; set every entry's (links included).
        for e in entries.iter().rev() {
            run(
                "touch",
                &["-h", "-d", &format!("@{MTIME}"), &e.path],
                Some(&t.0),
                b"",
            );
        }
        let names: String = entries.iter().map(|e| format!("{}\n", e.path)).collect();
        let gnu = run(
            "cpio",
            &["-o", "-H", "newc", "--reproducible", "--quiet"],
            Some(&t.0),
            names.as_bytes(),
        )
        .stdout;
        assert_eq!(gnu.len() % 512, 0);
        assert!(gnu[ours.len()..].iter().all(|&b| b == 0));
        assert_eq!(gnu[..ours.len()], ours[..]);
    }

    #[test]
    fn header_layout() {
        let mut out = b"xyz".to_vec(); // padding is relative to the archive
        let next = write_newc(
            &[Entry::file("ab", 0o644, b"hello".to_vec())],
            0xABCDEF,
            7,
            &mut out,
        )
        .unwrap();
        assert_eq!(next, 8);
        let a = &out[3..];
        let header = "070701\
            00000007000081A4000000000000000000000001\
            00ABCDEF00000005000000000000000000000000\
            000000000000000300000000";
        assert_eq!(std::str::from_utf8(&a[..HEADER_LEN]).unwrap(), header);
        assert_eq!(&a[110..116], b"ab\0\0\0\0"); // 110 + 3 -> 116
        assert_eq!(&a[116..124], b"hello\0\0\0");
        let trailer = "070701\
            0000000000000000000000000000000000000001\
            0000000000000000000000000000000000000000\
            000000000000000B00000000";
        assert_eq!(
            std::str::from_utf8(&a[124..124 + HEADER_LEN]).unwrap(),
            trailer
        );
        assert_eq!(&a[234..], b"TRAILER!!!\0\0\0\0"); // 234 + 11 -> 248
        assert_eq!(a.len() % 4, 0);
        // Empty list: just the trailer; the next inode is the first.
        let mut out = Vec::new();
        assert_eq!(write_newc(&[], 0, 42, &mut out).unwrap(), 42);
        assert_eq!(out.len(), 124);
        assert_eq!(read_image(&out).unwrap(), Vec::new());
    }

    #[test]
    fn deterministic() {
        let e = sample(true);
        assert_eq!(archive(&e, 1), archive(&e, 1));
        for c in Compression::ALL {
            assert_eq!(compress(&archive(&e, 1), c), compress(&archive(&e, 1), c));
        }
    }

    #[test]
    fn writer_rejects_bad_entries() {
        let bad = [
            (Entry::dir("", 0o755), "path is empty"),
            (Entry::dir("/etc", 0o755), "absolute"),
            (Entry::dir("a/../b", 0o755), "\"..\""),
            (Entry::dir("..", 0o755), "\"..\""),
            (Entry::dir("a/..", 0o755), "\"..\""),
            (Entry::dir("a\0b", 0o755), "NUL"),
            (Entry::dir("TRAILER!!!", 0o755), "trailer"),
            (Entry::dir("x".repeat(4096), 0o755), "4095"),
            (Entry::file("f", 0o100_644, Vec::new()), "0o7777"),
            (Entry::symlink("l", ""), "empty"),
            (Entry::symlink("l", "a\0"), "NUL"),
            (Entry::char_dev("c", 0o600, 4096, 0), "out of range"),
            (Entry::char_dev("c", 0o600, 0, 1 << 20), "out of range"),
        ];
        for (e, why) in bad {
            let mut out = b"keep".to_vec();
            let err = write_newc(&[Entry::dir("ok", 0o755), e.clone()], 0, 1, &mut out)
                .expect_err(&format!("{e:?}"));
            let msg = err.to_string();
            assert!(msg.contains(why), "{msg}");
            assert!(msg.starts_with("invalid cpio entry"), "{msg}");
            assert_eq!(out, b"keep", "output touched on error");
        }
        // Allowed: ".", names containing dots, "..." components, max length.
        let ok = [
            Entry::dir(".", 0o755),
            Entry::file("a..b/..c/...", 0o4755, Vec::new()),
            Entry::dir("x".repeat(4095), 0o755),
            Entry::char_dev("c", 0o600, 4095, (1 << 20) - 1),
        ];
        let mut out = Vec::new();
        assert_eq!(write_newc(&ok, 0, 1, &mut out).unwrap(), 5);
        assert_eq!(read_image(&out).unwrap(), expected_mtime(&ok, 1, 0));
        // Inode overflow.
        let mut out = Vec::new();
        assert!(write_newc(&ok, 0, u32::MAX - 3, &mut out).is_err());
        assert_eq!(
            write_newc(&ok, 0, u32::MAX - 4, &mut out).unwrap(),
            u32::MAX
        );
    }

    fn expected_mtime(entries: &[Entry], first_ino: u32, mtime: u32) -> Vec<ReadEntry> {
        let mut v = expected(entries, first_ino);
        v.iter_mut().for_each(|e| e.mtime = mtime);
        v
    }

    #[test]
    fn read_round_trip_all_compressions() {
        let first = sample(true);
        let second = vec![
            Entry::dir("lib/modules/6.1.0/kernel", 0o755),
            Entry::file("lib/modules/6.1.0/kernel/x.ko", 0o644, noise(70_000, 3)),
            Entry::file(
                "lib/modules/6.1.0/modules.dep",
                0o644,
                b"kernel/x.ko:\n".to_vec(),
            ),
        ];
        let mut m1 = Vec::new();
        let next = write_newc(&first, MTIME, 1, &mut m1).unwrap();
        assert_eq!(next, 1 + first.len() as u32);
        let mut m2 = Vec::new();
        assert_eq!(write_newc(&second, MTIME, next, &mut m2).unwrap(), next + 3);
        let mut want = expected(&first, 1);
        want.extend(expected(&second, next));
        for c in Compression::ALL {
            let mut image = m1.clone();
            image.extend(compress(&m2, c));
            assert_eq!(read_image(&image).unwrap(), want, "{c}");
            // NUL padding after and between members.
            let mut padded = m1.clone();
            padded.extend([0u8; 512]);
            padded.extend(compress(&m2, c));
            padded.extend([0u8; 7]);
            assert_eq!(read_image(&padded).unwrap(), want, "{c} padded");
            // Compressed first, then the uncompressed one at an aligned offset.
            let mut rev = compress(&m2, c);
            rev.resize(align4(rev.len()), 0);
            rev.extend(&m1);
            let mut want_rev = expected(&second, next);
            want_rev.extend(expected(&first, 1));
            assert_eq!(read_image(&rev).unwrap(), want_rev, "{c} reversed");
        }
        // Two compressed members back to back (any alignment), and two
        // archives inside one compressed member.
        let mut both = m1.clone();
        both.extend([0u8; 8]);
        both.extend(&m2);
        let mut image = compress(&m2, Compression::Zstd);
        image.extend(compress(&m2, Compression::Gzip));
        image.extend(compress(&both, Compression::Gzip));
        image.extend(compress(&both, Compression::Zstd));
        let r = read_image(&image).unwrap();
        assert_eq!(r.len(), 2 * 3 + 2 * (first.len() + 3));
    }

    #[test]
    fn read_xz_member() {
        let m = archive(&sample(true), 1);
        // What the kernel's own scripts use, and xz's default (CRC64).
        for args in [&["-c", "--check=crc32", "--lzma2=dict=1MiB"][..], &["-c"]] {
            let xz = run("xz", args, None, &m).stdout;
            let mut image = archive(&[Entry::dir("a", 0o755)], 100);
            image.extend(&xz);
            image.extend(&xz);
            image.extend([0u8; 4]);
            let r = read_image(&image).unwrap();
            assert_eq!(r.len(), 1 + 2 * sample(true).len());
            assert_eq!(r[1..1 + sample(true).len()], expected(&sample(true), 1)[..]);
        }
    }

    #[test]
    fn system_tools_decompress() {
        let m = archive(&sample(true), 1);
        let gz = compress(&m, Compression::Gzip);
        assert_eq!(run("gzip", &["-dc"], None, &gz).stdout, m);
        let zst = compress(&m, Compression::Zstd);
        assert_eq!(run("zstd", &["-dc"], None, &zst).stdout, m);
        // And the system cpio reads the compressed members' contents.
        let listed = run(
            "cpio",
            &["-t", "--quiet"],
            None,
            &run("zstd", &["-dc"], None, &zst).stdout,
        );
        assert_eq!(
            listed.stdout.iter().filter(|&&b| b == b'\n').count(),
            sample(true).len()
        );
    }

    #[test]
    fn reads_gnu_cpio_output() {
        let t = TempDir::new("gnuread");
        std::fs::create_dir(t.0.join("d")).unwrap();
        std::fs::write(t.0.join("d/f"), b"hello\n").unwrap();
        std::os::unix::fs::symlink("f", t.0.join("d/l")).unwrap();
        let gnu = run(
            "cpio",
            &["-o", "-H", "newc", "--quiet"],
            Some(&t.0),
            b"d\nd/f\nd/l\n",
        )
        .stdout;
        let crc = run(
            "cpio",
            &["-o", "-H", "crc", "--quiet"],
            Some(&t.0),
            b"d\nd/f\nd/l\n",
        )
        .stdout;
        assert_eq!(&crc[..6], CRC_MAGIC);
        let mut image = gnu.clone(); // 512-byte blocks: NUL padding
        image.extend(run("gzip", &["-9nc"], None, &crc).stdout); // crc + header name
        image.extend(run("gzip", &["-c"], None, &gnu).stdout);
        let r = read_image(&image).unwrap();
        let names: Vec<&str> = r.iter().map(|e| e.path.as_str()).collect();
        assert_eq!(names, ["d", "d/f", "d/l"].repeat(3));
        assert_eq!(r[1].data, b"hello\n");
        assert_eq!(r[1].mode & S_IFMT, S_IFREG);
        assert_eq!(r[2].data, b"f");
        assert_eq!(r[2].mode & S_IFMT, S_IFLNK);
        // A wrong 070702 checksum is caught.
        let pos = crc.windows(6).position(|w| w == b"hello\n").unwrap();
        let mut bad = crc.clone();
        bad[pos] = b'j';
        let e = read_image(&bad).unwrap_err();
        assert!(matches!(e, CpioError::Checksum { .. }), "{e}");
        assert!(e.to_string().contains("entry \"d/f\""), "{e}");
    }

    /// The rule: a prefix of an image reads `Ok` exactly when every archive
    /// in it is complete through its trailer's padding (the empty prefix
    /// included); any other cut is an error.
    #[test]
    fn truncation_rule() {
        let small = vec![
            Entry::dir("d", 0o755),
            Entry::file("d/f", 0o644, b"abcde".to_vec()),
            Entry::symlink("d/l", "f"),
            Entry::char_dev("c", 0o600, 5, 1),
        ];
        let m1 = archive(&small, 1);
        let m2 = archive(&small[1..2], 9);
        assert_eq!(read_image(&[]).unwrap(), Vec::new());
        for c in Compression::ALL {
            let mut image = m1.clone();
            image.extend(compress(&m2, c));
            for cut in 0..=image.len() {
                let r = read_image(&image[..cut]);
                if cut == 0 {
                    assert_eq!(r.unwrap(), Vec::new());
                } else if cut == m1.len() {
                    assert_eq!(r.unwrap(), expected(&small, 1), "{c} cut at the member end");
                } else if cut == image.len() {
                    assert_eq!(r.unwrap().len(), small.len() + 1);
                } else {
                    let e = r.expect_err(&format!("{c} cut at {cut}"));
                    if cut < m1.len() {
                        assert!(
                            matches!(
                                e,
                                CpioError::Truncated { .. } | CpioError::MissingTrailer { .. }
                            ),
                            "cut at {cut}: {e}"
                        );
                    }
                }
            }
        }
    }

    #[test]
    fn hostile_headers() {
        let good = archive(&[Entry::file("f", 0o644, b"data".to_vec())], 1);
        let with = |range: std::ops::Range<usize>, bytes: &[u8]| {
            let mut v = good.clone();
            v[range].copy_from_slice(bytes);
            read_image(&v).unwrap_err()
        };
        // Bad magic: first byte still '0' (so it is a cpio header) or not.
        let e = with(0..6, b"070707");
        assert!(matches!(e, CpioError::BadMagic { .. }), "{e}");
        assert_eq!(
            e.to_string(),
            "offset 0: no newc cpio header (found \"070707\", expected \"070701\")"
        );
        let e = with(0..1, b"1");
        assert!(matches!(e, CpioError::Layout { .. }), "{e}");
        let e = read_image(b"BZh91AY&SY").unwrap_err();
        assert!(e.to_string().contains("bzip2"), "{e}");
        // Bad hex, in the entry and in the trailer.
        let e = with(6 + 8 * 6..6 + 8 * 6 + 1, b"g");
        assert_eq!(
            e.to_string(),
            "offset 0: cpio header field filesize is not 8 hex digits"
        );
        let e = with(6 + 8 + 3..6 + 8 + 4, b" ");
        assert!(
            matches!(e, CpioError::BadField { field: "mode", .. }),
            "{e}"
        );
        // Huge namesize / filesize: errors, nothing allocated.
        let namesize = 6 + 8 * 11;
        let filesize = 6 + 8 * 6;
        let e = with(namesize..namesize + 8, b"FFFFFFFF");
        assert!(matches!(e, CpioError::BadName { .. }), "{e}");
        let e = with(namesize..namesize + 8, b"00001000");
        assert!(
            matches!(e, CpioError::Truncated { what: "name", .. }),
            "{e}"
        );
        let e = with(namesize..namesize + 8, b"00000000");
        assert!(matches!(e, CpioError::BadName { .. }), "{e}");
        let e = with(filesize..filesize + 8, b"FFFFFFFF");
        assert!(
            matches!(e, CpioError::Truncated { what: "data", .. }),
            "{e}"
        );
        assert_eq!(
            e.to_string(),
            "offset 0, entry \"f\": cpio archive truncated in the data"
        );
        let e = with(filesize..filesize + 8, b"7FFFFFFF");
        assert!(matches!(e, CpioError::Truncated { .. }), "{e}");
        // Name not NUL-terminated (namesize 1 too small), and not UTF-8.
        let e = with(namesize..namesize + 8, b"00000001");
        assert!(e.to_string().contains("not NUL-terminated"), "{e}");
        let e = with(110..111, b"\xff");
        assert!(e.to_string().contains("UTF-8"), "{e}");
        // Missing trailer: the archive just stops after an entry.
        let e = read_image(&good[..good.len() - 124]).unwrap_err();
        assert!(matches!(e, CpioError::MissingTrailer { .. }), "{e}");
        // Misaligned: an uncompressed archive at offset 2, junk after a
        // trailer, junk inside a compressed member, an empty member.
        let mut v = vec![0u8; 2];
        v.extend(&good);
        assert!(matches!(
            read_image(&v).unwrap_err(),
            CpioError::Layout { .. }
        ));
        let mut v = good.clone();
        v.extend(b"\0\0junk");
        assert!(matches!(
            read_image(&v).unwrap_err(),
            CpioError::Layout { .. }
        ));
        let mut v = good.clone();
        v.extend(b"junk");
        assert!(matches!(
            read_image(&v).unwrap_err(),
            CpioError::Layout { .. }
        ));
        for c in [Compression::Gzip, Compression::Zstd] {
            let mut inner = good.clone();
            inner.extend(b"junk");
            let e = read_image(&compress(&inner, c)).unwrap_err();
            assert!(e.to_string().contains("junk in compressed member"), "{e}");
            assert!(
                e.to_string()
                    .starts_with(&format!("{c} member at offset 0")),
                "{e}"
            );
            let e = read_image(&compress(&[0; 16], c)).unwrap_err();
            assert!(e.to_string().contains("no cpio archive"), "{e}");
            let e = read_image(&compress(&good[..good.len() - 1], c)).unwrap_err();
            assert!(
                matches!(&e, CpioError::Truncated { at, .. } if at.member == Some((0, c_format(c)))),
                "{e}"
            );
            // Corrupt compressed data.
            let mut z = compress(&good, c);
            let n = z.len();
            z[n - 5] ^= 0x55;
            let e = read_image(&z).unwrap_err();
            assert!(matches!(e, CpioError::Decompress { .. }), "{e}");
        }
    }

    fn c_format(c: Compression) -> Format {
        match c {
            Compression::Gzip => Format::Gzip,
            Compression::Zstd => Format::Zstd,
            Compression::None => unreachable!(),
        }
    }

    #[test]
    fn decompression_limit() {
        let big = archive(&[Entry::file("zeros", 0o644, vec![0u8; 1 << 20])], 1);
        for c in [Compression::Gzip, Compression::Zstd] {
            let z = compress(&big, c);
            assert!(read_image_with_limit(&z, big.len()).is_ok());
            let e = read_image_with_limit(&z, big.len() - 1).unwrap_err();
            assert!(matches!(e, CpioError::TooLarge { .. }), "{c}: {e}");
            // The limit is on the whole image.
            let mut two = z.clone();
            two.extend(&z);
            let e = read_image_with_limit(&two, 2 * big.len() - 1).unwrap_err();
            assert!(matches!(e, CpioError::TooLarge { .. }), "{c}: {e}");
        }
    }

    /// Random byte flips, cuts and splices of valid images: never a panic.
    #[test]
    fn mutations_never_panic() {
        let small = vec![
            Entry::dir("d", 0o755),
            Entry::file("d/f", 0o644, b"abcdefgh".repeat(40)),
            Entry::symlink("d/l", "f"),
        ];
        let m = archive(&small, 1);
        let mut seeds: Vec<Vec<u8>> = Compression::ALL.iter().map(|&c| compress(&m, c)).collect();
        let mut mixed = m.clone();
        mixed.extend(&seeds[1]);
        mixed.extend(&seeds[2]);
        seeds.push(mixed);
        let mut rng = 0x9E37_79B9_7F4A_7C15u64;
        let mut next = || {
            rng ^= rng << 13;
            rng ^= rng >> 7;
            rng ^= rng << 17;
            rng
        };
        let mut oks = 0;
        for round in 0..20_000 {
            let mut v = seeds[round % seeds.len()].clone();
            for _ in 0..=(next() % 4) {
                let i = (next() as usize) % v.len();
                match next() % 4 {
                    0 => v[i] ^= 1 << (next() % 8),
                    1 => v[i] = b"0123456789abcdefABCDEF\0\xff"[(next() % 24) as usize],
                    2 => v.truncate(i.max(1)),
                    _ => {
                        let j = (next() as usize) % v.len();
                        let (a, b) = (i.min(j), i.max(j));
                        let chunk = v[a..b].to_vec();
                        v.splice(i..i, chunk);
                    }
                }
            }
            if read_image(&v).is_ok() {
                oks += 1;
            }
        }
        eprintln!("{oks} of 20000 mutated images still read");
    }

    /// Write / compress / read timings on real files:
    /// `EARLYMOD_CPIO_BENCH=/tmp/mods.bin cargo test --release -p
    /// earlymod-initrd --lib cpio::tests::bench -- --ignored --nocapture`
    /// (the file is split into 1 MiB entries).
    #[test]
    #[ignore = "benchmark; needs EARLYMOD_CPIO_BENCH"]
    fn bench() {
        let Ok(path) = std::env::var("EARLYMOD_CPIO_BENCH") else {
            eprintln!("set EARLYMOD_CPIO_BENCH to a file");
            return;
        };
        let d = std::fs::read(path).unwrap();
        let mut entries = vec![Entry::dir("m", 0o755)];
        for (i, chunk) in d.chunks(1 << 20).enumerate() {
            entries.push(Entry::file(format!("m/{i}.ko"), 0o644, chunk.to_vec()));
        }
        let t = std::time::Instant::now();
        let a = archive(&entries, 1);
        eprintln!("write_newc: {} bytes in {:.2?}", a.len(), t.elapsed());
        for c in Compression::ALL {
            let z = compress(&a, c);
            let t = std::time::Instant::now();
            let r = read_image(&z).unwrap();
            eprintln!("read_image {c}: {} entries in {:.2?}", r.len(), t.elapsed());
            assert_eq!(r.len(), entries.len());
        }
    }

    #[test]
    fn error_messages() {
        let at = Location {
            member: Some((512, Format::Gzip)),
            offset: 1234,
            entry: Some("dev/console".into()),
        };
        let e = CpioError::Truncated { at, what: "data" };
        assert_eq!(
            e.to_string(),
            "gzip member at offset 512, decompressed offset 1234, entry \"dev/console\": \
             cpio archive truncated in the data"
        );
        let e = CpioError::Decompress {
            offset: 8,
            format: Format::Zstd,
            error: DecompressError::Truncated(Format::Zstd),
        };
        assert!(std::error::Error::source(&e).is_some());
        assert_eq!(
            e.to_string(),
            "zstd member at offset 8: truncated zstd stream"
        );
    }
}
