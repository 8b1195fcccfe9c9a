//! The `modprobe` applet: kmod 30's command line, lookup and output.

use crate::moddir::{self, DEFAULT_CONFIG_PATHS, ModDir};
use crate::sysfs::SysfsState;
use earlymod_core::cmdline::apply_kernel_cmdline;
use earlymod_core::config::{Config, Diag};
use earlymod_core::getopt::{self, Opt};
use earlymod_core::name::{AliasBuf, normalize_alias};
use earlymod_core::probe::{
    Candidates, KernelState, NameArena, NothingLoaded, ProbeFlags, Resolver, Skip, Step,
    step_options,
};
use std::io::Write;

const LOG_CRIT: i32 = 2;
const LOG_ERR: i32 = 3;
const LOG_WARNING: i32 = 4;

const OPTS: &[Opt] = &[
    Opt {
        short: Some('a'),
        long: &["all"],
        arg: false,
        id: "all",
    },
    Opt {
        short: Some('r'),
        long: &["remove"],
        arg: false,
        id: "remove",
    },
    Opt {
        short: None,
        long: &["remove-dependencies", "remove-holders"],
        arg: false,
        id: "remove-holders",
    },
    Opt {
        short: Some('w'),
        long: &["wait"],
        arg: true,
        id: "wait",
    },
    Opt {
        short: Some('R'),
        long: &["resolve-alias"],
        arg: false,
        id: "resolve",
    },
    Opt {
        short: None,
        long: &["first-time"],
        arg: false,
        id: "first-time",
    },
    Opt {
        short: Some('i'),
        long: &["ignore-install", "ignore-remove"],
        arg: false,
        id: "ignore-cmd",
    },
    Opt {
        short: Some('b'),
        long: &["use-blacklist"],
        arg: false,
        id: "blacklist",
    },
    Opt {
        short: Some('f'),
        long: &["force"],
        arg: false,
        id: "force",
    },
    Opt {
        short: None,
        long: &["force-modversion"],
        arg: false,
        id: "force-modversion",
    },
    Opt {
        short: None,
        long: &["force-vermagic"],
        arg: false,
        id: "force-vermagic",
    },
    Opt {
        short: Some('D'),
        long: &["show-depends"],
        arg: false,
        id: "show-depends",
    },
    Opt {
        short: Some('c'),
        long: &["showconfig", "show-config"],
        arg: false,
        id: "show-config",
    },
    Opt {
        short: None,
        long: &["show-modversions", "dump-modversions"],
        arg: false,
        id: "modversions",
    },
    Opt {
        short: None,
        long: &["show-exports"],
        arg: false,
        id: "exports",
    },
    Opt {
        short: Some('n'),
        long: &["dry-run", "show"],
        arg: false,
        id: "dry-run",
    },
    Opt {
        short: Some('C'),
        long: &["config"],
        arg: true,
        id: "config",
    },
    Opt {
        short: Some('d'),
        long: &["dirname"],
        arg: true,
        id: "dirname",
    },
    Opt {
        short: Some('S'),
        long: &["set-version"],
        arg: true,
        id: "set-version",
    },
    Opt {
        short: Some('s'),
        long: &["syslog"],
        arg: false,
        id: "syslog",
    },
    Opt {
        short: Some('q'),
        long: &["quiet"],
        arg: false,
        id: "quiet",
    },
    Opt {
        short: Some('v'),
        long: &["verbose"],
        arg: false,
        id: "verbose",
    },
    Opt {
        short: Some('V'),
        long: &["version"],
        arg: false,
        id: "version",
    },
    Opt {
        short: Some('h'),
        long: &["help"],
        arg: false,
        id: "help",
    },
];

/// Settings from the command line.
#[derive(Default)]
struct Args {
    all: bool,
    remove: bool,
    resolve: bool,
    first_time: bool,
    ignore_cmd: bool,
    use_blacklist: bool,
    ignore_loaded: bool,
    dry_run: bool,
    show: bool,
    show_config: bool,
    configs: Vec<String>,
    root: Option<String>,
    kver: Option<String>,
    verbose: i32,
    log_priority: i32,
}

