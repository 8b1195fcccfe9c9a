//! modprobe.d configuration, parsed in place and kept as borrowed slices.
//!
//! Parsing follows libkmod 30 line for line: `\`-newline joins lines and a
//! `\` before any other byte is dropped; a line is skipped when empty or when
//! its first byte is `#`; tokens are split on space and tab; module-name
//! fields are normalized (`-` → `_` outside brackets) in place; the rest of an
//! `options`/`install`/`remove`/`softdep` line is everything after the one
//! delimiter that ends the module name. `weakdep` lines are recognised and
//! kept (kmod ≥ 33 semantics: never loaded).

use crate::error::{Error, Result};
use crate::name::underscores;

/// Bounds of one configuration, per kind of line.
pub const MAX_ALIASES: usize = 512;
/// Bound on `blacklist` lines (plus `modprobe.blacklist=` entries).
pub const MAX_BLACKLIST: usize = 1024;
/// Bound on `options` lines (plus command-line `mod.param=` entries).
pub const MAX_OPTIONS: usize = 1024;
/// Bound on `install` and on `remove` lines.
pub const MAX_COMMANDS: usize = 128;
/// Bound on `softdep` and on `weakdep` lines.
pub const MAX_SOFTDEPS: usize = 256;

/// One `key value` config entry: a (possibly glob) module name and its payload.
pub type Entry<'a> = (&'a str, &'a str);

/// A line the parser ignored, for a caller that reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Diag<'x> {
    /// `ignoring bad line starting with 'cmd'` at this (last physical) line.
    BadLine {
        /// 1-based line number (the last physical line of a continued one).
        line: u32,
        /// The line's first word.
        cmd: &'x str,
    },
    /// `include` / `config`: deprecated and not parsed.
    Deprecated {
        /// The command word.
        cmd: &'x str,
    },
}

/// All modprobe.d configuration in effect, in file order.
#[derive(Debug, Default)]
pub struct Config<'a> {
    /// `alias PATTERN MODULE`.
    pub aliases: heapless::Vec<Entry<'a>, MAX_ALIASES>,
    /// `blacklist MODULE`.
    pub blacklist: heapless::Vec<&'a str, MAX_BLACKLIST>,
    /// `options MODULE OPTS` (then kernel command-line options, in order).
    pub options: heapless::Vec<Entry<'a>, MAX_OPTIONS>,
    /// `install PATTERN COMMAND`.
    pub install: heapless::Vec<Entry<'a>, MAX_COMMANDS>,
    /// `remove PATTERN COMMAND`.
    pub remove: heapless::Vec<Entry<'a>, MAX_COMMANDS>,
    /// `softdep PATTERN pre: ... post: ...` (the text after the pattern).
    pub softdeps: heapless::Vec<Entry<'a>, MAX_SOFTDEPS>,
    /// `weakdep MODULE ...` (recognised, never loaded).
    pub weakdeps: heapless::Vec<Entry<'a>, MAX_SOFTDEPS>,
}

/// Splits off the next space/tab-delimited token of `rest` (C `strtok_r`).
/// Returns the token; `rest` becomes what follows its one delimiter, or
/// `None` when the token ran to the end of the line.
fn token<'a>(rest: &mut Option<&'a mut [u8]>) -> Option<&'a mut [u8]> {
    let s = rest.take()?;
    let start = s.iter().position(|&b| b != b' ' && b != b'\t')?;
    let s = &mut s[start..];
    match s.iter().position(|&b| b == b' ' || b == b'\t') {
        Some(end) => {
            let (tok, tail) = s.split_at_mut(end);
            *rest = Some(&mut tail[1..]);
            Some(tok)
        }
        None => Some(s),
    }
}

/// What follows the module-name token, if anything (C `strtok_r(NULL, "")`).
fn remainder<'a>(rest: &mut Option<&'a mut [u8]>) -> Option<&'a mut [u8]> {
    rest.take().filter(|s| !s.is_empty())
}

fn as_str(b: &[u8]) -> Option<&str> {
    core::str::from_utf8(b).ok()
}

/// A module-name field: normalized in place; `None` on a bad name.
fn name_field<'a>(rest: &mut Option<&'a mut [u8]>) -> Option<&'a str> {
    let t = token(rest)?;
    underscores(t).ok()?;
    let t: &'a [u8] = t;
    as_str(t)
}

