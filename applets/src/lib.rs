//! earlymod's applets over rustix, `no_std` and heap-free on the loading
//! path: `modprobe`, `insmod`, `rmmod`, `lsmod`, and `modinfo` (which uses
//! `alloc`). The static libc-free binary (`src/bin/static.rs`) and the host
//! binary both call [`dispatch`].
//!
//! # Embedding
//!
//! The applets are thin users of a library a program can call itself, the
//! way programs use libkmod. The pipeline:
//!
//! 1. [`moddir::ModDir`] maps a module directory's indexes
//!    (`modules.dep.bin`, `modules.alias.bin`, ...; zero-copy readers in
//!    `earlymod_core::index`);
//! 2. [`context::Context`] adds modprobe.d and the kernel command line;
//! 3. [`context::Context::lookup`] finds the modules a name or alias means,
//!    in modprobe's order;
//! 4. [`context::Context::probe`] builds each one's probe list
//!    (dependencies, softdeps, install commands, options) and hands it to a
//!    kernel: [`kernel::Live`] for the real one, or
//!    `earlymod_core::fake::FakeKernel` in tests.
//!
//! Load a module and what it needs ([`context::Context::modprobe`] is
//! lookup and probe in one call):
//!
//! ```no_run
//! use earlymod::context::{ConfigStore, Context, Event, Options};
//! use earlymod::{kernel::Live, moddir::{self, ModDir}};
//!
//! let dir = ModDir::running();
//! let mut store = ConfigStore::new();
//! let ctx = Context::open(&dir, &moddir::DEFAULT_CONFIG_PATHS, &mut store, &mut |_| {});
//! let done = ctx.modprobe("ext4", &mut Live::new(), &Options::default(), &mut |ev| {
//!     if let Event::Failed { step, .. } = ev {
//!         let _ = step.name.as_str(); // the module that failed, and `error` why
//!     }
//! });
//! assert!(matches!(done, Ok(p) if p.found > 0 && p.failed == 0));
//! ```
//!
//! The same on the host, against a fake kernel, and its removal (this
//! example runs):
//!
//! ```
//! use earlymod::context::{ConfigStore, Context, Options};
//! use earlymod::moddir::{DirName, ModDir};
//! use earlymod_core::fake::FakeKernel;
//!
//! let root = std::env::temp_dir().join(format!("earlymod-doc-{}", std::process::id()));
//! std::fs::create_dir_all(&root).unwrap();
//! std::fs::write(root.join("modules.dep"), "kernel/b.ko: kernel/a.ko\nkernel/a.ko:\n").unwrap();
//! let dirname = root.to_str().unwrap();
//! let dir = ModDir::open(DirName::try_from(dirname).unwrap());
//! let mut store = ConfigStore::new();
//! let ctx = Context::open(&dir, &[], &mut store, &mut |_| {});
//! let (a, b) = (format!("{dirname}/kernel/a.ko"), format!("{dirname}/kernel/b.ko"));
//! let files: &[(&str, &[u8])] = &[(&a, b"\x7fELF"), (&b, b"\x7fELF")];
//! let mut kernel = FakeKernel::new(files);
//! ctx.modprobe("b", &mut kernel, &Options::default(), &mut |_| {}).unwrap();
//! assert_eq!(kernel.live(), ["a", "b"]);
//! // modprobe -r: b, then a (nothing else uses it); the fake is a remover.
//! ctx.remove_named("b", Default::default(), &mut kernel, &mut |_| {}).unwrap();
//! assert!(kernel.live().is_empty());
//! std::fs::remove_dir_all(&root).unwrap();
//! ```
//!
//! List what the running kernel has ([`kernel::Loaded`]), as `lsmod` does:
//!
//! ```no_run
//! use earlymod::kernel::{Loaded, refcnt};
//!
//! Loaded::open()?.for_each(&mut |name, size| {
//!     let _ = (name, size, refcnt(name));
//! })?;
//! # Ok::<(), earlymod_core::load::Errno>(())
//! ```
//!
//! Remove a module and the dependencies nothing else uses, as
//! `modprobe -r` does ([`context::Context::remove_named`]; the fake kernel
//! is a remover too):
//!
//! ```no_run
//! use earlymod::context::{ConfigStore, Context};
//! use earlymod::{moddir::{self, ModDir}, rmmod::LiveRemover};
//!
//! let dir = ModDir::running();
//! let mut store = ConfigStore::new();
//! let ctx = Context::open(&dir, &moddir::DEFAULT_CONFIG_PATHS, &mut store, &mut |_| {});
//! let done = ctx.remove_named("ext4", Default::default(), &mut LiveRemover, &mut |_| {});
//! assert!(matches!(done, Ok(p) if p.found == 1 && p.failed == 0));
//! ```
//!
//! A module's `.modinfo` as data, as `modinfo` finds it (feature
//! `modinfo`; [`context::Context::info`]):
//!
//! ```no_run
//! # use earlymod::context::{ConfigStore, Context};
//! # use earlymod::moddir::{self, ModDir};
//! # let dir = ModDir::running();
//! # let mut store = ConfigStore::new();
//! # let ctx = Context::open(&dir, &moddir::DEFAULT_CONFIG_PATHS, &mut store, &mut |_| {});
//! ctx.info("btrfs", &mut |module, entries| {
//!     for e in entries.unwrap_or_default() {
//!         let _ = (module, &e.key, &e.value); // "license", "GPL", ...
//!     }
//! })?;
//! # Ok::<(), earlymod_core::Error>(())
//! ```
//!
//! PID 1's jobs — mount the API filesystems, load modules-load.d as one
//! parallel plan, coldplug, wait for the root device, switch to it — are
//! calls in [`boot`] (features `init`/`coldplug`); `examples/pid1.rs` is a
//! whole custom PID 1 built from them, and `examples/agent.rs` a
//! long-running agent that loads modules on request.
#![no_std]
#![deny(missing_docs)]

