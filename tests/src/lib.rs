//! Helpers shared by the `difftest` and `bench` binaries: locating the test
//! kernel trees, reading depmod's text indexes, turning alias patterns into
//! concrete strings that match them, running both tools and comparing the
//! results, and a small std-only thread pool.

pub mod elfmod;

use std::collections::HashSet;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

/// One depmod-indexed module tree: `ROOT/lib/modules/KVER`.
#[derive(Clone, Debug)]
pub struct Tree {
    pub label: String,
    pub root: PathBuf,
    pub kver: String,
}

impl Tree {
    pub fn moddir(&self) -> PathBuf {
        self.root.join("lib/modules").join(&self.kver)
    }

    /// Parses `NAME=ROOT:KVER` (the root may itself contain `:`).
    pub fn parse_spec(spec: &str) -> Result<Tree, String> {
        let (label, rest) = spec
            .split_once('=')
            .ok_or_else(|| format!("bad --tree {spec:?}: expected NAME=ROOT:KVER"))?;
        let (root, kver) = rest
            .rsplit_once(':')
            .ok_or_else(|| format!("bad --tree {spec:?}: expected NAME=ROOT:KVER"))?;
        if label.is_empty() || root.is_empty() || kver.is_empty() {
            return Err(format!("bad --tree {spec:?}: expected NAME=ROOT:KVER"));
        }
        Ok(Tree {
            label: label.to_string(),
            root: PathBuf::from(root),
            kver: kver.to_string(),
        })
    }

    /// Why this tree cannot be used, if it cannot.
    pub fn problem(&self) -> Option<String> {
        let dep = self.moddir().join("modules.dep");
        if dep.is_file() {
            None
        } else {
            Some(format!("{}: {} is missing", self.label, dep.display()))
        }
    }
}

/// The cache directory `scripts/setup.sh` fills: `$EARLYMOD_CACHE` or
/// `/var/cache/earlymod`.
pub fn cache_dir() -> PathBuf {
    match std::env::var_os("EARLYMOD_CACHE") {
        Some(d) if !d.is_empty() => PathBuf::from(d),
        _ => PathBuf::from("/var/cache/earlymod"),
    }
}

/// The default trees (k61 as "6.1", k612 as "6.12"), plus a description of
/// each one that is absent.
pub fn default_trees() -> (Vec<Tree>, Vec<String>) {
    trees_of(&[("k61", "6.1"), ("k612", "6.12")])
}

/// The same two trees re-indexed by kmod 34's depmod (`k61-34`, `k612-34`,
/// pre-order indexes), for the comparison with kmod 34.
pub fn kmod34_trees() -> (Vec<Tree>, Vec<String>) {
    trees_of(&[("k61-34", "6.1/kmod34"), ("k612-34", "6.12/kmod34")])
}

/// kmod 34.2's `TOOL` (`modprobe`, `modinfo`, `depmod`) as `scripts/setup.sh`
/// unpacks it from Debian trixie: `$EARLYMOD_CACHE/kmod34/bin/TOOL`.
pub fn kmod34_tool(tool: &str) -> PathBuf {
    cache_dir().join("kmod34/bin").join(tool)
}

/// The cached trees `(directory, label)`, plus a description of each one
/// that is absent.
fn trees_of(list: &[(&str, &str)]) -> (Vec<Tree>, Vec<String>) {
    let cache = cache_dir();
    let mut trees = Vec::new();
    let mut missing = Vec::new();
    for &(name, label) in list {
        let kver_file = cache.join(name).join("kver");
        match fs::read_to_string(&kver_file) {
            Ok(k) if !k.trim().is_empty() => {
                let t = Tree {
                    label: label.to_string(),
                    root: cache.join(name).join("root"),
                    kver: k.trim().to_string(),
                };
                match t.problem() {
                    None => trees.push(t),
                    Some(p) => missing.push(p),
                }
            }
            _ => missing.push(format!(
                "{label}: {} is missing (run scripts/setup.sh)",
                kver_file.display()
            )),
        }
    }
    (trees, missing)
}

/// Module name of a path in modules.dep/modules.builtin: basename up to the
/// first `.`, with `-` turned into `_`.
pub fn module_name_from_path(path: &str) -> String {
    let base = path.rsplit('/').next().unwrap_or(path);
    let stem = base.split('.').next().unwrap_or(base);
    stem.replace('-', "_")
}

