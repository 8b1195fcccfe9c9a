//! One packing run: config → closure → transcoded modules → subset indexes
//! → image file.

use std::collections::{BTreeMap, BTreeSet};
use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::arch::{self, Machine};
use crate::closure::{Answer, Closure, Outcome, Why, parse_config};
use crate::compress::Compression;
use crate::firmware::{self, Search};
use crate::hostonly::{Host, host_requests};
use crate::image::{Image, ImageStats};
use crate::microcode::{self, Choice, Cpu, Vendor};
use crate::packconf::{Extra, HOOK_DIR, PackConfig};
use crate::program::{self, Piece};
use crate::subset::{Member, subset_files};
use crate::transcode::{Facts, kernel_decompression, transcode_all};
use crate::tree::Tree;

/// The applet names `/sbin` gets as links to earlymod.
pub const APPLET_LINKS: [&str; 5] = ["modprobe", "insmod", "rmmod", "lsmod", "modinfo"];

/// What to pack.
#[derive(Debug, Clone)]
pub struct PackOptions {
    /// Root of the module tree (`ROOT/lib/modules/KVER`).
    pub root: PathBuf,
    /// Kernel release.
    pub kver: String,
    /// Pack config files, merged in order.
    pub configs: Vec<PathBuf>,
    /// Extra modules to load (`-m`).
    pub load: Vec<String>,
    /// The image to write.
    pub output: PathBuf,
    /// Add what this machine's devices and root filesystem need.
    pub host_only: bool,
    /// Keep modules compressed for earlymod's userspace decoders.
    pub keep_compression: bool,
    /// Compression of the main member (overrides the config; default gzip).
    pub compress: Option<Compression>,
    /// Kernel config (default `ROOT/boot/config-KVER`, then `/boot/...`).
    pub kernel_config: Option<PathBuf>,
    /// The earlymod binary installed as `/sbin/earlymod`.
    pub earlymod: PathBuf,
    /// sysfs read by `--host-only`.
    pub sysfs: PathBuf,
    /// The mounts table read by `--host-only`.
    pub mounts: PathBuf,
    /// `/dev`, `/proc/self/mountinfo`, `/etc/fstab` read by `--host-only`
    /// ([`crate::hostonly`]).
    pub dev: PathBuf,
    /// See [`PackOptions::dev`].
    pub mountinfo: PathBuf,
    /// See [`PackOptions::dev`].
    pub fstab: PathBuf,
    /// `--host-only` without the keyboards' chains.
    pub no_keyboard: bool,
    /// mtime of every entry (`SOURCE_DATE_EPOCH`, default 0).
    pub mtime: u32,
    /// Threads for transcoding.
    pub jobs: usize,
    /// No progress line and no summary.
    pub quiet: bool,
    /// Write only the subset's depmod files into this directory (module
    /// paths as in the tree, nothing transcoded, no image).
    pub indexes_only: Option<PathBuf>,
    /// Firmware trees, each standing for `/lib/firmware`, searched in
    /// order (empty: `ROOT/lib/firmware`, then `/lib/firmware` when packing
    /// for the running kernel).
    pub firmware_dirs: Vec<PathBuf>,
    /// Pack no firmware.
    pub no_firmware: bool,
    /// Missing firmware is an error, not a warning.
    pub strict: bool,
    /// Pack modules the target checks refuse (another machine, another
    /// kernel's vermagic), with a warning each.
    pub force: bool,
    /// Write the pack report ([`crate::report`]) here.
    pub report: Option<PathBuf>,
    /// CPU microcode for the early loader (x86 targets).
    pub microcode: Choice,
    /// The host's `/proc/cpuinfo` (`--host-only` microcode).
    pub cpuinfo: PathBuf,
    /// The `ldd` that lists the shared libraries of `program`s and hooks.
    pub ldd: PathBuf,
}

