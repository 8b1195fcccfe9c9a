//! Hostile inputs against the real binary, each run in its own child with a
//! wall-time limit and its peak RSS measured (`/usr/bin/time -f %M`):
//!
//! - corrupt and adversarial kmod indexes (`modules.{dep,alias,symbols,
//!   builtin,builtin.alias}.bin`): loops, chains deeper than the depth
//!   bound, shared subtrees with 255^40 paths, shared value nodes, long
//!   globs reached along many paths, absurd counts, bad child ranges,
//!   offsets past the end, truncation, empty files, bad magic and version;
//!   through exact lookups (`-D`, `modinfo NAME`), wildcard lookups (`-R`,
//!   `-D ALIAS`, `modinfo ALIAS`) and dumps (`-c`);
//! - 2 GiB sparse "modules" (zeros, ELF headers with far-away or hole-backed
//!   section tables, compressed magics followed by holes) through `modinfo
//!   FILE`, `modinfo NAME` and `modprobe -D` (nothing is ever loaded);
//! - decompression bombs (gzip with an honest, a lying and a 2^32-wrapped
//!   ISIZE, xz, zstd with and without a content size) through `modinfo`;
//! - names, sizes and counts at and over every bound: at the bound the run
//!   must succeed and, where kmod handles the same input, print exactly what
//!   kmod's `modprobe`/`modinfo` prints (stdout and exit code); one over, it
//!   must print exactly one error line naming the file or module and the
//!   limit — never a silent cut. An over-full config file is reported and
//!   the rest of the configuration used (kmod would have used it all).
//!
//! Every run must finish within its time bound and peak-RSS bound, exit as
//! stated, and never panic; a failing run prints exactly one line on stderr
//! with the stated parts. kmod gets the hostile index and sparse cases too,
//! for the record only (it loops, overflows its stack or runs for ever on
//! some; it runs under a 3 s timeout and a 4 GiB address-space limit).
//!
//!     hostile --earlymod out/earlymod-static [--kmod /usr/sbin/modprobe]
//!             [--kmod-modinfo /usr/sbin/modinfo] [--only TEXT] [--verbose]
//!             [--keep]

use earlymod_initrd::index_write::IndexBuilder;
use std::collections::HashMap;
use std::fs;
use std::io::Read;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};
use std::time::{Duration, Instant};

const KVER: &str = "9.9.9";
const MIB: u64 = 1 << 20;
/// Time bound of an ordinary case.
const SECS: f64 = 2.0;
/// Peak-RSS bound of an ordinary case, KiB (the static binary needs ~1 MiB).
const RSS: u64 = 16 * 1024;
/// Stdout kept per run (a hostile dump may be huge; the excess is counted).
const KEEP: usize = 64 << 20;

// ------------------------------------------------------------ hand-made indexes

const MAGIC: u32 = 0xB007_F457;
const VERSION: u32 = 0x0002_0001;
const PREFIX: u32 = 0x8000_0000;
const VALUES: u32 = 0x4000_0000;
const CHILDS: u32 = 0x2000_0000;
/// A child target that is not a node: an offset far past the end.
const NOWHERE: usize = usize::MAX;

/// One trie node of a hand-built index; `children` maps an arc byte to a
/// node (any node: loops and shared subtrees are expressible).
#[derive(Default, Clone)]
struct Node {
    prefix: Vec<u8>,
    children: Vec<(u8, usize)>,
    /// Overrides the child range the file declares (first, last).
    range: Option<(u8, u8)>,
    values: Vec<Vec<u8>>,
    /// Overrides the value count the file declares.
    count: Option<u32>,
}

impl Node {
    fn to(children: impl IntoIterator<Item = (u8, usize)>) -> Node {
        Node {
            children: children.into_iter().collect(),
            ..Default::default()
        }
    }

    fn leaf(value: &str) -> Node {
        Node {
            values: vec![value.as_bytes().to_vec()],
            ..Default::default()
        }
    }
}

/// Lays `nodes` out after the header, node 0 the root.
fn index(nodes: &[Node]) -> Vec<u8> {
    let size = |n: &Node| {
        let p = if n.prefix.is_empty() {
            0
        } else {
            n.prefix.len() + 1
        };
        let c = match arcs(n) {
            Some((lo, hi)) => 2 + 4 * (usize::from(hi - lo) + 1),
            None => 0,
        };
        let v = if n.values.is_empty() {
            0
        } else {
            4 + n.values.iter().map(|v| 5 + v.len()).sum::<usize>()
        };
        p + c + v
    };
    let mut offs = Vec::new();
    let mut at = 12;
    for n in nodes {
        offs.push(at);
        at += size(n);
    }
    let word = |i: usize| {
        if i == NOWHERE {
            return CHILDS | 0x0fff_fff0;
        }
        let n = &nodes[i];
        let mut w = offs[i] as u32;
        if !n.prefix.is_empty() {
            w |= PREFIX;
        }
        if !n.children.is_empty() {
            w |= CHILDS;
        }
        if !n.values.is_empty() {
            w |= VALUES;
        }
        w
    };
    let mut out = Vec::new();
    out.extend_from_slice(&MAGIC.to_be_bytes());
    out.extend_from_slice(&VERSION.to_be_bytes());
    out.extend_from_slice(&word(0).to_be_bytes());
    for n in nodes {
        if !n.prefix.is_empty() {
            out.extend_from_slice(&n.prefix);
            out.push(0);
        }
        if let Some((lo, hi)) = arcs(n) {
            out.extend_from_slice(&[n.range.map_or(lo, |r| r.0), n.range.map_or(hi, |r| r.1)]);
            for ch in lo..=hi {
                let w = n
                    .children
                    .iter()
                    .find(|c| c.0 == ch)
                    .map_or(0, |c| word(c.1));
                out.extend_from_slice(&w.to_be_bytes());
            }
        }
        if !n.values.is_empty() {
            let count = n.count.unwrap_or(n.values.len() as u32);
            out.extend_from_slice(&count.to_be_bytes());
            for v in &n.values {
                out.extend_from_slice(&0u32.to_be_bytes());
                out.extend_from_slice(v);
                out.push(0);
            }
        }
    }
    out
}

fn arcs(n: &Node) -> Option<(u8, u8)> {
    let lo = n.children.iter().map(|c| c.0).min()?;
    let hi = n.children.iter().map(|c| c.0).max()?;
    Some((lo, hi))
}

