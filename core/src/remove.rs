//! `modprobe -r`: kmod 34's removal of one module (`rmmod_do_module`) —
//! post-softdeps, then holders (`--remove-holders`), the module itself
//! (its `remove` command or `delete_module`, after the use-count check),
//! the dependencies nobody uses any more, then pre-softdeps — behind the
//! [`Remover`] trait, so the whole policy runs against a fake kernel in
//! tests and a dry run (`-n`, `-D`) provably never removes anything.

use crate::db::DepLine;
use crate::error::{Error, Result};
use crate::load::Errno;
use crate::name::{ModName, modname, modname_from_path};
use crate::probe::{Candidate, MAX_CANDIDATES, MAX_SOFTDEP_DEPTH, NameArena, Resolver};

const EAGAIN: i32 = 11;
const EEXIST: i32 = 17;

/// Most holders of one module taken into account.
pub const MAX_HOLDERS: usize = 64;

/// A module's state in sysfs as libkmod reads it for removal.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SysState {
    /// In the kernel (`live`, `coming`, `going`, or a directory without
    /// `initstate`).
    Loaded,
    /// Not in the kernel.
    Absent,
}

/// What removal needs from the running kernel.
pub trait Remover {
    /// Whether module `name` is in the kernel.
    fn state(&self, name: &str) -> SysState;
    /// `/sys/module/NAME/refcnt`; `None` when it cannot be read.
    fn refcnt(&self, name: &str) -> Option<i64>;
    /// Calls `f` with each holder of `name` (`/sys/module/NAME/holders`),
    /// in directory order.
    fn holders(&self, name: &str, f: &mut dyn FnMut(&str));
    /// One `delete_module(name, O_NONBLOCK | (force ? O_TRUNC : 0))`.
    fn delete_module(&mut self, name: &str, force: bool) -> core::result::Result<(), Errno>;
    /// Runs a `remove` command for module `name`; `Err(status)` when it
    /// failed.
    fn run_command(&mut self, command: &str, name: &str) -> core::result::Result<(), i32>;
    /// Milliseconds of a monotonic clock (`--wait`).
    fn now_ms(&self) -> u64;
    /// Sleeps until [`Remover::now_ms`] reads `until` (`--wait`).
    fn sleep_until_ms(&mut self, until: u64);
}

/// How `modprobe -r` was asked to remove.
#[derive(Debug, Clone, Copy, Default)]
pub struct RemoveFlags {
    /// `-n`/`-D`: say what would be done, do nothing.
    pub dry_run: bool,
    /// `-D`: do not look at the kernel's state.
    pub ignore_loaded: bool,
    /// `-i`: no `remove` commands, no softdeps.
    pub ignore_commands: bool,
    /// `--first-time`: a module not in the kernel is an error.
    pub first_time: bool,
    /// `--remove-holders`: remove the modules holding the target first.
    pub remove_holders: bool,
    /// `-f`: `O_TRUNC`.
    pub force: bool,
    /// `--wait=MSEC`: retry a busy module (EAGAIN) for this long.
    pub wait_ms: u64,
}