/// Reads one logical line from the front of `rest`, joining continuations in
/// place. Returns the line and the number of physical lines it used.
fn logical_line<'a>(rest: &mut &'a mut [u8]) -> Option<(&'a mut [u8], u32)> {
    if rest.is_empty() {
        return None;
    }
    let buf = core::mem::take(rest);
    let (mut r, mut w, mut n) = (0usize, 0usize, 0u32);
    let consumed = loop {
        if r >= buf.len() {
            n += 1;
            break buf.len();
        }
        match buf[r] {
            b'\n' => {
                n += 1;
                break r + 1;
            }
            b'\\' if buf.get(r + 1) == Some(&b'\n') => {
                n += 1;
                r += 2;
            }
            b'\\' => {
                // kmod stores the escaped byte; a `\` at the very end of the
                // file makes kmod store getc()'s EOF as a 0xFF byte, a bug
                // earlymod does not reproduce: the dangling `\` is dropped.
                if let Some(&c) = buf.get(r + 1) {
                    buf[w] = c;
                    w += 1;
                }
                r += 2;
            }
            c => {
                buf[w] = c;
                w += 1;
                r += 1;
            }
        }
    };
    let (head, tail) = buf.split_at_mut(consumed);
    *rest = tail;
    Some((&mut head[..w], n))
}

impl<'a> Config<'a> {
    /// An empty configuration.
    pub fn new() -> Self {
        Self::default()
    }

    /// Parses one modprobe.d file (or `modules.softdep`) in place.
    /// Bad lines are reported to `diag` and skipped. A line that does not
    /// fit its bound is dropped, the rest of the file is still parsed (kmod
    /// would have used it all), and the result is [`Error::ConfigFull`]
    /// naming the first such line, the bound and how many lines were
    /// dropped; the caller reports it and goes on.
    pub fn parse_file(&mut self, text: &'a mut [u8], diag: &mut dyn FnMut(Diag<'_>)) -> Result<()> {
        let mut rest = text;
        let mut linenum = 0u32;
        let mut full: Option<Error> = None;
        while let Some((line, n)) = logical_line(&mut rest) {
            linenum += n;
            if line.is_empty() || line[0] == b'#' {
                continue;
            }
            let mut fields = Some(line);
            let Some(cmd) = token(&mut fields) else {
                continue;
            };
            let cmd: &'a [u8] = cmd;
            let cmd_str = as_str(cmd).unwrap_or("?");
            let ok = match cmd {
                b"alias" => {
                    let alias = name_field(&mut fields);
                    let module = name_field(&mut fields);
                    match (alias, module) {
                        (Some(a), Some(m)) => keep(
                            &mut self.aliases,
                            (a, m),
                            "config aliases",
                            linenum,
                            &mut full,
                        ),
                        _ => false,
                    }
                }
                b"blacklist" => match name_field(&mut fields) {
                    Some(m) => keep(
                        &mut self.blacklist,
                        m,
                        "config blacklist entries",
                        linenum,
                        &mut full,
                    ),
                    None => false,
                },
                b"options" => {
                    let m = name_field(&mut fields);
                    match (m, remainder(&mut fields)) {
                        (Some(m), Some(opts)) => {
                            opts.iter_mut()
                                .filter(|b| **b == b'\t')
                                .for_each(|b| *b = b' ');
                            let opts: &'a [u8] = opts;
                            match as_str(opts) {
                                Some(o) => keep(
                                    &mut self.options,
                                    (m, o),
                                    "config options",
                                    linenum,
                                    &mut full,
                                ),
                                None => false,
                            }
                        }
                        _ => false,
                    }
                }
                b"install" | b"remove" | b"softdep" | b"weakdep" => {
                    let m = name_field(&mut fields);
                    let payload = remainder(&mut fields).and_then(|p| {
                        let p: &'a [u8] = p;
                        as_str(p)
                    });
                    match (m, payload) {
                        (Some(m), Some(p)) => {
                            let entry = (m, p);
                            let (f, l) = (&mut full, linenum);
                            match cmd {
                                b"install" => {
                                    keep(&mut self.install, entry, "install commands", l, f)
                                }
                                b"remove" => keep(&mut self.remove, entry, "remove commands", l, f),
                                b"softdep" => keep(&mut self.softdeps, entry, "softdeps", l, f),
                                _ => keep(&mut self.weakdeps, entry, "weakdeps", l, f),
                            }
                        }
                        _ => false,
                    }
                }
                b"include" | b"config" => {
                    diag(Diag::Deprecated { cmd: cmd_str });
                    true
                }
                _ => false,
            };
            if !ok {
                diag(Diag::BadLine {
                    line: linenum,
                    cmd: cmd_str,
                });
            }
        }
        full.map_or(Ok(()), Err)
    }

    /// The first `install` command whose pattern matches `name`.
    pub fn install_for(&self, name: &str) -> Option<&'a str> {
        first_match(&self.install, name)
    }

    /// The first `remove` command whose pattern matches `name`.
    pub fn remove_for(&self, name: &str) -> Option<&'a str> {
        first_match(&self.remove, name)
    }

    /// The first softdep line whose pattern matches `name`.
    pub fn softdep_for(&self, name: &str) -> Option<Softdep<'a>> {
        first_match(&self.softdeps, name).map(|text| Softdep { text })
    }

    /// True when `name` is blacklisted (exact match, as kmod compares).
    pub fn is_blacklisted(&self, name: &str) -> bool {
        self.blacklist.contains(&name)
    }

    /// Every options string for `name` or `alias`, in order (empty ones skipped).
    pub fn options_for<'s>(
        &'s self,
        name: &'s str,
        alias: Option<&'s str>,
    ) -> impl Iterator<Item = &'a str> + 's {
        self.options
            .iter()
            .filter(move |(m, o)| (*m == name || Some(*m) == alias) && !o.is_empty())
            .map(|(_, o)| *o)
    }
}

