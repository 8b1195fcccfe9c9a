//! Loading a batch of requests (names, aliases, modaliases) the way
//! modprobe would load each, but as one plan: every module once,
//! dependencies strictly before dependents (hard edges), softdeps ordered
//! (soft edges), independent modules in parallel child processes.

use alloc::string::{String, ToString};
use alloc::vec::Vec;
use core::fmt::Write;

use earlymod_core::db::DepLine;
use earlymod_core::load::{Errno, InsertFlags, Kernel, LoadError, Params, errno, insert_file};
use earlymod_core::name::{AliasBuf, normalize_alias};
use earlymod_core::probe::{
    Candidates, InitState, KernelState, NameArena, ProbeFlags, Resolver, Skip, Steps, step_options,
};
use earlymod_core::sched::{JobState, Schedule};
use rustix::runtime::Fork;

use super::klog::Klog;
use crate::kernel::Live;
use crate::sys::CPath;

/// One module to load.
pub struct Job {
    /// Module name.
    pub name: String,
    /// Path from modules.dep (relative to the module directory or absolute).
    pub path: Option<String>,
    /// Options string.
    pub options: String,
    /// Install command to run instead.
    pub install: Option<String>,
    /// Load time in microseconds (from start to exit of the load).
    pub micros: u64,
    /// Why it failed, if it did.
    pub error: Option<String>,
}

/// A batch: jobs, their ordering, and what was asked.
#[derive(Default)]
pub struct Plan {
    /// The jobs.
    pub jobs: Vec<Job>,
    sched: Schedule,
    /// Module names not loaded when reached through an alias
    /// (`rd.driver.blacklist=`).
    pub blacklist: Vec<String>,
}

fn live_or_builtin(r: &Resolver<'_, '_>, state: &dyn KernelState, name: &str) -> bool {
    r.is_builtin(name).unwrap_or(false) || state.initstate(name) == InitState::Live
}

impl Plan {
    fn job_of(&self, name: &str) -> Option<usize> {
        self.jobs.iter().position(|j| j.name == name)
    }

