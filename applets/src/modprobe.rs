//! `modprobe`: kmod 30's command line, lookup, output and loading.

use crate::context::{ConfigStore, Context, Event, Options};
use crate::kernel::Live;
use crate::log::{LOG_CRIT, LOG_ERR, LOG_NOTICE, LOG_WARNING, Log};
use crate::moddir::{self, DEFAULT_CONFIG_PATHS, ModDir};
use crate::sys::{self, Out};
use earlymod_core::getopt::{self, Opt};
use earlymod_core::load::{self, InsertFlags, LoadError, Method, RunFlags};
use earlymod_core::name::AliasBuf;
use earlymod_core::probe::{Candidates, ProbeFlags, Step};
use earlymod_core::put;
use earlymod_core::text::{Piece, Sink};

const OPTS: &[Opt] = &[
    Opt::new(Some('a'), &["all"], false, "all"),
    Opt::new(Some('r'), &["remove"], false, "remove"),
    Opt::new(
        None,
        &["remove-dependencies", "remove-holders"],
        false,
        "remove-holders",
    ),
    Opt::new(Some('w'), &["wait"], true, "wait"),
    Opt::new(Some('R'), &["resolve-alias"], false, "resolve"),
    Opt::new(None, &["first-time"], false, "first-time"),
    Opt::new(
        Some('i'),
        &["ignore-install", "ignore-remove"],
        false,
        "ignore-cmd",
    ),
    Opt::new(Some('b'), &["use-blacklist"], false, "blacklist"),
    Opt::new(Some('f'), &["force"], false, "force"),
    Opt::new(None, &["force-modversion"], false, "force-modversion"),
    Opt::new(None, &["force-vermagic"], false, "force-vermagic"),
    Opt::new(Some('D'), &["show-depends"], false, "show-depends"),
    Opt::new(
        Some('c'),
        &["showconfig", "show-config"],
        false,
        "show-config",
    ),
    Opt::new(
        None,
        &["show-modversions", "dump-modversions"],
        false,
        "modversions",
    ),
    Opt::new(None, &["show-exports"], false, "exports"),
    Opt::new(Some('n'), &["dry-run", "show"], false, "dry-run"),
    Opt::new(Some('C'), &["config"], true, "config"),
    Opt::new(Some('d'), &["dirname"], true, "dirname"),
    Opt::new(Some('S'), &["set-version"], true, "set-version"),
    Opt::new(Some('s'), &["syslog"], false, "syslog"),
    Opt::new(Some('q'), &["quiet"], false, "quiet"),
    Opt::new(Some('v'), &["verbose"], false, "verbose"),
    Opt::new(Some('V'), &["version"], false, "version"),
    Opt::new(Some('h'), &["help"], false, "help"),
];

/// `--show-exports` / `--show-modversions`.
#[derive(Clone, Copy)]
enum Table {
    Exports,
    Modversions,
}

/// Settings from the command line.
#[derive(Default)]
struct Args<'a> {
    all: bool,
    remove: bool,
    resolve: bool,
    first_time: bool,
    remove_holders: bool,
    wait_ms: u64,
    /// `-f` (also `O_TRUNC` for removal).
    force: bool,
    ignore_cmd: bool,
    use_blacklist: bool,
    ignore_loaded: bool,
    dry_run: bool,
    show: bool,
    show_config: bool,
    /// `--show-exports` / `--show-modversions` (the latter wins, as in kmod).
    symbols: Option<Table>,
    insert: InsertFlags,
    configs: heapless::Vec<&'a str, { moddir::MAX_CONFIG_PATHS }>,
    root: Option<&'a str>,
    kver: Option<&'a str>,
    verbose: i32,
    log_priority: i32,
}

/// Splits `MODPROBE_OPTIONS` into words (spaces separate; a word wholly in
/// quotes loses them).
fn env_words(env: &str) -> impl Iterator<Item = &str> {
    env.split(' ').filter(|w| !w.is_empty()).map(|w| {
        for q in ['"', '\''] {
            if let Some(inner) = w.strip_prefix(q).and_then(|x| x.strip_suffix(q)) {
                return inner;
            }
        }
        w
    })
}

