//! Removing modules: the `rmmod` applet and `modprobe -r`.

use crate::context::Context;
use crate::kernel::{holders, initstate, refcnt};
use crate::log::{LOG_ERR, Log};
use crate::sys::{self, CPath};
use earlymod_core::load::{Errno, LoadError};
use earlymod_core::name::AliasBuf;
#[cfg(feature = "rmmod")]
use earlymod_core::name::{ModName, modname, modname_from_path};
use earlymod_core::probe::{Candidates, InitState};
use earlymod_core::put;
use earlymod_core::remove::{Event, RemoveFlags, Remover, SysState};

/// `O_NONBLOCK` for `delete_module`: fail instead of waiting for users.
const O_NONBLOCK: i32 = 0o4000;
/// `O_TRUNC` for `delete_module`: force (`-f`).
const O_TRUNC: i32 = 0o1000;

/// Why a module cannot be removed now, as kmod words it; `None` when it can.
#[cfg(feature = "rmmod")]
fn check_removable(log: &Log<'_>, name: &str, builtin: bool) -> bool {
    if builtin {
        log.say(LOG_ERR, &[&"Module ", &name, &" is builtin."]);
        return false;
    }
    match initstate(name) {
        InitState::Absent => {
            log.say(LOG_ERR, &[&"Module ", &name, &" is not currently loaded"]);
            return false;
        }
        InitState::Transient | InitState::Live => {}
    }
    // The holders, as many as fit, then "..." (never a silent cut).
    let mut users: heapless::String<512> = heapless::String::new();
    let mut cut = false;
    holders(name, &mut |h| {
        let room = users.capacity() - users.len();
        if cut || h.len() + 1 + 4 > room {
            if !cut {
                let _ = users.push_str(" ...");
            }
            cut = true;
            return;
        }
        if !users.is_empty() {
            let _ = users.push(' ');
        }
        let _ = users.push_str(h);
    });
    if !users.is_empty() {
        log.say(
            LOG_ERR,
            &[&"Module ", &name, &" is in use by: ", &users.as_str()],
        );
        return false;
    }
    if refcnt(name).unwrap_or(0) > 0 {
        log.say(LOG_ERR, &[&"Module ", &name, &" is in use"]);
        return false;
    }
    true
}

fn delete(name: &str, force: bool) -> Result<(), rustix::io::Errno> {
    let Some(c) = CPath::join(&[name]) else {
        return Err(rustix::io::Errno::NAMETOOLONG);
    };
    rustix::system::delete_module(c.as_cstr(), O_NONBLOCK | if force { O_TRUNC } else { 0 })
}

/// The running kernel for `modprobe -r` ([`Context::remove`]): sysfs,
/// `delete_module`, the shell for `remove` commands, the monotonic clock.
pub struct LiveRemover;

impl Remover for LiveRemover {
    fn state(&self, name: &str) -> SysState {
        match initstate(name) {
            InitState::Absent => SysState::Absent,
            InitState::Live | InitState::Transient => SysState::Loaded,
        }
    }
    fn refcnt(&self, name: &str) -> Option<i64> {
        refcnt(name).map(i64::from)
    }
    fn holders(&self, name: &str, f: &mut dyn FnMut(&str)) {
        holders(name, f)
    }
    fn delete_module(&mut self, name: &str, force: bool) -> Result<(), Errno> {
        delete(name, force).map_err(|e| Errno(e.raw_os_error()))
    }
    fn run_command(&mut self, command: &str, _name: &str) -> Result<(), i32> {
        crate::command::run_install(command, "").map_err(|e| match e {
            LoadError::Command(code) => code,
            _ => -1,
        })
    }
    fn now_ms(&self) -> u64 {
        let t = rustix::time::clock_gettime(rustix::time::ClockId::Monotonic);
        (t.tv_sec as u64).saturating_mul(1000) + (t.tv_nsec as u64) / 1_000_000
    }
    fn sleep_until_ms(&mut self, until: u64) {
        let ms = until.saturating_sub(self.now_ms());
        let _ = rustix::thread::nanosleep(&crate::sys::ms_timespec(ms));
    }
}

/// How `modprobe -r` prints: `rmmod`/`remove` lines with `-v` or `-D`,
/// "not found" and the like at `priority` (FATAL, or WARNING with `-a`).
pub struct RemoveOutput<'l> {
    /// The logger.
    pub log: &'l Log<'l>,
    /// Print what is removed (`-D`, or `-v`).
    pub show: bool,
    /// kmod's `log_priority` for its LOG() lines.
    pub priority: i32,
}

