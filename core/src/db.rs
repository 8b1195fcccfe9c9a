//! The module database: the five kmod indexes of one module directory, each
//! read from its `.bin` file or, when that is absent, from the text file
//! depmod writes beside it (`modules.dep`, `modules.alias`,
//! `modules.symbols`, `modules.builtin`), with the same answers.

use crate::error::{Error, Result};
use crate::fnmatch::fnmatch;
use crate::index::{Index, Value, insert_by_priority};
use crate::name::{AliasBuf, normalize_alias};

/// Where one index's answers come from.
#[derive(Debug, Clone, Copy)]
pub enum Source<'a> {
    /// A binary index.
    Bin(Index<'a>),
    /// A binary index that failed validation; every lookup reports this.
    Corrupt(Error),
    /// The text file depmod writes beside the `.bin`.
    Text(&'a [u8]),
    /// Neither file exists, or the `.bin` is empty (0 bytes, as `touch`
    /// leaves it): lookups find nothing (as in kmod, which treats an index
    /// it cannot open as absent).
    Missing,
}

impl<'a> Source<'a> {
    /// Chooses the binary index when present, else the text file.
    pub fn new(bin: Option<&'a [u8]>, text: Option<&'a [u8]>) -> Self {
        Self::named("", bin, text)
    }

    /// [`Source::new`] whose binary-index errors name the file `name`
    /// (`modules.alias.bin`). A 0-byte `.bin` is no index at all, and no
    /// text file stands in for it (kmod finds nothing there either); a
    /// non-empty one that fails validation is reported on every lookup.
    pub fn named(name: &'static str, bin: Option<&'a [u8]>, text: Option<&'a [u8]>) -> Self {
        match (bin, text) {
            (Some([]), _) => Source::Missing,
            (Some(b), _) => match Index::named(b, name) {
                Ok(i) => Source::Bin(i),
                Err(e) => Source::Corrupt(e),
            },
            (None, Some(t)) => Source::Text(t),
            (None, None) => Source::Missing,
        }
    }
}

/// The indexes of one module directory.
#[derive(Debug, Clone, Copy)]
pub struct ModuleDb<'a> {
    /// `modules.dep.bin` / `modules.dep`.
    pub dep: Source<'a>,
    /// `modules.alias.bin` / `modules.alias`.
    pub alias: Source<'a>,
    /// `modules.symbols.bin` / `modules.symbols`.
    pub symbols: Source<'a>,
    /// `modules.builtin.bin` / `modules.builtin`.
    pub builtin: Source<'a>,
    /// `modules.builtin.alias.bin` (depmod writes no text form).
    pub builtin_alias: Source<'a>,
}

/// The bound on values returned by one wildcard lookup: the bound on
/// modules one lookup may return, since every match becomes one.
pub const MAX_MATCHES: usize = crate::probe::MAX_CANDIDATES;
/// Values of one wildcard lookup, in kmod's order.
pub type Matches<'a> = heapless::Vec<Value<'a>, MAX_MATCHES>;

fn lines(text: &[u8]) -> impl Iterator<Item = &[u8]> {
    text.split(|&b| b == b'\n')
}

fn utf8(b: &[u8]) -> Result<&str> {
    core::str::from_utf8(b).map_err(|_| Error::NotUtf8)
}

/// Exact lookup shared by the dep and builtin sources.
fn exact<'a>(
    src: &Source<'a>,
    key: &str,
    text_key: fn(&'a [u8]) -> Option<&'a [u8]>,
) -> Result<Option<&'a [u8]>> {
    match src {
        Source::Bin(i) => i.exact(key.as_bytes()),
        Source::Corrupt(e) => Err(*e),
        Source::Missing => Ok(None),
        Source::Text(t) => {
            for line in lines(t) {
                let Some(path) = text_key(line) else { continue };
                let Ok(path) = core::str::from_utf8(path) else {
                    continue;
                };
                if modname_of_path_is(path, key) {
                    return Ok(Some(line));
                }
            }
            Ok(None)
        }
    }
}

/// True when the module name of `path` ([`crate::name::modname_from_path`]: base name
/// up to the first `.`, `-` read as `_`) is `key`. Compares in place, so a
/// name of any length is found (and then reported as too long by whoever
/// keeps it) instead of being skipped.
fn modname_of_path_is(path: &str, key: &str) -> bool {
    let base = path.rsplit('/').next().unwrap_or(path);
    let stem = base.split('.').next().unwrap_or(base);
    stem.len() == key.len()
        && stem
            .bytes()
            .zip(key.bytes())
            .all(|(a, b)| a == b || (a == b'-' && b == b'_'))
}

fn dep_text_key(line: &[u8]) -> Option<&[u8]> {
    let colon = line.iter().position(|&b| b == b':')?;
    Some(&line[..colon])
}

fn builtin_text_key(line: &[u8]) -> Option<&[u8]> {
    let line = line.trim_ascii();
    (!line.is_empty() && line[0] != b'#').then_some(line)
}

