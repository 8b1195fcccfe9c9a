//! Removing modules: the `rmmod` applet and `modprobe -r`.

use crate::kernel::initstate;
use crate::log::{LOG_ERR, Log};
use crate::sys::{self, CPath};
use earlymod_core::db::DepLine;
use earlymod_core::name::{AliasBuf, ModName, modname, modname_from_path, normalize_alias};
use earlymod_core::probe::{Candidates, InitState, Resolver};

/// `O_NONBLOCK` for `delete_module`: fail instead of waiting for users.
const O_NONBLOCK: i32 = 0o4000;
/// `O_TRUNC` for `delete_module`: force (`-f`).
const O_TRUNC: i32 = 0o1000;

/// `/sys/module/NAME/refcnt`, if readable.
pub fn refcnt(name: &str) -> Option<u32> {
    let path = CPath::join(&["/sys/module/", name, "/refcnt"])?;
    let mut buf = [0u8; 16];
    let b = sys::read_small(path.as_cstr(), &mut buf)?;
    core::str::from_utf8(b).ok()?.trim().parse().ok()
}

/// Calls `f` with each holder of module `name` (`/sys/module/NAME/holders`).
pub fn holders(name: &str, f: &mut dyn FnMut(&str)) {
    if let Some(path) = CPath::join(&["/sys/module/", name, "/holders"]) {
        sys::list_dir(path.as_cstr(), &mut |h, _| {
            if h != "." && h != ".." {
                f(h)
            }
        });
    }
}

/// Why a module cannot be removed now, as kmod words it; `None` when it can.
fn check_removable(log: &Log<'_>, name: &str, builtin: bool) -> bool {
    if builtin {
        log.log(LOG_ERR, format_args!("Module {name} is builtin."));
        return false;
    }
    match initstate(name) {
        InitState::Absent => {
            log.log(
                LOG_ERR,
                format_args!("Module {name} is not currently loaded"),
            );
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
        log.log(LOG_ERR, format_args!("Module {name} is in use by: {users}"));
        return false;
    }
    if refcnt(name).unwrap_or(0) > 0 {
        log.log(LOG_ERR, format_args!("Module {name} is in use"));
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

/// `modprobe -r NAME...`: resolve each name, remove the module (or run its
/// `remove` command), then its now-unused dependencies.
pub fn remove_all(log: &Log<'_>, resolver: &Resolver<'_, '_>, names: &[&str]) -> i32 {
    let mut err = 0;
    for name in names {
        let mut key = AliasBuf::new();
        let mut found = Candidates::new();
        match normalize_alias(name, &mut key).and_then(|_| resolver.lookup(&key, &mut found)) {
            // A corrupt index or a name over a bound: say so (the module
            // may well exist).
            Err(e) if e != earlymod_core::Error::InvalidAlias => {
                log.log(
                    LOG_ERR,
                    format_args!("could not look up '{}': {e}", crate::modprobe::Short(name)),
                );
                err = 1;
                continue;
            }
            Ok(_) if !found.is_empty() => {}
            _ => {
                log.log(LOG_ERR, format_args!("Module {name} not found."));
                err = 1;
                continue;
            }
        }
        for c in found.iter() {
            if let Some(cmd) = c.remove.or_else(|| resolver.cfg.remove_for(&c.name)) {
                if crate::command::run_install(cmd, "").is_err() {
                    err = 1;
                }
                continue;
            }
            let builtin = c.builtin || resolver.is_builtin(&c.name).unwrap_or(false);
            if !check_removable(log, &c.name, builtin) {
                err = 1;
                continue;
            }
            if let Err(e) = delete(&c.name, false) {
                log.log(
                    LOG_ERR,
                    format_args!(
                        "could not remove '{}': {}",
                        c.name,
                        earlymod_core::load::Errno(e.raw_os_error())
                    ),
                );
                err = 1;
                continue;
            }
            // Dependencies nobody uses any more go too (kmod does the same).
            if let Ok(Some(line)) = resolver.db.dep_line(&c.name)
                && let Some(d) = DepLine::parse(line)
            {
                for p in d.deps() {
                    let Ok(dep) = modname_from_path(p) else {
                        continue;
                    };
                    let mut busy = false;
                    holders(&dep, &mut |_| busy = true);
                    if initstate(&dep) == InitState::Live && !busy && refcnt(&dep) == Some(0) {
                        let _ = delete(&dep, false);
                    }
                }
            }
        }
    }
    err
}

/// The `rmmod` applet: `rmmod [-f] NAME|PATH...`.
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
        log.log(LOG_ERR, format_args!("missing module name."));
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
                log.log(LOG_ERR, format_args!("{arg}: {e}"));
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
            log.log(
                LOG_ERR,
                format_args!(
                    "could not remove module {arg}: {}",
                    earlymod_core::load::Errno(e.raw_os_error())
                ),
            );
            err = 1;
        }
    }
    err
}

/// Builtin in the running kernel (listed in its `modules.builtin`, or a
/// `/sys/module` directory with no `initstate`).
fn is_builtin_here(name: &str) -> bool {
    let dir = crate::moddir::ModDir::open(crate::moddir::dirname_for(None, None));
    dir.db().is_builtin(name).unwrap_or(false)
}
