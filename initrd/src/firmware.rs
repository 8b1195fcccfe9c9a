//! Firmware for the packed modules: every `firmware=` name a module's
//! `.modinfo` lists, found the way the *target* kernel's firmware loader
//! looks for it (`drivers/base/firmware_loader/main.c`) and stored in a form
//! that kernel reads.
//!
//! The loader tries the plain file in every directory of its search path
//! (`/lib/firmware/updates/KVER`, `/lib/firmware/updates`,
//! `/lib/firmware/KVER`, `/lib/firmware`), then `NAME.zst` in every
//! directory (`CONFIG_FW_LOADER_COMPRESS_ZSTD`), then `NAME.xz`
//! (`CONFIG_FW_LOADER_COMPRESS_XZ`). Each firmware tree given to the packer
//! stands for `/lib/firmware` and is searched in that order; a file found
//! only in a form the target cannot read is stored decompressed. A file
//! keeps its place in the tree (an `updates/` file stays in `updates/`), so
//! the kernel in the image picks the same one. Symbolic links inside the
//! tree are kept as links, and their targets packed too.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Component, Path, PathBuf};

use earlymod_core::fnmatch::fnmatch;
use earlymod_decompress::{MAX_OUTPUT, decompress_to_vec};

use crate::image::Image;
use crate::transcode::xz_unfit_for_firmware;

/// The image directory the kernel's loader reads.
pub const IMAGE_DIR: &str = "lib/firmware";

/// Links followed before giving up (the kernel's `ELOOP` limit).
const MAX_LINKS: usize = 40;

/// The compressed forms a kernel's firmware loader reads, in the order it
/// tries them after the plain file, from the kernel's config.
pub fn kernel_suffixes(config: &str) -> Vec<&'static str> {
    let on = |sym: &str| {
        config
            .lines()
            .any(|l| l.trim().strip_suffix("=y") == Some(sym))
    };
    let mut v = Vec::new();
    if on("CONFIG_FW_LOADER_COMPRESS_ZSTD") {
        v.push(".zst");
    }
    if on("CONFIG_FW_LOADER_COMPRESS_XZ") {
        v.push(".xz");
    }
    v
}

/// Every compressed form the packer can decompress.
const ALL_SUFFIXES: [&str; 2] = [".zst", ".xz"];

/// One firmware request and what became of it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    /// The module that asks (`firmware=` in its `.modinfo`).
    pub module: String,
    /// The name as the module gives it (may be a wildcard).
    pub name: String,
    /// The image paths it was stored at (empty: missing).
    pub stored: Vec<String>,
}

/// Where firmware is searched and in which forms the target reads it.
#[derive(Debug, Clone)]
pub struct Search {
    /// Firmware trees, each standing for `/lib/firmware`, in order.
    pub dirs: Vec<PathBuf>,
    /// The target kernel's release (`updates/KVER`, `KVER`).
    pub kver: String,
    /// Compressed forms the target reads ([`kernel_suffixes`]).
    pub suffixes: Vec<&'static str>,
}

/// A file found for a request: its tree and path inside it (with the
/// compression suffix, if any).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Found {
    /// The tree it was found in (one of [`Search::dirs`]).
    pub dir: PathBuf,
    /// Path below the tree, as found (`updates/x.bin.xz`).
    pub rel: String,
}

impl Search {
    /// The loader's subdirectories, in its order.
    fn subdirs(&self) -> [String; 4] {
        [
            format!("updates/{}/", self.kver),
            "updates/".to_string(),
            format!("{}/", self.kver),
            String::new(),
        ]
    }

    /// The file the target kernel would load for `name`: plain in every
    /// subdirectory, then each compressed form it reads; failing that, a
    /// compressed form it cannot read (stored decompressed).
    pub fn locate(&self, name: &str) -> Option<Found> {
        if !safe_rel(name) {
            return None;
        }
        for dir in &self.dirs {
            let unreadable = ALL_SUFFIXES.iter().filter(|s| !self.suffixes.contains(s));
            for suffix in std::iter::once(&"").chain(&self.suffixes).chain(unreadable) {
                for sub in self.subdirs() {
                    let rel = format!("{sub}{name}{suffix}");
                    if dir.join(&rel).is_file() {
                        return Some(Found {
                            dir: dir.clone(),
                            rel,
                        });
                    }
                }
            }
        }
        None
    }

