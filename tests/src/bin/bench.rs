//! Benchmark: one `earlymod modprobe -a -D <every module>` (and `-a -R
//! <every derived alias>`) against the same with kmod's modprobe, on the
//! 6.12 tree. Argument lists over the argv limit are split into chunks that
//! both tools run identically, one after the other. The tools alternate
//! within each round; the median over the rounds is reported.
//!
//! Each workload also runs once under `valgrind --tool=callgrind`
//! (instructions executed, summed over the chunks) and once under
//! `/usr/bin/time` (peak resident set, the largest chunk's), when those
//! tools are installed. `--json FILE` writes every figure for
//! `bench/report.py`.
//!
//! bench --earlymod out/earlymod [--kmod /usr/sbin/modprobe]
//!       [--tree NAME=ROOT:KVER] [--rounds N] [--json FILE]

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use earlymod_tests::{
    Outcome, Tool, Tree, alias_lines, arg_max, argv_chunks, default_trees, dep_module_names,
    derived_aliases, env_footprint, run,
};

fn usage() -> ! {
    eprintln!(
        "usage: bench --earlymod PATH [--kmod PATH] [--tree NAME=ROOT:KVER] [--rounds N] [--json FILE]"
    );
    std::process::exit(2)
}

/// Runs every chunk in turn; returns the elapsed wall time, the
/// concatenated stdout and the exit codes.
fn run_chunks(
    tool: &Tool,
    tree: &Tree,
    flags: &[&str],
    chunks: &[Vec<String>],
) -> (Duration, Outcome) {
    let mut all = Outcome {
        stdout: Vec::new(),
        stderr: Vec::new(),
        code: 0,
    };
    let mut codes = Vec::new();
    let t = Instant::now();
    for c in chunks {
        let mut args: Vec<String> = flags.iter().map(|s| s.to_string()).collect();
        args.push("--".into());
        args.extend(c.iter().cloned());
        let o = run(&tool.argv(tree, &args), None);
        all.stdout.extend(o.stdout);
        all.stderr.extend(o.stderr);
        codes.push(o.code);
    }
    let el = t.elapsed();
    // Summarise the per-chunk exit codes as the first non-zero one.
    all.code = codes.iter().copied().find(|&c| c != 0).unwrap_or(0);
    (el, all)
}

/// Runs every chunk under `prefix` (a measuring tool) and folds the number
/// `parse` finds in each chunk's stderr with `fold`; `None` when a run
/// gives no number (the tool is missing or failed).
fn measure(
    prefix: &[&str],
    tool: &Tool,
    tree: &Tree,
    flags: &[&str],
    chunks: &[Vec<String>],
    parse: fn(&str) -> Option<u64>,
    fold: fn(u64, u64) -> u64,
) -> Option<u64> {
    let mut total = None;
    for c in chunks {
        let mut args: Vec<String> = flags.iter().map(|s| s.to_string()).collect();
        args.push("--".into());
        args.extend(c.iter().cloned());
        let mut argv: Vec<String> = prefix.iter().map(|s| s.to_string()).collect();
        argv.extend(tool.argv(tree, &args));
        let o = run(&argv, None);
        let n = parse(&String::from_utf8_lossy(&o.stderr))?;
        total = Some(total.map_or(n, |t| fold(t, n)));
    }
    total
}

/// callgrind's `==PID== Collected : N` line.
fn callgrind_instructions(stderr: &str) -> Option<u64> {
    stderr
        .lines()
        .find_map(|l| l.split_once("Collected :").map(|(_, n)| n.trim()))?
        .parse()
        .ok()
}

/// `/usr/bin/time -f '@@maxrss %M'`: peak resident set in KiB.
fn max_rss_kib(stderr: &str) -> Option<u64> {
    stderr
        .lines()
        .rev()
        .find_map(|l| l.strip_prefix("@@maxrss "))?
        .trim()
        .parse()
        .ok()
}

fn json_opt(v: Option<u64>) -> String {
    v.map_or("null".into(), |n| n.to_string())
}