/// What removal tells the user, in order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Event<'e> {
    /// `rmmod NAME` (printed with `-v` or `-D`).
    Rmmod(&'e str),
    /// `remove COMMAND` (printed with `-v` or `-D`).
    Command(&'e str),
    /// "Module NAME is not in kernel." (`--first-time`).
    NotInKernel(&'e str),
    /// "Module NAME is builtin."
    Builtin(&'e str),
    /// "Module NAME is in use."
    InUse(&'e str),
    /// "could not remove 'NAME': ERRNO".
    RemoveFailed(&'e str, Errno),
    /// "Error running remove command for NAME".
    CommandFailed(&'e str),
}

/// Removes `target` as `modprobe -r` does. `Ok(false)` when it failed
/// (the reason went to `ev`); `Err` for an index fault or a bound.
pub fn remove(
    resolver: &Resolver<'_, '_>,
    target: &Candidate<'_>,
    flags: RemoveFlags,
    kernel: &mut dyn Remover,
    ev: &mut dyn FnMut(Event<'_>),
) -> Result<bool> {
    let arena = NameArena::new();
    let mut r = Removal {
        resolver,
        flags,
        kernel,
        ev,
        arena: &arena,
    };
    r.module(target, flags.remove_holders, false, 0)
}

struct Removal<'x, 'r, 'a> {
    resolver: &'x Resolver<'r, 'a>,
    flags: RemoveFlags,
    kernel: &'x mut dyn Remover,
    ev: &'x mut dyn FnMut(Event<'_>),
    arena: &'x NameArena,
}

impl Removal<'_, '_, '_> {
    /// kmod's `rmmod_do_module`.
    fn module(
        &mut self,
        m: &Candidate<'_>,
        remove_holders: bool,
        ignore_builtin: bool,
        depth: usize,
    ) -> Result<bool> {
        if depth > MAX_SOFTDEP_DEPTH {
            return Err(Error::TooDeep);
        }
        let name = m.name.as_str();
        let mut pre: heapless::Vec<Candidate<'_>, MAX_CANDIDATES> = heapless::Vec::new();
        let mut post: heapless::Vec<Candidate<'_>, MAX_CANDIDATES> = heapless::Vec::new();
        let mut cmd = None;
        if !self.flags.ignore_commands {
            if let Some(sd) = self.resolver.cfg.softdep_for(name) {
                self.resolver
                    .resolve_softdeps(sd.pre(), self.arena, &mut pre)?;
                self.resolver
                    .resolve_softdeps(sd.post(), self.arena, &mut post)?;
            }
            cmd = m.remove.or_else(|| self.resolver.cfg.remove_for(name));
        }
        // Nothing to do for a module that is not in the kernel.
        if cmd.is_none() && !self.flags.ignore_loaded {
            if m.builtin || self.resolver.is_builtin(name)? {
                if ignore_builtin {
                    return Ok(true);
                }
                (self.ev)(Event::Builtin(name));
                return Ok(false);
            }
            if self.kernel.state(name) == SysState::Absent {
                if self.flags.first_time {
                    (self.ev)(Event::NotInKernel(name));
                    return Ok(false);
                }
                return Ok(true);
            }
        }
        // 1. Post-softdeps, last first; their failures do not count.
        for c in post.iter().rev() {
            self.module(c, false, true, depth + 1)?;
        }
        // 2. The modules holding this one, last first; the first failure stops.
        if remove_holders {
            let mut holders: heapless::Vec<ModName, MAX_HOLDERS> = heapless::Vec::new();
            let mut fault = None;
            self.kernel.holders(name, &mut |h| {
                let kept = modname(h).and_then(|n| {
                    holders
                        .push(n)
                        .map_err(|_| Error::Capacity("holders of one module", MAX_HOLDERS))
                });
                if let Err(e) = kept {
                    fault.get_or_insert(e);
                }
            });
            if let Some(e) = fault {
                return Err(e);
            }
            for h in holders.iter().rev() {
                if !self.module(&Candidate::plain(h.clone()), false, true, depth + 1)? {
                    return Ok(false);
                }
            }
        }
        // 3. The module itself, unless something still uses it.
        if cmd.is_none()
            && !self.flags.ignore_loaded
            && self.flags.wait_ms == 0
            && self.kernel.refcnt(name).is_some_and(|n| n > 0)
        {
            (self.ev)(Event::InUse(name));
            return Ok(false);
        }
        let done = match cmd {
            Some(c) => self.command(name, c),
            None => self.delete(name),
        };
        if !done {
            return Ok(false);
        }
        // 4. Dependencies nothing uses any more; their failures do not count.
        let line = match cmd {
            None => self.resolver.db.dep_line(name)?.and_then(DepLine::parse),
            Some(_) => None,
        };
        if let Some(line) = line {
            for p in line.deps() {
                let dep = modname_from_path(p)?;
                if self.kernel.refcnt(&dep) == Some(0) {
                    self.delete(&dep);
                }
            }
        }
        // 5. Pre-softdeps, last first; their failures do not count.
        for c in pre.iter().rev() {
            self.module(c, false, true, depth + 1)?;
        }
        Ok(true)
    }

    /// kmod's `rmmod_do_remove_module`: one `delete_module`, retried while
    /// busy under `--wait`. False when it failed.
    fn delete(&mut self, name: &str) -> bool {
        (self.ev)(Event::Rmmod(name));
        if self.flags.dry_run {
            return true;
        }
        let end = self.kernel.now_ms().saturating_add(self.flags.wait_ms);
        let mut interval = 1u64;
        loop {
            match self.kernel.delete_module(name, self.flags.force) {
                Ok(()) => return true,
                Err(Errno(EAGAIN)) if self.flags.wait_ms > 0 => {
                    let now = self.kernel.now_ms();
                    if now >= end {
                        (self.ev)(Event::RemoveFailed(name, Errno(EAGAIN)));
                        return false;
                    }
                    // Exponential backoff, never past the deadline.
                    self.kernel
                        .sleep_until_ms(now.saturating_add(interval).min(end));
                    interval = interval.saturating_mul(2);
                }
                Err(e) => {
                    (self.ev)(Event::RemoveFailed(name, e));
                    if e == Errno(EEXIST) && !self.flags.first_time {
                        return true;
                    }
                    if e == Errno(EEXIST) {
                        (self.ev)(Event::NotInKernel(name));
                    }
                    return false;
                }
            }
        }
    }

    /// kmod's `command_do` for a `remove` command. False when it failed.
    fn command(&mut self, name: &str, cmd: &str) -> bool {
        (self.ev)(Event::Command(cmd));
        if self.flags.dry_run {
            return true;
        }
        match self.kernel.run_command(cmd, name) {
            Ok(()) => true,
            Err(_) => {
                (self.ev)(Event::CommandFailed(name));
                false
            }
        }
    }
}

#[cfg(test)]
mod tests {
    extern crate std;
    use super::*;
    use crate::config::Config;
    use crate::db::{ModuleDb, Source};
    use crate::probe::Candidates;
    use std::collections::BTreeMap;
    use std::string::{String, ToString};
    use std::vec::Vec;

    /// A fake kernel: loaded modules with refcounts and holders; records
    /// every delete_module and command.
    #[derive(Default)]
    struct Fake {
        loaded: BTreeMap<String, (i64, Vec<String>)>,
        deleted: Vec<String>,
        commands: Vec<String>,
        busy: BTreeMap<String, usize>,
        fail: BTreeMap<String, i32>,
        now: u64,
    }

    impl Fake {
        fn with(mods: &[(&str, i64, &[&str])]) -> Fake {
            let mut f = Fake::default();
            for (n, rc, h) in mods {
                f.loaded.insert(
                    n.to_string(),
                    (*rc, h.iter().map(|s| s.to_string()).collect()),
                );
            }
            f
        }
    }

    impl Remover for Fake {
        fn state(&self, name: &str) -> SysState {
            if self.loaded.contains_key(name) {
                SysState::Loaded
            } else {
                SysState::Absent
            }
        }
        fn refcnt(&self, name: &str) -> Option<i64> {
            self.loaded.get(name).map(|(r, _)| *r)
        }
        fn holders(&self, name: &str, f: &mut dyn FnMut(&str)) {
            for h in self
                .loaded
                .get(name)
                .map(|(_, h)| h.clone())
                .unwrap_or_default()
            {
                f(&h);
            }
        }
        fn delete_module(&mut self, name: &str, _: bool) -> core::result::Result<(), Errno> {
            if let Some(n) = self.busy.get_mut(name).filter(|n| **n > 0) {
                *n -= 1;
                return Err(Errno(EAGAIN));
            }
            if let Some(e) = self.fail.get(name) {
                return Err(Errno(*e));
            }
            let Some((rc, _)) = self.loaded.get(name) else {
                return Err(Errno(2));
            };
            if *rc > 0 {
                return Err(Errno(EAGAIN));
            }
            self.loaded.remove(name);
            for (rc, holders) in self.loaded.values_mut() {
                if let Some(i) = holders.iter().position(|h| h == name) {
                    holders.remove(i);
                    *rc -= 1;
                }
            }
            self.deleted.push(name.to_string());
            Ok(())
        }
        fn run_command(&mut self, command: &str, _: &str) -> core::result::Result<(), i32> {
            self.commands.push(command.to_string());
            if command.contains("false") {
                Err(1)
            } else {
                Ok(())
            }
        }
        fn now_ms(&self) -> u64 {
            self.now
        }
        fn sleep_until_ms(&mut self, until: u64) {
            assert!(until > self.now, "backoff must advance");
            self.now = until;
        }
    }

    /// a depends on b and c (modules.dep order: b c); d is alone.
    const DEP: &[u8] = b"kernel/a.ko: kernel/b.ko kernel/c.ko\nkernel/b.ko: kernel/c.ko\nkernel/c.ko:\nkernel/d.ko:\nkernel/e.ko:\nkernel/h.ko: kernel/d.ko\n";

    fn run(
        conf: &str,
        target: &str,
        flags: RemoveFlags,
        k: &mut Fake,
    ) -> (Result<bool>, Vec<String>) {
        let db = ModuleDb {
            dep: Source::new(None, Some(DEP)),
            alias: Source::Missing,
            symbols: Source::Missing,
            builtin: Source::new(None, Some(b"kernel/bi.ko\n")),
            builtin_alias: Source::Missing,
        };
        let mut text = conf.as_bytes().to_vec();
        let mut cfg = Config::new();
        cfg.parse_file(&mut text, &mut |_| {}).unwrap();
        let resolver = Resolver { db: &db, cfg: &cfg };
        let mut found = Candidates::new();
        resolver.lookup(target, &mut found).unwrap();
        let mut events = Vec::new();
        let mut result = Ok(true);
        for c in found.iter() {
            result = remove(&resolver, c, flags, k, &mut |e| {
                events.push(std::format!("{e:?}"))
            });
            if !matches!(result, Ok(true)) {
                break;
            }
        }
        (result, events)
    }

    #[test]
    fn removes_the_module_then_unused_dependencies() {
        let mut k = Fake::with(&[("a", 0, &[]), ("b", 1, &["a"]), ("c", 2, &["a", "b"])]);
        let (r, ev) = run("", "a", RemoveFlags::default(), &mut k);
        assert_eq!(r, Ok(true));
        assert_eq!(k.deleted, ["a", "b", "c"]);
        assert_eq!(ev, ["Rmmod(\"a\")", "Rmmod(\"b\")", "Rmmod(\"c\")"]);
    }

    #[test]
    fn dry_run_removes_nothing_and_says_what_it_would() {
        let mut k = Fake::with(&[("a", 0, &[]), ("b", 1, &["a"]), ("c", 0, &[])]);
        let flags = RemoveFlags {
            dry_run: true,
            ..Default::default()
        };
        let (r, ev) = run("", "a", flags, &mut k);
        assert_eq!(r, Ok(true));
        assert!(k.deleted.is_empty() && k.commands.is_empty());
        // b is still used (by a, which a dry run leaves), c is not.
        assert_eq!(ev, ["Rmmod(\"a\")", "Rmmod(\"c\")"]);
        let flags = RemoveFlags {
            dry_run: true,
            ignore_loaded: true,
            ..Default::default()
        };
        let (r, ev) = run("remove d /bin/false\n", "d", flags, &mut Fake::default());
        assert_eq!(r, Ok(true));
        assert_eq!(ev, ["Command(\"/bin/false\")"]);
    }

    #[test]
    fn not_loaded_builtin_and_in_use() {
        let (r, ev) = run("", "d", RemoveFlags::default(), &mut Fake::default());
        assert_eq!((r, ev.len()), (Ok(true), 0), "not loaded: nothing to do");
        let first = RemoveFlags {
            first_time: true,
            ..Default::default()
        };
        let (r, ev) = run("", "d", first, &mut Fake::default());
        assert_eq!(
            (r, ev),
            (Ok(false), std::vec!["NotInKernel(\"d\")".to_string()])
        );
        let (r, ev) = run("", "bi", RemoveFlags::default(), &mut Fake::default());
        assert_eq!(
            (r, ev),
            (Ok(false), std::vec!["Builtin(\"bi\")".to_string()])
        );
        let mut k = Fake::with(&[("d", 1, &[])]);
        let (r, ev) = run("", "d", RemoveFlags::default(), &mut k);
        assert_eq!((r, ev), (Ok(false), std::vec!["InUse(\"d\")".to_string()]));
        assert!(k.deleted.is_empty());
    }

    #[test]
    fn softdeps_post_first_pre_last_failures_ignored() {
        let conf = "softdep a pre: d e post: c b\n";
        let mut k = Fake::with(&[("a", 0, &[]), ("b", 0, &[]), ("c", 0, &[]), ("d", 0, &[])]);
        k.fail.insert("b".into(), 1);
        let (r, _) = run(conf, "a", RemoveFlags::default(), &mut k);
        assert_eq!(r, Ok(true));
        // post reversed (b fails, ignored; c), a, then pre reversed (e not
        // loaded: skipped; d).
        assert_eq!(k.deleted, ["c", "a", "d"]);
        let mut k = Fake::with(&[("a", 0, &[]), ("c", 0, &[])]);
        let flags = RemoveFlags {
            ignore_commands: true,
            ..Default::default()
        };
        let (r, _) = run(conf, "a", flags, &mut k);
        assert_eq!(r, Ok(true));
        assert_eq!(k.deleted, ["a", "c"], "-i: no softdeps");
    }

    #[test]
    fn holders_only_with_remove_holders() {
        let mk = || Fake::with(&[("a", 0, &[]), ("c", 2, &["h", "a"]), ("h", 0, &[])]);
        let mut k = mk();
        let (r, ev) = run("", "c", RemoveFlags::default(), &mut k);
        assert_eq!((r, ev), (Ok(false), std::vec!["InUse(\"c\")".to_string()]));
        let mut k = mk();
        let flags = RemoveFlags {
            remove_holders: true,
            ..Default::default()
        };
        let (r, _) = run("", "c", flags, &mut k);
        assert_eq!(r, Ok(true));
        // Holders last first: a, then h; then c.
        assert_eq!(k.deleted, ["a", "h", "c"]);
    }

    #[test]
    fn remove_commands_run_instead_of_delete() {
        let mut k = Fake::with(&[("d", 0, &[])]);
        let (r, ev) = run("remove d /bin/false\n", "d", RemoveFlags::default(), &mut k);
        assert_eq!(r, Ok(false));
        assert_eq!(ev, ["Command(\"/bin/false\")", "CommandFailed(\"d\")"]);
        assert!(k.deleted.is_empty());
    }

    #[test]
    fn wait_retries_busy_with_backoff_until_the_deadline() {
        let mut k = Fake::with(&[("d", 0, &[])]);
        k.busy.insert("d".into(), 3);
        let flags = RemoveFlags {
            wait_ms: 100,
            ..Default::default()
        };
        let (r, _) = run("", "d", flags, &mut k);
        assert_eq!(r, Ok(true));
        assert_eq!(k.now, 1 + 2 + 4);
        let mut k = Fake::with(&[("d", 0, &[])]);
        k.busy.insert("d".into(), usize::MAX);
        let (r, ev) = run("", "d", flags, &mut k);
        assert_eq!(r, Ok(false));
        assert_eq!(k.now, 100);
        assert_eq!(ev.last().unwrap(), "RemoveFailed(\"d\", Errno(11))");
    }

    #[test]
    fn softdep_cycles_in_a_dry_run_end_in_an_error() {
        let conf = "softdep a post: d\nsoftdep d post: a\n";
        let mut k = Fake::with(&[("a", 0, &[]), ("d", 0, &[])]);
        let flags = RemoveFlags {
            dry_run: true,
            ..Default::default()
        };
        let (r, _) = run(conf, "a", flags, &mut k);
        assert_eq!(r, Err(Error::TooDeep));
        assert!(k.deleted.is_empty());
    }
}
