//! earlymod as PID 1 of an initramfs (`/init`), and its helper modes:
//! mount the API filesystems, load what the command line and the image's
//! config ask for, coldplug (load drivers for every device's modalias until
//! a pass finds nothing new), wait for and mount `root=`, write the boot
//! report, switch_root and exec the real init. PID 1 never exits: every
//! failure ends in a rescue shell (`/bin/sh`, if the image has one) or a
//! wait.
//!
//! - `init` (`argv[0]` `init`, e.g. `/init`): the whole boot, as PID 1;
//! - `coldplug`: modules-load + coldplug without being PID 1;
//! - `load-config`: only the command line and modules-load.d;
//! - `report`: prints `/run/earlymod/boot.log`.
//!
//! `init` and `report` come with the `init` feature, `coldplug` and
//! `load-config` with the `coldplug` feature; the loading steps are shared.
//! With the `parallel` feature independent modules load in child processes
//! (`earlymod.jobs=`, `--jobs=`); without it, one at a time in-process.
// A build with only one of the two features leaves the other's steps unused.
#![cfg_attr(
    not(all(feature = "init", feature = "coldplug")),
    allow(dead_code, unused_imports)
)]

mod jobs;
mod klog;
mod root;
mod switch;

use alloc::string::{String, ToString};
use alloc::vec::Vec;

use earlymod_core::blkid::RootSpec;
use earlymod_core::cmdline::{BootParams, key_value, words};
use earlymod_core::modules_load::{MODULES_LOAD_DIRS, modules_load_names};
use earlymod_core::probe::Resolver;
use earlymod_core::put;
use earlymod_core::text::{Pad, Piece, Sink};
use rustix::fs::Mode;

use crate::log::Log;
use crate::moddir::{self, ModDir};
use crate::sys::{self, CPath, Kind, Out};
use jobs::Plan;
use klog::Klog;

/// Where the boot report goes (moved with `/run` into the new root).
pub const REPORT: &str = "/run/earlymod/boot.log";

use crate::log::{Text, text};

/// A rustix error as its `Display` prints it without std.
struct OsError(rustix::io::Errno);

impl Piece for OsError {
    fn put_to(&self, out: &mut dyn Sink) {
        put!(out; "os error ", self.0.raw_os_error());
    }
}

/// Microseconds since boot (CLOCK_MONOTONIC).
pub fn now_us() -> u64 {
    let t = rustix::time::clock_gettime(rustix::time::ClockId::Monotonic);
    (t.tv_sec as u64) * 1_000_000 + (t.tv_nsec as u64) / 1000
}

/// What the kernel command line says to earlymod.
struct Cmdline {
    text: String,
}

impl Cmdline {
    fn read() -> Cmdline {
        let mut buf = [0u8; 4096];
        let text = sys::read_small(c"/proc/cmdline", &mut buf)
            .map(|b| String::from_utf8_lossy(b).trim().to_string())
            .unwrap_or_default();
        Cmdline { text }
    }

    fn get(&self, key: &str) -> Option<&str> {
        words(&self.text)
            .map(key_value)
            .filter(|(k, _)| *k == key)
            .map(|(_, v)| v.unwrap_or(""))
            .last()
    }

    fn has(&self, key: &str) -> bool {
        self.get(key).is_some()
    }
}

/// One coldplug pass or load batch, for the report.
struct Pass {
    what: String,
    requests: usize,
    loaded: usize,
    failed: usize,
    micros: u64,
}

/// Everything the boot report says.
#[derive(Default)]
struct Report {
    modules: Vec<(String, u64, Option<String>)>,
    passes: Vec<Pass>,
    root: Option<(String, u64)>,
    jobs: usize,
    events: Vec<(u64, String)>,
    /// `rd.driver.blacklist=` / `modprobe.blacklist=` names (normalized):
    /// like a modprobe.d blacklist, they stop loads through aliases.
    blacklist: Vec<String>,
}

impl Report {
    fn event(&mut self, log: &mut Klog, msg: &[&dyn Piece]) {
        let msg = text(msg);
        log.debug(&[&msg.as_str()]);
        self.events.push((now_us(), msg));
    }

