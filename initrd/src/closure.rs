//! The module closure of a request list: every module modprobe would load
//! for each name or alias (dependencies, softdeps, config aliases), plus the
//! weakdeps of each included module, with builtins left out — computed with
//! earlymod-core's resolver, exactly as `modprobe -D` plans it.

use std::collections::{BTreeMap, BTreeSet};

use earlymod_core::config::{Config, Diag};
use earlymod_core::db::ModuleDb;
use earlymod_core::name::{AliasBuf, normalize_alias};
use earlymod_core::probe::{
    Candidates, NameArena, NothingLoaded, ProbeFlags, Resolver, Skip, Steps,
};

/// What the closure found.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Closure {
    /// Included modules: name → path relative to the module directory.
    pub modules: BTreeMap<String, String>,
    /// Requested or needed modules that are builtin (nothing to include).
    pub builtin: BTreeSet<String>,
    /// Requests that resolved to nothing, or failed: one line each.
    pub errors: Vec<String>,
    /// Things worth a warning (blacklisted targets, install commands).
    pub warnings: Vec<String>,
    /// Why each included module is in: the first reason found.
    pub why: BTreeMap<String, Why>,
    /// What each request resolved to, in request order.
    pub answers: Vec<Answer>,
}

/// Why a module is in the closure.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Why {
    /// A request resolved to it (the request as given, its origin).
    Requested(String, Origin),
    /// A dependency (`modules.dep`) of this module.
    Dependency(String),
    /// A softdep of this module (or a dependency of one).
    Softdep(String),
    /// A weakdep of this module.
    Weakdep(String),
}

/// Where a request came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    /// The config's `load`/`include`, or `-m`.
    Config,
    /// A device of this machine (`--host-only`).
    Device,
    /// The mounted root's filesystem (`--host-only`).
    RootFs,
    /// The chain of the root's (or `/usr`'s, or swap's) block device
    /// (`--host-only`).
    RootChain,
    /// A keyboard's chain (`--host-only`).
    Keyboard,
}

impl Origin {
    /// The word the pack report uses.
    pub fn word(self) -> &'static str {
        match self {
            Origin::Config => "config",
            Origin::Device => "device",
            Origin::RootFs => "rootfs",
            Origin::RootChain => "rootchain",
            Origin::Keyboard => "keyboard",
        }
    }
}

/// What one request resolved to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer {
    /// The request as given.
    pub request: String,
    /// Its origin.
    pub origin: Origin,
    /// The outcome.
    pub outcome: Outcome,
}

/// The outcome of one request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// These modules serve it (included with their closures).
    Modules(Vec<String>),
    /// Built into the kernel.
    Builtin(Vec<String>),
    /// No module or alias of that name.
    NoDriver,
    /// Only blacklisted modules serve it.
    Blacklisted(Vec<String>),
    /// The lookup or the probe list failed.
    Failed(String),
}

impl std::fmt::Display for Why {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Why::Requested(r, Origin::Config) => write!(f, "requested ({r})"),
            Why::Requested(r, Origin::Device) => write!(f, "device {r}"),
            Why::Requested(r, Origin::RootFs) => write!(f, "root filesystem ({r})"),
            Why::Requested(r, Origin::RootChain) => write!(f, "root device chain ({r})"),
            Why::Requested(r, Origin::Keyboard) => write!(f, "keyboard ({r})"),
            Why::Dependency(m) => write!(f, "dependency of {m}"),
            Why::Softdep(m) => write!(f, "softdep of {m}"),
            Why::Weakdep(m) => write!(f, "weakdep of {m}"),
        }
    }
}

impl std::fmt::Display for Outcome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Outcome::Modules(m) => write!(f, "{}", m.join(" ")),
            Outcome::Builtin(m) => write!(f, "built in: {}", m.join(" ")),
            Outcome::NoDriver => f.write_str("no driver"),
            Outcome::Blacklisted(m) => write!(f, "blacklisted: {}", m.join(" ")),
            Outcome::Failed(e) => write!(f, "failed: {e}"),
        }
    }
}

/// modprobe.d texts in libkmod's order (sorted by file name), parsed into
/// one configuration. Bad lines are reported through `diag` as
/// `file line N: reason`.
pub fn parse_config<'a>(
    files: &'a mut [(String, Vec<u8>)],
    diag: &mut dyn FnMut(String),
) -> Config<'a> {
    files.sort_by(|a, b| a.0.cmp(&b.0));
    let mut cfg = Config::new();
    for (name, text) in files.iter_mut() {
        let shown = name.clone();
        let r = cfg.parse_file(text, &mut |d| match d {
            Diag::BadLine { line, cmd } => diag(format!(
                "{shown} line {line}: ignoring bad line starting with '{cmd}'"
            )),
            Diag::Deprecated { cmd } => diag(format!(
                "{shown}: command {cmd} is deprecated and not parsed anymore"
            )),
        });
        if let Err(e) = r {
            diag(format!("{shown}: {e}"));
        }
    }
    cfg
}

