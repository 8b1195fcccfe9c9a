//! Differential test: `earlymod modprobe` against kmod's `modprobe` for
//! `-D`/`-R` queries over real module trees, modprobe.d configurations and
//! kernel command lines. Stdout and exit code must be identical; stderr is
//! compared after normalising the program-name prefix and only warned about.
//!
//! difftest --earlymod out/earlymod [--kmod /usr/sbin/modprobe]
//!          [--tree NAME=ROOT:KVER ...] [--jobs N] [--sample N] [--show N]

use std::collections::{BTreeMap, HashMap};
use std::fs;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

use earlymod_tests::{
    Outcome, Scratch, Tool, Tree, alias_lines, applets_of, builtin_modinfo_aliases, builtin_names,
    default_trees, default_workers, dep_module_names, derive_alias, derived_aliases, kmod34_tool,
    kmod34_trees, normalize_stderr, par_map, run, shell_join,
};

/// Report categories, in print order.
const CATEGORIES: &[&str] = &[
    "-D",
    "-R",
    "-R symbol",
    "builtin",
    "-D alias",
    "misc",
    "symbols",
    "kmod34",
    "config",
    "cmdline",
];

struct Opts {
    earlymod: PathBuf,
    kmod: PathBuf,
    trees: Vec<Tree>,
    jobs: usize,
    sample: usize,
    show: usize,
    only: Vec<String>,
    skip: Vec<String>,
    keep: bool,
    /// The reference is kmod 34 (`--kmod34`): the `kmod34` category runs.
    kmod34: bool,
}

fn usage() -> ! {
    eprintln!(
        "usage: difftest --earlymod PATH [--kmod PATH | --kmod34] [--tree NAME=ROOT:KVER ...] \
         [--jobs N] [--sample N] [--show N]\n\
         \n\
         --kmod34    compare with kmod 34.2 (Debian trixie, from the cache) over the\n\
                     trees re-indexed by its depmod (k61-34, k612-34)\n\
         --sample N  run only every Nth query of the large categories (quick check)\n\
         --show N    print the first N differences (default 10)\n\
         --only CAT  run only this category (repeatable): -D, -R, '-R symbol', builtin,\n\
                     '-D alias', misc, symbols, kmod34, config, cmdline\n\
         --skip CAT  leave this category out (repeatable; a build without the modinfo\n\
                     feature leaves symbols out by itself, from its applet list)\n\
         --keep      keep the scratch directory with the scenario files"
    );
    std::process::exit(2)
}

fn parse_args() -> Result<(Opts, Vec<String>), String> {
    let mut earlymod = None;
    let mut kmod = PathBuf::from("/usr/sbin/modprobe");
    let mut trees = Vec::new();
    let mut jobs = default_workers();
    let mut sample = 1;
    let mut show = 10;
    let mut only = Vec::new();
    let mut skip = Vec::new();
    let mut keep = false;
    let mut kmod34 = false;
    let mut args = std::env::args().skip(1);
    let num = |v: Option<String>, what: &str| -> Result<usize, String> {
        v.and_then(|s| s.parse().ok())
            .filter(|&n: &usize| n > 0)
            .ok_or_else(|| format!("{what} needs a positive number"))
    };
    while let Some(a) = args.next() {
        let (flag, inline) = match a.split_once('=') {
            Some((f, v)) if f.starts_with("--") => (f.to_string(), Some(v.to_string())),
            _ => (a.clone(), None),
        };
        let mut val = || inline.clone().or_else(|| args.next());
        match flag.as_str() {
            "--earlymod" => earlymod = Some(PathBuf::from(val().ok_or("--earlymod PATH")?)),
            "--kmod" => kmod = PathBuf::from(val().ok_or("--kmod PATH")?),
            "--kmod34" => kmod34 = true,
            "--tree" => trees.push(Tree::parse_spec(&val().ok_or("--tree SPEC")?)?),
            "--jobs" | "-j" => jobs = num(val(), "--jobs")?,
            "--sample" => sample = num(val(), "--sample")?,
            "--show" => show = num(val(), "--show")?,
            "--only" => {
                let c = val().ok_or("--only CATEGORY")?;
                if !CATEGORIES.contains(&c.as_str()) {
                    return Err(format!("unknown category {c:?}"));
                }
                only.push(c)
            }
            "--skip" => {
                let c = val().ok_or("--skip CATEGORY")?;
                if !CATEGORIES.contains(&c.as_str()) {
                    return Err(format!("unknown category {c:?}"));
                }
                skip.push(c)
            }
            "--keep" => keep = true,
            "-h" | "--help" => usage(),
            _ => return Err(format!("unknown argument {a:?}")),
        }
    }
    let earlymod = earlymod.ok_or("--earlymod PATH is required")?;
    let mut missing = Vec::new();
    if kmod34 {
        kmod = kmod34_tool("modprobe");
        if !kmod.exists() {
            missing.push(format!(
                "{} is missing (run scripts/setup.sh)",
                kmod.display()
            ));
        }
    }
    if trees.is_empty() {
        let (t, m) = if kmod34 {
            kmod34_trees()
        } else {
            default_trees()
        };
        trees = t;
        missing.extend(m);
    } else {
        missing.extend(trees.iter().filter_map(Tree::problem));
    }
    Ok((
        Opts {
            earlymod,
            kmod,
            trees,
            jobs,
            sample,
            show,
            only,
            skip,
            keep,
            kmod34,
        },
        missing,
    ))
}

/// One comparison: the same arguments given to both tools.
struct Query {
    tree: usize,
    category: &'static str,
    args: Vec<String>,
    cmdline: Option<PathBuf>,
}

fn dd(args: &[&str]) -> Vec<String> {
    args.iter().map(|s| s.to_string()).collect()
}

/// Per-tree lookups used to instantiate scenario templates.
struct TreeData {
    /// module name → derived alias strings (from modules.alias), file order.
    aliases_of: HashMap<String, Vec<String>>,
}