    /// The names a wildcard request stands for: every file of the search
    /// path (compression suffix taken off) whose path matches `pattern`
    /// component by component, as a shell glob would (`*` stays inside one
    /// component). Sorted, each once.
    pub fn expand(&self, pattern: &str) -> Vec<String> {
        let want: Vec<&str> = pattern.split('/').collect();
        let mut names = BTreeSet::new();
        for dir in &self.dirs {
            for sub in self.subdirs() {
                let base = dir.join(&sub);
                let mut files = Vec::new();
                walk(&base, "", want.len(), &mut files);
                for f in files {
                    let name = ALL_SUFFIXES
                        .iter()
                        .find_map(|s| f.strip_suffix(s))
                        .unwrap_or(&f);
                    let comps: Vec<&str> = name.split('/').collect();
                    if comps.len() == want.len()
                        && comps
                            .iter()
                            .zip(&want)
                            .all(|(c, w)| fnmatch(w.as_bytes(), c.as_bytes()))
                    {
                        names.insert(name.to_string());
                    }
                }
            }
        }
        names.into_iter().collect()
    }
}

/// Files (and links to files) below `base`, `depth` components deep, as
/// paths relative to it.
fn walk(base: &Path, prefix: &str, depth: usize, out: &mut Vec<String>) {
    if depth == 0 {
        return;
    }
    let Ok(rd) = std::fs::read_dir(base.join(prefix)) else {
        return;
    };
    for e in rd.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        let rel = if prefix.is_empty() {
            name
        } else {
            format!("{prefix}/{name}")
        };
        let path = base.join(&rel);
        if depth == 1 {
            if path.is_file() {
                out.push(rel);
            }
        } else if path.is_dir() {
            walk(base, &rel, depth - 1, out);
        }
    }
}

/// A relative path with no `..`, `.` or empty components.
fn safe_rel(p: &str) -> bool {
    !p.is_empty()
        && !p.starts_with('/')
        && p.split('/').all(|c| !c.is_empty() && c != "." && c != "..")
}

/// `link`'s target resolved inside its tree: the tree-relative path, or
/// `None` when it is absolute or leaves the tree.
fn resolve_in_tree(link_rel: &str, target: &Path) -> Option<String> {
    if target.is_absolute() {
        return None;
    }
    let mut parts: Vec<String> = link_rel.split('/').map(str::to_string).collect();
    parts.pop();
    for c in target.components() {
        match c {
            Component::Normal(s) => parts.push(s.to_string_lossy().into_owned()),
            Component::CurDir => {}
            Component::ParentDir => {
                parts.pop()?;
            }
            _ => return None,
        }
    }
    (!parts.is_empty()).then(|| parts.join("/"))
}

/// What [`Packer::add`] stored: the image paths, or why nothing was.
type Stored = Result<Vec<String>, String>;

/// Stores located firmware files into an image, each file once.
#[derive(Debug)]
pub struct Packer<'a> {
    search: &'a Search,
    /// Image path → tree-relative source, of what is stored already.
    done: BTreeMap<String, String>,
    /// Files and bytes stored.
    pub files: usize,
    /// Bytes of firmware stored (files only, links excluded).
    pub bytes: u64,
}

impl<'a> Packer<'a> {
    /// A packer over `search`.
    pub fn new(search: &'a Search) -> Self {
        Self {
            search,
            done: BTreeMap::new(),
            files: 0,
            bytes: 0,
        }
    }

    /// Stores `found` (following links inside its tree) into `img` under
    /// [`IMAGE_DIR`]; returns the image paths written.
    pub fn add(&mut self, img: &mut Image, found: &Found) -> Stored {
        let mut out = Vec::new();
        let mut rel = found.rel.clone();
        for _ in 0..MAX_LINKS {
            let path = found.dir.join(&rel);
            let meta =
                std::fs::symlink_metadata(&path).map_err(|e| format!("{}: {e}", path.display()))?;
            let (suffix, readable) = self.form(&path, &rel);
            let stored_rel = if readable {
                rel.clone()
            } else {
                rel[..rel.len() - suffix.len()].to_string()
            };
            let at = format!("{IMAGE_DIR}/{stored_rel}");
            if self.done.contains_key(&at) {
                out.push(at);
                return Ok(out);
            }
            if meta.file_type().is_symlink() {
                let target =
                    std::fs::read_link(&path).map_err(|e| format!("{}: {e}", path.display()))?;
                if let Some(next) = resolve_in_tree(&rel, &target) {
                    let mut shown = target.to_string_lossy().into_owned();
                    if !readable {
                        if let Some(s) = shown.strip_suffix(suffix) {
                            shown = s.to_string();
                        }
                    }
                    img.symlink(&at, &shown)?;
                    self.done.insert(at.clone(), rel.clone());
                    out.push(at);
                    rel = next;
                    continue;
                }
                // A link out of the tree: its contents, as a file.
            }
            let data = std::fs::read(&path).map_err(|e| format!("{}: {e}", path.display()))?;
            let (data, packed) = if readable {
                (data, !suffix.is_empty())
            } else {
                let plain = decompress_to_vec(&data, MAX_OUTPUT)
                    .map_err(|e| format!("{}: cannot decompress ({e})", path.display()))?;
                (plain, false)
            };
            self.bytes += data.len() as u64;
            self.files += 1;
            img.file(&at, data, 0o644, packed)?;
            self.done.insert(at.clone(), rel);
            out.push(at);
            return Ok(out);
        }
        Err(format!(
            "{}: too many levels of symbolic links",
            found.dir.join(&found.rel).display()
        ))
    }

