//! Differential test of `earlymod-pack` images: kmod's modprobe over the
//! packed tree answers like over the full tree, and earlymod like kmod.
//!
//!     packdiff --pack out/earlymod-pack --earlymod out/earlymod [--workdir DIR]
//!
//! For each test kernel and module set: pack an image, unpack it with the
//! initrd crate's reader, then
//! - the packed modules are exactly kmod's `-D -a` closure of the set over
//!   the full tree (builtins excluded), for `--host-only` together with
//!   kmod's `-D` of every device modalias and of `fs-TYPE` of `/`;
//! - `modprobe -D NAME` for every packed module: kmod over the packed tree
//!   = kmod over the full tree (root prefix, and for transcoded trees the
//!   compression suffix, normalized);
//! - `modprobe -R` for a string matching every alias pattern and every
//!   symbol of the packed modules, and every builtin name: kmod over the
//!   packed tree = kmod over the full tree with modules outside the set
//!   dropped (counted separately when the full answer needed no dropping);
//! - earlymod over the packed tree = kmod over the packed tree, for all of
//!   these queries (stdout and exit code).

use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};

use earlymod_initrd::cpio::read_image;
use earlymod_tests::{
    Tool, Tree, alias_lines, builtin_names, default_trees, default_workers, derived_aliases,
    module_name_from_path, par_map, run,
};

struct Case {
    label: String,
    tree: Tree,
    config: PathBuf,
    extra: Vec<String>,
    /// Compression suffixes may differ (modules decompressed for the kernel).
    transcoded: bool,
    /// `--host-only`: these requests (optional ones) are part of the set.
    host: Vec<String>,
    /// `-f DIR`: the firmware tree packed from (checked against kmod's
    /// `modinfo -F firmware` of every packed module, and against dracut).
    firmware: Option<PathBuf>,
}

#[derive(Default)]
struct Counts {
    checked: usize,
    identical: usize,
    identical_filtered: usize,
    /// Queries only modules outside the set answer over the full tree.
    outside: usize,
    failures: Vec<String>,
}

impl Counts {
    fn fail(&mut self, msg: String) {
        if self.failures.len() < 20 {
            self.failures.push(msg);
        }
    }
}

fn arg(args: &[String], name: &str) -> Option<String> {
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1).cloned())
}

fn unpack(image: &Path, dest: &Path) -> Result<(), String> {
    let data = fs::read(image).map_err(|e| format!("{}: {e}", image.display()))?;
    let _ = fs::remove_dir_all(dest);
    fs::create_dir_all(dest).map_err(|e| e.to_string())?;
    for e in read_image(&data).map_err(|e| format!("{}: {e}", image.display()))? {
        let p = dest.join(&e.path);
        match e.mode & 0o170000 {
            0o040000 => fs::create_dir_all(&p).map_err(|x| format!("{}: {x}", p.display()))?,
            0o100000 => fs::write(&p, &e.data).map_err(|x| format!("{}: {x}", p.display()))?,
            0o120000 => {
                let target = String::from_utf8_lossy(&e.data).into_owned();
                std::os::unix::fs::symlink(target, &p)
                    .map_err(|x| format!("{}: {x}", p.display()))?
            }
            _ => {}
        }
    }
    Ok(())
}

fn normalize(out: &[u8], root: &Path, transcoded: bool) -> String {
    let mut s = String::from_utf8_lossy(out).replace(&*root.to_string_lossy(), "ROOT");
    if transcoded {
        for ext in [".ko.xz", ".ko.zst", ".ko.gz"] {
            s = s.replace(ext, ".ko");
        }
    }
    s
}

