//! modprobe's resolution: the lookup chain that turns a name or alias into
//! modules, and the probe list (dependencies, softdeps, install commands)
//! that loads one of them — libkmod 30's `kmod_module_new_from_lookup` and
//! `kmod_module_probe_insert_module`, reproduced with bounded buffers.
//!
//! libkmod keeps one object per (name, alias) pair and marks objects visited
//! while building a probe list; the quirks that follow from that (a module
//! reached as a dependency and again through a softdep appears twice) are
//! reproduced on purpose, since `modprobe -D` output must be identical.

use crate::config::Config;
use crate::db::{DepLine, Matches, ModuleDb};
use crate::error::{Error, Result};
use crate::fnmatch::fnmatch;
use crate::name::{AliasBuf, ModName, modname_from_path, normalize_alias};
use core::cell::OnceCell;

/// Bound on modules one lookup may return.
pub const MAX_CANDIDATES: usize = 32;
/// Bound on the entries of one probe list.
pub const MAX_STEPS: usize = 192;
/// Bound on nested softdep resolution.
pub const MAX_SOFTDEP_DEPTH: usize = 16;

/// One module a lookup found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Candidate<'k> {
    /// Module name.
    pub name: ModName,
    /// The alias it was found through (config pattern or looked-up key).
    pub alias: Option<&'k str>,
    /// Found through `modules.builtin` or `modules.builtin.alias`.
    pub builtin: bool,
    /// Made from a module file's path (`modprobe /dir/x.ko`): like
    /// libkmod's `kmod_module_new_from_path`, never builtin, whatever
    /// `modules.builtin` lists (kmod ≥ 31).
    pub from_path: bool,
    /// Install command preset by a config `install` line for this exact name.
    pub install: Option<&'k str>,
    /// Remove command preset by a config `remove` line for this exact name.
    pub remove: Option<&'k str>,
}

impl<'k> Candidate<'k> {
    /// A module known by name only (a dependency, a holder, a file).
    pub fn plain(name: ModName) -> Self {
        Candidate {
            name,
            alias: None,
            builtin: false,
            from_path: false,
            install: None,
            remove: None,
        }
    }
}

/// Modules found by one lookup, in kmod's order.
pub type Candidates<'k> = heapless::Vec<Candidate<'k>, MAX_CANDIDATES>;

/// Where the answer of a lookup came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Found {
    /// A config `alias` line.
    ConfigAlias,
    /// `modules.dep`.
    ModuleName,
    /// `modules.symbols`.
    Symbol,
    /// A config `install`/`remove` line.
    Command,
    /// `modules.alias`.
    Alias,
    /// `modules.builtin`.
    Builtin,
    /// `modules.builtin.alias`.
    BuiltinAlias,
    /// Nothing matched.
    Nothing,
}

/// Kernel-side state of a module, as `/sys/module/NAME` shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InitState {
    /// `initstate` reads `live`.
    Live,
    /// `coming`, `going`, or a directory without `initstate`.
    Transient,
    /// No such module in the kernel.
    Absent,
}

/// Read access to the running kernel's module state.
pub trait KernelState {
    /// The state of module `name`.
    fn initstate(&self, name: &str) -> InitState;
}

/// A kernel with nothing loaded (for `--show-depends` and tests).
pub struct NothingLoaded;

impl KernelState for NothingLoaded {
    fn initstate(&self, _: &str) -> InitState {
        InitState::Absent
    }
}

/// One entry of a probe list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Step<'a, 'k> {
    /// Module name.
    pub name: ModName,
    /// Alias of the libkmod object (options may be keyed by it).
    pub alias: Option<&'k str>,
    /// Path from `modules.dep`, relative to the module directory or absolute.
    pub path: Option<&'a str>,
    /// Known builtin (the object came from a builtin index).
    pub builtin: bool,
    /// Made from a module file's path: never builtin ([`Candidate::from_path`]).
    pub from_path: bool,
    /// Install command to run instead of loading (not set when softdeps exist).
    pub install: Option<&'k str>,
    /// The target or one of its dependencies: a failure here fails the probe.
    pub required: bool,
    /// This entry is the probed module itself (gets the extra options).
    pub is_target: bool,
    /// Appended by a visit (libkmod's `visited` mark), not as a plain dependency.
    visited: bool,
}