fn median(v: &mut [Duration]) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn main() -> ExitCode {
    let mut earlymod = None;
    let mut kmod = PathBuf::from("/usr/sbin/modprobe");
    let mut tree = None;
    let mut rounds = 5usize;
    let mut json = None;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--earlymod" => earlymod = args.next().map(PathBuf::from),
            "--json" => json = Some(args.next().map(PathBuf::from).unwrap_or_else(|| usage())),
            "--kmod" => kmod = args.next().map(PathBuf::from).unwrap_or_else(|| usage()),
            "--tree" => match args.next().map(|s| Tree::parse_spec(&s)) {
                Some(Ok(t)) => tree = Some(t),
                Some(Err(e)) => {
                    eprintln!("bench: {e}");
                    usage()
                }
                None => usage(),
            },
            "--rounds" => {
                rounds = args
                    .next()
                    .and_then(|s| s.parse().ok())
                    .filter(|&n| n > 0)
                    .unwrap_or_else(|| usage())
            }
            _ => usage(),
        }
    }
    let Some(earlymod) = earlymod else { usage() };
    let ci = std::env::var("CI").is_ok_and(|v| v == "true");

    let tree = match tree {
        Some(t) => t,
        None => {
            let (trees, _) = default_trees();
            match trees.into_iter().find(|t| t.label == "6.12") {
                Some(t) => t,
                None => {
                    println!("bench: the 6.12 tree is absent (run scripts/setup.sh)");
                    return skip(ci);
                }
            }
        }
    };
    if let Some(p) = tree.problem() {
        println!("bench: {p}");
        return skip(ci);
    }
    if !kmod.is_file() {
        println!("bench: kmod modprobe not found at {}", kmod.display());
        return skip(ci);
    }
    if !earlymod.is_file() {
        println!("bench: earlymod binary not found at {}", earlymod.display());
        return ExitCode::FAILURE;
    }

    let names = match dep_module_names(&tree) {
        Ok(n) => n,
        Err(e) => {
            println!("bench: reading modules.dep: {e}");
            return ExitCode::FAILURE;
        }
    };
    let aliases = match alias_lines(&tree.moddir().join("modules.alias")) {
        Ok(p) => derived_aliases(&p),
        Err(e) => {
            println!("bench: reading modules.alias: {e}");
            return ExitCode::FAILURE;
        }
    };

    // Room for the argument strings: half of ARG_MAX minus the environment
    // and the fixed arguments, for safety.
    let budget = (arg_max() / 2)
        .saturating_sub(env_footprint() + 4096)
        .max(16 * 1024);
    let kmod_tool = Tool {
        program: kmod,
        applet: None,
    };
    let early_tool = Tool {
        program: earlymod,
        applet: Some("modprobe".into()),
    };

    println!(
        "bench: tree {} ({}), {rounds} rounds, median wall time",
        tree.label, tree.kver
    );
    let mut worst = 0.0f64;
    let mut figures = Vec::new();
    for (label, flags, items, what) in [
        ("-D", &["-a", "-D"][..], &names, "names"),
        ("-R", &["-a", "-R"][..], &aliases, "aliases"),
    ] {
        let chunks = argv_chunks(items, budget);
        let mut te = Vec::new();
        let mut tk = Vec::new();
        let mut first: Option<(Outcome, Outcome)> = None;
        for r in 0..rounds {
            let (e, k) = if r % 2 == 0 {
                let k = run_chunks(&kmod_tool, &tree, flags, &chunks);
                let e = run_chunks(&early_tool, &tree, flags, &chunks);
                (e, k)
            } else {
                let e = run_chunks(&early_tool, &tree, flags, &chunks);
                let k = run_chunks(&kmod_tool, &tree, flags, &chunks);
                (e, k)
            };
            te.push(e.0);
            tk.push(k.0);
            if first.is_none() {
                first = Some((e.1, k.1));
            }
        }
        let (me, mk) = (median(&mut te), median(&mut tk));
        let ratio = me.as_secs_f64() / mk.as_secs_f64();
        worst = worst.max(ratio);
        let chunk_note = if chunks.len() > 1 {
            format!(", {} chunks", chunks.len())
        } else {
            String::new()
        };
        println!(
            "bench {label} all ({} {what}{chunk_note}): earlymod {:.3} s, kmod {:.3} s, ratio {:.2}",
            items.len(),
            me.as_secs_f64(),
            mk.as_secs_f64(),
            ratio
        );
        let (e, k) = first.unwrap();
        let identical = e.stdout == k.stdout && e.code == k.code;
        let callgrind = [
            "valgrind",
            "--tool=callgrind",
            "--callgrind-out-file=/dev/null",
        ];
        let time = ["/usr/bin/time", "-f", "@@maxrss %M"];
        let instr = |t: &Tool| {
            measure(
                &callgrind,
                t,
                &tree,
                flags,
                &chunks,
                callgrind_instructions,
                |a, b| a + b,
            )
        };
        let rss = |t: &Tool| measure(&time, t, &tree, flags, &chunks, max_rss_kib, u64::max);
        let (ie, ik) = (instr(&early_tool), instr(&kmod_tool));
        let (re, rk) = (rss(&early_tool), rss(&kmod_tool));
        match (ie, ik) {
            (Some(a), Some(b)) => println!(
                "bench {label} instructions (callgrind): earlymod {a}, kmod {b}, ratio {:.2}",
                a as f64 / b as f64
            ),
            _ => println!("bench {label} instructions: not measured (valgrind missing or failed)"),
        }
        match (re, rk) {
            (Some(a), Some(b)) => println!(
                "bench {label} peak RSS: earlymod {a} KiB, kmod {b} KiB, ratio {:.2}",
                a as f64 / b as f64
            ),
            _ => println!("bench {label} peak RSS: not measured (/usr/bin/time missing or failed)"),
        }
        figures.push(format!(
            "\"{}\": {{\"items\": {}, \"what\": \"{what}\", \"chunks\": {}, \"earlymod_s\": {}, \"kmod_s\": {}, \"identical\": {identical}, \"earlymod_instructions\": {}, \"kmod_instructions\": {}, \"earlymod_rss_kib\": {}, \"kmod_rss_kib\": {}}}",
            label.trim_start_matches('-'),
            items.len(),
            chunks.len(),
            me.as_secs_f64(),
            mk.as_secs_f64(),
            json_opt(ie),
            json_opt(ik),
            json_opt(re),
            json_opt(rk),
        ));
        if !identical {
            let line = e
                .stdout
                .split(|&c| c == b'\n')
                .zip(k.stdout.split(|&c| c == b'\n'))
                .take_while(|(a, b)| a == b)
                .count()
                + 1;
            println!(
                "bench {label}: WARNING: outputs differ (earlymod exit {}, {} bytes; kmod exit {}, {} bytes; first difference at line {line})",
                e.code,
                e.stdout.len(),
                k.code,
                k.stdout.len()
            );
        } else {
            println!(
                "bench {label}: outputs identical ({} bytes, exit {})",
                k.stdout.len(),
                k.code
            );
        }
    }
    println!(
        "bench: worst ratio {worst:.2} (goal <= 0.50: {})",
        if worst <= 0.5 { "met" } else { "not met" }
    );
    if let Some(path) = json {
        let text = format!(
            "{{\"tree\": \"{}\", \"kver\": \"{}\", \"rounds\": {rounds}, {}}}\n",
            tree.label,
            tree.kver,
            figures.join(", ")
        );
        if let Err(e) = std::fs::write(&path, text) {
            println!("bench: writing {}: {e}", path.display());
            return ExitCode::FAILURE;
        }
    }
    ExitCode::SUCCESS
}

fn skip(ci: bool) -> ExitCode {
    if ci {
        println!("bench: FAIL: reference kmod/tree missing and CI=true");
        ExitCode::FAILURE
    } else {
        println!("SKIP: bench needs kmod and the 6.12 tree");
        ExitCode::SUCCESS
    }
}