fn run_case(c: &Case, pack: &Path, earlymod: &Path, work: &Path) -> Result<Counts, String> {
    let dir = work.join(&c.label);
    fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
    let image = dir.join("initrd.img");
    let mut cmd = Command::new(pack);
    cmd.arg("-q")
        .arg("-b")
        .arg(&c.tree.root)
        .arg("-k")
        .arg(&c.tree.kver)
        .arg("-c")
        .arg(&c.config)
        .arg("-o")
        .arg(&image)
        .arg("--earlymod")
        .arg(earlymod)
        .args(&c.extra);
    if let Some(fw) = &c.firmware {
        cmd.arg("-f").arg(fw);
    }
    let report = dir.join("report.txt");
    cmd.arg("--report").arg(&report);
    let o = cmd
        .output()
        .map_err(|e| format!("{}: {e}", pack.display()))?;
    if !o.status.success() {
        return Err(format!(
            "earlymod-pack failed: {}",
            String::from_utf8_lossy(&o.stderr).trim()
        ));
    }
    let root = dir.join("root");
    unpack(&image, &root)?;
    let packed = Tree {
        label: format!("{}-packed", c.label),
        root: root.clone(),
        kver: c.tree.kver.clone(),
    };
    let confdir = root.join("etc/modprobe.d");
    let conf = vec!["-C".to_string(), confdir.to_string_lossy().into_owned()];
    let kmod = Tool {
        program: PathBuf::from("modprobe"),
        applet: None,
    };
    let ours = Tool {
        program: earlymod.to_path_buf(),
        applet: Some("modprobe".into()),
    };
    let mut n = Counts::default();

    // The closure: kmod's plan for the load set over the full tree.
    let load: Vec<String> = fs::read_to_string(root.join("etc/modules-load.d/earlymod-pack.conf"))
        .unwrap_or_default()
        .lines()
        .map(str::to_string)
        .collect();
    let mut args = conf.clone();
    args.extend(["-D".to_string(), "-a".to_string()]);
    args.extend(load.iter().cloned());
    let insmods = |out: &[u8]| -> Vec<String> {
        String::from_utf8_lossy(out)
            .lines()
            .filter_map(|l| l.strip_prefix("insmod "))
            .map(|l| module_name_from_path(l.split_whitespace().next().unwrap_or("")))
            .collect()
    };
    let plan = run(&kmod.argv(&c.tree, &args), None);
    let mut want: BTreeSet<String> = insmods(&plan.stdout).into_iter().collect();
    // Host requests one by one: most modaliases resolve to nothing.
    for r in &c.host {
        let mut a = conf.clone();
        a.extend(["-D".to_string(), r.clone()]);
        want.extend(insmods(&run(&kmod.argv(&c.tree, &a), None).stdout));
    }
    let got: Vec<String> = fs::read_to_string(packed.moddir().join("modules.dep"))
        .map_err(|e| e.to_string())?
        .lines()
        .filter_map(|l| l.split_once(':').map(|(p, _)| module_name_from_path(p)))
        .collect();
    let got_set: BTreeSet<String> = got.iter().cloned().collect();
    n.checked += 1;
    if want == got_set {
        n.identical += 1;
    } else {
        n.fail(format!(
            "closure differs: kmod only {:?}, packed only {:?}",
            want.difference(&got_set).collect::<Vec<_>>(),
            got_set.difference(&want).collect::<Vec<_>>()
        ));
    }

    if let Some(fw) = &c.firmware {
        let said = String::from_utf8_lossy(&o.stderr);
        check_firmware(c, fw, &root, &said, &load, &mut n);
    }
    let text = fs::read_to_string(&report).map_err(|e| format!("{}: {e}", report.display()))?;
    check_report(c, &text, &got_set, &conf, &kmod, &mut n);

    // Queries: -D every packed module; -R aliases, symbols, builtins.
    let mut queries: Vec<Vec<String>> = got.iter().map(|m| vec!["-D".into(), m.clone()]).collect();
    let full_alias =
        alias_lines(&c.tree.moddir().join("modules.alias")).map_err(|e| e.to_string())?;
    let ours_alias: Vec<(String, String)> = full_alias
        .into_iter()
        .filter(|(_, m)| got_set.contains(&m.replace('-', "_")))
        .collect();
    let mut strings: BTreeSet<String> = derived_aliases(&ours_alias).into_iter().collect();
    let syms = alias_lines(&c.tree.moddir().join("modules.symbols")).map_err(|e| e.to_string())?;
    strings.extend(
        syms.into_iter()
            .filter(|(_, m)| got_set.contains(&m.replace('-', "_")))
            .map(|(s, _)| s),
    );
    strings.extend(builtin_names(&c.tree).unwrap_or_default());
    queries.extend(strings.into_iter().map(|s| vec!["-R".into(), s]));

    let results = par_map(
        &queries,
        default_workers(),
        |q| {
            let mut a = conf.clone();
            a.extend(q.iter().cloned());
            let full = run(&kmod.argv(&c.tree, &a), None);
            let pk = run(&kmod.argv(&packed, &a), None);
            let em = run(&ours.argv(&packed, &a), None);
            (full, pk, em)
        },
        |_| {},
    );
    for (q, (full, pk, em)) in queries.iter().zip(results) {
        n.checked += 1;
        let f = normalize(&full.stdout, &c.tree.root, c.transcoded);
        let p = normalize(&pk.stdout, &root, c.transcoded);
        let what = q.join(" ");
        if f == p && full.code == pk.code {
            n.identical += 1;
        } else if q[0] == "-R" {
            // Modules outside the set drop out of the full tree's answer.
            let kept: Vec<&str> = f.lines().filter(|l| got_set.contains(*l)).collect();
            let kept_text: String = kept.iter().flat_map(|l| [*l, "\n"]).collect();
            if kept_text == p && !kept.is_empty() && pk.code == 0 {
                n.identical_filtered += 1;
            } else if kept.is_empty() && full.code == 0 {
                // Only modules outside the set answer this over the full
                // tree (e.g. `crc32`: crypto modules, else the builtin
                // library): the packed tree rightly answers without them.
                n.outside += 1;
            } else {
                n.fail(format!(
                    "kmod -R {what}: full {f:?} ({}) vs packed {p:?} ({})",
                    full.code, pk.code
                ));
            }
        } else {
            n.fail(format!(
                "kmod {what}: full {f:?} ({}) vs packed {p:?} ({})",
                full.code, pk.code
            ));
        }
        n.checked += 1;
        if em.stdout == pk.stdout && em.code == pk.code {
            n.identical += 1;
        } else {
            n.fail(format!(
                "earlymod vs kmod on the packed tree, {what}: {:?} ({}) vs {:?} ({})",
                String::from_utf8_lossy(&em.stdout),
                em.code,
                String::from_utf8_lossy(&pk.stdout),
                pk.code
            ));
        }
    }
    Ok(n)
}

