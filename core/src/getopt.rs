//! GNU `getopt_long` as kmod's tools use it, without allocation: clustered
//! short options, attached or separate arguments, `--long[=value]` with
//! unique-prefix matching, permutation of operands, `--` ending options, and
//! glibc's diagnostics. Parsing stops at the first bad option (options before
//! it are kept), as getopt's callers that exit on `?` behave.

use crate::put;
use crate::text::{self, Piece, Sink};
use core::fmt;

/// One option of a command.
pub struct Opt {
    /// Short letter, if any.
    pub short: Option<char>,
    /// Long names.
    pub long: &'static [&'static str],
    /// Takes an argument.
    pub arg: bool,
    /// Identifier returned to the caller.
    pub id: &'static str,
}

impl Opt {
    /// A table entry: `short` letter, `long` names, takes an argument,
    /// the `id` returned in [`Hit`].
    pub const fn new(
        short: Option<char>,
        long: &'static [&'static str],
        arg: bool,
        id: &'static str,
    ) -> Opt {
        Opt {
            short,
            long,
            arg,
            id,
        }
    }
}

/// A parsed option occurrence.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Hit<'a> {
    /// The option's id.
    pub id: &'static str,
    /// Its argument.
    pub value: Option<&'a str>,
}

/// The first bad option, formatted like glibc with [`GetoptError::show`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GetoptError<'a> {
    /// `invalid option -- 'x'`.
    Invalid(char),
    /// `option requires an argument -- 'x'`.
    ShortNeedsArg(char),
    /// `unrecognized option '--x'`.
    Unrecognized(&'a str),
    /// `option '--x' is ambiguous; possibilities: ...`.
    Ambiguous(&'a str),
    /// `option '--name' requires an argument`.
    LongNeedsArg(&'static str),
    /// `option '--name' doesn't allow an argument`.
    NoArgAllowed(&'static str),
    /// More options than the bounded buffer holds.
    TooMany,
}

impl<'a> GetoptError<'a> {
    /// The message glibc prints (`prog: ...`), given the option table.
    pub fn show<'s>(&'s self, prog: &'s str, opts: &'s [Opt]) -> Show<'s, 'a> {
        Show {
            e: self,
            prog,
            opts,
        }
    }
}

/// A getopt error as glibc words it (a [`Piece`] and `Display`).
pub struct Show<'s, 'a> {
    e: &'s GetoptError<'a>,
    prog: &'s str,
    opts: &'s [Opt],
}

impl Piece for Show<'_, '_> {
    fn put_to(&self, out: &mut dyn Sink) {
        let p = self.prog;
        match *self.e {
            GetoptError::Invalid(c) => put!(out; p, ": invalid option -- '", c, "'"),
            GetoptError::ShortNeedsArg(c) => {
                put!(out; p, ": option requires an argument -- '", c, "'")
            }
            GetoptError::Unrecognized(n) => put!(out; p, ": unrecognized option '--", n, "'"),
            GetoptError::Ambiguous(arg) => {
                put!(out; p, ": option '--", arg, "' is ambiguous; possibilities:");
                let n = arg.split_once('=').map_or(arg, |(n, _)| n);
                for l in self
                    .opts
                    .iter()
                    .flat_map(|o| o.long.iter())
                    .filter(|l| l.starts_with(n))
                {
                    put!(out; " '--", l, "'");
                }
            }
            GetoptError::LongNeedsArg(n) => {
                put!(out; p, ": option '--", n, "' requires an argument")
            }
            GetoptError::NoArgAllowed(n) => {
                put!(out; p, ": option '--", n, "' doesn't allow an argument")
            }
            GetoptError::TooMany => put!(out; p, ": too many options (limit ", MAX_OPTIONS, ")"),
        }
    }
}

impl fmt::Display for Show<'_, '_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        text::display(self, f)
    }
}

/// Bound on options (not operands) of one command line.
pub const MAX_OPTIONS: usize = 256;