/// `modprobe -r NAME...`: resolve each name and remove what it names as
/// kmod 34 does ([`earlymod_core::remove`]); the exit code.
pub fn remove_all(
    out: &RemoveOutput<'_>,
    ctx: &Context<'_>,
    names: &[&str],
    flags: RemoveFlags,
) -> i32 {
    let log = out.log;
    let mut stdout = sys::Out::stdout();
    let mut err = 0;
    for name in names {
        let mut key = AliasBuf::new();
        let mut found = Candidates::new();
        match ctx.lookup(name, &mut key, &mut found) {
            // A corrupt index or a name over a bound: say so (the module
            // may well exist).
            Err(e) => {
                log.say(
                    LOG_ERR,
                    &[
                        &"could not look up '",
                        &crate::modprobe::Short(name),
                        &"': ",
                        &e,
                    ],
                );
                err = 1;
                continue;
            }
            Ok(_) if !found.is_empty() => {}
            _ => {
                log.say(out.priority, &[&"Module ", name, &" not found."]);
                err = 1;
                continue;
            }
        }
        for c in found.iter() {
            let mut on_event = |e: Event<'_>| match e {
                Event::Rmmod(m) if out.show => {
                    put!(&mut stdout; "rmmod ", m, "\n");
                }
                Event::Command(cmd) if out.show => {
                    stdout.bytes(b"remove ");
                    // kmod shows the command with $CMDLINE_OPTS made empty.
                    for part in cmd.split("$CMDLINE_OPTS") {
                        stdout.bytes(part.as_bytes());
                    }
                    stdout.bytes(b"\n");
                }
                Event::Rmmod(_) | Event::Command(_) => {}
                Event::NotInKernel(m) => {
                    stdout.flush();
                    log.say(out.priority, &[&"Module ", &m, &" is not in kernel."])
                }
                Event::Builtin(m) => {
                    stdout.flush();
                    log.say(out.priority, &[&"Module ", &m, &" is builtin."])
                }
                Event::InUse(m) => {
                    stdout.flush();
                    log.say(out.priority, &[&"Module ", &m, &" is in use."])
                }
                Event::RemoveFailed(m, e) => {
                    stdout.flush();
                    log.say(LOG_ERR, &[&"could not remove '", &m, &"': ", &e])
                }
                Event::CommandFailed(m) => {
                    stdout.flush();
                    log.say(out.priority, &[&"Error running remove command for ", &m])
                }
            };
            let done = ctx.remove(c, flags, &mut LiveRemover, &mut on_event);
            stdout.flush();
            match done {
                Ok(true) => {}
                Ok(false) => {
                    err = 1;
                    break;
                }
                Err(e) => {
                    log.say(
                        LOG_ERR,
                        &[&"could not remove '", &c.name.as_str(), &"': ", &e],
                    );
                    err = 1;
                    break;
                }
            }
        }
    }
    err
}

/// The `rmmod` applet: `rmmod [-f] NAME|PATH...`.
#[cfg(feature = "rmmod")]
pub fn main(prog: &str, args: &mut [&str]) -> i32 {
    let (force, operands) =
        match crate::force_options(prog, args, "modulename ...", "forces a module unload") {
            Ok(r) => r,
            Err(code) => return code,
        };
    let log = Log {
        prog,
        verbose: crate::log::LOG_WARNING,
    };
    if operands.is_empty() {
        log.say(LOG_ERR, &[&"missing module name."]);
        return 1;
    }
    let mut err = 0;
    for arg in operands.iter() {
        let name: ModName = match if arg.contains('/') {
            modname_from_path(arg)
        } else {
            modname(arg)
        } {
            Ok(n) => n,
            Err(e) => {
                log.say(LOG_ERR, &[arg, &": ", &e]);
                err = 1;
                continue;
            }
        };
        let builtin = is_builtin_here(&name);
        if !force && !check_removable(&log, &name, builtin) {
            err = 1;
            continue;
        }
        if let Err(e) = delete(&name, force) {
            log.say(
                LOG_ERR,
                &[
                    &"could not remove module ",
                    arg,
                    &": ",
                    &Errno(e.raw_os_error()),
                ],
            );
            err = 1;
        }
    }
    err
}

#[cfg(feature = "rmmod")]
/// Builtin in the running kernel (listed in its `modules.builtin`, or a
/// `/sys/module` directory with no `initstate`).
fn is_builtin_here(name: &str) -> bool {
    let dir = crate::moddir::ModDir::open(crate::moddir::dirname_for(None, None));
    dir.db().is_builtin(name).unwrap_or(false)
}