fn gather_tree(
    ti: usize,
    tree: &Tree,
    scratch: &Path,
    sample: usize,
    out: &mut Vec<Query>,
) -> Result<TreeData, String> {
    let err = |what: &str, e: std::io::Error| format!("{}: reading {what}: {e}", tree.label);
    let moddir = tree.moddir();
    let mut push = |category: &'static str, args: Vec<String>| {
        out.push(Query {
            tree: ti,
            category,
            args,
            cmdline: None,
        })
    };
    let keep = |i: usize| i % sample == 0;

    // -D of every module in modules.dep.
    let names = dep_module_names(tree).map_err(|e| err("modules.dep", e))?;
    for (i, n) in names.iter().enumerate() {
        if keep(i) {
            push("-D", dd(&["-D", "--", n]));
        }
    }

    // -R of a string derived from every alias pattern; -D of every 10th.
    let patterns =
        alias_lines(&moddir.join("modules.alias")).map_err(|e| err("modules.alias", e))?;
    let derived = derived_aliases(&patterns);
    for (i, a) in derived.iter().enumerate() {
        if keep(i) {
            push("-R", dd(&["-R", "--", a]));
        }
        if i % 10 == 0 && keep(i / 10) {
            push("-D alias", dd(&["-D", "--", a]));
        }
    }
    let mut aliases_of: HashMap<String, Vec<String>> = HashMap::new();
    for (pat, module) in &patterns {
        aliases_of
            .entry(module.clone())
            .or_default()
            .push(derive_alias(pat, ""));
    }

    // -R symbol:NAME for every 20th exported symbol, -D for every 100th.
    let symbols =
        alias_lines(&moddir.join("modules.symbols")).map_err(|e| err("modules.symbols", e))?;
    for (i, (pat, _)) in symbols.iter().enumerate() {
        if i % 20 == 0 && keep(i / 20) {
            push("-R symbol", dd(&["-R", "--", pat]));
        }
        if i % 100 == 0 && keep(i / 100) {
            push("-R symbol", dd(&["-D", "--", pat]));
        }
    }

    // Built-in modules by name and by their modules.builtin.modinfo aliases.
    let builtins = builtin_names(tree).map_err(|e| err("modules.builtin", e))?;
    for (i, n) in builtins.iter().enumerate() {
        if keep(i) {
            push("builtin", dd(&["-R", "--", n]));
            push("builtin", dd(&["-D", "--", n]));
            if n.contains('_') {
                push("builtin", dd(&["-D", "--", &n.replace('_', "-")]));
            }
        }
    }
    // kmod ≥ 31: a module file named like a builtin module is not builtin
    // (libkmod's kmod_module_new_from_path): a dry run inserts it. The
    // files are empty; a dry run only stats them.
    let files = scratch.join(format!("path-modules-{ti}"));
    fs::create_dir_all(&files).map_err(|e| err("a scratch directory", e))?;
    for (i, n) in builtins.iter().enumerate() {
        if i % 20 == 0 && keep(i / 20) {
            let file = files.join(format!("{n}.ko"));
            fs::write(&file, b"").map_err(|e| err("a scratch file", e))?;
            let file = file.to_string_lossy().into_owned();
            push("kmod34", dd(&["-n", "-v", &file]));
            push("kmod34", dd(&["-n", "-v", "--first-time", &file]));
        }
    }
    for (i, a) in derived_aliases(&builtin_modinfo_aliases(tree))
        .iter()
        .enumerate()
    {
        if keep(i) {
            push("builtin", dd(&["-R", "--", a]));
            push("builtin", dd(&["-D", "--", a]));
        }
    }

    // --show-exports / --show-modversions of every 10th module file (a
    // query: nothing may load), and of files that are not modules.
    let dep = fs::read_to_string(moddir.join("modules.dep")).map_err(|e| err("modules.dep", e))?;
    for (i, line) in dep.lines().enumerate() {
        let Some((path, _)) = line.split_once(':') else {
            continue;
        };
        if i % 10 == 0 && keep(i / 10) {
            let file = moddir.join(path).to_string_lossy().into_owned();
            push("symbols", dd(&["--show-exports", &file]));
            push("symbols", dd(&["--show-modversions", &file]));
            // kmod ≥ 31: a module given by its file (kmod 30: not found).
            if i % 50 == 0 {
                push("kmod34", dd(&["-D", &file]));
                push("kmod34", dd(&["-R", &file]));
                push("kmod34", dd(&["-D", "--", &file, "opt=1", "x=a b"]));
            }
        }
    }
    let dep_file = moddir.join("modules.dep").to_string_lossy().into_owned();
    let dir = moddir.to_string_lossy().into_owned();
    for args in [
        &["--show-exports", "--", "ext4"][..],
        &["--show-modversions", "/nonexistent/x.ko"],
        &["--show-exports", &dep_file],
        &["--show-modversions", &dir],
        &["-q", "--show-exports", "/nonexistent/x.ko"],
        &["--show-exports", "--show-modversions", &dep_file],
    ] {
        push("symbols", dd(args));
    }

    // Misses, odd spellings and a few flag variants.
    for a in miss_strings() {
        push("misc", vec!["-R".into(), "--".into(), a.clone()]);
        push("misc", vec!["-D".into(), "--".into(), a]);
    }
    for (i, n) in names.iter().filter(|n| n.contains('_')).enumerate() {
        if i % 10 == 0 && keep(i / 10) {
            let dashed = n.replace('_', "-");
            push("misc", dd(&["-D", "--", &dashed]));
            push("misc", dd(&["-R", "--", &dashed]));
        }
    }
    // Names the machine's default modprobe.d (no -C) has options/softdeps for.
    for n in [
        "snd_pcsp", "snd-pcsp", "uhci_hcd", "ohci-hcd", "bonding", "dummy", "ifb",
    ] {
        push("misc", dd(&["-D", "--", n]));
    }
    for args in [
        &["--show-depends", "--", "ext4"][..],
        &["--resolve-alias", "--", "fs-ext4"],
        &["--show-depends", "--ignore-install", "--", "xfs"],
        &["-D", "--", "ext4", "opt=1", "x=a b", "y=\"c d\""],
        &["-D", "-a", "--", "ext4", "xfs", "no_such_module", "btrfs"],
        &[
            "-R",
            "-a",
            "--",
            "fs-ext4",
            "no_such_module",
            "fs-xfs",
            "crc32c",
        ],
        &["-D", "-b", "--", "ext4"],
        &["-D", "-i", "--", "ext4"],
        &["-D", "-q", "--", "no_such_module"],
        &["-R", "-q", "--", "no_such_module"],
        &["-D", "-v", "--", "ext4"],
        &["-D", "ext4"],
        &["-R", "fs-ext4"],
    ] {
        push("misc", dd(args));
    }
    Ok(TreeData { aliases_of })
}