/// What a lookup through a hostile index must give.
#[derive(Clone, Copy)]
enum Out {
    /// Exit 1, one line: the name was not found (the walk legitimately
    /// ends: an exact lookup only follows its key).
    NotFound,
    /// Exit 1, one line naming the index file and containing one of the
    /// `|`-separated words.
    Fault(&'static str),
    /// No index at all, as kmod treats it: lookups find nothing (exit 1,
    /// "not found"), a dump succeeds; stdout and exit equal kmod's.
    Absent,
}

/// A hostile index: name, the file for a value `v`, and what exact
/// lookups, wildcard lookups and dumps must give.
struct Hostile {
    name: &'static str,
    make: fn(&str) -> Vec<u8>,
    exact: Out,
    wild: Out,
    dump: Out,
    /// The key wildcard lookups use (the alias query).
    key: String,
}

const LOOP: &str = "node budget|longer than 1024|deeper than";

fn hostile_indexes() -> Vec<Hostile> {
    vec![
        Hostile {
            name: "two-node cycle",
            make: |_| {
                index(&[
                    Node::to([(b'*', 1), (b'x', 1)]),
                    Node::to([(b'*', 0), (b'x', 0)]),
                ])
            },
            exact: Out::NotFound,
            wild: Out::Fault(LOOP),
            dump: Out::Fault(LOOP),
            key: "pci:v1".into(),
        },
        Hostile {
            name: "self-loop",
            make: |_| index(&[Node::to([(b'*', 0), (b'x', 0)])]),
            exact: Out::NotFound,
            wild: Out::Fault(LOOP),
            dump: Out::Fault(LOOP),
            key: "pci:v1".into(),
        },
        Hostile {
            name: "chain 1100 deep (> MAX_DEPTH)",
            make: |v| {
                let mut n: Vec<Node> = (0..1100)
                    .map(|i| Node::to([(b'*', i + 1), (b'x', i + 1)]))
                    .collect();
                n.push(Node::leaf(v));
                index(&n)
            },
            exact: Out::NotFound,
            wild: Out::Fault("longer than 1024|deeper than"),
            dump: Out::Fault("longer than 1024|deeper than"),
            key: "pci:v1".into(),
        },
        Hostile {
            name: "DAG 255 wide x 40 deep (255^40 paths)",
            make: |v| {
                let mut n: Vec<Node> = (0..40)
                    .map(|i| Node::to((1..=255u8).map(|c| (c, i + 1))))
                    .collect();
                n.push(Node::leaf(v));
                index(&n)
            },
            exact: Out::NotFound,
            wild: Out::Fault("node budget|too many modules matching one name (limit 32)"),
            dump: Out::Fault("node budget"),
            key: "pci:v1".into(),
        },
        Hostile {
            name: "DAG 255 x 255 onto one node of 20000 values",
            make: |v| {
                let mut leaf = Node::leaf(v);
                leaf.values = (0..20_000).map(|_| v.as_bytes().to_vec()).collect();
                index(&[
                    Node::to((1..=255u8).map(|c| (c, 1))),
                    Node::to((1..=255u8).map(|c| (c, 2))),
                    leaf,
                ])
            },
            exact: Out::NotFound,
            wild: Out::Fault("node budget|too many modules matching one name (limit 32)"),
            dump: Out::Fault("node budget"),
            key: "pci:v1".into(),
        },
        Hostile {
            name: "1000-byte glob reached along 65025 paths",
            make: |v| {
                let mut glob = Node::leaf(v);
                glob.prefix = format!("*{}b", "a".repeat(998)).into_bytes();
                index(&[
                    Node::to([(b'*', 1)]),
                    Node::to((1..=255u8).map(|c| (c, 2))),
                    Node::to((1..=255u8).map(|c| (c, 3))),
                    glob,
                ])
            },
            exact: Out::NotFound,
            wild: Out::Fault("node budget"),
            dump: Out::Fault("node budget"),
            key: "a".repeat(1000),
        },
        Hostile {
            name: "value count 2^32-1",
            make: |v| {
                let mut n = Node::leaf(v);
                n.count = Some(u32::MAX);
                index(&[Node::to([(b'*', 1), (b'x', 1)]), n])
            },
            exact: Out::Fault("absurd value count"),
            wild: Out::Fault("absurd value count"),
            dump: Out::Fault("absurd value count"),
            key: "pci:v1".into(),
        },
        Hostile {
            name: "child range first > last",
            make: |v| {
                let mut root = Node::to([(b'*', 1), (b'x', 1)]);
                root.range = Some((b'x', b'*'));
                index(&[root, Node::leaf(v)])
            },
            exact: Out::Fault("bad child range"),
            wild: Out::Fault("bad child range"),
            dump: Out::Fault("bad child range"),
            key: "pci:v1".into(),
        },
        Hostile {
            name: "root offset past the end",
            make: |v| {
                let mut d = index(&[Node::leaf(v)]);
                d[8..12].copy_from_slice(&(VALUES | 0x00ff_ffff).to_be_bytes());
                d
            },
            exact: Out::Fault("past end"),
            wild: Out::Fault("past end"),
            dump: Out::Fault("past end"),
            key: "pci:v1".into(),
        },
        Hostile {
            name: "child offsets past the end",
            make: |_| index(&[Node::to([(b'*', NOWHERE), (b'x', NOWHERE)])]),
            exact: Out::Fault("past end"),
            wild: Out::Fault("past end"),
            dump: Out::Fault("past end"),
            key: "pci:v1".into(),
        },
        Hostile {
            name: "unterminated prefix at the end",
            make: |_| {
                let mut n = Node::to([]);
                n.prefix = b"abc".to_vec();
                let mut d = index(&[Node::to([(b'*', 1), (b'x', 1)]), n]);
                d.pop();
                d
            },
            exact: Out::Fault("unterminated string"),
            wild: Out::Fault("unterminated string"),
            dump: Out::Fault("unterminated string"),
            key: "pci:v1".into(),
        },
        Hostile {
            name: "truncated after the root's child table",
            make: |v| {
                let mut b = IndexBuilder::new();
                for k in ["x", "pci:v*", "symbol:foo", "zz", "*"] {
                    b.insert(k.as_bytes(), v.as_bytes(), 0).unwrap();
                }
                let d = b.to_bytes().unwrap();
                d[..d.len() * 2 / 3].to_vec()
            },
            exact: Out::Fault("past end|unterminated"),
            wild: Out::Fault("past end|unterminated"),
            dump: Out::Fault("past end|unterminated"),
            key: "pci:v1".into(),
        },
        Hostile {
            name: "0-byte file",
            make: |_| Vec::new(),
            exact: Out::Absent,
            wild: Out::Absent,
            dump: Out::Absent,
            key: "pci:v1".into(),
        },
        Hostile {
            name: "bad magic",
            make: |v| {
                let mut d = index(&[Node::leaf(v)]);
                d[0] ^= 0xff;
                d
            },
            exact: Out::Fault("bad index magic"),
            wild: Out::Fault("bad index magic"),
            dump: Out::Fault("bad index magic"),
            key: "pci:v1".into(),
        },
        Hostile {
            name: "version 3",
            make: |v| {
                let mut d = index(&[Node::leaf(v)]);
                d[4..8].copy_from_slice(&0x0003_0000u32.to_be_bytes());
                d
            },
            exact: Out::Fault("unsupported index version"),
            wild: Out::Fault("unsupported index version"),
            dump: Out::Fault("unsupported index version"),
            key: "pci:v1".into(),
        },
    ]
}

// ------------------------------------------------------------ module trees

/// Valid index contents (built with the depmod-compatible writer).
#[derive(Default, Clone)]
struct Db {
    /// module name → dep line (`kernel/x.ko: kernel/y.ko`).
    dep: Vec<(String, String)>,
    /// alias pattern → module.
    alias: Vec<(String, String)>,
    /// `symbol:NAME` → module.
    symbols: Vec<(String, String)>,
    builtin: Vec<String>,
    builtin_alias: Vec<(String, String)>,
}

impl Db {
    /// Adds module `name` at `kernel/NAME.ko` with `deps` (module names).
    fn module(&mut self, name: &str, deps: &[&str]) -> &mut Db {
        let mut line = format!("kernel/{name}.ko:");
        for d in deps {
            line.push_str(&format!(" kernel/{d}.ko"));
        }
        self.dep.push((name.to_string(), line));
        self
    }
}

/// `ROOT/lib/modules/KVER` with its indexes, and a config directory.
struct Tree {
    root: PathBuf,
}

impl Tree {
    fn new(work: &Path, name: &str, db: &Db) -> Tree {
        let root = work.join(name);
        let _ = fs::remove_dir_all(&root);
        let t = Tree { root };
        fs::create_dir_all(t.dir().join("kernel")).unwrap();
        fs::create_dir_all(t.conf()).unwrap();
        let bin = |pairs: &[(String, String)]| {
            let mut b = IndexBuilder::new();
            for (i, (k, v)) in pairs.iter().enumerate() {
                // Priority: the module's rank, as depmod gives it.
                b.insert(k.as_bytes(), v.as_bytes(), i as u32).unwrap();
            }
            b.to_bytes().unwrap()
        };
        let builtin: Vec<(String, String)> = db
            .builtin
            .iter()
            .map(|n| (n.clone(), String::new()))
            .collect();
        t.write("modules.dep.bin", &bin(&db.dep));
        t.write("modules.alias.bin", &bin(&db.alias));
        t.write("modules.symbols.bin", &bin(&db.symbols));
        t.write("modules.builtin.bin", &bin(&builtin));
        t.write("modules.builtin.alias.bin", &bin(&db.builtin_alias));
        for (_, line) in &db.dep {
            let path = line.split(':').next().unwrap();
            let p = t.dir().join(path);
            if !p.exists() {
                fs::write(p, b"").unwrap();
            }
        }
        t
    }

    fn dir(&self) -> PathBuf {
        self.root.join("lib/modules").join(KVER)
    }

    fn conf(&self) -> PathBuf {
        self.root.join("conf")
    }

    fn write(&self, file: &str, data: &[u8]) {
        fs::write(self.dir().join(file), data).unwrap();
    }

    /// Replaces the config directory's contents with `files`.
    fn config(&self, files: &[(&str, String)]) {
        let _ = fs::remove_dir_all(self.conf());
        fs::create_dir_all(self.conf()).unwrap();
        for (n, text) in files {
            fs::write(self.conf().join(n), text).unwrap();
        }
    }

    /// `modprobe -d ROOT -S KVER -C CONF` + `rest`.
    fn modprobe(&self, rest: &[String]) -> Vec<String> {
        let mut v = vec![
            "-d".into(),
            self.root.display().to_string(),
            "-S".into(),
            KVER.into(),
            "-C".into(),
            self.conf().display().to_string(),
        ];
        v.extend(rest.iter().cloned());
        v
    }

    /// `modinfo -b ROOT -k KVER` + `rest`.
    fn modinfo(&self, rest: &[String]) -> Vec<String> {
        let mut v = vec![
            "-b".into(),
            self.root.display().to_string(),
            "-k".into(),
            KVER.into(),
        ];
        v.extend(rest.iter().cloned());
        v
    }
}

fn sv(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| s.to_string()).collect()
}

/// A file of `len` bytes: `head`, then a hole.
fn sparse(path: &Path, head: &[u8], len: u64) {
    fs::write(path, head).unwrap();
    fs::OpenOptions::new()
        .write(true)
        .open(path)
        .unwrap()
        .set_len(len)
        .unwrap();
}

/// `cmd` fed `zeros` zero bytes (through a pipe, so it cannot know the
/// size unless told), its output to `out`.
fn compress(cmd: &str, zeros: u64, out: &Path) -> bool {
    Command::new("sh")
        .arg("-c")
        .arg(format!(
            "head -c {zeros} /dev/zero | {cmd} > '{}'",
            out.display()
        ))
        .status()
        .is_ok_and(|s| s.success())
}

