//! Hostile inputs against the real binary: corrupt and adversarial kmod
//! indexes (cycles, deep chains, exponential fan-out, absurd counts, bad
//! offsets, truncation), 2 GiB sparse "modules", decompression bombs, and
//! names, parameters and config lines at and over their bounds. Each case
//! runs `earlymod` in its own child under `/usr/bin/time`, and must finish
//! within its time bound and peak-RSS bound, exit as stated, print the
//! stated reason on stderr, and never panic. kmod's `modprobe` gets the same
//! index cases for the record (it is not required to survive them).
//!
//! hostile --earlymod out/earlymod [--kmod /usr/sbin/modprobe]

use std::fs;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};
use std::time::{Duration, Instant};

const KVER: &str = "9.9.9";
const MAGIC: u32 = 0xB007_F457;
const VERSION: u32 = 0x0002_0001;
const PREFIX: u32 = 0x8000_0000;
const VALUES: u32 = 0x4000_0000;
const CHILDS: u32 = 0x2000_0000;

/// One trie node of a hand-built index; `children` maps a byte to a node.
#[derive(Default, Clone)]
struct Node {
    prefix: Vec<u8>,
    children: Vec<(u8, usize)>,
    /// Overrides the child range the file declares (first, last).
    range: Option<(u8, u8)>,
    values: Option<Vec<(u32, Vec<u8>)>>,
    /// Overrides the value count the file declares.
    count: Option<u32>,
}

/// Lays `nodes` out after the header, root `root`; any node may point at
/// any other, so cycles and shared subtrees are expressible.
fn index(nodes: &[Node], root: usize) -> Vec<u8> {
    let word = |i: usize, offs: &[u32]| {
        let n = &nodes[i];
        let mut w = offs[i];
        if !n.prefix.is_empty() {
            w |= PREFIX;
        }
        if !n.children.is_empty() {
            w |= CHILDS;
        }
        if n.values.is_some() {
            w |= VALUES;
        }
        w
    };
    let mut offs = vec![0u32; nodes.len()];
    let mut body = Vec::new();
    // Sizes do not depend on offsets, so two passes settle them.
    for _ in 0..2 {
        body.clear();
        for (i, n) in nodes.iter().enumerate() {
            offs[i] = 12 + body.len() as u32;
            if !n.prefix.is_empty() {
                body.extend_from_slice(&n.prefix);
                body.push(0);
            }
            if !n.children.is_empty() {
                let lo = n.children.iter().map(|c| c.0).min().unwrap();
                let hi = n.children.iter().map(|c| c.0).max().unwrap();
                let (first, last) = n.range.unwrap_or((lo, hi));
                body.extend_from_slice(&[first, last]);
                for ch in lo..=hi {
                    let w = n
                        .children
                        .iter()
                        .find(|c| c.0 == ch)
                        .map_or(0, |c| word(c.1, &offs));
                    body.extend_from_slice(&w.to_be_bytes());
                }
            }
            if let Some(vals) = &n.values {
                let count = n.count.unwrap_or(vals.len() as u32);
                body.extend_from_slice(&count.to_be_bytes());
                for (prio, v) in vals {
                    body.extend_from_slice(&prio.to_be_bytes());
                    body.extend_from_slice(v);
                    body.push(0);
                }
            }
        }
    }
    let mut out = Vec::new();
    out.extend_from_slice(&MAGIC.to_be_bytes());
    out.extend_from_slice(&VERSION.to_be_bytes());
    out.extend_from_slice(&word(root, &offs).to_be_bytes());
    out.extend_from_slice(&body);
    out
}

fn leaf(value: &str) -> Node {
    Node {
        values: Some(vec![(0, value.as_bytes().to_vec())]),
        ..Default::default()
    }
}

/// (name, index file, its bytes, modprobe arguments, reason on stderr).
type IndexCase = (
    &'static str,
    &'static str,
    Vec<u8>,
    Vec<String>,
    &'static str,
);
/// (name, modprobe.d text, modprobe arguments, exit status, reason).
type BoundCase = (&'static str, String, Vec<String>, Option<i32>, &'static str);