/// Logs like kmod's modprobe: `prog: LEVEL: message` when the level is enabled.
pub struct Log {
    prog: String,
    verbose: i32,
}

impl Log {
    /// A logger for `prog` at kmod's default verbosity (warnings and worse).
    pub fn new(prog: &str) -> Log {
        Log {
            prog: prog.to_string(),
            verbose: LOG_WARNING,
        }
    }

    /// Prints `msg` at priority `prio` if enabled.
    pub fn log(&self, prio: i32, msg: &str) {
        if prio > self.verbose {
            return;
        }
        let level = match prio {
            0..=2 => "FATAL",
            3 => "ERROR",
            4 => "WARNING",
            5 => "NOTICE",
            6 => "INFO",
            _ => "DEBUG",
        };
        eprintln!("{}: {}: {}", self.prog, level, msg);
    }
}

/// Splits `MODPROBE_OPTIONS` the way kmod does (spaces, with quotes).
fn env_options() -> Vec<String> {
    let Ok(env) = std::env::var("MODPROBE_OPTIONS") else {
        return Vec::new();
    };
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut quote: Option<char> = None;
    let mut started = false;
    for c in env.chars() {
        match quote {
            None if c == ' ' => {
                out.push(std::mem::take(&mut cur));
                started = false;
            }
            None if c == '"' || c == '\'' => {
                quote = Some(c);
                started = true;
            }
            Some(q) if c == q => quote = None,
            _ => {
                cur.push(c);
                started = true;
            }
        }
    }
    if started || !cur.is_empty() {
        out.push(cur);
    }
    out
}

/// Joins the arguments after the module name into one options string,
/// quoting values that contain spaces (kmod's `options_from_array`).
fn options_from_array(args: &[String]) -> String {
    let mut out = String::new();
    for a in args {
        if !out.is_empty() {
            out.push(' ');
        }
        match a.split_once('=') {
            Some((k, v)) if !v.starts_with('"') && !v.starts_with('\'') && v.contains(' ') => {
                out.push_str(k);
                out.push_str("=\"");
                out.push_str(v);
                out.push('"');
            }
            _ => out.push_str(a),
        }
    }
    out
}

/// Runs `modprobe` with `args` (without argv[0]); returns the exit code.
pub fn main(prog: &str, args: &[String]) -> i32 {
    let mut all_args = env_options();
    all_args.extend(args.iter().cloned());
    let argv: Vec<&str> = all_args.iter().map(String::as_str).collect();
    let getopt::Parsed {
        hits,
        operands,
        error,
    } = getopt::parse(&argv, OPTS);
    let operands: Vec<String> = operands.iter().map(|s| s.to_string()).collect();
    let mut a = Args {
        verbose: LOG_WARNING,
        log_priority: LOG_CRIT,
        ..Default::default()
    };
    for h in hits {
        match h.id {
            "all" => {
                a.log_priority = LOG_WARNING;
                a.all = true;
            }
            "remove" => a.remove = true,
            "resolve" => a.resolve = true,
            "first-time" => a.first_time = true,
            "ignore-cmd" => a.ignore_cmd = true,
            "blacklist" => a.use_blacklist = true,
            "show-depends" => {
                a.ignore_loaded = true;
                a.dry_run = true;
                a.show = true;
            }
            "show-config" => a.show_config = true,
            "dry-run" => a.dry_run = true,
            "config" => a.configs.extend(h.value.map(str::to_string)),
            "dirname" => a.root = h.value.map(str::to_string),
            "set-version" => a.kver = h.value.map(str::to_string),
            "quiet" => a.verbose = 0,
            "verbose" => a.verbose += 1,
            "version" => {
                println!(
                    "earlymod version {} (kmod 30 compatible)",
                    env!("CARGO_PKG_VERSION")
                );
                return 0;
            }
            "help" => {
                println!(
                    "Usage:\n\t{prog} [options] [-i] [-b] modulename\n\t{prog} [options] -a [-i] [-b] modulename [modulename...]\n\t{prog} [options] -r [-i] modulename\n\t{prog} [options] -c\n\nOptions: -a -r -R -i -b -f -D -c -n -C DIR -d ROOT -S KVER -q -v -V -h (as kmod's modprobe)"
                );
                return 0;
            }
            "wait" => {
                let v = h.value.unwrap_or_default();
                if v.is_empty() || v.parse::<u64>().is_err() {
                    eprintln!("{prog}: ERROR: unexpected wait value '{v}'.");
                    return 1;
                }
            }
            _ => {}
        }
    }
    if let Some(e) = error {
        eprintln!("{}", e.show(prog, OPTS));
        return 1;
    }
    let log = Log {
        prog: prog.to_string(),
        verbose: a.verbose,
    };
    if !a.show_config && operands.is_empty() {
        log.log(LOG_ERR, "missing parameters. See -h.");
        return 1;
    }
    let dirname = moddir::dirname_for(a.root.as_deref(), a.kver.as_deref());
    with_resolver(dirname, &a.configs, &log, |resolver, dir| {
        run(&a, &log, resolver, dir, &operands)
    })
}

