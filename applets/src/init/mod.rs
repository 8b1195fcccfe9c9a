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

use alloc::string::{String, ToString};
use alloc::vec::Vec;

use earlymod_core::cmdline::{BootParams, key_value, words};
use earlymod_core::devices;
use earlymod_core::put;
use earlymod_core::text::{Pad, Piece};
use rustix::fs::Mode;

#[cfg(feature = "hooks")]
mod hooks;

use crate::boot::klog::Klog;
use crate::boot::root::{self, Wait};
use crate::boot::{self, Batch, Batching, Coldplug, Jobs, Steer, now_us, switch};
use crate::context::Context;
use crate::kernel::Live;
use crate::log::{Text, text};
use crate::sys::{self, Out};

/// Where the boot report goes (moved with `/run` into the new root).
pub const REPORT: &str = "/run/earlymod/boot.log";

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
    what: &'static str,
    /// The coldplug pass's number (0: not a coldplug pass).
    coldplug: usize,
    requests: usize,
    loaded: usize,
    failed: usize,
    micros: u64,
}

/// Everything the boot report says.
#[derive(Default)]
struct Report {
    modules: Vec<boot::Job>,
    passes: Vec<Pass>,
    root: Option<(String, u64)>,
    /// When coldplug settled (the default), or when the root chain was
    /// loaded (`earlymod.handoff=root`).
    settled: Option<(&'static str, u64)>,
    /// Modaliases left to the real system (`earlymod.handoff=root`).
    left: usize,
    /// Modules of a batch never started (`earlymod.handoff=root`).
    left_modules: Vec<String>,
    jobs: usize,
    events: Vec<(u64, String)>,
}

impl Report {
    /// The number of the last coldplug pass recorded (0: none yet).
    fn last_coldplug(&self) -> usize {
        self.passes.iter().map(|p| p.coldplug).max().unwrap_or(0)
    }