/// A probe list.
pub type Steps<'a, 'k> = heapless::Vec<Step<'a, 'k>, MAX_STEPS>;

/// Why a probe did nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Skip {
    /// Already live or builtin (and loaded state is not ignored).
    AlreadyLoaded,
    /// Blacklisted (reached through an alias, or `-b`).
    Blacklisted,
}

/// How to build a probe list.
#[derive(Debug, Clone, Copy, Default)]
pub struct ProbeFlags {
    /// `-i`: ignore install commands and softdeps of the target.
    pub ignore_commands: bool,
    /// `-D`: do not consult the kernel's loaded state.
    pub ignore_loaded: bool,
    /// `-b`: apply the blacklist to names too, not only aliases.
    pub use_blacklist: bool,
}

/// The resolver over one module directory and one configuration.
pub struct Resolver<'r, 'a> {
    /// The indexes.
    pub db: &'r ModuleDb<'a>,
    /// The configuration (files, then kernel command line).
    pub cfg: &'r Config<'a>,
}

/// Longest softdep name kept in a [`NameArena`].
pub const MAX_SOFTDEP_NAME: usize = 128;
/// Number of distinct normalized softdep names one probe may use.
pub const MAX_SOFTDEP_NAMES: usize = 64;

/// Storage for softdep names that needed normalizing (`crypto-crc32c` →
/// `crypto_crc32c`), so probe-list entries can borrow them. libkmod
/// normalizes these at lookup time, leaving the config text as written.
pub struct NameArena {
    slots: [OnceCell<heapless::String<MAX_SOFTDEP_NAME>>; MAX_SOFTDEP_NAMES],
}

impl Default for NameArena {
    fn default() -> Self {
        NameArena {
            slots: core::array::from_fn(|_| OnceCell::new()),
        }
    }
}

impl NameArena {
    /// An empty arena.
    pub fn new() -> Self {
        Self::default()
    }

    fn intern(&self, s: &str) -> Result<&str> {
        for slot in self.slots.iter() {
            match slot.get() {
                Some(v) if v.as_str() == s => return Ok(v.as_str()),
                Some(_) => continue,
                None => {
                    let mut v = heapless::String::new();
                    v.push_str(s)
                        .map_err(|_| Error::TooLong("softdep name", MAX_SOFTDEP_NAME))?;
                    return Ok(slot.get_or_init(|| v).as_str());
                }
            }
        }
        Err(Error::Capacity("distinct softdep names", MAX_SOFTDEP_NAMES))
    }
}

/// Identity of a libkmod module object.
type Ident<'k> = (ModName, Option<&'k str>);

struct Builder<'s, 'a, 'k> {
    names: &'k NameArena,
    steps: &'s mut Steps<'a, 'k>,
    /// Objects being visited right now (marked but not yet in `steps`).
    in_progress: heapless::Vec<Ident<'k>, { MAX_SOFTDEP_DEPTH + 2 }>,
}

fn owned_name(s: &str) -> Result<ModName> {
    let mut n = ModName::new();
    n.push_str(s)
        .map_err(|_| Error::TooLong("module name", crate::name::MAX_NAME))?;
    Ok(n)
}

fn utf8(b: &[u8]) -> Result<&str> {
    core::str::from_utf8(b).map_err(|_| Error::NotUtf8)
}