fn read_lines(path: &Path) -> io::Result<Vec<String>> {
    Ok(fs::read_to_string(path)?
        .lines()
        .map(str::to_string)
        .collect())
}

/// Module names of every entry of modules.dep, in file order.
pub fn dep_module_names(tree: &Tree) -> io::Result<Vec<String>> {
    Ok(read_lines(&tree.moddir().join("modules.dep"))?
        .iter()
        .filter_map(|l| l.split_once(':').map(|(p, _)| module_name_from_path(p)))
        .collect())
}

/// `(pattern, module)` of every `alias PATTERN MODULE` line of a file such
/// as modules.alias or modules.symbols.
pub fn alias_lines(path: &Path) -> io::Result<Vec<(String, String)>> {
    Ok(read_lines(path)?
        .iter()
        .filter_map(|l| {
            let mut it = l.split_whitespace();
            match (it.next(), it.next(), it.next()) {
                (Some("alias"), Some(p), Some(m)) => Some((p.to_string(), m.to_string())),
                _ => None,
            }
        })
        .collect())
}

/// Module names listed in modules.builtin.
pub fn builtin_names(tree: &Tree) -> io::Result<Vec<String>> {
    Ok(read_lines(&tree.moddir().join("modules.builtin"))?
        .iter()
        .filter(|l| !l.trim().is_empty())
        .map(|l| module_name_from_path(l.trim()))
        .collect())
}

/// `(pattern, module)` of every `MODULE.alias=PATTERN` record of
/// modules.builtin.modinfo (absent file: empty).
pub fn builtin_modinfo_aliases(tree: &Tree) -> Vec<(String, String)> {
    let Ok(data) = fs::read(tree.moddir().join("modules.builtin.modinfo")) else {
        return Vec::new();
    };
    data.split(|&b| b == 0)
        .filter_map(|rec| {
            let rec = std::str::from_utf8(rec).ok()?;
            let (key, val) = rec.split_once('=')?;
            let (module, field) = key.split_once('.')?;
            (field == "alias").then(|| (val.to_string(), module.to_string()))
        })
        .collect()
}

/// A concrete string matched by the fnmatch(3) pattern: `*` becomes `star`,
/// `?` becomes `1`, `[set]` its first member and `[!set]`/`[^set]` a
/// character outside the set. `\x` stands for `x`.
pub fn derive_alias(pattern: &str, star: &str) -> String {
    let chars: Vec<char> = pattern.chars().collect();
    let mut out = String::new();
    let mut i = 0;
    while i < chars.len() {
        match chars[i] {
            '*' => out.push_str(star),
            '?' => out.push('1'),
            '\\' if i + 1 < chars.len() => {
                i += 1;
                out.push(chars[i]);
            }
            '[' => {
                if let Some((set, negated, end)) = parse_bracket(&chars, i) {
                    out.push(pick_from_set(&set, negated));
                    i = end;
                } else {
                    out.push('[');
                }
            }
            c => out.push(c),
        }
        i += 1;
    }
    out
}

/// Inclusive character ranges of a bracket expression.
type CharSet = Vec<(char, char)>;

/// A bracket expression starting at `chars[start] == '['`: the (lo, hi)
/// ranges, whether it is negated, and the index of its closing `]`.
fn parse_bracket(chars: &[char], start: usize) -> Option<(CharSet, bool, usize)> {
    let mut i = start + 1;
    let negated = matches!(chars.get(i), Some('!') | Some('^'));
    if negated {
        i += 1;
    }
    let mut set = Vec::new();
    let mut first = true;
    while i < chars.len() {
        let c = chars[i];
        if c == ']' && !first {
            return Some((set, negated, i));
        }
        first = false;
        if i + 2 < chars.len() && chars[i + 1] == '-' && chars[i + 2] != ']' {
            set.push((c, chars[i + 2]));
            i += 3;
        } else {
            set.push((c, c));
            i += 1;
        }
    }
    None
}

fn pick_from_set(set: &[(char, char)], negated: bool) -> char {
    if !negated {
        return set.first().map(|&(lo, _)| lo).unwrap_or('1');
    }
    let inside = |c: char| set.iter().any(|&(lo, hi)| lo <= c && c <= hi);
    "1Z0zAa9_xX"
        .chars()
        .chain('!'..='~')
        .find(|&c| !inside(c))
        .unwrap_or('~')
}