/// Longest options string taken from the command line (the kernel takes
/// at most [`earlymod_core::load::MAX_PARAMS`] bytes of parameters).
const MAX_EXTRA: usize = earlymod_core::load::MAX_PARAMS;

/// Most words `MODPROBE_OPTIONS` and the command line may hold together.
const MAX_ENV_ARGS: usize = 1024;

/// Joins the arguments after the module name into one options string,
/// quoting values that contain spaces (kmod's `options_from_array`).
fn options_from_array(args: &[&str], out: &mut heapless::String<MAX_EXTRA>) -> bool {
    out.clear();
    for a in args {
        let ok = (out.is_empty() || out.push(' ').is_ok())
            && match a.split_once('=') {
                Some((k, v)) if !v.starts_with('"') && !v.starts_with('\'') && v.contains(' ') => {
                    [k, "=\"", v, "\""].iter().all(|p| out.push_str(p).is_ok())
                }
                _ => out.push_str(a).is_ok(),
            };
        if !ok {
            return false;
        }
    }
    true
}

/// `prog: ERROR: ...` on stderr whatever the verbosity (for errors found
/// while the command line is read, before `-q` applies).
fn error(prog: &str, pieces: &[&dyn Piece]) {
    Log {
        prog,
        verbose: LOG_ERR,
    }
    .say(LOG_ERR, pieces);
}

