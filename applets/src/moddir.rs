//! A module directory's indexes, mapped, and the modprobe.d files that
//! apply, found and ordered as libkmod orders them.

use crate::sys::{self, CPath, Kind, Mapped};
use earlymod_core::db::{ModuleDb, Source};
use earlymod_core::error::{Error, IndexFault};

const ENOENT: i32 = 2;

/// libkmod's default configuration directories, in precedence order.
pub const DEFAULT_CONFIG_PATHS: [&str; 4] = [
    "/etc/modprobe.d",
    "/run/modprobe.d",
    "/usr/local/lib/modprobe.d",
    "/lib/modprobe.d",
];

const INDEXES: [&str; 5] = [
    "modules.dep",
    "modules.alias",
    "modules.symbols",
    "modules.builtin",
    "modules.builtin.alias",
];
/// The binary index files, as errors name them.
const BIN_NAMES: [&str; 5] = [
    "modules.dep.bin",
    "modules.alias.bin",
    "modules.symbols.bin",
    "modules.builtin.bin",
    "modules.builtin.alias.bin",
];

/// Longest module directory path: every file in it
/// (`/modules.builtin.alias.bin`, 26 bytes) must still fit a 4096-byte
/// path with its NUL, and a round bound is easier to state.
pub const MAX_DIRNAME: usize = 4000;

/// A module directory path (`ROOT/lib/modules/KVER`).
pub type DirName = heapless::String<MAX_DIRNAME>;

