//! Executables with what they need to run (`program` and `hook` in the pack
//! config): the file itself, and for a dynamically linked ELF its program
//! interpreter and every shared library the host's `ldd` lists, each at the
//! path `ldd` prints. A library path that is a symbolic link (the soname
//! link `libfoo.so.1 -> libfoo.so.1.2.3`, `/lib64/ld-linux-x86-64.so.2 ->
//! ...`) is packed as that link and the file it leads to (the whole chain),
//! so the soname path works in the image.
//!
//! Libraries come from the host, so a dynamically linked program must be
//! for the host's machine: one for another machine is an error (`ldd`
//! cannot list its libraries, and the host's would not run there; pack a
//! static build). A static ELF (no `PT_INTERP`, any machine: the pack's
//! target check decides) and a script bring nothing more.

use std::path::{Component, Path, PathBuf};
use std::process::Command;

use crate::arch::{Machine, elf_machine};

/// One entry a program brings into the image.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum Piece {
    /// A host file copied to an image path.
    File {
        /// Host path (read when packing).
        src: PathBuf,
        /// Image path, without the leading `/`.
        dest: String,
        /// Permission bits.
        mode: u32,
    },
    /// A symbolic link, its target as the host's link has it.
    Symlink {
        /// Image path of the link, without the leading `/`.
        dest: String,
        /// The link's target.
        target: String,
    },
}

impl Piece {
    /// The image path.
    pub fn dest(&self) -> &str {
        match self {
            Piece::File { dest, .. } | Piece::Symlink { dest, .. } => dest,
        }
    }
}

/// The machine this process runs on (its own ELF header), if readable.
pub fn host_machine() -> Option<Machine> {
    use std::io::Read;
    let mut head = [0u8; 20];
    let mut f = std::fs::File::open("/proc/self/exe").ok()?;
    f.read_exact(&mut head).ok()?;
    elf_machine(&head)
}

/// The pieces of the executable `src` packed at `dest` (mode 0755): the
/// file, then — an ELF with an interpreter — the interpreter and the
/// libraries `ldd` (the command `ldd`) lists, links followed, sorted by
/// image path. `host`: the machine the libraries are for (`None`: not
/// checked). Errors name `src`.
pub fn pieces(
    src: &Path,
    dest: &str,
    ldd: &Path,
    host: Option<Machine>,
) -> Result<Vec<Piece>, String> {
    let name = src.display();
    let data = std::fs::read(src).map_err(|e| format!("{name}: {e}"))?;
    let mut out = vec![Piece::File {
        src: src.to_path_buf(),
        dest: crate::image::image_path(dest)?.to_string(),
        mode: 0o755,
    }];
    let Some(m) = elf_machine(&data) else {
        return Ok(out); // a script
    };
    let Some(interp) = interpreter(&data).map_err(|e| format!("{name}: {e}"))? else {
        return Ok(out); // static (for any machine: the target check decides)
    };
    if let Some(h) = host {
        if m != h {
            return Err(format!(
                "{name}: dynamically linked for {}, but this host is {}: its \
                 libraries come from the host's ldd (pack a static build)",
                m.name(),
                h.name()
            ));
        }
    }
    let run = Command::new(ldd)
        .arg(src)
        .output()
        .map_err(|e| format!("{name}: cannot run {}: {e}", ldd.display()))?;
    let text = String::from_utf8_lossy(&run.stdout);
    if !run.status.success() {
        let err = String::from_utf8_lossy(&run.stderr);
        return Err(format!(
            "{name}: {} failed ({}): {}",
            ldd.display(),
            run.status,
            err.trim()
                .lines()
                .chain(text.trim().lines())
                .collect::<Vec<_>>()
                .join("; ")
        ));
    }
    let mut libs = parse_ldd(&text).map_err(|e| format!("{name}: {e}"))?;
    if !libs.contains(&interp) {
        libs.push(interp);
    }
    let mut rest = Vec::new();
    for lib in &libs {
        follow(lib, &mut rest).map_err(|e| format!("{name}: {e}"))?;
    }
    rest.sort_by(|a, b| a.dest().cmp(b.dest()).then_with(|| a.cmp(b)));
    rest.dedup();
    out.extend(rest);
    Ok(out)
}