impl PackOptions {
    /// Options for packing the running system's tree (`/`) for kernel
    /// `kver` into `output`: no configs, the real `/sys`, `/proc` and
    /// `/etc` for `--host-only`, the binary `earlymod` (found by name), one job,
    /// everything else off or at its default.
    pub fn new(kver: String, output: PathBuf) -> Self {
        PackOptions {
            root: PathBuf::from("/"),
            kver,
            configs: Vec::new(),
            load: Vec::new(),
            output,
            host_only: false,
            keep_compression: false,
            compress: None,
            kernel_config: None,
            earlymod: PathBuf::from("earlymod"),
            sysfs: PathBuf::from("/sys"),
            mounts: PathBuf::from("/proc/mounts"),
            dev: PathBuf::from("/dev"),
            mountinfo: PathBuf::from("/proc/self/mountinfo"),
            fstab: PathBuf::from("/etc/fstab"),
            no_keyboard: false,
            mtime: 0,
            jobs: 1,
            quiet: false,
            indexes_only: None,
            firmware_dirs: Vec::new(),
            no_firmware: false,
            strict: false,
            force: false,
            report: None,
            microcode: Choice::Auto,
            cpuinfo: PathBuf::from("/proc/cpuinfo"),
            ldd: PathBuf::from("ldd"),
        }
    }
}

/// What a run did.
#[derive(Debug, Default)]
pub struct Report {
    /// Modules included.
    pub modules: usize,
    /// Builtin modules among the requests and their closures.
    pub builtin: usize,
    /// Modules decompressed for the kernel.
    pub transcoded: usize,
    /// Module bytes in the tree.
    pub bytes_before: u64,
    /// Module bytes as stored.
    pub bytes_after: u64,
    /// Sizes of the image.
    pub image: ImageStats,
    /// Image file size.
    pub image_len: u64,
    /// Wall time.
    pub elapsed: Duration,
    /// One line per problem (the image is still written).
    pub errors: Vec<String>,
    /// One line per warning.
    pub warnings: Vec<String>,
    /// How the kernel takes compressed modules.
    pub kernel_decompresses: Option<&'static str>,
    /// Every module's firmware requests and where each went.
    pub firmware: Vec<firmware::Request>,
    /// Firmware files stored (links not counted).
    pub firmware_files: usize,
    /// Firmware bytes stored.
    pub firmware_bytes: u64,
    /// Modules left out by the target checks (name, reason).
    pub refused: Vec<(String, String)>,
    /// Packed modules: name, path in the image's module directory, why.
    pub packed: Vec<(String, String, Why)>,
    /// Needed modules the target has built in.
    pub builtins: Vec<String>,
    /// What each request resolved to.
    pub answers: Vec<Answer>,
    /// Microcode bundles: image path, the files concatenated, bytes.
    pub microcode: Vec<(String, Vec<PathBuf>, usize)>,
}

fn progress(quiet: bool) -> impl Fn(usize, usize) + Sync {
    let tty = !quiet && std::io::stderr().is_terminal();
    move |done, total| {
        if tty && (done == total || done % 16 == 0) {
            eprint!("\rearlymod-pack: storing modules {done}/{total}");
            if done == total {
                eprintln!();
            }
        }
    }
}