/// The mapped indexes of one module directory.
pub struct ModDir {
    /// The directory, as kmod prints it.
    pub dirname: DirName,
    bins: [Option<Mapped>; 5],
    texts: [Option<Mapped>; 4],
    /// Why an index that exists could not be mapped (errno, or 0: not a
    /// regular file), with the file's name.
    unreadable: [Option<(&'static str, i32)>; 5],
}

/// kmod's module directory for `-d ROOT` / `-S KVER` (made absolute); an
/// empty name when it would be longer than [`MAX_DIRNAME`] (use
/// [`checked_dirname`] to tell).
pub fn dirname_for(root: Option<&str>, kver: Option<&str>) -> DirName {
    checked_dirname(root, kver).unwrap_or_default()
}

/// [`dirname_for`], or `Err(length)` when the path would be longer than
/// [`MAX_DIRNAME`] bytes.
pub fn checked_dirname(root: Option<&str>, kver: Option<&str>) -> Result<DirName, usize> {
    let mut release = heapless::String::<128>::new();
    let kver = match kver {
        Some(k) => k,
        None => {
            sys::kernel_release(&mut release);
            release.as_str()
        }
    };
    let mut cwd = [core::mem::MaybeUninit::uninit(); 4096];
    let cwd = if !root.unwrap_or("/").starts_with('/') {
        sys::current_dir(&mut cwd)
    } else {
        None
    };
    let parts = [
        cwd.unwrap_or(""),
        if cwd.is_some() { "/" } else { "" },
        root.unwrap_or(""),
        "/lib/modules/",
        kver,
    ];
    let mut d = DirName::new();
    for p in parts {
        if d.push_str(p).is_err() {
            return Err(parts.iter().map(|p| p.len()).sum());
        }
    }
    Ok(d)
}

impl ModDir {
    /// Maps whatever index files exist (binary preferred, text as fallback).
    /// An index that exists but cannot be read (a directory, a FIFO, no
    /// permission) is not taken for absent: its lookups report why.
    pub fn open(dirname: DirName) -> ModDir {
        let map = |name: &str, suffix: &str| -> Result<Option<Mapped>, i32> {
            let Some(p) = CPath::join(&[&dirname, "/", name, suffix]) else {
                return Ok(None);
            };
            match Mapped::open_checked(p.as_cstr(), false) {
                Ok(m) => Ok(Some(m)),
                Err(ENOENT) => Ok(None),
                Err(e) => Err(e),
            }
        };
        let mut unreadable: [Option<(&'static str, i32)>; 5] = [None; 5];
        let mut bins: [Option<Mapped>; 5] = Default::default();
        for (i, b) in bins.iter_mut().enumerate() {
            match map(INDEXES[i], ".bin") {
                Ok(m) => *b = m,
                Err(e) => unreadable[i] = Some((BIN_NAMES[i], e)),
            }
        }
        let mut texts: [Option<Mapped>; 4] = Default::default();
        for (i, t) in texts.iter_mut().enumerate() {
            if bins[i].is_none() && unreadable[i].is_none() {
                match map(INDEXES[i], "") {
                    Ok(m) => *t = m,
                    Err(e) => unreadable[i] = Some((INDEXES[i], e)),
                }
            }
        }
        ModDir {
            dirname,
            bins,
            texts,
            unreadable,
        }
    }

    /// The running kernel's module directory (`/lib/modules/$(uname -r)`),
    /// as [`open`](Self::open) maps it.
    pub fn running() -> ModDir {
        ModDir::open(dirname_for(None, None))
    }

    /// The database view over the maps.
    pub fn db(&self) -> ModuleDb<'_> {
        let bin = |i: usize| self.bins[i].as_ref().map(Mapped::bytes);
        let text = |i: usize| {
            self.texts
                .get(i)
                .and_then(|t| t.as_ref())
                .map(Mapped::bytes)
        };
        let s = |i: usize| match self.unreadable[i] {
            Some((name, e)) => Source::Corrupt(Error::Index(name, IndexFault::Unreadable(e))),
            None => Source::named(BIN_NAMES[i], bin(i), text(i)),
        };
        ModuleDb {
            dep: s(0),
            alias: s(1),
            symbols: s(2),
            builtin: s(3),
            builtin_alias: s(4),
        }
    }
}

/// Where one config file lives.
#[derive(Clone, Copy)]
pub enum Src {
    /// `DIR/NAME`, DIR being config path number `usize`.
    InDir(usize),
    /// The config path itself is this file.
    File(usize),
    /// A file depmod writes into the module directory:
    /// [`MODDIR_CONFIGS`]`[usize]`.
    ModDir(usize),
}

/// The config files depmod writes into the module directory, read with the
/// configuration and never counted against its bound (kmod 34 reads both).
pub const MODDIR_CONFIGS: [&str; 2] = ["modules.softdep", "modules.weakdep"];

/// A config file name (the sort key).
pub type FileName = heapless::String<256>;

/// The bound on config files read ([`MODDIR_CONFIGS`] not counted).
pub const MAX_CONFIG_FILES: usize = 128;
/// The bound on config paths (`-C`) of one command line.
pub const MAX_CONFIG_PATHS: usize = 32;

/// Config files, sorted by name: at most [`MAX_CONFIG_FILES`] plus
/// [`MODDIR_CONFIGS`].
pub type ConfigFiles = heapless::Vec<(FileName, Src), { MAX_CONFIG_FILES + MODDIR_CONFIGS.len() }>;

/// Config files beyond [`MAX_CONFIG_FILES`], which are not read: how many,
/// and the first of them in sort order.
#[derive(Default)]
pub struct Dropped {
    /// How many files were left out.
    pub count: usize,
    /// The first one left out, in libkmod's order (by name).
    pub first: FileName,
}

/// The config files in libkmod's order: one list sorted by file name across
/// all paths, the first path winning a duplicate, [`MODDIR_CONFIGS`] among
/// them. In a directory only `*.conf` files count (kmod ≥ 33 no longer
/// reads `*.alias`). Beyond [`MAX_CONFIG_FILES`] the files that sort last are left
/// out and counted in `dropped`.
pub fn config_files(
    paths: &[&str],
    on_error: &mut dyn FnMut(&str, &str),
    dropped: &mut Dropped,
) -> ConfigFiles {
    let mut list = ConfigFiles::new();
    let mut insert = |name: &str, src: Src| {
        // Names come from directory entries and path tails: at most
        // NAME_MAX (255) bytes, so they always fit a FileName.
        let (Err(pos), Ok(n)) = (
            list.binary_search_by(|(n, _)| n.as_bytes().cmp(name.as_bytes())),
            FileName::try_from(name),
        ) else {
            return;
        };
        let mut item = (n, src);
        if list.len() >= MAX_CONFIG_FILES {
            // Keep the first MAX_CONFIG_FILES names in sort order.
            dropped.count += 1;
            // The new name sorts before the last kept one: it takes its place.
            let last = if pos < list.len() { list.pop() } else { None };
            if let Some(last) = last {
                let _ = list.insert(pos, item);
                item = last;
            }
            if dropped.count == 1 || item.0 < dropped.first {
                dropped.first = item.0;
            }
            return;
        }
        let _ = list.insert(pos, item);
    };
    for (i, p) in paths.iter().enumerate() {
        let Some(cp) = CPath::join(&[p]) else {
            continue;
        };
        if !sys::is_dir(cp.as_cstr()) {
            if rustix::fs::stat(cp.as_cstr()).is_ok() {
                insert(p.rsplit('/').next().unwrap_or(p), Src::File(i));
            }
            continue;
        }
        sys::list_dir(cp.as_cstr(), &mut |name, kind| {
            if name.starts_with('.') || name.len() < 6 || !name.ends_with(".conf") {
                return;
            }
            if kind == Kind::Dir {
                on_error(p, name);
                return;
            }
            insert(name, Src::InDir(i));
        });
    }
    // The module directory's files are always read, outside the bound,
    // and win a duplicate name (libkmod lists them first).
    for (i, name) in MODDIR_CONFIGS.iter().enumerate() {
        match list.binary_search_by(|(n, _)| n.as_bytes().cmp(name.as_bytes())) {
            Ok(at) => list[at].1 = Src::ModDir(i),
            Err(pos) => {
                let _ = list.insert(
                    pos,
                    (
                        FileName::try_from(*name).unwrap_or_default(),
                        Src::ModDir(i),
                    ),
                );
            }
        }
    }
    list
}

/// The path of one config file.
pub fn config_path(dirname: &str, paths: &[&str], name: &str, src: Src) -> Option<CPath> {
    match src {
        Src::InDir(i) => CPath::join(&[paths[i], "/", name]),
        Src::File(i) => CPath::join(&[paths[i]]),
        Src::ModDir(i) => CPath::join(&[dirname, "/", MODDIR_CONFIGS[i]]),
    }
}

#[cfg(test)]
mod tests {
    extern crate std;
    use super::*;
    use std::string::ToString;
    use std::vec::Vec;

    #[test]
    fn config_files_sorted_across_dirs_first_dir_wins() {
        let base = std::env::temp_dir().join(std::format!("earlymod-cfg-{}", std::process::id()));
        let (a, b) = (base.join("a"), base.join("b"));
        std::fs::create_dir_all(a.join("sub.conf")).unwrap();
        std::fs::create_dir_all(&b).unwrap();
        for (d, n) in [
            (&a, "z.conf"),
            (&a, "m.conf"),
            (&b, "m.conf"),
            (&b, "c.alias"),
            (&b, ".hidden.conf"),
            (&b, "x.txt"),
            (&b, ".conf"),
        ] {
            std::fs::write(d.join(n), "").unwrap();
        }
        let single = base.join("one.conf");
        std::fs::write(&single, "").unwrap();
        let (a_s, b_s, s_s) = (
            a.to_str().unwrap().to_string(),
            b.to_str().unwrap().to_string(),
            single.to_str().unwrap().to_string(),
        );
        let paths = [a_s.as_str(), b_s.as_str(), s_s.as_str(), "/nonexistent"];
        let mut errors = Vec::new();
        let mut dropped = Dropped::default();
        let files = config_files(
            &paths,
            &mut |p, n| errors.push(std::format!("{p}/{n}")),
            &mut dropped,
        );
        assert_eq!(dropped.count, 0);
        let got: Vec<(&str, &str)> = files
            .iter()
            .map(|(n, s)| {
                (
                    n.as_str(),
                    match s {
                        Src::InDir(0) => "a",
                        Src::InDir(_) => "b",
                        Src::File(_) => "file",
                        Src::ModDir(0) => "softdep",
                        Src::ModDir(_) => "weakdep",
                    },
                )
            })
            .collect();
        // c.alias is not read (kmod ≥ 33 reads *.conf only).
        assert_eq!(
            got,
            [
                ("m.conf", "a"),
                ("modules.softdep", "softdep"),
                ("modules.weakdep", "weakdep"),
                ("one.conf", "file"),
                ("z.conf", "a")
            ]
        );
        assert_eq!(errors.len(), 1, "a directory named *.conf is reported");
        std::fs::remove_dir_all(&base).unwrap();
    }

    /// An index that exists but cannot be read is reported with its name,
    /// not taken for absent (which would fall back to the text file or
    /// answer "not found"); a FIFO does not block.
    #[test]
    fn unreadable_indexes_are_named() {
        let base =
            std::env::temp_dir().join(std::format!("earlymod-unreadable-{}", std::process::id()));
        std::fs::create_dir_all(base.join("modules.dep.bin")).unwrap();
        std::fs::write(base.join("modules.dep"), "kernel/x.ko:\n").unwrap();
        let fifo = base.join("modules.alias.bin");
        let made = std::process::Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .is_ok_and(|s| s.success());
        let dir = ModDir::open(DirName::try_from(base.to_str().unwrap()).unwrap());
        let db = dir.db();
        assert_eq!(
            db.dep_line("x"),
            Err(Error::Index("modules.dep.bin", IndexFault::Unreadable(0)))
        );
        if made {
            let mut m = earlymod_core::db::Matches::new();
            assert_eq!(
                ModuleDb::wildcard(&db.alias, "x", &mut m),
                Err(Error::Index("modules.alias.bin", IndexFault::Unreadable(0)))
            );
        }
        std::fs::remove_dir_all(&base).unwrap();
    }

    /// Beyond the bound, the files that sort last are left out (whatever
    /// order the directory lists them in), counted, and the first of them
    /// named; modules.softdep does not count.
    #[test]
    fn config_files_over_the_bound_keep_the_first_in_sort_order() {
        let base =
            std::env::temp_dir().join(std::format!("earlymod-cfgmax-{}", std::process::id()));
        let (a, b) = (base.join("a"), base.join("b"));
        std::fs::create_dir_all(&a).unwrap();
        std::fs::create_dir_all(&b).unwrap();
        // 128 files in a (m000..m127), 3 in b: two sort first, one last.
        for i in 0..MAX_CONFIG_FILES {
            std::fs::write(a.join(std::format!("m{i:03}.conf")), "").unwrap();
        }
        for n in ["a0.conf", "a1.conf", "z.conf"] {
            std::fs::write(b.join(n), "").unwrap();
        }
        let (a_s, b_s) = (
            a.to_str().unwrap().to_string(),
            b.to_str().unwrap().to_string(),
        );
        let mut dropped = Dropped::default();
        let files = config_files(&[a_s.as_str()], &mut |_, _| {}, &mut dropped);
        assert_eq!(files.len(), MAX_CONFIG_FILES + 2, "at the bound: all kept");
        assert_eq!(dropped.count, 0);
        let files = config_files(&[a_s.as_str(), b_s.as_str()], &mut |_, _| {}, &mut dropped);
        let names: Vec<&str> = files.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(names.len(), MAX_CONFIG_FILES + 2);
        assert_eq!(&names[..3], &["a0.conf", "a1.conf", "m000.conf"]);
        assert!(names.contains(&"modules.softdep"));
        assert_eq!(names[names.len() - 3], "m125.conf");
        assert_eq!(
            &names[names.len() - 2..],
            &["modules.softdep", "modules.weakdep"]
        );
        assert_eq!(dropped.count, 3);
        assert_eq!(dropped.first, "m126.conf");
        std::fs::remove_dir_all(&base).unwrap();
    }
}