/// A valid gzip file of 4 GiB + 4 KiB of zeros (so its ISIZE, the size
/// modulo 2^32, says 4096) in ~4 MB: one sync-flushed deflate chunk of
/// 64 MiB of zeros repeated (every chunk refers only to zeros), an empty
/// final block, the true CRC32. Made by python3's zlib in a few seconds.
fn wrapped_gzip(out: &Path) -> bool {
    let py = r#"
import sys, zlib, struct
M = 64 << 20
z = bytes(M)
c = zlib.compressobj(9, zlib.DEFLATED, -15)
chunk = c.compress(z) + c.flush(zlib.Z_SYNC_FLUSH)
c = zlib.compressobj(9, zlib.DEFLATED, -15)
tail = c.compress(bytes(4096)) + c.flush(zlib.Z_FINISH)
crc = 0
for _ in range(64):
    crc = zlib.crc32(z, crc)
crc = zlib.crc32(bytes(4096), crc)
total = 64 * M + 4096
with open(sys.argv[1], "wb") as f:
    f.write(b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\x03")
    for _ in range(64):
        f.write(chunk)
    f.write(tail)
    f.write(struct.pack("<II", crc, total & 0xffffffff))
"#;
    Command::new("python3")
        .arg("-c")
        .arg(py)
        .arg(out)
        .status()
        .is_ok_and(|s| s.success())
}

// ------------------------------------------------------------ running

struct Run {
    code: Option<i32>,
    stdout: Vec<u8>,
    /// Stdout bytes beyond what was kept.
    stdout_more: u64,
    stderr: String,
    secs: f64,
    rss_kib: Option<u64>,
    timed_out: bool,
}

/// Runs `argv` under `/usr/bin/time` (peak RSS to a side file), optionally
/// under `prlimit --as=LIMIT`, killing its process group after `timeout`.
fn run(
    argv: &[String],
    env: &[(String, String)],
    work: &Path,
    timeout: Duration,
    as_limit: Option<u64>,
) -> Run {
    static SEQ: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let rss_file = work.join(format!(
        "rss.{}",
        SEQ.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
    ));
    let _ = fs::remove_file(&rss_file);
    let mut cmd = Command::new("/usr/bin/time");
    cmd.arg("-f").arg("%M").arg("-o").arg(&rss_file);
    if let Some(l) = as_limit {
        cmd.arg("prlimit").arg(format!("--as={l}")).arg("--");
    }
    cmd.args(argv)
        .env("LC_ALL", "C")
        .env_remove("MODPROBE_OPTIONS")
        .envs(env.iter().map(|(k, v)| (k, v)))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0);
    let t0 = Instant::now();
    let mut child = cmd.spawn().expect("spawn /usr/bin/time");
    let drain = |mut r: Box<dyn Read + Send>| {
        std::thread::spawn(move || {
            let (mut kept, mut more) = (Vec::new(), 0u64);
            let mut buf = vec![0u8; 1 << 16];
            loop {
                match r.read(&mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(n) if kept.len() + n <= KEEP => kept.extend_from_slice(&buf[..n]),
                    Ok(n) => more += n as u64,
                }
            }
            (kept, more)
        })
    };
    let out = drain(Box::new(child.stdout.take().unwrap()));
    let err = drain(Box::new(child.stderr.take().unwrap()));
    let mut timed_out = false;
    let status = loop {
        if let Some(s) = child.try_wait().expect("wait") {
            break s;
        }
        if t0.elapsed() > timeout {
            let _ = Command::new("kill")
                .args(["-KILL", "--", &format!("-{}", child.id())])
                .status();
            timed_out = true;
            break child.wait().expect("wait");
        }
        std::thread::sleep(Duration::from_millis(2));
    };
    let secs = t0.elapsed().as_secs_f64();
    let (stdout, stdout_more) = out.join().unwrap();
    let (stderr, _) = err.join().unwrap();
    let time_out = fs::read_to_string(&rss_file).unwrap_or_default();
    let _ = fs::remove_file(&rss_file);
    // GNU time writes "Command terminated by signal N" or "Command exited
    // with non-zero status N" before the figure.
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
        stdout,
        stdout_more,
        stderr: String::from_utf8_lossy(&stderr).into_owned(),
        secs,
        rss_kib,
        timed_out,
    }
}

fn describe(r: &Run) -> String {
    if r.timed_out {
        return format!("killed after {:.1} s (timeout)", r.secs);
    }
    let rss = r.rss_kib.map_or("?".into(), |k| k.to_string());
    match r.code {
        Some(c) => format!("exit {c}, {:.2} s, {rss} KiB", r.secs),
        None => format!("killed by a signal after {:.2} s, {rss} KiB", r.secs),
    }
}

/// How kmod takes part in a case.
enum Kmod {
    /// Not at all.
    No,
    /// Run for the record (any outcome), under a timeout and memory limit.
    Record,
    /// Must print the same stdout and exit with the same code.
    Same,
    /// kmod's stdout, less these lines (once each), must equal ours; exit
    /// codes equal. (What earlymod reports and leaves out over a bound.)
    SameWithout(Vec<String>),
}

/// What a run must show.
struct Expect {
    code: i32,
    /// None: stderr must be empty. Some(parts): exactly one line, holding
    /// every part (a part may list `|`-separated alternatives).
    err: Option<Vec<String>>,
    secs: f64,
    rss_kib: u64,
    kmod: Kmod,
    /// Compare with kmod 34 instead of the machine's kmod 30 (where the
    /// two differ by design, earlymod follows 34: weakdep).
    kmod34: bool,
}

impl Expect {
    fn ok(kmod: Kmod) -> Expect {
        Expect {
            code: 0,
            err: None,
            secs: SECS,
            rss_kib: RSS,
            kmod,
            kmod34: false,
        }
    }

    fn fail(parts: &[&str], kmod: Kmod) -> Expect {
        Expect {
            code: 1,
            err: Some(sv(parts)),
            secs: SECS,
            rss_kib: RSS,
            kmod,
            kmod34: false,
        }
    }

    /// Exit 0 with exactly one error line (reported, and the work went on).
    fn reported(parts: &[&str], kmod: Kmod) -> Expect {
        Expect {
            code: 0,
            ..Expect::fail(parts, kmod)
        }
    }

    /// Compared with kmod 34 (see [`Expect::kmod34`]).
    fn vs_kmod34(mut self) -> Expect {
        self.kmod34 = true;
        self
    }

    fn limits(mut self, secs: f64, rss_mib: u64) -> Expect {
        self.secs = secs;
        self.rss_kib = rss_mib * 1024;
        self
    }
}

struct Case {
    name: String,
    applet: &'static str,
    args: Vec<String>,
    env: Vec<(String, String)>,
    want: Expect,
}

fn case(name: impl Into<String>, applet: &'static str, args: Vec<String>, want: Expect) -> Case {
    Case {
        name: name.into(),
        applet,
        args,
        env: Vec::new(),
        want,
    }
}

struct Harness {
    earlymod: PathBuf,
    kmod: HashMap<&'static str, PathBuf>,
    work: PathBuf,
    only: Option<String>,
    verbose: bool,
    cases: usize,
    failed: Vec<String>,
    /// The applets the binary has (a build without `modinfo` skips its
    /// cases, counted in `skipped`).
    applets: Vec<String>,
    skipped: usize,
}

impl Harness {
    fn check(&mut self, c: Case) {
        if self
            .only
            .as_ref()
            .is_some_and(|o| !c.name.contains(o.as_str()))
        {
            return;
        }
        if !self.applets.iter().any(|a| a == c.applet) {
            self.skipped += 1;
            return;
        }
        self.cases += 1;
        let mut argv = vec![self.earlymod.display().to_string(), c.applet.to_string()];
        argv.extend(c.args.iter().cloned());
        let limit = Duration::from_secs_f64((c.want.secs * 4.0).max(10.0));
        let r = run(&argv, &c.env, &self.work, limit, None);
        let mut bad = problems(&r, &c.want);
        let kmod_key = if c.want.kmod34 {
            "modprobe34"
        } else {
            c.applet
        };
        let kmod_bin = self.kmod.get(kmod_key).filter(|p| p.is_file());
        if kmod_bin.is_none() && c.want.kmod34 && !matches!(c.want.kmod, Kmod::No) {
            bad.push("kmod 34 is missing (scripts/setup.sh unpacks it)".into());
        }
        let mut note = String::new();
        if let Some(k) = kmod_bin {
            let mut kargv = vec![k.display().to_string()];
            kargv.extend(c.args.iter().cloned());
            match &c.want.kmod {
                Kmod::No => {}
                Kmod::Record => {
                    let kr = run(
                        &kargv,
                        &c.env,
                        &self.work,
                        Duration::from_secs(3),
                        Some(4 << 30),
                    );
                    note = format!("; kmod: {}", describe(&kr));
                }
                Kmod::Same | Kmod::SameWithout(_) => {
                    let kr = run(&kargv, &c.env, &self.work, Duration::from_secs(20), None);
                    let mut want = kr.stdout.clone();
                    if let Kmod::SameWithout(lines) = &c.want.kmod {
                        want = without(&want, lines);
                    }
                    if kr.code != r.code {
                        bad.push(format!("exit {:?}, kmod {:?}", r.code, kr.code));
                    }
                    if want != r.stdout {
                        bad.push(first_difference(&want, &r.stdout));
                    }
                    note = "; stdout as kmod's".into();
                    if matches!(c.want.kmod, Kmod::SameWithout(_)) {
                        note.push_str(" (less the lines over the bound)");
                    }
                }
            }
        } else if !matches!(c.want.kmod, Kmod::No | Kmod::Record) {
            bad.push(format!("no kmod {} to compare with", c.applet));
        }
        let line = r.stderr.lines().find(|l| !l.is_empty()).unwrap_or("");
        if bad.is_empty() {
            println!("hostile ok   {}: {}{note}", c.name, describe(&r));
            if self.verbose && !line.is_empty() {
                println!("             {line}");
            }
        } else {
            println!("hostile FAIL {}: {}{note}", c.name, describe(&r));
            for b in &bad {
                println!("             {b}");
            }
            let err: String = r.stderr.chars().take(600).collect();
            println!("             stderr: {err:?}");
            self.failed.push(c.name);
        }
    }
}

