//! earlymod for the host: the same applets as the static binary
//! (`modprobe`, `insmod`, `rmmod`, `lsmod`, from earlymod-applets) plus
//! `modinfo`, which still needs std. The applet comes from argv[0]
//! (`/sbin/modprobe` → modprobe) or the first argument (`earlymod modprobe`).

mod decompress;
mod elf;
mod modinfo;
#[cfg(test)]
mod testutil;

use earlymod_applets::log::{LOG_WARNING, Log};
use earlymod_applets::moddir::{DEFAULT_CONFIG_PATHS, DirName, ModDir};
use earlymod_core::db::DepLine;
use earlymod_core::name::{AliasBuf, normalize_alias};
use earlymod_core::probe::Candidates;
use modinfo::Resolved;
use std::path::{Path, PathBuf};

/// modprobe-style lookup for `modinfo NAME`: every module the name or alias
/// resolves to, as a file or a builtin.
fn resolve(name: &str, moddir: &Path) -> Result<Vec<Resolved>, String> {
    let log = Log {
        prog: "modinfo",
        verbose: LOG_WARNING,
    };
    let dirname = DirName::try_from(moddir.to_str().unwrap_or(""))
        .map_err(|_| format!("{}: path too long", moddir.display()))?;
    let dir = ModDir::open(dirname);
    earlymod_applets::modprobe::with_config(&dir, &DEFAULT_CONFIG_PATHS, &log, |r| {
        let mut key = AliasBuf::new();
        let mut found = Candidates::new();
        if normalize_alias(name, &mut key).is_err() {
            return Ok(Vec::new());
        }
        r.lookup(&key, &mut found)
            .map_err(|e| format!("{name}: {e}"))?;
        let mut out = Vec::new();
        for c in found.iter() {
            let line = r.db.dep_line(&c.name).map_err(|e| format!("{name}: {e}"))?;
            match line.and_then(DepLine::parse) {
                Some(d) if d.path.starts_with('/') => {
                    out.push(Resolved::File(PathBuf::from(d.path)))
                }
                Some(d) => out.push(Resolved::File(Path::new(dir.dirname.as_str()).join(d.path))),
                None if c.builtin || r.is_builtin(&c.name).unwrap_or(false) => {
                    out.push(Resolved::Builtin(c.name.to_string()))
                }
                None => {}
            }
        }
        Ok(out)
    })
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let argv0 = args.first().map(String::as_str).unwrap_or("earlymod");
    let (applet, rest): (&str, &[String]) = match earlymod_applets::applet_of(argv0) {
        Some(a) => (a, args.get(1..).unwrap_or(&[])),
        None => match args.get(1) {
            Some(a) => (a.as_str(), &args[2..]),
            None => {
                eprintln!(
                    "usage: earlymod APPLET [ARGS]   (applets: modprobe, insmod, rmmod, lsmod, modinfo)"
                );
                std::process::exit(1);
            }
        },
    };
    let code = if applet == "modinfo" {
        let stdout = std::io::stdout();
        let stderr = std::io::stderr();
        modinfo::modinfo_main(rest, &resolve, &mut stdout.lock(), &mut stderr.lock())
    } else {
        let mut argv: Vec<&str> = rest.iter().map(String::as_str).collect();
        let env = std::env::var("MODPROBE_OPTIONS").ok();
        earlymod_applets::dispatch(applet, &mut argv, env.as_deref()).unwrap_or_else(|| {
            eprintln!("earlymod: unknown applet '{applet}'");
            1
        })
    };
    std::process::exit(code);
}
