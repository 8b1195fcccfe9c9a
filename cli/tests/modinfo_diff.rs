//! Differential test: `earlymod modinfo` against Debian's kmod 30
//! `/usr/sbin/modinfo` on the real module trees cached under
//! /var/cache/earlymod (k61: plain `.ko`, k612: `.ko.xz`), and against
//! Debian trixie's kmod 34.2 (`kmod34/bin/modinfo`, unpacked by
//! scripts/setup.sh) on the same trees re-indexed by its depmod (k61-34,
//! k612-34).
//!
//! The host build is always compared; so is the static binary, named by
//! `$EARLYMOD_STATIC` or found at `out/earlymod-static` (when built).
//!
//! Skips (with a note) when the trees or the reference binary are absent.

use std::path::{Path, PathBuf};
use std::process::Command;

const DEFAULT_CACHE: &str = "/var/cache/earlymod";
const KMOD30: &str = "/usr/sbin/modinfo";

struct Tree {
    root: PathBuf,
    kver: String,
}

impl Tree {
    fn moddir(&self) -> PathBuf {
        self.root.join("lib/modules").join(&self.kver)
    }
}

/// The cache directory: $EARLYMOD_CACHE (as the Makefile exports) or the
/// default location.
fn cache() -> PathBuf {
    std::env::var_os("EARLYMOD_CACHE")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(DEFAULT_CACHE))
}

/// The cached trees, each name followed by `suffix` (`""` or `"-34"`).
fn trees(suffix: &str) -> Vec<Tree> {
    let mut v = Vec::new();
    for t in ["k61", "k612"] {
        let base = cache().join(format!("{t}{suffix}"));
        let Ok(kver) = std::fs::read_to_string(base.join("kver")) else {
            continue;
        };
        let tree = Tree {
            root: base.join("root"),
            kver: kver.trim().to_string(),
        };
        if tree.moddir().is_dir() {
            v.push(tree);
        }
    }
    v
}

fn module_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return;
    };
    for e in rd.flatten() {
        let p = e.path();
        let Ok(ft) = e.file_type() else { continue };
        if ft.is_dir() {
            module_files(&p, out);
        } else if ft.is_file() {
            let n = p
                .file_name()
                .unwrap_or_default()
                .to_string_lossy()
                .into_owned();
            if n.ends_with(".ko") || n.ends_with(".ko.xz") || n.ends_with(".ko.zst") {
                out.push(p);
            }
        }
    }
}

fn stem(p: &Path) -> String {
    let n = p.file_name().unwrap_or_default().to_string_lossy();
    n.split('.').next().unwrap_or("").replace('-', "_")
}

#[derive(PartialEq, Eq)]
struct Outcome {
    stdout: Vec<u8>,
    code: Option<i32>,
}

fn run(program: &str, pre: &[&str], args: &[String]) -> Outcome {
    let o = Command::new(program)
        .args(pre)
        .args(args)
        .env("LC_ALL", "C")
        .output()
        .unwrap_or_else(|e| panic!("cannot run {program}: {e}"));
    Outcome {
        stdout: o.stdout,
        code: o.status.code(),
    }
}

/// The earlymod binaries under test: (label, path).
fn ours() -> Vec<(&'static str, PathBuf)> {
    let mut v = vec![("host", PathBuf::from(env!("CARGO_BIN_EXE_earlymod")))];
    let named = std::env::var_os("EARLYMOD_STATIC").filter(|p| !p.is_empty());
    let built = Path::new(env!("CARGO_MANIFEST_DIR")).join("../out/earlymod-static");
    match named {
        Some(p) => v.push(("static", PathBuf::from(p))),
        None if built.is_file() => v.push(("static", built)),
        None => println!("note: no out/earlymod-static (EARLYMOD_STATIC unset); host build only"),
    }
    v
}

/// Runs every case through kmod and each of our binaries (in parallel);
/// returns, per binary, the failures as printable reports.
fn compare(reference: &str, cases: &[Vec<String>], ours: &[(&str, PathBuf)]) -> Vec<Vec<String>> {
    let threads = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(4)
        .min(16);
    let chunk = cases.len().div_ceil(threads).max(1);
    let mut failures = vec![Vec::new(); ours.len()];
    std::thread::scope(|s| {
        let handles: Vec<_> = cases
            .chunks(chunk)
            .map(|part| {
                s.spawn(move || {
                    let mut bad = vec![Vec::new(); ours.len()];
                    for args in part {
                        let want = run(reference, &[], args);
                        for (i, (label, bin)) in ours.iter().enumerate() {
                            let got = run(&bin.to_string_lossy(), &["modinfo"], args);
                            if want != got {
                                bad[i].push(report(label, args, &want, &got));
                            }
                        }
                    }
                    bad
                })
            })
            .collect();
        for h in handles {
            for (all, bad) in failures.iter_mut().zip(h.join().expect("worker panicked")) {
                all.extend(bad);
            }
        }
    });
    failures
}

