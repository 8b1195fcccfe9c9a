//! The `earlymod-pack` configuration file (format documented in
//! `config/pack/README.md`).
//!
//! One directive per line, `#` starts a comment, `\` at the end of a line
//! continues it. modprobe.d lines (`alias`, `blacklist`, `options`,
//! `install`, `remove`, `softdep`, `weakdep`) are carried into the image's
//! `/etc/modprobe.d/earlymod-pack.conf` and take part in the closure.

use std::fmt;
use std::path::{Path, PathBuf};

use crate::compress::Compression;

/// modprobe.d keywords carried verbatim.
const MODPROBE_KEYWORDS: [&str; 7] = [
    "alias",
    "blacklist",
    "options",
    "install",
    "remove",
    "softdep",
    "weakdep",
];

/// An extra file, directory or symlink placed in the image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Extra {
    /// `file SRC [DEST [MODE]]`: a host file copied to DEST.
    File {
        /// Host path (relative paths are relative to the config file).
        src: PathBuf,
        /// Image path, without the leading `/`.
        dest: String,
        /// Permission bits (default: the source's).
        mode: Option<u32>,
    },
    /// `symlink DEST TARGET`.
    Symlink {
        /// Image path of the link, without the leading `/`.
        dest: String,
        /// The link's target, as written.
        target: String,
    },
    /// `dir DEST`: an empty directory (e.g. a mount point).
    Dir(String),
    /// `program SRC [DEST]` and `hook STAGE SRC`: an executable (mode
    /// 0755) with the shared libraries it needs ([`crate::program`]).
    Program {
        /// Host path (relative paths are relative to the config file).
        src: PathBuf,
        /// Image path, without the leading `/`.
        dest: String,
    },
}

/// The stages PID 1 runs hooks at, in boot order: each runs the
/// executables in [`HOOK_DIR`]`/STAGE/`.
pub const HOOK_STAGES: [&str; 3] = ["pre-coldplug", "pre-mount", "pre-switch"];

/// Where hooks live in the image (without the leading `/`).
pub const HOOK_DIR: &str = "lib/earlymod/hooks";

/// A parsed pack configuration (several files may be merged into one).
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct PackConfig {
    /// Modules or aliases loaded at boot (written to modules-load.d) and
    /// included with their closure.
    pub load: Vec<String>,
    /// Modules or aliases included with their closure but not loaded
    /// explicitly (coldplug and `request_module` find them).
    pub include: Vec<String>,
    /// modprobe.d lines, in file order.
    pub modprobe_lines: Vec<String>,
    /// Whole modprobe.d files to carry, by host path.
    pub modprobe_files: Vec<PathBuf>,
    /// `/init`: a host file; `None` means earlymod itself (PID-1 mode).
    pub init: Option<PathBuf>,
    /// Compression of the image's main member.
    pub compress: Option<Compression>,
    /// Extra files, directories and symlinks.
    pub extras: Vec<Extra>,
}

/// A config error: file, line and reason.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    /// The config file.
    pub file: PathBuf,
    /// 1-based line number (of the line's start).
    pub line: usize,
    /// Why the line was rejected.
    pub reason: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}: {}", self.file.display(), self.line, self.reason)
    }
}

impl std::error::Error for ConfigError {}

fn image_path(p: &str) -> Result<String, String> {
    crate::image::image_path(p).map(str::to_string)
}

fn host_path(base: &Path, p: &str) -> PathBuf {
    let p = Path::new(p);
    if p.is_absolute() {
        p.to_path_buf()
    } else {
        base.join(p)
    }
}

/// Joins `\`-continued lines, drops comments and blank lines; yields
/// (line number, text).
fn logical_lines(text: &str) -> Vec<(usize, String)> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut start = 0;
    for (i, raw) in text.lines().enumerate() {
        if cur.is_empty() {
            start = i + 1;
        }
        if let Some(head) = raw.strip_suffix('\\') {
            cur.push_str(head);
            cur.push(' ');
            continue;
        }
        cur.push_str(raw);
        let line = match cur.find('#') {
            Some(h) => &cur[..h],
            None => &cur[..],
        };
        let line = line.trim();
        if !line.is_empty() {
            out.push((start, line.to_string()));
        }
        cur.clear();
    }
    let line = cur.trim();
    if !line.is_empty() {
        out.push((start, line.to_string()));
    }
    out
}