    fn render(&self) -> String {
        let mut s = Text(String::new());
        put!(&mut s; "earlymod boot report (times in microseconds since boot)\njobs: ", self.jobs, "\n");
        for (t, e) in &self.events {
            put!(&mut s; Pad::right(t, 10), " ", e.as_str(), "\n");
        }
        for p in &self.passes {
            put!(&mut s; "pass ", p.what.as_str(), ": ", p.requests, " requests, ", p.loaded,
                " modules loaded, ", p.failed, " failed, ", p.micros, " us\n");
        }
        for (m, us, err) in &self.modules {
            match err {
                None => put!(&mut s; "module ", m.as_str(), " ", us, " us\n"),
                Some(e) => {
                    put!(&mut s; "module ", m.as_str(), " FAILED ", us, " us: ", e.as_str(), "\n")
                }
            }
        }
        match &self.root {
            Some((dev, us)) => put!(&mut s; "root ", dev.as_str(), " mounted at ", us, " us\n"),
            None => put!(&mut s; "root not mounted\n"),
        }
        s.0
    }

    fn write(&self) {
        let _ = rustix::fs::mkdir("/run/earlymod", Mode::from_raw_mode(0o755));
        if let Ok(fd) = rustix::fs::open(
            REPORT,
            rustix::fs::OFlags::WRONLY | rustix::fs::OFlags::CREATE | rustix::fs::OFlags::TRUNC,
            Mode::from_raw_mode(0o644),
        ) {
            let _ = rustix::io::write(&fd, self.render().as_bytes());
        }
    }
}

fn mount_api(log: &mut Klog, report: &mut Report) {
    use rustix::mount::{MountFlags, mount};
    let nodev = MountFlags::NOSUID | MountFlags::NOEXEC | MountFlags::NODEV;
    for (src, dir, fs, flags, data) in [
        ("proc", "/proc", "proc", nodev, c""),
        ("sysfs", "/sys", "sysfs", nodev, c""),
        (
            "devtmpfs",
            "/dev",
            "devtmpfs",
            MountFlags::NOSUID,
            c"mode=0755",
        ),
        (
            "tmpfs",
            "/run",
            "tmpfs",
            MountFlags::NOSUID | MountFlags::NODEV,
            c"mode=0755",
        ),
    ] {
        let _ = rustix::fs::mkdir(dir, Mode::from_raw_mode(0o755));
        match mount(src, dir, fs, flags, data) {
            Ok(()) => report.event(log, &[&"mounted ", &fs, &" on ", &dir]),
            // The kernel may have mounted devtmpfs already.
            Err(rustix::io::Errno::BUSY) => {}
            Err(e) => log.line(&[&"mount ", &fs, &" on ", &dir, &": ", &OsError(e)]),
        }
        if dir == "/dev" {
            log.reopen();
        }
    }
}

/// The `MODALIAS=` values of every device on every bus — the uevent files
/// of `/sys/bus/*/devices/*` (links into `/sys/devices`) — and of the input
/// class (the one class whose devices carry a modalias: `evdev`,
/// `joydev`). Far fewer reads than walking all of `/sys/devices`.
fn modaliases(out: &mut Vec<String>) {
    let mut dirs: Vec<String> = Vec::new();
    sys::list_dir(c"/sys/bus", &mut |n, _| {
        if !n.starts_with('.') {
            dirs.push(text(&[&"/sys/bus/", &n, &"/devices"]));
        }
    });
    dirs.push("/sys/class/input".to_string());
    let mut buf = [0u8; 4096];
    for dir in dirs {
        let Some(dir) = CPath::join(&[&dir]) else {
            continue;
        };
        let mut devs: Vec<String> = Vec::new();
        sys::list_dir(dir.as_cstr(), &mut |n, _| {
            if !n.starts_with('.') {
                devs.push(n.to_string());
            }
        });
        for d in devs {
            let Some(p) = CPath::join(&[dir.as_str(), "/", &d, "/uevent"]) else {
                continue;
            };
            let Some(text) = sys::read_small(p.as_cstr(), &mut buf) else {
                continue;
            };
            for line in text.split(|&c| c == b'\n') {
                let v = line.strip_prefix(b"MODALIAS=").map(core::str::from_utf8);
                if let Some(Ok(v)) = v {
                    out.push(v.to_string());
                }
            }
        }
    }
}

/// modules-load.d names, files sorted by name (earlier dirs win a name).
fn modules_load_d(out: &mut Vec<String>) {
    let mut files: Vec<(String, &str)> = Vec::new();
    for d in MODULES_LOAD_DIRS {
        let Some(c) = CPath::join(&[d]) else { continue };
        sys::list_dir(c.as_cstr(), &mut |n, k| {
            if k == Kind::Other && n.ends_with(".conf") && !files.iter().any(|(f, _)| f == n) {
                files.push((n.to_string(), d));
            }
        });
    }
    // By name (names are unique: the first directory wins). A handful of
    // files: an insertion sort, not a second instance of slice::sort.
    for i in 1..files.len() {
        let mut j = i;
        while j > 0 && files[j - 1].0 > files[j].0 {
            files.swap(j - 1, j);
            j -= 1;
        }
    }
    for (f, d) in files {
        let Some(p) = CPath::join(&[d, "/", &f]) else {
            continue;
        };
        let Some(m) = sys::Mapped::open(p.as_cstr(), false) else {
            continue;
        };
        if let Ok(text) = core::str::from_utf8(m.bytes()) {
            out.extend(modules_load_names(text).map(str::to_string));
        }
    }
}

