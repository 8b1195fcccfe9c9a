//! The early-boot jobs as calls, for PID 1 (earlymod's own `init` and a
//! program's): mount the API filesystems ([`mount_api`]), load a batch of
//! names, aliases and modaliases as one plan ([`Context::load_batch`]),
//! coldplug until the devices ask for nothing new ([`Context::coldplug`]),
//! wait for the root device ([`root::find`]), mount it ([`root::mount`])
//! and switch to it ([`switch::switch_root`], [`switch::exec`]).
//!
//! These use `alloc` (lists of names, per-module outcomes); the loading
//! itself goes through the same [`Context`] and core policy as `modprobe`.
//!
//! ```no_run
//! use earlymod::boot::{self, Batching, Coldplug, klog::Klog};
//! use earlymod::context::{ConfigStore, Context};
//! use earlymod::{kernel::Live, moddir::{self, ModDir}};
//!
//! let mut log = Klog::new();
//! boot::mount_api(&mut log, &mut |_fs, _dir| {});
//! let dir = ModDir::running();
//! let mut store = ConfigStore::new();
//! let ctx = Context::open(&dir, &moddir::DEFAULT_CONFIG_PATHS, &mut store, &mut |l| log.line(l));
//! let mut kernel = Live::new();
//! let how = Batching::default();
//! let mut names = Vec::new();
//! boot::modules_load_d(&mut names);
//! let first = ctx.load_batch(&names, &mut kernel, &how, &mut log);
//! let mut failed = first.failed();
//! ctx.coldplug(&mut Coldplug::new(), &mut kernel, &how, &mut log, &mut |pass| {
//!     failed += pass.failed()
//! });
//! ```
#![cfg_attr(
    not(all(feature = "init", feature = "coldplug")),
    allow(dead_code, unused_imports)
)]

mod jobs;
pub mod klog;
pub mod root;
pub mod switch;
pub mod uevent;

use alloc::string::{String, ToString};
use alloc::vec::Vec;
use core::cell::RefCell;

use earlymod_core::load::Kernel;
use earlymod_core::modules_load::{MODULES_LOAD_DIRS, modules_load_names};
use earlymod_core::probe::{InitState, KernelState};
use earlymod_core::put;
use earlymod_core::text::{Piece, Sink};
use rustix::fs::Mode;

use crate::context::Context;
use crate::log::text;
use crate::sys::{self, CPath, Kind};
use jobs::Plan;
pub use jobs::{Job, Steer};

/// A rustix error as its `Display` prints it without std.
pub(crate) struct OsError(pub(crate) rustix::io::Errno);

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

/// Sleeps `ms` milliseconds.
pub fn sleep_ms(ms: u64) {
    let _ = rustix::thread::nanosleep(&sys::ms_timespec(ms));
}

/// Where the boot steps say what happens: [`klog::Klog`] (`/dev/kmsg` and
/// the console), or the embedder's own.
pub trait Logger {
    /// A line the user should see (a failure, a milestone).
    fn line(&mut self, msg: &[&dyn Piece]);
    /// A step, for debugging.
    fn debug(&mut self, msg: &[&dyn Piece]) {
        let _ = msg;
    }
    /// `/dev` was just mounted (a logger writing to `/dev/kmsg` opens it).
    fn dev_mounted(&mut self) {}
}

/// Mounts `/proc`, `/sys`, `/dev` (devtmpfs) and `/run` (tmpfs), creating
/// the directories. `mounted(fstype, dir)` hears of each one mounted; a
/// failure is one line to `log` and the rest are still tried; one already
/// mounted (the kernel's devtmpfs) is left alone.
pub fn mount_api(log: &mut dyn Logger, mounted: &mut dyn FnMut(&str, &str)) {
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
            Ok(()) => mounted(fs, dir),
            // The kernel may have mounted devtmpfs already.
            Err(rustix::io::Errno::BUSY) => {}
            Err(e) => log.line(&[&"mount ", &fs, &" on ", &dir, &": ", &OsError(e)]),
        }
        if dir == "/dev" {
            log.dev_mounted();
        }
    }
}