    fn event(&mut self, log: &mut dyn boot::Logger, msg: &[&dyn Piece]) {
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
            put!(&mut s; "pass ", p.what);
            if p.coldplug > 0 {
                put!(&mut s; " ", p.coldplug);
            }
            put!(&mut s; ": ", p.requests, " requests, ", p.loaded,
                " modules loaded, ", p.failed, " failed, ", p.micros, " us\n");
        }
        for boot::Job {
            name: m,
            micros: us,
            error: err,
            ..
        } in &self.modules
        {
            match err {
                None => put!(&mut s; "module ", m.as_str(), " ", us, " us\n"),
                Some(e) => {
                    put!(&mut s; "module ", m.as_str(), " FAILED ", us, " us: ", e.as_str(), "\n")
                }
            }
        }
        if let Some((what, us)) = self.settled {
            put!(&mut s; what, " at ", us, " us\n");
        }
        match &self.root {
            Some((dev, us)) => put!(&mut s; "root ", dev.as_str(), " mounted at ", us, " us\n"),
            None => put!(&mut s; "root not mounted\n"),
        }
        if self.left > 0 || !self.left_modules.is_empty() {
            put!(&mut s; "handoff=root: ", self.left, " device modaliases and ",
                self.left_modules.len(), " planned modules left to the real system\n");
            for m in &self.left_modules {
                put!(&mut s; "left ", m.as_str(), "\n");
            }
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

/// Records batch `what` (coldplug pass `coldplug`, or 0) in the report.
fn record(report: &mut Report, what: &'static str, coldplug: usize, mut batch: Batch) {
    let failed = batch.failed();
    report.passes.push(Pass {
        what,
        coldplug,
        requests: batch.requests,
        loaded: batch.modules.len() - failed,
        failed,
        micros: batch.micros,
    });
    report.modules.append(&mut batch.modules);
    report.left_modules.append(&mut batch.left);
}

/// The boot's loading state: the context, the kernel, how batches load,
/// the modaliases handled.
struct Loading<'c, 's> {
    ctx: &'c Context<'s>,
    kernel: Live,
    jobs: Jobs,
    seen: Coldplug,
    /// `rd.driver.blacklist=` / `modprobe.blacklist=` names (normalized):
    /// like a modprobe.d blacklist, they stop loads through aliases.
    blacklist: Vec<String>,
    /// `earlymod.handoff=root`: only the root's chain loads before the
    /// switch; other devices' modaliases wait here.
    handoff: bool,
    deferred: Vec<String>,
    /// `root=`, to load its filesystem's module as soon as the device
    /// shows up (a block uevent during a batch).
    root: Option<String>,
    /// When the root device was seen during a batch.
    root_seen: Option<u64>,
    /// `rootfstype=` asked for the filesystem up front.
    fs_asked: bool,
    /// The requests asked for by name: they load before a handoff.
    named: Vec<String>,
}

/// During a batch, after each load: if a block device came and it is the
/// root, its filesystem's module (`fs-TYPE`, unless `rootfstype=` asked
/// for it already) joins the running plan; with `earlymod.handoff=root`
/// the batch then starts only what must load.
fn root_early(
    spec: Option<&str>,
    seen: &mut Coldplug,
    when: &mut Option<u64>,
    fs_asked: bool,
    handoff: bool,
    log: &mut dyn boot::Logger,
) -> Steer {
    let mut steer = Steer {
        add: Vec::new(),
        handoff: handoff && when.is_some(),
    };
    let Some(spec) = spec.filter(|_| when.is_none()) else {
        return steer;
    };
    if !seen.poll_block() {
        return steer;
    }
    let Some(f) = earlymod_core::blkid::RootSpec::parse(spec).and_then(|p| root::find_now(&p))
    else {
        return steer;
    };
    *when = Some(now_us());
    steer.handoff = handoff;
    log.debug(&[&"root ", &f.dev.as_str(), &" is there"]);
    if let (Some(t), false) = (f.fstype, fs_asked) {
        steer.add.push(text(&[&"fs-", &t]));
    }
    steer
}

/// Orders a batch's device modaliases root first: storage controllers,
/// disks and the buses that carry them ([`devices::is_storage_path`])
/// before the other devices (a plan starts ready jobs in the order they
/// were asked for).
fn root_first(modaliases: Vec<String>) -> (Vec<String>, Vec<String>) {
    modaliases
        .into_iter()
        .partition(|m| devices::is_storage_path(m))
}

impl<'c, 's> Loading<'c, 's> {
    /// Loading through `ctx` into the running kernel, new devices from
    /// `seen`; no handoff, no `root=` to watch for (callers set them).
    fn new(ctx: &'c Context<'s>, jobs: Jobs, seen: Coldplug) -> Self {
        Loading {
            ctx,
            kernel: Live::new(),
            jobs,
            seen,
            blacklist: Vec::new(),
            handoff: false,
            deferred: Vec::new(),
            root: None,
            root_seen: None,
            fs_asked: false,
            named: Vec::new(),
        }
    }

    /// Loads `requests` as one batch and records it.
    fn batch(
        &mut self,
        what: &'static str,
        coldplug: usize,
        requests: &[String],
        log: &mut dyn boot::Logger,
        report: &mut Report,
    ) {
        let Loading {
            ctx,
            kernel,
            jobs,
            seen,
            blacklist,
            root,
            root_seen,
            fs_asked,
            named,
            handoff,
            ..
        } = self;
        let how = Batching {
            jobs: *jobs,
            blacklist,
            must: named,
        };
        let spec = root.as_deref();
        let done = ctx.load_batch_with(requests, kernel, &how, log, &mut |log| {
            root_early(spec, seen, root_seen, *fs_asked, *handoff, log)
        });
        record(report, what, coldplug, done);
    }

    /// The devices' new modaliases: (the root chain, the other devices).
    /// With `earlymod.handoff=root` the others are deferred (and, once the
    /// root is there, the chain too): what is returned loads now.
    fn split_new(&mut self) -> (Vec<String>, Vec<String>) {
        let (mut chain, mut other) = root_first(self.seen.new_modaliases());
        if self.handoff {
            if self.root_seen.is_some() {
                // The root is there: every device is the real system's.
                self.deferred.append(&mut chain);
            }
            self.deferred.append(&mut other);
        }
        (chain, other)
    }

    /// The devices' new modaliases to load now, root chain first.
    fn new_modaliases(&mut self) -> Vec<String> {
        let (mut chain, mut other) = self.split_new();
        chain.append(&mut other);
        chain
    }

    /// Coldplug passes until one finds no new modalias.
    fn coldplug(&mut self, log: &mut dyn boot::Logger, report: &mut Report) {
        let mut n = report.last_coldplug();
        loop {
            let new = self.new_modaliases();
            if new.is_empty() {
                return;
            }
            n += 1;
            self.batch("coldplug", n, &new, log, report);
        }
    }

    /// `earlymod.handoff=root` gives up on the root chain alone: the
    /// deferred devices load too, and from now on every device does.
    fn undefer(&mut self, log: &mut dyn boot::Logger, report: &mut Report) {
        if !self.handoff {
            return;
        }
        self.handoff = false;
        let rest = core::mem::take(&mut self.deferred);
        report.event(
            log,
            &[
                &"handoff=root: root not there yet, loading the other ",
                &rest.len(),
                &" devices' drivers",
            ],
        );
        if !rest.is_empty() {
            let n = report.last_coldplug() + 1;
            self.batch("coldplug", n, &rest, log, report);
        }
    }

    /// Steps 2–4 of the boot: command line + modules-load.d, then coldplug
    /// until a pass finds no new modalias.
    fn load_all(&mut self, cmd: &Cmdline, coldplug: bool, log: &mut Klog, report: &mut Report) {
        let (bp, full) = BootParams::parse(&cmd.text);
        if let Err(e) = full {
            // The entries within the bound (and every other list) still count.
            log.line(&[
                &"/proc/cmdline: ",
                &e,
                &": the names over the limit are ignored",
            ]);
        }
        self.blacklist = bp.blacklist.iter().map(|b| b.replace('-', "_")).collect();
        // rd.driver.pre: in order, each before anything else.
        let jobs = self.jobs;
        self.jobs = Jobs::One;
        for m in bp.driver_pre.iter() {
            self.batch("rd.driver.pre", 0, &[m.to_string()], log, report);
        }
        self.jobs = jobs;
        // The root's chain first: a known root filesystem type and the
        // storage devices' drivers, then what was asked for by name, then
        // the other devices (a plan starts ready jobs in this order).
        let mut first: Vec<String> = Vec::new();
        let mut named: Vec<String> = bp.modules_load.iter().map(|s| s.to_string()).collect();
        boot::modules_load_d(&mut named);
        if let Some(t) = cmd.get("rootfstype").filter(|t| !t.is_empty()) {
            let fs = text(&[&"fs-", &t]);
            first.push(fs.clone());
            self.named.push(fs);
            self.fs_asked = true;
        }
        self.named.extend(named.iter().cloned());
        // The first coldplug pass joins this batch: no ordering is owed between
        // them, and one plan keeps every CPU busy.
        let (mut what, mut pass) = ("modules-load", 0);
        let (chain, other) = match coldplug {
            true => self.split_new(),
            false => (Vec::new(), Vec::new()),
        };
        if !chain.is_empty() || !other.is_empty() || !self.deferred.is_empty() {
            (what, pass) = ("modules-load + coldplug", 1);
        }
        first.extend(chain);
        first.extend(named);
        first.extend(other);
        if !first.is_empty() {
            self.batch(what, pass, &first, log, report);
        }
        if coldplug {
            self.coldplug(log, report);
        }
        if !bp.driver_post.is_empty() {
            let post: Vec<String> = bp.driver_post.iter().map(|s| s.to_string()).collect();
            self.named.extend(post.iter().cloned());
            self.batch("rd.driver.post", 0, &post, log, report);
        }
    }
}

/// With a context over the running kernel's module directory and the
/// image's config — modprobe's: the modprobe.d directories
/// ([`crate::moddir::DEFAULT_CONFIG_PATHS`]) and `modules.softdep`, then the
/// command line's module options and blacklist.
fn with_context(f: &mut dyn FnMut(&Context<'_>)) {
    let dir = crate::moddir::ModDir::running();
    let log = crate::log::Log {
        prog: "earlymod",
        verbose: crate::log::LOG_ERR,
    };
    crate::modprobe::with_config(&dir, &crate::moddir::DEFAULT_CONFIG_PATHS, &log, |ctx| {
        f(ctx)
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
                    console_session();
                    let _ = switch::exec(c"/bin/sh", &[c"sh"]);
                    rustix::runtime::exit_group(127)
                }
                Ok(rustix::runtime::Fork::ParentOf(pid)) => {
                    let _ =
                        rustix::process::waitpid(Some(pid), rustix::process::WaitOptions::empty());
                }
                Err(_) => {}
            }
            boot::sleep_ms(1000);
        } else {
            log.line(&[&"no /bin/sh in the image: waiting (PID 1 does not exit)"]);
            loop {
                // Reap orphans while waiting.
                while let Ok(Some(_)) = rustix::process::wait(rustix::process::WaitOptions::NOHANG)
                {
                }
                boot::sleep_ms(10_000);
            }
        }
    }
}

/// Makes the calling process (the rescue shell, before its exec) the leader
/// of a new session whose controlling terminal is the console, with the
/// console as its stdin, stdout and stderr: the shell then owns the
/// terminal's foreground, so job control and Ctrl-C work. Failures leave
/// the shell as it was (still usable, without job control).
pub(crate) fn console_session() {
    use rustix::fs::{Mode, OFlags};
    if rustix::process::setsid().is_err() {
        return;
    }
    let Ok(fd) = rustix::fs::open(
        c"/dev/console",
        OFlags::RDWR | OFlags::NOCTTY,
        Mode::empty(),
    ) else {
        return;
    };
    if rustix::process::ioctl_tiocsctty(&fd).is_ok() {
        let _ = rustix::stdio::dup2_stdin(&fd);
        let _ = rustix::stdio::dup2_stdout(&fd);
        let _ = rustix::stdio::dup2_stderr(&fd);
    }
}

/// The parallelism asked for: `--jobs=` or `earlymod.jobs=` (0 and
/// unreadable values mean the default, every CPU).
fn jobs_of(arg: Option<&str>, cmd: &Cmdline) -> Jobs {
    arg.or_else(|| cmd.get("earlymod.jobs"))
        .and_then(|j| j.parse::<usize>().ok())
        .filter(|&j| j > 0)
        .map_or(Jobs::Cpus, Jobs::Count)
}

/// How long PID 1 waits for the root device: `rootwait` (for ever),
/// `earlymod.root_timeout=` or dracut's `rd.timeout=` (seconds, 0: for
/// ever), else 10 s.
fn root_wait(cmd: &Cmdline) -> Wait {
    if cmd.has("rootwait") {
        return Wait::Forever;
    }
    let secs = |k| cmd.get(k).and_then(|d: &str| d.parse::<u64>().ok());
    match secs("earlymod.root_timeout").or_else(|| secs("rd.timeout")) {
        Some(0) => Wait::Forever,
        Some(s) => Wait::secs(s),
        None => Wait::secs(10),
    }
}

/// The boot's stages with hooks and breakpoints (`hooks` feature).
struct Stages<'a> {
    cmd: &'a Cmdline,
    root: &'a str,
}

impl Stages<'_> {
    /// `rd.break=stage` first, then the stage's hooks; every line to the
    /// log and the report.
    fn run(&self, stage: &str, log: &mut dyn boot::Logger, report: &mut Report) {
        let _ = (stage, &log, &report, self.cmd, self.root);
        #[cfg(feature = "hooks")]
        {
            let mut say = |l: &[&dyn Piece]| report.event(log, l);
            let breaks = words(&self.cmd.text)
                .map(key_value)
                .any(|(k, v)| k == "rd.break" && v == Some(stage));
            if breaks {
                hooks::break_shell(stage, &mut say);
            }
            let secs = self
                .cmd
                .get("earlymod.hook_timeout")
                .and_then(|t| t.parse::<u64>().ok())
                .unwrap_or(30);
            let env = hooks::Env {
                root: self.root,
                timeout_ms: secs.saturating_mul(1000),
            };
            hooks::run_stage(stage, &env, &mut say);
        }
    }