/// Loads `requests` as one batch and records it.
fn batch(
    r: &Resolver<'_, '_>,
    moddir: &str,
    what: &str,
    requests: &[String],
    jobs: usize,
    log: &mut Klog,
    report: &mut Report,
) -> usize {
    let t0 = now_us();
    let mut plan = Plan::default();
    plan.blacklist = report.blacklist.clone();
    let live = crate::kernel::Live::new();
    for q in requests {
        plan.add(r, &live, q, log);
    }
    plan.run(r, &live, jobs, &mut jobs::ForkRunner::new(moddir), log);
    let failed = plan.jobs.iter().filter(|j| j.error.is_some()).count();
    let loaded = plan.jobs.len() - failed;
    report.passes.push(Pass {
        what: what.to_string(),
        requests: requests.len(),
        loaded,
        failed,
        micros: now_us() - t0,
    });
    for j in plan.jobs {
        report.modules.push((j.name, j.micros, j.error));
    }
    loaded
}

/// Default parallelism: the CPUs this process may run on.
#[cfg(feature = "parallel")]
fn cpus() -> usize {
    rustix::thread::sched_getaffinity(None)
        .map_or(1, |s| s.count() as usize)
        .max(1)
}

/// Steps 2–4 of the boot: command line + modules-load.d, then coldplug
/// until a pass finds no new modalias. `seen` keeps the modaliases handled.
#[allow(clippy::too_many_arguments)]
fn load_all(
    r: &Resolver<'_, '_>,
    moddir: &str,
    cmd: &Cmdline,
    jobs: usize,
    coldplug: bool,
    seen: &mut Vec<String>,
    log: &mut Klog,
    report: &mut Report,
) {
    let (bp, full) = BootParams::parse(&cmd.text);
    if let Err(e) = full {
        // The entries within the bound (and every other list) still count.
        log.line(&[
            &"/proc/cmdline: ",
            &e,
            &": the names over the limit are ignored",
        ]);
    }
    report.blacklist = bp.blacklist.iter().map(|b| b.replace('-', "_")).collect();
    // rd.driver.pre: in order, each before anything else.
    for m in bp.driver_pre.iter() {
        batch(r, moddir, "rd.driver.pre", &[m.to_string()], 1, log, report);
    }
    let mut first: Vec<String> = bp.modules_load.iter().map(|s| s.to_string()).collect();
    modules_load_d(&mut first);
    // A known root filesystem type loads with the first batch, in parallel
    // with everything else, instead of after the root device appears.
    if let Some(t) = cmd.get("rootfstype").filter(|t| !t.is_empty()) {
        first.push(text(&[&"fs-", &t]));
    }
    // The first coldplug pass joins this batch: no ordering is owed between
    // them, and one plan keeps every CPU busy.
    let mut what = "modules-load";
    if coldplug {
        let new = new_modaliases(seen);
        if !new.is_empty() {
            what = "modules-load + coldplug 1";
        }
        first.extend(new);
    }
    if !first.is_empty() {
        batch(r, moddir, what, &first, jobs, log, report);
    }
    if coldplug {
        coldplug_passes(r, moddir, jobs, seen, log, report);
    }
}

/// Modaliases not handled yet (now marked handled).
fn new_modaliases(seen: &mut Vec<String>) -> Vec<String> {
    let mut all = Vec::new();
    modaliases(&mut all);
    all.sort_unstable();
    all.dedup();
    let new: Vec<String> = all.into_iter().filter(|a| !seen.contains(a)).collect();
    seen.extend(new.iter().cloned());
    new
}

/// Coldplug passes until one finds no new modalias.
fn coldplug_passes(
    r: &Resolver<'_, '_>,
    moddir: &str,
    jobs: usize,
    seen: &mut Vec<String>,
    log: &mut Klog,
    report: &mut Report,
) {
    loop {
        let new = new_modaliases(seen);
        if new.is_empty() {
            return;
        }
        let n = report
            .passes
            .iter()
            .filter(|p| p.what.contains("coldplug"))
            .count()
            + 1;
        let what = text(&[&"coldplug ", &n]);
        batch(r, moddir, &what, &new, jobs, log, report);
    }
}