/// What is wrong with run `r` given `want`.
fn problems(r: &Run, want: &Expect) -> Vec<String> {
    let mut bad = Vec::new();
    if r.timed_out || r.code.is_none() {
        bad.push(describe(r));
    }
    if let Some(c) = r.code.filter(|&c| c != want.code) {
        bad.push(format!("exit {c}, want {}", want.code));
    }
    let lines: Vec<&str> = r.stderr.lines().filter(|l| !l.is_empty()).collect();
    match &want.err {
        None if !lines.is_empty() => bad.push(format!("stderr not empty: {lines:?}")),
        None => {}
        Some(_) if lines.len() != 1 => {
            bad.push(format!("{} stderr lines, want exactly 1", lines.len()))
        }
        Some(parts) => {
            for p in parts {
                if !p.split('|').any(|alt| lines[0].contains(alt)) {
                    bad.push(format!("error line lacks {p:?}"));
                }
            }
        }
    }
    for panic in ["panicked", "internal error", "RUST_BACKTRACE", "overflow"] {
        if r.stderr.contains(panic) {
            bad.push(format!("stderr says {panic:?}"));
        }
    }
    if r.secs > want.secs {
        bad.push(format!("{:.2} s > {} s", r.secs, want.secs));
    }
    match r.rss_kib {
        Some(k) if k > want.rss_kib => bad.push(format!("peak RSS {k} KiB > {}", want.rss_kib)),
        None => bad.push("no peak-RSS figure".into()),
        _ => {}
    }
    if r.stdout_more > 0 {
        bad.push(format!("stdout over {} MiB", KEEP >> 20));
    }
    bad
}

/// `out` without one occurrence of each of `lines`.
fn without(out: &[u8], lines: &[String]) -> Vec<u8> {
    let text = String::from_utf8_lossy(out);
    let mut keep: Vec<&str> = text.split_inclusive('\n').collect();
    for l in lines {
        if let Some(i) = keep.iter().position(|k| k.trim_end_matches('\n') == l) {
            keep.remove(i);
        }
    }
    keep.concat().into_bytes()
}

fn first_difference(want: &[u8], got: &[u8]) -> String {
    let w = String::from_utf8_lossy(want);
    let g = String::from_utf8_lossy(got);
    let wl: Vec<&str> = w.lines().collect();
    let gl: Vec<&str> = g.lines().collect();
    let i = wl
        .iter()
        .zip(&gl)
        .position(|(a, b)| a != b)
        .unwrap_or(wl.len().min(gl.len()));
    let cut = |s: Option<&&str>| s.map(|s| s.chars().take(160).collect::<String>());
    format!(
        "stdout differs from kmod's at line {} ({} vs {} lines): kmod {:?}, ours {:?}",
        i + 1,
        wl.len(),
        gl.len(),
        cut(wl.get(i)),
        cut(gl.get(i)),
    )
}

// ------------------------------------------------------------ the cases

fn index_cases(h: &mut Harness) {
    let base = {
        let mut db = Db::default();
        db.module("x", &[]);
        db.alias.push(("pci:v*".into(), "x".into()));
        db.symbols.push(("symbol:foo".into(), "x".into()));
        db.builtin.push("bi".into());
        db
    };
    for (i, hs) in hostile_indexes().into_iter().enumerate() {
        // file, value, queries: (label, applet, args, kind).
        #[derive(Clone, Copy)]
        enum Kind {
            Exact,
            Wild,
            Dump,
        }
        type Query = (&'static str, &'static str, Vec<String>, Kind);
        let key = hs.key.to_string();
        let sets: [(&str, &str, Vec<Query>); 5] = [
            (
                "modules.dep.bin",
                "kernel/x.ko:",
                vec![
                    ("-D x", "modprobe", sv(&["-D", "x"]), Kind::Exact),
                    ("modinfo x", "modinfo", sv(&["x"]), Kind::Exact),
                    // Removal looks the name up first (nothing is removed:
                    // no module x is loaded).
                    ("-r x", "modprobe", sv(&["-r", "x"]), Kind::Exact),
                ],
            ),
            (
                "modules.alias.bin",
                "x",
                vec![
                    ("-R", "modprobe", vec!["-R".into(), key.clone()], Kind::Wild),
                    (
                        "-D alias",
                        "modprobe",
                        vec!["-D".into(), key.clone()],
                        Kind::Wild,
                    ),
                    ("-c", "modprobe", sv(&["-c"]), Kind::Dump),
                    ("modinfo alias", "modinfo", vec![key.clone()], Kind::Wild),
                ],
            ),
            (
                "modules.symbols.bin",
                "x",
                vec![
                    (
                        "-R symbol:",
                        "modprobe",
                        sv(&["-R", "symbol:foo"]),
                        Kind::Wild,
                    ),
                    ("-c", "modprobe", sv(&["-c"]), Kind::Dump),
                ],
            ),
            (
                "modules.builtin.bin",
                "",
                vec![(
                    "-D (builtin lookup)",
                    "modprobe",
                    sv(&["-D", "xyz"]),
                    Kind::Exact,
                )],
            ),
            (
                "modules.builtin.alias.bin",
                "x",
                vec![(
                    "-R (builtin alias lookup)",
                    "modprobe",
                    sv(&["-R", "zz"]),
                    Kind::Wild,
                )],
            ),
        ];
        for (j, (file, value, queries)) in sets.into_iter().enumerate() {
            let t = Tree::new(&h.work, &format!("idx{i}-{j}"), &base);
            t.write(file, &(hs.make)(value));
            for (q, (label, applet, args, kind)) in queries.into_iter().enumerate() {
                let args = match applet {
                    "modprobe" => t.modprobe(&args),
                    _ => t.modinfo(&args),
                };
                let out = match kind {
                    Kind::Exact => hs.exact,
                    Kind::Wild => hs.wild,
                    Kind::Dump => hs.dump,
                };
                // kmod for the record: once per index file and structure.
                let kmod = if q == 0 && j < 2 {
                    Kmod::Record
                } else {
                    Kmod::No
                };
                let want = match out {
                    Out::NotFound => Expect::fail(&["not found"], kmod),
                    Out::Fault(words) => Expect::fail(&[file, words], kmod),
                    Out::Absent => match kind {
                        Kind::Dump => Expect::ok(Kmod::Same),
                        _ => Expect::fail(&["not found"], Kmod::Same),
                    },
                };
                h.check(case(
                    format!("{file}: {}, {label}", hs.name),
                    applet,
                    args,
                    want,
                ));
            }
        }
    }
}

fn sparse_cases(h: &mut Harness) {
    let two_gib = 2u64 << 30;
    let elf_head = |shoff: u64, shnum: u16| {
        let mut e = vec![0u8; 64];
        e[..7].copy_from_slice(b"\x7fELF\x02\x01\x01");
        e[16..18].copy_from_slice(&1u16.to_le_bytes()); // ET_REL
        e[18..20].copy_from_slice(&62u16.to_le_bytes()); // x86-64
        e[40..48].copy_from_slice(&shoff.to_le_bytes());
        e[58..60].copy_from_slice(&64u16.to_le_bytes());
        e[60..62].copy_from_slice(&shnum.to_le_bytes());
        e[62..64].copy_from_slice(&1u16.to_le_bytes());
        e
    };
    let dir = h.work.join("sparse");
    fs::create_dir_all(&dir).unwrap();
    let files: Vec<(&str, Vec<u8>)> = vec![
        ("zeros.ko", Vec::new()),
        // Section headers 1 TiB away.
        ("elf-far.ko", elf_head(1 << 40, 1000)),
        // Section headers inside the file, in the hole: all zero.
        ("elf-holes.ko", elf_head(two_gib - 64 * 100, 100)),
        ("big.ko.gz", vec![0x1f, 0x8b, 8, 0]),
        ("big.ko.xz", vec![0xfd, b'7', b'z', b'X', b'Z', 0]),
        ("big.ko.zst", vec![0x28, 0xb5, 0x2f, 0xfd]),
    ];
    for (f, head) in &files {
        let p = dir.join(f);
        sparse(&p, head, two_gib);
        let stem = f.split('.').next().unwrap().replace('-', "_");
        h.check(case(
            format!("2 GiB sparse {f}: modinfo FILE"),
            "modinfo",
            vec![p.display().to_string()],
            Expect::fail(
                &[
                    &format!("'{stem}'"),
                    "File too large (2048 MiB: a kernel module is at most 256 MiB)",
                ],
                if *f == "elf-holes.ko" {
                    Kmod::No
                } else {
                    Kmod::Record
                },
            ),
        ));
    }
    // The same files as modules of a tree: resolution never reads them.
    let mut db = Db::default();
    db.module("zeros", &[]).module("big", &["zeros"]);
    let t = Tree::new(&h.work, "sparse-tree", &db);
    sparse(&t.dir().join("kernel/zeros.ko"), b"", two_gib);
    sparse(
        &t.dir().join("kernel/big.ko"),
        &elf_head(1 << 40, 1000),
        two_gib,
    );
    h.check(case(
        "2 GiB sparse modules in a tree: modprobe -D big",
        "modprobe",
        t.modprobe(&sv(&["-D", "big"])),
        Expect::ok(Kmod::Same),
    ));
    h.check(case(
        "2 GiB sparse modules in a tree: modprobe --show-depends -a big zeros",
        "modprobe",
        t.modprobe(&sv(&["--show-depends", "-a", "big", "zeros"])),
        Expect::ok(Kmod::Same),
    ));
    h.check(case(
        "2 GiB sparse modules in a tree: modinfo -F filename big",
        "modinfo",
        t.modinfo(&sv(&["-F", "filename", "big"])),
        Expect::ok(Kmod::Same),
    ));
    h.check(case(
        "2 GiB sparse modules in a tree: modinfo big",
        "modinfo",
        t.modinfo(&sv(&["big"])),
        Expect::fail(&["'big'", "File too large"], Kmod::No),
    ));
    for (f, _) in &files {
        let _ = fs::remove_file(dir.join(f));
    }
}