/// Loads the module directory, the config files and the kernel command line,
/// and runs `f` with a resolver over them.
pub fn with_resolver<R>(
    dirname: String,
    configs: &[String],
    log: &Log,
    f: impl FnOnce(&Resolver<'_, '_>, &ModDir) -> R,
) -> R {
    let dir = ModDir::open(dirname);
    let db = dir.db();
    let config_paths: Vec<String> = if configs.is_empty() {
        DEFAULT_CONFIG_PATHS.iter().map(|s| s.to_string()).collect()
    } else {
        configs.to_vec()
    };
    let files = moddir::config_files(&dir.dirname, &config_paths);
    let mut bufs: Vec<(String, Vec<u8>)> = files
        .iter()
        .filter_map(|p| std::fs::read(p).ok().map(|b| (p.display().to_string(), b)))
        .collect();
    let mut cmdline = std::fs::read("/proc/cmdline").unwrap_or_default();
    let mut cfg = Config::new();
    for (name, buf) in bufs.iter_mut() {
        let r = cfg.parse_file(buf, &mut |d| match d {
            Diag::BadLine { line, cmd } => log.log(
                LOG_ERR,
                &format!("{name} line {line}: ignoring bad line starting with '{cmd}'"),
            ),
            Diag::Deprecated { cmd } => log.log(
                LOG_ERR,
                &format!("{name}: command {cmd} is deprecated and not parsed anymore"),
            ),
        });
        if let Err(e) = r {
            log.log(LOG_ERR, &format!("{name}: {e}"));
        }
    }
    if let Err(e) = apply_kernel_cmdline(&mut cfg, &mut cmdline, &mut |m| {
        log.log(
            LOG_ERR,
            &format!("Ignoring bad option on kernel command line while parsing module name: '{m}'"),
        )
    }) {
        log.log(LOG_ERR, &format!("/proc/cmdline: {e}"));
    }
    let resolver = Resolver { db: &db, cfg: &cfg };
    f(&resolver, &dir)
}

fn run(a: &Args, log: &Log, resolver: &Resolver<'_, '_>, dir: &ModDir, operands: &[String]) -> i32 {
    let cfg = resolver.cfg;
    let db = resolver.db;
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    let ctx = Ctx {
        a,
        log,
        resolver,
        dir,
    };
    let err = if a.show_config {
        crate::showconfig::show_config(cfg, db, &mut out)
    } else if a.remove {
        log.log(LOG_ERR, "module removal (-r) is provided by the static earlymod build; this build resolves only");
        1
    } else if a.all {
        let mut err = 0;
        for name in operands {
            if ctx.insmod(name, "", &mut out) != 0 {
                err = 1;
            }
        }
        err
    } else {
        ctx.insmod(&operands[0], &options_from_array(&operands[1..]), &mut out)
    };
    let _ = out.flush();
    err
}

struct Ctx<'x, 'r, 'a> {
    a: &'x Args,
    log: &'x Log,
    resolver: &'x Resolver<'r, 'a>,
    dir: &'x ModDir,
}