impl<'a> ModuleDb<'a> {
    /// The database of a text `modules.dep` alone: no aliases, symbols or
    /// builtins (a tree that only has modules.dep; tests and fuzzing).
    pub fn from_dep_text(dep: &'a [u8]) -> Self {
        ModuleDb {
            dep: Source::new(None, Some(dep)),
            alias: Source::Missing,
            symbols: Source::Missing,
            builtin: Source::Missing,
            builtin_alias: Source::Missing,
        }
    }

    /// The `modules.dep` line of module `name` (`path: dep dep ...`).
    pub fn dep_line(&self, name: &str) -> Result<Option<&'a str>> {
        exact(&self.dep, name, dep_text_key)?.map(utf8).transpose()
    }

    /// True when `name` is listed in `modules.builtin`.
    pub fn is_builtin(&self, name: &str) -> Result<bool> {
        Ok(exact(&self.builtin, name, builtin_text_key)?.is_some())
    }

    /// Wildcard lookup of `key` in an alias-shaped source (alias, symbols,
    /// builtin.alias): every matching pattern's module, in kmod's order.
    pub fn wildcard(src: &Source<'a>, key: &str, out: &mut Matches<'a>) -> Result<()> {
        out.clear();
        match src {
            Source::Bin(i) => i.wildcard(key.as_bytes(), out),
            Source::Corrupt(e) => Err(*e),
            Source::Missing => Ok(()),
            Source::Text(t) => {
                // depmod writes one module's aliases together, modules in
                // priority order: the running module count is the priority.
                let mut priority = 0u32;
                let mut prev: &[u8] = &[];
                let mut norm = AliasBuf::new();
                for line in lines(t) {
                    let mut f = line
                        .split(|b| b.is_ascii_whitespace())
                        .filter(|f| !f.is_empty());
                    if f.next() != Some(b"alias") {
                        continue;
                    }
                    let (Some(pattern), Some(module)) = (f.next(), f.next()) else {
                        continue;
                    };
                    if !prev.is_empty() && module != prev {
                        priority += 1;
                    }
                    prev = module;
                    // depmod stores normalized keys in the .bin; the text
                    // keeps them as written. Bad ones are skipped, as depmod does.
                    let Ok(pattern) = core::str::from_utf8(pattern) else {
                        continue;
                    };
                    if normalize_alias(pattern, &mut norm).is_err() {
                        continue;
                    }
                    if fnmatch(norm.as_bytes(), key.as_bytes()) {
                        insert_by_priority(
                            out,
                            Value {
                                priority,
                                value: module,
                            },
                        )?;
                    }
                }
                Ok(())
            }
        }
    }
}

/// A parsed `modules.dep` line.
#[derive(Debug, Clone, Copy)]
pub struct DepLine<'a> {
    /// The module's path relative to the module directory (or absolute).
    pub path: &'a str,
    deps: &'a str,
}

impl<'a> DepLine<'a> {
    /// Splits `path: dep dep ...`; `None` without a colon.
    pub fn parse(line: &'a str) -> Option<Self> {
        let (path, deps) = line.split_once(':')?;
        Some(DepLine { path, deps })
    }

    /// Dependency paths in file order (kmod loads them in reverse).
    pub fn deps(&self) -> Deps<'a> {
        Deps { rest: self.deps }
    }
}

/// The dependency paths of a [`DepLine`], split on spaces and tabs (a byte
/// scan: this runs for every dependency of every probed module).
#[derive(Debug, Clone)]
pub struct Deps<'a> {
    rest: &'a str,
}

fn is_blank(b: u8) -> bool {
    b == b' ' || b == b'\t'
}

impl<'a> Iterator for Deps<'a> {
    type Item = &'a str;

    fn next(&mut self) -> Option<&'a str> {
        let b = self.rest.as_bytes();
        let start = b.iter().position(|&c| !is_blank(c))?;
        let end = b[start..]
            .iter()
            .position(|&c| is_blank(c))
            .map_or(b.len(), |n| start + n);
        // Both ends sit next to an ASCII byte: char boundaries.
        let item = &self.rest[start..end];
        self.rest = &self.rest[end..];
        Some(item)
    }
}

impl DoubleEndedIterator for Deps<'_> {
    fn next_back(&mut self) -> Option<Self::Item> {
        let b = self.rest.as_bytes();
        let end = b.iter().rposition(|&c| !is_blank(c))? + 1;
        let start = b[..end]
            .iter()
            .rposition(|&c| is_blank(c))
            .map_or(0, |n| n + 1);
        let item = &self.rest[start..end];
        self.rest = &self.rest[..start];
        Some(item)
    }
}

#[cfg(test)]
impl<'a> DepLine<'a> {
    fn parse_deps_for_test(deps: &'a str) -> Self {
        DepLine { path: "", deps }
    }
}

#[cfg(test)]
mod tests {
    extern crate alloc;
    extern crate std;
    use super::*;