fn basename(p: &Path) -> String {
    p.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// Packs an image. Fatal problems (no tree, unwritable output) are `Err`;
/// everything else is reported in [`Report::errors`] and the image is
/// still written.
pub fn pack(o: &PackOptions) -> Result<Report, String> {
    let start = Instant::now();
    let mut r = Report::default();
    let mut cfg = PackConfig::default();
    for c in &o.configs {
        match std::fs::read_to_string(c) {
            Ok(text) => r
                .errors
                .extend(cfg.parse(c, &text).into_iter().map(|e| e.to_string())),
            Err(e) => return Err(format!("{}: {e}", c.display())),
        }
    }
    let tree = Tree::open(&o.root, &o.kver).map_err(|e| e.to_string())?;

    // modprobe.d as the image will have it, plus the tree's modules.softdep.
    let mut carried: Vec<(String, Vec<u8>)> = Vec::new();
    if !cfg.modprobe_lines.is_empty() {
        let text: String = cfg
            .modprobe_lines
            .iter()
            .flat_map(|l| [l.as_str(), "\n"])
            .collect();
        carried.push(("earlymod-pack.conf".into(), text.into_bytes()));
    }
    for f in &cfg.modprobe_files {
        match std::fs::read(f) {
            Ok(b) => carried.push((basename(f), b)),
            Err(e) => r.errors.push(format!("{}: {e}", f.display())),
        }
    }
    let mut texts = carried.clone();
    if let Some(sd) = &tree.softdep {
        texts.push(("modules.softdep".into(), sd.clone()));
    }
    let modcfg = parse_config(&mut texts, &mut |m| r.warnings.push(m));

    let db = tree.db();
    let mut closure = Closure::default();
    let load: Vec<String> = cfg.load.iter().chain(&o.load).cloned().collect();
    closure.add(&db, &modcfg, &load);
    closure.add(&db, &modcfg, &cfg.include);
    if o.host_only {
        let read = |p: &Path| std::fs::read_to_string(p).unwrap_or_default();
        let (mounts, mountinfo, fstab) = (read(&o.mounts), read(&o.mountinfo), read(&o.fstab));
        let host = Host {
            sysfs: &o.sysfs,
            dev: &o.dev,
            mounts: &mounts,
            mountinfo: &mountinfo,
            fstab: &fstab,
            keyboard: !o.no_keyboard,
        };
        closure.add_from(&db, &modcfg, &host_requests(&host));
    }
    r.errors.append(&mut closure.errors);
    r.warnings.append(&mut closure.warnings);
    // A module the target has built in is never packed, even when the tree
    // also has a file of that name (modules.dep wins in modprobe's order).
    let builtin = builtin_names(&tree);
    closure.modules.retain(|name, _| {
        let keep = !builtin.contains(name);
        if !keep {
            r.warnings
                .push(format!("{name}: built into Linux {}: not packed", o.kver));
            closure.builtin.insert(name.clone());
        }
        keep
    });
    r.builtin = closure.builtin.len();
    r.builtins = closure.builtin.iter().cloned().collect();
    r.answers = std::mem::take(&mut closure.answers);
    for a in &mut r.answers {
        // served by a module the target has built in: say so
        if let Outcome::Modules(m) = &a.outcome {
            if !m.is_empty() && m.iter().all(|n| builtin.contains(n)) {
                a.outcome = Outcome::Builtin(m.clone());
            }
        }
    }
    let mut why = std::mem::take(&mut closure.why);

    // The kernel's module decompression, from its config.
    let kconfig = o.kernel_config.clone().or_else(|| {
        let name = format!("config-{}", o.kver);
        [
            o.root.join("boot").join(&name),
            Path::new("/boot").join(&name),
        ]
        .into_iter()
        .find(|p| p.is_file())
    });
    let kconfig_text = match &kconfig {
        Some(p) => Some(std::fs::read_to_string(p).map_err(|e| format!("{}: {e}", p.display()))?),
        None => None,
    };
    let kernel = match &kconfig_text {
        Some(t) => kernel_decompression(t),
        None => {
            if !o.keep_compression {
                r.warnings.push(format!(
                    "no kernel config for {} (config-{0} in ROOT/boot or /boot): storing modules uncompressed",
                    o.kver
                ));
            }
            None
        }
    };
    r.kernel_decompresses = kernel.map(|f| f.name());

    let wanted: Vec<(String, String)> = closure.modules.into_iter().collect();
    if let Some(dir) = &o.indexes_only {
        let members: Vec<Member> = wanted
            .iter()
            .map(|(name, rel)| Member {
                name: name.clone(),
                src_rel: rel.clone(),
                rel: rel.clone(),
            })
            .collect();
        std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        for (name, data) in subset_files(&tree, &members)? {
            write_atomic(&dir.join(&name), &data)?;
            r.image_len += data.len() as u64;
        }
        r.modules = members.len();
        r.elapsed = start.elapsed();
        return Ok(r);
    }
    let (mut stored, errs) = transcode_all(
        &tree.moddir,
        &wanted,
        kernel,
        o.keep_compression,
        o.jobs,
        &progress(o.quiet),
    );
    r.errors.extend(errs);
    // The target's machine: its config's, else the tree's modules' (most
    // of them; one module from elsewhere does not decide).
    let target = kconfig_text
        .as_deref()
        .and_then(arch::kernel_machine)
        .or_else(|| majority(stored.iter().filter_map(|s| s.facts.machine)));
    let magic = majority(stored.iter().filter_map(|s| s.facts.vermagic.clone()));
    stored.retain(
        |s| match refusal(&s.facts, target, magic.as_deref(), &o.kver) {
            None => true,
            Some(why) if o.force => {
                r.warnings
                    .push(format!("{}: {why}: packed anyway (--force)", s.name));
                true
            }
            Some(why) => {
                r.errors.push(format!("{}: {why}: not packed", s.name));
                r.refused.push((s.name.clone(), why));
                false
            }
        },
    );
    let members: Vec<Member> = stored
        .iter()
        .map(|s| Member {
            name: s.name.clone(),
            src_rel: s.src_rel.clone(),
            rel: s.rel.clone(),
        })
        .collect();
    let files = subset_files(&tree, &members)?;
    r.packed = stored
        .iter()
        .filter_map(|s| Some((s.name.clone(), s.rel.clone(), why.remove(&s.name)?)))
        .collect();

    let mut img = Image::new();
    if !o.no_firmware {
        let search = Search {
            dirs: firmware_dirs(o),
            kver: o.kver.clone(),
            suffixes: kconfig_text
                .as_deref()
                .map(firmware::kernel_suffixes)
                .unwrap_or_default(),
        };
        let wanted: Vec<(String, Vec<String>)> = stored
            .iter()
            .filter(|s| !s.facts.firmware.is_empty())
            .map(|s| (s.name.clone(), s.facts.firmware.clone()))
            .collect();
        let (reqs, files, bytes) =
            firmware::pack_firmware(&search, &wanted, &mut img, &mut r.errors);
        let dirs: Vec<String> = search
            .dirs
            .iter()
            .map(|d| d.display().to_string())
            .collect();
        for q in reqs.iter().filter(|q| q.stored.is_empty()) {
            let line = format!(
                "{}: firmware {} not found (searched {})",
                q.module,
                q.name,
                dirs.join(", ")
            );
            if o.strict {
                r.errors.push(line);
            } else {
                r.warnings.push(line);
            }
        }
        r.firmware = reqs;
        r.firmware_files = files;
        r.firmware_bytes = bytes;
    }
    let moddir = format!("lib/modules/{}", o.kver);
    for s in stored {
        r.modules += 1;
        r.transcoded += usize::from(s.transcoded.is_some());
        r.bytes_before += s.src_len;
        r.bytes_after += s.data.len() as u64;
        let pre = s.format.is_some();
        note(
            &mut r.errors,
            img.file(&format!("{moddir}/{}", s.rel), s.data, 0o644, pre),
        );
    }
    for (name, data) in files {
        note(
            &mut r.errors,
            img.file(&format!("{moddir}/{name}"), data, 0o644, false),
        );
    }
    for (name, data) in carried {
        note(
            &mut r.errors,
            img.file(&format!("etc/modprobe.d/{name}"), data, 0o644, false),
        );
    }
    if !load.is_empty() {
        let text: String = load.iter().flat_map(|l| [l.as_str(), "\n"]).collect();
        note(
            &mut r.errors,
            img.file(
                "etc/modules-load.d/earlymod-pack.conf",
                text.into_bytes(),
                0o644,
                false,
            ),
        );
    }
    add_microcode(o, target, &mut img, &mut r);
    let bin = std::fs::read(&o.earlymod).map_err(|e| format!("{}: {e}", o.earlymod.display()))?;
    if let Some(t) = target {
        let what = format!("--earlymod {}", o.earlymod.display());
        arch::check_executable(&what, &bin, t, &o.kver)?;
        if let Some(p) = &cfg.init {
            if let Ok(b) = std::fs::read(p) {
                arch::check_executable(&format!("init {}", p.display()), &b, t, &o.kver)?;
            }
        }
    }
    note(&mut r.errors, img.file("sbin/earlymod", bin, 0o755, false));
    for a in APPLET_LINKS {
        note(&mut r.errors, img.symlink(&format!("sbin/{a}"), "earlymod"));
    }
    match &cfg.init {
        Some(p) => match std::fs::read(p) {
            Ok(b) => note(&mut r.errors, img.file("init", b, 0o755, false)),
            Err(e) => r.errors.push(format!("init {}: {e}", p.display())),
        },
        // earlymod's PID-1 mode: argv[0] "/init" selects it.
        None => note(&mut r.errors, img.symlink("init", "sbin/earlymod")),
    }
    note(&mut r.errors, img.chardev("dev/console", 5, 1, 0o600));
    for d in ["proc", "sys", "run", "tmp", "root"] {
        note(&mut r.errors, img.dir(d, 0o755));
    }
    let host = program::host_machine();
    let mut seen = BTreeSet::new();
    for x in &cfg.extras {
        match x {
            Extra::File { src, dest, mode } => match std::fs::read(src) {
                Ok(b) => {
                    let mode = mode.unwrap_or_else(|| file_mode(src));
                    note(&mut r.errors, img.file(dest, b, mode, false));
                }
                Err(e) => r.errors.push(format!("file {}: {e}", src.display())),
            },
            Extra::Symlink { dest, target } => note(&mut r.errors, img.symlink(dest, target)),
            Extra::Dir(d) => note(&mut r.errors, img.dir(d, 0o755)),
            Extra::Program { src, dest } => {
                let what = if dest.starts_with(HOOK_DIR) {
                    "hook"
                } else {
                    "program"
                };
                let mut put = Put {
                    img: &mut img,
                    seen: &mut seen,
                    errors: &mut r.errors,
                    ldd: &o.ldd,
                    host,
                    target,
                    kver: &o.kver,
                };
                put.program(what, src, dest);
            }
        }
    }

    let how = o.compress.or(cfg.compress).unwrap_or(Compression::Gzip);
    let (bytes, stats) = img.write(how, o.mtime, o.jobs)?;
    r.image = stats;
    r.image_len = bytes.len() as u64;
    write_atomic(&o.output, &bytes)?;
    r.elapsed = start.elapsed();
    if let Some(path) = &o.report {
        let text = crate::report::render(&r, &o.kver, &o.output.display().to_string());
        write_atomic(path, text.as_bytes())?;
    }
    Ok(r)
}

/// The early member's microcode bundles (x86 targets only): see
/// [`microcode`]. An explicit vendor with no files is an error; `auto`
/// packs what it finds.
fn add_microcode(o: &PackOptions, target: Option<Machine>, img: &mut Image, r: &mut Report) {
    let x86 = target.is_none_or(|t| matches!(t.em, 3 | 62));
    let vendors: &[Vendor] = match o.microcode {
        Choice::None => &[],
        _ if !x86 => {
            if o.microcode != Choice::Auto {
                r.errors.push(format!(
                    "--microcode: kernel {} is not x86: no early microcode loader",
                    o.kver
                ));
            }
            &[]
        }
        Choice::Intel => &[Vendor::Intel],
        Choice::Amd => &[Vendor::Amd],
        Choice::Auto => &[Vendor::Intel, Vendor::Amd],
    };
    let host = if o.host_only {
        std::fs::read_to_string(&o.cpuinfo)
            .ok()
            .and_then(|t| Cpu::from_cpuinfo(&t))
    } else {
        None
    };
    let dirs = firmware_dirs(o);
    for &v in vendors {
        let only = host
            .filter(|c| c.vendor == Some(v))
            .and_then(|c| c.file_name());
        if o.microcode == Choice::Auto && o.host_only && only.is_none() {
            continue; // auto for one host: its own vendor only
        }
        match microcode::bundle(v, &dirs, only.as_deref()) {
            Ok(Some((data, files))) => {
                let path = v.image_path();
                r.microcode.push((path.clone(), files, data.len()));
                note(&mut r.errors, img.early_file(&path, data));
            }
            Ok(None) if o.microcode != Choice::Auto => r.errors.push(format!(
                "--microcode {}: no {} microcode{} in {} (Debian: {})",
                match v {
                    Vendor::Intel => "intel",
                    Vendor::Amd => "amd",
                },
                v.id(),
                only.map(|f| format!(" for this CPU ({f})"))
                    .unwrap_or_default(),
                dirs.iter()
                    .map(|d| d.display().to_string())
                    .collect::<Vec<_>>()
                    .join(", "),
                match v {
                    Vendor::Intel => "intel-microcode",
                    Vendor::Amd => "amd64-microcode",
                }
            )),
            Ok(None) => {}
            Err(e) => r.errors.push(format!("microcode: {e}")),
        }
    }
}

/// Where `program`s and hooks go: the image, the image paths they already
/// put there (two programs share their libraries: each is read once), the
/// error lines; the `ldd` to run, the host's and the target's machines.
struct Put<'a> {
    img: &'a mut Image,
    seen: &'a mut BTreeSet<String>,
    errors: &'a mut Vec<String>,
    ldd: &'a Path,
    host: Option<Machine>,
    target: Option<Machine>,
    kver: &'a str,
}

