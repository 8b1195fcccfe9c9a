//! Ordering module loads for parallel execution: jobs with "before" edges,
//! each job started once, only after everything it waits for has finished.
//! A hard edge (a `modules.dep` dependency) skips the dependent when its
//! dependency failed; a soft edge (a softdep) only orders. The caller runs
//! jobs (threads, child processes, or inline) and reports each result.

use crate::error::{Error, Result};

/// Most jobs one plan holds.
pub const MAX_JOBS: usize = 1024;
/// Most edges one plan holds.
pub const MAX_EDGES: usize = 8192;

/// Where a job is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JobState {
    /// Not started.
    Waiting,
    /// Started, not finished.
    Running,
    /// Finished successfully.
    Done,
    /// Finished with an error.
    Failed,
    /// Never started: a hard dependency failed or was skipped.
    Skipped,
}

/// A dependency-ordered set of jobs.
pub struct Schedule {
    state: heapless::Vec<JobState, MAX_JOBS>,
    /// (before, after, hard).
    edges: heapless::Vec<(u16, u16, bool), MAX_EDGES>,
    /// Index of the first job that may be ready (all before are started).
    cursor: usize,
}

impl Default for Schedule {
    fn default() -> Self {
        Self::new()
    }
}

impl Schedule {
    /// An empty schedule.
    pub fn new() -> Self {
        Schedule {
            state: heapless::Vec::new(),
            edges: heapless::Vec::new(),
            cursor: 0,
        }
    }

    /// Adds a job; returns its index.
    pub fn add_job(&mut self) -> Result<usize> {
        self.state
            .push(JobState::Waiting)
            .map_err(|_| Error::Capacity("load jobs", MAX_JOBS))?;
        Ok(self.state.len() - 1)
    }

    /// Number of jobs.
    pub fn len(&self) -> usize {
        self.state.len()
    }

    /// True when there are no jobs.
    pub fn is_empty(&self) -> bool {
        self.state.is_empty()
    }

    /// `after` starts only once `before` finished; with `hard`, only if it
    /// succeeded. Self-edges and duplicates are ignored.
    pub fn add_edge(&mut self, before: usize, after: usize, hard: bool) -> Result<()> {
        if before == after || before >= self.len() || after >= self.len() {
            return Ok(());
        }
        let (b, a) = (before as u16, after as u16);
        if let Some(e) = self.edges.iter_mut().find(|e| e.0 == b && e.1 == a) {
            e.2 |= hard;
            return Ok(());
        }
        self.edges
            .push((b, a, hard))
            .map_err(|_| Error::Capacity("load ordering edges", MAX_EDGES))
    }

    /// The state of job `i`.
    pub fn state(&self, i: usize) -> JobState {
        self.state[i]
    }

    /// The next job that may start (marked running), skipping jobs whose
    /// hard dependencies failed; `None` when nothing can start now.
    /// Ordering cycles (softdep loops) are broken by starting the lowest
    /// waiting job once nothing is running.
    pub fn next_ready(&mut self) -> Option<usize> {
        self.next_ready_among(&|_| true)
    }

    /// [`Schedule::next_ready`] among the jobs `allow` accepts (the others
    /// stay waiting: a caller that stops early leaves them unstarted).
    pub fn next_ready_among(&mut self, allow: &dyn Fn(usize) -> bool) -> Option<usize> {
        loop {
            let mut progress = false;
            for i in self.cursor..self.state.len() {
                if self.state[i] != JobState::Waiting || !allow(i) {
                    continue;
                }
                match self.readiness(i) {
                    Readiness::Ready => {
                        self.state[i] = JobState::Running;
                        self.advance();
                        return Some(i);
                    }
                    Readiness::Blocked => {
                        self.state[i] = JobState::Skipped;
                        progress = true;
                    }
                    Readiness::Wait => {}
                }
            }
            if !progress {
                break;
            }
        }
        self.advance();
        let running = self.state.contains(&JobState::Running);
        if !running {
            // Only a cycle can leave waiting jobs with nothing running:
            // break it at a job whose hard dependencies are done (so only
            // a soft ordering is dropped), else at the lowest waiting job.
            let waiting = |i: &usize| self.state[*i] == JobState::Waiting && allow(*i);
            let pick = (self.cursor..self.state.len())
                .filter(waiting)
                .find(|&i| self.hard_done(i))
                .or_else(|| (self.cursor..self.state.len()).find(waiting));
            if let Some(i) = pick {
                self.state[i] = JobState::Running;
                return Some(i);
            }
        }
        None
    }

