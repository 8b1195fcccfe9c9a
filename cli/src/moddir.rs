//! A module directory (`ROOT/lib/modules/KVER`) read into memory, and the
//! modprobe.d files that apply to it, found and ordered the way libkmod does.

use crate::mapped::Mapped;
use earlymod_core::db::{ModuleDb, Source};
use std::fs;
use std::path::{Path, PathBuf};

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

/// The index files of one module directory.
pub struct ModDir {
    /// The directory, as kmod prints it.
    pub dirname: String,
    bins: [Option<Mapped>; 5],
    texts: [Option<Mapped>; 5],
}

/// The running kernel's release (`uname -r`).
pub fn kernel_release() -> String {
    fs::read_to_string("/proc/sys/kernel/osrelease")
        .map(|s| s.trim_end().to_string())
        .unwrap_or_default()
}

/// kmod's module directory for `-d ROOT` / `-S KVER`.
pub fn dirname_for(root: Option<&str>, kver: Option<&str>) -> String {
    let d = if root.is_some() || kver.is_some() {
        let kver = kver.map(str::to_string).unwrap_or_else(kernel_release);
        format!("{}/lib/modules/{}", root.unwrap_or(""), kver)
    } else {
        format!("/lib/modules/{}", kernel_release())
    };
    make_absolute(&d)
}

/// Prefixes the working directory to a relative path (libkmod's `path_make_absolute_cwd`).
pub fn make_absolute(p: &str) -> String {
    if p.starts_with('/') {
        return p.to_string();
    }
    match std::env::current_dir() {
        Ok(cwd) => format!("{}/{}", cwd.display(), p),
        Err(_) => p.to_string(),
    }
}

impl ModDir {
    /// Reads whatever index files exist (binary preferred, text as fallback).
    pub fn open(dirname: String) -> ModDir {
        let read = |name: String| Mapped::open(&Path::new(&dirname).join(name));
        let bins = INDEXES.map(|n| read(format!("{n}.bin")));
        // The text form is only needed when the binary index is absent.
        let mut texts: [Option<Mapped>; 5] = Default::default();
        for (i, n) in INDEXES.iter().enumerate() {
            if bins[i].is_none() && i < 4 {
                texts[i] = read(n.to_string());
            }
        }
        ModDir {
            dirname,
            bins,
            texts,
        }
    }

    /// The database view over the files.
    pub fn db(&self) -> ModuleDb<'_> {
        let s = |i: usize| {
            Source::new(
                self.bins[i].as_ref().map(Mapped::bytes),
                self.texts[i].as_ref().map(Mapped::bytes),
            )
        };
        ModuleDb {
            dep: s(0),
            alias: s(1),
            symbols: s(2),
            builtin: s(3),
            builtin_alias: s(4),
        }
    }

    /// Absolute path of a `modules.dep` path (absolute paths are kept).
    pub fn module_path(&self, rel: &str) -> String {
        if rel.starts_with('/') {
            rel.to_string()
        } else {
            format!("{}/{}", self.dirname, rel)
        }
    }
}

/// The config files to read, in the order libkmod reads them: one list
/// sorted by file name across all paths (the first path wins a duplicate
/// name), with `modules.softdep` of the module directory among them.
pub fn config_files(dirname: &str, paths: &[String]) -> Vec<PathBuf> {
    let mut list: Vec<(String, PathBuf)> = Vec::new();
    let mut insert = |name: String, path: PathBuf| {
        if let Err(pos) = list.binary_search_by(|(n, _)| n.as_bytes().cmp(name.as_bytes())) {
            list.insert(pos, (name, path));
        }
    };
    insert(
        "modules.softdep".into(),
        Path::new(dirname).join("modules.softdep"),
    );
    for p in paths {
        let path = Path::new(p);
        let Ok(meta) = fs::metadata(path) else {
            continue;
        };
        if !meta.is_dir() {
            let name = path
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            insert(name, path.to_path_buf());
            continue;
        }
        let Ok(rd) = fs::read_dir(path) else { continue };
        for e in rd.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            if name.starts_with('.')
                || !(name.ends_with(".conf") || name.ends_with(".alias"))
                || name.len() < 6
            {
                continue;
            }
            if e.path().is_dir() {
                eprintln!(
                    "modprobe: ERROR: Directories inside directories are not supported: {}/{}",
                    p, name
                );
                continue;
            }
            insert(name, e.path());
        }
    }
    list.into_iter().map(|(_, p)| p).collect()
}