impl Closure {
    /// Adds the closure of every request (module names or aliases) the
    /// config asks for ([`Origin::Config`]: each must resolve).
    pub fn add(&mut self, db: &ModuleDb<'_>, cfg: &Config<'_>, requests: &[String]) {
        let with: Vec<(String, Origin)> = requests
            .iter()
            .map(|r| (r.clone(), Origin::Config))
            .collect();
        self.add_from(db, cfg, &with);
    }

    /// [`Closure::add`] with each request's origin: anything but
    /// [`Origin::Config`] is optional (the host's needs).
    pub fn add_from(&mut self, db: &ModuleDb<'_>, cfg: &Config<'_>, requests: &[(String, Origin)]) {
        let resolver = Resolver { db, cfg };
        let mut pending: Vec<(String, Origin, Option<String>)> = requests
            .iter()
            .map(|(r, o)| (r.clone(), *o, None))
            .collect();
        let mut seen_weak: BTreeSet<String> = BTreeSet::new();
        let mut weak_pending: Vec<(String, Origin, Option<String>)> = Vec::new();
        while !pending.is_empty() {
            let before: BTreeSet<String> = self.modules.keys().cloned().collect();
            for (req, origin, weak_of) in std::mem::take(&mut pending) {
                // A weakdep that is missing from the tree is not an error.
                let optional = origin != Origin::Config || weak_of.is_some();
                self.add_one(&resolver, &req, optional, origin, weak_of);
            }
            // Weakdeps of every newly included module (initramfs tools
            // include them; modprobe never loads them by itself).
            for name in self.modules.keys() {
                if before.contains(name) {
                    continue;
                }
                for (module, weak) in cfg.weakdeps.iter() {
                    if *module == name.as_str() {
                        for w in weak.split_ascii_whitespace() {
                            if seen_weak.insert(w.to_string()) {
                                weak_pending.push((
                                    w.to_string(),
                                    Origin::Config,
                                    Some(name.clone()),
                                ));
                            }
                        }
                    }
                }
            }
            pending = std::mem::take(&mut weak_pending);
        }
    }

    fn add_one(
        &mut self,
        resolver: &Resolver<'_, '_>,
        req: &str,
        optional: bool,
        origin: Origin,
        weak_of: Option<String>,
    ) {
        let outcome = self.resolve_one(resolver, req, optional, origin, weak_of.as_deref());
        if weak_of.is_none() {
            self.answers.push(Answer {
                request: req.to_string(),
                origin,
                outcome,
            });
        }
    }

    fn resolve_one(
        &mut self,
        resolver: &Resolver<'_, '_>,
        req: &str,
        optional: bool,
        origin: Origin,
        weak_of: Option<&str>,
    ) -> Outcome {
        let mut key = AliasBuf::new();
        if let Err(e) = normalize_alias(req, &mut key) {
            self.errors.push(format!("{req}: {e}"));
            return Outcome::Failed(e.to_string());
        }
        let mut found = Candidates::new();
        match resolver.lookup(&key, &mut found) {
            Ok(_) if found.is_empty() && optional => return Outcome::NoDriver,
            Ok(_) if found.is_empty() => {
                self.errors.push(format!(
                    "{req}: no module or alias of that name in the tree"
                ));
                return Outcome::NoDriver;
            }
            Ok(_) => {}
            Err(e) => {
                self.errors.push(format!("{req}: {e}"));
                return Outcome::Failed(e.to_string());
            }
        }
        let (mut served, mut builtin, mut blacklisted) = (Vec::new(), Vec::new(), Vec::new());
        let mut failed = None;
        let names = NameArena::new();
        let mut steps = Steps::new();
        let flags = ProbeFlags {
            ignore_loaded: true,
            ..ProbeFlags::default()
        };
        for c in found.iter() {
            if c.builtin {
                self.builtin.insert(c.name.to_string());
                push_once(&mut builtin, &c.name);
                continue;
            }
            match resolver.probe_list(c, flags, &NothingLoaded, &names, &mut steps) {
                Ok(Ok(())) => {}
                Ok(Err(Skip::Blacklisted)) => {
                    self.warnings.push(format!(
                        "{req}: module {} is blacklisted, not included",
                        c.name
                    ));
                    push_once(&mut blacklisted, &c.name);
                    continue;
                }
                Ok(Err(Skip::AlreadyLoaded)) => continue,
                Err(e) => {
                    self.errors.push(format!("{req}: module {}: {e}", c.name));
                    failed = Some(format!("module {}: {e}", c.name));
                    continue;
                }
            }
            for s in steps.iter() {
                let why = match (s.is_target, s.required, weak_of) {
                    (true, _, Some(w)) => Why::Weakdep(w.to_string()),
                    (true, _, None) => Why::Requested(req.to_string(), origin),
                    (false, true, _) => Why::Dependency(c.name.to_string()),
                    (false, false, _) => Why::Softdep(c.name.to_string()),
                };
                if let Some(cmd) = s.install {
                    self.warnings.push(format!(
                        "{}: has an install command ('{cmd}'): the programs it runs must be in the image",
                        s.name
                    ));
                }
                match s.path {
                    Some(p) => {
                        self.modules
                            .entry(s.name.to_string())
                            .or_insert_with(|| p.to_string());
                        self.why.entry(s.name.to_string()).or_insert(why);
                        if s.is_target {
                            push_once(&mut served, &s.name);
                        }
                    }
                    None if s.builtin || resolver.is_builtin(&s.name).unwrap_or(false) => {
                        self.builtin.insert(s.name.to_string());
                        if s.is_target {
                            push_once(&mut builtin, &s.name);
                        }
                    }
                    None if s.install.is_some() => {}
                    None => self
                        .errors
                        .push(format!("{req}: module {} not found in the tree", s.name)),
                }
            }
        }
        match failed {
            Some(e) if served.is_empty() && builtin.is_empty() => Outcome::Failed(e),
            _ if !served.is_empty() => Outcome::Modules(served),
            _ if !builtin.is_empty() => Outcome::Builtin(builtin),
            _ if !blacklisted.is_empty() => Outcome::Blacklisted(blacklisted),
            _ => Outcome::NoDriver,
        }
    }
}