extern crate alloc;

#[cfg(any(feature = "init", feature = "coldplug"))]
pub mod boot;
pub mod command;
pub mod context;
pub mod decode;
#[cfg(any(feature = "init", feature = "coldplug"))]
pub mod init;
pub mod insmod;
pub mod kernel;
pub mod log;
#[cfg(feature = "lsmod")]
pub mod lsmod;
pub mod moddir;
#[cfg(feature = "modinfo")]
pub mod modinfo;
pub mod modprobe;
pub mod rmmod;
pub mod showconfig;
pub mod sys;

/// The applets this build has (its cargo features).
pub const APPLETS: &[&str] = &[
    "modprobe",
    "insmod",
    #[cfg(feature = "rmmod")]
    "rmmod",
    #[cfg(feature = "lsmod")]
    "lsmod",
    #[cfg(feature = "modinfo")]
    "modinfo",
    #[cfg(feature = "init")]
    "init",
    #[cfg(feature = "coldplug")]
    "coldplug",
    #[cfg(feature = "coldplug")]
    "load-config",
    #[cfg(feature = "init")]
    "report",
];

/// The applet for `argv[0]`'s base name, or `None`.
pub fn applet_of(argv0: &str) -> Option<&'static str> {
    let base = argv0.rsplit('/').next().unwrap_or(argv0);
    APPLETS.iter().copied().find(|a| *a == base)
}

/// What the applets take from the environment.
#[derive(Clone, Copy, Default)]
pub struct Env<'a> {
    /// `MODPROBE_OPTIONS` (modprobe).
    pub modprobe_options: Option<&'a str>,
    /// `PWD` (modinfo makes relative paths absolute with it, as glibc's
    /// `get_current_dir_name` does).
    pub pwd: Option<&'a str>,
}

/// Runs applet `applet` with `args` (without the applet word); `None` when
/// there is no such applet.
pub fn dispatch<'a>(applet: &str, args: &mut [&'a str], env: Env<'a>) -> Option<i32> {
    let _ = &env;
    Some(match applet {
        "modprobe" => modprobe::main("modprobe", args, env.modprobe_options),
        #[cfg(feature = "modinfo")]
        "modinfo" => modinfo::main(args, env.pwd),
        "insmod" => insmod::main("insmod", args),
        #[cfg(feature = "rmmod")]
        "rmmod" => rmmod::main("rmmod", args),
        #[cfg(feature = "lsmod")]
        "lsmod" => lsmod::main("lsmod"),
        #[cfg(feature = "init")]
        "init" => init::init_main(),
        #[cfg(feature = "coldplug")]
        "coldplug" | "load-config" => init::helper_main(applet, args),
        #[cfg(feature = "init")]
        "report" => init::report_main(),
        _ => return None,
    })
}

/// The options kmod's `insmod` and `rmmod` share: `-f -s -v -V -h`.
const FORCE_OPTS: &[earlymod_core::getopt::Opt] = &[
    earlymod_core::getopt::Opt::new(Some('f'), &["force"], false, "force"),
    earlymod_core::getopt::Opt::new(Some('s'), &["syslog"], false, "syslog"),
    earlymod_core::getopt::Opt::new(Some('v'), &["verbose"], false, "verbose"),
    earlymod_core::getopt::Opt::new(Some('V'), &["version"], false, "version"),
    earlymod_core::getopt::Opt::new(Some('h'), &["help"], false, "help"),
];

/// kmod's `insmod`/`rmmod` option handling: `Ok((force, operands))`, or
/// the exit code once `-h`/`-V` printed or a bad option was reported.
pub(crate) fn force_options<'a, 's>(
    prog: &str,
    args: &'s mut [&'a str],
    operands: &str,
    force: &str,
) -> Result<(bool, &'s [&'a str]), i32> {
    let p = earlymod_core::getopt::parse(args, FORCE_OPTS);
    let mut forced = false;
    for h in p.hits.iter() {
        match h.id {
            "force" => forced = true,
            "help" | "version" => return Err(help_or_version(h.id, prog, operands, force)),
            _ => {}
        }
    }
    if let Some(e) = p.error {
        earlymod_core::put!(&mut sys::Out::stderr(); e.show(prog, FORCE_OPTS), "\n");
        return Err(1);
    }
    Ok((forced, p.operands))
}

/// `-h` (usage with `operands` and what `-f` does) or `-V`; exit code 0.
fn help_or_version(id: &str, prog: &str, operands: &str, force: &str) -> i32 {
    let mut out = sys::Out::stdout();
    if id == "help" {
        earlymod_core::put!(&mut out;
            "Usage:\n\t", prog, " [options] ", operands, "\nOptions:\n\t-f, --force       ", force,
            "\n\t-v, --verbose     print messages\n\t-V, --version     show version\n\t-h, --help        show this help\n"
        );
    } else {
        out.bytes(concat!("earlymod version ", env!("CARGO_PKG_VERSION"), "\n").as_bytes());
    }
    0
}
