//! [`Context`]: one module directory as modprobe sees it — its indexes,
//! the modprobe.d configuration and the kernel command line's module
//! options and blacklist — opened once, then asked with a
//! [`Resolver`]. `modprobe`, `modinfo` and PID 1 all start here, and so
//! does a program that embeds earlymod:
//!
//! ```no_run
//! use earlymod::context::{ConfigStore, Context};
//! use earlymod::moddir::{self, ModDir};
//! use earlymod_core::probe::Candidates;
//!
//! let dir = ModDir::open(moddir::dirname_for(None, None)); // /lib/modules/$(uname -r)
//! let mut store = ConfigStore::new();
//! let ctx = Context::open(&dir, &moddir::DEFAULT_CONFIG_PATHS, &mut store, &mut |_line| {});
//! let mut found = Candidates::new();
//! ctx.resolver().lookup("ext4", &mut found).expect("readable indexes");
//! ```
//!
//! No heap: the configuration files are mapped (privately: the parser works
//! in place) into a [`ConfigStore`] the caller owns, and the [`Context`]
//! borrows them.

use crate::moddir::{self, ModDir};
use crate::sys::Mapped;
#[cfg(feature = "cmdline")]
use earlymod_core::cmdline::apply_kernel_cmdline;
use earlymod_core::config::{Config, Diag};
use earlymod_core::db::ModuleDb;
use earlymod_core::load::{self, Kernel, LoadError, Method, RunFlags};
use earlymod_core::name::AliasBuf;
use earlymod_core::probe::{
    Candidate, Candidates, Found, KernelState, NameArena, NothingLoaded, ProbeFlags, Resolver,
    Skip, Step, Steps,
};
use earlymod_core::text::Piece;

/// Longest kernel command line read (the kernel's own bound on x86 and
/// arm64 is 2048 or 4096 bytes).
pub const MAX_CMDLINE: usize = 4096;

/// The memory a [`Context`]'s configuration lives in: the mapped config
/// files and the kernel command line. Owned by the caller, so that a
/// [`Context`] needs no heap.
pub struct ConfigStore {
    maps: heapless::Vec<Mapped, { moddir::MAX_CONFIG_FILES + moddir::MODDIR_CONFIGS.len() }>,
    #[cfg(feature = "cmdline")]
    cmdline: [u8; MAX_CMDLINE],
}

impl ConfigStore {
    /// An empty store.
    pub fn new() -> Self {
        ConfigStore {
            maps: heapless::Vec::new(),
            #[cfg(feature = "cmdline")]
            cmdline: [0; MAX_CMDLINE],
        }
    }
}

impl Default for ConfigStore {
    fn default() -> Self {
        Self::new()
    }
}

/// A module directory with its configuration: what modprobe resolves
/// against. See the [module documentation](self).
pub struct Context<'s> {
    dir: &'s ModDir,
    db: ModuleDb<'s>,
    cfg: Config<'s>,
}