    fn advance(&mut self) {
        while self.cursor < self.state.len() && self.state[self.cursor] != JobState::Waiting {
            self.cursor += 1;
        }
    }

    fn hard_done(&self, i: usize) -> bool {
        self.edges
            .iter()
            .filter(|&&(_, a, hard)| hard && usize::from(a) == i)
            .all(|&(b, _, _)| self.state[usize::from(b)] == JobState::Done)
    }

    fn readiness(&self, i: usize) -> Readiness {
        let mut r = Readiness::Ready;
        for &(b, a, hard) in self.edges.iter() {
            if usize::from(a) != i {
                continue;
            }
            match self.state[usize::from(b)] {
                JobState::Waiting | JobState::Running => r = Readiness::Wait,
                JobState::Failed | JobState::Skipped if hard => return Readiness::Blocked,
                _ => {}
            }
        }
        r
    }

    /// Records the result of running job `i`.
    pub fn finish(&mut self, i: usize, ok: bool) {
        if self.state[i] == JobState::Running {
            self.state[i] = if ok { JobState::Done } else { JobState::Failed };
        }
    }

    /// True when no job is waiting or running.
    pub fn is_finished(&self) -> bool {
        self.state
            .iter()
            .all(|s| !matches!(s, JobState::Waiting | JobState::Running))
    }

    /// A job that failed or was skipped because of job `i`: the first hard
    /// dependency of `i` that did not succeed.
    pub fn blocker(&self, i: usize) -> Option<usize> {
        self.edges
            .iter()
            .find(|&&(b, a, hard)| {
                hard && usize::from(a) == i
                    && matches!(
                        self.state[usize::from(b)],
                        JobState::Failed | JobState::Skipped
                    )
            })
            .map(|&(b, _, _)| usize::from(b))
    }
}

enum Readiness {
    Ready,
    Wait,
    Blocked,
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Runs a schedule with `par` jobs at a time, finishing the oldest
    /// running job first; returns the start order.
    fn drive(s: &mut Schedule, par: usize, fail: &[usize]) -> heapless::Vec<usize, 64> {
        let mut order = heapless::Vec::new();
        let mut running: heapless::Vec<usize, 64> = heapless::Vec::new();
        loop {
            while running.len() < par {
                match s.next_ready() {
                    Some(i) => {
                        order.push(i).unwrap();
                        running.push(i).unwrap();
                    }
                    None => break,
                }
            }
            if running.is_empty() {
                break;
            }
            let i = running.remove(0);
            s.finish(i, !fail.contains(&i));
        }
        assert!(s.is_finished());
        order
    }

    /// 0 <- 1 <- 2 (hard), 3 independent, 4 after 0 (soft).
    fn chain() -> Schedule {
        let mut s = Schedule::new();
        for _ in 0..5 {
            s.add_job().unwrap();
        }
        s.add_edge(0, 1, true).unwrap();
        s.add_edge(1, 2, true).unwrap();
        s.add_edge(0, 4, false).unwrap();
        s
    }

    #[test]
    fn dependencies_first_and_failures_skip_dependents() {
        let mut s = chain();
        let order = drive(&mut s, 2, &[]);
        assert_eq!(&order[..], &[0, 3, 1, 4, 2]);

        let mut s = chain();
        let order = drive(&mut s, 1, &[0]);
        assert_eq!(&order[..], &[0, 3, 4]);
        assert_eq!(s.state(1), JobState::Skipped);
        assert_eq!(s.state(2), JobState::Skipped);
        assert_eq!(s.state(4), JobState::Done);
        assert_eq!(s.blocker(2), Some(1));
        assert_eq!(s.blocker(1), Some(0));
    }