/// The library paths of `ldd` output, in its order: `name => /path (0x..)`
/// and `/path (0x..)` lines (the vDSO, with no path, is skipped). A
/// `=> not found` line is an error naming every such library.
pub fn parse_ldd(text: &str) -> Result<Vec<String>, String> {
    let mut libs = Vec::new();
    let mut missing = Vec::new();
    for line in text.lines() {
        let line = line.trim();
        let (soname, rest) = match line.split_once("=>") {
            Some((a, b)) => (a.trim(), b.trim()),
            None => ("", line),
        };
        if rest.starts_with("not found") {
            missing.push(soname.to_string());
            continue;
        }
        let path = rest.split(" (").next().unwrap_or("").trim();
        if path.starts_with('/') && !libs.iter().any(|l| l == path) {
            libs.push(path.to_string());
        }
    }
    if !missing.is_empty() {
        return Err(format!("ldd finds no {}", missing.join(", ")));
    }
    Ok(libs)
}

/// `PT_INTERP` of an ELF file: the program interpreter's path, or `None`
/// for a static executable.
pub fn interpreter(elf: &[u8]) -> Result<Option<String>, String> {
    let bad = || "truncated or malformed ELF program headers".to_string();
    let is_64 = match elf.get(4) {
        Some(1) => false,
        Some(2) => true,
        _ => return Err(bad()),
    };
    let le = match elf.get(5) {
        Some(1) => true,
        Some(2) => false,
        _ => return Err(bad()),
    };
    let uint = |at: usize, n: usize| -> Option<u64> {
        let b = elf.get(at..at.checked_add(n)?)?;
        let mut v = 0u64;
        for i in 0..n {
            let byte = if le { b[n - 1 - i] } else { b[i] };
            v = (v << 8) | u64::from(byte);
        }
        Some(v)
    };
    let (phoff, phentsize, phnum) = if is_64 {
        (uint(32, 8), uint(54, 2), uint(56, 2))
    } else {
        (uint(28, 4), uint(42, 2), uint(44, 2))
    };
    let (phoff, phentsize, phnum) = match (phoff, phentsize, phnum) {
        (Some(o), Some(s), Some(n)) => (o as usize, s as usize, n as usize),
        _ => return Err(bad()),
    };
    for i in 0..phnum {
        let ph = phoff.checked_add(i * phentsize).ok_or_else(bad)?;
        if uint(ph, 4).ok_or_else(bad)? != 3 {
            continue; // not PT_INTERP
        }
        let (off, size) = if is_64 {
            (uint(ph + 8, 8), uint(ph + 32, 8))
        } else {
            (uint(ph + 4, 4), uint(ph + 16, 4))
        };
        let (off, size) = (
            off.ok_or_else(bad)? as usize,
            size.ok_or_else(bad)? as usize,
        );
        let raw = elf
            .get(off..off.checked_add(size).ok_or_else(bad)?)
            .ok_or_else(bad)?;
        let path = raw.split(|&b| b == 0).next().unwrap_or_default();
        return Ok(Some(String::from_utf8_lossy(path).into_owned()));
    }
    Ok(None)
}

/// `p` (absolute) with `.` and `..` removed, as a string.
fn lexical(p: &Path) -> String {
    let mut parts: Vec<&std::ffi::OsStr> = Vec::new();
    for c in p.components() {
        match c {
            Component::Normal(n) => parts.push(n),
            Component::ParentDir => {
                parts.pop();
            }
            _ => {}
        }
    }
    let mut s = String::new();
    for n in parts {
        s.push('/');
        s.push_str(&n.to_string_lossy());
    }
    s
}