impl Ctx<'_, '_, '_> {
    /// kmod's `insmod()` in modprobe.c: look up, then probe each result.
    fn insmod(&self, name: &str, extra: &str, out: &mut dyn Write) -> i32 {
        let names = NameArena::new();
        let mut key = AliasBuf::new();
        let mut found = Candidates::new();
        let looked =
            normalize_alias(name, &mut key).and_then(|_| self.resolver.lookup(&key, &mut found));
        if let Err(e) = &looked
            && !matches!(e, earlymod_core::Error::InvalidAlias)
        {
            self.log.log(LOG_ERR, &format!("{name}: {e}"));
        }
        if looked.is_err() || found.is_empty() {
            self.log.log(
                self.a.log_priority,
                &format!(
                    "Module {} not found in directory {}",
                    name, self.dir.dirname
                ),
            );
            return 1;
        }
        let kernel: &dyn KernelState = if self.a.ignore_loaded {
            &NothingLoaded
        } else {
            &SysfsState
        };
        let flags = ProbeFlags {
            ignore_commands: self.a.ignore_cmd,
            ignore_loaded: self.a.ignore_loaded,
            use_blacklist: self.a.use_blacklist,
        };
        let mut err = 0;
        for c in found.iter() {
            if self.a.resolve {
                let _ = writeln!(out, "{}", c.name);
                continue;
            }
            let mut steps = earlymod_core::probe::Steps::new();
            match self
                .resolver
                .probe_list(c, flags, kernel, &names, &mut steps)
            {
                Err(e) => {
                    self.log
                        .log(LOG_ERR, &format!("could not insert '{}': {}", c.name, e));
                    err = 1;
                }
                Ok(Err(Skip::AlreadyLoaded)) if self.a.first_time => {
                    self.log.log(
                        LOG_ERR,
                        &format!("could not insert '{}': Module already in kernel", c.name),
                    );
                    err = 1;
                }
                Ok(Err(_)) => {}
                Ok(Ok(())) => {
                    for s in steps.iter() {
                        if !self.a.ignore_loaded
                            && self.resolver.in_kernel(s, kernel).unwrap_or(false)
                        {
                            continue;
                        }
                        if self.a.show || self.a.verbose > LOG_WARNING {
                            self.print_action(s, extra, out);
                        }
                        if !self.a.dry_run {
                            self.log.log(LOG_ERR, &format!("could not insert '{}': loading needs the static earlymod build", s.name));
                            err = 1;
                            break;
                        }
                    }
                }
            }
        }
        err
    }

    /// kmod's `print_action`: `install CMD OPTS`, `insmod PATH OPTS` or
    /// `builtin NAME`, written straight to `out`.
    fn print_action(&self, s: &Step<'_, '_>, extra: &str, out: &mut dyn Write) {
        let mut w = IoFmt(out);
        let _ = if let Some(cmd) = s.install {
            w.0.write_all(b"install ")
                .and_then(|_| w.0.write_all(cmd.as_bytes()))
        } else if let Some(p) = s.path {
            let dir = if p.starts_with('/') {
                ""
            } else {
                self.dir.dirname.as_str()
            };
            let sep: &[u8] = if dir.is_empty() { b"" } else { b"/" };
            w.0.write_all(b"insmod ")
                .and_then(|_| w.0.write_all(dir.as_bytes()))
                .and_then(|_| w.0.write_all(sep))
                .and_then(|_| w.0.write_all(p.as_bytes()))
        } else if s.builtin || self.resolver.is_builtin(&s.name).unwrap_or(false) {
            let _ = writeln!(w.0, "builtin {}", s.name);
            return;
        } else {
            return;
        };
        let _ = w.0.write_all(b" ");
        let _ = step_options(self.resolver.cfg, s, extra, &mut w);
        let _ = w.0.write_all(b"\n");
    }
}

/// `core::fmt::Write` over an `io::Write`, for the core's formatters.
struct IoFmt<'w>(&'w mut dyn Write);

impl std::fmt::Write for IoFmt<'_> {
    fn write_str(&mut self, s: &str) -> std::fmt::Result {
        self.0.write_all(s.as_bytes()).map_err(|_| std::fmt::Error)
    }
}