/// Strings that should not resolve (or resolve in odd ways).
fn miss_strings() -> Vec<String> {
    let mut v: Vec<String> = (0..8).map(|i| format!("no_such_module_{i}")).collect();
    v.extend(
        [
            "no-such-module",
            "pci:v0000DEADd0000BEEFsv0000CAFEsd0000F00Dbc00sc00i00",
            "pci:v0000DEADd0000BEEFsv*sd*bc*sc*i*",
            "usb:v0000p0000d0000dc00dsc00dp00ic00isc00ip00in00",
            "usb:vFFFFpFFFFd0000dcFFdscFFdpFFicFFiscFFipFFin00",
            "acpi*:XYZ0000:*",
            "acpi:ZZZZ9999:",
            "of:NfooTbarCbaz",
            "platform:no-such-platform-device",
            "virtio:d0000FFFFv0000FFFF",
            "cpu:type:x86,ven9999fam9999mod9999:feature:",
            "symbol:no_such_symbol_at_all",
            "symbol:",
            "fs-nosuchfs",
            "char-major-999-999",
            "block-major-999-0",
            "devname:nosuchdev",
            "crypto-no-such-algo",
            "net-pf-999",
            "alias",
            "options",
            "pci:*",
            "*",
            "?",
            "ext*",
            "ext?",
            "[e]xt4",
            "ext[4]",
            "ext4]",
            "[ext4",
            "ext4[",
            "-",
            "_",
            ".",
            "..",
            "ext4.ko",
            "ext4.ko.xz",
            "kernel/fs/ext4/ext4.ko",
            "/nonexistent/ext4.ko",
            "EXT4",
            "Ext4",
            " ext4",
            "ext4 ",
            "ext4\t",
            "e\u{e9}xt4",
            "",
        ]
        .iter()
        .map(|s| s.to_string()),
    );
    v.push("m".repeat(300));
    v.push(format!("pci:v{}", "0".repeat(5000)));
    v
}

/// A set of files written under a scratch directory, extra tool arguments
/// (with `{dir}` standing for that directory), an optional kernel command
/// line, and query templates. In a template `@MOD` stands for the first
/// alias string derived for module MOD in the tree (queries whose
/// placeholder does not resolve are skipped) and `{dir}` for the directory.
struct Scenario {
    category: &'static str,
    name: &'static str,
    files: Vec<(&'static str, String)>,
    prefix: Vec<&'static str>,
    cmdline: Option<String>,
    queries: Vec<Vec<String>>,
}

/// Whitespace-separated query template (no argument may contain spaces).
fn q(s: &str) -> Vec<String> {
    s.split_whitespace().map(str::to_string).collect()
}

fn qs(list: &[&str]) -> Vec<Vec<String>> {
    list.iter().map(|s| q(s)).collect()
}

fn config(name: &'static str, files: &[(&'static str, &str)], queries: &[&str]) -> Scenario {
    Scenario {
        category: "config",
        name,
        files: files.iter().map(|(p, c)| (*p, c.to_string())).collect(),
        prefix: vec!["-C", "{dir}"],
        cmdline: None,
        queries: qs(queries),
    }
}

fn cmdline(name: &'static str, line: &str, queries: &[&str]) -> Scenario {
    Scenario {
        category: "cmdline",
        name,
        files: Vec::new(),
        prefix: Vec::new(),
        cmdline: Some(line.to_string()),
        queries: qs(queries),
    }
}

