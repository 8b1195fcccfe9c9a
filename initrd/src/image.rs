//! The image's file tree and its serialization: one uncompressed newc
//! member holding the directories and every already-compressed file, then
//! one member (compressed as asked) with the rest. Entries are sorted by
//! path, owned by root, with one mtime and inode numbers in order, so the
//! same inputs give the same bytes.

use std::collections::BTreeMap;

use crate::compress::{Compression, compress_parallel};
use crate::cpio::{Entry, EntryKind, write_newc};

/// One node of the image tree.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Node {
    Dir(u32),
    File {
        data: Vec<u8>,
        mode: u32,
        precompressed: bool,
    },
    Symlink(String),
    CharDev {
        major: u32,
        minor: u32,
        mode: u32,
    },
}

/// The tree to pack, keyed by path (relative, no leading `/`).
#[derive(Debug, Default, Clone)]
pub struct Image {
    nodes: BTreeMap<String, Node>,
    /// Files of the early member (CPU microcode): path → contents.
    early: BTreeMap<String, Vec<u8>>,
}

/// Sizes of a written image.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct ImageStats {
    /// Entries written (trailers not counted).
    pub entries: usize,
    /// Bytes of the uncompressed first member (0 if there is none).
    pub raw_member: usize,
    /// Bytes of the main member before compression.
    pub main_plain: usize,
    /// Bytes of the main member as written.
    pub main_written: usize,
    /// Members (each a whole newc archive).
    pub members: usize,
    /// Bytes of the early member (0 if there is none).
    pub early_member: usize,
}

/// `p` as an image path: without leading `/`, not empty, no empty, `.`
/// or `..` components.
pub fn image_path(p: &str) -> Result<&str, String> {
    let rel = p.trim_start_matches('/');
    if rel.is_empty()
        || rel
            .split('/')
            .any(|c| c.is_empty() || c == "." || c == "..")
    {
        return Err(format!("bad image path '{p}'"));
    }
    Ok(rel)
}

impl Image {
    /// An empty image.
    pub fn new() -> Self {
        Self::default()
    }

    fn insert(&mut self, path: &str, node: Node) -> Result<(), String> {
        let path = image_path(path)?;
        // Parents are directories.
        let mut at = 0;
        while let Some(i) = path[at..].find('/') {
            let parent = &path[..at + i];
            match self.nodes.get(parent) {
                None => {
                    self.nodes.insert(parent.to_string(), Node::Dir(0o755));
                }
                Some(Node::Dir(_)) => {}
                Some(_) => return Err(format!("/{path}: /{parent} is not a directory")),
            }
            at += i + 1;
        }
        match self.nodes.get(path) {
            Some(Node::Dir(_)) if matches!(node, Node::Dir(_)) => {}
            Some(old) if *old != node => {
                return Err(format!("/{path}: already in the image as something else"));
            }
            _ => {}
        }
        self.nodes.insert(path.to_string(), node);
        Ok(())
    }

    /// Adds a directory (and its parents).
    pub fn dir(&mut self, path: &str, mode: u32) -> Result<(), String> {
        self.insert(path, Node::Dir(mode))
    }

    /// Adds a regular file; `precompressed` files go into the uncompressed
    /// member (compressing them again gains nothing).
    pub fn file(
        &mut self,
        path: &str,
        data: Vec<u8>,
        mode: u32,
        precompressed: bool,
    ) -> Result<(), String> {
        self.insert(
            path,
            Node::File {
                data,
                mode,
                precompressed,
            },
        )
    }

    /// Adds a file to the early member: an uncompressed archive of its own
    /// written first, where the kernel's early loaders look (CPU microcode
    /// at `kernel/x86/microcode/`).
    pub fn early_file(&mut self, path: &str, data: Vec<u8>) -> Result<(), String> {
        let path = image_path(path)?;
        if self.early.contains_key(path) {
            return Err(format!("/{path}: already in the early member"));
        }
        self.early.insert(path.to_string(), data);
        Ok(())
    }

