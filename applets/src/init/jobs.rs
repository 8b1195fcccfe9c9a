//! Loading a batch of requests (names, aliases, modaliases) the way
//! modprobe would load each, but as one plan: every module once,
//! dependencies strictly before dependents (hard edges), softdeps ordered
//! (soft edges), independent modules in parallel child processes.

use alloc::string::{String, ToString};
use alloc::vec::Vec;
use core::fmt::Write;

use earlymod_core::db::DepLine;
use earlymod_core::load::{Errno, InsertFlags, LoadError, Params, insert_file};
use earlymod_core::name::{AliasBuf, normalize_alias};
use earlymod_core::probe::{
    Candidates, NameArena, ProbeFlags, Resolver, Skip, Steps, step_options,
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
    /// Requests that found nothing to load, with why (not errors for
    /// coldplug modaliases, which usually have no driver module).
    pub unresolved: Vec<String>,
    /// Module names not loaded when reached through an alias
    /// (`rd.driver.blacklist=`).
    pub blacklist: Vec<String>,
}

fn live_or_builtin(r: &Resolver<'_, '_>, name: &str) -> bool {
    r.is_builtin(name).unwrap_or(false)
        || crate::kernel::initstate(name) == earlymod_core::probe::InitState::Live
}

impl Plan {
    fn job_of(&self, name: &str) -> Option<usize> {
        self.jobs.iter().position(|j| j.name == name)
    }

    /// Adds what `modprobe REQUEST` would load. `alias` requests are
    /// subject to the blacklist, as modprobe applies it to aliases.
    pub fn add(&mut self, r: &Resolver<'_, '_>, moddir: &str, request: &str, log: &mut Klog) {
        let mut key = AliasBuf::new();
        let mut found = Candidates::new();
        let ok = normalize_alias(request, &mut key).and_then(|_| r.lookup(&key, &mut found));
        if let Err(e) = ok {
            log.line(format_args!("{request}: {e}"));
            return;
        }
        if found.is_empty() {
            self.unresolved.push(request.to_string());
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
            match r.probe_list(c, flags, &Live::new(), &names, &mut steps) {
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
                if s.install.is_none() && live_or_builtin(r, &s.name) {
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
                        if sd.post().any(|p| same_module(p, &self.jobs[j].name)) {
                            let _ = self.sched.add_edge(i, j, false);
                        }
                    }
                }
            }
        }
    }

    /// Runs the plan with up to `jobs` loads at a time (1: in this process).
    pub fn run(&mut self, jobs: usize, log: &mut Klog) {
        let mut running: Vec<(rustix::process::Pid, usize, u64)> = Vec::new();
        loop {
            while running.len() < jobs.max(1) {
                let Some(i) = self.sched.next_ready() else {
                    break;
                };
                let t0 = super::now_us();
                if jobs <= 1 {
                    let r = load_one(&self.jobs[i]);
                    self.finish(i, r, t0, log);
                    continue;
                }
                // SAFETY: single-threaded; the child only loads and exits.
                match unsafe { rustix::runtime::kernel_fork() } {
                    Ok(Fork::Child(_)) => {
                        let code = match load_one(&self.jobs[i]) {
                            Ok(()) => 0,
                            Err(e) => {
                                let mut l = Klog::child();
                                l.line(format_args!("{}: {e}", self.jobs[i].name));
                                1
                            }
                        };
                        rustix::runtime::exit_group(code)
                    }
                    Ok(Fork::ParentOf(pid)) => running.push((pid, i, t0)),
                    Err(_) => {
                        let r = load_one(&self.jobs[i]);
                        self.finish(i, r, t0, log);
                    }
                }
            }
            // Nothing running and nothing ready: all done (next_ready
            // breaks ordering cycles when nothing runs).
            if running.is_empty() {
                break;
            }
            match rustix::process::wait(rustix::process::WaitOptions::empty()) {
                Ok(Some((pid, status))) => {
                    if let Some(k) = running.iter().position(|(p, _, _)| *p == pid) {
                        let (_, i, t0) = running.swap_remove(k);
                        let r = match status.exit_status() {
                            Some(0) => Ok(()),
                            _ => Err(None),
                        };
                        self.finish_child(i, r, t0, log);
                    }
                }
                Ok(None) | Err(rustix::io::Errno::INTR) => {}
                Err(_) => break,
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

    fn finish(&mut self, i: usize, r: Result<(), LoadError>, t0: u64, log: &mut Klog) {
        let r = r.map_err(|e| {
            let msg = alloc::format!("{e}");
            log.line(format_args!("{}: {msg}", self.jobs[i].name));
            Some(msg)
        });
        self.finish_child(i, r, t0, log);
    }

    fn finish_child(&mut self, i: usize, r: Result<(), Option<String>>, t0: u64, log: &mut Klog) {
        let j = &mut self.jobs[i];
        j.micros = super::now_us().saturating_sub(t0);
        match r {
            Ok(()) => {
                log.debug(format_args!("loaded {} in {} us", j.name, j.micros));
                self.sched.finish(i, true);
            }
            Err(msg) => {
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

/// Loads one job's module (or runs its install command).
fn load_one(j: &Job) -> Result<(), LoadError> {
    let mut kernel = Live::new();
    if let Some(cmd) = &j.install {
        return crate::command::run_install(cmd, &j.options);
    }
    let Some(path) = &j.path else {
        return Err(LoadError::Open(Errno(2)));
    };
    let Some(cpath) = CPath::join(&[path]) else {
        return Err(LoadError::TooLong("module path"));
    };
    let mut params = Params::from_text(&j.options);
    let params = params.as_cstr()?;
    let compression = earlymod_core::load::Kernel::kernel_compression(&mut kernel);
    match insert_file(
        &mut kernel,
        cpath.as_cstr(),
        params,
        InsertFlags::default(),
        compression,
    ) {
        Ok(_) => Ok(()),
        // Loaded meanwhile (by the kernel's request_module, say).
        Err(LoadError::Kernel(Errno(17))) => Ok(()),
        Err(e) => Err(e),
    }
}