/// `TEXT N bytes`.
struct Bytes(&'static str, usize);

impl Piece for Bytes {
    fn put_to(&self, out: &mut dyn Sink) {
        put!(out; self.0, self.1, " bytes");
    }
}

/// Runs `modprobe` with `args` (without `argv[0]`); returns the exit code.
pub fn main<'a>(prog: &str, args: &mut [&'a str], env_options: Option<&'a str>) -> i32 {
    // MODPROBE_OPTIONS words go first, as kmod prepends them.
    let mut with_env: heapless::Vec<&str, MAX_ENV_ARGS> = heapless::Vec::new();
    let argv: &mut [&str] = match env_options {
        Some(env) if env_words(env).next().is_some() => {
            for w in env_words(env).chain(args.iter().copied()) {
                if with_env.push(w).is_err() {
                    error(
                        prog,
                        &[
                            &"too many arguments with MODPROBE_OPTIONS (limit ",
                            &MAX_ENV_ARGS,
                            &")",
                        ],
                    );
                    return 1;
                }
            }
            &mut with_env
        }
        _ => args,
    };
    let p = getopt::parse(argv, OPTS);
    let mut a = Args {
        verbose: LOG_WARNING,
        log_priority: LOG_CRIT,
        ..Default::default()
    };
    for h in p.hits.iter() {
        match h.id {
            "all" => {
                a.log_priority = LOG_WARNING;
                a.all = true;
            }
            "remove" => a.remove = true,
            "remove-holders" => a.remove_holders = true,
            "resolve" => a.resolve = true,
            "first-time" => a.first_time = true,
            "ignore-cmd" => a.ignore_cmd = true,
            "blacklist" => a.use_blacklist = true,
            "force" => {
                a.force = true;
                a.insert = InsertFlags {
                    ignore_modversions: true,
                    ignore_vermagic: true,
                }
            }
            "force-modversion" => a.insert.ignore_modversions = true,
            "force-vermagic" => a.insert.ignore_vermagic = true,
            "show-depends" => {
                a.ignore_loaded = true;
                a.dry_run = true;
                a.show = true;
            }
            "show-config" => a.show_config = true,
            "modversions" => a.symbols = Some(Table::Modversions),
            "exports" if a.symbols.is_none() => a.symbols = Some(Table::Exports),
            "dry-run" => a.dry_run = true,
            "config" => {
                // `-C` always has its value (getopt reports it missing).
                let v = h.value.unwrap_or("");
                if a.configs.push(v).is_err() {
                    error(
                        prog,
                        &[
                            &"too many config paths (-C ",
                            &v,
                            &"): limit ",
                            &moddir::MAX_CONFIG_PATHS,
                        ],
                    );
                    return 1;
                }
            }
            "dirname" => a.root = h.value,
            "set-version" => a.kver = h.value,
            "quiet" => a.verbose = 0,
            "verbose" => a.verbose += 1,
            "version" => {
                Out::stdout().bytes(
                    concat!(
                        "earlymod version ",
                        env!("CARGO_PKG_VERSION"),
                        " (kmod 34 compatible)\n"
                    )
                    .as_bytes(),
                );
                return 0;
            }
            "help" => {
                put!(&mut Out::stdout();
                    "Usage:\n\t", prog, " [options] [-i] [-b] modulename\n\t",
                    prog, " [options] -a [-i] [-b] modulename [modulename...]\n\t",
                    prog, " [options] -r [-i] modulename\n\t",
                    prog, " [options] -c\n\nOptions as kmod's modprobe: -a -r -R -i -b -f -D -c -n -C DIR -d ROOT -S KVER -q -v -V -h\n"
                );
                return 0;
            }
            "wait" => {
                let v = h.value.unwrap_or("");
                match v.parse::<u64>() {
                    Ok(ms) => a.wait_ms = ms,
                    Err(_) => {
                        error(prog, &[&"unexpected wait value '", &v, &"'."]);
                        return 1;
                    }
                }
            }
            _ => {}
        }
    }
    if let Some(e) = p.error {
        put!(&mut Out::stderr(); e.show(prog, OPTS), "\n");
        return 1;
    }
    let log = Log {
        prog,
        verbose: a.verbose,
    };
    if !a.show_config && p.operands.is_empty() {
        log.say(LOG_ERR, &[&"missing parameters. See -h."]);
        return 1;
    }
    let root = if a.root.is_some() || a.kver.is_some() {
        Some(a.root.unwrap_or(""))
    } else {
        None
    };
    let dir = match moddir::checked_dirname(root, a.kver) {
        Ok(d) => ModDir::open(d),
        Err(len) => {
            log.say(
                LOG_ERR,
                &[
                    &"module directory ",
                    &Short(root.unwrap_or("")),
                    &"/lib/modules/",
                    &Short(a.kver.unwrap_or("`uname -r`")),
                    &": ",
                    &len,
                    &" bytes (limit ",
                    &moddir::MAX_DIRNAME,
                    &")",
                ],
            );
            return 1;
        }
    };
    let configs: &[&str] = if a.configs.is_empty() {
        &DEFAULT_CONFIG_PATHS
    } else {
        &a.configs
    };
    with_config(&dir, configs, &log, |ctx| run(&a, &log, ctx, p.operands))
}

/// Maps the config files (private, writable: the parser works in place),
/// reads the kernel command line, and runs `f` with the [`Context`].
pub fn with_config<R>(
    dir: &ModDir,
    configs: &[&str],
    log: &Log<'_>,
    f: impl FnOnce(&Context<'_>) -> R,
) -> R {
    let mut f = Some(f);
    let mut ret = None;
    with_config_dyn(dir, configs, log, &mut |r| ret = f.take().map(|f| f(r)));
    ret.unwrap_or_else(|| unreachable!())
}

/// [`with_config`], compiled once for all its callers (modprobe, modinfo,
/// PID 1): a [`Context`] whose problems are `ERROR:` lines.
#[inline(never)]
fn with_config_dyn(dir: &ModDir, configs: &[&str], log: &Log<'_>, f: &mut dyn FnMut(&Context<'_>)) {
    let mut store = ConfigStore::new();
    let ctx = Context::open(dir, configs, &mut store, &mut |line| log.say(LOG_ERR, line));
    f(&ctx)
}