    /// Adds what `modprobe REQUEST` would load. `alias` requests are
    /// subject to the blacklist, as modprobe applies it to aliases.
    pub fn add(
        &mut self,
        r: &Resolver<'_, '_>,
        state: &dyn KernelState,
        moddir: &str,
        request: &str,
        log: &mut Klog,
    ) {
        let mut key = AliasBuf::new();
        let mut found = Candidates::new();
        let ok = normalize_alias(request, &mut key).and_then(|_| r.lookup(&key, &mut found));
        if let Err(e) = ok {
            log.line(format_args!("{request}: {e}"));
            return;
        }
        // Nothing found is no error here: most device modaliases have no
        // driver module.
        if found.is_empty() {
            return;
        }
        let names = NameArena::new();
        let mut steps = Steps::new();
        let flags = ProbeFlags::default();
        for c in found.iter() {
            if c.alias.is_some() && self.blacklist.iter().any(|b| *b == c.name.as_str()) {
                log.debug(format_args!(
                    "{request}: {} is blacklisted on the command line",
                    c.name
                ));
                continue;
            }
            match r.probe_list(c, flags, state, &names, &mut steps) {
                Ok(Ok(())) => {}
                Ok(Err(Skip::AlreadyLoaded)) => continue,
                Ok(Err(Skip::Blacklisted)) => {
                    log.line(format_args!(
                        "{request}: {} is blacklisted, not loaded",
                        c.name
                    ));
                    continue;
                }
                Err(e) => {
                    log.line(format_args!("{request}: {}: {e}", c.name));
                    continue;
                }
            }
            let mut ids: Vec<usize> = Vec::new();
            for s in steps.iter() {
                if s.install.is_none() && live_or_builtin(r, state, &s.name) {
                    continue;
                }
                let id = match self.job_of(&s.name) {
                    Some(id) => id,
                    None => {
                        let Ok(id) = self.sched.add_job() else {
                            log.line(format_args!("{}: too many modules in one batch", s.name));
                            continue;
                        };
                        let mut options = String::new();
                        let mut w = StrWriter(&mut options);
                        let _ = step_options(r.cfg, s, "", &mut w);
                        self.jobs.push(Job {
                            name: s.name.to_string(),
                            path: s.path.map(|p| {
                                if p.starts_with('/') {
                                    p.to_string()
                                } else {
                                    alloc::format!("{moddir}/{p}")
                                }
                            }),
                            options,
                            install: s.install.map(str::to_string),
                            micros: 0,
                            error: None,
                        });
                        id
                    }
                };
                ids.push(id);
            }
            // Edges: a dependency (modules.dep) is hard; a softdep orders.
            for (k, &i) in ids.iter().enumerate() {
                let deps =
                    r.db.dep_line(&self.jobs[i].name)
                        .ok()
                        .flatten()
                        .and_then(DepLine::parse);
                let sd = r.cfg.softdep_for(&self.jobs[i].name);
                for &j in &ids[..k] {
                    let jn = self.jobs[j].name.as_str();
                    let hard = deps.is_some_and(|d| {
                        d.deps().any(|p| {
                            earlymod_core::name::modname_from_path(p).is_ok_and(|n| n == jn)
                        })
                    });
                    let pre = sd.is_some_and(|sd| sd.pre().any(|p| same_module(p, jn)));
                    if hard || pre {
                        let _ = self.sched.add_edge(j, i, hard);
                    }
                }
                if let Some(sd) = sd {
                    for &j in &ids[k + 1..] {
                        // A module the list has before this one too (a
                        // dependency reached again as a softdep) stays first.
                        if ids[..k].contains(&j) {
                            continue;
                        }
                        if sd.post().any(|p| same_module(p, &self.jobs[j].name)) {
                            let _ = self.sched.add_edge(i, j, false);
                        }
                    }
                }
            }
        }
    }

    /// Runs the plan with up to `jobs` loads at a time through `runner`.
    pub fn run(&mut self, jobs: usize, runner: &mut dyn Runner, log: &mut Klog) {
        let mut running: Vec<(u32, usize, u64)> = Vec::new();
        loop {
            while running.len() < jobs.max(1) {
                let Some(i) = self.sched.next_ready() else {
                    break;
                };
                let t0 = super::now_us();
                match runner.start(&self.jobs[i], jobs > 1) {
                    Started::Finished(r) => self.finish(i, r, t0, log),
                    Started::Running(token) => running.push((token, i, t0)),
                }
            }
            // Nothing running and nothing ready: all done (next_ready
            // breaks ordering cycles when nothing runs).
            if running.is_empty() {
                break;
            }
            let Some((token, r)) = runner.wait() else {
                // The runner lost its children: count them as failed.
                for (_, i, t0) in core::mem::take(&mut running) {
                    self.finish(i, Err(Some("lost".to_string())), t0, log);
                }
                continue;
            };
            if let Some(k) = running.iter().position(|(t, _, _)| *t == token) {
                let (_, i, t0) = running.swap_remove(k);
                self.finish(i, r, t0, log);
            }
        }
        for i in 0..self.jobs.len() {
            if self.sched.state(i) == JobState::Skipped {
                let why = match self.sched.blocker(i) {
                    Some(b) => {
                        alloc::format!("not loaded: its dependency {} failed", self.jobs[b].name)
                    }
                    None => "not loaded".to_string(),
                };
                log.line(format_args!("{}: {why}", self.jobs[i].name));
                self.jobs[i].error = Some(why);
            }
        }
    }

