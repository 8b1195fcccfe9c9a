//! earlymod: a multi-call kernel-module tool (`modprobe`, `modinfo`, ...).
//! The applet comes from argv[0] (`/sbin/modprobe` → modprobe) or from the
//! first argument (`earlymod modprobe ...`).

mod decompress;
mod elf;
mod mapped;
mod moddir;
mod modinfo;
mod modprobe;
mod showconfig;
mod sysfs;
#[cfg(test)]
mod testutil;

use earlymod_core::db::DepLine;
use earlymod_core::name::{AliasBuf, normalize_alias};
use earlymod_core::probe::Candidates;
use modinfo::Resolved;
use std::path::{Path, PathBuf};

/// modprobe-style lookup for `modinfo NAME`: every module the name or alias
/// resolves to, as a file or a builtin.
fn resolve(name: &str, moddir: &Path) -> Result<Vec<Resolved>, String> {
    let log = modprobe::Log::new("modinfo");
    modprobe::with_resolver(moddir.display().to_string(), &[], &log, |r, dir| {
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
                Some(d) => out.push(Resolved::File(PathBuf::from(dir.module_path(d.path)))),
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
    let prog = args
        .first()
        .map(|a| a.rsplit('/').next().unwrap_or(a).to_string())
        .unwrap_or_default();
    let (applet, rest) = if prog == "earlymod" {
        match args.get(1) {
            Some(a) => (a.as_str(), &args[2..]),
            None => {
                eprintln!("usage: earlymod APPLET [ARGS]   (applets: modprobe, modinfo)");
                std::process::exit(1);
            }
        }
    } else {
        (prog.as_str(), &args[1.min(args.len())..])
    };
    let code = match applet {
        "modprobe" => modprobe::main("modprobe", rest),
        "modinfo" => {
            let stdout = std::io::stdout();
            let stderr = std::io::stderr();
            modinfo::modinfo_main(rest, &resolve, &mut stdout.lock(), &mut stderr.lock())
        }
        other => {
            eprintln!("earlymod: unknown applet '{other}'");
            1
        }
    };
    std::process::exit(code);
}