/// Concrete alias strings for a list of patterns: one per pattern (`*` → "")
/// and, for every 7th pattern, a second one with `*` → "1A". Duplicates
/// are dropped; order is preserved.
pub fn derived_aliases(patterns: &[(String, String)]) -> Vec<String> {
    let mut seen = HashSet::new();
    let mut out = Vec::new();
    for (i, (pat, _)) in patterns.iter().enumerate() {
        let mut cands = vec![derive_alias(pat, "")];
        if i % 7 == 0 && pat.contains('*') {
            cands.push(derive_alias(pat, "1A"));
        }
        for c in cands {
            if !c.is_empty() && seen.insert(c.clone()) {
                out.push(c);
            }
        }
    }
    out
}

/// What one run of a tool produced.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Outcome {
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
    /// Exit code, or `128 + signal` / -1 when killed or not started.
    pub code: i32,
}

/// How to call one of the two tools.
#[derive(Clone, Debug)]
pub struct Tool {
    pub program: PathBuf,
    /// `Some("modprobe")` for the earlymod multi-call binary.
    pub applet: Option<String>,
}

impl Tool {
    /// `PROGRAM [APPLET] -d ROOT -S KVER ARGS...`
    pub fn argv(&self, tree: &Tree, args: &[String]) -> Vec<String> {
        let mut v = vec![self.program.to_string_lossy().into_owned()];
        v.extend(self.applet.iter().cloned());
        v.push("-d".into());
        v.push(tree.root.to_string_lossy().into_owned());
        v.push("-S".into());
        v.push(tree.kver.clone());
        v.extend(args.iter().cloned());
        v
    }
}

