//! earlymod's applets over rustix, `no_std` and heap-free on the loading
//! path: `modprobe`, `insmod`, `rmmod`, `lsmod`, and `modinfo` (which uses
//! `alloc`). The static libc-free binary (`src/bin/static.rs`) and the host
//! binary both call [`dispatch`].
#![no_std]
#![deny(missing_docs)]

extern crate alloc;

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