    /// Adds a symbolic link.
    pub fn symlink(&mut self, path: &str, target: &str) -> Result<(), String> {
        self.insert(path, Node::Symlink(target.to_string()))
    }

    /// Adds a character device node.
    pub fn chardev(&mut self, path: &str, major: u32, minor: u32, mode: u32) -> Result<(), String> {
        self.insert(path, Node::CharDev { major, minor, mode })
    }

    /// The regular files so far: path and contents, in path order.
    pub fn files(&self) -> impl Iterator<Item = (&str, &[u8])> {
        self.nodes.iter().filter_map(|(p, n)| match n {
            Node::File { data, .. } => Some((p.as_str(), data.as_slice())),
            _ => None,
        })
    }

    /// The symbolic links so far: path and target, in path order.
    pub fn symlinks(&self) -> impl Iterator<Item = (&str, &str)> {
        self.nodes.iter().filter_map(|(p, n)| match n {
            Node::Symlink(t) => Some((p.as_str(), t.as_str())),
            _ => None,
        })
    }

    /// True when the image has `path`.
    pub fn contains(&self, path: &str) -> bool {
        self.nodes.contains_key(path.trim_start_matches('/'))
    }

    /// Serializes the image (consuming it: file contents move into the
    /// archive), compressing with `jobs` threads.
    pub fn write(
        self,
        how: Compression,
        mtime: u32,
        jobs: usize,
    ) -> Result<(Vec<u8>, ImageStats), String> {
        // Directories the raw member's files need (each member is a whole
        // archive on its own, as unmkinitramfs and cpio -i expect).
        let mut raw_dirs: std::collections::BTreeSet<String> = std::collections::BTreeSet::new();
        for (path, node) in &self.nodes {
            if matches!(
                node,
                Node::File {
                    precompressed: true,
                    ..
                }
            ) {
                let mut p = path.as_str();
                while let Some(i) = p.rfind('/') {
                    p = &p[..i];
                    raw_dirs.insert(p.to_string());
                }
            }
        }
        let mut raw = Vec::new();
        let mut main = Vec::new();
        // Moves the file contents into the entries (no copy of the payload).
        for (path, node) in self.nodes {
            let is_dir = matches!(node, Node::Dir(_));
            let (kind, mode, to_raw) = match node {
                Node::Dir(m) => (EntryKind::Dir, m, raw_dirs.contains(&path)),
                Node::File {
                    data,
                    mode,
                    precompressed,
                } => (EntryKind::File(data), mode, precompressed),
                Node::Symlink(t) => (EntryKind::Symlink(t), 0o777, false),
                Node::CharDev { major, minor, mode } => {
                    (EntryKind::CharDev { major, minor }, mode, false)
                }
            };
            let e = Entry { path, mode, kind };
            if to_raw {
                // The main member repeats the directory for its own files.
                if is_dir {
                    main.push(e.clone());
                }
                raw.push(e);
            } else {
                main.push(e);
            }
        }
        let mut out = Vec::new();
        let mut ino = 1;
        let mut stats = ImageStats {
            entries: raw.len() + main.len(),
            ..ImageStats::default()
        };
        if !self.early.is_empty() {
            let mut dirs = std::collections::BTreeSet::new();
            for path in self.early.keys() {
                let mut p = path.as_str();
                while let Some(i) = p.rfind('/') {
                    p = &p[..i];
                    dirs.insert(p.to_string());
                }
            }
            let mut early: Vec<Entry> = dirs
                .into_iter()
                .map(|path| Entry {
                    path,
                    mode: 0o755,
                    kind: EntryKind::Dir,
                })
                .collect();
            early.extend(self.early.into_iter().map(|(path, data)| Entry {
                path,
                mode: 0o644,
                kind: EntryKind::File(data),
            }));
            early.sort_by(|a, b| a.path.cmp(&b.path));
            stats.entries += early.len();
            ino = write_newc(&early, mtime, ino, &mut out).map_err(|e| e.to_string())?;
            stats.early_member = out.len();
            stats.members = 1;
        }
        if !raw.is_empty() {
            let start = out.len();
            ino = write_newc(&raw, mtime, ino, &mut out).map_err(|e| e.to_string())?;
            stats.raw_member = out.len() - start;
            stats.members += 1;
        }
        let mut plain = Vec::new();
        write_newc(&main, mtime, ino, &mut plain).map_err(|e| e.to_string())?;
        stats.main_plain = plain.len();
        let packed = compress_parallel(&plain, how, jobs);
        stats.main_written = packed.len();
        stats.members += 1;
        out.extend_from_slice(&packed);
        Ok((out, stats))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cpio::read_image;

    #[test]
    fn the_early_member_comes_first_and_alone() {
        let mut img = Image::new();
        img.file("etc/x.conf", b"x\n".to_vec(), 0o644, false)
            .unwrap();
        img.early_file("kernel/x86/microcode/AuthenticAMD.bin", b"ucode".to_vec())
            .unwrap();
        assert!(
            img.early_file("kernel/x86/microcode/AuthenticAMD.bin", vec![])
                .is_err()
        );
        let (bytes, stats) = img.write(Compression::Gzip, 0, 1).unwrap();
        assert_eq!(stats.members, 2);
        // An uncompressed archive of its own at offset 0.
        assert_eq!(&bytes[..6], b"070701");
        let early = read_image(&bytes[..stats.early_member]).unwrap();
        let names: Vec<&str> = early.iter().map(|e| e.path.as_str()).collect();
        assert_eq!(
            names,
            [
                "kernel",
                "kernel/x86",
                "kernel/x86/microcode",
                "kernel/x86/microcode/AuthenticAMD.bin"
            ]
        );
        assert_eq!(early[3].data, b"ucode");
        let all = read_image(&bytes).unwrap();
        assert_eq!(all.last().unwrap().path, "etc/x.conf");
    }

    #[test]
    fn parents_members_and_conflicts() {
        let mut img = Image::new();
        img.file(
            "lib/modules/k/a.ko.xz",
            b"\xfd7zXZ\0...".to_vec(),
            0o644,
            true,
        )
        .unwrap();
        img.file("etc/x.conf", b"x\n".to_vec(), 0o644, false)
            .unwrap();
        img.symlink("sbin/modprobe", "earlymod").unwrap();
        img.chardev("dev/console", 5, 1, 0o600).unwrap();
        assert!(img.file("etc/x.conf/y", vec![], 0o644, false).is_err());
        assert!(img.symlink("etc/x.conf", "z").is_err());
        assert!(img.file("../x", vec![], 0o644, false).is_err());
        img.file("etc/x.conf", b"x\n".to_vec(), 0o644, false)
            .unwrap();
        let (bytes, stats) = img.clone().write(Compression::Gzip, 0, 2).unwrap();
        assert!(stats.raw_member > 0 && stats.main_written > 0);
        let got = read_image(&bytes).unwrap();
        let names: Vec<&str> = got.iter().map(|e| e.path.as_str()).collect();
        // Each member carries the directories its own entries need.
        assert_eq!(
            names,
            [
                "lib",
                "lib/modules",
                "lib/modules/k",
                "lib/modules/k/a.ko.xz",
                "dev",
                "dev/console",
                "etc",
                "etc/x.conf",
                "lib",
                "lib/modules",
                "lib/modules/k",
                "sbin",
                "sbin/modprobe"
            ]
        );
        let inos: Vec<u32> = got.iter().map(|e| e.ino).collect();
        assert_eq!(inos, (1..=13).collect::<Vec<_>>());
        let (again, _) = img.write(Compression::Gzip, 0, 2).unwrap();
        assert_eq!(bytes, again);
    }
}