impl<'s> Context<'s> {
    /// Reads the configuration as kmod does — the files of `configs`
    /// (directories or files: [`moddir::DEFAULT_CONFIG_PATHS`], or `-C`'s)
    /// and the module directory's `modules.softdep`/`modules.weakdep`, in
    /// libkmod's order, then (feature `cmdline`) `/proc/cmdline`'s module
    /// options and blacklist. Without the `config` feature only the module
    /// directory's files are read.
    ///
    /// Never fails: each problem (a file that cannot be read, a bad line,
    /// too many files, a full bound) is one line given to `diag` — the
    /// words modprobe prints after `modprobe: ERROR: ` — and the rest is
    /// used.
    pub fn open(
        dir: &'s ModDir,
        configs: &[&str],
        store: &'s mut ConfigStore,
        diag: &mut dyn FnMut(&[&dyn Piece]),
    ) -> Context<'s> {
        #[cfg(not(feature = "config"))]
        let configs: &[&str] = {
            let _ = configs;
            &[]
        };
        let mut dropped = moddir::Dropped::default();
        let files = moddir::config_files(
            configs,
            &mut |p, n| {
                diag(&[
                    &"Directories inside directories are not supported: ",
                    &p,
                    &"/",
                    &n,
                ])
            },
            &mut dropped,
        );
        if dropped.count > 0 {
            diag(&[
                &"too many config files (limit ",
                &moddir::MAX_CONFIG_FILES,
                &"): ",
                &dropped.count,
                &" not read, from ",
                &dropped.first.as_str(),
                &" on (in name order)",
            ]);
        }
        // Which file each map holds (an index into `files`).
        let mut of: heapless::Vec<
            usize,
            { moddir::MAX_CONFIG_FILES + moddir::MODDIR_CONFIGS.len() },
        > = heapless::Vec::new();
        store.maps.clear();
        for (i, (name, src)) in files.iter().enumerate() {
            let Some(path) = moddir::config_path(&dir.dirname, configs, name, *src) else {
                continue;
            };
            match Mapped::open_checked(path.as_cstr(), true) {
                // Cannot overflow: one map per listed file.
                Ok(m) => {
                    let _ = store.maps.push(m);
                    let _ = of.push(i);
                }
                // Gone since it was listed (modules.softdep/.weakdep are optional).
                Err(2) => {}
                Err(0) => diag(&[&path.as_str(), &": not a regular file, not read"]),
                Err(e) => diag(&[&path.as_str(), &": cannot read: ", &load::Errno(e)]),
            }
        }
        let mut cfg = Config::new();
        let ConfigStore {
            maps,
            #[cfg(feature = "cmdline")]
            cmdline,
        } = store;
        for (m, &i) in maps.iter_mut().zip(of.iter()) {
            let (name, src) = &files[i];
            let path = moddir::config_path(&dir.dirname, configs, name, *src);
            let shown = path.as_ref().map_or("?", |p| p.as_str());
            let r = cfg.parse_file(m.bytes_mut(), &mut |d| match d {
                Diag::BadLine { line, cmd } => diag(&[
                    &shown,
                    &" line ",
                    &line,
                    &": ignoring bad line starting with '",
                    &cmd,
                    &"'",
                ]),
                Diag::Deprecated { cmd } => diag(&[
                    &shown,
                    &": command ",
                    &cmd,
                    &" is deprecated and not parsed anymore",
                ]),
            });
            if let Err(e) = r {
                diag(&[&shown, &": ", &e]);
            }
        }
        #[cfg(feature = "cmdline")]
        {
            let n = crate::sys::read_small(c"/proc/cmdline", cmdline).map_or(0, |b| b.len());
            if let Err(e) = apply_kernel_cmdline(&mut cfg, &mut cmdline[..n], &mut |m| {
                diag(&[
                    &"Ignoring bad option on kernel command line while parsing module name: '",
                    &m,
                    &"'",
                ])
            }) {
                diag(&[&"/proc/cmdline: ", &e]);
            }
        }
        Context {
            dir,
            db: dir.db(),
            cfg,
        }
    }

    /// The resolver over this directory and configuration: lookups, probe
    /// lists, the loaded-state questions.
    pub fn resolver(&self) -> Resolver<'_, 's> {
        Resolver {
            db: &self.db,
            cfg: &self.cfg,
        }
    }

    /// modprobe's lookup of `name` (a module name or an alias, `-` and `_`
    /// alike): config aliases, `modules.dep`, `modules.alias`,
    /// `modules.symbols`, `modules.builtin`, in kmod's order. Every match
    /// goes into `found` (borrowing `key`, the normalised name). A name
    /// kmod cannot normalise (an unbalanced `[` or `]`) finds nothing, as
    /// in kmod; the error is an index that cannot answer or a bound.
    pub fn lookup<'k>(
        &self,
        name: &str,
        key: &'k mut AliasBuf,
        found: &mut Candidates<'k>,
    ) -> earlymod_core::Result<Found>
    where
        's: 'k,
    {
        match self.resolver().lookup_user(name, key, found) {
            Err(earlymod_core::Error::InvalidAlias) => {
                found.clear();
                Ok(Found::Nothing)
            }
            r => r,
        }
    }

    /// `modprobe NAME`: [`lookup`](Self::lookup), then
    /// [`probe`](Self::probe) of every module found, in kmod's order.
    /// `found` 0 is kmod's "not found"; an index that cannot answer is the
    /// error.
    pub fn modprobe<K: Kernel>(
        &self,
        name: &str,
        kernel: &mut K,
        opts: &Options<'_>,
        events: &mut dyn FnMut(Event<'_>),
    ) -> earlymod_core::Result<Probed> {
        let mut key = AliasBuf::new();
        let mut found = Candidates::new();
        self.lookup(name, &mut key, &mut found)?;
        let mut done = Probed {
            found: found.len(),
            failed: 0,
        };
        for c in found.iter() {
            if !self.probe(c, kernel, opts, events) {
                done.failed += 1;
            }
        }
        Ok(done)
    }

    /// `modprobe -r` of one module a lookup found, as kmod 34 removes it
    /// ([`earlymod_core::remove::remove`]): `remove` commands, holders
    /// with `--remove-holders`, then its dependencies that nothing else
    /// uses. `events` hears of each step; false when the removal failed
    /// (an event says why), the error when an index cannot answer.
    pub fn remove(
        &self,
        target: &Candidate<'_>,
        flags: earlymod_core::remove::RemoveFlags,
        kernel: &mut dyn earlymod_core::remove::Remover,
        events: &mut dyn FnMut(earlymod_core::remove::Event<'_>),
    ) -> earlymod_core::Result<bool> {
        earlymod_core::remove::remove(&self.resolver(), target, flags, kernel, events)
    }

    /// `modprobe -r NAME`: [`lookup`](Self::lookup), then
    /// [`remove`](Self::remove) of each module found, stopping at the first
    /// that fails, as kmod does. `found` 0 is "not found".
    pub fn remove_named(
        &self,
        name: &str,
        flags: earlymod_core::remove::RemoveFlags,
        kernel: &mut dyn earlymod_core::remove::Remover,
        events: &mut dyn FnMut(earlymod_core::remove::Event<'_>),
    ) -> earlymod_core::Result<Probed> {
        let mut key = AliasBuf::new();
        let mut found = Candidates::new();
        self.lookup(name, &mut key, &mut found)?;
        let mut done = Probed {
            found: found.len(),
            failed: 0,
        };
        for c in found.iter() {
            if !self.remove(c, flags, kernel, events)? {
                done.failed = 1;
                break;
            }
        }
        Ok(done)
    }

    /// Loads `target` and what it needs, as `modprobe` does for each
    /// module a lookup found: its probe list (dependencies, softdeps,
    /// install commands, blacklist and loaded state per `opts.probe`), then
    /// each entry through the loader's policy ([`load::run_probe`]) with
    /// its modprobe.d and command-line options, `opts.extra` for the target
    /// itself, and `opts.file` in place of the target's own file
    /// (`modprobe /dir/x.ko`). `events` hears of each entry and of what
    /// failed. True when the target is in the kernel (or nothing had to
    /// be done); false when the probe failed (the last event says why).
    // Not inlined: one copy for every caller (modprobe, the helpers) is
    // 900 B smaller and a call per module costs nothing measurable.
    #[inline(never)]
    pub fn probe<K: Kernel>(
        &self,
        target: &Candidate<'_>,
        kernel: &mut K,
        opts: &Options<'_>,
        events: &mut dyn FnMut(Event<'_>),
    ) -> bool {
        let names = NameArena::new();
        let mut steps = Steps::new();
        let state: &dyn KernelState = if opts.probe.ignore_loaded {
            &NothingLoaded
        } else {
            &*kernel
        };
        let r = self.resolver();
        match r.probe_list(target, opts.probe, state, &names, &mut steps) {
            Err(e) => {
                events(Event::PlanFailed(e));
                false
            }
            Ok(Err(Skip::AlreadyLoaded)) if opts.run.fail_on_loaded => {
                events(Event::AlreadyLoaded);
                false
            }
            Ok(Err(skip)) => {
                events(Event::Skipped(skip));
                true
            }
            Ok(Ok(())) => {
                if let Some(f) = opts.file {
                    for s in steps.iter_mut().filter(|s| s.is_target) {
                        s.path = Some(f);
                    }
                }
                let result = load::run_probe(
                    &r,
                    &self.dir.dirname,
                    &steps,
                    opts.extra,
                    opts.run,
                    kernel,
                    &mut |o, params| {
                        events(Event::Entry {
                            step: o.step,
                            params,
                            result: &o.result,
                        })
                    },
                );
                match result {
                    Ok(()) => true,
                    Err((i, e)) => {
                        events(Event::Failed {
                            step: &steps[i],
                            error: &e,
                        });
                        false
                    }
                }
            }
        }
    }

    /// The modules in the running kernel (`/proc/modules`), as `lsmod`
    /// lists them.
    pub fn loaded(&self) -> Result<crate::kernel::Loaded, load::Errno> {
        crate::kernel::Loaded::open()
    }

    /// The module directory.
    pub fn dir(&self) -> &'s ModDir {
        self.dir
    }

    /// The configuration (modprobe.d and the command line).
    pub fn config(&self) -> &Config<'s> {
        &self.cfg
    }
}

/// What [`Context::modprobe`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Probed {
    /// Modules the lookup found (0: not found).
    pub found: usize,
    /// Of those, probes that failed (the events say why).
    pub failed: usize,
}