/// What a run must show.
struct Expect {
    /// Exit status required (None: any status, but no signal).
    code: Option<i32>,
    /// Text stderr must contain.
    reason: &'static str,
    secs: f64,
    rss_kib: u64,
}

struct Run {
    code: Option<i32>,
    stderr: String,
    secs: f64,
    rss_kib: Option<u64>,
    timed_out: bool,
}

/// Runs `argv` under `/usr/bin/time` (peak RSS to a side file) with a hard
/// timeout.
fn run(argv: &[String], work: &Path, timeout: Duration) -> Run {
    let rss_file = work.join("rss");
    let _ = fs::remove_file(&rss_file);
    let t0 = Instant::now();
    let mut child = Command::new("/usr/bin/time")
        .arg("-f")
        .arg("%M")
        .arg("-o")
        .arg(&rss_file)
        .args(argv)
        .env("LC_ALL", "C")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .process_group(0)
        .spawn()
        .expect("spawn /usr/bin/time");
    let mut timed_out = false;
    let status = loop {
        if let Some(s) = child.try_wait().expect("wait") {
            break s;
        }
        if t0.elapsed() > timeout {
            // The whole group: time and the command it runs.
            let _ = Command::new("kill")
                .args(["-KILL", "--", &format!("-{}", child.id())])
                .status();
            timed_out = true;
            break child.wait().expect("wait");
        }
        std::thread::sleep(Duration::from_millis(5));
    };
    let secs = t0.elapsed().as_secs_f64();
    let mut stderr = String::new();
    if let Some(mut e) = child.stderr.take() {
        use std::io::Read;
        let _ = e.read_to_string(&mut stderr);
    }
    let time_out = fs::read_to_string(&rss_file).unwrap_or_default();
    // GNU time writes "Command terminated by signal N" / "exited with
    // non-zero status N" before the figure when the command did not exit 0.
    let signal = time_out.contains("terminated by signal");
    let rss_kib = time_out.lines().last().and_then(|l| l.trim().parse().ok());
    let code = if signal || timed_out {
        None
    } else {
        time_out
            .lines()
            .find_map(|l| l.strip_prefix("Command exited with non-zero status "))
            .and_then(|n| n.trim().parse().ok())
            .or(status.code())
    };
    Run {
        code,
        stderr,
        secs,
        rss_kib,
        timed_out,
    }
}

fn describe(r: &Run) -> String {
    if r.timed_out {
        return format!("killed after {:.1} s (timeout)", r.secs);
    }
    match r.code {
        Some(c) => format!(
            "exit {c}, {:.2} s, {} KiB",
            r.secs,
            r.rss_kib.map_or("?".into(), |k| k.to_string())
        ),
        None => format!("killed by a signal after {:.2} s", r.secs),
    }
}

/// Checks one earlymod run against `want`; returns the problems.
fn check(r: &Run, want: &Expect) -> Vec<String> {
    let mut bad = Vec::new();
    if r.timed_out || r.code.is_none() {
        bad.push(describe(r));
    }
    if let (Some(w), Some(c)) = (want.code, r.code)
        && w != c
    {
        bad.push(format!("exit {c}, want {w}"));
    }
    if !r.stderr.contains(want.reason) {
        bad.push(format!(
            "stderr lacks {:?}: {:?}",
            want.reason,
            r.stderr.chars().take(300).collect::<String>()
        ));
    }
    if r.stderr.contains("panicked") || r.stderr.contains("RUST_BACKTRACE") {
        bad.push("panic".into());
    }
    if r.secs > want.secs {
        bad.push(format!("{:.2} s > {} s", r.secs, want.secs));
    }
    match r.rss_kib {
        Some(k) if k > want.rss_kib => bad.push(format!("peak RSS {k} KiB > {}", want.rss_kib)),
        None => bad.push("no peak RSS figure".into()),
        _ => {}
    }
    bad
}

/// A module directory `ROOT/lib/modules/KVER` holding `files`.
fn tree(work: &Path, name: &str, files: &[(&str, Vec<u8>)]) -> PathBuf {
    let root = work.join(name);
    let dir = root.join("lib/modules").join(KVER);
    fs::create_dir_all(dir.join("kernel")).unwrap();
    fs::create_dir_all(root.join("conf")).unwrap();
    for (f, data) in files {
        fs::write(dir.join(f), data).unwrap();
    }
    fs::write(dir.join("kernel/x.ko"), b"").unwrap();
    root
}