    fn finish(&mut self, i: usize, r: Result<(), Option<String>>, t0: u64, log: &mut Klog) {
        let j = &mut self.jobs[i];
        j.micros = super::now_us().saturating_sub(t0);
        match r {
            Ok(()) => {
                log.debug(format_args!("loaded {} in {} us", j.name, j.micros));
                self.sched.finish(i, true);
            }
            Err(msg) => {
                if let Some(m) = &msg {
                    log.line(format_args!("{}: {m}", j.name));
                }
                j.error = Some(msg.unwrap_or_else(|| "failed (see the message above)".to_string()));
                self.sched.finish(i, false);
            }
        }
    }
}

fn same_module(softdep_name: &str, module: &str) -> bool {
    let mut n = AliasBuf::new();
    normalize_alias(softdep_name, &mut n).is_ok() && n.as_str() == module
}

struct StrWriter<'s>(&'s mut String);

impl Write for StrWriter<'_> {
    fn write_str(&mut self, s: &str) -> core::fmt::Result {
        self.0.push_str(s);
        Ok(())
    }
}

/// How a started job is going.
pub enum Started {
    /// Ran to completion already (in this process); the error text, if any.
    Finished(Result<(), Option<String>>),
    /// Running elsewhere; [`Runner::wait`] reports it by this token.
    Running(u32),
}

/// What runs the loads: child processes on the real kernel, a fake in tests.
pub trait Runner {
    /// Starts loading `job`; `parallel` allows running it elsewhere.
    fn start(&mut self, job: &Job, parallel: bool) -> Started;
    /// Waits for any running job; `None` when none is left.
    fn wait(&mut self) -> Option<(u32, Result<(), Option<String>>)>;
}

/// The real kernel: one child process per load when parallel, else in
/// this process. A child reports its own error line (console and kmsg).
pub struct ForkRunner {
    /// Read `/sys/module/compression` once, before the first fork.
    kernel: Live,
}

impl ForkRunner {
    /// A runner over the running kernel.
    pub fn new() -> ForkRunner {
        let mut kernel = Live::new();
        let _ = kernel.kernel_compression();
        ForkRunner { kernel }
    }
}

impl Default for ForkRunner {
    fn default() -> Self {
        Self::new()
    }
}

impl Runner for ForkRunner {
    fn start(&mut self, job: &Job, parallel: bool) -> Started {
        if !parallel {
            let r = load_one(&mut self.kernel, job);
            return Started::Finished(r.map_err(|e| Some(alloc::format!("{e}"))));
        }
        // SAFETY: single-threaded; the child only loads and exits.
        match unsafe { rustix::runtime::kernel_fork() } {
            Ok(Fork::Child(_)) => {
                let code = match load_one(&mut self.kernel, job) {
                    Ok(()) => 0,
                    Err(e) => {
                        Klog::new().line(format_args!("{}: {e}", job.name));
                        1
                    }
                };
                rustix::runtime::exit_group(code)
            }
            Ok(Fork::ParentOf(pid)) => Started::Running(pid.as_raw_nonzero().get() as u32),
            Err(_) => self.start(job, false),
        }
    }

    fn wait(&mut self) -> Option<(u32, Result<(), Option<String>>)> {
        loop {
            match rustix::process::wait(rustix::process::WaitOptions::empty()) {
                Ok(Some((pid, status))) => {
                    // A child that exits non-zero printed its own error;
                    // one killed (the OOM killer, say) could not.
                    let r = match (status.exit_status(), status.terminating_signal()) {
                        (Some(0), _) => Ok(()),
                        (_, Some(sig)) => Err(Some(alloc::format!(
                            "the loading process was killed by signal {sig}"
                        ))),
                        _ => Err(None),
                    };
                    return Some((pid.as_raw_nonzero().get() as u32, r));
                }
                Ok(None) | Err(rustix::io::Errno::INTR) => continue,
                Err(_) => return None,
            }
        }
    }
}