/// `/sys/` + `earlymod_core::devices::BUS_DIR` and `CLASS_DIRS`, spelled
/// out (no run-time joins in PID 1; a test checks they agree).
const SYS_BUS: &core::ffi::CStr = c"/sys/bus";
const SYS_CLASSES: [&str; 1] = ["/sys/class/input"];

/// The `MODALIAS=` values of every device that counts
/// ([`earlymod_core::devices`]: every device on a bus, and the input
/// class), sorted, each once.
pub fn modaliases() -> Vec<String> {
    let mut out = Vec::new();
    let mut dirs: Vec<String> = Vec::new();
    sys::list_dir(SYS_BUS, &mut |n, _| {
        if !n.starts_with('.') {
            dirs.push(text(&[&"/sys/bus/", &n, &"/devices"]));
        }
    });
    dirs.extend(SYS_CLASSES.iter().map(|c| c.to_string()));
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
    out.sort_unstable();
    out.dedup();
    out
}

/// Appends the module names of the modules-load.d files (`/etc`, `/run`,
/// `/usr/local/lib`, `/usr/lib`, `/lib`; a file name in an earlier
/// directory hides the later ones), files in name order, to `out`.
pub fn modules_load_d(out: &mut Vec<String>) {
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

/// How many modules load at a time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Jobs {
    /// One after another, in this process (the only choice for a fake
    /// kernel: parallel loads run in child processes).
    One,
    /// As many as the CPUs this process may run on.
    #[default]
    Cpus,
    /// At most this many (0 counts as 1).
    Count(usize),
}

impl Jobs {
    /// The number of loads at a time: always 1 without the `parallel`
    /// feature.
    pub fn count(self) -> usize {
        #[cfg(not(feature = "parallel"))]
        {
            1
        }
        #[cfg(feature = "parallel")]
        match self {
            Jobs::One => 1,
            Jobs::Count(n) => n.max(1),
            Jobs::Cpus => rustix::thread::sched_getaffinity(None)
                .map_or(1, |s| s.count() as usize)
                .max(1),
        }
    }
}

/// How a batch loads.
#[derive(Debug, Clone, Default)]
pub struct Batching<'a> {
    /// Loads at a time. More than one forks a child process per load, each
    /// with its own copy of the kernel handle.
    pub jobs: Jobs,
    /// Module names (normalised: `_`, not `-`) not loaded when a request
    /// reaches them through an alias (`rd.driver.blacklist=`,
    /// `modprobe.blacklist=`), on top of modprobe.d's blacklist.
    pub blacklist: &'a [String],
    /// Requests whose modules must load even after a handoff
    /// ([`Steer::handoff`]): the ones asked for by name.
    pub must: &'a [String],
}

/// What one batch did: each module it had to load (dependencies
/// included; modules already in the kernel are not in it).
#[derive(Debug, Clone, Default)]
pub struct Batch {
    /// The requests (names, aliases, modaliases) asked for.
    pub requests: usize,
    /// Each module, in the order the plan has them: its name, load time
    /// and error.
    pub modules: Vec<Job>,
    /// The whole batch, in microseconds.
    pub micros: u64,
    /// Modules never started because the caller handed off.
    pub left: Vec<String>,
}

impl Batch {
    /// Modules that failed.
    pub fn failed(&self) -> usize {
        self.modules.iter().filter(|m| m.error.is_some()).count()
    }

    /// Modules loaded.
    pub fn loaded(&self) -> usize {
        self.modules.len() - self.failed()
    }
}