fn scenarios() -> Vec<Scenario> {
    let mut v = vec![
        config(
            "options",
            &[(
                "options.conf",
                "options ext4 foo=1 bar=2\n\
                 options ext4 baz=3\n\
                 options\txfs\ta=1\tb=2\n\
                 \x20  options btrfs  x=y   z=\"q r\"\n\
                 options fs-ext4 viaalias=1\n\
                 options crc32c_generic dep=1\n\
                 options jbd2 dep=2\n\
                 options snd-hda-intel dash=1\n\
                 options snd_hda_intel under=2\n\
                 options e1000 spaces=\"a b c\"\ttab=1\n\
                 options myalias never=1\n\
                 alias myalias xfs\n",
            )],
            &[
                "-D -- ext4",
                "-D -- xfs",
                "-D -- btrfs",
                "-D -- fs-ext4",
                "-D -- @ext4",
                "-D -- ext4 extra=1 more=2",
                "-D -- snd_hda_intel",
                "-D -- snd-hda-intel",
                "-D -- @snd_hda_intel",
                "-D -- e1000",
                "-D -- @e1000 cmd=1",
                "-D -- myalias",
                "-D -- myalias cli=1",
                "-R -- fs-ext4",
                "-D -- crc32c_generic",
                "-D -- libcrc32c",
                "-D -- crc32c",
                "-a -D -- ext4 xfs btrfs",
            ],
        ),
        config(
            "blacklist",
            &[(
                "bl.conf",
                "blacklist e1000\n\
                 blacklist nvme\n\
                 blacklist  jbd2\n\
                 blacklist crc32c_generic\n\
                 blacklist snd-hda-intel\n\
                 blacklist virtio_blk\n",
            )],
            &[
                "-D -- @e1000",
                "-D -- e1000",
                "-R -- @e1000",
                "-b -D -- e1000",
                "-b -D -- @e1000",
                "-D -- nvme",
                "-D -- @nvme",
                "-R -- @nvme",
                "-D -- ext4",
                "-b -D -- ext4",
                "-D -- crc32c",
                "-D -- @crc32c_generic",
                "-D -- @snd_hda_intel",
                "-D -- snd_hda_intel",
                "-D -- snd-hda-intel",
                "-D -- @virtio_blk",
                "-a -D -- @e1000 xfs @nvme",
                "-a -b -D -- e1000 xfs nvme",
            ],
        ),
        config(
            "softdep",
            &[(
                "softdep.conf",
                "softdep ext4 pre: xfs btrfs post: nvme\n\
                 softdep virtio_blk pre: crc32c post: dm-crypt\n\
                 softdep usbhid post: e1000\n\
                 softdep xfs pre:   libcrc32c\tcrc32c_generic\n\
                 softdep nvme pre: no_such_dep post: fs-btrfs\n\
                 softdep dm_crypt pre: ext4 post: ext4\n\
                 softdep e1000\n\
                 softdep btrfs pre: post: xfs\n\
                 softdep snd_hda_intel post: usbhid pre: virtio_blk\n\
                 softdep snd-hda-intel pre: e1000\n\
                 softdep fs-ext4 pre: nvme\n\
                 softdep jbd2 post: usbhid\n",
            )],
            &[
                "-D -- ext4",
                "-D -- virtio_blk",
                "-D -- usbhid",
                "-D -- xfs",
                "-D -- nvme",
                "-D -- dm_crypt",
                "-D -- e1000",
                "-D -- btrfs",
                "-D -- snd_hda_intel",
                "-D -- fs-ext4",
                "-D -- @virtio_blk",
                "-D -- @usbhid",
                "-D -- @snd_hda_intel",
                "-D -- @nvme",
                "-R -- ext4",
                "-a -D -- ext4 nvme",
                "-D -- ext4 top=1",
            ],
        ),
        config(
            "softdep-cycle",
            &[(
                "cycle.conf",
                "softdep ext4 pre: xfs\n\
                 softdep xfs pre: ext4\n\
                 softdep btrfs post: btrfs\n\
                 softdep nvme pre: nvme_core\n\
                 softdep nvme_core post: nvme\n\
                 softdep usbhid pre: usbhid\n",
            )],
            &[
                "-D -- ext4",
                "-D -- xfs",
                "-D -- btrfs",
                "-D -- nvme",
                "-D -- nvme_core",
                "-D -- usbhid",
                "-D -- @usbhid",
            ],
        ),
        config(
            "alias",
            &[(
                "alias.conf",
                "alias myalias ext4\n\
                 alias my-dash-alias xfs\n\
                 alias ext4 xfs\n\
                 alias pci:v00001234* e1000\n\
                 alias usb:v1234p*d* usbhid\n\
                 alias chain1 myalias\n\
                 alias ghost no_such_module\n\
                 alias multi btrfs\n\
                 alias multi nvme\n\
                 alias fs-xfs btrfs\n\
                 alias crc32c e1000\n\
                 alias glob* nvme\n\
                 alias q?ery dm_crypt\n\
                 alias set[0-9] dm-crypt\n\
                 alias toBuiltin zbud\n",
            )],
            &[
                "-R -- myalias",
                "-D -- myalias",
                "-R -- my-dash-alias",
                "-R -- my_dash_alias",
                "-D -- my_dash_alias",
                "-R -- ext4",
                "-D -- ext4",
                "-R -- pci:v00001234d00005678sv00000000sd00000000bc02sc00i00",
                "-D -- pci:v00001234d00005678sv00000000sd00000000bc02sc00i00",
                "-R -- usb:v1234p5678d0100dc00dsc00dp00ic03isc01ip01in00",
                "-R -- chain1",
                "-D -- chain1",
                "-R -- ghost",
                "-D -- ghost",
                "-R -- multi",
                "-D -- multi",
                "-R -- fs-xfs",
                "-D -- fs-xfs",
                "-R -- crc32c",
                "-D -- crc32c",
                "-R -- globber",
                "-R -- glob*",
                "-R -- query",
                "-R -- q?ery",
                "-R -- set5",
                "-D -- set5",
                "-R -- toBuiltin",
                "-D -- toBuiltin",
                "-a -R -- myalias multi ghost ext4",
                "-a -D -- myalias multi",
            ],
        ),
        config(
            "install-remove",
            &[(
                "install.conf",
                "install ext4 /bin/true\n\
                 install xfs /sbin/modprobe --ignore-install xfs $CMDLINE_OPTS && echo loaded\n\
                 remove btrfs /bin/false\n\
                 install jbd2 /bin/echo jbd2\n\
                 install fakemod /bin/true fake\n\
                 install fs-btrfs /bin/echo alias-install\n\
                 options xfs opt=1\n\
                 install   nvme    /bin/sh -c 'echo  \"x\"'  \n\
                 install crc32c_generic\n",
            )],
            &[
                "-D -- ext4",
                "-D -- ext4 a=1",
                "-D -- xfs",
                "-D -- xfs b=2",
                "-D -- btrfs",
                "-D -- fakemod",
                "-R -- fakemod",
                "-D -- fs-btrfs",
                "-R -- fs-btrfs",
                "-i -D -- ext4",
                "-i -D -- xfs",
                "-D -- nvme",
                "-D -- @nvme",
                "-D -- fs-ext4",
                "-D -- crc32c_generic",
                "-D -- libcrc32c",
                "-a -D -- ext4 xfs fakemod",
            ],
        ),
        // A `\` as the very last byte of a file makes kmod store getc()'s
        // EOF as a 0xFF byte in the option; earlymod deliberately drops the
        // dangling `\` instead, so this scenario ends with `\` + newline.
        config(
            "weird",
            &[(
                "weird.conf",
                "# a comment\n\
                 \x20  # indented comment\n\
                 \n\
                 \x20 \t \n\
                 frobnicate ext4 x\n\
                 options ext4 a=1 \\\n\
                 \x20   b=2\n\
                 options xfs c=3 # trailing\n\
                 options\n\
                 options btrfs\n\
                 alias onlyone\n\
                 softdep\n\
                 blacklist\n\
                 options btrfs crlf=1\r\n\
                 alias\tweird\t\text4\n\
                 include /etc/modprobe.d\n\
                 options nvme x=1\\\n\
                 y=2\n\
                 \\\n\
                 options dm_crypt p=1\n\
                 OPTIONS ext4 upper=1\n\
                 options usbhid last=1 \\\n",
            )],
            &[
                "-D -- ext4",
                "-D -- xfs",
                "-D -- btrfs",
                "-D -- nvme",
                "-D -- dm_crypt",
                "-D -- usbhid",
                "-R -- weird",
                "-D -- weird",
                "-R -- onlyone",
            ],
        ),
        config(
            "files",
            &[
                ("b.conf", "options ext4 from=b\nalias filealias xfs\n"),
                ("a.conf", "options ext4 from=a\n"),
                ("README", "options ext4 from=readme\n"),
                (".hidden.conf", "options ext4 from=hidden\n"),
                ("d.conf.bak", "options ext4 from=bak\n"),
                ("sub.conf/x.conf", "options ext4 from=subdir\n"),
                ("z.conf", "options ext4 from=z\nblacklist xfs\n"),
                ("0.conf", "options ext4 from=0\n"),
            ],
            &["-D -- ext4", "-R -- filealias", "-D -- filealias"],
        ),
        // kmod ≥ 33 reads only *.conf (kmod 30 also read *.alias).
        Scenario {
            category: "kmod34",
            ..config(
                "alias-files",
                &[
                    (
                        "c.alias",
                        "alias aliasfile btrfs\noptions ext4 from=alias\n",
                    ),
                    ("a.conf", "alias confalias xfs\n"),
                ],
                &[
                    "-R -- aliasfile",
                    "-D -- aliasfile",
                    "-D -- ext4",
                    "-R -- confalias",
                ],
            )
        },
        // weakdep (kmod ≥ 33): printed by -c, never loaded (kmod 30
        // ignores the lines with a warning and prints none).
        Scenario {
            category: "kmod34",
            ..config(
                "weakdep",
                &[(
                    "w.conf",
                    "weakdep btrfs zstd xxhash\n\
                     weakdep  ext4\tcrc32c   crc16 \n\
                     weakdep xfs\n\
                     softdep btrfs pre: crc32c\n\
                     weakdep nvme-core nvme_auth\n",
                )],
                &["-c", "-D -- btrfs", "-D -- ext4", "-D -- xfs", "-D -- nvme"],
            )
        },
        Scenario {
            prefix: vec!["-C", "{dir}/one", "-C", "{dir}/two"],
            ..config(
                "two-dirs",
                &[
                    ("one/a.conf", "options ext4 one=1\n"),
                    (
                        "one/same.conf",
                        "options ext4 same=one\nalias samealias xfs\n",
                    ),
                    (
                        "two/same.conf",
                        "options ext4 same=two\nalias samealias btrfs\n",
                    ),
                    ("two/b.conf", "alias twoalias nvme\noptions ext4 two=1\n"),
                ],
                &[
                    "-D -- ext4",
                    "-R -- twoalias",
                    "-D -- twoalias",
                    "-R -- samealias",
                ],
            )
        },
        Scenario {
            prefix: vec!["-C", "{dir}/only.conf"],
            ..config(
                "single-file",
                &[
                    (
                        "only.conf",
                        "options ext4 single=1\nalias singlealias xfs\n",
                    ),
                    ("other.conf", "options ext4 other=1\n"),
                ],
                &["-D -- ext4", "-R -- singlealias", "-D -- singlealias"],
            )
        },
        config(
            "empty-dir",
            &[],
            &[
                "-D -- ext4",
                "-D -- jbd2",
                "-D -- snd_pcsp",
                "-D -- uhci_hcd",
                "-R -- @e1000",
                "-D -- crc32c",
            ],
        ),
        Scenario {
            prefix: vec!["-C", "{dir}/does-not-exist"],
            ..config("missing-dir", &[], &["-D -- ext4", "-R -- fs-ext4"])
        },
        cmdline(
            "options",
            "BOOT_IMAGE=/vmlinuz root=/dev/vda1 ro ext4.foo=1 ext4.bar=\"a b\" quiet xfs.x=1 xfs.x=2\n",
            &[
                "-D -- ext4",
                "-D -- xfs",
                "-D -- fs-ext4",
                "-D -- @xfs",
                "-R -- fs-ext4",
                "-D -- ext4 cli=1",
                "-D -- jbd2",
                "-a -D -- ext4 xfs",
            ],
        ),
        cmdline(
            "blacklist",
            "quiet modprobe.blacklist=e1000,nvme splash\n",
            &[
                "-D -- @e1000",
                "-D -- e1000",
                "-R -- @e1000",
                "-D -- @nvme",
                "-D -- nvme",
                "-b -D -- nvme",
                "-b -D -- @nvme",
                "-a -D -- @e1000 @nvme ext4",
            ],
        ),
        cmdline(
            "quoting",
            "\"snd_hda_intel.model=a b\" snd_hda_intel.x=1 \"ext4.q=1\" ext4.\"r=2\" \"xfs.s=\"t u\" v\" btrfs.\"w x\"=1 nvme.y=\"1 2\"3\n",
            &[
                "-D -- snd_hda_intel",
                "-D -- @snd_hda_intel",
                "-D -- ext4",
                "-D -- xfs",
                "-D -- btrfs",
                "-D -- nvme",
            ],
        ),
        cmdline(
            "dashes",
            "snd-hda-intel.x=1 snd_hda_intel.y=2 dm-crypt.z=3 dm_crypt.w=4 crc32c-generic.c=1 modprobe.blacklist=snd-hda-intel,dm_crypt\n",
            &[
                "-D -- snd_hda_intel",
                "-D -- snd-hda-intel",
                "-D -- @snd_hda_intel",
                "-D -- dm_crypt",
                "-D -- dm-crypt",
                "-D -- @dm_crypt",
                "-D -- crc32c",
                "-D -- ext4",
            ],
        ),
        cmdline(
            "malformed",
            "ext4. .foo=1 ext4 =x ext4.=y xfs.a= xfs.b xfs.c.d=1 =e ext]4.bad=1 ext[4.odd=1 btrfs.ok=1 \
             modprobe.blacklist= modprobe.blacklist modprobe.blacklist=,, modprobe.x=1 \
             nvme.z=\"unterminated xfs.after=1\n",
            &[
                "-D -- ext4",
                "-D -- xfs",
                "-D -- btrfs",
                "-D -- nvme",
                "-D -- @nvme",
                "-D -- modprobe",
            ],
        ),
        cmdline(
            "whitespace",
            "ext4.tab=1\txfs.tab=2\x0bbtrfs.vt=3\x0cnvme.ff=4\rusbhid.cr=5  e1000.last=6",
            &[
                "-D -- ext4",
                "-D -- xfs",
                "-D -- btrfs",
                "-D -- nvme",
                "-D -- usbhid",
                "-D -- e1000",
            ],
        ),
        Scenario {
            files: vec![(
                "x.conf",
                "options ext4 conf=1\nalias cfgxfs xfs\nblacklist btrfs\n".to_string(),
            )],
            prefix: vec!["-C", "{dir}"],
            ..cmdline(
                "with-config",
                "ext4.cmd=1 modprobe.blacklist=xfs ext4.cmd2=2\n",
                &[
                    "-D -- ext4",
                    "-D -- cfgxfs",
                    "-D -- @btrfs",
                    "-D -- @xfs",
                    "-R -- cfgxfs",
                    "-D -- ext4 cli=3",
                ],
            )
        },
        cmdline("empty", "", &["-D -- ext4", "-R -- @e1000"]),
    ];
    // A command line longer than kmod's 4096-byte buffer, with an option
    // straddling the cut.
    let mut long = String::new();
    let mut i = 0;
    while long.len() < 4080 {
        long.push_str(&format!("pad.p{i}=x "));
        i += 1;
    }
    long.truncate(4086);
    long.push_str(" ext4.trunc=123456789 xfs.after=1 ext4.after=1\n");
    v.push(cmdline(
        "long",
        &long,
        &["-D -- ext4", "-D -- xfs", "-D -- pad"],
    ));
    v
}