fn run(a: &Args<'_>, log: &Log<'_>, context: &Context<'_>, operands: &[&str]) -> i32 {
    let mut out = Out::stdout();
    if a.show_config {
        let r = context.resolver();
        return crate::showconfig::show_config(r.cfg, r.db, &context.dir().dirname, &mut out);
    }
    if let Some(table) = a.symbols {
        return show_symbols(operands[0], table, log, a.log_priority);
    }
    if a.remove {
        let out = crate::rmmod::RemoveOutput {
            log,
            show: a.show || a.verbose > LOG_WARNING,
            priority: a.log_priority,
        };
        let flags = earlymod_core::remove::RemoveFlags {
            dry_run: a.dry_run,
            ignore_loaded: a.ignore_loaded,
            ignore_commands: a.ignore_cmd,
            first_time: a.first_time,
            remove_holders: a.remove_holders,
            force: a.force,
            wait_ms: a.wait_ms,
        };
        return crate::rmmod::remove_all(&out, context, operands, flags);
    }
    let mut kernel = Live::new();
    let ctx = Ctx {
        a,
        log,
        ctx: context,
    };
    if a.all {
        let mut err = 0;
        for name in operands {
            if ctx.insmod(name, "", &mut kernel, &mut out) != 0 {
                err = 1;
            }
        }
        err
    } else {
        let mut extra = heapless::String::new();
        if !options_from_array(&operands[1..], &mut extra) {
            log.say(
                LOG_ERR,
                &[
                    &"could not insert '",
                    &operands[0],
                    &"': module options on the command line too long (limit ",
                    &MAX_EXTRA,
                    &" bytes)",
                ],
            );
            return 1;
        }
        ctx.insmod(operands[0], &extra, &mut kernel, &mut out)
    }
}

/// `--show-exports` / `--show-modversions` of a module file (the ELF
/// reader of the `modinfo` feature).
#[cfg(feature = "modinfo")]
fn show_symbols(path: &str, table: Table, log: &Log<'_>, prio: i32) -> i32 {
    use crate::modinfo::symbols::Table as T;
    let t = match table {
        Table::Exports => T::Exports,
        Table::Modversions => T::Modversions,
    };
    crate::modinfo::show_symbols(path, t, log, prio)
}

/// Without the `modinfo` feature there is no ELF reader: say so, load
/// nothing.
#[cfg(not(feature = "modinfo"))]
fn show_symbols(path: &str, table: Table, log: &Log<'_>, _prio: i32) -> i32 {
    let what = match table {
        Table::Exports => "--show-exports",
        Table::Modversions => "--show-modversions",
    };
    log.say(
        LOG_ERR,
        &[
            &path,
            &": ",
            &what,
            &" needs the modinfo feature, which this build lacks",
        ],
    );
    1
}

/// A user-supplied name in an error line: at most 128 bytes of it, then
/// how long it was (a 5000-byte alias would bury the reason).
pub struct Short<'s>(pub &'s str);

impl Piece for Short<'_> {
    fn put_to(&self, out: &mut dyn Sink) {
        const SHOWN: usize = 128;
        if self.0.len() <= SHOWN {
            return out.put(self.0.as_bytes());
        }
        let mut end = SHOWN;
        while !self.0.is_char_boundary(end) {
            end -= 1;
        }
        put!(out; &self.0[..end], "... (", self.0.len(), " bytes)");
    }
}

struct Ctx<'x, 's> {
    a: &'x Args<'x>,
    log: &'x Log<'x>,
    ctx: &'x Context<'s>,
}

impl Ctx<'_, '_> {
    /// kmod's `insmod()` in modprobe.c: look up, then probe each result.
    fn insmod(&self, name: &str, extra: &str, kernel: &mut Live, out: &mut Out) -> i32 {
        if name.starts_with('/') || name.starts_with("./") {
            return self.insmod_file(name, extra, kernel, out);
        }
        let mut key = AliasBuf::new();
        let mut found = Candidates::new();
        if let Err(e) = self.ctx.lookup(name, &mut key, &mut found) {
            // One line: what was looked up, where, and why it failed (an
            // index fault names its file). Not "not found": it may exist.
            self.log.say(
                LOG_ERR,
                &[
                    &"could not look up '",
                    &Short(name),
                    &"' in ",
                    &self.ctx.dir().dirname.as_str(),
                    &": ",
                    &e,
                ],
            );
            return 1;
        }
        if found.is_empty() {
            self.log.say(
                self.a.log_priority,
                &[
                    &"Module ",
                    &name,
                    &" not found in directory ",
                    &self.ctx.dir().dirname.as_str(),
                ],
            );
            return 1;
        }
        self.probe_all(&found, None, extra, kernel, out)
    }