/// Loads one job's module (or runs its install command).
fn load_one(kernel: &mut Live, j: &Job) -> Result<(), LoadError> {
    if let Some(cmd) = &j.install {
        return kernel.run_command(cmd, &j.options);
    }
    let Some(path) = &j.path else {
        return Err(LoadError::Open(Errno(errno::ENOENT)));
    };
    let Some(cpath) = CPath::join(&[path]) else {
        return Err(LoadError::TooLong("module path"));
    };
    let mut params = Params::from_text(&j.options);
    let params = params.as_cstr()?;
    let compression = kernel.kernel_compression();
    match insert_file(
        kernel,
        cpath.as_cstr(),
        params,
        InsertFlags::default(),
        compression,
    ) {
        Ok(_) => Ok(()),
        // Loaded meanwhile (by the kernel's request_module, say).
        Err(LoadError::Kernel(Errno(errno::EEXIST))) => Ok(()),
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::collections::{BTreeMap, BTreeSet, VecDeque};
    use alloc::vec;
    use earlymod_core::config::Config;
    use earlymod_core::db::{ModuleDb, Source};

    /// A fake kernel: some modules live; loads fail for a chosen set;
    /// parallel jobs finish in a pseudo-random order.
    struct Fake {
        live: BTreeSet<String>,
        fail: BTreeSet<String>,
        started: Vec<String>,
        running: VecDeque<(u32, String)>,
        done: BTreeSet<String>,
        next: u32,
        seed: u64,
    }

    impl KernelState for Fake {
        fn initstate(&self, name: &str) -> InitState {
            if self.live.contains(name) {
                InitState::Live
            } else {
                InitState::Absent
            }
        }
    }

    impl Fake {
        fn result(&mut self, name: &str) -> Result<(), Option<String>> {
            if self.fail.contains(name) {
                Err(Some("Invalid argument".to_string()))
            } else {
                self.done.insert(name.to_string());
                Ok(())
            }
        }
    }

    /// Runs the loads against the fake, checking every dependency of each
    /// started module has loaded first.
    struct FakeRunner<'f> {
        fake: &'f mut Fake,
        deps: &'f BTreeMap<String, Vec<String>>,
    }

    impl Runner for FakeRunner<'_> {
        fn start(&mut self, job: &Job, parallel: bool) -> Started {
            assert!(
                !self.fake.started.contains(&job.name),
                "{} started twice",
                job.name
            );
            for d in &self.deps[&job.name] {
                assert!(
                    self.fake.done.contains(d) || self.fake.live.contains(d),
                    "{} started before its dependency {d}",
                    job.name
                );
            }
            self.fake.started.push(job.name.clone());
            if !parallel {
                return Started::Finished(self.fake.result(&job.name));
            }
            self.fake.next += 1;
            self.fake
                .running
                .push_back((self.fake.next, job.name.clone()));
            Started::Running(self.fake.next)
        }

        fn wait(&mut self) -> Option<(u32, Result<(), Option<String>>)> {
            if self.fake.running.is_empty() {
                return None;
            }
            self.fake.seed ^= self.fake.seed << 13;
            self.fake.seed ^= self.fake.seed >> 7;
            self.fake.seed ^= self.fake.seed << 17;
            let k = (self.fake.seed % self.fake.running.len() as u64) as usize;
            let (t, name) = self.fake.running.remove(k)?;
            Some((t, self.fake.result(&name)))
        }
    }

    fn rng(seed: &mut u64) -> u64 {
        *seed ^= *seed << 13;
        *seed ^= *seed >> 7;
        *seed ^= *seed << 17;
        *seed
    }

    #[test]
    fn random_plans_random_failures() {
        let mut seed = 0x2545_f491_4f6c_dd1du64;
        for round in 0..150 {
            // n modules; m{i} depends on some m{j}, j < i (closure listed,
            // as depmod writes it).
            let n = (rng(&mut seed) % 24 + 2) as usize;
            let mut direct: Vec<Vec<usize>> = vec![Vec::new(); n];
            for (i, d) in direct.iter_mut().enumerate().skip(1) {
                for _ in 0..rng(&mut seed) % 3 {
                    d.push((rng(&mut seed) % i as u64) as usize);
                }
            }
            let mut closure: Vec<BTreeSet<usize>> = vec![BTreeSet::new(); n];
            for i in 0..n {
                let mut c = BTreeSet::new();
                for &d in &direct[i] {
                    c.insert(d);
                    c.extend(closure[d].iter().copied());
                }
                closure[i] = c;
            }
            let mut dep_text = String::new();
            let mut deps: BTreeMap<String, Vec<String>> = BTreeMap::new();
            for (i, c) in closure.iter().enumerate() {
                let _ = write!(dep_text, "kernel/m{i}.ko:");
                for d in c.iter().rev() {
                    let _ = write!(dep_text, " kernel/m{d}.ko");
                }
                dep_text.push('\n');
                deps.insert(
                    alloc::format!("m{i}"),
                    c.iter().map(|d| alloc::format!("m{d}")).collect(),
                );
            }
            // A softdep or two (soft: order only).
            let mut cfg_text = String::new();
            if n > 3 {
                let _ = writeln!(cfg_text, "softdep m{} pre: m{} post: m{}", n - 1, n - 2, 0);
            }
            let mut cfg_buf = cfg_text.into_bytes();
            let mut cfg = Config::new();
            cfg.parse_file(&mut cfg_buf, &mut |_| {}).unwrap();
            let db = ModuleDb {
                dep: Source::new(None, Some(dep_text.as_bytes())),
                alias: Source::Missing,
                symbols: Source::Missing,
                builtin: Source::Missing,
                builtin_alias: Source::Missing,
            };
            let r = Resolver { db: &db, cfg: &cfg };
            let pick = |seed: &mut u64, k: u64| -> BTreeSet<String> {
                (0..rng(seed) % k)
                    .map(|_| alloc::format!("m{}", rng(seed) % n as u64))
                    .collect()
            };
            let mut fake = Fake {
                live: pick(&mut seed, 3),
                fail: pick(&mut seed, 4),
                started: Vec::new(),
                running: VecDeque::new(),
                done: BTreeSet::new(),
                next: 0,
                seed: seed | 1,
            };
            let requests: Vec<String> = pick(&mut seed, 6).into_iter().collect();
            let mut log = Klog::console_only();
            let mut plan = Plan::default();
            for q in &requests {
                plan.add(&r, &fake, "/lib/modules/x", q, &mut log);
            }
            let jobs = (round % 4) + 1;
            let mut runner = FakeRunner {
                fake: &mut fake,
                deps: &deps,
            };
            plan.run(jobs, &mut runner, &mut log);
            // Nothing live was loaded again; failures are reported once,
            // per job; every job whose dependencies all loaded was tried.
            for j in &plan.jobs {
                assert!(!fake.live.contains(&j.name), "{} was live", j.name);
                let tried = fake.started.contains(&j.name);
                let deps_ok = deps[&j.name]
                    .iter()
                    .all(|d| fake.done.contains(d) || fake.live.contains(d));
                assert_eq!(
                    tried, deps_ok,
                    "{}: tried {tried}, deps ok {deps_ok}",
                    j.name
                );
                let failed = fake.fail.contains(&j.name) || !deps_ok;
                assert_eq!(j.error.is_some(), failed, "{}: {:?}", j.name, j.error);
            }
            // Every request's module and its dependencies are in the plan
            // (unless live).
            for q in requests.iter().filter(|q| !fake.live.contains(*q)) {
                let mut want: Vec<&String> = deps[q].iter().collect();
                want.push(q);
                for w in want {
                    assert!(
                        fake.live.contains(w) || plan.jobs.iter().any(|j| j.name == *w),
                        "{w} missing from the plan for {q}"
                    );
                }
            }
            let mut s = fake.started.clone();
            s.sort();
            s.dedup();
            assert_eq!(s.len(), fake.started.len(), "a module started twice");
        }
    }
}