fn report(label: &str, args: &[String], want: &Outcome, got: &Outcome) -> String {
    let mut r = format!("[{label}] modinfo {}\n", args.join(" "));
    if want.code != got.code {
        r.push_str(&format!(
            "  exit code: kmod {:?}, earlymod {:?}\n",
            want.code, got.code
        ));
    }
    if want.stdout != got.stdout {
        let w = String::from_utf8_lossy(&want.stdout);
        let g = String::from_utf8_lossy(&got.stdout);
        let wl: Vec<&str> = w.split_inclusive(['\n', '\0']).collect();
        let gl: Vec<&str> = g.split_inclusive(['\n', '\0']).collect();
        let first = wl
            .iter()
            .zip(gl.iter())
            .position(|(a, b)| a != b)
            .unwrap_or(wl.len().min(gl.len()));
        r.push_str(&format!(
            "  stdout differs at line {} ({} vs {} lines):\n",
            first + 1,
            wl.len(),
            gl.len()
        ));
        for l in wl.iter().skip(first).take(3) {
            r.push_str(&format!("  - {l:?}\n"));
        }
        for l in gl.iter().skip(first).take(3) {
            r.push_str(&format!("  + {l:?}\n"));
        }
    }
    r
}

fn check(
    reference: &str,
    label: &str,
    cases: &[Vec<String>],
    ours: &[(&str, PathBuf)],
    all_failures: &mut Vec<String>,
) {
    for ((bin, _), failures) in ours.iter().zip(compare(reference, cases, ours)) {
        println!(
            "modinfo {label} [{bin}] vs {reference}: {}/{} identical",
            cases.len() - failures.len(),
            cases.len()
        );
        all_failures.extend(failures);
    }
}

fn s(v: &[&str]) -> Vec<String> {
    v.iter().map(|x| x.to_string()).collect()
}

#[test]
fn modinfo_matches_kmod_on_real_trees() {
    differential(KMOD30, "");
}

/// Where kmod 30 and 34 differ, earlymod follows 34 (no padding after a
/// key of 15 bytes or more; a .ko.zst must record its size).
#[test]
fn modinfo_matches_kmod34_on_real_trees() {
    let kmod34 = cache().join("kmod34/bin/modinfo");
    differential(&kmod34.to_string_lossy(), "-34");
}