/// How [`Context::probe`] loads: modprobe's switches.
#[derive(Debug, Clone, Copy, Default)]
pub struct Options<'o> {
    /// How the probe list is built (`-i`, `-b`, loaded state).
    pub probe: ProbeFlags,
    /// How it is run (`-n`, `--first-time`, `-f`).
    pub run: RunFlags,
    /// Options for the target itself (modprobe's words after the name).
    pub extra: &'o str,
    /// The file to load for the target instead of its `modules.dep` path.
    pub file: Option<&'o str>,
}

/// What [`Context::probe`] tells as it goes.
#[derive(Debug)]
pub enum Event<'e> {
    /// One probe-list entry acted on (in a dry run, only reached) with the
    /// options it got, and how it went: what `modprobe -v` prints.
    Entry {
        /// The entry.
        step: &'e Step<'e, 'e>,
        /// Its options (modprobe.d, the command line, the target's extra).
        params: &'e str,
        /// Loaded, and how, or why not.
        result: &'e Result<Method, LoadError>,
    },
    /// The probe list could not be built (an index that cannot answer, a
    /// bound): nothing was loaded.
    PlanFailed(earlymod_core::Error),
    /// `--first-time`, and the target is in the kernel already.
    AlreadyLoaded,
    /// Nothing to do for the target: it is live or builtin already, or
    /// blacklisted (it was reached through an alias, or `-b`).
    Skipped(Skip),
    /// A required entry (the target or one of its dependencies) failed:
    /// the probe stops here.
    Failed {
        /// The entry that failed.
        step: &'e Step<'e, 'e>,
        /// Why.
        error: &'e LoadError,
    },
}