/// The modaliases coldplug has handled, and where new ones come from: the
/// first pass scans sysfs ([`modaliases`]); with a uevent socket
/// ([`Coldplug::with_uevents`]) later passes take the added devices from
/// it, and a socket that lost events brings one more scan.
#[derive(Default)]
pub struct Coldplug {
    seen: Vec<String>,
    events: Option<uevent::Uevents>,
    scanned: bool,
    block: bool,
    /// Modaliases drained by [`Coldplug::poll_block`], for the next pass.
    pending: Vec<String>,
    rescan: bool,
    /// Sysfs scans made (the first, and one per overflow).
    pub scans: usize,
    /// Uevents read.
    pub events_read: usize,
}

impl Coldplug {
    /// Nothing handled yet; every pass scans sysfs.
    pub fn new() -> Coldplug {
        Coldplug::default()
    }

    /// Nothing handled yet; after the first scan, new devices come from
    /// `events` (opened before the scan, so nothing added after it is
    /// missed).
    pub fn with_uevents(events: Option<uevent::Uevents>) -> Coldplug {
        Coldplug {
            events,
            ..Coldplug::default()
        }
    }

    /// Whether a uevent socket feeds this coldplug.
    pub fn has_uevents(&self) -> bool {
        self.events.is_some()
    }

    /// The modaliases of the devices added since the last call (all
    /// present devices the first time) that no pass has asked for yet
    /// (now counted as handled).
    pub fn new_modaliases(&mut self) -> Vec<String> {
        self.poll_block();
        let mut fresh = core::mem::take(&mut self.pending);
        let scan = !self.scanned || core::mem::take(&mut self.rescan);
        if scan || self.events.is_none() {
            self.scanned = true;
            self.scans += 1;
            // The scan covers every queued event.
            fresh = modaliases();
            self.block = true;
        }
        let mut new: Vec<String> = Vec::new();
        for a in fresh {
            if !self.seen.contains(&a) && !new.contains(&a) {
                new.push(a);
            }
        }
        self.seen.extend(new.iter().cloned());
        new
    }

    /// Reads the queued uevents (their modaliases wait for the next pass)
    /// and says whether a block device came or changed among them (false
    /// without a socket).
    pub fn poll_block(&mut self) -> bool {
        let Some(ev) = &mut self.events else {
            return false;
        };
        let d = ev.drain();
        self.events_read += d.events;
        self.rescan |= d.overflow;
        if self.pending.len() + d.modaliases.len() > uevent::MAX_PENDING {
            self.rescan = true;
        } else {
            self.pending.extend(d.modaliases);
        }
        self.block |= d.block;
        d.block
    }

    /// Waits up to `ms` milliseconds for a device event (sleeps that long
    /// without a socket); true if one came.
    pub fn wait(&mut self, ms: u64) -> bool {
        match &self.events {
            Some(ev) => ev.wait(ms),
            None => {
                sleep_ms(ms);
                true
            }
        }
    }

    /// Whether a block device came or changed since the last call (always
    /// true after a sysfs scan, and without a socket).
    pub fn take_block_change(&mut self) -> bool {
        core::mem::take(&mut self.block) || self.events.is_none()
    }
}

/// One kernel handle, shared by the plan (its loaded-state questions) and
/// the runner (its loads), never at the same time.
struct Shared<'k, K>(&'k RefCell<&'k mut K>);

impl<K: Kernel> KernelState for Shared<'_, K> {
    fn initstate(&self, name: &str) -> InitState {
        self.0.borrow().initstate(name)
    }
}