fn sparse(path: &Path, head: &[u8], len: u64) {
    fs::write(path, head).unwrap();
    fs::OpenOptions::new()
        .write(true)
        .open(path)
        .unwrap()
        .set_len(len)
        .unwrap();
}

/// `cmd` with `zeros` bytes of zeros on stdin, its stdout to `out`.
fn compress(cmd: &[&str], zeros: u64, out: &Path) -> bool {
    let sh = format!(
        "head -c {zeros} /dev/zero | {} > '{}'",
        cmd.join(" "),
        out.display()
    );
    Command::new("sh")
        .arg("-c")
        .arg(sh)
        .status()
        .is_ok_and(|s| s.success())
}

/// Case counts, and one line per case.
#[derive(Default)]
struct Tally {
    cases: usize,
    failed: usize,
}

impl Tally {
    fn report(&mut self, name: &str, r: &Run, want: &Expect, kmod_note: Option<String>) {
        self.cases += 1;
        let bad = check(r, want);
        let k = kmod_note.map_or(String::new(), |n| format!("; kmod: {n}"));
        if bad.is_empty() {
            println!("hostile ok   {name}: {}{k}", describe(r));
        } else {
            self.failed += 1;
            println!("hostile FAIL {name}: {}{k}", bad.join("; "));
        }
    }
}

fn usage() -> ! {
    eprintln!("usage: hostile --earlymod PATH [--kmod PATH]");
    std::process::exit(2)
}