/// The pack report against the image and kmod: one `module` line for each
/// packed module and no other; one `request` line per request (the load
/// set, and for `--host-only` every device modalias and `fs-TYPE`), whose
/// modules are among kmod's `-D` plan for it and whose "no driver" kmod
/// agrees with; one `firmware` line per request, "missing" exactly when the
/// image lacks the file.
fn check_report(
    c: &Case,
    text: &str,
    packed: &BTreeSet<String>,
    conf: &[String],
    kmod: &Tool,
    n: &mut Counts,
) {
    let mut lines = 0;
    let modules: Vec<&str> = text
        .lines()
        .filter_map(|l| l.strip_prefix("module "))
        .filter_map(|l| l.split(' ').next())
        .collect();
    let listed: BTreeSet<String> = modules.iter().map(|m| m.to_string()).collect();
    n.checked += 1;
    lines += modules.len();
    if listed == *packed && modules.len() == packed.len() {
        n.identical += 1;
    } else {
        n.fail(format!(
            "report: module lines differ from the image: report only {:?}, image only {:?}",
            listed.difference(packed).collect::<Vec<_>>(),
            packed.difference(&listed).collect::<Vec<_>>()
        ));
    }
    let requests: Vec<(&str, &str)> = text
        .lines()
        .filter_map(|l| l.strip_prefix("request "))
        .filter_map(|l| l.split_once(' ')?.1.split_once(": "))
        .collect();
    lines += requests.len();
    let asked: BTreeSet<&str> = requests.iter().map(|(r, _)| *r).collect();
    for h in &c.host {
        n.checked += 1;
        if asked.contains(h.as_str()) {
            n.identical += 1;
        } else {
            n.fail(format!("report: no request line for host request {h}"));
        }
    }
    for (req, outcome) in &requests {
        let mut a = conf.to_vec();
        a.extend(["-D".to_string(), req.to_string()]);
        let plan = run(&kmod.argv(&c.tree, &a), None);
        let out = String::from_utf8_lossy(&plan.stdout);
        let insmods: BTreeSet<String> = out
            .lines()
            .filter_map(|l| l.strip_prefix("insmod "))
            .map(|l| module_name_from_path(l.split_whitespace().next().unwrap_or("")))
            .collect();
        n.checked += 1;
        let ok = if *outcome == "no driver" {
            insmods.is_empty() && !out.contains("builtin ")
        } else if let Some(b) = outcome.strip_prefix("built in: ") {
            b.split(' ')
                .all(|m| out.contains(&format!("builtin {m}")) || !insmods.contains(m))
        } else if outcome.starts_with("blacklisted: ") || outcome.starts_with("failed: ") {
            true
        } else {
            outcome
                .split(' ')
                .all(|m| insmods.contains(m) && packed.contains(m))
        };
        if ok {
            n.identical += 1;
        } else {
            n.fail(format!(
                "report: request {req}: {outcome}, but kmod -D says {out:?}"
            ));
        }
    }
    let fw_lines = text.lines().filter(|l| l.starts_with("firmware ")).count();
    lines += fw_lines;
    lines += text
        .lines()
        .filter(|l| {
            ["builtin ", "refused ", "microcode "]
                .iter()
                .any(|k| l.starts_with(k))
        })
        .count();
    n.checked += 1;
    if lines + 1 == text.lines().count() {
        n.identical += 1;
    } else {
        n.fail("report: lines of unknown kinds".to_string());
    }
    println!(
        "packdiff {}: report: {} module, {} request, {fw_lines} firmware lines checked",
        c.label,
        modules.len(),
        requests.len()
    );
}