impl Put<'_> {
    /// Packs the executable `src` at `dest` with its libraries
    /// ([`program::pieces`]); `what` (`program`, `hook`) starts its error
    /// lines. An ELF for another machine than the target is refused.
    fn program(&mut self, what: &str, src: &Path, dest: &str) {
        let pieces = match program::pieces(src, dest, self.ldd, self.host) {
            Ok(p) => p,
            Err(e) => return self.errors.push(format!("{what} {e}")),
        };
        for (i, p) in pieces.into_iter().enumerate() {
            if !self.seen.insert(p.dest().to_string()) {
                continue;
            }
            match p {
                Piece::File { src, dest, mode } => {
                    let data = match std::fs::read(&src) {
                        Ok(b) => b,
                        Err(e) => {
                            return self.errors.push(format!("{what} {}: {e}", src.display()));
                        }
                    };
                    if let (0, Some(t)) = (i, self.target) {
                        let name = format!("{what} {}", src.display());
                        if let Err(e) = arch::check_executable(&name, &data, t, self.kver) {
                            return self.errors.push(e);
                        }
                    }
                    note(self.errors, self.img.file(&dest, data, mode, false));
                }
                Piece::Symlink { dest, target } => {
                    note(self.errors, self.img.symlink(&dest, &target))
                }
            }
        }
    }
}