impl PackConfig {
    /// Parses `text`, read from `file` (relative host paths in it are
    /// relative to the file's directory), adding to `self`. Every bad line
    /// is reported; good lines still count.
    pub fn parse(&mut self, file: &Path, text: &str) -> Vec<ConfigError> {
        let base = file.parent().unwrap_or(Path::new("."));
        let mut errors = Vec::new();
        for (line, text) in logical_lines(text) {
            if let Err(reason) = self.directive(base, &text) {
                errors.push(ConfigError {
                    file: file.to_path_buf(),
                    line,
                    reason,
                });
            }
        }
        errors
    }

    fn directive(&mut self, base: &Path, line: &str) -> Result<(), String> {
        let words: Vec<&str> = line.split_ascii_whitespace().collect();
        let (kw, args) = (words[0], &words[1..]);
        let need = |n: usize| {
            if args.len() < n {
                Err(format!("'{kw}' needs {n} argument(s)"))
            } else {
                Ok(())
            }
        };
        match kw {
            "load" | "include" => {
                need(1)?;
                let list = if kw == "load" {
                    &mut self.load
                } else {
                    &mut self.include
                };
                list.extend(args.iter().map(|s| s.to_string()));
            }
            "load-file" => {
                need(1)?;
                for p in args {
                    let path = host_path(base, p);
                    let text = std::fs::read_to_string(&path)
                        .map_err(|e| format!("{}: {e}", path.display()))?;
                    self.load.extend(
                        earlymod_core::modules_load::modules_load_names(&text).map(str::to_string),
                    );
                }
            }
            k if MODPROBE_KEYWORDS.contains(&k) => {
                need(1)?;
                self.modprobe_lines.push(words.join(" "));
            }
            "modprobe.d" => {
                need(1)?;
                self.modprobe_files
                    .extend(args.iter().map(|p| host_path(base, p)));
            }
            "init" => {
                need(1)?;
                if args.len() > 1 {
                    return Err("'init' takes one path".into());
                }
                self.init = (args[0] != "earlymod").then(|| host_path(base, args[0]));
            }
            "compress" => {
                need(1)?;
                self.compress = Some(
                    args[0]
                        .parse()
                        .map_err(|_| format!("unknown compression '{}'", args[0]))?,
                );
            }
            "file" => {
                need(1)?;
                if args.len() > 3 {
                    return Err("'file' takes SRC [DEST [MODE]]".into());
                }
                let dest = image_path(args.get(1).unwrap_or(&args[0]))?;
                let mode = match args.get(2) {
                    Some(m) => Some(
                        u32::from_str_radix(m, 8)
                            .ok()
                            .filter(|m| *m <= 0o7777)
                            .ok_or_else(|| format!("bad mode '{m}' (octal, e.g. 0755)"))?,
                    ),
                    None => None,
                };
                self.extras.push(Extra::File {
                    src: host_path(base, args[0]),
                    dest,
                    mode,
                });
            }
            "symlink" => {
                need(2)?;
                if args.len() > 2 {
                    return Err("'symlink' takes DEST TARGET".into());
                }
                self.extras.push(Extra::Symlink {
                    dest: image_path(args[0])?,
                    target: args[1].to_string(),
                });
            }
            "program" => {
                need(1)?;
                if args.len() > 2 {
                    return Err("'program' takes PATH [DEST]".into());
                }
                self.extras.push(Extra::Program {
                    src: host_path(base, args[0]),
                    dest: image_path(args.get(1).unwrap_or(&args[0]))?,
                });
            }
            "hook" => {
                need(2)?;
                if args.len() > 2 {
                    return Err("'hook' takes STAGE PATH".into());
                }
                if !HOOK_STAGES.contains(&args[0]) {
                    return Err(format!(
                        "unknown hook stage '{}' (one of: {})",
                        args[0],
                        HOOK_STAGES.join(", ")
                    ));
                }
                let src = host_path(base, args[1]);
                let name = src
                    .file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .ok_or_else(|| format!("hook '{}' names no file", args[1]))?;
                self.extras.push(Extra::Program {
                    dest: image_path(&format!("{HOOK_DIR}/{}/{name}", args[0]))?,
                    src,
                });
            }
            "dir" => {
                need(1)?;
                for d in args {
                    self.extras.push(Extra::Dir(image_path(d)?));
                }
            }
            _ => return Err(format!("unknown directive '{kw}'")),
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> (PackConfig, Vec<ConfigError>) {
        let mut c = PackConfig::default();
        let e = c.parse(Path::new("/etc/pack/x.conf"), text);
        (c, e)
    }

    #[test]
    fn directives() {
        let (c, e) = parse(
            "# set\nload ext4 virtio-blk \\\n  fs-xfs\ninclude e1000\n\
             options ext4 debug=1   # trailing comment\nsoftdep a pre: b\n\
             modprobe.d extra.conf\ninit /init.sh\ncompress gzip\n\
             file busybox /bin/busybox 0755\nsymlink /bin/sh busybox\ndir proc sys\n",
        );
        assert!(e.is_empty(), "{e:?}");
        assert_eq!(c.load, ["ext4", "virtio-blk", "fs-xfs"]);
        assert_eq!(c.include, ["e1000"]);
        assert_eq!(
            c.modprobe_lines,
            ["options ext4 debug=1", "softdep a pre: b"]
        );
        assert_eq!(c.modprobe_files, [PathBuf::from("/etc/pack/extra.conf")]);
        assert_eq!(c.init, Some(PathBuf::from("/init.sh")));
        assert_eq!(c.compress, Some(Compression::Gzip));
        assert_eq!(
            c.extras,
            [
                Extra::File {
                    src: "/etc/pack/busybox".into(),
                    dest: "bin/busybox".into(),
                    mode: Some(0o755)
                },
                Extra::Symlink {
                    dest: "bin/sh".into(),
                    target: "busybox".into()
                },
                Extra::Dir("proc".into()),
                Extra::Dir("sys".into()),
            ]
        );
    }

    #[test]
    fn programs_and_hooks() {
        let (c, e) = parse(
            "program /usr/sbin/lvm\nprogram tools/cryptsetup sbin/cryptsetup\n\
             hook pre-mount hooks/10-crypt.sh\nhook pre-switch /opt/x/last\n\
             hook pre-boot x.sh\nhook pre-mount\nprogram a b c\nhook pre-mount ..\n",
        );
        let prog = |src: &str, dest: &str| Extra::Program {
            src: src.into(),
            dest: dest.into(),
        };
        assert_eq!(
            c.extras,
            [
                prog("/usr/sbin/lvm", "usr/sbin/lvm"),
                prog("/etc/pack/tools/cryptsetup", "sbin/cryptsetup"),
                prog(
                    "/etc/pack/hooks/10-crypt.sh",
                    "lib/earlymod/hooks/pre-mount/10-crypt.sh"
                ),
                prog("/opt/x/last", "lib/earlymod/hooks/pre-switch/last"),
            ]
        );
        let got: Vec<String> = e.iter().map(ToString::to_string).collect();
        assert_eq!(
            got,
            [
                "/etc/pack/x.conf:5: unknown hook stage 'pre-boot' \
                 (one of: pre-coldplug, pre-mount, pre-switch)",
                "/etc/pack/x.conf:6: 'hook' needs 2 argument(s)",
                "/etc/pack/x.conf:7: 'program' takes PATH [DEST]",
                "/etc/pack/x.conf:8: hook '..' names no file",
            ]
        );
    }

    #[test]
    fn bad_lines_are_reported_and_the_rest_counts() {
        let (c, e) = parse("load a\nfrobnicate x\nload\ncompress lz4\nfile a ../etc/x\nload b\n");
        assert_eq!(c.load, ["a", "b"]);
        let lines: Vec<_> = e.iter().map(|e| e.line).collect();
        assert_eq!(lines, [2, 3, 4, 5]);
        assert_eq!(
            e[0].to_string(),
            "/etc/pack/x.conf:2: unknown directive 'frobnicate'"
        );
        assert!(e[3].reason.contains("bad image path"));
    }
}