/// Things that are not regular files where files are expected: a
/// directory or a FIFO as an index, a FIFO as a config file and as a
/// module. Nothing may block (kmod blocks on the FIFOs for ever).
fn special_cases(h: &mut Harness) {
    let mkfifo = |p: &Path| {
        let _ = fs::remove_file(p);
        Command::new("mkfifo")
            .arg(p)
            .status()
            .is_ok_and(|s| s.success())
    };
    let mut db = Db::default();
    db.module("x", &[]).module("fifo", &[]);
    db.alias.push(("pci:v*".into(), "x".into()));

    let t = Tree::new(&h.work, "special-dir", &db);
    fs::remove_file(t.dir().join("modules.dep.bin")).unwrap();
    fs::create_dir(t.dir().join("modules.dep.bin")).unwrap();
    h.check(case(
        "modules.dep.bin is a directory: -D x",
        "modprobe",
        t.modprobe(&sv(&["-D", "x"])),
        Expect::fail(&["modules.dep.bin: not a regular file"], Kmod::Record),
    ));

    // A FIFO as an index and as a module file.
    let t = Tree::new(&h.work, "special-fifo", &db);
    fs::remove_file(t.dir().join("kernel/fifo.ko")).unwrap();
    if !mkfifo(&t.dir().join("modules.alias.bin")) || !mkfifo(&t.dir().join("kernel/fifo.ko")) {
        println!("hostile FAIL special files: mkfifo failed");
        h.cases += 1;
        h.failed.push("mkfifo".into());
        return;
    }
    h.check(case(
        "modules.alias.bin is a FIFO: -R pci:v1",
        "modprobe",
        t.modprobe(&sv(&["-R", "pci:v1"])),
        Expect::fail(&["modules.alias.bin: not a regular file"], Kmod::Record),
    ));
    h.check(case(
        "a module is a FIFO: modprobe -D fifo (not read)",
        "modprobe",
        t.modprobe(&sv(&["-D", "fifo"])),
        Expect::ok(Kmod::No),
    ));
    h.check(case(
        "a module is a FIFO: modinfo fifo",
        "modinfo",
        t.modinfo(&sv(&["fifo"])),
        Expect::fail(
            &["could not get modinfo from 'fifo'", "(not a regular file)"],
            Kmod::No,
        ),
    ));
    // A FIFO as a config file: reported, the rest used.
    let t = Tree::new(&h.work, "special-conf", &db);
    t.config(&[("a.conf", "options x p=1\n".into())]);
    mkfifo(&t.conf().join("fifo.conf"));
    let conf = t.conf().join("fifo.conf").display().to_string();
    h.check(case(
        "a config file is a FIFO: -D x (reported, the rest used)",
        "modprobe",
        t.modprobe(&sv(&["-D", "x"])),
        Expect::reported(&[&conf, "not a regular file, not read"], Kmod::Record),
    ));
}