    /// kmod ≥ 31: a name that starts with `/` or `./` is a module file.
    /// The module is named after the file, its dependencies, softdeps and
    /// options are those of that name, and the file itself is loaded.
    fn insmod_file(&self, file: &str, extra: &str, kernel: &mut Live, out: &mut Out) -> i32 {
        let fail = |why: &dyn Piece| {
            self.log.say(
                self.a.log_priority,
                &[&"Failed to get module from path ", &file, &": ", why],
            );
            1
        };
        let exists = sys::CPath::join(&[file]).map(|c| rustix::fs::stat(c.as_cstr()));
        match exists {
            Some(Ok(_)) => {}
            Some(Err(e)) => return fail(&load::Errno(e.raw_os_error())),
            None => return fail(&"path too long"),
        }
        let name = match earlymod_core::name::modname_from_path(file) {
            // No file name ("/tmp/"): libkmod has no module name, ENOENT.
            Ok(n) if n.is_empty() => return fail(&load::Errno(2)),
            Ok(n) => n,
            Err(e) => return fail(&e),
        };
        // libkmod keeps the path made absolute against the current
        // directory, unnormalised ("/tmp/./x.ko").
        let mut cwd_buf = [core::mem::MaybeUninit::uninit(); 4096];
        let mut abs: heapless::String<{ load::MAX_PATH }> = heapless::String::new();
        let made = if file.starts_with('/') {
            abs.push_str(file)
        } else {
            match sys::current_dir(&mut cwd_buf) {
                Some(cwd) => abs
                    .push_str(cwd)
                    .and_then(|_| abs.push('/'))
                    .and_then(|_| abs.push_str(file)),
                None => Err(()),
            }
        };
        if made.is_err() {
            return fail(&Bytes("absolute path over ", load::MAX_PATH));
        }
        let mut found = Candidates::new();
        let mut target = earlymod_core::probe::Candidate::plain(name);
        target.from_path = true;
        let _ = found.push(target);
        self.probe_all(&found, Some(&abs), extra, kernel, out)
    }

    /// Probes each of `found` (or prints it with `-R`); `file` replaces
    /// the target's module file. Returns the exit code.
    fn probe_all(
        &self,
        found: &Candidates<'_>,
        file: Option<&str>,
        extra: &str,
        kernel: &mut Live,
        out: &mut Out,
    ) -> i32 {
        let flags = ProbeFlags {
            ignore_commands: self.a.ignore_cmd,
            ignore_loaded: self.a.ignore_loaded,
            use_blacklist: self.a.use_blacklist,
        };
        let run = RunFlags {
            ignore_loaded: self.a.ignore_loaded,
            dry_run: self.a.dry_run,
            fail_on_loaded: self.a.first_time,
            insert: self.a.insert,
        };
        let opts = Options {
            probe: flags,
            run,
            extra,
            file,
        };
        let show = self.a.show || self.a.verbose > LOG_WARNING;
        let mut err = 0;
        for c in found.iter() {
            if self.a.resolve {
                put!(out; c.name.as_str(), "\n");
                continue;
            }
            let ok = self.ctx.probe(c, kernel, &opts, &mut |ev| match ev {
                Event::Entry {
                    step,
                    params,
                    result,
                } => {
                    if show {
                        self.print_action(step, params, out);
                    }
                    if self.a.verbose > LOG_WARNING && !self.a.dry_run {
                        self.report(step, result);
                    }
                }
                Event::Skipped(_) => {}
                Event::PlanFailed(e) => self.log.say(
                    LOG_ERR,
                    &[&"could not insert '", &c.name.as_str(), &"': ", &e],
                ),
                Event::AlreadyLoaded => self.log.say(
                    LOG_ERR,
                    &[
                        &"could not insert '",
                        &c.name.as_str(),
                        &"': Module already in kernel",
                    ],
                ),
                Event::Failed { step, error } => {
                    let line: [&dyn Piece; 7] = [
                        &"could not insert '",
                        &step.name.as_str(),
                        &"': ",
                        error,
                        &" (needed by '",
                        &c.name.as_str(),
                        &"')",
                    ];
                    // A dependency that failed names the module that needed it.
                    let n = if step.is_target { 4 } else { 7 };
                    self.log.say(LOG_ERR, &line[..n]);
                }
            });
            if !ok {
                err = 1;
            }
        }
        // Loading runs install commands and takes the kernel's time: what
        // was printed goes out first. A dry run (-n, -D) stays buffered: one
        // write per 64 KB, not one per name.
        if !self.a.dry_run {
            out.flush();
        }
        err
    }