/// Runs `argv`, optionally inside a private mount namespace in which
/// `cmdline` is bind-mounted over /proc/cmdline. The environment is made
/// neutral (C locale, no MODPROBE_OPTIONS) for both tools alike.
pub fn run(argv: &[String], cmdline: Option<&Path>) -> Outcome {
    let mut cmd = match cmdline {
        None => {
            let mut c = Command::new(&argv[0]);
            c.args(&argv[1..]);
            c
        }
        Some(file) => {
            let mut c = Command::new("unshare");
            c.arg("--mount")
                .arg("sh")
                .arg("-c")
                .arg(r#"mount --bind "$0" /proc/cmdline && exec "$@""#)
                .arg(file)
                .args(argv);
            c
        }
    };
    cmd.env_remove("MODPROBE_OPTIONS")
        .env("LC_ALL", "C")
        .env_remove("LANGUAGE")
        .stdin(Stdio::null());
    Outcome::of(cmd.output(), &argv[0])
}

impl Outcome {
    /// What a finished `program` gave: its stdout, stderr and exit code
    /// (128 + the signal when one killed it); code -1 and the reason on
    /// stderr when it could not be run.
    pub fn of(result: io::Result<std::process::Output>, program: &str) -> Outcome {
        match result {
            Ok(o) => {
                use std::os::unix::process::ExitStatusExt;
                let code = o
                    .status
                    .code()
                    .or_else(|| o.status.signal().map(|s| 128 + s))
                    .unwrap_or(-1);
                Outcome {
                    stdout: o.stdout,
                    stderr: o.stderr,
                    code,
                }
            }
            Err(e) => Outcome {
                stdout: Vec::new(),
                stderr: format!("cannot run {program}: {e}\n").into_bytes(),
                code: -1,
            },
        }
    }
}

/// A fresh scratch directory `$TMPDIR/earlymod-TAG-PID`, removed when
/// dropped unless it is kept (`--keep`).
pub struct Scratch {
    path: PathBuf,
    keep: bool,
}

impl Scratch {
    /// Creates it (emptied first); `keep` leaves it behind, and says where.
    pub fn new(tag: &str, keep: bool) -> io::Result<Scratch> {
        let path = std::env::temp_dir().join(format!("earlymod-{tag}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&path);
        fs::create_dir_all(&path)?;
        if keep {
            eprintln!("{tag}: keeping the scratch files in {}", path.display());
        }
        Ok(Scratch { path, keep })
    }

    /// The directory.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        if !self.keep {
            let _ = fs::remove_dir_all(&self.path);
        }
    }
}

/// Stderr with the program-name prefix of each line (`modprobe: `,
/// `earlymod: `, `earlymod modprobe: `, `libkmod: `, or the basename of
/// either binary) replaced by `modprobe: `. libkmod's source location
/// (`libkmod: ERROR ../libkmod/x.c:712 func: msg`) is dropped as well, so
/// that becomes `modprobe: ERROR: msg`.
pub fn normalize_stderr(stderr: &[u8], extra_names: &[String]) -> Vec<u8> {
    let text = String::from_utf8_lossy(stderr);
    let mut prefixes: Vec<String> = vec![
        "earlymod modprobe: ".into(),
        "earlymod-modprobe: ".into(),
        "earlymod: ".into(),
        "modprobe: ".into(),
    ];
    for n in extra_names {
        prefixes.push(format!("{n} modprobe: "));
        prefixes.push(format!("{n}: "));
    }
    let mut out = String::new();
    for line in text.split_inclusive('\n') {
        if let Some(rest) = line.strip_prefix("libkmod: ") {
            out.push_str("modprobe: ");
            out.push_str(&strip_libkmod_location(rest));
            continue;
        }
        match prefixes.iter().find(|p| line.starts_with(p.as_str())) {
            Some(p) => {
                out.push_str("modprobe: ");
                out.push_str(&line[p.len()..]);
            }
            None => out.push_str(line),
        }
    }
    out.into_bytes()
}

/// `ERROR ../libkmod/libkmod-config.c:712 kmod_config_parse: msg` (kmod
/// 30) or `ERROR: kmod_config_parse: msg` (kmod 34) → `ERROR: msg`;
/// anything else unchanged.
fn strip_libkmod_location(rest: &str) -> String {
    let kmod34 = rest
        .split_once(": ")
        .and_then(|(level, tail)| tail.split_once(": ").map(|(f, m)| (level, f, m)))
        .filter(|(level, func, _)| {
            !level.contains(' ')
                && !func.is_empty()
                && func.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
        });
    if let Some((level, _, msg)) = kmod34 {
        return format!("{level}: {msg}");
    }
    let mut it = rest.splitn(4, ' ');
    if let (Some(level), Some(loc), Some(func), Some(msg)) =
        (it.next(), it.next(), it.next(), it.next())
    {
        let loc_ok = loc
            .rsplit_once(':')
            .is_some_and(|(f, l)| f.ends_with(".c") && l.bytes().all(|b| b.is_ascii_digit()));
        if loc_ok && func.ends_with(':') {
            return format!("{level}: {msg}");
        }
    }
    rest.to_string()
}

/// Default worker count: one per core plus one.
pub fn default_workers() -> usize {
    std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
        + 1
}

/// Applies `f` to every item on `workers` threads; results in input order.
/// `progress` is called (from worker threads) after each item with the
/// number done so far.
pub fn par_map<T, R, F, P>(items: &[T], workers: usize, f: F, progress: P) -> Vec<R>
where
    T: Sync,
    R: Send,
    F: Fn(&T) -> R + Sync,
    P: Fn(usize) + Sync,
{
    let next = AtomicUsize::new(0);
    let done = AtomicUsize::new(0);
    let slots: Vec<Mutex<Option<R>>> = items.iter().map(|_| Mutex::new(None)).collect();
    std::thread::scope(|s| {
        for _ in 0..workers.max(1) {
            s.spawn(|| {
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    if i >= items.len() {
                        break;
                    }
                    let r = f(&items[i]);
                    *slots[i].lock().unwrap() = Some(r);
                    progress(done.fetch_add(1, Ordering::Relaxed) + 1);
                }
            });
        }
    });
    slots
        .into_iter()
        .map(|m| m.into_inner().unwrap().expect("every item was processed"))
        .collect()
}

/// A command line as a shell would read it (for messages).
pub fn shell_join(argv: &[String]) -> String {
    argv.iter()
        .map(|a| shell_quote(a))
        .collect::<Vec<_>>()
        .join(" ")
}

pub fn shell_quote(a: &str) -> String {
    let safe = !a.is_empty()
        && a.chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./:=,+@%^".contains(c));
    if safe {
        a.to_string()
    } else {
        format!("'{}'", a.replace('\'', r"'\''"))
    }
}

/// The system's ARG_MAX (`getconf ARG_MAX`), or 128 KiB if unknown.
pub fn arg_max() -> usize {
    Command::new("getconf")
        .arg("ARG_MAX")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(128 * 1024)
}