impl<'r, 'a> Resolver<'r, 'a> {
    /// modprobe's lookup of what a user wrote (a module name or an alias,
    /// `-` and `_` alike): normalised into `key`, then [`lookup`](Self::lookup).
    pub fn lookup_user<'k>(
        &self,
        name: &str,
        key: &'k mut crate::name::AliasBuf,
        out: &mut Candidates<'k>,
    ) -> Result<Found>
    where
        'a: 'k,
    {
        crate::name::normalize_alias(name, key)?;
        self.lookup(key, out)
    }

    /// Looks up a normalized name or alias the way modprobe does: the first
    /// source with any result wins, all of its results are returned.
    pub fn lookup<'k>(&self, key: &'k str, out: &mut Candidates<'k>) -> Result<Found>
    where
        'a: 'k,
    {
        out.clear();
        let full = |_| Error::Capacity("modules matching one name", MAX_CANDIDATES);
        for (pat, module) in self.cfg.aliases.iter() {
            if fnmatch(pat.as_bytes(), key.as_bytes()) {
                let mut c = Candidate::plain(owned_name(module)?);
                c.alias = Some(pat);
                out.push(c).map_err(full)?;
            }
        }
        if !out.is_empty() {
            return Ok(Found::ConfigAlias);
        }
        if !key.contains(':') && self.db.dep_line(key)?.is_some() {
            out.push(Candidate::plain(owned_name(key)?)).map_err(full)?;
            return Ok(Found::ModuleName);
        }
        let mut m = Matches::new();
        if key.starts_with("symbol:") {
            ModuleDb::wildcard(&self.db.symbols, key, &mut m)?;
            if self.push_aliases(key, &m, false, out)? {
                return Ok(Found::Symbol);
            }
        }
        if let Some((_, cmd)) = self.cfg.install.iter().find(|(n, _)| *n == key) {
            let mut c = Candidate::plain(owned_name(key)?);
            c.install = Some(cmd);
            out.push(c).map_err(full)?;
            return Ok(Found::Command);
        }
        if let Some((_, cmd)) = self.cfg.remove.iter().find(|(n, _)| *n == key) {
            let mut c = Candidate::plain(owned_name(key)?);
            c.remove = Some(cmd);
            out.push(c).map_err(full)?;
            return Ok(Found::Command);
        }
        ModuleDb::wildcard(&self.db.alias, key, &mut m)?;
        if self.push_aliases(key, &m, false, out)? {
            return Ok(Found::Alias);
        }
        if self.db.is_builtin(key)? {
            let mut c = Candidate::plain(owned_name(key)?);
            c.builtin = true;
            out.push(c).map_err(full)?;
            return Ok(Found::Builtin);
        }
        ModuleDb::wildcard(&self.db.builtin_alias, key, &mut m)?;
        if self.push_aliases(key, &m, true, out)? {
            return Ok(Found::BuiltinAlias);
        }
        Ok(Found::Nothing)
    }

    /// Looks up a normalized module name the way `modinfo -m` does
    /// (libkmod's `kmod_module_new_from_name_lookup`): `modules.dep`, then
    /// `modules.builtin`, then `modules.builtin.alias`; no config aliases,
    /// no `modules.alias`.
    pub fn lookup_name<'k>(&self, key: &'k str, out: &mut Candidates<'k>) -> Result<Found>
    where
        'a: 'k,
    {
        out.clear();
        let full = |_| Error::Capacity("modules matching one name", MAX_CANDIDATES);
        if !key.contains(':') && self.db.dep_line(key)?.is_some() {
            out.push(Candidate::plain(owned_name(key)?)).map_err(full)?;
            return Ok(Found::ModuleName);
        }
        if self.db.is_builtin(key)? {
            let mut c = Candidate::plain(owned_name(key)?);
            c.builtin = true;
            out.push(c).map_err(full)?;
            return Ok(Found::Builtin);
        }
        let mut m = Matches::new();
        ModuleDb::wildcard(&self.db.builtin_alias, key, &mut m)?;
        if self.push_aliases(key, &m, true, out)? {
            return Ok(Found::BuiltinAlias);
        }
        Ok(Found::Nothing)
    }

    fn push_aliases<'k>(
        &self,
        key: &'k str,
        m: &Matches<'_>,
        builtin: bool,
        out: &mut Candidates<'k>,
    ) -> Result<bool> {
        for v in m.iter() {
            let mut c = Candidate::plain(owned_name(utf8(v.value)?)?);
            c.alias = Some(key);
            c.builtin = builtin;
            out.push(c)
                .map_err(|_| Error::Capacity("modules matching one name", MAX_CANDIDATES))?;
        }
        Ok(!out.is_empty())
    }

    /// True when module `name` is builtin in this module directory.
    pub fn is_builtin(&self, name: &str) -> Result<bool> {
        self.db.is_builtin(name)
    }

    /// True when the kernel already has `step` (live or builtin).
    pub fn in_kernel(&self, step: &Step<'_, '_>, kernel: &dyn KernelState) -> Result<bool> {
        self.name_in_kernel(&step.name, step.builtin, step.from_path, kernel)
    }

    /// libkmod's `module_is_inkernel`: known builtin, listed in
    /// `modules.builtin` (unless made from a path), or `live` in sysfs.
    fn name_in_kernel(
        &self,
        name: &str,
        builtin: bool,
        from_path: bool,
        kernel: &dyn KernelState,
    ) -> Result<bool> {
        Ok(builtin
            || (!from_path && self.db.is_builtin(name)?)
            || kernel.initstate(name) == InitState::Live)
    }

    /// The probe list that loads `target`, or why there is nothing to do.
    /// Entries already in the kernel stay in the list: a caller that does
    /// not ignore loaded state skips them with [`Resolver::in_kernel`].
    pub fn probe_list<'k>(
        &self,
        target: &Candidate<'k>,
        flags: ProbeFlags,
        kernel: &dyn KernelState,
        names: &'k NameArena,
        out: &mut Steps<'a, 'k>,
    ) -> Result<core::result::Result<(), Skip>>
    where
        'a: 'k,
    {
        out.clear();
        if !flags.ignore_loaded
            && self.name_in_kernel(&target.name, target.builtin, target.from_path, kernel)?
        {
            return Ok(Err(Skip::AlreadyLoaded));
        }
        if (target.alias.is_some() || flags.use_blacklist) && self.cfg.is_blacklisted(&target.name)
        {
            return Ok(Err(Skip::Blacklisted));
        }
        let mut b = Builder {
            names,
            steps: out,
            in_progress: heapless::Vec::new(),
        };
        self.get_probe_list(&mut b, target, flags.ignore_commands, 0)?;
        // libkmod marks the target and its dependencies required: a failure
        // of any other entry (softdeps) is ignored when loading.
        let target_deps = self.db.dep_line(&target.name)?.and_then(DepLine::parse);
        for s in b.steps.iter_mut() {
            s.is_target = s.name == target.name && s.alias == target.alias;
            s.required = s.is_target;
        }
        // One pass over the target's dependencies (not one per step).
        for q in target_deps.iter().flat_map(|d| d.deps()) {
            for s in b.steps.iter_mut() {
                s.required |= s.alias.is_none() && s.path == Some(q);
            }
        }
        Ok(Ok(()))
    }

    /// A probe-list entry for `c`; `path` when the caller knows it.
    fn step<'k>(
        &self,
        c: &Candidate<'k>,
        path: Option<&'a str>,
        ignorecmd: bool,
    ) -> Result<Step<'a, 'k>>
    where
        'a: 'k,
    {
        let path = match path {
            Some(p) => Some(p),
            None => self
                .db
                .dep_line(&c.name)?
                .and_then(DepLine::parse)
                .map(|d| d.path),
        };
        let install = if ignorecmd {
            None
        } else {
            c.install.or_else(|| self.cfg.install_for(&c.name))
        };
        Ok(Step {
            name: c.name.clone(),
            alias: c.alias,
            path,
            builtin: c.builtin,
            from_path: c.from_path,
            install,
            required: false,
            is_target: false,
            visited: false,
        })
    }

    fn get_probe_list<'k>(
        &self,
        b: &mut Builder<'_, 'a, 'k>,
        m: &Candidate<'k>,
        ignorecmd: bool,
        depth: usize,
    ) -> Result<()>
    where
        'a: 'k,
    {
        // libkmod marks each object visited once per probe; every visited
        // object is appended, so the marks are the visited entries of the
        // list plus the objects still being visited.
        let marked = |s: &Step<'_, '_>| s.visited && s.name == m.name && s.alias == m.alias;
        if b.steps.iter().any(marked)
            || b.in_progress
                .iter()
                .any(|(n, a)| *n == m.name && *a == m.alias)
        {
            return Ok(());
        }
        b.in_progress
            .push((m.name.clone(), m.alias))
            .map_err(|_| Error::TooDeep)?;
        let line = self.db.dep_line(&m.name)?.and_then(DepLine::parse);
        if let Some(line) = line {
            // Dependencies in reverse line order (libkmod prepends them).
            for p in line.deps().rev() {
                self.fill_softdep(
                    b,
                    &Candidate::plain(modname_from_path(p)?),
                    Some(p),
                    false,
                    depth,
                )?;
            }
        }
        let path = line.map(|l| l.path);
        if ignorecmd {
            let mut s = self.step(m, path, true)?;
            s.visited = true;
            b.steps
                .push(s)
                .map_err(|_| Error::Capacity("probe list entries", MAX_STEPS))?;
        } else {
            self.fill_softdep(b, m, path, true, depth)?;
        }
        b.in_progress.pop();
        Ok(())
    }

    fn fill_softdep<'k>(
        &self,
        b: &mut Builder<'_, 'a, 'k>,
        m: &Candidate<'k>,
        path: Option<&'a str>,
        visit: bool,
        depth: usize,
    ) -> Result<()>
    where
        'a: 'k,
    {
        if depth > MAX_SOFTDEP_DEPTH {
            return Err(Error::TooDeep);
        }
        let sd = self.cfg.softdep_for(&m.name);
        let mut has_softdeps = false;
        let mut post: heapless::Vec<Candidate<'k>, MAX_CANDIDATES> = heapless::Vec::new();
        if let Some(sd) = sd {
            // libkmod resolves both lists before loading anything.
            let mut pre: heapless::Vec<Candidate<'k>, MAX_CANDIDATES> = heapless::Vec::new();
            self.resolve_softdeps(sd.pre(), b.names, &mut pre)?;
            self.resolve_softdeps(sd.post(), b.names, &mut post)?;
            has_softdeps = !pre.is_empty() || !post.is_empty();
            for c in pre.iter() {
                self.get_probe_list(b, c, false, depth + 1)?;
            }
        }
        let mut s = self.step(m, path, has_softdeps)?;
        s.visited = visit;
        b.steps
            .push(s)
            .map_err(|_| Error::Capacity("probe list entries", MAX_STEPS))?;
        for c in post.iter() {
            self.get_probe_list(b, c, false, depth + 1)?;
        }
        Ok(())
    }

    pub(crate) fn resolve_softdeps<'k>(
        &self,
        names: impl Iterator<Item = &'a str>,
        arena: &'k NameArena,
        out: &mut heapless::Vec<Candidate<'k>, MAX_CANDIDATES>,
    ) -> Result<()>
    where
        'a: 'k,
    {
        let mut found = Candidates::new();
        let mut norm = AliasBuf::new();
        for n in names {
            // An invalid name fails its lookup and is skipped, as in kmod.
            if normalize_alias(n, &mut norm).is_err() {
                continue;
            }
            let key: &'k str = if norm.as_str() == n {
                n
            } else {
                arena.intern(&norm)?
            };
            self.lookup(key, &mut found)?;
            for c in found.iter() {
                out.push(c.clone())
                    .map_err(|_| Error::Capacity("softdep modules of one line", MAX_CANDIDATES))?;
            }
        }
        Ok(())
    }
}