/// The pieces for the library at `path`: each symbolic link on the way
/// (the last component only; targets resolved against the link's
/// directory as written), then the regular file, whose contents are read
/// through `path` itself (what the loader would open on the host).
fn follow(path: &str, out: &mut Vec<Piece>) -> Result<(), String> {
    let mut at = lexical(Path::new(path));
    for _ in 0..40 {
        let meta = std::fs::symlink_metadata(&at).map_err(|e| format!("{at}: {e}"))?;
        let dest = crate::image::image_path(&at)?.to_string();
        if meta.file_type().is_symlink() {
            let target = std::fs::read_link(&at).map_err(|e| format!("{at}: {e}"))?;
            let dir = Path::new(&at).parent().unwrap_or(Path::new("/"));
            let next = lexical(&dir.join(&target));
            out.push(Piece::Symlink {
                dest,
                target: target.to_string_lossy().into_owned(),
            });
            at = next;
            continue;
        }
        if !meta.is_file() {
            return Err(format!("{at}: not a regular file"));
        }
        use std::os::unix::fs::PermissionsExt;
        out.push(Piece::File {
            src: PathBuf::from(path),
            dest,
            mode: meta.permissions().mode() & 0o777,
        });
        return Ok(());
    }
    Err(format!("{path}: too many levels of symbolic links"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::TempDir;

    #[test]
    fn ldd_lines() {
        let text = "\tlinux-vdso.so.1 (0x00007ffc)\n\
                    \tlibcryptsetup.so.12 => /lib/x86_64-linux-gnu/libcryptsetup.so.12 (0x00007f)\n\
                    \tlibc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x00007f)\n\
                    \t/lib64/ld-linux-x86-64.so.2 (0x00007f)\n\
                    \tlibc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x00007f)\n";
        assert_eq!(
            parse_ldd(text).unwrap(),
            [
                "/lib/x86_64-linux-gnu/libcryptsetup.so.12",
                "/lib/x86_64-linux-gnu/libc.so.6",
                "/lib64/ld-linux-x86-64.so.2"
            ]
        );
        let e = parse_ldd("\tlibfoo.so.1 => not found\n\tlibbar.so.2 => not found\n");
        assert_eq!(e, Err("ldd finds no libfoo.so.1, libbar.so.2".into()));
    }

    /// A minimal ELF header (+ one program header when `interp` is given).
    fn elf(is_64: bool, em: u16, interp: Option<&str>) -> Vec<u8> {
        let mut h = vec![0u8; 0x200];
        h[..4].copy_from_slice(b"\x7fELF");
        h[4] = if is_64 { 2 } else { 1 };
        h[5] = 1;
        h[18..20].copy_from_slice(&em.to_le_bytes());
        let phoff = 0x40usize;
        let (ent, n) = (
            if is_64 { 56u16 } else { 32 },
            u16::from(interp.is_some()) + 1,
        );
        if is_64 {
            h[32..40].copy_from_slice(&(phoff as u64).to_le_bytes());
            h[54..56].copy_from_slice(&ent.to_le_bytes());
            h[56..58].copy_from_slice(&n.to_le_bytes());
        } else {
            h[28..32].copy_from_slice(&(phoff as u32).to_le_bytes());
            h[42..44].copy_from_slice(&ent.to_le_bytes());
            h[44..46].copy_from_slice(&n.to_le_bytes());
        }
        // first: PT_LOAD (1); second: PT_INTERP (3) at 0x100
        h[phoff] = 1;
        if let Some(p) = interp {
            let ph = phoff + usize::from(ent);
            h[ph] = 3;
            let size = p.len() + 1;
            if is_64 {
                h[ph + 8..ph + 16].copy_from_slice(&0x100u64.to_le_bytes());
                h[ph + 32..ph + 40].copy_from_slice(&(size as u64).to_le_bytes());
            } else {
                h[ph + 4..ph + 8].copy_from_slice(&0x100u32.to_le_bytes());
                h[ph + 16..ph + 20].copy_from_slice(&(size as u32).to_le_bytes());
            }
            h[0x100..0x100 + p.len()].copy_from_slice(p.as_bytes());
        }
        h
    }

    #[test]
    fn interpreter_of_both_classes() {
        let i = "/lib64/ld-linux-x86-64.so.2";
        assert_eq!(interpreter(&elf(true, 62, Some(i))), Ok(Some(i.into())));
        let i = "/lib/ld-linux-armhf.so.3";
        assert_eq!(interpreter(&elf(false, 40, Some(i))), Ok(Some(i.into())));
        assert_eq!(interpreter(&elf(true, 62, None)), Ok(None));
        assert!(interpreter(&elf(true, 62, Some("x"))[..0x60]).is_err());
    }

    /// A fake `ldd` printing `text`, in `dir`.
    fn fake_ldd(dir: &Path, text: &str) -> PathBuf {
        let p = dir.join("ldd");
        std::fs::write(&p, format!("#!/bin/sh\ncat <<'EOF'\n{text}EOF\n")).unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
        p
    }

    #[test]
    fn libraries_with_their_links_static_and_scripts() {
        let t = TempDir::new("program");
        let d = t.0.display().to_string();
        let lib = t.0.join("lib");
        std::fs::create_dir_all(lib.join("real")).unwrap();
        std::fs::write(lib.join("real/libx.so.1.2"), b"x").unwrap();
        std::os::unix::fs::symlink("real/libx.so.1.2", lib.join("libx.so.1")).unwrap();
        std::fs::create_dir_all(t.0.join("lib64")).unwrap();
        std::fs::write(lib.join("ld.so"), b"ld").unwrap();
        std::os::unix::fs::symlink(lib.join("ld.so"), t.0.join("lib64/ld.so")).unwrap();
        let interp = format!("{d}/lib64/ld.so");
        let ldd = fake_ldd(
            &t.0,
            &format!("\tlinux-vdso.so.1 (0x1)\n\tlibx.so.1 => {d}/lib/libx.so.1 (0x2)\n"),
        );
        let prog = t.0.join("prog");
        std::fs::write(&prog, elf(true, 62, Some(&interp))).unwrap();
        let host = Some(Machine {
            em: 62,
            is_64: true,
        });
        let got = pieces(&prog, "/usr/sbin/prog", &ldd, host).unwrap();
        let rel = |p: &str| format!("{}/{p}", d.trim_start_matches('/'));
        assert_eq!(
            got,
            [
                Piece::File {
                    src: prog.clone(),
                    dest: "usr/sbin/prog".into(),
                    mode: 0o755
                },
                Piece::File {
                    src: interp.clone().into(),
                    dest: rel("lib/ld.so"),
                    mode: 0o644
                },
                Piece::Symlink {
                    dest: rel("lib/libx.so.1"),
                    target: "real/libx.so.1.2".into()
                },
                Piece::File {
                    src: format!("{d}/lib/libx.so.1").into(),
                    dest: rel("lib/real/libx.so.1.2"),
                    mode: 0o644
                },
                Piece::Symlink {
                    dest: rel("lib64/ld.so"),
                    target: format!("{d}/lib/ld.so")
                },
            ]
        );
        // static: the file alone, ldd never asked
        std::fs::write(&prog, elf(true, 62, None)).unwrap();
        let none = Path::new("/nonexistent/ldd");
        assert_eq!(pieces(&prog, "bin/p", none, host).unwrap().len(), 1);
        // a script: the same
        std::fs::write(&prog, b"#!/bin/sh\n").unwrap();
        assert_eq!(pieces(&prog, "bin/p", none, host).unwrap().len(), 1);
        // another machine: static is fine (the target check decides),
        // dynamic a clear error
        std::fs::write(&prog, elf(true, 183, None)).unwrap();
        assert_eq!(pieces(&prog, "bin/p", none, host).unwrap().len(), 1);
        std::fs::write(&prog, elf(true, 183, Some(&interp))).unwrap();
        let e = pieces(&prog, "bin/p", &ldd, host).unwrap_err();
        assert!(
            e.contains("dynamically linked for aarch64, but this host is x86_64"),
            "{e}"
        );
        // a missing library, a missing program
        let ldd = fake_ldd(&t.0, "\tlibgone.so.3 => not found\n");
        std::fs::write(&prog, elf(true, 62, Some(&interp))).unwrap();
        let e = pieces(&prog, "bin/p", &ldd, host).unwrap_err();
        assert_eq!(e, format!("{}: ldd finds no libgone.so.3", prog.display()));
        let e = pieces(&t.0.join("nope"), "bin/p", &ldd, host).unwrap_err();
        assert!(e.starts_with(&format!("{d}/nope: ")), "{e}");
    }

    #[test]
    fn the_hosts_own_ldd_on_this_test_binary() {
        // The test binary is dynamically linked on glibc hosts: its
        // interpreter comes with it.
        let exe = std::env::current_exe().unwrap();
        let data = std::fs::read(&exe).unwrap();
        let Ok(Some(interp)) = interpreter(&data) else {
            return; // a static build
        };
        if Command::new("ldd").arg("--version").output().is_err() {
            return;
        }
        let got = pieces(&exe, "bin/t", Path::new("ldd"), host_machine()).unwrap();
        let dests: Vec<&str> = got.iter().map(Piece::dest).collect();
        assert!(dests.contains(&&interp[1..]), "{dests:?}");
        assert!(dests.iter().any(|d| d.contains("libc.so")), "{dests:?}");
    }
}