impl Context<'_> {
    /// Loads `requests` (module names, aliases, modaliases: what
    /// `modprobe -b REQUEST` would load for each) as one plan: every
    /// module once, dependencies before dependents, softdeps in order,
    /// up to `how.jobs` loads at a time, each through the loader's policy
    /// with its options. A request that finds nothing is no error (most
    /// modaliases have no driver); a failure is one line to `log` and the
    /// rest load.
    pub fn load_batch<K: Kernel, S: AsRef<str>>(
        &self,
        requests: &[S],
        kernel: &mut K,
        how: &Batching<'_>,
        log: &mut dyn Logger,
    ) -> Batch {
        self.load_batch_with(requests, kernel, how, log, &mut |_| Steer::default())
    }

    /// [`Context::load_batch`], asking `more` after every finished load
    /// for requests to add to the running plan (PID 1 adds the root's
    /// filesystem as soon as the root device shows up, so it loads beside
    /// the other devices' drivers instead of after them) and whether to
    /// hand off: then only the modules of `how.must` and of added requests
    /// still start, the others are [`Batch::left`].
    pub fn load_batch_with<K: Kernel, S: AsRef<str>>(
        &self,
        requests: &[S],
        kernel: &mut K,
        how: &Batching<'_>,
        log: &mut dyn Logger,
        more: &mut dyn FnMut(&mut dyn Logger) -> Steer,
    ) -> Batch {
        let t0 = now_us();
        let r = self.resolver();
        let mut plan = Plan::default();
        plan.blacklist = how.blacklist.to_vec();
        let _ = kernel.kernel_compression();
        let cell = RefCell::new(kernel);
        let state = Shared(&cell);
        for q in requests {
            let must = how.must.iter().any(|m| m == q.as_ref());
            plan.add_with(&r, &state, q.as_ref(), must, log);
        }
        let mut runner = jobs::KernelRunner::new(&cell, &self.dir().dirname);
        let mut added = 0;
        plan.run_with(&r, &state, how.jobs.count(), &mut runner, log, &mut |log| {
            let s = more(log);
            added += s.add.len();
            s
        });
        Batch {
            requests: requests.len() + added,
            modules: plan.jobs,
            micros: now_us() - t0,
            left: plan.left,
        }
    }

    /// Coldplug: batches of the devices' new modaliases
    /// ([`Coldplug::new_modaliases`]) until a pass finds none (a driver's
    /// devices can bring new ones: a PCI bridge, virtio's bus). `pass`
    /// gets each pass's batch; returns the number of passes.
    pub fn coldplug<K: Kernel>(
        &self,
        seen: &mut Coldplug,
        kernel: &mut K,
        how: &Batching<'_>,
        log: &mut dyn Logger,
        pass: &mut dyn FnMut(Batch),
    ) -> usize {
        let mut passes = 0;
        loop {
            let new = seen.new_modaliases();
            if new.is_empty() {
                return passes;
            }
            passes += 1;
            pass(self.load_batch(&new, kernel, how, log));
        }
    }
}

#[cfg(test)]
mod tests {

    #[test]
    fn the_device_rule_is_cores() {
        use earlymod_core::devices;
        assert_eq!(
            super::SYS_BUS.to_str().unwrap(),
            alloc::format!("/sys/{}", devices::BUS_DIR)
        );
        let classes: alloc::vec::Vec<alloc::string::String> = devices::CLASS_DIRS
            .iter()
            .map(|c| alloc::format!("/sys/{c}"))
            .collect();
        assert_eq!(super::SYS_CLASSES.to_vec(), classes);
        assert_eq!(devices::BUS_DEVICES, "devices");
    }

    extern crate std;
    use super::*;
    use crate::context::{ConfigStore, Context};
    use crate::moddir::{DirName, ModDir};
    use earlymod_core::fake::{Call, FakeKernel};
    use earlymod_core::load::errno;
    use std::format;

    /// Lines a test logger heard.
    #[derive(Default)]
    struct Lines(Vec<String>);

    impl Logger for Lines {
        fn line(&mut self, msg: &[&dyn Piece]) {
            self.0.push(text(msg));
        }
    }