fn bomb_cases(h: &mut Harness) {
    let dir = h.work.join("bombs");
    fs::create_dir_all(&dir).unwrap();
    let over = "decompresses to more than 256 MiB";
    // (file, how, zeros, what the error says, RSS bound MiB, time bound s)
    type Bomb = (&'static str, &'static str, u64, &'static str, u64, f64);
    let bombs: [Bomb; 9] = [
        ("gzip-260m.ko.gz", "gzip -1", 260 * MIB, over, 16, 5.0),
        (
            "gzip-lying-isize.ko.gz",
            "gzip -1",
            260 * MIB,
            over,
            16,
            5.0,
        ),
        ("gzip-wrapped-isize.ko.gz", "", 0, over, 16, 5.0),
        // Under the bound: decoded (the memory is the true size), then
        // found not to be a module.
        (
            "gzip-200m.ko.gz",
            "gzip -1",
            200 * MIB,
            "Exec format error",
            216,
            5.0,
        ),
        (
            "xz-1g.ko.xz",
            "xz -0 -T1 --check=crc32",
            1 << 30,
            over,
            16,
            2.0,
        ),
        (
            "zstd-300m-nosize.ko.zst",
            "zstd -1 -q",
            300 * MIB,
            // kmod 34: a .ko.zst must record its size.
            "Failed to determine decompression size",
            16,
            5.0,
        ),
        (
            "zstd-1g-size.ko.zst",
            "zstd -1 -q --stream-size=1073741824",
            1 << 30,
            over,
            16,
            2.0,
        ),
        // A frame that claims 4 KiB and holds 300 MiB.
        (
            "zstd-lying-size.ko.zst",
            "zstd -1 -q --stream-size=314572800",
            300 * MIB,
            over,
            16,
            5.0,
        ),
        (
            "zstd-1g-nosize.ko.zst",
            "zstd -1 -q",
            1 << 30,
            // kmod 34: a .ko.zst must record its size.
            "Failed to determine decompression size",
            16,
            5.0,
        ),
    ];
    for (file, how, zeros, reason, rss, secs) in bombs {
        if h.only
            .as_ref()
            .is_some_and(|o| !file.contains(o.as_str()) && !"bomb".contains(o.as_str()))
        {
            continue;
        }
        let p = dir.join(file);
        let made = if file == "gzip-wrapped-isize.ko.gz" {
            wrapped_gzip(&p)
        } else {
            compress(how, zeros, &p)
        };
        if !made {
            println!("hostile FAIL bomb {file}: could not make it ({how})");
            h.cases += 1;
            h.failed.push(file.into());
            continue;
        }
        let mut d = fs::read(&p).unwrap();
        if file == "gzip-lying-isize.ko.gz" {
            // ISIZE says 4 KiB; the stream holds 300 MiB.
            let n = d.len();
            d[n - 4..].copy_from_slice(&4096u32.to_le_bytes());
            fs::write(&p, &d).unwrap();
        }
        if file == "zstd-lying-size.ko.zst" {
            // Frame_Content_Size (4 bytes after the header byte and the
            // window descriptor) says 4096.
            let fhd = d[4];
            assert_eq!(fhd >> 6, 2, "4-byte content size expected");
            let at = 5 + usize::from(fhd & 0x20 == 0);
            d[at..at + 4].copy_from_slice(&4096u32.to_le_bytes());
            fs::write(&p, &d).unwrap();
        }
        let stem = file.split('.').next().unwrap().replace('-', "_");
        let size = d.len() >> 10;
        h.check(case(
            format!("bomb {file} ({size} KiB): modinfo FILE"),
            "modinfo",
            vec![p.display().to_string()],
            Expect::fail(&[&format!("'{stem}'"), reason], Kmod::No).limits(secs, rss),
        ));
        if file == "gzip-260m.ko.gz" {
            // The same bomb as a module of a tree, by name.
            let mut db = Db::default();
            db.dep.push(("bomb".into(), "kernel/bomb.ko.gz:".into()));
            let t = Tree::new(&h.work, "bomb-tree", &db);
            fs::copy(&p, t.dir().join("kernel/bomb.ko.gz")).unwrap();
            h.check(case(
                "bomb gzip-260m.ko.gz in a tree: modinfo bomb",
                "modinfo",
                t.modinfo(&sv(&["bomb"])),
                Expect::fail(&["'bomb'", over], Kmod::No).limits(secs, rss),
            ));
            h.check(case(
                "bomb gzip-260m.ko.gz in a tree: modprobe -D bomb",
                "modprobe",
                t.modprobe(&sv(&["-D", "bomb"])),
                Expect::ok(Kmod::Same),
            ));
        }
        let _ = fs::remove_file(&p);
    }
}

/// Names, sizes and counts at and over every bound.
fn bound_cases(h: &mut Harness) {
    let m64 = "m".repeat(64);
    let m65 = "m".repeat(65);
    let a1024 = "a".repeat(1024);
    let a1025 = "a".repeat(1025);
    let mut db = Db::default();
    db.module("x", &[]).module("y", &[]);
    db.module(&m64, &[]).module(&m65, &[]);
    db.module("needs65", &[&m65]);
    db.alias.push((a1024.clone(), "x".into()));
    // 191 dependencies: a probe list of 192 entries (MAX_STEPS); 192: one over.
    let deps: Vec<String> = (0..192).map(|i| format!("d{i}")).collect();
    for d in &deps {
        db.module(d, &[]);
    }
    let refs: Vec<&str> = deps.iter().map(String::as_str).collect();
    db.module("steps192", &refs[..191]);
    db.module("steps193", &refs[..192]);
    // 32 and 33 modules matching one alias (MAX_CANDIDATES).
    for i in 0..33 {
        let key = if i < 32 { "match32:*" } else { "match33:*" };
        db.alias.push((key.into(), format!("d{i}")));
    }
    for i in 0..32 {
        db.alias.push(("match33:*".into(), format!("d{i}")));
    }
    // A 128-byte (normalized) alias, for softdep names (MAX_SOFTDEP_NAME).
    let long128 = format!("y_{}", "z".repeat(126));
    let long129 = format!("y_{}", "z".repeat(127));
    db.alias.push((long128.clone(), "y".into()));
    db.alias.push((long129.clone(), "y".into()));
    // Softdep chain modules s0..s20.
    for i in 0..21 {
        db.module(&format!("s{i}"), &[]);
    }
    let t = Tree::new(&h.work, "bounds", &db);
    let mp = |rest: &[&str]| t.modprobe(&sv(rest));

    // -- module name (MAX_NAME = 64; the kernel's MODULE_NAME_LEN is 56).
    t.config(&[]);
    h.check(case(
        "module name of 64 bytes (MAX_NAME): -D",
        "modprobe",
        mp(&["-D", &m64]),
        Expect::ok(Kmod::Same),
    ));
    h.check(case(
        "module name of 64 bytes (MAX_NAME): modinfo -F filename",
        "modinfo",
        t.modinfo(&sv(&["-F", "filename", &m64])),
        Expect::ok(Kmod::Same),
    ));
    h.check(case(
        "module name of 65 bytes: -D",
        "modprobe",
        mp(&["-D", &m65]),
        Expect::fail(&[&m65, "module name too long (limit 64 bytes)"], Kmod::No),
    ));
    h.check(case(
        "module name of 65 bytes: modinfo",
        "modinfo",
        t.modinfo(&sv(&[&m65])),
        Expect::fail(&[&m65, "module name too long (limit 64 bytes)"], Kmod::No),
    ));
    h.check(case(
        "dependency with a 65-byte name: -D",
        "modprobe",
        mp(&["-D", "needs65"]),
        Expect::fail(
            &[
                "could not insert 'needs65'",
                "module name too long (limit 64 bytes)",
            ],
            Kmod::No,
        ),
    ));

    // -- alias (MAX_ALIAS = 1024) and index keys (MAX_PATTERN = 1024).
    h.check(case(
        "alias of 1024 bytes (MAX_ALIAS): -R",
        "modprobe",
        mp(&["-R", &a1024]),
        Expect::ok(Kmod::Same),
    ));
    h.check(case(
        "alias of 1024 bytes (MAX_ALIAS): -D",
        "modprobe",
        mp(&["-D", &a1024]),
        Expect::ok(Kmod::Same),
    ));
    h.check(case(
        "alias of 1025 bytes: -R",
        "modprobe",
        mp(&["-R", &a1025]),
        Expect::fail(
            &[
                "could not look up 'aaaa",
                "(1025 bytes)",
                "alias too long (limit 1024 bytes)",
            ],
            Kmod::No,
        ),
    ));
    h.check(case(
        "alias of 1025 bytes: modinfo",
        "modinfo",
        t.modinfo(&sv(&[&a1025])),
        Expect::fail(
            &[
                "could not look up 'aaaa",
                "alias too long (limit 1024 bytes)",
            ],
            Kmod::No,
        ),
    ));
    // A 1024-byte key under `*` (walked by every wildcard lookup and the
    // dump: MAX_PATTERN), and keys b, bb, ... making a trie 256 levels deep
    // (MAX_DEPTH); then one more.
    for (what, bound) in [("key of", 1024usize), ("trie depth", 256)] {
        for n in [bound, bound + 1] {
            let mut b = IndexBuilder::new();
            if what == "key of" {
                b.insert(format!("*{}", "k".repeat(n - 1)).as_bytes(), b"x", 0)
                    .unwrap();
            } else {
                for l in 1..=n {
                    b.insert("b".repeat(l).as_bytes(), b"y", 1).unwrap();
                }
            }
            let t2 = Tree::new(&h.work, &format!("keys{n}"), &Db::default());
            t2.write("modules.alias.bin", &b.to_bytes().unwrap());
            let fault = if what == "key of" {
                "index key longer than 1024 bytes"
            } else {
                "index trie deeper than 256 levels"
            };
            let bound_name = if what == "key of" {
                "MAX_PATTERN"
            } else {
                "MAX_DEPTH"
            };
            let at = n == bound;
            let want = if at {
                Expect::ok(Kmod::Same)
            } else {
                Expect::fail(&["modules.alias.bin", fault], Kmod::No)
            };
            let label = if at {
                format!(" ({bound_name})")
            } else {
                String::new()
            };
            h.check(case(
                format!("alias index {what} {n}{label}: -c"),
                "modprobe",
                t2.modprobe(&sv(&["-c"])),
                want,
            ));
            let (q, want) = if what == "key of" {
                // The wildcard walk reaches the long key.
                (
                    "k".repeat(1023),
                    if at {
                        Expect::ok(Kmod::Same)
                    } else {
                        Expect::fail(&["modules.alias.bin", fault], Kmod::No)
                    },
                )
            } else {
                // A lookup walks one path only, without recursion: found.
                ("b".repeat(n), Expect::ok(Kmod::Same))
            };
            h.check(case(
                format!("alias index {what} {n}{label}: -R"),
                "modprobe",
                t2.modprobe(&sv(&["-R", &q])),
                want,
            ));
        }
    }

    // -- parameters (MAX_PARAMS = 4096, with the separator kmod writes).
    // Config options: "p=v..." then the space kmod adds before extra options.
    for (len, at) in [(4095usize, true), (4096, false)] {
        let opt = format!("p={}", "v".repeat(len - 2));
        t.config(&[("o.conf", format!("options x {opt}\n"))]);
        let name = format!(
            "config options of {len} bytes (+1 separator){}",
            if at { " (MAX_PARAMS)" } else { "" }
        );
        let want = if at {
            Expect::ok(Kmod::Same)
        } else {
            Expect::fail(
                &["could not insert 'x'", "module parameters too long"],
                Kmod::No,
            )
        };
        h.check(case(name, "modprobe", mp(&["-D", "x"]), want));
    }
    t.config(&[]);
    for (len, at) in [(4096usize, true), (4097, false)] {
        let opt = format!("p={}", "v".repeat(len - 2));
        let name = format!(
            "command-line options of {len} bytes{}",
            if at { " (MAX_PARAMS)" } else { "" }
        );
        let want = if at {
            Expect::ok(Kmod::Same)
        } else {
            Expect::fail(
                &[
                    "could not insert 'x'",
                    "module options on the command line too long (limit 4096 bytes)",
                ],
                Kmod::No,
            )
        };
        h.check(case(name, "modprobe", mp(&["-D", "x", &opt]), want));
    }

    // -- module path (MAX_PATH = 4096 with the NUL; also the kernel's PATH_MAX).
    for len in [4095usize, 4096] {
        let p = long_path(&h.work.join("paths"), len, "mod.ko");
        // 4096 bytes cannot name a file (PATH_MAX counts the NUL): both
        // tools take it for a module name or alias, which is too long.
        let want = Expect {
            code: 1,
            err: Some(sv(&[if len < 4096 {
                "Exec format error"
            } else {
                "alias too long (limit 1024 bytes)"
            }])),
            secs: SECS,
            rss_kib: RSS,
            kmod: Kmod::Same,
            kmod34: false,
        };
        h.check(case(
            format!("module path of {len} bytes: modinfo FILE"),
            "modinfo",
            vec![p.display().to_string()],
            want,
        ));
    }

    // -- insmod: parameters (MAX_PARAMS with the NUL) and path (MAX_PATH
    // with the NUL), on a file that does not exist: the checks come first,
    // and at the bound the open fails (nothing reaches the kernel).
    let missing = "/nonexistent-earlymod-hostile/x.ko".to_string();
    for (len, at) in [(4095usize, true), (4096, false)] {
        let opt = format!("p={}", "v".repeat(len - 2));
        let want = if at {
            Expect::fail(
                &[
                    "/nonexistent-earlymod-hostile/x.ko",
                    "No such file or directory",
                ],
                Kmod::Same,
            )
        } else {
            Expect::fail(&["parameters too long (limit 4095 bytes)"], Kmod::No)
        };
        h.check(case(
            format!(
                "insmod parameters of {len} bytes{}",
                if at { " (MAX_PARAMS)" } else { "" }
            ),
            "insmod",
            vec![missing.clone(), opt],
            want,
        ));
    }
    for (len, at) in [(4095usize, true), (4096, false)] {
        // 200-byte components (NAME_MAX is 255).
        let mut path = "/nonexistent-earlymod-hostile".to_string();
        while path.len() < len {
            let n = (len - path.len() - 1).min(200);
            path.push('/');
            path.push_str(&"p".repeat(n.max(1)));
        }
        assert_eq!(path.len(), len);
        let want = if at {
            Expect::fail(&["No such file or directory"], Kmod::Same)
        } else {
            Expect::fail(&["path too long (limit 4095 bytes)"], Kmod::No)
        };
        h.check(case(
            format!(
                "insmod path of {len} bytes{}",
                if at { " (MAX_PATH)" } else { "" }
            ),
            "insmod",
            vec![path],
            want,
        ));
    }

    // -- module directory (MAX_DIRNAME = 4000).
    for len in [4000usize, 4001] {
        let suffix = format!("/lib/modules/{KVER}");
        let dir = long_path(&h.work.join("dirs"), len, &suffix[1..]);
        let root = dir.display().to_string();
        let root = root.strip_suffix(&suffix).unwrap().to_string();
        fs::create_dir_all(&dir).unwrap();
        let mut b = IndexBuilder::new();
        b.insert(b"x", b"kernel/x.ko:", 0).unwrap();
        fs::write(dir.join("modules.dep.bin"), b.to_bytes().unwrap()).unwrap();
        let want = || {
            if len <= 4000 {
                Expect::ok(Kmod::Same)
            } else {
                Expect::fail(&["module directory", "4001 bytes (limit 4000)"], Kmod::No)
            }
        };
        h.check(case(
            format!("module directory of {len} bytes: -D"),
            "modprobe",
            sv(&["-d", &root, "-S", KVER, "-D", "x"]),
            want(),
        ));
        h.check(case(
            format!("module directory of {len} bytes: modinfo -F filename"),
            "modinfo",
            sv(&["-b", &root, "-k", KVER, "-F", "filename", "x"]),
            want(),
        ));
    }

    // -- config line counts: at the bound identical to kmod; one over,
    // reported with the file and the limit, and the rest still used.
    type Kind = (&'static str, usize, fn(usize) -> String, &'static str);
    let kinds: [Kind; 7] = [
        ("alias", 512, |i| format!("alias al{i} x"), "config aliases"),
        (
            "blacklist",
            1024,
            |i| format!("blacklist bl{i}"),
            "config blacklist entries",
        ),
        (
            "options",
            1024,
            |i| format!("options op{i} p=1"),
            "config options",
        ),
        (
            "install",
            128,
            |i| format!("install in{i} /bin/true"),
            "install commands",
        ),
        (
            "remove",
            128,
            |i| format!("remove rm{i} /bin/true"),
            "remove commands",
        ),
        (
            "softdep",
            256,
            |i| format!("softdep sd{i} pre: x"),
            "softdeps",
        ),
        ("weakdep", 256, |i| format!("weakdep wd{i} x"), "weakdeps"),
    ];
    // The kernel command line adds options and blacklist entries after the
    // files, under the same bounds: count this machine's (as kmod lists
    // them with no config) and leave room for them.
    t.config(&[]);
    let host: Vec<String> = h
        .kmod
        .get("modprobe")
        .filter(|k| k.is_file())
        .map(|k| {
            let mut argv = vec![k.display().to_string()];
            argv.extend(mp(&["-c"]));
            let r = run(&argv, &[], &h.work, Duration::from_secs(20), None);
            String::from_utf8_lossy(&r.stdout)
                .lines()
                .take_while(|l| !l.starts_with("# End of configuration"))
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default();
    for (kind, limit, line, what) in kinds {
        let from_cmdline: Vec<&String> = host
            .iter()
            .filter(|l| l.starts_with(&format!("{kind} ")))
            .collect();
        let room = limit - from_cmdline.len();
        for n in [room, room + 1] {
            let mut text: String = (0..n).map(|i| line(i) + "\n").collect();
            // A line of another kind after them: used either way.
            text.push_str(if kind == "alias" {
                "blacklist after\n"
            } else {
                "alias after y\n"
            });
            let file = format!("{kind}.conf");
            t.config(&[(file.as_str(), text)]);
            let path = t.conf().join(&file).display().to_string();
            let cmdline = if from_cmdline.is_empty() {
                String::new()
            } else {
                format!(" + {} from /proc/cmdline", from_cmdline.len())
            };
            let at = n == room;
            let name = format!(
                "{n} {kind} lines{cmdline}{}: -c",
                if at { " (at the bound)" } else { "" }
            );
            let want = if at {
                Expect::ok(Kmod::Same)
            } else if let Some(last) = from_cmdline.last() {
                // The files fit; the command line's last entry does not.
                Expect::reported(
                    &["/proc/cmdline", &format!("too many {what} (limit {limit})")],
                    Kmod::SameWithout(vec![last.to_string()]),
                )
            } else {
                let dropped = match kind {
                    "softdep" => vec![format!("softdep sd{limit} pre: x")],
                    _ => vec![line(limit)],
                };
                Expect::reported(
                    &[
                        &path,
                        &format!(
                            "too many {what} (limit {limit}): line {} ignored",
                            limit + 1
                        ),
                    ],
                    Kmod::SameWithout(dropped),
                )
            };
            // kmod 30 ignores weakdep lines; kmod 34 prints them.
            let want = if kind == "weakdep" {
                want.vs_kmod34()
            } else {
                want
            };
            h.check(case(name, "modprobe", mp(&["-c"]), want));
        }
        // The lines of other kinds after the over-full ones are used.
        if kind == "alias" {
            let mut text: String = (0..=limit).map(|i| line(i) + "\n").collect();
            text.push_str("options x last=1\nsoftdep x pre: y\n");
            t.config(&[("a.conf", text)]);
            h.check(case(
                "513 alias lines, then options and softdep for x: -D x uses them",
                "modprobe",
                mp(&["-D", "x"]),
                Expect::reported(
                    &["a.conf", "too many config aliases (limit 512)"],
                    Kmod::Same,
                ),
            ));
        }
    }

    // -- config files (MAX_CONFIG_FILES = 128).
    for n in [128usize, 129] {
        let files: Vec<(String, String)> = (0..n)
            .map(|i| (format!("f{i:03}.conf"), format!("alias cf{i} x\n")))
            .collect();
        let refs: Vec<(&str, String)> =
            files.iter().map(|(a, b)| (a.as_str(), b.clone())).collect();
        t.config(&refs);
        let want = if n == 128 {
            Expect::ok(Kmod::Same)
        } else {
            Expect::reported(
                &["too many config files (limit 128): 1 not read, from f128.conf on"],
                Kmod::SameWithout(vec!["alias cf128 x".into()]),
            )
        };
        h.check(case(
            format!("{n} config files: -c"),
            "modprobe",
            mp(&["-c"]),
            want,
        ));
    }
    t.config(&[]);

    // -- config paths (-C, MAX_CONFIG_PATHS = 32).
    for n in [32usize, 33] {
        let mut args = vec![
            "-d".to_string(),
            t.root.display().to_string(),
            "-S".into(),
            KVER.into(),
        ];
        for i in 0..n {
            let d = h.work.join(format!("cpath/{i}"));
            fs::create_dir_all(&d).unwrap();
            fs::write(d.join(format!("c{i}.conf")), format!("alias cp{i} x\n")).unwrap();
            args.push("-C".into());
            args.push(d.display().to_string());
        }
        args.push("-c".into());
        let want = if n == 32 {
            Expect::ok(Kmod::Same)
        } else {
            Expect::fail(&["too many config paths", "limit 32"], Kmod::No)
        };
        h.check(case(
            format!("{n} config paths (-C): -c"),
            "modprobe",
            args,
            want,
        ));
    }

    // -- options of one command line (getopt MAX_OPTIONS = 256: -d -S -C -D
    // and the rest -q).
    for n in [256usize, 257] {
        let mut rest: Vec<&str> = vec!["-D"];
        rest.extend(std::iter::repeat_n("-q", n - 4));
        rest.push("x");
        let want = if n == 256 {
            Expect::ok(Kmod::Same)
        } else {
            Expect::fail(&["too many options (limit 256)"], Kmod::No)
        };
        h.check(case(
            format!("{n} options on the command line: -D"),
            "modprobe",
            mp(&rest),
            want,
        ));
    }

    // -- arguments: the static binary keeps argv on its stack up to 1024
    // entries (MAX_ARGS, argv[0] and the applet included) and on the heap
    // beyond: no bound. MODPROBE_OPTIONS words and the arguments share one
    // bounded list of 1024.
    for argc in [1024usize, 1025] {
        // earlymod modprobe -d R -S K -C C -a -D x x ...
        let mut rest: Vec<&str> = vec!["-a", "-D"];
        rest.extend(std::iter::repeat_n("x", argc - 10));
        h.check(case(
            format!(
                "argc {argc}{}: -a -D x x ...",
                if argc == 1024 { " (MAX_ARGS)" } else { "" }
            ),
            "modprobe",
            mp(&rest),
            Expect::ok(Kmod::Same),
        ));
    }
    for words in [1024usize, 1025] {
        // One MODPROBE_OPTIONS word, then the arguments after the applet.
        let mut rest: Vec<&str> = vec!["-a", "-D"];
        rest.extend(std::iter::repeat_n("x", words - 1 - 8));
        let mut c = case(
            format!("{words} words with MODPROBE_OPTIONS: -a -D x x ..."),
            "modprobe",
            mp(&rest),
            if words == 1024 {
                Expect::ok(Kmod::Same)
            } else {
                Expect::fail(
                    &["too many arguments with MODPROBE_OPTIONS (limit 1024)"],
                    Kmod::No,
                )
            },
        );
        c.env.push(("MODPROBE_OPTIONS".into(), "-b".into()));
        h.check(c);
    }

    // -- modules one name resolves to (MAX_CANDIDATES = 32 = MAX_MATCHES).
    h.check(case(
        "32 modules matching one alias (MAX_CANDIDATES): -R",
        "modprobe",
        mp(&["-R", "match32:1"]),
        Expect::ok(Kmod::Same),
    ));
    h.check(case(
        "33 modules matching one alias: -R",
        "modprobe",
        mp(&["-R", "match33:1"]),
        Expect::fail(
            &[
                "'match33:1'",
                "too many modules matching one name (limit 32)",
            ],
            Kmod::No,
        ),
    ));
    for n in [32usize, 33] {
        let text: String = (0..n).map(|i| format!("alias ca d{i}\n")).collect();
        t.config(&[("a.conf", text)]);
        let want = if n == 32 {
            Expect::ok(Kmod::Same)
        } else {
            Expect::fail(
                &["'ca'", "too many modules matching one name (limit 32)"],
                Kmod::No,
            )
        };
        h.check(case(
            format!("{n} config aliases for one name: -R"),
            "modprobe",
            mp(&["-R", "ca"]),
            want,
        ));
    }
    t.config(&[]);

    // -- probe list (MAX_STEPS = 192).
    h.check(case(
        "191 dependencies: a probe list of 192 (MAX_STEPS): -D",
        "modprobe",
        mp(&["-D", "steps192"]),
        Expect::ok(Kmod::Same),
    ));
    h.check(case(
        "192 dependencies: -D",
        "modprobe",
        mp(&["-D", "steps193"]),
        Expect::fail(
            &[
                "could not insert 'steps193'",
                "too many probe list entries (limit 192)",
            ],
            Kmod::No,
        ),
    ));

    // -- softdeps: nesting (MAX_SOFTDEP_DEPTH = 16), modules of one line
    // (MAX_CANDIDATES), name length (MAX_SOFTDEP_NAME = 128) and distinct
    // normalized names (MAX_SOFTDEP_NAMES = 64).
    for (depth, at) in [(16usize, true), (17, false)] {
        let text: String = (0..depth)
            .map(|i| format!("softdep s{i} pre: s{}\n", i + 1))
            .collect();
        t.config(&[("s.conf", text)]);
        let want = if at {
            Expect::ok(Kmod::Same)
        } else {
            Expect::fail(
                &["could not insert 's0'", "softdeps nested more than 16 deep"],
                Kmod::No,
            )
        };
        h.check(case(
            format!("softdeps nested {depth} deep: -D s0"),
            "modprobe",
            mp(&["-D", "s0"]),
            want,
        ));
    }
    for (n, at) in [(32usize, true), (33, false)] {
        let names: Vec<String> = (0..n).map(|i| format!("d{i}")).collect();
        t.config(&[("s.conf", format!("softdep x pre: {}\n", names.join(" ")))]);
        let want = if at {
            Expect::ok(Kmod::Same)
        } else {
            Expect::fail(
                &[
                    "could not insert 'x'",
                    "too many softdep modules of one line (limit 32)",
                ],
                Kmod::No,
            )
        };
        h.check(case(
            format!("softdep line of {n} modules: -D x"),
            "modprobe",
            mp(&["-D", "x"]),
            want,
        ));
    }
    for (name, at) in [(&long128, true), (&long129, false)] {
        let dashed = name.replacen('_', "-", 1);
        t.config(&[("s.conf", format!("softdep x pre: {dashed}\n"))]);
        let want = if at {
            Expect::ok(Kmod::Same)
        } else {
            Expect::fail(
                &[
                    "could not insert 'x'",
                    "softdep name too long (limit 128 bytes)",
                ],
                Kmod::No,
            )
        };
        h.check(case(
            format!("softdep name of {} bytes to normalize: -D x", name.len()),
            "modprobe",
            mp(&["-D", "x"]),
            want,
        ));
    }
    for (n, at) in [(64usize, true), (65, false)] {
        let names: Vec<String> = (0..n).map(|i| format!("no-such-{i}")).collect();
        t.config(&[("s.conf", format!("softdep x pre: {}\n", names.join(" ")))]);
        let want = if at {
            Expect::ok(Kmod::Same)
        } else {
            Expect::fail(
                &[
                    "could not insert 'x'",
                    "too many distinct softdep names (limit 64)",
                ],
                Kmod::No,
            )
        };
        h.check(case(
            format!("{n} softdep names to normalize: -D x"),
            "modprobe",
            mp(&["-D", "x"]),
            want,
        ));
    }
    t.config(&[]);
}

/// A path of exactly `len` bytes under `base`, ending in `leaf` (a file
/// is created unless `leaf` names directories), made of 200-byte parts.
fn long_path(base: &Path, len: usize, leaf: &str) -> PathBuf {
    let mut p = base.to_path_buf();
    let fixed = base.display().to_string().len() + 1 + leaf.len();
    assert!(len > fixed + 2, "{len} too short for {}", base.display());
    let mut left = len - fixed;
    let mut i = 0;
    while left > 0 {
        // Each part and its '/' (keep the last part at least 2 bytes).
        let part = if left > 201 + 2 { 200 } else { left - 1 };
        p.push(format!("{}", ((b'a' + (i % 26) as u8) as char)).repeat(part));
        left -= part + 1;
        i += 1;
    }
    let dir = p.clone();
    p.push(leaf);
    assert_eq!(p.display().to_string().len(), len);
    fs::create_dir_all(&dir).unwrap();
    // A file path must leave room for the NUL in PATH_MAX (4096).
    if leaf.ends_with(".ko") && len < 4096 {
        fs::write(&p, b"not an ELF file").unwrap();
    }
    p
}

fn usage() -> ! {
    eprintln!(
        "usage: hostile --earlymod PATH [--kmod PATH] [--kmod-modinfo PATH] [--only TEXT] [--verbose] [--keep]"
    );
    std::process::exit(2)
}

fn main() -> ExitCode {
    let mut earlymod = None;
    let mut kmod: HashMap<&'static str, PathBuf> = HashMap::from([
        ("modprobe", PathBuf::from("/usr/sbin/modprobe")),
        ("modinfo", PathBuf::from("/usr/sbin/modinfo")),
        ("insmod", PathBuf::from("/usr/sbin/insmod")),
        ("modprobe34", earlymod_tests::kmod34_tool("modprobe")),
    ]);
    let (mut only, mut verbose, mut keep) = (None, false, false);
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let mut val = || args.next().unwrap_or_else(|| usage());
        match a.as_str() {
            "--earlymod" => earlymod = Some(PathBuf::from(val())),
            "--kmod" => {
                kmod.insert("modprobe", PathBuf::from(val()));
            }
            "--kmod-modinfo" => {
                kmod.insert("modinfo", PathBuf::from(val()));
            }
            "--only" => only = Some(val()),
            "--verbose" => verbose = true,
            "--keep" => keep = true,
            _ => usage(),
        }
    }
    let Some(earlymod) = earlymod else { usage() };
    let earlymod = fs::canonicalize(&earlymod).unwrap_or(earlymod);
    for tool in ["/usr/bin/time", "/usr/bin/prlimit"] {
        if !Path::new(tool).is_file() {
            println!("hostile: FAIL: {tool} is missing (scripts/setup.sh installs it)");
            return ExitCode::FAILURE;
        }
    }
    let applets = match earlymod_tests::applets_of(&earlymod) {
        Ok(a) => a,
        Err(e) => {
            println!("hostile: FAIL: {e}");
            return ExitCode::FAILURE;
        }
    };
    let work = std::env::temp_dir().join(format!("earlymod-hostile-{}", std::process::id()));
    let _ = fs::remove_dir_all(&work);
    fs::create_dir_all(&work).unwrap();
    let mut h = Harness {
        earlymod,
        kmod,
        work: work.clone(),
        only,
        verbose,
        cases: 0,
        failed: Vec::new(),
        applets,
        skipped: 0,
    };
    index_cases(&mut h);
    sparse_cases(&mut h);
    special_cases(&mut h);
    bomb_cases(&mut h);
    bound_cases(&mut h);
    if keep {
        println!("hostile: inputs kept in {}", work.display());
    } else {
        let _ = fs::remove_dir_all(&work);
    }
    let passed = h.cases - h.failed.len();
    if h.skipped > 0 {
        println!(
            "hostile: {} cases skipped: their applet is not in this build (applets: {})",
            h.skipped,
            h.applets.join(" ")
        );
    }
    if h.failed.is_empty() {
        println!("hostile: {} cases, {passed} passed", h.cases);
        ExitCode::SUCCESS
    } else {
        println!(
            "hostile: {} cases, {passed} passed, {} FAILED: {}",
            h.cases,
            h.failed.len(),
            h.failed.join("; ")
        );
        ExitCode::FAILURE
    }
}