fn sleep_ms(ms: u64) {
    let ts = rustix::time::Timespec {
        tv_sec: (ms / 1000) as i64,
        tv_nsec: ((ms % 1000) * 1_000_000) as i64,
    };
    let _ = rustix::thread::nanosleep(&ts);
}

/// With a resolver over the running kernel's module directory and the
/// image's config — modprobe's: the modprobe.d directories
/// ([`moddir::DEFAULT_CONFIG_PATHS`]) and `modules.softdep`, then the
/// command line's module options and blacklist.
fn with_resolver(f: &mut dyn FnMut(&Resolver<'_, '_>, &str)) {
    let dir = ModDir::open(moddir::dirname_for(None, None));
    let log = Log {
        prog: "earlymod",
        verbose: crate::log::LOG_ERR,
    };
    let name = dir.dirname.clone();
    crate::modprobe::with_config(&dir, &moddir::DEFAULT_CONFIG_PATHS, &log, |ctx| {
        f(&ctx.resolver(), &name)
    });
}

/// The rescue path: a shell if the image has one (rd.shell or not), else
/// wait. Never returns.
fn rescue(log: &mut Klog, why: &str) -> ! {
    log.line(&[&"boot failed: ", &why]);
    loop {
        if rustix::fs::access("/bin/sh", rustix::fs::Access::EXEC_OK).is_ok() {
            log.line(&[&"starting /bin/sh (rescue shell; exit it to start another)"]);
            // SAFETY: single-threaded; the child only execs or exits.
            match unsafe { rustix::runtime::kernel_fork() } {
                Ok(rustix::runtime::Fork::Child(_)) => {
                    let _ = switch::exec(c"/bin/sh", &[c"sh"]);
                    rustix::runtime::exit_group(127)
                }
                Ok(rustix::runtime::Fork::ParentOf(pid)) => {
                    let _ =
                        rustix::process::waitpid(Some(pid), rustix::process::WaitOptions::empty());
                }
                Err(_) => {}
            }
            sleep_ms(1000);
        } else {
            log.line(&[&"no /bin/sh in the image: waiting (PID 1 does not exit)"]);
            loop {
                // Reap orphans while waiting.
                while let Ok(Some(_)) = rustix::process::wait(rustix::process::WaitOptions::NOHANG)
                {
                }
                sleep_ms(10_000);
            }
        }
    }
}