/// Names (normalized) of the modules the target kernel has built in.
fn builtin_names(tree: &Tree) -> BTreeSet<String> {
    let text = tree.builtin_text().unwrap_or_default();
    String::from_utf8_lossy(text)
        .lines()
        .filter_map(|l| {
            let base = l.trim().rsplit('/').next()?;
            let name = base.strip_suffix(".ko")?;
            Some(name.replace('-', "_"))
        })
        .collect()
}

/// The most common item (the first of equals in `Ord` order), if any.
fn majority<T: Ord>(items: impl Iterator<Item = T>) -> Option<T> {
    let mut count: BTreeMap<T, usize> = BTreeMap::new();
    for i in items {
        *count.entry(i).or_default() += 1;
    }
    let best = count.values().copied().max()?;
    count.into_iter().find(|(_, n)| *n == best).map(|(t, _)| t)
}

/// Why the target kernel would refuse a module: built for another machine,
/// or a vermagic of another kernel (its release, or its flags against the
/// other modules').
fn refusal(f: &Facts, target: Option<Machine>, magic: Option<&str>, kver: &str) -> Option<String> {
    if let (Some(m), Some(t)) = (f.machine, target) {
        if m != t {
            return Some(format!(
                "built for {}, but kernel {kver} is {}",
                m.name(),
                t.name()
            ));
        }
    }
    let vm = f.vermagic.as_deref()?;
    let release = vm.split_ascii_whitespace().next().unwrap_or("");
    if release != kver {
        return Some(format!(
            "vermagic '{vm}' is for kernel {release}, not {kver}"
        ));
    }
    match magic {
        Some(m) if m != vm => Some(format!(
            "vermagic '{vm}' differs from the other modules' '{m}'"
        )),
        _ => None,
    }
}

/// Where firmware is searched: the given trees, else `ROOT/lib/firmware`
/// and (packing for the running kernel) `/lib/firmware`.
fn firmware_dirs(o: &PackOptions) -> Vec<PathBuf> {
    if !o.firmware_dirs.is_empty() {
        return o.firmware_dirs.clone();
    }
    let mut v = vec![o.root.join("lib/firmware")];
    let running = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    let host = PathBuf::from("/lib/firmware");
    if running.trim() == o.kver && !v.contains(&host) {
        v.push(host);
    }
    v
}

fn note(errors: &mut Vec<String>, res: Result<(), String>) {
    if let Err(e) = res {
        errors.push(e);
    }
}

#[cfg(unix)]
fn file_mode(p: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(p).map_or(0o644, |m| m.permissions().mode() & 0o7777)
}

fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), String> {
    let tmp = path.with_extension("earlymod-pack.tmp");
    let res = std::fs::File::create(&tmp)
        .and_then(|mut f| f.write_all(bytes).and_then(|_| f.sync_all()))
        .and_then(|_| std::fs::rename(&tmp, path));
    res.map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        format!("{}: {e}", path.display())
    })
}