/// Every case against `reference` over the trees named with `suffix`.
fn differential(reference: &str, suffix: &str) {
    if !Path::new(reference).exists() {
        println!("SKIP: {reference} not found; modinfo differential test not run");
        return;
    }
    let trees = trees(suffix);
    if trees.is_empty() {
        println!(
            "SKIP: no module trees under {}; modinfo differential test not run",
            cache().display()
        );
        return;
    }
    let ours = ours();
    let mut failures = Vec::new();
    for tree in &trees {
        let mut files = Vec::new();
        module_files(&tree.moddir(), &mut files);
        files.sort();
        assert!(
            !files.is_empty(),
            "no modules in {}",
            tree.moddir().display()
        );

        // every 10th module plus some fixed ones, by file path
        let fixed = [
            "ext4",
            "btrfs",
            "e1000",
            "snd_hda_intel",
            "xfs",
            "nvme",
            "usb_storage",
        ];
        let mut sample: Vec<&PathBuf> = files.iter().step_by(10).collect();
        for f in &files {
            if fixed.contains(&stem(f).as_str()) && !sample.contains(&f) {
                sample.push(f);
            }
        }
        let by_path: Vec<Vec<String>> = sample
            .iter()
            .map(|p| vec![p.to_string_lossy().into_owned()])
            .collect();
        check(
            reference,
            &format!("{} (files)", tree.kver),
            &by_path,
            &ours,
            &mut failures,
        );

        // option variations on every 100th module
        let mut variants = Vec::new();
        for p in files.iter().step_by(100) {
            let p = p.to_string_lossy().into_owned();
            for opts in [
                &["-0"][..],
                &["-p"],
                &["-F", "parmtype"],
                &["-F", "signature"],
                &["--field=sig_key"],
                &["-a"],
                &["-d", "-0"],
                &["-l"],
                &["-n"],
                &["-F", "alias", "-0"],
                &["-p", "-0"],
            ] {
                let mut a = s(opts);
                a.push(p.clone());
                variants.push(a);
            }
        }
        check(
            reference,
            &format!("{} (options)", tree.kver),
            &variants,
            &ours,
            &mut failures,
        );

        // lookups by name / alias / builtin (through the resolver)
        let root = tree.root.to_string_lossy().into_owned();
        let base = ["-b", root.as_str(), "-k", tree.kver.as_str()];
        let builtin = std::fs::read_to_string(tree.moddir().join("modules.builtin"))
            .unwrap_or_default()
            .lines()
            .take(3)
            .map(|l| stem(Path::new(l)))
            .collect::<Vec<_>>();
        let mut named: Vec<Vec<String>> = Vec::new();
        let mut names: Vec<Vec<String>> = vec![
            s(&["ext4"]),
            s(&["e1000"]),
            s(&["snd-hda-intel"]),
            s(&["btrfs", "-p"]),
            s(&["-F", "filename", "ext4"]),
            s(&["-m", "e1000"]),
            s(&["no_such_module_xyz"]),
            s(&["-m", "no_such_module_xyz"]),
            s(&["ext4", "no_such_module_xyz", "e1000"]),
            s(&["pci:v00008086d0000100Esv00000000sd00000000bc02sc00i00"]),
            s(&["fs-ext4"]),
        ];
        for b in &builtin {
            names.push(vec![b.clone()]);
            names.push(s(&["-F", "name", b]));
            names.push(s(&["-0", b]));
        }
        for n in names {
            let mut a = s(&base);
            a.extend(n);
            named.push(a);
        }
        check(
            reference,
            &format!("{} (names)", tree.kver),
            &named,
            &ours,
            &mut failures,
        );
    }
    zstd_variants(reference, &trees, &ours, &mut failures);
    if !failures.is_empty() {
        for f in failures.iter().take(10) {
            eprintln!("{f}");
        }
        panic!(
            "{} modinfo case(s) differ from kmod (first ones above)",
            failures.len()
        );
    }
}

/// No tree ships `.ko.zst`: recompress a few `.ko.xz` modules with the
/// `xz`/`zstd` tools (when present) and compare those too.
fn zstd_variants(
    reference: &str,
    trees: &[Tree],
    ours: &[(&str, PathBuf)],
    failures: &mut Vec<String>,
) {
    let have = |t: &str| {
        Command::new(t)
            .arg("--version")
            .output()
            .is_ok_and(|o| o.status.success())
    };
    if !have("xz") || !have("zstd") {
        println!("note: xz/zstd tools missing; .ko.zst comparison skipped");
        return;
    }
    let Some(tree) = trees.last() else {
        return;
    };
    let mut files = Vec::new();
    module_files(&tree.moddir(), &mut files);
    files.sort();
    // The kmod 30 and kmod 34 tests run at once: one directory each.
    let tag = trees
        .first()
        .and_then(|t| t.root.parent()?.file_name())
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let dir =
        std::env::temp_dir().join(format!("earlymod-modinfo-zst-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("temp dir");
    let mut cases = Vec::new();
    for (i, f) in files.iter().step_by(250).enumerate() {
        let name = f
            .file_name()
            .unwrap_or_default()
            .to_string_lossy()
            .into_owned();
        let raw = if name.ends_with(".xz") {
            match Command::new("xz").arg("-dc").arg(f).output() {
                Ok(o) if o.status.success() => o.stdout,
                _ => continue,
            }
        } else {
            std::fs::read(f).unwrap_or_default()
        };
        let stem = name.split('.').next().unwrap_or("m").to_string();
        let ko = dir.join(format!("{i}-{stem}.ko"));
        std::fs::write(&ko, &raw).expect("write module");
        let zst = dir.join(format!("{i}-{stem}.ko.zst"));
        let ok = Command::new("zstd")
            .args(["-q", "-f", "-o"])
            .arg(&zst)
            .arg(&ko)
            .status()
            .is_ok_and(|s| s.success());
        if ok {
            cases.push(vec![zst.to_string_lossy().into_owned()]);
            cases.push(vec!["-p".to_string(), zst.to_string_lossy().into_owned()]);
        }
    }
    check(
        reference,
        &format!("{} (recompressed .ko.zst)", tree.kver),
        &cases,
        ours,
        failures,
    );
    let _ = std::fs::remove_dir_all(&dir);
}