    /// The compression suffix of `rel` (at `path`) and whether the target
    /// reads that form (an xz file its decoder cannot take is not readable).
    fn form(&self, path: &Path, rel: &str) -> (&'static str, bool) {
        let Some(suffix) = ALL_SUFFIXES.iter().copied().find(|s| rel.ends_with(s)) else {
            return ("", true);
        };
        if !self.search.suffixes.contains(&suffix) {
            return (suffix, false);
        }
        if suffix == ".xz" && xz_unfit_for_firmware(&read_head(path, 1100)).is_some() {
            return (suffix, false);
        }
        (suffix, true)
    }
}

fn read_head(path: &Path, n: usize) -> Vec<u8> {
    use std::io::Read;
    let mut buf = Vec::new();
    if let Ok(f) = std::fs::File::open(path) {
        let _ = f.take(n as u64).read_to_end(&mut buf);
    }
    buf
}

/// Packs the firmware every module asks for. `wanted` is (module, its
/// `firmware=` names) in image order. Returns one [`Request`] per name;
/// the caller reports the missing ones.
pub fn pack_firmware(
    search: &Search,
    wanted: &[(String, Vec<String>)],
    img: &mut Image,
    errors: &mut Vec<String>,
) -> (Vec<Request>, usize, u64) {
    let mut packer = Packer::new(search);
    let mut out = Vec::new();
    for (module, names) in wanted {
        for name in names {
            let concrete = if name.contains(['*', '?', '[']) {
                search.expand(name)
            } else {
                vec![name.clone()]
            };
            let mut stored = Vec::new();
            for n in &concrete {
                if let Some(found) = search.locate(n) {
                    match packer.add(img, &found) {
                        Ok(paths) => stored.extend(paths),
                        Err(e) => errors.push(format!("{module}: firmware {n}: {e}")),
                    }
                }
            }
            out.push(Request {
                module: module.clone(),
                name: name.clone(),
                stored,
            });
        }
    }
    (out, packer.files, packer.bytes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::{TempDir, run};

    const KVER: &str = "6.12.0-test";

    fn put(dir: &Path, rel: &str, data: &[u8]) {
        let p = dir.join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, data).unwrap();
    }

    fn link(dir: &Path, rel: &str, target: &str) {
        let p = dir.join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::os::unix::fs::symlink(target, p).unwrap();
    }

    fn xz(data: &[u8], check: &str) -> Vec<u8> {
        run("xz", &["-c", &format!("--check={check}")], None, data).stdout
    }

    fn zstd(data: &[u8]) -> Vec<u8> {
        run("zstd", &["-q", "-c"], None, data).stdout
    }

    fn search(dirs: &[&Path], suffixes: &[&'static str]) -> Search {
        Search {
            dirs: dirs.iter().map(|d| d.to_path_buf()).collect(),
            kver: KVER.into(),
            suffixes: suffixes.to_vec(),
        }
    }

    fn pack(s: &Search, module: &str, names: &[&str]) -> (Image, Vec<Request>, Vec<String>) {
        let mut img = Image::new();
        let mut errors = Vec::new();
        let wanted = vec![(
            module.to_string(),
            names.iter().map(|n| n.to_string()).collect(),
        )];
        let (reqs, _, _) = pack_firmware(s, &wanted, &mut img, &mut errors);
        (img, reqs, errors)
    }

    fn file<'a>(img: &'a Image, path: &str) -> Option<&'a [u8]> {
        img.files().find(|(p, _)| *p == path).map(|(_, d)| d)
    }

    #[test]
    fn suffixes_from_the_kernel_config() {
        let k612 = "CONFIG_FW_LOADER_COMPRESS=y\nCONFIG_FW_LOADER_COMPRESS_XZ=y\n\
                    CONFIG_FW_LOADER_COMPRESS_ZSTD=y\n";
        assert_eq!(kernel_suffixes(k612), vec![".zst", ".xz"]);
        let k61 = "CONFIG_FW_LOADER_COMPRESS_XZ=y\n# CONFIG_FW_LOADER_COMPRESS_ZSTD is not set\n";
        assert_eq!(kernel_suffixes(k61), vec![".xz"]);
        assert!(kernel_suffixes("").is_empty());
    }

    #[test]
    fn the_loaders_search_order() {
        let t = TempDir::new("fw-order");
        let d = t.0.as_path();
        put(d, "a.bin", b"base");
        put(d, &format!("{KVER}/a.bin"), b"kver");
        let s = search(&[d], &[".zst", ".xz"]);
        assert_eq!(s.locate("a.bin").unwrap().rel, format!("{KVER}/a.bin"));
        put(d, "updates/a.bin", b"updates");
        assert_eq!(s.locate("a.bin").unwrap().rel, "updates/a.bin");
        put(d, &format!("updates/{KVER}/a.bin"), b"updates kver");
        assert_eq!(
            s.locate("a.bin").unwrap().rel,
            format!("updates/{KVER}/a.bin")
        );
        // Every plain file before any compressed one, .zst before .xz.
        put(d, &format!("updates/{KVER}/b.bin.xz"), b"x");
        put(d, "b.bin", b"plain");
        assert_eq!(s.locate("b.bin").unwrap().rel, "b.bin");
        put(d, "c.bin.xz", b"x");
        put(d, "c.bin.zst", b"z");
        assert_eq!(s.locate("c.bin").unwrap().rel, "c.bin.zst");
        // A form the kernel cannot read comes last.
        let no_zstd = search(&[d], &[".xz"]);
        assert_eq!(no_zstd.locate("c.bin").unwrap().rel, "c.bin.xz");
        // The first tree wins; names never leave a tree.
        let t2 = TempDir::new("fw-order2");
        put(&t2.0, "a.bin", b"second tree");
        put(&t2.0, "only2.bin", b"2");
        let two = search(&[d, &t2.0], &[]);
        assert_eq!(two.locate("a.bin").unwrap().dir, d);
        assert_eq!(two.locate("only2.bin").unwrap().dir, t2.0);
        assert_eq!(two.locate("../a.bin"), None);
        assert_eq!(two.locate("/a.bin"), None);
        assert_eq!(two.locate("nope.bin"), None);
    }

    #[test]
    fn stored_in_a_form_the_kernel_reads() {
        let t = TempDir::new("fw-forms");
        let d = t.0.as_path();
        let blob: Vec<u8> = (0..5000u32).map(|i| (i * 7 % 251) as u8).collect();
        put(d, "x/crc32.bin.xz", &xz(&blob, "crc32"));
        put(d, "x/crc64.bin.xz", &xz(&blob, "crc64"));
        put(d, "x/z.bin.zst", &zstd(&blob));
        let names = ["x/crc32.bin", "x/crc64.bin", "x/z.bin"];
        // 6.12: reads xz (CRC32) and zstd as they are; CRC64 is decompressed.
        let (img, reqs, errs) = pack(&search(&[d], &[".zst", ".xz"]), "m", &names);
        assert!(errs.is_empty(), "{errs:?}");
        assert_eq!(reqs.iter().map(|r| r.stored.len()).sum::<usize>(), 3);
        assert!(file(&img, "lib/firmware/x/crc32.bin.xz").is_some());
        assert_eq!(file(&img, "lib/firmware/x/crc64.bin").unwrap(), &blob[..]);
        assert!(file(&img, "lib/firmware/x/z.bin.zst").is_some());
        // No firmware decompression in the kernel: everything plain.
        let (img, _, errs) = pack(&search(&[d], &[]), "m", &names);
        assert!(errs.is_empty(), "{errs:?}");
        for n in names {
            assert_eq!(
                file(&img, &format!("lib/firmware/{n}")).unwrap(),
                &blob[..],
                "{n}"
            );
        }
        assert_eq!(img.files().count(), 3);
    }

    #[test]
    fn links_are_kept_and_followed() {
        let t = TempDir::new("fw-links");
        let d = t.0.as_path();
        put(d, "vendor/real-1.bin", b"real");
        link(d, "vendor/alias.bin", "real-1.bin");
        link(d, "other/chain.bin", "../vendor/alias.bin");
        put(&t.0.join("outside"), "x", b"outside");
        let outside = t.0.join("outside/x");
        link(d, "vendor/abs.bin", outside.to_str().unwrap());
        link(d, "vendor/up.bin", "../../escape.bin");
        let s = search(&[d], &[]);
        let (img, reqs, errs) = pack(&s, "m", &["other/chain.bin", "vendor/abs.bin"]);
        assert!(errs.is_empty(), "{errs:?}");
        let links: Vec<(&str, &str)> = img.symlinks().collect();
        assert_eq!(
            links,
            vec![
                ("lib/firmware/other/chain.bin", "../vendor/alias.bin"),
                ("lib/firmware/vendor/alias.bin", "real-1.bin"),
            ]
        );
        assert_eq!(
            file(&img, "lib/firmware/vendor/real-1.bin").unwrap(),
            b"real"
        );
        // A link out of the tree becomes a file with the target's contents.
        assert_eq!(
            file(&img, "lib/firmware/vendor/abs.bin").unwrap(),
            b"outside"
        );
        assert_eq!(reqs[0].stored.len(), 3);
        // A dangling link is not found.
        assert_eq!(s.locate("vendor/up.bin"), None);
    }

    #[test]
    fn compressed_links_lose_their_suffix_with_the_file() {
        let t = TempDir::new("fw-zlink");
        let d = t.0.as_path();
        put(d, "v/a.bin.zst", &zstd(b"payload"));
        link(d, "v/b.bin.zst", "a.bin.zst");
        let (img, _, errs) = pack(&search(&[d], &[".xz"]), "m", &["v/b.bin"]);
        assert!(errs.is_empty(), "{errs:?}");
        assert_eq!(
            img.symlinks().collect::<Vec<_>>(),
            vec![("lib/firmware/v/b.bin", "a.bin")]
        );
        assert_eq!(file(&img, "lib/firmware/v/a.bin").unwrap(), b"payload");
    }

    #[test]
    fn wildcards_match_per_component() {
        let t = TempDir::new("fw-glob");
        let d = t.0.as_path();
        put(d, "rtl_nic/rtl8168d-1.fw", b"1");
        put(d, "rtl_nic/rtl8168e-2.fw.xz", &xz(b"2", "crc32"));
        put(d, "rtl_nic/sub/rtl8168x.fw", b"deeper");
        put(d, "updates/rtl_nic/rtl8168u.fw", b"u");
        put(d, "rtl_nic/rtl8125a-3.fw", b"other");
        let s = search(&[d], &[".xz"]);
        assert_eq!(
            s.expand("rtl_nic/rtl8168*.fw"),
            vec![
                "rtl_nic/rtl8168d-1.fw",
                "rtl_nic/rtl8168e-2.fw",
                "rtl_nic/rtl8168u.fw"
            ]
        );
        let (img, reqs, errs) = pack(&s, "r8169", &["rtl_nic/rtl8168*.fw"]);
        assert!(errs.is_empty(), "{errs:?}");
        assert_eq!(reqs.len(), 1);
        assert_eq!(reqs[0].stored.len(), 3);
        assert!(file(&img, "lib/firmware/updates/rtl_nic/rtl8168u.fw").is_some());
        assert!(file(&img, "lib/firmware/rtl_nic/rtl8168e-2.fw.xz").is_some());
        assert!(file(&img, "lib/firmware/rtl_nic/sub/rtl8168x.fw").is_none());
    }

    #[test]
    fn missing_and_shared_requests() {
        let t = TempDir::new("fw-missing");
        let d = t.0.as_path();
        put(d, "shared.bin", b"s");
        let s = search(&[d], &[]);
        let mut img = Image::new();
        let mut errors = Vec::new();
        let wanted = vec![
            (
                "a".to_string(),
                vec!["shared.bin".to_string(), "gone.bin".to_string()],
            ),
            (
                "b".to_string(),
                vec!["shared.bin".to_string(), "none-*.bin".to_string()],
            ),
        ];
        let (reqs, files, bytes) = pack_firmware(&s, &wanted, &mut img, &mut errors);
        assert!(errors.is_empty(), "{errors:?}");
        assert_eq!((files, bytes), (1, 1));
        let missing: Vec<(&str, &str)> = reqs
            .iter()
            .filter(|r| r.stored.is_empty())
            .map(|r| (r.module.as_str(), r.name.as_str()))
            .collect();
        assert_eq!(missing, vec![("a", "gone.bin"), ("b", "none-*.bin")]);
        assert_eq!(reqs[2].stored, vec!["lib/firmware/shared.bin"]);
    }
}