/// Files and links below `dir` (relative paths): a link as `-> TARGET`, a
/// file as its size.
fn listing(dir: &Path) -> BTreeSet<(String, String)> {
    fn walk(dir: &Path, rel: &str, out: &mut BTreeSet<(String, String)>) {
        let Ok(rd) = fs::read_dir(dir.join(rel)) else {
            return;
        };
        for e in rd.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            let r = if rel.is_empty() {
                name
            } else {
                format!("{rel}/{name}")
            };
            let p = dir.join(&r);
            match fs::symlink_metadata(&p) {
                Ok(m) if m.file_type().is_symlink() => {
                    let t = fs::read_link(&p).unwrap_or_default();
                    out.insert((r, format!("-> {}", t.display())));
                }
                Ok(m) if m.is_dir() => walk(dir, &r, out),
                Ok(m) => {
                    out.insert((r, m.len().to_string()));
                }
                Err(_) => {}
            }
        }
    }
    let mut out = BTreeSet::new();
    walk(dir, "", &mut out);
    out
}

/// The firmware of a packed image against kmod's `modinfo -F firmware` of
/// every packed module (read from the full tree): each name present in the
/// firmware tree is in the image with the same bytes (through the same
/// links), each absent one is named on a warning line, nothing else is in
/// `/lib/firmware`; then the same listing as Debian's dracut gives for the
/// same drivers (`--fwdir` the same tree), when dracut is installed.
fn check_firmware(c: &Case, fw: &Path, root: &Path, said: &str, load: &[String], n: &mut Counts) {
    let img_fw = root.join("lib/firmware");
    let report = fs::read_to_string(root.with_file_name("report.txt")).unwrap_or_default();
    let deps = fs::read_to_string(c.tree.moddir().join("modules.dep")).unwrap_or_default();
    let packed = fs::read_to_string(root.join(format!("lib/modules/{}/modules.dep", c.tree.kver)))
        .unwrap_or_default();
    let mut reachable: BTreeSet<String> = BTreeSet::new();
    let (mut present, mut absent) = (0, 0);
    for line in packed.lines() {
        let Some((rel, _)) = line.split_once(':') else {
            continue;
        };
        let name = module_name_from_path(rel);
        let Some(full) = deps
            .lines()
            .filter_map(|l| l.split_once(':').map(|(p, _)| p))
            .find(|p| module_name_from_path(p) == name)
        else {
            n.fail(format!(
                "firmware: {name} is not in the full tree's modules.dep"
            ));
            continue;
        };
        let path = c.tree.moddir().join(full);
        let argv = vec![
            "modinfo".to_string(),
            "-F".into(),
            "firmware".into(),
            path.to_string_lossy().into_owned(),
        ];
        let out = run(&argv, None);
        for want in String::from_utf8_lossy(&out.stdout).lines() {
            n.checked += 1;
            let src = fw.join(want);
            let dst = img_fw.join(want);
            if src.is_file() {
                present += 1;
            } else {
                absent += 1;
            }
            let ok = if src.is_file() {
                // follow the image's links as the kernel would
                let mut at = want.to_string();
                for _ in 0..40 {
                    reachable.insert(at.clone());
                    match fs::read_link(img_fw.join(&at)) {
                        Ok(t) => {
                            let base = Path::new(&at).parent().unwrap_or(Path::new(""));
                            let joined = base.join(t);
                            let mut parts: Vec<String> = Vec::new();
                            for comp in joined.components() {
                                match comp {
                                    std::path::Component::ParentDir => {
                                        parts.pop();
                                    }
                                    std::path::Component::Normal(x) => {
                                        parts.push(x.to_string_lossy().into_owned())
                                    }
                                    _ => {}
                                }
                            }
                            at = parts.join("/");
                        }
                        Err(_) => break,
                    }
                }
                fs::read(&dst).ok() == fs::read(&src).ok()
                    && report.contains(&format!("firmware {name} {want}: lib/firmware/{want}"))
            } else {
                !dst.exists()
                    && said.contains(&format!("{name}: firmware {want} not found"))
                    && report.contains(&format!("firmware {name} {want}: missing\n"))
            };
            if ok {
                n.identical += 1;
            } else {
                n.fail(format!(
                    "firmware {want} of {name}: {} in the tree, image {}",
                    if src.is_file() { "present" } else { "absent" },
                    if dst.exists() {
                        "has it (or different bytes)"
                    } else {
                        "lacks it or no warning"
                    }
                ));
            }
        }
    }
    let ours = listing(&img_fw);
    println!(
        "packdiff {}: firmware: {} requests (kmod's modinfo -F firmware of every packed module): \
         {present} in the tree, {absent} not; /lib/firmware has {} entries",
        c.label,
        present + absent,
        ours.len()
    );
    for (p, _) in &ours {
        n.checked += 1;
        if reachable.contains(p) {
            n.identical += 1;
        } else {
            n.fail(format!(
                "firmware: /lib/firmware/{p} is in the image, but no module asks for it"
            ));
        }
    }
    // dracut: the same drivers, the same firmware tree, no host-only.
    let Some(dracut) = ["/usr/bin/dracut", "/usr/sbin/dracut"]
        .into_iter()
        .find(|p| Path::new(p).exists())
    else {
        println!(
            "packdiff {}: dracut is not installed: no comparison",
            c.label
        );
        return;
    };
    let img = root.with_file_name("dracut.img");
    let argv: Vec<String> = [
        dracut,
        "--force",
        "--quiet",
        "--no-hostonly",
        "--no-compress",
        "-m",
        "base",
        "--kver",
        &c.tree.kver,
        "--kmoddir",
        &c.tree.moddir().to_string_lossy(),
        "--fwdir",
        &fw.to_string_lossy(),
        "--drivers",
        &load.join(" "),
        &img.to_string_lossy(),
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let out = run(&argv, None);
    let dracut_root = root.with_file_name("dracut-root");
    if out.code != 0 || unpack(&img, &dracut_root).is_err() {
        n.fail(format!(
            "dracut failed ({}): {}",
            out.code,
            String::from_utf8_lossy(&out.stderr).trim()
        ));
        return;
    }
    // dracut installs --fwdir's files at that same path.
    let theirs = listing(&dracut_root.join(fw.strip_prefix("/").unwrap_or(fw)));
    n.checked += 1;
    if theirs == ours {
        n.identical += 1;
        println!(
            "packdiff {}: /lib/firmware identical to dracut's: {} entries",
            c.label,
            ours.len()
        );
    } else {
        n.fail(format!(
            "firmware differs from dracut's: dracut only {:?}, ours only {:?}",
            theirs.difference(&ours).take(5).collect::<Vec<_>>(),
            ours.difference(&theirs).take(5).collect::<Vec<_>>()
        ));
    }
}

/// Module names whose path starts with one of `prefixes`.
fn names_under(tree: &Tree, prefixes: &[&str]) -> Vec<String> {
    fs::read_to_string(tree.moddir().join("modules.dep"))
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.split_once(':').map(|(p, _)| p))
        .filter(|p| prefixes.iter().any(|x| p.starts_with(x)))
        .map(module_name_from_path)
        .collect()
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().collect();
    let pack = PathBuf::from(arg(&args, "--pack").unwrap_or("out/earlymod-pack".into()));
    let earlymod = PathBuf::from(arg(&args, "--earlymod").unwrap_or("out/earlymod".into()));
    let work = PathBuf::from(arg(&args, "--workdir").unwrap_or("/tmp/earlymod-packdiff".into()));
    let repo = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    let (trees, problems) = default_trees();
    for p in &problems {
        eprintln!("packdiff: {p}");
    }
    if trees.is_empty() {
        eprintln!("packdiff: no test trees (run scripts/setup.sh)");
        return ExitCode::FAILURE;
    }
    let _ = fs::remove_dir_all(&work);
    fs::create_dir_all(&work).expect("workdir");
    let mut cases = Vec::new();
    for t in &trees {
        cases.push(Case {
            label: format!("{}-default", t.label),
            tree: t.clone(),
            config: repo.join("tests/pack/script-init.conf"),
            extra: vec![],
            transcoded: false,
            host: vec![],
            firmware: None,
        });
        // A bigger set: every filesystem, block, SCSI and Intel Ethernet module.
        let big = names_under(
            t,
            &[
                "kernel/fs/",
                "kernel/drivers/block/",
                "kernel/drivers/scsi/",
                "kernel/drivers/net/ethernet/intel/",
            ],
        );
        let conf = work.join(format!("{}-storage.conf", t.label));
        fs::write(
            &conf,
            format!(
                "load {}\nsoftdep ext4 pre: crc32c_generic\nblacklist floppy\ninit {}\n",
                big.join(" "),
                repo.join("tests/pack/init-modprobe.sh").display()
            ),
        )
        .expect("config");
        cases.push(Case {
            label: format!("{}-storage", t.label),
            tree: t.clone(),
            config: conf,
            extra: vec![],
            transcoded: false,
            host: vec![],
            firmware: None,
        });
    }
    // Transcoding: a tree of compressed modules packed for a kernel without
    // module decompression (the 6.1 config): every module stored as .ko.
    if let (Some(new), Some(old)) = (
        trees.iter().find(|t| t.kver.starts_with("6.12")),
        trees.iter().find(|t| t.kver.starts_with("6.1.")),
    ) {
        cases.push(Case {
            label: format!("{}-transcoded", new.label),
            tree: new.clone(),
            config: repo.join("tests/pack/script-init.conf"),
            extra: vec![
                "--kernel-config".into(),
                old.root
                    .join(format!("boot/config-{}", old.kver))
                    .to_string_lossy()
                    .into_owned(),
            ],
            transcoded: true,
            host: vec![],
            firmware: None,
        });
        // --host-only: this machine's devices and root filesystem.
        let read = |p: &str| fs::read_to_string(p).unwrap_or_default();
        let (mounts, mountinfo, fstab) = (
            read("/proc/mounts"),
            read("/proc/self/mountinfo"),
            read("/etc/fstab"),
        );
        let host: Vec<String> =
            earlymod_initrd::hostonly::host_requests(&earlymod_initrd::hostonly::Host {
                sysfs: Path::new("/sys"),
                dev: Path::new("/dev"),
                mounts: &mounts,
                mountinfo: &mountinfo,
                fstab: &fstab,
                keyboard: true,
            })
            .into_iter()
            .map(|(r, _)| r)
            .collect();
        cases.push(Case {
            label: format!("{}-host-only", new.label),
            tree: new.clone(),
            config: repo.join("tests/pack/script-init.conf"),
            extra: vec!["--host-only".into()],
            transcoded: false,
            host,
            firmware: None,
        });
    }
    // Firmware: real Debian firmware packages (scripts/setup.sh) for a NIC,
    // two GPUs and a WLAN driver on 6.12.
    let fw = PathBuf::from(
        std::env::var("EARLYMOD_CACHE").unwrap_or_else(|_| "/var/cache/earlymod".into()),
    )
    .join("firmware/root/lib/firmware");
    if let Some(new) = trees.iter().find(|t| t.kver.starts_with("6.12")) {
        let conf = work.join("firmware.conf");
        fs::write(&conf, "load r8169 amdgpu i915 iwlwifi\n").expect("config");
        if fw.is_dir() {
            cases.push(Case {
                label: format!("{}-firmware", new.label),
                tree: new.clone(),
                config: conf,
                extra: vec![],
                transcoded: false,
                host: vec![],
                firmware: Some(fw),
            });
        } else {
            println!(
                "packdiff: FAIL no firmware tree {} (run scripts/setup.sh)",
                fw.display()
            );
            return ExitCode::FAILURE;
        }
    }
    let mut failed = false;
    let (mut total, mut same, mut filtered, mut outside) = (0, 0, 0, 0);
    for c in &cases {
        match run_case(c, &pack, &earlymod, &work) {
            Ok(n) => {
                println!(
                    "packdiff {}: {} checks, {} identical, {} identical once modules outside the set are dropped, \
                     {} answered only by modules outside the set, {} different",
                    c.label,
                    n.checked,
                    n.identical,
                    n.identical_filtered,
                    n.outside,
                    n.checked - n.identical - n.identical_filtered - n.outside
                );
                for f in &n.failures {
                    println!("  FAIL {f}");
                }
                failed |= !n.failures.is_empty();
                total += n.checked;
                same += n.identical;
                filtered += n.identical_filtered;
                outside += n.outside;
            }
            Err(e) => {
                println!("packdiff {}: FAIL {e}", c.label);
                failed = true;
            }
        }
    }
    println!(
        "packdiff: {total} checks over {} images: {same} identical, {filtered} identical after dropping \
         modules outside the set, {outside} answered only by modules outside the set, {} different",
        cases.len(),
        total - same - filtered - outside
    );
    if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}