fn main() -> ExitCode {
    let mut earlymod = None;
    let mut kmod = PathBuf::from("/usr/sbin/modprobe");
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--earlymod" => earlymod = args.next().map(PathBuf::from),
            "--kmod" => kmod = args.next().map(PathBuf::from).unwrap_or_else(|| usage()),
            _ => usage(),
        }
    }
    let Some(earlymod) = earlymod else { usage() };
    let earlymod = fs::canonicalize(&earlymod).unwrap_or(earlymod);
    if !Path::new("/usr/bin/time").is_file() {
        println!("hostile: FAIL: /usr/bin/time is missing (scripts/setup.sh installs it)");
        return ExitCode::FAILURE;
    }
    let work = std::env::temp_dir().join(format!("earlymod-hostile-{}", std::process::id()));
    let _ = fs::remove_dir_all(&work);
    fs::create_dir_all(&work).unwrap();
    let em = |applet: &str, rest: &[String]| -> Vec<String> {
        let mut v = vec![earlymod.display().to_string(), applet.to_string()];
        v.extend(rest.iter().cloned());
        v
    };
    let s = |x: &str| x.to_string();
    let mut t = Tally::default();
    let limit = Duration::from_secs(20);

    // ---------------------------------------------------------- indexes
    let a = |n: &str| n.as_bytes()[0];
    let cycle = index(
        &[
            Node {
                children: vec![(a("a"), 1), (a("*"), 0)],
                ..Default::default()
            },
            Node {
                children: vec![(a("a"), 0), (a("*"), 1)],
                values: Some(vec![(0, b"x".to_vec())]),
                ..Default::default()
            },
        ],
        0,
    );
    let self_loop = index(
        &[Node {
            prefix: b"a".to_vec(),
            children: vec![(a("*"), 0), (a("a"), 0)],
            ..Default::default()
        }],
        0,
    );
    let deep = {
        let mut v: Vec<Node> = (0..5000)
            .map(|i| Node {
                children: vec![(a("a"), i + 1)],
                ..Default::default()
            })
            .collect();
        v.push(leaf("x"));
        index(&v, 0)
    };
    // 40 levels, every byte 1..=255 pointing at the next level: 255^40
    // paths through a 40 KB file.
    let fanout = {
        let mut v: Vec<Node> = (0..40)
            .map(|i| Node {
                children: (1..=255u8).map(|c| (c, i + 1)).collect(),
                ..Default::default()
            })
            .collect();
        v.push(leaf("x"));
        index(&v, 0)
    };
    let count = index(
        &[Node {
            prefix: b"x".to_vec(),
            values: Some(vec![(0, b"kernel/x.ko:".to_vec())]),
            count: Some(u32::MAX),
            ..Default::default()
        }],
        0,
    );
    let range = index(
        &[
            Node {
                children: vec![(a("x"), 1)],
                range: Some((a("y"), a("x"))),
                ..Default::default()
            },
            leaf("kernel/x.ko:"),
        ],
        0,
    );
    let mut past_end = index(&[leaf("kernel/x.ko:")], 0);
    past_end[8..12].copy_from_slice(&(VALUES | 0x00ff_ffff).to_be_bytes());
    let truncated = index(
        &[
            Node {
                children: vec![(a("x"), 1)],
                ..Default::default()
            },
            leaf("kernel/x.ko:"),
        ],
        0,
    );
    let truncated = truncated[..truncated.len() - 6].to_vec();
    let mut magic = index(&[leaf("kernel/x.ko:")], 0);
    magic[0] ^= 0xff;
    let mut version = index(&[leaf("kernel/x.ko:")], 0);
    version[4..8].copy_from_slice(&0x0003_0000u32.to_be_bytes());

    let long_a = "a".repeat(40);
    let index_cases: Vec<IndexCase> = vec![
        (
            "alias index: two-node cycle, -R",
            "modules.alias.bin",
            cycle.clone(),
            vec![s("-R"), long_a.clone()],
            "index trie too deep",
        ),
        (
            "alias index: two-node cycle, -c",
            "modules.alias.bin",
            cycle,
            vec![s("-c")],
            "index dump: index trie too deep",
        ),
        (
            "alias index: self-loop, -R",
            "modules.alias.bin",
            self_loop.clone(),
            vec![s("-R"), long_a.clone()],
            "index",
        ),
        (
            "alias index: self-loop, -c",
            "modules.alias.bin",
            self_loop,
            vec![s("-c")],
            "index dump:",
        ),
        (
            "alias index: 5000-deep chain, -c",
            "modules.alias.bin",
            deep.clone(),
            vec![s("-c")],
            "index trie too deep",
        ),
        (
            "alias index: 5000-deep chain, -R a*5000",
            "modules.alias.bin",
            deep,
            vec![s("-R"), "a".repeat(5000)],
            "not found",
        ),
        (
            "alias index: 255-wide fan-out x40, -R",
            "modules.alias.bin",
            fanout.clone(),
            vec![s("-R"), long_a.clone()],
            "node budget",
        ),
        (
            "alias index: 255-wide fan-out x40, -c",
            "modules.alias.bin",
            fanout,
            vec![s("-c")],
            "node budget",
        ),
        (
            "dep index: value count 2^32-1",
            "modules.dep.bin",
            count,
            vec![s("-D"), s("x")],
            "absurd value count",
        ),
        (
            "dep index: child range first > last",
            "modules.dep.bin",
            range,
            vec![s("-D"), s("x")],
            "bad child range",
        ),
        (
            "dep index: root offset past the end",
            "modules.dep.bin",
            past_end,
            vec![s("-D"), s("x")],
            "past end",
        ),
        (
            "dep index: truncated",
            "modules.dep.bin",
            truncated,
            vec![s("-D"), s("x")],
            "index",
        ),
        (
            "dep index: empty file",
            "modules.dep.bin",
            Vec::new(),
            vec![s("-D"), s("x")],
            "too short",
        ),
        (
            "dep index: bad magic",
            "modules.dep.bin",
            magic,
            vec![s("-D"), s("x")],
            "bad index magic",
        ),
        (
            "dep index: version 3",
            "modules.dep.bin",
            version,
            vec![s("-D"), s("x")],
            "unsupported index version",
        ),
    ];
    for (i, (name, file, data, q, reason)) in index_cases.into_iter().enumerate() {
        let root = tree(&work, &format!("idx{i}"), &[(file, data)]);
        let mut args = vec![
            s("-d"),
            root.display().to_string(),
            s("-S"),
            s(KVER),
            s("-C"),
            root.join("conf").display().to_string(),
        ];
        args.extend(q);
        let r = run(&em("modprobe", &args), &work, limit);
        let k = kmod.is_file().then(|| {
            let mut argv = vec![kmod.display().to_string()];
            argv.extend(args.iter().cloned());
            describe(&run(&argv, &work, Duration::from_secs(10)))
        });
        let want = Expect {
            code: None,
            reason,
            secs: 2.0,
            rss_kib: 16 * 1024,
        };
        t.report(name, &r, &want, k);
    }

    // ---------------------------------------------------------- 2 GiB sparse modules
    let two_gib = 2u64 << 30;
    let mut elf = vec![0u8; 64];
    elf[..7].copy_from_slice(b"\x7fELF\x02\x01\x01");
    elf[16..18].copy_from_slice(&1u16.to_le_bytes()); // ET_REL
    elf[18..20].copy_from_slice(&62u16.to_le_bytes()); // x86-64
    elf[40..48].copy_from_slice(&0x7fff_0000u64.to_le_bytes()); // e_shoff near the end
    elf[58..60].copy_from_slice(&64u16.to_le_bytes()); // e_shentsize
    elf[60..62].copy_from_slice(&1000u16.to_le_bytes()); // e_shnum
    elf[62..64].copy_from_slice(&3u16.to_le_bytes()); // e_shstrndx
    let sparse_cases: [(&str, &[u8], &str); 5] = [
        ("zeros.ko", b"", "could not get modinfo"),
        ("elf.ko", &elf, "could not get modinfo"),
        ("big.ko.gz", &[0x1f, 0x8b, 8, 0], "could not get modinfo"),
        (
            "big.ko.xz",
            &[0xfd, b'7', b'z', b'X', b'Z', 0],
            "could not get modinfo",
        ),
        (
            "big.ko.zst",
            &[0x28, 0xb5, 0x2f, 0xfd],
            "could not get modinfo",
        ),
    ];
    for (file, head, reason) in sparse_cases {
        let p = work.join(file);
        sparse(&p, head, two_gib);
        let r = run(&em("modinfo", &[p.display().to_string()]), &work, limit);
        let want = Expect {
            code: Some(1),
            reason,
            secs: 1.0,
            rss_kib: 16 * 1024,
        };
        t.report(&format!("2 GiB sparse {file}, modinfo"), &r, &want, None);
        let _ = fs::remove_file(&p);
    }

    // ---------------------------------------------------------- decompression bombs
    // 300 MiB of zeros: over the 256 MiB bound; 200 MiB: under it (decoded,
    // then found not to be a module); a lying gzip ISIZE; zstd with and
    // without a recorded content size. Where the container gives no
    // trustworthy size (zstd without one; a gzip ISIZE over the bound, which
    // a cut file shows too), modinfo decodes up to the bound and stops: its
    // memory bound is the 256 MiB output bound. The loader never does that:
    // without a trustworthy size it refuses before decoding.
    let mib = 1u64 << 20;
    let bombs: [(&str, &[&str], u64, &str, u64); 6] = [
        (
            "bomb300.ko.gz",
            &["gzip", "-1"],
            300 * mib,
            "could not get modinfo",
            280 * 1024,
        ),
        (
            "bomb200.ko.gz",
            &["gzip", "-1"],
            200 * mib,
            "could not get modinfo",
            280 * 1024,
        ),
        (
            "bomb300.ko.xz",
            &["xz", "-0", "-T1", "--check=crc32"],
            300 * mib,
            "could not get modinfo",
            16 * 1024,
        ),
        (
            "bomb300-nosize.ko.zst",
            &["zstd", "-1", "-q"],
            300 * mib,
            "could not get modinfo",
            280 * 1024,
        ),
        (
            "bomb300-size.ko.zst",
            &["zstd", "-1", "-q", "--stream-size=314572800"],
            300 * mib,
            "could not get modinfo",
            16 * 1024,
        ),
        (
            "lying-isize.ko.gz",
            &["gzip", "-1"],
            300 * mib,
            "could not get modinfo",
            280 * 1024,
        ),
    ];
    for (file, cmd, zeros, reason, rss) in bombs {
        let p = work.join(file);
        if !compress(cmd, zeros, &p) {
            println!(
                "hostile FAIL {file}: could not make it with {}",
                cmd.join(" ")
            );
            t.cases += 1;
            t.failed += 1;
            continue;
        }
        if file.starts_with("lying") {
            // ISIZE says 4 KiB; the stream holds 300 MiB.
            let mut d = fs::read(&p).unwrap();
            let n = d.len();
            d[n - 4..].copy_from_slice(&4096u32.to_le_bytes());
            fs::write(&p, d).unwrap();
        }
        let size = fs::metadata(&p).map(|m| m.len()).unwrap_or(0);
        let r = run(&em("modinfo", &[p.display().to_string()]), &work, limit);
        let want = Expect {
            code: Some(1),
            reason,
            secs: 5.0,
            rss_kib: rss,
        };
        t.report(
            &format!(
                "bomb {file} ({} KiB -> {} MiB), modinfo",
                size >> 10,
                zeros >> 20
            ),
            &r,
            &want,
            None,
        );
        let _ = fs::remove_file(&p);
    }

    // ---------------------------------------------------------- names and sizes at and over bounds
    let n64 = "m".repeat(64);
    let n65 = "m".repeat(65);
    let alias_at = "a".repeat(1024);
    let alias_over = "a".repeat(1025);
    let dep = format!("kernel/x.ko:\nkernel/{n64}.ko:\nkernel/{n65}.ko:\n");
    let root = tree(&work, "bounds", &[("modules.dep", dep.into_bytes())]);
    let base = vec![
        s("-d"),
        root.display().to_string(),
        s("-S"),
        s(KVER),
        s("-C"),
        root.join("conf").display().to_string(),
    ];
    let conf = root.join("conf/bounds.conf");
    let aliases = |n: usize| {
        (0..n)
            .map(|i| format!("alias a{i} x\n"))
            .collect::<String>()
    };
    let bound_cases: Vec<BoundCase> = vec![
        (
            "module name of 64 bytes (MAX_NAME)",
            String::new(),
            vec![s("-D"), n64.clone()],
            Some(0),
            "",
        ),
        (
            "module name of 65 bytes",
            String::new(),
            vec![s("-D"), n65.clone()],
            Some(1),
            "not found",
        ),
        (
            "alias of 1024 bytes (MAX_ALIAS)",
            String::new(),
            vec![s("-D"), alias_at],
            Some(1),
            "not found",
        ),
        (
            "alias of 1025 bytes",
            String::new(),
            vec![s("-D"), alias_over],
            Some(1),
            "too long",
        ),
        (
            "512 config aliases (MAX_ALIASES)",
            aliases(512),
            vec![s("-D"), s("a511")],
            Some(0),
            "",
        ),
        (
            "513 config aliases: reported, the rest used",
            aliases(513),
            vec![s("-D"), s("x")],
            Some(0),
            "too many config aliases",
        ),
        (
            "4096-byte module options (MAX_PARAMS)",
            format!("options x p={}\n", "v".repeat(4000)),
            vec![s("-D"), s("x")],
            Some(0),
            "",
        ),
        (
            "5000-byte module options",
            format!("options x p={}\n", "v".repeat(5000)),
            vec![s("-D"), s("x")],
            Some(1),
            "too long",
        ),
        (
            "5000-byte command-line options",
            String::new(),
            vec![s("-D"), s("x"), format!("p={}", "v".repeat(5000))],
            Some(1),
            "too long",
        ),
    ];
    for (name, conf_text, q, code, reason) in bound_cases {
        fs::write(&conf, conf_text).unwrap();
        let mut args = base.clone();
        args.extend(q);
        let r = run(&em("modprobe", &args), &work, limit);
        let want = Expect {
            code,
            reason,
            secs: 2.0,
            rss_kib: 16 * 1024,
        };
        t.report(name, &r, &want, None);
    }

    let _ = fs::remove_dir_all(&work);
    println!(
        "hostile: {} cases, {} passed, {} failed",
        t.cases,
        t.cases - t.failed,
        t.failed
    );
    if t.failed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}