/// Appends `item`; when `v` is full, notes the line in `full` instead (the
/// first full bound is reported, every dropped line counted). The line is
/// well formed either way: returns true.
fn keep<T, const N: usize>(
    v: &mut heapless::Vec<T, N>,
    item: T,
    what: &'static str,
    line: u32,
    full: &mut Option<Error>,
) -> bool {
    if v.push(item).is_err() {
        match full {
            Some(Error::ConfigFull { ignored, .. }) => *ignored += 1,
            _ => {
                *full = Some(Error::ConfigFull {
                    what,
                    limit: N,
                    line,
                    ignored: 1,
                })
            }
        }
    }
    true
}

fn first_match<'a>(list: &[Entry<'a>], name: &str) -> Option<&'a str> {
    list.iter()
        .find(|(pat, _)| quick_fnmatch(pat.as_bytes(), name.as_bytes()))
        .map(|(_, v)| *v)
}

/// fnmatch with a cheap exact pre-check: a pattern whose first byte is an
/// ordinary character cannot match a name starting with another byte.
fn quick_fnmatch(pat: &[u8], name: &[u8]) -> bool {
    match (pat.first(), name.first()) {
        (Some(p), Some(n)) if !matches!(p, b'*' | b'?' | b'[' | b'\\') && p != n => false,
        _ => crate::fnmatch::fnmatch(pat, name),
    }
}

/// One softdep line's payload, split lazily.
#[derive(Debug, Clone, Copy)]
pub struct Softdep<'a> {
    text: &'a str,
}

impl<'a> Softdep<'a> {
    /// A view over one softdep line's payload (`pre: a b post: c`).
    pub fn new(text: &'a str) -> Self {
        Softdep { text }
    }

    fn list(&self, want: &str) -> impl Iterator<Item = &'a str> + 'a {
        let mut mode = "";
        let want_pre = want == "pre:";
        self.text
            .split(|c: char| c.is_ascii_whitespace())
            .filter(|t| !t.is_empty())
            .filter(move |t| {
                if *t == "pre:" || *t == "post:" {
                    mode = t;
                    return false;
                }
                (mode == "pre:") == want_pre && !mode.is_empty()
            })
    }

    /// Modules to load before, in order.
    pub fn pre(&self) -> impl Iterator<Item = &'a str> + 'a {
        self.list("pre:")
    }

    /// Modules to load after, in order.
    pub fn post(&self) -> impl Iterator<Item = &'a str> + 'a {
        self.list("post:")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse<'a>(cfg: &mut Config<'a>, text: &'a mut [u8]) -> heapless::Vec<u32, 8> {
        let mut bad = heapless::Vec::new();
        cfg.parse_file(text, &mut |d| {
            if let Diag::BadLine { line, .. } = d {
                bad.push(line).unwrap();
            }
        })
        .unwrap();
        bad
    }