/// Splits `items` into consecutive chunks whose argv footprint (bytes plus
/// NUL plus pointer, per item) stays within `budget`.
pub fn argv_chunks(items: &[String], budget: usize) -> Vec<Vec<String>> {
    let mut chunks = Vec::new();
    let mut cur: Vec<String> = Vec::new();
    let mut size = 0;
    for it in items {
        let cost = it.len() + 1 + std::mem::size_of::<usize>();
        if !cur.is_empty() && size + cost > budget {
            chunks.push(std::mem::take(&mut cur));
            size = 0;
        }
        size += cost;
        cur.push(it.clone());
    }
    if !cur.is_empty() {
        chunks.push(cur);
    }
    chunks
}

/// Bytes the current environment takes in a child's argv/envp area.
pub fn env_footprint() -> usize {
    std::env::vars_os()
        .map(|(k, v)| k.len() + v.len() + 2 + std::mem::size_of::<usize>())
        .sum()
}

/// The applets a build has, from its usage line (`(applets: a b c)`, or
/// comma-separated as the host build writes it).
pub fn applets_of(earlymod: &Path) -> Result<Vec<String>, String> {
    let out = Command::new(earlymod)
        .output()
        .map_err(|e| format!("{}: {e}", earlymod.display()))?;
    let text = String::from_utf8_lossy(&out.stderr);
    let list = text
        .split_once("(applets:")
        .and_then(|(_, r)| r.split_once(')'))
        .map(|(l, _)| {
            l.split(|c: char| c.is_whitespace() || c == ',')
                .filter(|a| !a.is_empty())
                .map(String::from)
                .collect::<Vec<_>>()
        })
        .unwrap_or_default();
    if list.iter().any(|a| a == "modprobe") {
        Ok(list)
    } else {
        Err(format!(
            "{}: no applet list in its usage line: {text:?}",
            earlymod.display()
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        assert_eq!(
            module_name_from_path("kernel/sound/pci/hda/snd-hda-intel.ko.xz"),
            "snd_hda_intel"
        );
        assert_eq!(module_name_from_path("kernel/fs/ext4/ext4.ko"), "ext4");
    }

    #[test]
    fn derive() {
        assert_eq!(
            derive_alias("pci:v00008086d*sv*sd*bc*sc*i*", ""),
            "pci:v00008086dsvsdbcsci"
        );
        assert_eq!(derive_alias("a*b", "1A"), "a1Ab");
        assert_eq!(derive_alias("x?[0-9A-E][Ll]", ""), "x10L");
        assert_eq!(derive_alias("x[!0-9]", ""), "xZ");
        assert_eq!(derive_alias("x[^1Z]", ""), "x0");
        assert_eq!(derive_alias("x[]a]", ""), "x]");
        assert_eq!(derive_alias("x[abc", ""), "x[abc");
    }

    #[test]
    fn tree_spec() {
        let t = Tree::parse_spec("6.1=/a:b/root:6.1.0-1").unwrap();
        assert_eq!(t.root, PathBuf::from("/a:b/root"));
        assert_eq!(t.kver, "6.1.0-1");
        assert!(Tree::parse_spec("x").is_err());
    }

    #[test]
    fn stderr_norm() {
        let n = normalize_stderr(b"earlymod: FATAL: x\nother\nmodprobe: y\n", &[]);
        assert_eq!(n, b"modprobe: FATAL: x\nother\nmodprobe: y\n");
        let n = normalize_stderr(
            b"libkmod: ERROR ../libkmod/libkmod-config.c:712 kmod_config_parse: bad\n",
            &[],
        );
        assert_eq!(n, b"modprobe: ERROR: bad\n");
        let n = normalize_stderr(
            b"libkmod: ERROR: kmod_config_parse: /x.conf line 3: bad\n",
            &[],
        );
        assert_eq!(n, b"modprobe: ERROR: /x.conf line 3: bad\n");
        let n = normalize_stderr(b"libkmod: ERROR: a b: c\n", &[]);
        assert_eq!(n, b"modprobe: ERROR: a b: c\n");
    }

    #[test]
    fn chunks() {
        let items: Vec<String> = (0..10).map(|i| format!("m{i}")).collect();
        let c = argv_chunks(&items, 3 * (3 + 8));
        assert_eq!(c.len(), 4);
        assert_eq!(c.concat(), items);
    }
}