    #[test]
    fn text_dep_and_builtin() {
        let dep = b"kernel/fs/ext4/ext4.ko.xz: kernel/lib/crc16.ko.xz kernel/fs/mbcache.ko.xz\nkernel/sound/snd-hda-intel.ko:\n";
        let db = ModuleDb {
            dep: Source::new(None, Some(dep)),
            alias: Source::Missing,
            symbols: Source::Missing,
            builtin: Source::new(None, Some(b"kernel/fs/vfat.ko\n")),
            builtin_alias: Source::Missing,
        };
        let line = db.dep_line("ext4").unwrap().unwrap();
        let d = DepLine::parse(line).unwrap();
        assert_eq!(d.path, "kernel/fs/ext4/ext4.ko.xz");
        let deps: heapless::Vec<&str, 4> = d.deps().rev().collect();
        for text in ["", " ", "\t \t", "a", " a", "a ", "\ta  b\t c ", "é x\tß "] {
            let d = DepLine::parse_deps_for_test(text);
            let want: alloc::vec::Vec<&str> =
                text.split([' ', '\t']).filter(|s| !s.is_empty()).collect();
            assert_eq!(d.deps().collect::<alloc::vec::Vec<_>>(), want, "{text:?}");
            let mut back: alloc::vec::Vec<&str> = d.deps().rev().collect();
            back.reverse();
            assert_eq!(back, want, "{text:?} from the back");
            let mut it = d.deps();
            let (mut front, mut rear) = (alloc::vec::Vec::new(), alloc::vec::Vec::new());
            while let Some(x) = it.next() {
                front.push(x);
                match it.next_back() {
                    Some(x) => rear.insert(0, x),
                    None => break,
                }
            }
            front.extend(rear);
            assert_eq!(front, want, "{text:?} from both ends");
        }
        assert_eq!(
            &deps[..],
            &["kernel/fs/mbcache.ko.xz", "kernel/lib/crc16.ko.xz"]
        );
        assert!(db.dep_line("snd_hda_intel").unwrap().is_some());
        assert!(db.dep_line("crc16").unwrap().is_none());
        assert!(db.is_builtin("vfat").unwrap());
        assert!(!db.is_builtin("ext4").unwrap());
    }

    /// A module whose name is over the name bound is still found in the
    /// text `modules.dep` (the binary index finds it too); whoever keeps
    /// the name then reports it as too long, instead of "not found".
    #[test]
    fn long_names_are_found_in_text_dep() {
        let dep = b"kernel/a-b.ko.xz:\nkernel/mmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmm.ko:\n";
        let db = ModuleDb::from_dep_text(dep);
        assert!(db.dep_line("a_b").unwrap().is_some());
        assert!(db.dep_line("a").unwrap().is_none());
        assert!(db.dep_line("a_b_").unwrap().is_none());
        let long = "m".repeat(66);
        assert!(db.dep_line(&long).unwrap().is_some());
    }

    #[test]
    fn named_sources_name_their_file_in_errors() {
        let src = Source::named("modules.alias.bin", Some(&[1, 2, 3]), None);
        let mut out = Matches::new();
        let e = ModuleDb::wildcard(&src, "x", &mut out).unwrap_err();
        assert_eq!(
            alloc::format!("{e}"),
            "modules.alias.bin: index file too short for its header"
        );
    }

    /// A 0-byte index (22 of kmod's own test trees ship an empty
    /// `modules.builtin.bin`; build systems `touch` index files) is no
    /// index: nothing is found, no error, and the text file beside it is
    /// not read (kmod does not read it either). A short non-empty one stays
    /// an error.
    #[test]
    fn empty_bin_is_absent() {
        let text = b"kernel/x.ko\n";
        for name in ["modules.builtin.bin", "modules.dep.bin"] {
            let src = Source::named(name, Some(&[]), Some(text));
            assert!(matches!(src, Source::Missing), "{name}");
        }
        let db = ModuleDb {
            dep: Source::named("modules.dep.bin", Some(&[]), Some(b"kernel/x.ko:\n")),
            alias: Source::named("modules.alias.bin", Some(&[]), None),
            symbols: Source::named("modules.symbols.bin", Some(&[]), None),
            builtin: Source::named("modules.builtin.bin", Some(&[]), Some(text)),
            builtin_alias: Source::named("modules.builtin.alias.bin", Some(&[]), None),
        };
        assert_eq!(db.dep_line("x"), Ok(None));
        assert_eq!(db.is_builtin("x"), Ok(false));
        let mut out = Matches::new();
        for src in [&db.alias, &db.symbols, &db.builtin_alias] {
            ModuleDb::wildcard(src, "x", &mut out).unwrap();
            assert!(out.is_empty());
        }
        let short = Source::named("modules.builtin.bin", Some(&[0xb0]), Some(text));
        assert!(matches!(short, Source::Corrupt(_)));
    }

    #[test]
    fn text_alias_order() {
        let alias = b"# Aliases\nalias pci:v1234d* a\nalias pci:v1234d0001 a\nalias pci:v1234* b\nalias usb:x c\n";
        let src = Source::new(None, Some(alias));
        let mut out = Matches::new();
        ModuleDb::wildcard(&src, "pci:v1234d0001", &mut out).unwrap();
        let v: heapless::Vec<(&[u8], u32), 4> = out.iter().map(|v| (v.value, v.priority)).collect();
        assert_eq!(&v[..], &[(&b"a"[..], 0), (b"a", 0), (b"b", 1)]);
    }
}