/// PID 1.
#[cfg(feature = "init")]
pub fn init_main() -> i32 {
    if rustix::process::getpid().as_raw_nonzero().get() != 1 {
        Out::stderr().bytes(
            b"earlymod init: not PID 1 (run `earlymod coldplug` or `earlymod load-config` from a script)\n",
        );
        return 1;
    }
    let mut log = Klog::new();
    let mut report = Report::default();
    report.event(&mut log, &[&"earlymod init starting"]);
    mount_api(&mut log, &mut report);
    let cmd = Cmdline::read();
    log.debug = cmd.has("earlymod.debug");
    // Without the `parallel` feature every load runs in this process.
    #[cfg(not(feature = "parallel"))]
    let jobs = 1;
    #[cfg(feature = "parallel")]
    let jobs = cmd
        .get("earlymod.jobs")
        .and_then(|j| j.parse::<usize>().ok())
        .filter(|&j| j > 0)
        .unwrap_or_else(cpus);
    report.jobs = jobs;
    let spec_text = cmd.get("root").map(str::to_string);
    let spec = spec_text.as_deref().and_then(RootSpec::parse);
    let wait_forever = cmd.has("rootwait");
    let delay = cmd
        .get("rootdelay")
        .and_then(|d| d.parse::<u64>().ok())
        .unwrap_or(0);
    let timeout_s = cmd
        .get("earlymod.root_timeout")
        .and_then(|d| d.parse::<u64>().ok())
        .unwrap_or(10);
    let mut seen = Vec::new();
    let mut found = None;
    let mut failure: Option<String> = None;
    with_resolver(&mut |r, moddir| {
        load_all(
            r,
            moddir,
            &cmd,
            jobs,
            true,
            &mut seen,
            &mut log,
            &mut report,
        );
        report.event(&mut log, &[&"coldplug settled"]);
        let Some(spec) = spec else {
            failure = Some(match &spec_text {
                None => "no root= on the kernel command line".to_string(),
                Some(t) => text(&[&"root=", &t.as_str(), &": unknown form"]),
            });
            return;
        };
        if delay > 0 {
            sleep_ms(delay * 1000);
        }
        let start = now_us();
        let mut last_note = start;
        loop {
            if let Some(f) = root::find(&spec) {
                found = Some(f);
                break;
            }
            // Devices appear asynchronously (SCSI scans): keep coldplugging.
            coldplug_passes(r, moddir, jobs, &mut seen, &mut log, &mut report);
            let waited = now_us() - start;
            if !wait_forever && waited > timeout_s * 1_000_000 {
                failure = Some(text(&[
                    &"root device ",
                    &spec_text.as_deref().unwrap_or(""),
                    &" not found after ",
                    &timeout_s,
                    &" s",
                ]));
                return;
            }
            if now_us() - last_note > 5_000_000 {
                log.line(&[
                    &"waiting for root device ",
                    &spec_text.as_deref().unwrap_or(""),
                ]);
                last_note = now_us();
            }
            sleep_ms(50);
        }
        let f = found.as_ref().unwrap_or_else(|| unreachable!());
        // The filesystem's module, if it is one.
        let fstype = cmd.get("rootfstype").or(f.fstype);
        if let Some(t) = fstype {
            let req = [text(&[&"fs-", &t])];
            batch(r, moddir, "root filesystem", &req, 1, &mut log, &mut report);
        }
    });
    report.write();
    if let Some(why) = failure {
        rescue(&mut log, &why);
    }
    let Some(f) = found else {
        rescue(&mut log, "no root")
    };
    let opts = root::MountOpts {
        fstype: cmd.get("rootfstype"),
        flags: cmd.get("rootflags"),
        rw: cmd.has("rw") && !cmd.has("ro"),
    };
    let fstype = match root::mount(&f, &opts) {
        Ok(t) => t,
        Err(e) => {
            report.write();
            rescue(&mut log, &e)
        }
    };
    report.root = Some((f.dev.clone(), now_us()));
    report.event(
        &mut log,
        &[
            &"mounted ",
            &f.dev.as_str(),
            &" (",
            &fstype.as_str(),
            &") on ",
            &root::SYSROOT,
        ],
    );
    let init = cmd.get("init").unwrap_or("/sbin/init").to_string();
    if let Err(e) = switch::check_init(&init) {
        report.write();
        let _ = rustix::mount::unmount(root::SYSROOT, rustix::mount::UnmountFlags::empty());
        rescue(&mut log, &e);
    }
    report.event(&mut log, &[&"switching root, exec ", &init.as_str()]);
    report.write();
    if let Err(e) = switch::switch_root() {
        rescue(&mut log, &e);
    }
    let Some(path) = CPath::join(&[&init]) else {
        rescue(&mut log, "init path too long")
    };
    let e = switch::exec(path.as_cstr(), &[path.as_cstr()]);
    log.line(&[&"exec ", &init.as_str(), &": ", &OsError(e)]);
    // The initramfs is gone: try the new root's shell, else wait.
    rescue(&mut log, "init could not be executed")
}

/// `earlymod coldplug` / `earlymod load-config`: steps 2–4 from a script.
#[cfg(feature = "coldplug")]
pub fn helper_main(prog: &str, args: &[&str]) -> i32 {
    let mut log = Klog::new();
    log.console = args.contains(&"-v");
    let mut report = Report::default();
    let cmd = Cmdline::read();
    #[cfg(not(feature = "parallel"))]
    let jobs = 1;
    #[cfg(feature = "parallel")]
    let jobs = args
        .iter()
        .find_map(|a| a.strip_prefix("--jobs="))
        .and_then(|j| j.parse().ok())
        .or_else(|| cmd.get("earlymod.jobs").and_then(|j| j.parse().ok()))
        .unwrap_or_else(cpus);
    report.jobs = jobs;
    let mut seen = Vec::new();
    with_resolver(&mut |r, moddir| {
        load_all(
            r,
            moddir,
            &cmd,
            jobs,
            prog == "coldplug",
            &mut seen,
            &mut log,
            &mut report,
        );
    });
    report.write();
    let failed = report.modules.iter().filter(|m| m.2.is_some()).count();
    i32::from(failed > 0)
}

/// `earlymod report`: prints the boot report.
#[cfg(feature = "init")]
pub fn report_main() -> i32 {
    let mut out = Out::stdout();
    match sys::Mapped::open(c"/run/earlymod/boot.log", false) {
        Some(m) => {
            out.bytes(m.bytes());
            0
        }
        None => {
            put!(&mut Out::stderr(); "earlymod report: ", REPORT, ": no boot report\n");
            1
        }
    }
}
