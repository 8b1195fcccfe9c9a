//! GNU `getopt_long` as kmod's tools use it: clustered short options,
//! attached or separate arguments, `--long[=value]` with unique-prefix
//! matching, permutation of non-options, and `--` ending options.

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

/// A parsed option occurrence.
pub struct Hit {
    /// The option's id.
    pub id: &'static str,
    /// Its argument.
    pub value: Option<String>,
}

/// The result of parsing: options in order, operands, and the first error
/// (options after it were not read, as with getopt's callers that stop).
pub struct Parsed {
    /// Options seen, in order (up to the error, if any).
    pub hits: Vec<Hit>,
    /// Non-option arguments.
    pub operands: Vec<String>,
    /// glibc's diagnostic for the first bad option.
    pub error: Option<String>,
}

/// Parses `args` (without argv[0]).
pub fn parse(prog: &str, args: &[String], opts: &[Opt]) -> Parsed {
    let mut hits = Vec::new();
    let mut rest = Vec::new();
    let error = parse_into(prog, args, opts, &mut hits, &mut rest).err();
    Parsed {
        hits,
        operands: rest,
        error,
    }
}

fn parse_into(
    prog: &str,
    args: &[String],
    opts: &[Opt],
    hits: &mut Vec<Hit>,
    rest: &mut Vec<String>,
) -> Result<(), String> {
    let mut i = 0;
    while i < args.len() {
        let a = &args[i];
        i += 1;
        if a == "--" {
            rest.extend(args[i..].iter().cloned());
            break;
        }
        if let Some(long) = a.strip_prefix("--") {
            let (name, inline) = match long.split_once('=') {
                Some((n, v)) => (n, Some(v.to_string())),
                None => (long, None),
            };
            let exact: Vec<&Opt> = opts.iter().filter(|o| o.long.contains(&name)).collect();
            let matches: Vec<(&Opt, &str)> = if let Some(o) = exact.first() {
                vec![(*o, name)]
            } else {
                opts.iter()
                    .flat_map(|o| {
                        o.long
                            .iter()
                            .filter(|l| l.starts_with(name))
                            .map(move |l| (o, *l))
                    })
                    .collect()
            };
            let (o, full) = match matches.as_slice() {
                [one] => *one,
                [first, more @ ..] if more.iter().all(|(m, _)| m.id == first.0.id) => *first,
                [] => return Err(format!("{prog}: unrecognized option '--{name}'")),
                all => {
                    let mut msg = format!("{prog}: option '--{name}' is ambiguous; possibilities:");
                    for (_, l) in all {
                        msg.push_str(&format!(" '--{l}'"));
                    }
                    return Err(msg);
                }
            };
            let value = if o.arg {
                match inline {
                    Some(v) => Some(v),
                    None if i < args.len() => {
                        i += 1;
                        Some(args[i - 1].clone())
                    }
                    None => return Err(format!("{prog}: option '--{full}' requires an argument")),
                }
            } else if inline.is_some() {
                return Err(format!(
                    "{prog}: option '--{full}' doesn't allow an argument"
                ));
            } else {
                None
            };
            hits.push(Hit { id: o.id, value });
            continue;
        }
        if a.len() > 1 && a.starts_with('-') {
            let chars: Vec<char> = a[1..].chars().collect();
            let mut j = 0;
            while j < chars.len() {
                let c = chars[j];
                j += 1;
                let Some(o) = opts.iter().find(|o| o.short == Some(c)) else {
                    return Err(format!("{prog}: invalid option -- '{c}'"));
                };
                if o.arg {
                    let value = if j < chars.len() {
                        chars[j..].iter().collect()
                    } else if i < args.len() {
                        i += 1;
                        args[i - 1].clone()
                    } else {
                        return Err(format!("{prog}: option requires an argument -- '{c}'"));
                    };
                    hits.push(Hit {
                        id: o.id,
                        value: Some(value),
                    });
                    break;
                }
                hits.push(Hit {
                    id: o.id,
                    value: None,
                });
            }
            continue;
        }
        rest.push(a.clone());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const OPTS: &[Opt] = &[
        Opt {
            short: Some('a'),
            long: &["all"],
            arg: false,
            id: "all",
        },
        Opt {
            short: Some('d'),
            long: &["dirname"],
            arg: true,
            id: "dirname",
        },
        Opt {
            short: Some('D'),
            long: &["show-depends"],
            arg: false,
            id: "show",
        },
    ];

    fn s(v: &[&str]) -> Vec<String> {
        v.iter().map(|x| x.to_string()).collect()
    }

    #[test]
    fn permutes_and_clusters() {
        let p = parse(
            "p",
            &s(&[
                "x",
                "-aD",
                "-d/r",
                "y",
                "--show-dep",
                "--dirname=/q",
                "--",
                "-z",
            ]),
            OPTS,
        );
        assert!(p.error.is_none());
        let (h, r) = (p.hits, p.operands);
        let ids: Vec<_> = h.iter().map(|h| (h.id, h.value.clone())).collect();
        assert_eq!(
            ids,
            vec![
                ("all", None),
                ("show", None),
                ("dirname", Some("/r".into())),
                ("show", None),
                ("dirname", Some("/q".into()))
            ]
        );
        assert_eq!(r, s(&["x", "y", "-z"]));
        assert_eq!(
            parse("p", &s(&["-x"]), OPTS).error.as_deref(),
            Some("p: invalid option -- 'x'")
        );
        assert!(parse("p", &s(&["-d"]), OPTS).error.is_some());
        let p = parse("p", &s(&["-a", "-x", "-D"]), OPTS);
        assert_eq!(p.hits.len(), 1);
        assert_eq!(
            parse("p", &s(&["--dir"]), OPTS).error.as_deref(),
            Some("p: option '--dirname' requires an argument")
        );
    }
}
