//! A module directory's indexes, mapped, and the modprobe.d files that
//! apply, found and ordered as libkmod orders them.

use crate::sys::{self, CPath, Kind, Mapped};
use earlymod_core::db::{ModuleDb, Source};

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

/// A module directory path (`ROOT/lib/modules/KVER`).
pub type DirName = heapless::String<1024>;

/// The mapped indexes of one module directory.
pub struct ModDir {
    /// The directory, as kmod prints it.
    pub dirname: DirName,
    bins: [Option<Mapped>; 5],
    texts: [Option<Mapped>; 4],
}

/// kmod's module directory for `-d ROOT` / `-S KVER` (made absolute).
pub fn dirname_for(root: Option<&str>, kver: Option<&str>) -> DirName {
    let mut release = heapless::String::<128>::new();
    let kver = match kver {
        Some(k) => k,
        None => {
            sys::kernel_release(&mut release);
            release.as_str()
        }
    };
    let mut d = DirName::new();
    if !root.unwrap_or("/").starts_with('/') {
        let mut cwd = [core::mem::MaybeUninit::uninit(); 4096];
        if let Some(c) = sys::current_dir(&mut cwd) {
            let _ = d.push_str(c);
            let _ = d.push('/');
        }
    }
    let _ = d.push_str(root.unwrap_or(""));
    let _ = d.push_str("/lib/modules/");
    let _ = d.push_str(kver);
    d
}

impl ModDir {
    /// Maps whatever index files exist (binary preferred, text as fallback).
    pub fn open(dirname: DirName) -> ModDir {
        let map = |name: &str, suffix: &str| {
            CPath::join(&[&dirname, "/", name, suffix])
                .and_then(|p| Mapped::open(p.as_cstr(), false))
        };
        let bins = INDEXES.map(|n| map(n, ".bin"));
        let mut texts: [Option<Mapped>; 4] = Default::default();
        for (i, t) in texts.iter_mut().enumerate() {
            if bins[i].is_none() {
                *t = map(INDEXES[i], "");
            }
        }
        ModDir {
            dirname,
            bins,
            texts,
        }
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
        let s = |i: usize| Source::new(bin(i), text(i));
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
    /// `modules.softdep` in the module directory.
    Softdep,
}

/// A config file name (the sort key).
pub type FileName = heapless::String<256>;

/// The bound on config files read.
pub const MAX_CONFIG_FILES: usize = 128;

/// The config files in libkmod's order: one list sorted by file name across
/// all paths, the first path winning a duplicate, `modules.softdep` among them.
pub fn config_files(
    paths: &[&str],
    on_error: &mut dyn FnMut(&str, &str),
) -> heapless::Vec<(FileName, Src), MAX_CONFIG_FILES> {
    let mut list: heapless::Vec<(FileName, Src), MAX_CONFIG_FILES> = heapless::Vec::new();
    let mut insert = |name: &str, src: Src| {
        if let Err(pos) = list.binary_search_by(|(n, _)| n.as_bytes().cmp(name.as_bytes()))
            && let Ok(n) = FileName::try_from(name)
        {
            let _ = list.insert(pos, (n, src));
        }
    };
    insert("modules.softdep", Src::Softdep);
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
            if name.starts_with('.')
                || name.len() < 6
                || !(name.ends_with(".conf") || name.ends_with(".alias"))
            {
                return;
            }
            if kind == Kind::Dir {
                on_error(p, name);
                return;
            }
            insert(name, Src::InDir(i));
        });
    }
    list
}

/// The path of one config file.
pub fn config_path(dirname: &str, paths: &[&str], name: &str, src: Src) -> Option<CPath> {
    match src {
        Src::InDir(i) => CPath::join(&[paths[i], "/", name]),
        Src::File(i) => CPath::join(&[paths[i]]),
        Src::Softdep => CPath::join(&[dirname, "/modules.softdep"]),
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
        let files = config_files(&paths, &mut |p, n| errors.push(std::format!("{p}/{n}")));
        let got: Vec<(&str, &str)> = files
            .iter()
            .map(|(n, s)| {
                (
                    n.as_str(),
                    match s {
                        Src::InDir(0) => "a",
                        Src::InDir(_) => "b",
                        Src::File(_) => "file",
                        Src::Softdep => "softdep",
                    },
                )
            })
            .collect();
        assert_eq!(
            got,
            [
                ("c.alias", "b"),
                ("m.conf", "a"),
                ("modules.softdep", "softdep"),
                ("one.conf", "file"),
                ("z.conf", "a")
            ]
        );
        assert_eq!(errors.len(), 1, "a directory named *.conf is reported");
        std::fs::remove_dir_all(&base).unwrap();
    }
}