/// Writes each scenario's files (and command-line file) under `base`.
fn materialise(base: &Path, list: &[Scenario]) -> Result<Vec<(PathBuf, Option<PathBuf>)>, String> {
    let mut out = Vec::new();
    for (i, s) in list.iter().enumerate() {
        let dir = base.join(format!("{}-{}-{i}", s.category, s.name));
        fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        for (rel, content) in &s.files {
            let p = dir.join(rel);
            if let Some(parent) = p.parent() {
                fs::create_dir_all(parent).map_err(|e| format!("{}: {e}", parent.display()))?;
            }
            fs::write(&p, content).map_err(|e| format!("{}: {e}", p.display()))?;
        }
        let cl = match &s.cmdline {
            Some(text) => {
                let p = base.join(format!("proc-cmdline-{}-{i}", s.name));
                fs::write(&p, text).map_err(|e| format!("{}: {e}", p.display()))?;
                Some(p)
            }
            None => None,
        };
        out.push((dir, cl));
    }
    Ok(out)
}

/// Instantiates scenario templates for one tree; returns the number of
/// templates skipped for want of an alias.
fn scenario_queries(
    ti: usize,
    data: &TreeData,
    list: &[Scenario],
    paths: &[(PathBuf, Option<PathBuf>)],
    out: &mut Vec<Query>,
) -> usize {
    let mut skipped = 0;
    for (s, (dir, cl)) in list.iter().zip(paths) {
        let dirs = dir.to_string_lossy();
        'q: for tpl in &s.queries {
            let mut args: Vec<String> =
                s.prefix.iter().map(|p| p.replace("{dir}", &dirs)).collect();
            for a in tpl {
                if let Some(m) = a.strip_prefix('@') {
                    match data.aliases_of.get(m).and_then(|v| v.first()) {
                        Some(al) => args.push(al.clone()),
                        None => {
                            skipped += 1;
                            continue 'q;
                        }
                    }
                } else {
                    args.push(a.replace("{dir}", &dirs));
                }
            }
            out.push(Query {
                tree: ti,
                category: s.category,
                args,
                cmdline: cl.clone(),
            });
        }
    }
    skipped
}

