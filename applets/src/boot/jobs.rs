//! Loading a batch of requests (names, aliases, modaliases) the way
//! modprobe would load each, but as one plan: every module once,
//! dependencies strictly before dependents (hard edges), softdeps ordered
//! (soft edges), independent modules in parallel child processes (the
//! `parallel` feature; without it, one after another in this process, in
//! the order `earlymod.jobs=1` loads them). Each module goes through the
//! loader's one policy ([`load::decide`] here, [`load::act`] in the
//! child), the same as `modprobe`'s [`load::run_probe`].

use alloc::string::{String, ToString};
use alloc::vec::Vec;

use earlymod_core::db::DepLine;
use earlymod_core::load::{self, Decision, Entry, Failures, Kernel, LoadError, Params, RunFlags};
use earlymod_core::name::{AliasBuf, ModName, normalize_alias};
use earlymod_core::probe::{Candidates, KernelState, NameArena, ProbeFlags, Resolver, Skip, Steps};
use earlymod_core::sched::{JobState, Schedule};
#[cfg(feature = "parallel")]
use rustix::runtime::Fork;

use super::Logger;
use super::klog::Klog;
use crate::log::text;
use core::cell::RefCell;

/// One module of a batch: what to load, and how it went.
#[derive(Debug, Clone)]
pub struct Job {
    /// Module name.
    pub name: String,
    /// Path from modules.dep (relative to the module directory or absolute).
    pub path: Option<String>,
    /// Known builtin (found through a builtin index).
    pub builtin: bool,
    /// Options string.
    pub options: String,
    /// Install command to run instead.
    pub install: Option<String>,
    /// Load time in microseconds (from start to exit of the load).
    pub micros: u64,
    /// Why it failed, if it did.
    pub error: Option<String>,
    /// Must load before a handoff ([`Steer::handoff`]): asked for by a
    /// must request, or a dependency of one.
    pub must: bool,
    /// Why it cannot load, known when it was planned (its options do not
    /// fit the kernel's bound).
    refused: Option<LoadError>,
}

impl Job {
    /// The job as the load policy sees it.
    pub fn entry(&self) -> Entry<'_> {
        Entry {
            name: &self.name,
            builtin: self.builtin,
            from_path: false,
            path: self.path.as_deref(),
            install: self.install.as_deref(),
            is_target: false,
        }
    }
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
    /// Jobs never started because the caller handed off
    /// ([`Steer::handoff`]).
    pub left: Vec<String>,
}

/// What the caller of a running batch wants after each finished load.
#[derive(Debug, Clone, Default)]
pub struct Steer {
    /// Requests to add to the plan; they must load before a handoff.
    pub add: Vec<String>,
    /// Start only the jobs that must load from now on: the others are
    /// left unstarted (PID 1 with `earlymod.handoff=root`, once the root
    /// device is there).
    pub handoff: bool,
}

impl Plan {
    fn job_of(&self, name: &str) -> Option<usize> {
        self.jobs.iter().position(|j| j.name == name)
    }

    /// Adds what `modprobe REQUEST` would load. `alias` requests are
    /// subject to the blacklist, as modprobe applies it to aliases.
    #[cfg(test)]
    pub fn add(
        &mut self,
        r: &Resolver<'_, '_>,
        state: &dyn KernelState,
        request: &str,
        log: &mut dyn Logger,
    ) {
        self.add_with(r, state, request, false, log)
    }