    /// Only the allowed jobs start (an early stop): the rest stay
    /// waiting, a soft cycle among allowed ones is still broken.
    #[test]
    fn only_allowed_jobs_start() {
        let mut s = chain();
        let allow = |i: usize| i == 1 || i == 0 || i == 3;
        let mut order: heapless::Vec<usize, 8> = heapless::Vec::new();
        while let Some(i) = s.next_ready_among(&allow) {
            order.push(i).unwrap();
            s.finish(i, true);
        }
        assert_eq!(&order[..], &[0, 1, 3]);
        assert_eq!(s.state(2), JobState::Waiting);
        assert_eq!(s.state(4), JobState::Waiting);
        let mut c = Schedule::new();
        for _ in 0..3 {
            c.add_job().unwrap();
        }
        c.add_edge(0, 1, false).unwrap();
        c.add_edge(1, 0, false).unwrap();
        let first = c.next_ready_among(&|i| i == 1);
        assert_eq!(first, Some(1));
    }

    #[test]
    fn cycles_are_broken_and_every_job_runs_once() {
        let mut s = Schedule::new();
        for _ in 0..3 {
            s.add_job().unwrap();
        }
        s.add_edge(0, 1, false).unwrap();
        s.add_edge(1, 0, false).unwrap();
        s.add_edge(1, 2, true).unwrap();
        let order = drive(&mut s, 2, &[]);
        assert_eq!(&order[..], &[0, 1, 2]);
    }

    #[test]
    fn a_soft_edge_against_a_hard_one_keeps_the_hard_order() {
        // 0 is a hard dependency of 1; a softdep "post" says 1 before 0.
        let mut s = Schedule::new();
        s.add_job().unwrap();
        s.add_job().unwrap();
        s.add_edge(1, 0, false).unwrap();
        s.add_edge(0, 1, true).unwrap();
        let order = drive(&mut s, 2, &[]);
        assert_eq!(&order[..], &[0, 1]);
    }

    #[test]
    fn random_plans_respect_every_edge() {
        let mut seed = 0x9e37_79b9_7f4a_7c15u64;
        let mut rnd = move || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        for _ in 0..200 {
            let n = (rnd() % 40 + 1) as usize;
            let mut s = Schedule::new();
            for _ in 0..n {
                s.add_job().unwrap();
            }
            let mut edges: heapless::Vec<(usize, usize, bool), 256> = heapless::Vec::new();
            for _ in 0..rnd() % 80 {
                // Acyclic: lower index first.
                let (a, b) = ((rnd() % n as u64) as usize, (rnd() % n as u64) as usize);
                let (b4, af) = (a.min(b), a.max(b));
                let hard = rnd() % 2 == 0;
                s.add_edge(b4, af, hard).unwrap();
                let _ = edges.push((b4, af, hard));
            }
            let fail: heapless::Vec<usize, 8> = (0..rnd() % 4)
                .map(|_| (rnd() % n as u64) as usize)
                .collect();
            let par = (rnd() % 4 + 1) as usize;
            let order = drive(&mut s, par, &fail);
            // Each job at most once; each edge's "before" started first.
            for (i, a) in order.iter().enumerate() {
                assert!(!order[i + 1..].contains(a));
            }
            let pos = |j: usize| order.iter().position(|&x| x == j);
            for &(b, a, hard) in edges.iter() {
                if b == a {
                    continue;
                }
                if let Some(pa) = pos(a) {
                    match pos(b) {
                        Some(pb) => assert!(pb < pa),
                        // Only a skipped job never runs, and only a soft
                        // edge lets its dependent go on.
                        None => assert!(!hard && s.state(b) == JobState::Skipped),
                    }
                    if hard {
                        assert_eq!(s.state(b), JobState::Done);
                    }
                } else {
                    assert_eq!(s.state(a), JobState::Skipped);
                }
            }
        }
    }
}