/// The options string kmod passes for one step: config options for the
/// name or alias joined by spaces, then (for the target) the extra options.
/// Writes into `out`; returns false when there are none.
pub fn step_options<W: core::fmt::Write>(
    cfg: &Config<'_>,
    step: &Step<'_, '_>,
    extra: &str,
    out: &mut W,
) -> core::fmt::Result {
    let mut any = false;
    for o in cfg.options_for(&step.name, step.alias) {
        if any {
            out.write_char(' ')?;
        }
        out.write_str(o)?;
        any = true;
    }
    let extra = if step.is_target { extra } else { "" };
    if any {
        out.write_char(' ')?;
    }
    out.write_str(extra)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;
    use crate::db::Source;

    const DEP: &[u8] = b"kernel/a.ko: kernel/b.ko kernel/c-x.ko\nkernel/b.ko: kernel/c-x.ko\nkernel/c-x.ko:\nkernel/s.ko:\nkernel/t.ko: kernel/b.ko kernel/c-x.ko\n";
    const ALIAS: &[u8] = b"alias pci:v1* a\nalias pci:v1d2 a\nalias fs-s s\nalias pci:v1d* t\n";
    const BUILTIN: &[u8] = b"kernel/fs/vfat.ko\n";

    fn db() -> ModuleDb<'static> {
        ModuleDb {
            dep: Source::new(None, Some(DEP)),
            alias: Source::new(None, Some(ALIAS)),
            symbols: Source::Missing,
            builtin: Source::new(None, Some(BUILTIN)),
            builtin_alias: Source::Missing,
        }
    }

    fn plan<'a>(
        r: &Resolver<'_, 'a>,
        key: &'a str,
        names: &'a NameArena,
    ) -> heapless::Vec<heapless::String<64>, 16> {
        let mut found = Candidates::new();
        r.lookup(key, &mut found).unwrap();
        let mut out = heapless::Vec::new();
        for c in found.iter() {
            let mut steps = Steps::new();
            match r
                .probe_list(
                    c,
                    ProbeFlags {
                        ignore_loaded: true,
                        ..Default::default()
                    },
                    &NothingLoaded,
                    names,
                    &mut steps,
                )
                .unwrap()
            {
                Ok(()) => {
                    for s in steps.iter() {
                        let mut line = heapless::String::new();
                        let _ = core::fmt::Write::write_fmt(&mut line, format_args!("{}", s.name));
                        if let Some(i) = s.install {
                            let _ = core::fmt::Write::write_fmt(&mut line, format_args!("!{i}"));
                        }
                        out.push(line).unwrap();
                    }
                }
                Err(skip) => {
                    let mut line = heapless::String::new();
                    let _ = core::fmt::Write::write_fmt(&mut line, format_args!("{skip:?}"));
                    out.push(line).unwrap();
                }
            }
        }
        out
    }

    fn cfg_from(text: &'static mut [u8]) -> Config<'static> {
        let mut cfg = Config::new();
        cfg.parse_file(text, &mut |_| {}).unwrap();
        cfg
    }

    fn leak(s: &str) -> &'static mut [u8] {
        extern crate std;
        std::boxed::Box::leak(std::vec::Vec::from(s.as_bytes()).into_boxed_slice())
    }

    /// `modinfo -m`: names only — no config alias, no modules.alias.
    #[test]
    fn name_lookup_skips_aliases() {
        let db = db();
        let cfg = cfg_from(leak("alias myalias a\n"));
        let r = Resolver { db: &db, cfg: &cfg };
        let mut found = Candidates::new();
        assert_eq!(r.lookup_name("a", &mut found), Ok(Found::ModuleName));
        assert_eq!(r.lookup_name("vfat", &mut found), Ok(Found::Builtin));
        assert!(found[0].builtin);
        for alias in ["myalias", "pci:v1d2"] {
            assert_eq!(r.lookup_name(alias, &mut found), Ok(Found::Nothing));
            assert!(found.is_empty());
            assert_ne!(r.lookup(alias, &mut found), Ok(Found::Nothing), "{alias}");
        }
    }

    /// `modprobe /dir/vfat.ko`: a module made from a path is never
    /// builtin (kmod ≥ 31), though `modules.builtin` lists its name; by
    /// name it is.
    #[test]
    fn a_module_from_a_path_is_never_builtin() {
        let (db, cfg, names) = (db(), Config::new(), NameArena::new());
        let r = Resolver { db: &db, cfg: &cfg };
        let mut steps = Steps::new();
        let mut c = Candidate::plain(owned_name("vfat").unwrap());
        let flags = ProbeFlags::default();
        assert_eq!(
            r.probe_list(&c, flags, &NothingLoaded, &names, &mut steps),
            Ok(Err(Skip::AlreadyLoaded))
        );
        c.from_path = true;
        assert_eq!(
            r.probe_list(&c, flags, &NothingLoaded, &names, &mut steps),
            Ok(Ok(()))
        );
        assert!(steps[0].from_path && !r.in_kernel(&steps[0], &NothingLoaded).unwrap());
        let e = crate::load::Entry::of(&steps[0]);
        assert_eq!(crate::load::in_kernel(&r, &e, &NothingLoaded), Ok(false));
    }

    #[test]
    fn deps_load_in_reverse_line_order() {
        let (db, cfg, names) = (db(), Config::new(), NameArena::new());
        let r = Resolver { db: &db, cfg: &cfg };
        assert_eq!(plan(&r, "a", &names), ["c_x", "b", "a"]);
    }

    #[test]
    fn every_alias_match_is_probed_in_priority_order() {
        let (db, cfg, names) = (db(), Config::new(), NameArena::new());
        let r = Resolver { db: &db, cfg: &cfg };
        let mut found = Candidates::new();
        assert_eq!(r.lookup("pci:v1d2", &mut found).unwrap(), Found::Alias);
        let got: heapless::Vec<&str, 4> = found.iter().map(|c| c.name.as_str()).collect();
        assert_eq!(&got[..], &["a", "a", "t"]);
        assert_eq!(
            plan(&r, "pci:v1d2", &names),
            ["c_x", "b", "a", "c_x", "b", "a", "c_x", "b", "t"]
        );
    }

    #[test]
    fn blacklist_applies_only_through_aliases() {
        let db = db();
        let cfg = cfg_from(leak("blacklist s\n"));
        let names = NameArena::new();
        let r = Resolver { db: &db, cfg: &cfg };
        assert_eq!(plan(&r, "fs_s", &names), ["Blacklisted"]);
        assert_eq!(plan(&r, "s", &names), ["s"]);
    }

    #[test]
    fn softdeps_wrap_the_module_and_disable_its_install_command() {
        let db = db();
        let cfg = cfg_from(leak(
            "softdep b pre: s post: fs-s\ninstall b /bin/true\ninstall s /bin/false\n",
        ));
        let names = NameArena::new();
        let r = Resolver { db: &db, cfg: &cfg };
        // b's softdeps: s (pre, via name; keeps its install command), then b
        // without its command, then fs-s → s again as a new (alias) object.
        assert_eq!(
            plan(&r, "a", &names),
            ["c_x", "s!/bin/false", "b", "s!/bin/false", "a"]
        );
    }

    #[test]
    fn a_dependency_reached_again_through_a_softdep_is_listed_twice() {
        let db = db();
        let cfg = cfg_from(leak("softdep a pre: b\n"));
        let names = NameArena::new();
        let r = Resolver { db: &db, cfg: &cfg };
        assert_eq!(plan(&r, "a", &names), ["c_x", "b", "c_x", "b", "a"]);
    }

    #[test]
    fn config_alias_wins_and_install_command_is_found() {
        let db = db();
        let cfg = cfg_from(leak("alias my-thing t\ninstall ghost echo hi\n"));
        let names = NameArena::new();
        let r = Resolver { db: &db, cfg: &cfg };
        let mut found = Candidates::new();
        assert_eq!(
            r.lookup("my_thing", &mut found).unwrap(),
            Found::ConfigAlias
        );
        assert_eq!(found[0].alias, Some("my_thing"));
        assert_eq!(r.lookup("ghost", &mut found).unwrap(), Found::Command);
        assert_eq!(plan(&r, "ghost", &names), ["ghost!echo hi"]);
        assert_eq!(r.lookup("vfat", &mut found).unwrap(), Found::Builtin);
        assert_eq!(r.lookup("nothing", &mut found).unwrap(), Found::Nothing);
    }

    #[test]
    fn options_join_like_kmod() {
        let db = db();
        let cfg = cfg_from(leak("options a x=1\noptions a  y=2\noptions pci:v1* z=3\n"));
        let r = Resolver { db: &db, cfg: &cfg };
        let mut s = Step {
            name: owned_name("a").unwrap(),
            alias: Some("pci:v1*"),
            path: None,
            builtin: false,
            from_path: false,
            install: None,
            required: true,
            is_target: true,
            visited: false,
        };
        let mut o: heapless::String<64> = heapless::String::new();
        step_options(r.cfg, &s, "e=5", &mut o).unwrap();
        assert_eq!(o, "x=1  y=2 z=3 e=5");
        o.clear();
        s.is_target = false;
        step_options(r.cfg, &s, "e=5", &mut o).unwrap();
        assert_eq!(o, "x=1  y=2 z=3 ");
    }

    #[test]
    fn softdep_loops_terminate() {
        let db = db();
        let cfg = cfg_from(leak("softdep a pre: t\nsoftdep t pre: a\n"));
        let names = NameArena::new();
        let r = Resolver { db: &db, cfg: &cfg };
        let p = plan(&r, "a", &names);
        assert!(p.len() < 16 && p.last().map(|s| s.as_str()) == Some("a"));
    }

    #[test]
    fn softdep_names_are_normalized_at_lookup() {
        let db = db();
        let cfg = cfg_from(leak("softdep t pre: fs-s\n"));
        let names = NameArena::new();
        let r = Resolver { db: &db, cfg: &cfg };
        assert_eq!(plan(&r, "t", &names), ["c_x", "b", "s", "t"]);
        assert_eq!(cfg.softdeps[0].1, "pre: fs-s");
    }
}