    /// [`Plan::add`]; with `must`, the request's modules (dependencies
    /// included) load before a handoff.
    pub fn add_with(
        &mut self,
        r: &Resolver<'_, '_>,
        state: &dyn KernelState,
        request: &str,
        must: bool,
        log: &mut dyn Logger,
    ) {
        let mut key = AliasBuf::new();
        let mut found = Candidates::new();
        let ok = r.lookup_user(request, &mut key, &mut found);
        if let Err(e) = ok {
            log.line(&[&request, &": ", &e]);
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
                log.debug(&[
                    &request,
                    &": ",
                    &c.name.as_str(),
                    &" is blacklisted on the command line",
                ]);
                continue;
            }
            match r.probe_list(c, flags, state, &names, &mut steps) {
                Ok(Ok(())) => {}
                Ok(Err(Skip::AlreadyLoaded)) => continue,
                Ok(Err(Skip::Blacklisted)) => {
                    log.line(&[
                        &request,
                        &": ",
                        &c.name.as_str(),
                        &" is blacklisted, not loaded",
                    ]);
                    continue;
                }
                Err(e) => {
                    log.line(&[&request, &": ", &c.name.as_str(), &": ", &e]);
                    continue;
                }
            }
            let mut ids: Vec<usize> = Vec::new();
            for s in steps.iter() {
                // In the kernel already: no job (the policy's own question;
                // an index that cannot answer is planned, and the policy
                // reports its error when the job comes up).
                if load::in_kernel(r, &Entry::of(s), state) == Ok(true) {
                    continue;
                }
                let id = match self.job_of(&s.name) {
                    Some(id) => id,
                    None => {
                        let Ok(id) = self.sched.add_job() else {
                            log.line(&[
                                &s.name.as_str(),
                                &": too many modules in one batch (limit ",
                                &earlymod_core::sched::MAX_JOBS,
                                &")",
                            ]);
                            continue;
                        };
                        let mut params = Params::new();
                        let refused = params.fill(r.cfg, s, "").err();
                        self.jobs.push(Job {
                            name: String::from(s.name.as_str()),
                            path: s.path.map(str::to_string),
                            builtin: s.builtin,
                            options: params.as_str().to_string(),
                            install: s.install.map(str::to_string),
                            micros: 0,
                            error: None,
                            must: false,
                            refused,
                        });
                        id
                    }
                };
                self.jobs[id].must |= must;
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
                        self.edge(j, i, hard, log);
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
                            self.edge(i, j, false, log);
                        }
                    }
                }
            }
        }
    }

    /// Orders job `before` ahead of `after`; a full edge table is reported
    /// (the policy still keeps a failed dependency's dependents out).
    fn edge(&mut self, before: usize, after: usize, hard: bool, log: &mut dyn Logger) {
        if let Err(e) = self.sched.add_edge(before, after, hard) {
            log.line(&[
                &self.jobs[after].name.as_str(),
                &": not ordered after ",
                &self.jobs[before].name.as_str(),
                &": ",
                &e,
            ]);
        }
    }

    /// The policy's decision for job `i` now: the jobs failed so far are
    /// the run's failures.
    fn decide(&self, r: &Resolver<'_, '_>, state: &dyn KernelState, i: usize) -> Decision {
        let by_path = |p: &str| {
            self.jobs
                .iter()
                .find(|j| j.error.is_some() && j.path.as_deref() == Some(p))
                .and_then(|j| ModName::try_from(j.name.as_str()).ok())
        };
        let failures: Failures<'_> = if self.jobs.iter().any(|j| j.error.is_some()) {
            Some(&by_path)
        } else {
            None
        };
        let job = &self.jobs[i];
        match load::decide(r, &job.entry(), RunFlags::default(), failures, state) {
            Decision::Load => match &job.refused {
                Some(e) => Decision::Fail(e.clone()),
                None => Decision::Load,
            },
            d => d,
        }
    }

    /// Runs the plan with up to `jobs` loads at a time through `runner`
    /// (one at a time in this process without the `parallel` feature);
    /// `state` is the kernel's module state the policy consults.
    #[cfg(test)]
    pub fn run(
        &mut self,
        r: &Resolver<'_, '_>,
        state: &dyn KernelState,
        jobs: usize,
        runner: &mut dyn Runner,
        log: &mut dyn Logger,
    ) {
        self.run_with(r, state, jobs, runner, log, &mut |_| Steer::default())
    }

    /// [`Plan::run`], asking `more` after every finished job for requests
    /// to add to the running plan (PID 1: the root's filesystem, as soon
    /// as the root device shows up) and whether to hand off (start only
    /// what must load; the rest goes to [`Plan::left`]).
    pub fn run_with(
        &mut self,
        r: &Resolver<'_, '_>,
        state: &dyn KernelState,
        jobs: usize,
        runner: &mut dyn Runner,
        log: &mut dyn Logger,
        more: &mut dyn FnMut(&mut dyn Logger) -> Steer,
    ) {
        let mut handoff = false;
        #[cfg(feature = "parallel")]
        {
            let mut running: Vec<(u32, usize, u64)> = Vec::new();
            loop {
                while running.len() < jobs.max(1) {
                    let Some(i) = self.next_ready(handoff) else {
                        break;
                    };
                    let t0 = super::now_us();
                    match self.start(r, state, i, t0, runner, jobs > 1, log) {
                        Some(token) => running.push((token, i, t0)),
                        // Finished here (one at a time, or nothing to load).
                        None => handoff |= self.steer(r, state, more, log),
                    }
                }
                // Nothing running and nothing ready: all done (next_ready
                // breaks ordering cycles when nothing runs).
                if running.is_empty() {
                    break;
                }
                // Handed off with everything that must load done: loads
                // still running finish on their own (their processes are
                // the real init's to reap), the caller goes on now.
                if handoff && !self.must_pending(&running) {
                    for (_, i, _) in core::mem::take(&mut running) {
                        let name = text(&[&self.jobs[i].name.as_str(), &" (still loading)"]);
                        self.left.push(name);
                    }
                    break;
                }
                let Some((token, res)) = runner.wait() else {
                    // The runner lost its children: count them as failed.
                    for (_, i, t0) in core::mem::take(&mut running) {
                        self.finish(i, Err(Some("lost".to_string())), t0, log);
                    }
                    continue;
                };
                if let Some(k) = running.iter().position(|(t, _, _)| *t == token) {
                    let (_, i, t0) = running.swap_remove(k);
                    self.finish(i, res, t0, log);
                }
                handoff |= self.steer(r, state, more, log);
            }
        }
        // One at a time: nothing is ever running when the next is picked
        // (next_ready breaks ordering cycles).
        #[cfg(not(feature = "parallel"))]
        {
            let _ = jobs;
            while let Some(i) = self.next_ready(handoff) {
                let t0 = super::now_us();
                self.start(r, state, i, t0, runner, false, log);
                handoff |= self.steer(r, state, more, log);
            }
        }
        // Handed off: what never started is the real system's.
        if handoff {
            for i in 0..self.jobs.len() {
                if self.sched.state(i) == JobState::Waiting {
                    self.left.push(self.jobs[i].name.clone());
                }
            }
        }
        // Jobs the schedule kept back (a hard dependency failed): the
        // policy says why, or that they are in the kernel anyway.
        for i in 0..self.jobs.len() {
            if self.sched.state(i) != JobState::Skipped {
                continue;
            }
            let why = match self.decide(r, state, i) {
                Decision::InKernel | Decision::FirstTimeLoaded => continue,
                Decision::Fail(e) => text(&[&e]),
                // The schedule's hard edges are modules.dep's: the policy
                // finds the same failure unless it was skipped itself.
                Decision::Load => match self.sched.blocker(i) {
                    Some(b) => text(&[
                        &"not loaded: its dependency ",
                        &self.jobs[b].name.as_str(),
                        &" failed",
                    ]),
                    None => "not loaded".to_string(),
                },
            };
            log.line(&[&self.jobs[i].name.as_str(), &": ", &why.as_str()]);
            self.jobs[i].error = Some(why);
        }
    }

    /// The next job to start: any ready one, or after a handoff only
    /// one that must load.
    fn next_ready(&mut self, handoff: bool) -> Option<usize> {
        if !handoff {
            return self.sched.next_ready();
        }
        let jobs = &self.jobs;
        self.sched.next_ready_among(&|i| jobs[i].must)
    }

    /// Whether a job that must load is still running or waiting.
    #[cfg(feature = "parallel")]
    fn must_pending(&self, running: &[(u32, usize, u64)]) -> bool {
        running.iter().any(|&(_, i, _)| self.jobs[i].must)
            || (0..self.jobs.len())
                .any(|i| self.jobs[i].must && self.sched.state(i) == JobState::Waiting)
    }

    /// Asks the caller what it wants now: adds its requests (they must
    /// load); true when it hands off.
    fn steer(
        &mut self,
        r: &Resolver<'_, '_>,
        state: &dyn KernelState,
        more: &mut dyn FnMut(&mut dyn Logger) -> Steer,
        log: &mut dyn Logger,
    ) -> bool {
        let s = more(log);
        for q in &s.add {
            self.add_with(r, state, q, true, log);
        }
        s.handoff
    }

    /// Job `i` as the policy decides it now: loaded through `runner` or
    /// finished; the runner's token when it runs elsewhere.
    #[allow(clippy::too_many_arguments)]
    fn start(
        &mut self,
        r: &Resolver<'_, '_>,
        state: &dyn KernelState,
        i: usize,
        t0: u64,
        runner: &mut dyn Runner,
        parallel: bool,
        log: &mut dyn Logger,
    ) -> Option<u32> {
        match self.decide(r, state, i) {
            Decision::Load => match runner.start(&self.jobs[i], parallel) {
                Started::Finished(r) => self.finish(i, r, t0, log),
                #[cfg(feature = "parallel")]
                Started::Running(token) => return Some(token),
            },
            // Loaded meanwhile (the kernel's request_module, say).
            Decision::InKernel => self.finish(i, Ok(()), t0, log),
            Decision::Fail(e) => self.finish(i, Err(Some(text(&[&e]))), t0, log),
            // Not asked for (no --first-time here).
            Decision::FirstTimeLoaded => self.finish(i, Ok(()), t0, log),
        }
        None
    }

    fn finish(&mut self, i: usize, r: Result<(), Option<String>>, t0: u64, log: &mut dyn Logger) {
        let j = &mut self.jobs[i];
        j.micros = super::now_us().saturating_sub(t0);
        match r {
            Ok(()) => {
                log.debug(&[&"loaded ", &j.name.as_str(), &" in ", &j.micros, &" us"]);
                self.sched.finish(i, true);
            }
            Err(msg) => {
                if let Some(m) = &msg {
                    log.line(&[&j.name.as_str(), &": ", &m.as_str()]);
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

/// How a started job is going.
pub enum Started {
    /// Ran to completion already (in this process); the error text, if any.
    Finished(Result<(), Option<String>>),
    /// Running elsewhere; [`Runner::wait`] reports it by this token.
    #[cfg(feature = "parallel")]
    Running(u32),
}

/// What runs the loads: child processes on the real kernel, a fake in tests.
pub trait Runner {
    /// Starts loading `job`; `parallel` allows running it elsewhere.
    fn start(&mut self, job: &Job, parallel: bool) -> Started;
    /// Waits for any running job; `None` when none is left.
    #[cfg(feature = "parallel")]
    fn wait(&mut self) -> Option<(u32, Result<(), Option<String>>)>;
}

/// A kernel handle running the loads: one child process per load when
/// parallel (the `parallel` feature; the child has its own copy of the
/// handle and reports its own error line to `/dev/kmsg` and the console),
/// else in this process.
pub struct KernelRunner<'k, K> {
    kernel: &'k RefCell<&'k mut K>,
    /// The module directory job paths are relative to.
    moddir: &'k str,
}

impl<'k, K: Kernel> KernelRunner<'k, K> {
    /// A runner over `kernel` and module directory `moddir`.
    pub fn new(kernel: &'k RefCell<&'k mut K>, moddir: &'k str) -> Self {
        KernelRunner { kernel, moddir }
    }
}

impl<K: Kernel> Runner for KernelRunner<'_, K> {
    fn start(&mut self, job: &Job, parallel: bool) -> Started {
        #[cfg(not(feature = "parallel"))]
        let _ = parallel;
        #[cfg(feature = "parallel")]
        if parallel {
            return self.fork(job);
        }
        let r = load_job(&mut **self.kernel.borrow_mut(), self.moddir, job);
        Started::Finished(r.map_err(|e| Some(text(&[&e]))))
    }

    #[cfg(feature = "parallel")]
    fn wait(&mut self) -> Option<(u32, Result<(), Option<String>>)> {
        loop {
            match rustix::process::wait(rustix::process::WaitOptions::empty()) {
                Ok(Some((pid, status))) => {
                    // A child that exits non-zero printed its own error;
                    // one killed (the OOM killer, say) could not.
                    let r = match (status.exit_status(), status.terminating_signal()) {
                        (Some(0), _) => Ok(()),
                        (_, Some(sig)) => Err(Some(text(&[
                            &"the loading process was killed by signal ",
                            &sig,
                        ]))),
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

#[cfg(feature = "parallel")]
impl<K: Kernel> KernelRunner<'_, K> {
    /// Starts `job` in a child process (in this one if fork fails).
    fn fork(&mut self, job: &Job) -> Started {
        // SAFETY: the loader is single-threaded; the child only loads and
        // exits.
        match unsafe { rustix::runtime::kernel_fork() } {
            Ok(Fork::Child(_)) => {
                let code = match load_job(&mut **self.kernel.borrow_mut(), self.moddir, job) {
                    Ok(()) => 0,
                    Err(e) => {
                        Klog::new().line(&[&job.name.as_str(), &": ", &e]);
                        1
                    }
                };
                rustix::runtime::exit_group(code)
            }
            Ok(Fork::ParentOf(pid)) => Started::Running(pid.as_raw_nonzero().get() as u32),
            Err(_) => self.start(job, false),
        }
    }
}

/// Loads one job the policy said to load (its module, or its install
/// command): [`load::act`], as `modprobe` does for each step.
pub fn load_job<K: Kernel>(kernel: &mut K, moddir: &str, job: &Job) -> Result<(), LoadError> {
    let mut params = Params::from_text(&job.options)?;
    let compression = kernel.kernel_compression();
    load::act(
        kernel,
        moddir,
        &job.entry(),
        &mut params,
        RunFlags::default(),
        compression,
    )
    .map(|_| ())
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::collections::{BTreeMap, BTreeSet, VecDeque};
    use alloc::vec;
    use core::fmt::Write;
    use earlymod_core::config::Config;
    use earlymod_core::db::{ModuleDb, Source};
    use earlymod_core::probe::InitState;

    /// A fake kernel: some modules live; loads fail for a chosen set;
    /// parallel jobs finish in a pseudo-random order.
    #[cfg_attr(not(feature = "parallel"), allow(dead_code))]
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

    /// The kernel's loaded set as the policy sees it while the fake runs.
    struct LiveSet(BTreeSet<String>);

    impl KernelState for LiveSet {
        fn initstate(&self, name: &str) -> InitState {
            if self.0.contains(name) {
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
            #[cfg(not(feature = "parallel"))]
            assert!(!parallel, "serial builds never run a job elsewhere");
            #[cfg(feature = "parallel")]
            if parallel {
                self.fake.next += 1;
                self.fake
                    .running
                    .push_back((self.fake.next, job.name.clone()));
                return Started::Running(self.fake.next);
            }
            Started::Finished(self.fake.result(&job.name))
        }

        #[cfg(feature = "parallel")]
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
            let db = ModuleDb::from_dep_text(dep_text.as_bytes());
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
                plan.add(&r, &fake, q, &mut log);
            }
            let jobs = (round % 4) + 1;
            let state = LiveSet(fake.live.clone());
            let mut runner = FakeRunner {
                fake: &mut fake,
                deps: &deps,
            };
            plan.run(&r, &state, jobs, &mut runner, &mut log);
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

    /// The kernel behind [`load_job`] for [`pid1_loads_through_the_core_policy`]:
    /// ELF files, scripted errnos, a live set shared with the policy's view.
    struct PolicyKernel<'s> {
        live: &'s core::cell::RefCell<BTreeSet<String>>,
        /// The load of this module fails with this errno (`EEXIST`: it is
        /// in the kernel already though sysfs did not show it).
        fail: BTreeMap<String, i32>,
        opened: Vec<String>,
        calls: Vec<String>,
        /// Each module's dependencies, checked at every load.
        deps: BTreeMap<String, Vec<String>>,
        /// Broken rules: a module loaded before a dependency, or twice.
        violations: Vec<String>,
    }

    struct Shared<'s>(&'s core::cell::RefCell<BTreeSet<String>>);

    impl KernelState for Shared<'_> {
        fn initstate(&self, name: &str) -> InitState {
            if self.0.borrow().contains(name) {
                InitState::Live
            } else {
                InitState::Absent
            }
        }
    }

    impl KernelState for PolicyKernel<'_> {
        fn initstate(&self, name: &str) -> InitState {
            Shared(self.live).initstate(name)
        }
    }

    fn stem(path: &str) -> String {
        earlymod_core::name::modname_from_path(path)
            .unwrap()
            .to_string()
    }

    impl Kernel for PolicyKernel<'_> {
        type File = String;
        fn open(&mut self, path: &core::ffi::CStr) -> Result<String, load::Errno> {
            let p = path.to_str().unwrap().to_string();
            self.opened.push(stem(&p));
            Ok(p)
        }
        fn read_at(&mut self, _: &String, off: u64, buf: &mut [u8]) -> Result<usize, load::Errno> {
            let elf = b"\x7fELF..";
            let rest = elf.get(off as usize..).unwrap_or(&[]);
            let n = rest.len().min(buf.len());
            buf[..n].copy_from_slice(&rest[..n]);
            Ok(n)
        }
        fn finit_module(
            &mut self,
            file: &String,
            params: &core::ffi::CStr,
            _: u32,
        ) -> Result<(), load::Errno> {
            let name = stem(file);
            self.calls
                .push(alloc::format!("{name} [{}]", params.to_str().unwrap()));
            if self.live.borrow().contains(&name) {
                self.violations.push(alloc::format!("{name} loaded twice"));
            }
            for d in self.deps.get(&name).into_iter().flatten() {
                if !self.live.borrow().contains(d) {
                    self.violations
                        .push(alloc::format!("{name} loaded before its dependency {d}"));
                }
            }
            match self.fail.get(&name) {
                Some(&e) => {
                    if e == load::errno::EEXIST {
                        self.live.borrow_mut().insert(name);
                    }
                    Err(load::Errno(e))
                }
                None => {
                    self.live.borrow_mut().insert(name);
                    Ok(())
                }
            }
        }
        fn init_module_decompressed(
            &mut self,
            _: &String,
            _: load::Compression,
            _: &core::ffi::CStr,
        ) -> Result<(), LoadError> {
            unreachable!("every file is ELF")
        }
        fn kernel_compression(&mut self) -> Option<load::Compression> {
            None
        }
        fn run_command(&mut self, _: &str, _: &str) -> Result<(), LoadError> {
            Ok(())
        }
    }

    /// Runs each job in-process through [`load_job`], as ForkRunner's child does.
    struct PolicyRunner<'k, 's> {
        kernel: &'k mut PolicyKernel<'s>,
    }

    impl Runner for PolicyRunner<'_, '_> {
        fn start(&mut self, job: &Job, _: bool) -> Started {
            Started::Finished(load_job(self.kernel, "/m", job).map_err(|e| Some(e.to_string())))
        }
        #[cfg(feature = "parallel")]
        fn wait(&mut self) -> Option<(u32, Result<(), Option<String>>)> {
            None
        }
    }

    /// PID 1's plan goes through the core's policy (the one `run_probe`
    /// uses): EEXIST is success, a module live by the time it comes up is
    /// not handed to the kernel, a failed dependency keeps its dependents
    /// out with the policy's error, options over the kernel's bound are an
    /// error naming the bound (they used to become no options), and an
    /// index that cannot say whether a module is builtin is an error (it
    /// used to be taken for "no").
    #[test]
    fn pid1_loads_through_the_core_policy() {
        let dep = b"kernel/a.ko: kernel/b.ko\nkernel/b.ko:\nkernel/c.ko:\nkernel/d.ko: kernel/e.ko\nkernel/e.ko:\nkernel/f.ko:\nkernel/g.ko:\n";
        let long = "x".repeat(load::MAX_PARAMS);
        let mut cfg_buf = alloc::format!("options c p=1\noptions e p={long}\n").into_bytes();
        let mut cfg = Config::new();
        cfg.parse_file(&mut cfg_buf, &mut |_| {}).unwrap();
        let db = ModuleDb::from_dep_text(dep);
        let r = Resolver { db: &db, cfg: &cfg };
        let live = core::cell::RefCell::new(BTreeSet::new());
        let mut kernel = PolicyKernel {
            live: &live,
            fail: [
                ("b".to_string(), load::errno::ENOEXEC),
                ("c".to_string(), load::errno::EEXIST),
            ]
            .into_iter()
            .collect(),
            opened: Vec::new(),
            calls: Vec::new(),
            deps: BTreeMap::new(),
            violations: Vec::new(),
        };
        let mut log = Klog::console_only();
        let mut plan = Plan::default();
        for q in ["a", "c", "d", "f", "g"] {
            plan.add(&r, &Shared(&live), q, &mut log);
        }
        assert_eq!(plan.jobs.len(), 7);
        // f goes live between the plan and its load (another loader).
        live.borrow_mut().insert("f".to_string());
        plan.run(
            &r,
            &Shared(&live),
            1,
            &mut PolicyRunner {
                kernel: &mut kernel,
            },
            &mut log,
        );
        let err = |n: &str| {
            plan.jobs
                .iter()
                .find(|j| j.name == n)
                .unwrap()
                .error
                .clone()
        };
        assert_eq!(
            err("a").as_deref(),
            Some("not loaded: its dependency b failed")
        );
        assert_eq!(
            err("b").as_deref(),
            Some("Invalid module format (not a module for this kernel, see dmesg)")
        );
        assert_eq!(err("c"), None, "EEXIST is success");
        assert_eq!(
            err("e").as_deref(),
            Some("module parameters too long (limit 4096 bytes)")
        );
        assert_eq!(
            err("d").as_deref(),
            Some("not loaded: its dependency e failed")
        );
        assert_eq!((err("f"), err("g")), (None, None));
        let mut opened = kernel.opened.clone();
        opened.sort();
        assert_eq!(opened, ["b", "c", "g"], "only what the policy allows");
        // kmod's options string: config options, a space, the (empty) extra.
        assert!(
            kernel.calls.contains(&"c [p=1 ]".to_string()),
            "{:?}",
            kernel.calls
        );

        // The index turns bad between the plan and the load: the job fails
        // with the file's error, nothing is handed to the kernel.
        let fault = earlymod_core::error::Error::Index(
            "modules.builtin.bin",
            earlymod_core::error::IndexFault::BadMagic(7),
        );
        let mut plan = Plan::default();
        live.borrow_mut().clear();
        plan.add(&r, &Shared(&live), "g", &mut log);
        let bad = ModuleDb {
            builtin: Source::Corrupt(fault),
            ..db
        };
        let rb = Resolver {
            db: &bad,
            cfg: &cfg,
        };
        kernel.opened.clear();
        plan.run(
            &rb,
            &Shared(&live),
            1,
            &mut PolicyRunner {
                kernel: &mut kernel,
            },
            &mut log,
        );
        assert_eq!(plan.jobs.len(), 1);
        assert_eq!(
            plan.jobs[0].error.as_deref(),
            Some("modules.builtin.bin: bad index magic 0x00000007")
        );
        assert!(kernel.opened.is_empty(), "{:?}", kernel.opened);
    }

    /// PID 1's whole path — plan, the policy's decision in the parent,
    /// [`load_job`] (the policy's act) in the runner — over random module
    /// graphs with softdeps, random persistent kernel errors, `EEXIST`
    /// for modules sysfs does not show yet, and modules another loader
    /// brings up between plan and load: a module reported loaded is live,
    /// none is loaded twice or before a dependency, every failure is a
    /// kernel error the fake was told to give or names a dependency that
    /// failed first.
    #[test]
    fn pid1_policy_over_random_plans() {
        let mut seed = 0x51f1_5eed_0d15_ea5eu64;
        let (mut loads, mut failures, mut dep_failed, mut raced) = (0, 0, 0, 0);
        for round in 0..300 {
            let n = (rng(&mut seed) % 16 + 2) as usize;
            let mut closure: Vec<BTreeSet<usize>> = vec![BTreeSet::new(); n];
            for i in 1..n {
                let mut c = BTreeSet::new();
                for _ in 0..rng(&mut seed) % 3 {
                    let d = (rng(&mut seed) % i as u64) as usize;
                    c.insert(d);
                    c.extend(closure[d].iter().copied());
                }
                closure[i] = c;
            }
            let name = |i: usize| alloc::format!("m{i}");
            let mut dep_text = String::new();
            let mut deps: BTreeMap<String, Vec<String>> = BTreeMap::new();
            for (i, c) in closure.iter().enumerate() {
                let _ = write!(dep_text, "kernel/m{i}.ko:");
                for d in c.iter().rev() {
                    let _ = write!(dep_text, " kernel/m{d}.ko");
                }
                dep_text.push('\n');
                deps.insert(name(i), c.iter().map(|&d| name(d)).collect());
            }
            let mut cfg_text = String::new();
            if n > 3 && rng(&mut seed) % 2 == 0 {
                let _ = writeln!(cfg_text, "softdep m{} pre: m{} post: m0", n - 1, n - 2);
            }
            let mut cfg_buf = cfg_text.into_bytes();
            let mut cfg = Config::new();
            cfg.parse_file(&mut cfg_buf, &mut |_| {}).unwrap();
            let db = ModuleDb::from_dep_text(dep_text.as_bytes());
            let r = Resolver { db: &db, cfg: &cfg };
            let live = core::cell::RefCell::new(BTreeSet::new());
            let errnos = [
                load::errno::ENOEXEC,
                load::errno::ENOENT,
                load::errno::EPERM,
                load::errno::ENOMEM,
                load::errno::EEXIST,
            ];
            let mut fail = BTreeMap::new();
            let mut racers = Vec::new();
            for i in 0..n {
                match rng(&mut seed) % 10 {
                    0 | 1 => {
                        fail.insert(name(i), errnos[(rng(&mut seed) % 5) as usize]);
                    }
                    2 => {
                        live.borrow_mut().insert(name(i));
                    }
                    3 => racers.push(name(i)),
                    _ => {}
                }
            }
            let mut kernel = PolicyKernel {
                live: &live,
                fail,
                opened: Vec::new(),
                calls: Vec::new(),
                deps: deps.clone(),
                violations: Vec::new(),
            };
            let was_live = live.borrow().clone();
            let requests: Vec<String> = (0..rng(&mut seed) % 6 + 1)
                .map(|_| name((rng(&mut seed) % n as u64) as usize))
                .collect();
            let mut log = Klog::console_only();
            let mut plan = Plan::default();
            for q in &requests {
                plan.add(&r, &Shared(&live), q, &mut log);
            }
            // Another loader brings these up before PID 1 gets to them.
            for m in &racers {
                live.borrow_mut().insert(m.clone());
            }
            let jobs = (round % 3) + 1;
            plan.run(
                &r,
                &Shared(&live),
                jobs,
                &mut PolicyRunner {
                    kernel: &mut kernel,
                },
                &mut log,
            );
            let ctx = alloc::format!("round {round}\n{dep_text}{:?}", kernel.fail);
            assert!(
                kernel.violations.is_empty(),
                "{:?}\n{ctx}",
                kernel.violations
            );
            let mut opened = kernel.opened.clone();
            opened.sort();
            opened.dedup();
            assert_eq!(opened.len(), kernel.opened.len(), "opened twice\n{ctx}");
            for j in &plan.jobs {
                assert!(
                    !was_live.contains(&j.name),
                    "{} was live: no job\n{ctx}",
                    j.name
                );
                let opened = kernel.opened.contains(&j.name);
                if racers.contains(&j.name) {
                    raced += 1;
                    assert!(!opened, "{} live by then, loaded again\n{ctx}", j.name);
                }
                match &j.error {
                    None => {
                        loads += 1;
                        assert!(live.borrow().contains(&j.name), "{}\n{ctx}", j.name);
                    }
                    Some(e) => {
                        failures += 1;
                        if let Some(d) = e.strip_prefix("not loaded: its dependency ") {
                            dep_failed += 1;
                            let d = d.strip_suffix(" failed").unwrap();
                            assert!(deps[&j.name].iter().any(|x| x == d), "{e}\n{ctx}");
                            let dj = plan.jobs.iter().find(|x| x.name == d).unwrap();
                            assert!(dj.error.is_some(), "{}: {e}\n{ctx}", j.name);
                            assert!(!opened, "{} handed to the kernel\n{ctx}", j.name);
                        } else {
                            let want = kernel.fail.get(&j.name).copied();
                            assert!(
                                want.is_some_and(|w| w != load::errno::EEXIST),
                                "{}: {e} unjustified\n{ctx}",
                                j.name
                            );
                        }
                    }
                }
            }
        }
        assert!(
            loads > 300 && failures > 100 && dep_failed > 30 && raced > 20,
            "{loads} loads, {failures} failures, {dep_failed} after a failed dependency, {raced} raced"
        );
    }
}