fn push_once(list: &mut Vec<String>, name: &str) {
    if !list.iter().any(|n| n == name) {
        list.push(name.to_string());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use earlymod_core::db::Source;

    const DEP: &[u8] = b"kernel/fs/foo.ko.xz: kernel/lib/bar.ko.xz kernel/lib/baz.ko.xz\n\
kernel/lib/bar.ko.xz: kernel/lib/baz.ko.xz\n\
kernel/lib/baz.ko.xz:\n\
kernel/crypto/soft.ko.xz:\n\
kernel/crypto/weak.ko.xz:\n\
kernel/drivers/pcspkr.ko.xz:\n\
kernel/drivers/nic.ko.xz: kernel/lib/baz.ko.xz\n";
    const ALIAS: &[u8] = b"alias pci:v00008086d0000100E* nic\nalias platform:pcspkr pcspkr\nalias crypto-soft soft\n";

    fn run(requests: &[&str], config: &str, optional: bool) -> Closure {
        let db = ModuleDb {
            dep: Source::new(None, Some(DEP)),
            alias: Source::new(None, Some(ALIAS)),
            symbols: Source::Missing,
            builtin: Source::new(None, Some(b"kernel/lib/crc16.ko\n")),
            builtin_alias: Source::Missing,
        };
        let mut files = vec![("x.conf".to_string(), config.as_bytes().to_vec())];
        let mut diags = Vec::new();
        let cfg = parse_config(&mut files, &mut |m| diags.push(m));
        assert!(diags.is_empty(), "{diags:?}");
        let mut c = Closure::default();
        // Optional requests stand for the host's devices (`fs-TYPE`: its
        // root filesystem), as --host-only makes them.
        let req: Vec<(String, Origin)> = requests
            .iter()
            .map(|r| {
                let o = match (optional, r.starts_with("fs-")) {
                    (false, _) => Origin::Config,
                    (true, true) => Origin::RootFs,
                    (true, false) => Origin::Device,
                };
                (r.to_string(), o)
            })
            .collect();
        c.add_from(&db, &cfg, &req);
        c
    }

    fn names(c: &Closure) -> Vec<&str> {
        c.modules.keys().map(String::as_str).collect()
    }

    #[test]
    fn dependencies_softdeps_weakdeps_builtins() {
        let c = run(
            &["foo", "crc16", "pci:v00008086d0000100Esv0sd0bc02sc00i00"],
            "softdep foo pre: crypto-soft\nweakdep nic weak\n",
            false,
        );
        assert_eq!(names(&c), ["bar", "baz", "foo", "nic", "soft", "weak"]);
        assert_eq!(c.modules["foo"], "kernel/fs/foo.ko.xz");
        assert_eq!(c.builtin.iter().collect::<Vec<_>>(), ["crc16"]);
        assert!(c.errors.is_empty() && c.warnings.is_empty(), "{c:?}");
    }

    #[test]
    fn blacklist_applies_to_aliases_only_and_misses_are_errors() {
        let c = run(
            &["platform:pcspkr", "nosuch", "pci:v00001234d00000001"],
            "blacklist pcspkr\n",
            false,
        );
        assert!(names(&c).is_empty());
        assert_eq!(c.warnings.len(), 1, "{c:?}");
        assert!(c.warnings[0].contains("pcspkr is blacklisted"));
        assert_eq!(
            c.errors,
            [
                "nosuch: no module or alias of that name in the tree",
                "pci:v00001234d00000001: no module or alias of that name in the tree"
            ]
        );
        // By name, modprobe loads a blacklisted module.
        assert_eq!(
            names(&run(&["pcspkr"], "blacklist pcspkr\n", false)),
            ["pcspkr"]
        );
        // Device modaliases without a driver are not errors.
        assert!(run(&["pci:v00001234d00000001"], "", true).errors.is_empty());
    }

    #[test]
    fn config_alias_and_install_warning() {
        let c = run(
            &["mynic"],
            "alias mynic nic\ninstall baz /bin/true\n",
            false,
        );
        assert_eq!(names(&c), ["baz", "nic"]);
        assert!(
            c.warnings
                .iter()
                .any(|w| w.contains("baz: has an install command")),
            "{c:?}"
        );
    }
}