    #[test]
    fn keywords_and_quirks() {
        let mut text = *b"# comment\nalias my-alias snd-hda-intel\noptions  snd-hda-intel\tmodel=x\tpos=1 \nblacklist evbug\n  # indented\nsoftdep a pre: b c post: d\ninstall foo /bin/true \\\n --x\nbogus line\noptions lonely\nweakdep x y\n";
        let mut cfg = Config::new();
        let bad = parse(&mut cfg, &mut text);
        assert_eq!(&bad[..], &[5, 9, 10]);
        assert_eq!(&cfg.aliases[..], &[("my_alias", "snd_hda_intel")]);
        // The remainder keeps the spaces after the one delimiter; tabs become spaces.
        assert_eq!(&cfg.options[..], &[("snd_hda_intel", "model=x pos=1 ")]);
        assert_eq!(&cfg.blacklist[..], &["evbug"]);
        assert_eq!(cfg.install_for("foo"), Some("/bin/true  --x"));
        let sd = cfg.softdep_for("a").unwrap();
        let pre: heapless::Vec<&str, 4> = sd.pre().collect();
        let post: heapless::Vec<&str, 4> = sd.post().collect();
        assert_eq!(&pre[..], &["b", "c"]);
        assert_eq!(&post[..], &["d"]);
        assert_eq!(&cfg.weakdeps[..], &[("x", "y")]);
    }

    #[test]
    fn backslash_at_end_of_file() {
        for text in [
            &b"options m a=1 \\"[..],
            b"\\",
            b"options m a=\\\n",
            b"x\\\\",
        ] {
            let mut buf = [0u8; 32];
            buf[..text.len()].copy_from_slice(text);
            let mut cfg = Config::new();
            cfg.parse_file(&mut buf[..text.len()], &mut |_| {}).unwrap();
        }
        let mut text = *b"options m a=1 \\";
        let mut cfg = Config::new();
        parse(&mut cfg, &mut text);
        assert_eq!(&cfg.options[..], &[("m", "a=1 ")]);
    }

    #[test]
    fn option_spacing_is_kept() {
        let mut text = *b"options m   a=1";
        let mut cfg = Config::new();
        parse(&mut cfg, &mut text);
        assert_eq!(&cfg.options[..], &[("m", "  a=1")]);
    }

    #[test]
    fn capacity_is_an_error() {
        let mut text = [0u8; 20 * (MAX_COMMANDS + 1)];
        let mut n = 0;
        for _ in 0..=MAX_COMMANDS {
            for &b in b"install x y\n" {
                text[n] = b;
                n += 1;
            }
        }
        let mut cfg = Config::new();
        assert_eq!(
            cfg.parse_file(&mut text[..n], &mut |_| {}),
            Err(Error::ConfigFull {
                what: "install commands",
                limit: MAX_COMMANDS,
                line: MAX_COMMANDS as u32 + 1,
                ignored: 1
            })
        );
        assert_eq!(cfg.install.len(), MAX_COMMANDS);
    }

    /// One over-full kind of line drops only its own excess: the rest of
    /// the file (other kinds, later lines) is still used, and the error
    /// names the first dropped line and counts them all.
    #[test]
    fn a_full_bound_drops_only_its_lines() {
        extern crate std;
        use std::string::String;
        let mut text = String::new();
        for i in 0..MAX_ALIASES + 2 {
            text.push_str(&std::format!("alias a{i} m\n"));
            if i == MAX_ALIASES {
                text.push_str("options m x=1\n");
            }
        }
        text.push_str("blacklist m\n");
        let mut bytes = text.into_bytes();
        let mut cfg = Config::new();
        let r = cfg.parse_file(&mut bytes, &mut |d| panic!("{d:?}"));
        assert_eq!(
            r,
            Err(Error::ConfigFull {
                what: "config aliases",
                limit: MAX_ALIASES,
                line: MAX_ALIASES as u32 + 1,
                ignored: 2
            })
        );
        assert_eq!(cfg.aliases.len(), MAX_ALIASES);
        assert_eq!(&cfg.options[..], &[("m", "x=1")]);
        assert_eq!(&cfg.blacklist[..], &["m"]);
        extern crate alloc;
        assert_eq!(
            alloc::format!("{}", r.unwrap_err()),
            "too many config aliases (limit 512): line 513 and 1 more line over a bound ignored"
        );
    }
}
