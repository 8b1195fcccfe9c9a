//! A long-running agent on earlymod's public API: it opens the module
//! directory and modprobe.d once, then loads each module name (or alias)
//! read from standard input, one per line, and prints how every module of
//! its probe went: loaded (and how), already live, builtin, blacklisted,
//! not found, or failed with the reason; with the time each took.
//!
//! `agent [-d ROOT] [-S VERSION] [-n]`: `-d`/`-S` as modprobe's (another
//! root or kernel version); `-n` a dry run that also ignores what the
//! running kernel has, as `modprobe -D` does (nothing is loaded: each
//! module is only "would load").
use std::io::BufRead;
use std::time::Instant;

use earlymod::context::{ConfigStore, Context, Event, Options};
use earlymod::kernel::Live;
use earlymod::moddir::{self, ModDir};
use earlymod_core::load::Method;
use earlymod_core::name::AliasBuf;
use earlymod_core::probe::{Candidates, Skip};
use earlymod_core::text::Shown;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let value = |flag: &str| {
        args.iter()
            .position(|a| a == flag)
            .and_then(|i| args.get(i + 1))
    };
    let dir = ModDir::open(moddir::dirname_for(
        value("-d").map(String::as_str),
        value("-S").map(String::as_str),
    ));
    let mut store = ConfigStore::new();
    let ctx = Context::open(
        &dir,
        &moddir::DEFAULT_CONFIG_PATHS,
        &mut store,
        &mut |line| eprintln!("agent: {}", Shown(line)),
    );
    let mut opts = Options::default();
    let dry = args.iter().any(|a| a == "-n");
    (
        opts.run.dry_run,
        opts.run.ignore_loaded,
        opts.probe.ignore_loaded,
    ) = (dry, dry, dry);
    let mut kernel = Live::new();
    for line in std::io::stdin().lock().lines() {
        let Ok(line) = line else { break };
        let name = line.trim();
        if name.is_empty() || name.starts_with('#') {
            continue;
        }
        let (mut key, mut found) = (AliasBuf::new(), Candidates::new());
        if let Err(e) = ctx.lookup(name, &mut key, &mut found) {
            println!("{name}: lookup failed: {e}");
            continue;
        }
        if found.is_empty() {
            println!("{name}: not found");
        }
        for c in found.iter() {
            let mut t0 = Instant::now();
            let mut us = || {
                std::mem::replace(&mut t0, Instant::now())
                    .elapsed()
                    .as_micros()
            };
            ctx.probe(c, &mut kernel, &opts, &mut |ev| match ev {
                Event::Entry { step, result, .. } => {
                    let m = &step.name;
                    match result {
                        Ok(Method::AlreadyLoaded) if step.builtin => {
                            println!("{name}: {m} builtin")
                        }
                        Ok(Method::AlreadyLoaded) => println!("{name}: {m} already live"),
                        Ok(Method::Command) if dry => {
                            println!("{name}: {m} would run its install command")
                        }
                        Ok(_) if dry => println!("{name}: {m} would load"),
                        Ok(how) => println!("{name}: {m} loaded ({how:?}) in {} us", us()),
                        Err(e) => println!("{name}: {m} failed after {} us: {e}", us()),
                    }
                }
                Event::Skipped(Skip::AlreadyLoaded) if c.builtin => {
                    println!("{name}: {} builtin", c.name)
                }
                Event::Skipped(Skip::AlreadyLoaded) => println!("{name}: {} already live", c.name),
                Event::Skipped(Skip::Blacklisted) => println!("{name}: {} blacklisted", c.name),
                Event::PlanFailed(e) => println!("{name}: {} failed: {e}", c.name),
                Event::AlreadyLoaded | Event::Failed { .. } => {}
            });
        }
    }
}