    /// The batch call on a fake kernel: one plan, dependencies first, a
    /// failed dependency keeps its dependent out with the reason, the rest
    /// load; removal by name through the same context.
    #[test]
    fn load_batch_and_remove_on_a_fake_kernel() {
        let base = std::env::temp_dir().join(format!("earlymod-boot-{}", std::process::id()));
        std::fs::create_dir_all(&base).unwrap();
        std::fs::write(
            base.join("modules.dep"),
            "kernel/a.ko: kernel/b.ko kernel/d.ko\nkernel/b.ko:\nkernel/c.ko:\nkernel/d.ko:\nkernel/e.ko: kernel/d.ko\n",
        )
        .unwrap();
        std::fs::write(base.join("modules.alias"), "alias pci:v1234* c\n").unwrap();
        let dirname = base.to_str().unwrap();
        let dir = ModDir::open(DirName::try_from(dirname).unwrap());
        let mut store = ConfigStore::new();
        let ctx = Context::open(&dir, &[], &mut store, &mut |_| {});
        let paths: Vec<String> = ["a", "b", "c", "d", "e"]
            .iter()
            .map(|m| format!("{dirname}/kernel/{m}.ko"))
            .collect();
        let files: Vec<(&str, &[u8])> = paths
            .iter()
            .map(|p| (p.as_str(), &b"\x7fELF"[..]))
            .collect();
        let mut kernel = FakeKernel::new(&files).failing(&[("b", errno::ENOEXEC)]);
        let mut log = Lines::default();
        let how = Batching {
            jobs: Jobs::One,
            ..Batching::default()
        };
        let requests = ["a", "pci:v1234d0001", "nothing-here", "e"];
        let batch = ctx.load_batch(&requests, &mut kernel, &how, &mut log);
        assert_eq!(batch.requests, 4);
        let outcome = |name: &str| {
            let m = batch.modules.iter().find(|m| m.name == name).unwrap();
            m.error.clone()
        };
        assert_eq!(outcome("c"), None);
        assert_eq!(outcome("d"), None);
        assert_eq!(outcome("e"), None);
        assert!(outcome("b").unwrap().starts_with("Invalid module format"));
        assert_eq!(
            outcome("a").as_deref(),
            Some("not loaded: its dependency b failed")
        );
        assert_eq!((batch.loaded(), batch.failed()), (3, 2));
        assert_eq!(kernel.live(), ["d", "c", "e"]);
        assert!(
            log.0
                .iter()
                .any(|l| l.starts_with("b: Invalid module format"))
        );

        // A handoff after the first load: only what must load (e and its
        // dependency d) still starts; the rest is left, in the plan's order.
        let mut kernel = FakeKernel::new(&files);
        let must = ["e".to_string()];
        let how = Batching {
            jobs: Jobs::One,
            must: &must,
            ..Batching::default()
        };
        let mut steers = 0;
        let batch = ctx.load_batch_with(&["c", "a", "e"], &mut kernel, &how, &mut log, &mut |_| {
            steers += 1;
            Steer {
                add: if steers == 1 {
                    alloc::vec!["x".to_string()]
                } else {
                    Vec::new()
                },
                handoff: true,
            }
        });
        assert_eq!(kernel.live(), ["c", "d", "e"]);
        assert_eq!(batch.left, ["b", "a"]);
        assert_eq!(batch.requests, 4);
        assert_eq!(batch.failed(), 0);

        // Loaded modules are not planned again.
        let again = ctx.load_batch(&["e", "c"], &mut kernel, &how, &mut log);
        assert!(again.modules.is_empty());

        // modprobe -r e: e, then its dependency d nothing else uses.
        let done = ctx.remove_named("e", Default::default(), &mut kernel, &mut |_| {});
        assert_eq!(done.map(|p| (p.found, p.failed)), Ok((1, 0)));
        assert_eq!(kernel.live(), ["c"]);
        let deleted: Vec<&str> = kernel
            .calls()
            .iter()
            .filter_map(|c| match c {
                Call::Delete { name, .. } => Some(name.as_str()),
                _ => None,
            })
            .collect();
        assert_eq!(deleted, ["e", "d"]);
        let miss = ctx.remove_named("nothing", Default::default(), &mut kernel, &mut |_| {});
        assert_eq!(miss.map(|p| p.found), Ok(0));
        let _ = std::fs::remove_dir_all(&base);
    }
}
