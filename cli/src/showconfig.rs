//! `modprobe -c`: the effective configuration, then the alias and symbol
//! indexes, in kmod's format.

use earlymod_core::config::Config;
use earlymod_core::db::{ModuleDb, Source};
use std::io::Write;

/// Prints the configuration and index dump; returns the exit code.
pub fn show_config(cfg: &Config<'_>, db: &ModuleDb<'_>, out: &mut dyn Write) -> i32 {
    let mut w = || -> std::io::Result<()> {
        for b in cfg.blacklist.iter() {
            writeln!(out, "blacklist {b}")?;
        }
        for (k, v) in cfg.install.iter() {
            writeln!(out, "install {k} {v}")?;
        }
        for (k, v) in cfg.remove.iter() {
            writeln!(out, "remove {k} {v}")?;
        }
        for (k, v) in cfg.aliases.iter() {
            writeln!(out, "alias {k} {v}")?;
        }
        for (k, v) in cfg.options.iter() {
            writeln!(out, "options {k} {v}")?;
        }
        for (k, v) in cfg.softdeps.iter() {
            let mut line = String::new();
            {
                let sd = earlymod_core::config::Softdep::new(v);
                let pre: Vec<&str> = sd.pre().collect();
                let post: Vec<&str> = sd.post().collect();
                if !pre.is_empty() {
                    line.push_str("pre: ");
                    line.push_str(&pre.join(" "));
                }
                if !post.is_empty() {
                    line.push_str("post: ");
                    line.push_str(&post.join(" "));
                }
            }
            writeln!(out, "softdep {k} {line}")?;
        }
        writeln!(
            out,
            "\n# End of configuration files. Dumping indexes now:\n"
        )?;
        for src in [&db.alias, &db.symbols] {
            if let Source::Bin(idx) = src {
                let mut err = Ok(());
                let r = idx.for_each(&mut |k, v| {
                    if err.is_ok() {
                        err = out
                            .write_all(b"alias ")
                            .and_then(|_| out.write_all(k))
                            .and_then(|_| out.write_all(b" "))
                            .and_then(|_| out.write_all(v.value))
                            .and_then(|_| out.write_all(b"\n"));
                    }
                });
                err?;
                if let Err(e) = r {
                    eprintln!("modprobe: ERROR: index dump: {e}");
                }
            }
        }
        Ok(())
    };
    match w() {
        Ok(()) => 0,
        Err(_) => 1,
    }
}
