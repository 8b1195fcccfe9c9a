//! A module tree on the host: `ROOT/lib/modules/KVER` with depmod's files,
//! read whole into memory and viewed through earlymod-core's `ModuleDb`.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use earlymod_core::db::{ModuleDb, Source};

/// The depmod files a tree may hold (binary index, text form).
const INDEX_FILES: [(&str, Option<&str>); 5] = [
    ("modules.dep.bin", Some("modules.dep")),
    ("modules.alias.bin", Some("modules.alias")),
    ("modules.symbols.bin", Some("modules.symbols")),
    ("modules.builtin.bin", Some("modules.builtin")),
    ("modules.builtin.alias.bin", None),
];

/// One module directory, loaded.
pub struct Tree {
    /// The module directory (`ROOT/lib/modules/KVER`).
    pub moddir: PathBuf,
    /// The kernel release.
    pub kver: String,
    bins: [Option<Vec<u8>>; 5],
    texts: [Option<Vec<u8>>; 5],
    /// `modules.order`, if present.
    pub order: Option<String>,
    /// `modules.softdep`, if present.
    pub softdep: Option<Vec<u8>>,
    /// `modules.builtin.modinfo`, if present (carried for modinfo).
    pub builtin_modinfo: Option<Vec<u8>>,
}

fn read_opt(path: &Path) -> io::Result<Option<Vec<u8>>> {
    match fs::read(path) {
        Ok(b) => Ok(Some(b)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(io::Error::new(e.kind(), format!("{}: {e}", path.display()))),
    }
}

impl Tree {
    /// Reads the tree of kernel `kver` under `root`.
    pub fn open(root: &Path, kver: &str) -> io::Result<Tree> {
        let moddir = root.join("lib/modules").join(kver);
        if !moddir.is_dir() {
            return Err(io::Error::new(
                io::ErrorKind::NotFound,
                format!("{}: no such module directory", moddir.display()),
            ));
        }
        let mut bins: [Option<Vec<u8>>; 5] = Default::default();
        let mut texts: [Option<Vec<u8>>; 5] = Default::default();
        for (i, (bin, text)) in INDEX_FILES.iter().enumerate() {
            bins[i] = read_opt(&moddir.join(bin))?;
            if let Some(t) = text {
                texts[i] = read_opt(&moddir.join(t))?;
            }
        }
        if bins[0].is_none() && texts[0].is_none() {
            return Err(io::Error::new(
                io::ErrorKind::NotFound,
                format!(
                    "{}: no modules.dep(.bin) (run depmod first)",
                    moddir.display()
                ),
            ));
        }
        let order = read_opt(&moddir.join("modules.order"))?
            .map(|b| String::from_utf8_lossy(&b).into_owned());
        Ok(Tree {
            softdep: read_opt(&moddir.join("modules.softdep"))?,
            builtin_modinfo: read_opt(&moddir.join("modules.builtin.modinfo"))?,
            moddir,
            kver: kver.to_string(),
            bins,
            texts,
            order,
        })
    }

    /// The indexes, as the resolver reads them.
    pub fn db(&self) -> ModuleDb<'_> {
        let src = |i: usize| Source::new(self.bins[i].as_deref(), self.texts[i].as_deref());
        ModuleDb {
            dep: src(0),
            alias: src(1),
            symbols: src(2),
            builtin: src(3),
            builtin_alias: src(4),
        }
    }

    /// The text `modules.builtin`, if present.
    pub fn builtin_text(&self) -> Option<&[u8]> {
        self.texts[3].as_deref()
    }
}