/// The result of parsing.
pub struct Parsed<'a, 's> {
    /// Options seen, in order (up to the error, if any).
    pub hits: heapless::Vec<Hit<'a>, MAX_OPTIONS>,
    /// Non-option arguments, in order (moved to the front of the caller's
    /// slice, as GNU getopt permutes argv: no bound but argv's own).
    pub operands: &'s [&'a str],
    /// The first bad option.
    pub error: Option<GetoptError<'a>>,
}

/// Parses `args` (without `argv[0]`), permuting operands to its front.
pub fn parse<'a, 's>(args: &'s mut [&'a str], opts: &[Opt]) -> Parsed<'a, 's> {
    let mut hits = heapless::Vec::new();
    let mut n = 0;
    let error = parse_into(args, opts, &mut hits, &mut n).err();
    Parsed {
        hits,
        operands: &args[..n],
        error,
    }
}

fn parse_into<'a>(
    args: &mut [&'a str],
    opts: &[Opt],
    hits: &mut heapless::Vec<Hit<'a>, MAX_OPTIONS>,
    operands: &mut usize,
) -> Result<(), GetoptError<'a>> {
    let mut hit = |h: Hit<'a>| hits.push(h).map_err(|_| GetoptError::TooMany);
    let mut i = 0;
    while i < args.len() {
        let a = args[i];
        i += 1;
        if a == "--" {
            for r in i..args.len() {
                args[*operands] = args[r];
                *operands += 1;
            }
            break;
        }
        if let Some(long) = a.strip_prefix("--") {
            let (name, inline) = match long.split_once('=') {
                Some((n, v)) => (n, Some(v)),
                None => (long, None),
            };
            let (o, full) = find_long(opts, name).map_err(|e| match e {
                // glibc quotes the whole argument, `=value` included.
                GetoptError::Ambiguous(_) => GetoptError::Ambiguous(long),
                GetoptError::Unrecognized(_) => GetoptError::Unrecognized(long),
                e => e,
            })?;
            let value = if o.arg {
                match inline {
                    Some(v) => Some(v),
                    None if i < args.len() => {
                        i += 1;
                        Some(args[i - 1])
                    }
                    None => return Err(GetoptError::LongNeedsArg(full)),
                }
            } else if inline.is_some() {
                return Err(GetoptError::NoArgAllowed(full));
            } else {
                None
            };
            hit(Hit { id: o.id, value })?;
            continue;
        }
        if a.len() > 1 && a.starts_with('-') {
            let cluster = &a[1..];
            for (j, c) in cluster.char_indices() {
                let Some(o) = opts.iter().find(|o| o.short == Some(c)) else {
                    return Err(GetoptError::Invalid(c));
                };
                if !o.arg {
                    hit(Hit {
                        id: o.id,
                        value: None,
                    })?;
                    continue;
                }
                let attached = &cluster[j + c.len_utf8()..];
                let value = if !attached.is_empty() {
                    attached
                } else if i < args.len() {
                    i += 1;
                    args[i - 1]
                } else {
                    return Err(GetoptError::ShortNeedsArg(c));
                };
                hit(Hit {
                    id: o.id,
                    value: Some(value),
                })?;
                break;
            }
            continue;
        }
        // Operands only move towards the front, over consumed options.
        args[*operands] = a;
        *operands += 1;
    }
    Ok(())
}

/// An exact long name, else a unique prefix (several names of one option count once).
fn find_long<'o, 'a>(
    opts: &'o [Opt],
    name: &'a str,
) -> Result<(&'o Opt, &'static str), GetoptError<'a>> {
    for o in opts {
        if let Some(l) = o.long.iter().find(|l| **l == name) {
            return Ok((o, l));
        }
    }
    let mut found: Option<(&Opt, &'static str)> = None;
    for o in opts {
        for l in o.long.iter().filter(|l| l.starts_with(name)) {
            match found {
                None => found = Some((o, l)),
                Some((f, _)) if f.id == o.id => {}
                Some(_) => return Err(GetoptError::Ambiguous(name)),
            }
        }
    }
    found.ok_or(GetoptError::Unrecognized(name))
}

