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
    /// Adds the closure of every request (module names or aliases). An
    /// `optional` request that resolves to nothing is not an error (a
    /// device's modalias that no module serves).
    pub fn add(
        &mut self,
        db: &ModuleDb<'_>,
        cfg: &Config<'_>,
        requests: &[String],
        optional: bool,
    ) {
        let resolver = Resolver { db, cfg };
        let mut pending: Vec<String> = requests.to_vec();
        let mut seen_weak: BTreeSet<String> = BTreeSet::new();
        let mut weak_pending: Vec<String> = Vec::new();
        let mut optional = optional;
        while !pending.is_empty() {
            let before: BTreeSet<String> = self.modules.keys().cloned().collect();
            for req in std::mem::take(&mut pending) {
                self.add_one(&resolver, &req, optional);
            }
            // A weakdep that is missing from the tree is not an error.
            optional = true;
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
                                weak_pending.push(w.to_string());
                            }
                        }
                    }
                }
            }
            pending = std::mem::take(&mut weak_pending);
        }
    }

    fn add_one(&mut self, resolver: &Resolver<'_, '_>, req: &str, optional: bool) {
        let mut key = AliasBuf::new();
        if let Err(e) = normalize_alias(req, &mut key) {
            self.errors.push(format!("{req}: {e}"));
            return;
        }
        let mut found = Candidates::new();
        match resolver.lookup(&key, &mut found) {
            Ok(_) if found.is_empty() && optional => return,
            Ok(_) if found.is_empty() => {
                self.errors.push(format!(
                    "{req}: no module or alias of that name in the tree"
                ));
                return;
            }
            Ok(_) => {}
            Err(e) => {
                self.errors.push(format!("{req}: {e}"));
                return;
            }
        }
        let names = NameArena::new();
        let mut steps = Steps::new();
        let flags = ProbeFlags {
            ignore_loaded: true,
            ..ProbeFlags::default()
        };
        for c in found.iter() {
            if c.builtin {
                self.builtin.insert(c.name.to_string());
                continue;
            }
            match resolver.probe_list(c, flags, &NothingLoaded, &names, &mut steps) {
                Ok(Ok(())) => {}
                Ok(Err(Skip::Blacklisted)) => {
                    self.warnings.push(format!(
                        "{req}: module {} is blacklisted, not included",
                        c.name
                    ));
                    continue;
                }
                Ok(Err(Skip::AlreadyLoaded)) => continue,
                Err(e) => {
                    self.errors.push(format!("{req}: module {}: {e}", c.name));
                    continue;
                }
            }
            for s in steps.iter() {
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
                    }
                    None if s.builtin || resolver.is_builtin(&s.name).unwrap_or(false) => {
                        self.builtin.insert(s.name.to_string());
                    }
                    None if s.install.is_some() => {}
                    None => self
                        .errors
                        .push(format!("{req}: module {} not found in the tree", s.name)),
                }
            }
        }
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
        let req: Vec<String> = requests.iter().map(|s| s.to_string()).collect();
        c.add(&db, &cfg, &req, optional);
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