    /// kmod's `print_action`: `install CMD OPTS`, `insmod PATH OPTS` or
    /// `builtin NAME` (written as bytes: this runs once per module line).
    fn print_action(&self, s: &Step<'_, '_>, params: &str, out: &mut Out) {
        if let Some(cmd) = s.install {
            out.bytes(b"install ");
            out.bytes(cmd.as_bytes());
        } else if let Some(p) = s.path {
            out.bytes(b"insmod ");
            if !p.starts_with('/') {
                out.bytes(self.ctx.dir().dirname.as_bytes());
                out.bytes(b"/");
            }
            out.bytes(p.as_bytes());
        } else if s.builtin || self.ctx.resolver().is_builtin(&s.name).unwrap_or(false) {
            out.bytes(b"builtin ");
            out.bytes(s.name.as_bytes());
            out.bytes(b"\n");
            return;
        } else {
            return;
        }
        out.bytes(b" ");
        out.bytes(params.as_bytes());
        out.bytes(b"\n");
    }

    /// `-v`: how each module went in.
    fn report(&self, s: &Step<'_, '_>, r: &Result<Method, LoadError>) {
        let how = match r {
            Ok(Method::File) => "loaded with finit_module",
            Ok(Method::KernelDecompressed(_)) => {
                "loaded with finit_module, decompressed by the kernel"
            }
            Ok(Method::UserDecompressed(_)) => "decompressed in userspace, loaded with init_module",
            Ok(Method::UserAfterKernelFailed(_)) => {
                "kernel decoder refused it; decompressed in userspace"
            }
            Ok(Method::AlreadyLoaded) => "already in the kernel",
            Ok(Method::Command) => "install command ran",
            Err(_) => return,
        };
        self.log.say(LOG_NOTICE, &[&s.name.as_str(), &": ", &how]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn modprobe_options_words() {
        let w: heapless::Vec<&str, 8> = env_words(" -q  -C '/etc/x' \"-v\"").collect();
        assert_eq!(&w[..], &["-q", "-C", "/etc/x", "-v"]);
    }

    #[test]
    fn short_names_cut_at_128_bytes_on_a_char_boundary() {
        extern crate std;
        use std::string::String;
        struct Text(String);
        impl Sink for Text {
            fn put(&mut self, b: &[u8]) {
                self.0.push_str(core::str::from_utf8(b).unwrap());
            }
        }
        let shown = |s: &str| {
            let mut t = Text(String::new());
            Short(s).put_to(&mut t);
            t.0
        };
        assert_eq!(shown("ext4"), "ext4");
        let long: String = core::iter::repeat_n('a', 127).chain(['é', 'b']).collect();
        let want = std::format!("{}... (130 bytes)", &long[..127]);
        assert_eq!(shown(&long), want);
        let exact: String = core::iter::repeat_n('x', 128).collect();
        assert_eq!(shown(&exact), exact);
    }

    #[test]
    fn extra_options_are_quoted_like_kmod() {
        let mut s = heapless::String::new();
        assert!(options_from_array(
            &["a=1", "b=x y", "c='p q'", "flag"],
            &mut s
        ));
        assert_eq!(s, "a=1 b=\"x y\" c='p q' flag");
    }
}