#[cfg(test)]
mod tests {
    extern crate std;
    use super::*;
    use std::string::ToString;

    const OPTS: &[Opt] = &[
        Opt::new(Some('a'), &["all"], false, "all"),
        Opt::new(Some('d'), &["dirname"], true, "dirname"),
        Opt::new(Some('D'), &["show-depends"], false, "show"),
        Opt::new(None, &["show-config", "showconfig"], false, "config"),
    ];

    #[test]
    fn permutes_and_clusters() {
        let mut args = [
            "x",
            "-aD",
            "-d/r",
            "y",
            "--show-dep",
            "--dirname=/q",
            "--",
            "-z",
        ];
        let p = parse(&mut args, OPTS);
        assert!(p.error.is_none());
        let ids: heapless::Vec<(&str, Option<&str>), 8> =
            p.hits.iter().map(|h| (h.id, h.value)).collect();
        assert_eq!(
            &ids[..],
            &[
                ("all", None),
                ("show", None),
                ("dirname", Some("/r")),
                ("show", None),
                ("dirname", Some("/q"))
            ]
        );
        assert_eq!(p.operands, &["x", "y", "-z"]);
    }

    #[test]
    fn glibc_diagnostics() {
        let msg = |args: &[&str]| {
            let mut v: std::vec::Vec<&str> = args.to_vec();
            parse(&mut v, OPTS)
                .error
                .map(|e| e.show("p", OPTS).to_string())
        };
        assert_eq!(msg(&["-x"]).as_deref(), Some("p: invalid option -- 'x'"));
        assert_eq!(
            msg(&["-d"]).as_deref(),
            Some("p: option requires an argument -- 'd'")
        );
        assert_eq!(
            msg(&["--dir"]).as_deref(),
            Some("p: option '--dirname' requires an argument")
        );
        assert_eq!(
            msg(&["--all=1"]).as_deref(),
            Some("p: option '--all' doesn't allow an argument")
        );
        assert_eq!(
            msg(&["--nope"]).as_deref(),
            Some("p: unrecognized option '--nope'")
        );
        assert_eq!(
            msg(&["--show"]).as_deref(),
            Some(
                "p: option '--show' is ambiguous; possibilities: '--show-depends' '--show-config' '--showconfig'"
            )
        );
        assert_eq!(msg(&["--showc"]), None);
        assert_eq!(
            msg(&["--nope=1"]).as_deref(),
            Some("p: unrecognized option '--nope=1'")
        );
        assert!(
            msg(&["--show=1"])
                .unwrap()
                .starts_with("p: option '--show=1' is ambiguous; possibilities: '--show-depends'")
        );
        let mut args = ["-a", "-x", "-D"];
        let p = parse(&mut args, OPTS);
        assert_eq!(p.hits.len(), 1);
    }

    #[test]
    fn options_at_and_over_the_bound() {
        let mut args: std::vec::Vec<&str> = core::iter::repeat_n("-a", MAX_OPTIONS).collect();
        let p = parse(&mut args, OPTS);
        assert!(p.error.is_none());
        assert_eq!(p.hits.len(), MAX_OPTIONS);
        let mut args: std::vec::Vec<&str> = core::iter::repeat_n("-a", MAX_OPTIONS + 1).collect();
        let p = parse(&mut args, OPTS);
        assert_eq!(
            p.error.map(|e| e.show("p", OPTS).to_string()).as_deref(),
            Some("p: too many options (limit 256)")
        );
    }

    #[test]
    fn operands_are_not_bounded() {
        let mut args: std::vec::Vec<&str> = core::iter::repeat_n("m", 50_000).collect();
        args.insert(25_000, "-a");
        let p = parse(&mut args, OPTS);
        assert!(p.error.is_none());
        assert_eq!(p.operands.len(), 50_000);
        assert_eq!(p.hits.len(), 1);
    }
}