/// Whether the unshare + bind-mount trick works here.
fn cmdline_trick_works(base: &Path) -> Result<(), String> {
    let probe = base.join("cmdline-probe");
    let text = "earlymod.difftest=probe\n";
    fs::write(&probe, text).map_err(|e| e.to_string())?;
    let o = run(
        &["cat".to_string(), "/proc/cmdline".to_string()],
        Some(&probe),
    );
    if o.code == 0 && o.stdout == text.as_bytes() {
        Ok(())
    } else {
        Err(format!(
            "unshare --mount + bind mount over /proc/cmdline failed (exit {}): {}",
            o.code,
            String::from_utf8_lossy(&o.stderr).trim()
        ))
    }
}

struct Result1 {
    ok: bool,
    stderr_ok: bool,
    expected: Option<Outcome>,
    got: Option<Outcome>,
}

fn excerpt(bytes: &[u8], max_lines: usize) -> String {
    excerpt_from(bytes, 0, max_lines)
}

/// Up to `max_lines` lines of `bytes` starting at line index `start`.
fn excerpt_from(bytes: &[u8], start: usize, max_lines: usize) -> String {
    let text = String::from_utf8_lossy(bytes);
    let lines: Vec<&str> = text.split_inclusive('\n').collect();
    let mut s = String::new();
    if start > 0 && start < lines.len() {
        s.push_str(&format!("    | ... ({start} lines before)\n"));
    }
    let lines: Vec<&str> = lines.into_iter().skip(start).collect();
    for l in lines.iter().take(max_lines) {
        s.push_str("    | ");
        let shown = l.strip_suffix('\n').unwrap_or(l).escape_debug().to_string();
        s.push_str(&clip(&shown, 240));
        s.push('\n');
    }
    if lines.len() > max_lines {
        s.push_str(&format!(
            "    | ... ({} more lines)\n",
            lines.len() - max_lines
        ));
    }
    if lines.is_empty() {
        s.push_str("    (empty)\n");
    }
    s
}