#[cfg(test)]
mod tests {
    extern crate std;
    use super::*;
    use earlymod_core::fake::FakeKernel;
    use earlymod_core::load::errno;
    use std::string::{String, ToString};
    use std::vec::Vec;

    /// A module directory and a modprobe.d on disk, a fake kernel: the
    /// embedder's whole sequence (open, lookup, probe) on the host.
    #[test]
    fn open_lookup_probe_against_a_fake_kernel() {
        let base = std::env::temp_dir().join(std::format!("earlymod-ctx-{}", std::process::id()));
        let (moddir, conf) = (base.join("mods"), base.join("conf.d"));
        std::fs::create_dir_all(&moddir).unwrap();
        std::fs::create_dir_all(&conf).unwrap();
        std::fs::write(
            moddir.join("modules.dep"),
            "kernel/ctx_a.ko: kernel/ctx_b.ko\nkernel/ctx_b.ko:\n",
        )
        .unwrap();
        std::fs::write(moddir.join("modules.alias"), "alias fs-ctxfs ctx_a\n").unwrap();
        std::fs::write(conf.join("a.conf"), "options ctx_a x=1\nbogus line\n").unwrap();
        let dirname = moddir.to_str().unwrap();
        let dir = ModDir::open(moddir::DirName::try_from(dirname).unwrap());
        let conf = conf.to_str().unwrap().to_string();
        let mut store = ConfigStore::new();
        let mut diags: Vec<String> = Vec::new();
        let ctx = Context::open(&dir, &[conf.as_str()], &mut store, &mut |line| {
            let mut t = crate::log::Text(String::new());
            line.put_to(&mut t);
            diags.push(t.0);
        });
        assert_eq!(diags.len(), 1, "{diags:?}");
        assert!(diags[0].ends_with("line 2: ignoring bad line starting with 'bogus'"));

        let mut key = AliasBuf::new();
        let mut found = Candidates::new();
        assert_eq!(
            ctx.lookup("fs-ctxfs", &mut key, &mut found),
            Ok(Found::Alias)
        );
        let (a, b) = (
            std::format!("{dirname}/kernel/ctx_a.ko"),
            std::format!("{dirname}/kernel/ctx_b.ko"),
        );
        let files: &[(&str, &[u8])] = &[(&a, b"\x7fELF"), (&b, b"\x7fELF")];
        let opts = Options {
            extra: "y=2",
            ..Options::default()
        };
        let mut kernel = FakeKernel::new(files);
        let mut seen: Vec<String> = Vec::new();
        let ok = ctx.probe(&found[0], &mut kernel, &opts, &mut |ev| {
            if let Event::Entry {
                step,
                params,
                result,
            } = ev
            {
                seen.push(std::format!("{} [{params}] {:?}", step.name, result));
            }
        });
        assert!(ok);
        assert_eq!(seen, ["ctx_b [] Ok(File)", "ctx_a [x=1 y=2] Ok(File)"]);

        // The target fails: the probe says which entry and why.
        let mut kernel = FakeKernel::new(files).failing(&[("ctx_a", errno::ENOEXEC)]);
        let mut failed = None;
        let ok = ctx.probe(&found[0], &mut kernel, &opts, &mut |ev| {
            if let Event::Failed { step, error } = ev {
                failed = Some((step.name.to_string(), error.clone()));
            }
        });
        assert!(!ok);
        let (name, error) = failed.unwrap();
        assert_eq!(name, "ctx_a");
        assert_eq!(error, LoadError::Kernel(load::Errno(errno::ENOEXEC)));
        // The one call: lookup and probe; a miss is found 0.
        let mut kernel = FakeKernel::new(files).with_live("ctx_b").unwrap();
        let done = ctx.modprobe("ctx-a", &mut kernel, &opts, &mut |_| {});
        assert_eq!(
            done,
            Ok(Probed {
                found: 1,
                failed: 0
            })
        );
        assert_eq!(kernel.live().len(), 2);
        let miss = ctx.modprobe("nothing", &mut kernel, &opts, &mut |_| {});
        assert_eq!(
            miss,
            Ok(Probed {
                found: 0,
                failed: 0
            })
        );
        let _ = std::fs::remove_dir_all(&base);
    }
}
