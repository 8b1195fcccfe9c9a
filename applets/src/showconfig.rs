//! `modprobe -c`: the effective configuration, then the alias and symbol
//! indexes, in kmod's format.

use crate::sys::Out;
use earlymod_core::config::{Config, Softdep};
use earlymod_core::db::{ModuleDb, Source};
use earlymod_core::put;

/// Prints the configuration and index dump; returns the exit code.
pub fn show_config(cfg: &Config<'_>, db: &ModuleDb<'_>, dirname: &str, out: &mut Out) -> i32 {
    for b in cfg.blacklist.iter() {
        words(out, &["blacklist", b], b"\n");
    }
    for (word, entries) in [
        ("install", &cfg.install[..]),
        ("remove", &cfg.remove[..]),
        ("alias", &cfg.aliases[..]),
        ("options", &cfg.options[..]),
    ] {
        for (k, v) in entries {
            words(out, &[word, k, v], b"\n");
        }
    }
    for (k, v) in cfg.softdeps.iter() {
        // kmod joins the lists without a space before "post:".
        let sd = Softdep::new(v);
        words(out, &["softdep", k], b" ");
        list(out, "pre: ", sd.pre());
        list(out, "post: ", sd.post());
        out.bytes(b"\n");
    }
    for (k, v) in cfg.weakdeps.iter() {
        // kmod 34 keeps the names, one space between them.
        words(out, &["weakdep", k], b" ");
        list(out, "", v.split(is_c_space).filter(|n| !n.is_empty()));
        out.bytes(b"\n");
    }
    out.bytes(b"\n# End of configuration files. Dumping indexes now:\n\n");
    // A broken index is reported (one line naming the file) and the dump
    // goes on with the next; the exit status says the dump is incomplete.
    let mut code = 0;
    for src in [&db.alias, &db.symbols] {
        let r = match src {
            Source::Bin(idx) => idx.for_each(&mut |k, v| {
                out.bytes(b"alias ");
                out.bytes(k);
                out.bytes(b" ");
                out.bytes(v.value);
                out.bytes(b"\n");
            }),
            Source::Corrupt(e) => Err(*e),
            Source::Text(_) | Source::Missing => Ok(()),
        };
        if let Err(e) = r {
            out.flush();
            put!(&mut Out::stderr(); "modprobe: ERROR: could not dump ", dirname, "/", e, "\n");
            code = 1;
        }
    }
    code
}

/// `words` joined by spaces, then `end`.
fn words(out: &mut Out, words: &[&str], end: &[u8]) {
    for (j, w) in words.iter().enumerate() {
        if j > 0 {
            out.bytes(b" ");
        }
        out.bytes(w.as_bytes());
    }
    out.bytes(end);
}

/// C's `isspace` in the C locale.
fn is_c_space(c: char) -> bool {
    matches!(c, ' ' | '\t' | '\n' | '\x0b' | '\x0c' | '\r')
}

fn list<'a>(out: &mut Out, label: &str, names: impl Iterator<Item = &'a str>) {
    for (j, n) in names.enumerate() {
        out.bytes(if j == 0 { label.as_bytes() } else { b" " });
        out.bytes(n.as_bytes());
    }
}