/// `s` cut to about `max` characters, saying how long it was.
fn clip(s: &str, max: usize) -> String {
    let n = s.chars().count();
    if n <= max {
        s.to_string()
    } else {
        let head: String = s.chars().take(max / 2).collect();
        let tail: String = s.chars().skip(n - max / 4).collect();
        format!("{head}...({n} chars)...{tail}")
    }
}

/// Arguments for display: very long ones are abbreviated.
fn shorten(args: &[String]) -> Vec<String> {
    args.iter()
        .map(|a| {
            if a.chars().count() > 120 {
                let head: String = a.chars().take(60).collect();
                format!("{head}...({} chars)", a.chars().count())
            } else {
                a.clone()
            }
        })
        .collect()
}

fn first_diff_line(a: &[u8], b: &[u8]) -> usize {
    let la: Vec<&[u8]> = a.split(|&c| c == b'\n').collect();
    let lb: Vec<&[u8]> = b.split(|&c| c == b'\n').collect();
    la.iter().zip(&lb).take_while(|(x, y)| x == y).count() + 1
}

fn main() -> ExitCode {
    let started = Instant::now();
    let (opts, missing) = match parse_args() {
        Ok(x) => x,
        Err(e) => {
            eprintln!("difftest: {e}");
            usage()
        }
    };
    let ci = std::env::var("CI").is_ok_and(|v| v == "true");

    let mut absent = missing;
    if !opts.kmod.is_file() {
        absent.push(format!(
            "kmod modprobe not found at {}",
            opts.kmod.display()
        ));
    }
    if !absent.is_empty() {
        for a in &absent {
            println!("difftest: {a}");
        }
        if ci {
            println!("difftest: FAIL: reference kmod/trees missing and CI=true");
            println!("0 passed, 1 failed");
            return ExitCode::FAILURE;
        }
        println!(
            "SKIP: kmod or the test trees are absent (run scripts/setup.sh); nothing compared"
        );
        return ExitCode::SUCCESS;
    }
    if !opts.earlymod.is_file() {
        println!(
            "difftest: earlymod binary not found at {} (run make)",
            opts.earlymod.display()
        );
        println!("0 passed, 1 failed");
        return ExitCode::FAILURE;
    }
    let kver_out = run(
        &[opts.kmod.to_string_lossy().into_owned(), "--version".into()],
        None,
    );
    let kmod_version = String::from_utf8_lossy(&kver_out.stdout)
        .lines()
        .next()
        .unwrap_or("")
        .to_string();
    let want_version = if opts.kmod34 {
        "kmod version 34.2"
    } else {
        "kmod version 30"
    };
    if kmod_version.trim() != want_version {
        println!("difftest: warning: reference is {kmod_version:?}, expected {want_version:?}");
    }

    let kmod = Tool {
        program: opts.kmod.clone(),
        applet: None,
    };
    let early = Tool {
        program: opts.earlymod.clone(),
        applet: Some("modprobe".into()),
    };
    let names: Vec<String> = [&opts.kmod, &opts.earlymod]
        .iter()
        .filter_map(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
        .collect();

    let scratch = match Scratch::new("difftest", opts.keep) {
        Ok(s) => s,
        Err(e) => {
            println!("difftest: cannot create a scratch directory: {e}");
            return ExitCode::FAILURE;
        }
    };
    let base = scratch.path().to_path_buf();

    let mut scen = scenarios();
    let mut setup_failures = 0;
    if let Err(e) = cmdline_trick_works(&base) {
        if ci {
            println!("difftest: FAIL: cmdline scenarios impossible: {e}");
            setup_failures += 1;
        } else {
            println!("difftest: SKIP cmdline scenarios: {e}");
        }
        scen.retain(|s| s.cmdline.is_none());
    }
    let paths = match materialise(&base, &scen) {
        Ok(p) => p,
        Err(e) => {
            println!("difftest: writing scenario files: {e}");
            return ExitCode::FAILURE;
        }
    };

    let mut queries = Vec::new();
    for (ti, tree) in opts.trees.iter().enumerate() {
        match gather_tree(ti, tree, &base, opts.sample, &mut queries) {
            Ok(data) => {
                let skipped = scenario_queries(ti, &data, &scen, &paths, &mut queries);
                if skipped > 0 {
                    eprintln!(
                        "difftest: {}: {skipped} scenario queries skipped (module has no alias)",
                        tree.label
                    );
                }
            }
            Err(e) => {
                println!("difftest: {e}");
                setup_failures += 1;
            }
        }
    }

    if !opts.only.is_empty() {
        queries.retain(|q| opts.only.iter().any(|c| c == q.category));
    }
    // --show-exports / --show-modversions need the modinfo feature: a
    // build without it says so in one line (hostile checks that line).
    let mut skip = opts.skip.clone();
    match applets_of(&opts.earlymod) {
        Ok(a) if !a.iter().any(|a| a == "modinfo") => {
            eprintln!("difftest: symbols queries not run: this build has no modinfo feature");
            skip.push("symbols".into());
        }
        Ok(_) => {}
        Err(e) => {
            println!("difftest: {e}");
            println!("0 passed, 1 failed");
            return ExitCode::FAILURE;
        }
    }
    if !skip.is_empty() {
        queries.retain(|q| !skip.iter().any(|c| c == q.category));
    }
    if !opts.kmod34 {
        let before = queries.len();
        queries.retain(|q| q.category != "kmod34");
        if before > queries.len() {
            eprintln!(
                "difftest: {} kmod34 queries not run: kmod 30 differs there by design \
                 (earlymod follows kmod 34; run with --kmod34, see tests/README.md)",
                before - queries.len()
            );
        }
    }
    eprintln!(
        "difftest: {} queries on {} trees, {} workers",
        queries.len(),
        opts.trees.len(),
        opts.jobs
    );
    let total = queries.len();
    let step = (total / 20).max(1);
    let fails_so_far = AtomicUsize::new(0);
    let results = par_map(
        &queries,
        opts.jobs,
        |qy| {
            let tree = &opts.trees[qy.tree];
            let exp = run(&kmod.argv(tree, &qy.args), qy.cmdline.as_deref());
            let got = run(&early.argv(tree, &qy.args), qy.cmdline.as_deref());
            let ok = exp.stdout == got.stdout && exp.code == got.code;
            let stderr_ok =
                normalize_stderr(&exp.stderr, &names) == normalize_stderr(&got.stderr, &names);
            if !ok {
                fails_so_far.fetch_add(1, Ordering::Relaxed);
            }
            if ok && stderr_ok {
                Result1 {
                    ok,
                    stderr_ok,
                    expected: None,
                    got: None,
                }
            } else {
                Result1 {
                    ok,
                    stderr_ok,
                    expected: Some(exp),
                    got: Some(got),
                }
            }
        },
        |done| {
            if done % step == 0 || done == total {
                eprintln!(
                    "difftest: {done}/{total} done, {} failing, {:.0} s",
                    fails_so_far.load(Ordering::Relaxed),
                    started.elapsed().as_secs_f64()
                );
            }
        },
    );

    // Per tree and category summary.
    let mut table: BTreeMap<(usize, usize), (usize, usize, usize)> = BTreeMap::new();
    for (qy, r) in queries.iter().zip(&results) {
        let ci = CATEGORIES.iter().position(|c| *c == qy.category).unwrap();
        let e = table.entry((qy.tree, ci)).or_default();
        e.0 += 1;
        if r.ok {
            e.1 += 1;
        }
        if r.ok && !r.stderr_ok {
            e.2 += 1;
        }
    }
    for ((ti, ci), (n, ok, serr)) in &table {
        let label = &opts.trees[*ti].label;
        println!("{label}: {} {ok}/{n} identical", CATEGORIES[*ci]);
        if *serr > 0 {
            println!(
                "{label}: {} warning: {serr} stderr differences",
                CATEGORIES[*ci]
            );
        }
    }

    let describe = |qy: &Query| -> String {
        let tree = &opts.trees[qy.tree];
        let mut s = format!(
            "[{} {}] modprobe {}",
            tree.label,
            qy.category,
            shell_join(&shorten(&kmod.argv(tree, &qy.args)[1..]))
        );
        if let Some(cl) = &qy.cmdline {
            let text = fs::read_to_string(cl).unwrap_or_default();
            s.push_str(&format!(
                "\n  with /proc/cmdline = {} ({} bytes, kept in {})",
                clip(&format!("{text:?}"), 240),
                text.len(),
                cl.display()
            ));
        }
        s
    };

    let stderr_diffs: Vec<usize> = (0..results.len())
        .filter(|&i| results[i].ok && !results[i].stderr_ok)
        .collect();
    if !stderr_diffs.is_empty() {
        println!(
            "\n{} stderr differences (warnings); first {}:",
            stderr_diffs.len(),
            opts.show.min(stderr_diffs.len())
        );
        for &i in stderr_diffs.iter().take(opts.show) {
            let r = &results[i];
            let (e, g) = (r.expected.as_ref().unwrap(), r.got.as_ref().unwrap());
            println!("WARN {}", describe(&queries[i]));
            print!("  expected stderr:\n{}", excerpt(&e.stderr, 8));
            print!("  got stderr:\n{}", excerpt(&g.stderr, 8));
        }
    }

    let failures: Vec<usize> = (0..results.len()).filter(|&i| !results[i].ok).collect();
    if !failures.is_empty() {
        println!(
            "\n{} differences in stdout/exit code; first {}:",
            failures.len(),
            opts.show.min(failures.len())
        );
        for &i in failures.iter().take(opts.show) {
            let r = &results[i];
            let (e, g) = (r.expected.as_ref().unwrap(), r.got.as_ref().unwrap());
            println!("FAIL {}", describe(&queries[i]));
            let mut start = 0;
            if e.stdout != g.stdout {
                let line = first_diff_line(&e.stdout, &g.stdout);
                println!("  stdout differs from line {line}");
                start = line.saturating_sub(4);
            }
            print!(
                "  expected (exit {}):\n{}",
                e.code,
                excerpt_from(&e.stdout, start, 12)
            );
            if !e.stderr.is_empty() {
                print!("  expected stderr:\n{}", excerpt(&e.stderr, 4));
            }
            print!(
                "  got (exit {}):\n{}",
                g.code,
                excerpt_from(&g.stdout, start, 12)
            );
            if !g.stderr.is_empty() {
                print!("  got stderr:\n{}", excerpt(&g.stderr, 4));
            }
        }
    }

    let failed = failures.len() + setup_failures;
    let passed = results.len() - failures.len();
    eprintln!(
        "difftest: {} queries in {:.1} s",
        results.len(),
        started.elapsed().as_secs_f64()
    );
    println!("{passed} passed, {failed} failed");
    if failed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}