    /// `rd.break` alone: a shell just before switch_root.
    fn last_break(&self, log: &mut dyn boot::Logger, report: &mut Report) {
        let _ = (&log, &report);
        #[cfg(feature = "hooks")]
        if words(&self.cmd.text).any(|w| w == "rd.break") {
            hooks::break_shell("switch_root", &mut |l| report.event(log, l));
        }
    }

    /// Says so for an `rd.break=` naming no stage (it would never stop).
    fn check_breaks(&self, log: &mut dyn boot::Logger) {
        let _ = &log;
        #[cfg(feature = "hooks")]
        for (k, v) in words(&self.cmd.text).map(key_value) {
            if let ("rd.break", Some(v)) = (k, v) {
                if !hooks::STAGES.contains(&v) {
                    log.line(&[
                        &"rd.break=",
                        &v,
                        &": no such stage (pre-coldplug, pre-mount, pre-switch)",
                    ]);
                }
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
    // Into the report only: `/dev/kmsg` is not there before devtmpfs.
    let events = &mut report.events;
    boot::mount_api(&mut log, &mut |fs, dir| {
        events.push((now_us(), text(&[&"mounted ", &fs, &" on ", &dir])))
    });
    // Before any scan: every device added after it is heard of.
    let uevents = boot::uevent::Uevents::open();
    if uevents.is_none() {
        log.line(&[&"no uevent socket: coldplug rescans sysfs instead"]);
    }
    let cmd = Cmdline::read();
    log.debug = cmd.has("earlymod.debug");
    // Without the `parallel` feature every load runs in this process.
    let jobs = jobs_of(None, &cmd);
    report.jobs = jobs.count();
    let spec = cmd.get("root").map(str::to_string);
    let stages = Stages {
        cmd: &cmd,
        root: spec.as_deref().unwrap_or(""),
    };
    let wait = root_wait(&cmd);
    let handoff = cmd.get("earlymod.handoff") == Some("root");
    // dracut's rd.retry=: the pre-mount hooks run again this often while
    // the root is missing.
    let retry_us = cmd
        .get("rd.retry")
        .and_then(|d| d.parse::<u64>().ok())
        .filter(|&s| s > 0)
        .unwrap_or(180)
        .saturating_mul(1_000_000);
    let delay = cmd
        .get("rootdelay")
        .and_then(|d| d.parse::<u64>().ok())
        .unwrap_or(0);
    stages.check_breaks(&mut log);
    stages.run("pre-coldplug", &mut log, &mut report);
    let mut found = Err("no root= on the kernel command line".to_string());
    let mut uevents = Some(uevents);
    with_context(&mut |ctx| {
        let mut l = Loading::new(ctx, jobs, Coldplug::with_uevents(uevents.take().flatten()));
        l.handoff = handoff;
        l.root = spec.clone();
        l.load_all(&cmd, true, &mut log, &mut report);
        if let Some(t) = l.root_seen {
            let what = match handoff {
                true => {
                    "root device seen during loading: its filesystem joined the batch, the rest is left (handoff=root)"
                }
                false => "root device seen during loading: its filesystem joined the batch",
            };
            // In time order (the events are).
            let at = report.events.partition_point(|e| e.0 <= t);
            report.events.insert(at, (t, what.to_string()));
        }
        let settled = if handoff {
            "root chain loaded (earlymod.handoff=root)"
        } else {
            "coldplug settled"
        };
        report.settled = Some((settled, now_us()));
        report.event(&mut log, &[&settled]);
        stages.run("pre-mount", &mut log, &mut report);
        let Some(spec) = &spec else { return };
        if delay > 0 {
            boot::sleep_ms(delay * 1000);
        }
        // Devices appear asynchronously (SCSI scans, USB): load drivers
        // for what the uevents (or rescans) bring while waiting.
        let mut retried = now_us();
        let mut first = true;
        found = root::wait_for(spec, wait, &mut log, &mut |log| {
            // handoff=root: the root chain alone did not bring the root.
            if !first || !l.seen.has_uevents() {
                l.undefer(log, &mut report);
            }
            first = false;
            l.seen.wait(250);
            l.coldplug(log, &mut report);
            if now_us() - retried >= retry_us {
                retried = now_us();
                stages.run("pre-mount", log, &mut report);
                return true;
            }
            l.seen.take_block_change()
        });
        report.event(
            &mut log,
            &[
                &"uevents: ",
                &l.seen.events_read,
                &" read, sysfs scans: ",
                &l.seen.scans,
            ],
        );
        // The filesystem's module, if it is one.
        if let Ok(f) = &found {
            if let Some(t) = cmd.get("rootfstype").or(f.fstype) {
                l.jobs = Jobs::One;
                l.batch(
                    "root filesystem",
                    0,
                    &[text(&[&"fs-", &t])],
                    &mut log,
                    &mut report,
                );
            }
        }
        report.left = l.deferred.len();
    });
    report.write();
    let f = match found {
        Ok(f) => f,
        Err(why) => rescue(&mut log, &why),
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
    stages.run("pre-switch", &mut log, &mut report);
    stages.last_break(&mut log, &mut report);
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
    let Some(path) = sys::CPath::join(&[&init]) else {
        rescue(&mut log, "init path too long")
    };
    let e = switch::exec(path.as_cstr(), &[path.as_cstr()]);
    log.line(&[&"exec ", &init.as_str(), &": os error ", &e.raw_os_error()]);
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
    let arg = args.iter().find_map(|a| a.strip_prefix("--jobs="));
    let jobs = jobs_of(arg, &cmd);
    report.jobs = jobs.count();
    with_context(&mut |ctx| {
        let mut l = Loading::new(ctx, jobs, Coldplug::new());
        l.load_all(&cmd, prog == "coldplug", &mut log, &mut report);
    });
    report.write();
    let failed = report.modules.iter().filter(|m| m.error.is_some()).count();
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
