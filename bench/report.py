#!/usr/bin/env python3
"""make bench: every benchmark in one run, then bench/REPORT.md.

Runs, in order and one at a time (no two timings overlap):
  1. tests/src/bin/bench.rs   -D / -R of every module / derived alias on the
                              6.12 tree vs kmod: wall time, callgrind
                              instructions, peak RSS
  2. (here) one -D and one -R query vs kmod: wall time, callgrind
                              instructions, peak RSS, each run its own child
  3. qemu/vmtest.py --bench   loading the scenario set in QEMU: earlymod vs
                              kmod vs busybox modprobe, 6.12 and 6.1
  4. initrd/packbench.py      earlymod-pack vs mkinitramfs (and dracut):
                              packing time and image size; indexes vs depmod
  5. qemu/boottest.py --bench time to root: earlymod as PID 1 vs the
                              busybox + kmod reference image and the peers'
                              images (dracut, initramfs-tools, tiny-initramfs;
                              qemu/peers.py); earlymod's own overhead
  6. (here) binary sizes: out/earlymod vs busybox-static and kmod + its
                              shared libraries
Each piece writes JSON (--json FILE); this script turns the figures into one
table per subject, each row: ours, the peer's, the ratio, the goal, met or
missed. A piece that fails or cannot run leaves its rows "not measured" with
the reason; the report is written anyway and the exit status says so. Every
figure comes from this run (or from --input files, which the header names).

    python3 bench/report.py [--quick] [--rounds N] [--skip PIECE]...
                            [--input PIECE=FILE]... [--out bench/REPORT.md]
"""
import argparse
import datetime
import hashlib
import json
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CACHE = os.environ.get("EARLYMOD_CACHE", "/var/cache/earlymod")
KMOD_MODPROBE = "/usr/sbin/modprobe"
GNU_TIME = "/usr/bin/time"
RSS_RUNS = 5

# The goals. Where an issue states one it wins over the task that asked for
# this report (issue 6 lists the figures; the goals are the earlier issues').
# Issue 2 ("Our goal is at most 0.5 x kmod"), also tests/README.md "goal:
# <= 0.5": -D/-R resolution. The report task said <= 1.0 (no slower than
# kmod); the stricter figure is the goal, and the notes say whether
# <= 1 holds too. Applied to wall time and to callgrind instructions.
GOAL_RESOLVE = 0.5
# Issue 5: "earlymod's parallel boot <= 0.6 x the reference's time to root".
GOAL_ROOT = 0.6
# Issue 16, item 6: time to root against the real peers (qemu/peers.py).
# (earlymod variant, peer, the peer's label, goal)
GOAL_PEERS = (("earlymod", "dracut", "dracut (no host-only, no systemd)", 0.5),
              ("earlymod", "initramfs-tools", "initramfs-tools (mkinitramfs)", 0.5),
              ("earlymod", "tiny-initramfs", "tiny-initramfs (mktirfs)", None),
              ("earlymod same modules", "tiny-initramfs", "tiny-initramfs (mktirfs)", 1.0),
              ("earlymod handoff=root", "busybox+kmod", "busybox /init + kmod", 0.6))
# Issue 4: ">= 10x faster than mkinitramfs and a smaller image".
GOAL_PACK_TIME = 0.1
GOAL_PACK_SIZE = 1.0      # strict: ratio < 1
# Issue 3 set no goal for loading in QEMU ("print the ratios"); the report
# task's goal: no slower than kmod.
GOAL_VMLOAD = 1.0
# No issue set a goal for peak RSS; the report task's: at most kmod's.
GOAL_RSS = 1.0
# Binary size. The report task: out/earlymod smaller than busybox-static and
# than kmod + its libraries (strict). Issue 3: absolute goals, every
# decompressor <= 128 KiB, minimal build <= 24 KiB.
GOAL_SIZE_PEER = 1.0      # strict: ratio < 1
GOAL_SIZE_FULL = 128 * 1024
GOAL_SIZE_TINY = 33_888  # tiny-initramfs init-static

# The single queries (README's examples): the root filesystem's module with
# its dependencies, and the e1000 NIC's PCI modalias as the kernel emits it.
QUERY_D = "ext4"
QUERY_R = "pci:v00008086d0000100Esv00001AF4sd00001100bc02sc00i00"

PIECES = ("resolve", "query", "vmload", "pack", "root")
BINARIES = ("earlymod", "earlymod-static", "earlymod-tiny", "earlymod-pack")


def log(msg):
    print(f"report: {msg}", file=sys.stderr, flush=True)


def run_piece(name, argv, logdir, env=None):
    """Runs one benchmark with its output shown live and kept in a log."""
    path = os.path.join(logdir, f"{name}.log")
    log(f"{name}: {' '.join(argv)}")
    t0 = time.monotonic()
    with open(path, "w") as out:
        try:
            p = subprocess.Popen(argv, cwd=REPO, stdout=subprocess.PIPE, env=env,
                                 stderr=subprocess.STDOUT, text=True, errors="replace")
        except OSError as e:
            out.write(f"{e}\n")
            return None, str(e), time.monotonic() - t0
        last = ""
        for line in p.stdout:
            sys.stdout.write(line)
            out.write(line)
            if line.strip():
                last = line.strip()
        rc = p.wait()
    dt = time.monotonic() - t0
    log(f"{name}: exit {rc} after {dt:.0f} s")
    return rc, last, dt


def load_json(path):
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def read(path, default=None):
    try:
        with open(path) as f:
            return f.read().strip()
    except OSError:
        return default


def median(xs):
    return statistics.median(xs) if xs else None


def sha256(path):
    try:
        with open(path, "rb") as f:
            return hashlib.sha256(f.read()).hexdigest()
    except OSError:
        return None


def snapshot(dest):
    """Copies the binaries under test out of out/ first: every piece uses the
    copies, so a rebuild of out/ during the run (make elsewhere in the tree)
    cannot mix two builds. Returns {name: sha256 of out/name}."""
    os.makedirs(dest, exist_ok=True)
    sums = {}
    for name in BINARIES:
        src = os.path.join(REPO, "out", name)
        if os.path.isfile(src):
            shutil.copy2(src, os.path.join(dest, name))
            sums[name] = sha256(os.path.join(dest, name))
    return sums


# ----------------------------------------------------------------- one query

def neutral_env():
    """What tests/src/lib.rs gives both tools: C locale, no MODPROBE_OPTIONS."""
    env = {k: v for k, v in os.environ.items()
           if k != "MODPROBE_OPTIONS" and not k.startswith("LC_")}
    env["LC_ALL"] = "C"
    env["LANG"] = "C"
    return env


def spawn(argv, env, out=os.devnull):
    """One child, stdout to `out`, stderr dropped: (wall s, exit)."""
    fa = [(os.POSIX_SPAWN_OPEN, 0, os.devnull, os.O_RDONLY, 0),
          (os.POSIX_SPAWN_OPEN, 1, out, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644),
          (os.POSIX_SPAWN_OPEN, 2, os.devnull, os.O_WRONLY, 0)]
    t0 = time.perf_counter()
    pid = os.posix_spawn(argv[0], argv, env, file_actions=fa)
    _, status = os.waitpid(pid, 0)
    return time.perf_counter() - t0, os.waitstatus_to_exitcode(status)


def peak_rss(argv, env):
    """Peak resident set in KiB of one run, by GNU time (as bench.rs does).
    Not wait4 from here: Linux keeps the pre-exec address space's high-water
    mark, so a child spawned from this Python would show Python's RSS; GNU
    time's own is a few hundred KiB."""
    if not os.access(GNU_TIME, os.X_OK):
        return None
    p = subprocess.run([GNU_TIME, "-f", "@@maxrss %M"] + argv, env=env,
                       stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    m = re.findall(r"^@@maxrss (\d+)$", p.stderr, re.M)
    return int(m[-1]) if m else None


def callgrind(argv, env):
    """Instructions executed (callgrind's `Collected :`), or None."""
    vg = shutil.which("valgrind")
    if not vg:
        return None
    p = subprocess.run([vg, "--tool=callgrind", "--callgrind-out-file=/dev/null"] + argv,
                       env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    m = re.search(r"Collected : (\d+)", p.stderr)
    return int(m.group(1)) if m else None


def bench_queries(earlymod, rounds, reps, work):
    """-D QUERY_D and -R QUERY_R on the 6.12 tree, earlymod vs kmod's
    modprobe: outputs compared, then `rounds` rounds of `reps` runs of each
    tool (alternating, the first tool changing every round), each run its own
    child: median wall time, largest peak RSS; one callgrind run each."""
    kdir = os.path.join(CACHE, "k612")
    kver = read(os.path.join(kdir, "kver"))
    root = os.path.join(kdir, "root")
    if not kver or not os.path.isdir(os.path.join(root, "lib/modules", kver)):
        return None, f"the 6.12 tree is not in {kdir} (scripts/setup.sh)"
    if not os.path.isfile(KMOD_MODPROBE):
        return None, f"kmod's modprobe is not at {KMOD_MODPROBE}"
    if not os.path.isfile(earlymod):
        return None, f"{os.path.relpath(earlymod, REPO)} is missing (make)"
    env = neutral_env()
    tools = {"earlymod": [earlymod, "modprobe"], "kmod": [KMOD_MODPROBE]}
    res = {"kver": kver, "rounds": rounds, "reps": reps}
    for key, flag, arg in (("D", "-D", QUERY_D), ("R", "-R", QUERY_R)):
        argvs = {t: base + ["-d", root, "-S", kver, flag, arg] for t, base in tools.items()}
        outs = {}
        for t, argv in argvs.items():
            path = os.path.join(work, f"query-{key}-{t}.out")
            _, rc = spawn(argv, env, path)
            with open(path, "rb") as f:
                outs[t] = (f.read(), rc)
        walls = {t: [] for t in argvs}
        for r in range(rounds):
            order = list(argvs) if r % 2 == 0 else list(argvs)[::-1]
            for _ in range(reps):
                for t in order:
                    walls[t].append(spawn(argvs[t], env)[0])
        rss = {t: [peak_rss(argvs[t], env) for _ in range(RSS_RUNS)] for t in argvs}
        res[key] = {
            "query": f"{flag} {arg}",
            "identical": outs["earlymod"] == outs["kmod"],
            "lines": outs["kmod"][0].count(b"\n"),
            "exit": outs["kmod"][1],
            **{f"{t}_s": median(walls[t]) for t in argvs},
            **{f"{t}_rss_kib": None if None in rss[t] else max(rss[t]) for t in argvs},
            **{f"{t}_instructions": callgrind(argvs[t], env) for t in argvs},
        }
        f = res[key]
        log(f"query {flag} {arg}: wall {f['earlymod_s'] * 1e3:.2f} vs "
            f"{f['kmod_s'] * 1e3:.2f} ms, RSS {f['earlymod_rss_kib']} vs {f['kmod_rss_kib']} "
            f"KiB, instructions {f['earlymod_instructions']} vs {f['kmod_instructions']}, "
            f"outputs {'identical' if f['identical'] else 'DIFFERENT'}")
    return res, None


# ----------------------------------------------------------------- sizes

def file_size(path):
    try:
        return os.path.getsize(path)
    except (OSError, TypeError):
        return None


def package_binary(pkg, tail, install_hint=""):
    """The regular file of package `pkg` whose path ends with `tail`, from
    its dpkg file list; (path, why-not)."""
    try:
        files = subprocess.run(["dpkg", "-L", pkg], capture_output=True,
                               text=True, check=True).stdout.split()
    except (OSError, subprocess.CalledProcessError):
        return None, f"{pkg} is not installed{install_hint}"
    for f in files:
        if f.endswith(tail) and os.path.isfile(f) and not os.path.islink(f):
            return f, None
    return None, f"{pkg} lists no {tail.lstrip('/')}"


def tiny_initramfs_init():
    """tiny-initramfs's whole static PID 1; (path, why-not)."""
    return package_binary("tiny-initramfs-core", "/init-static", " (scripts/setup.sh bench)")


def size_table():
    """scripts/size.py's figures (every static build, its ceiling and goal,
    its largest contributors) as markdown lines, or a line saying why not."""
    out = os.path.join(REPO, "target", "size", "report.json")
    r = subprocess.run([sys.executable, os.path.join(REPO, "scripts", "size.py"),
                        "--json", out], cwd=REPO, capture_output=True, text=True)
    if r.returncode != 0:
        return [f"scripts/size.py failed: {(r.stderr or r.stdout).strip()[-300:]}"]
    with open(out) as f:
        data = json.load(f)["builds"]
    lines = ["| build | bytes | ceiling | goal | features | largest contributors (unstripped twin) |",
             "|---|---:|---:|---:|---|---|"]
    for name, b in data.items():
        goal = f"{b['goal']:,}" if b.get("goal") else "-"
        top = ", ".join(f"{c} {n:,}" for c, n in b["contributors"][:10])
        lines.append(f"| {name} | {b['bytes']:,} | {b['ceiling']:,} | {goal} | "
                     f"`{b['features']}` | {top} |")
    return lines


def busybox_static():
    """busybox-static's binary; (path, why-not)."""
    return package_binary("busybox-static", "/busybox")


def kmod_with_libs():
    """kmod's binary plus every shared library ldd resolves (the vdso has no
    file), real files: (binary, [libs], why-not)."""
    kmod = os.path.realpath(shutil.which("kmod") or "/usr/bin/kmod")
    if not os.path.isfile(kmod):
        return None, [], "kmod is not installed"
    try:
        out = subprocess.run(["ldd", kmod], capture_output=True, text=True).stdout
    except OSError as e:
        return None, [], f"ldd: {e}"
    libs = []
    for line in out.splitlines():
        m = re.search(r"(/\S+) \(0x", line)
        if m and os.path.isfile(m.group(1)):
            libs.append(os.path.realpath(m.group(1)))
    return kmod, sorted(set(libs)), None


# ----------------------------------------------------------------- table

def fmt(x, unit):
    if isinstance(x, float):
        return f"{x:.3f}{unit}" if abs(x) < 100 else f"{x:,.1f}{unit}"
    return f"{x:,}{unit}"


class Table:
    def __init__(self, title, note=""):
        self.title, self.note, self.rows = title, note, []

    def row(self, figure, peer_name, ours, peer, unit="", goal=None, strict=False,
            goal_text=None, why=None, also=None):
        """One figure: ratio = ours / peer; the goal is met when the ratio is
        <= goal (< goal if strict). `also`: a looser bound whose outcome is
        added when the goal is missed. A missing figure says why."""
        r = ours / peer if ours is not None and peer else None
        if goal is None:
            verdict = ""
        elif r is None:
            verdict = "not measured"
        elif r < goal if strict else r <= goal:
            verdict = "met"
        else:
            verdict = "**missed**"
            if also is not None:
                verdict += f" (≤ {also:g}: {'met' if r <= also else 'missed'})"
        missing = why or "not measured"
        self.rows.append({
            "figure": figure, "peer": peer_name,
            "ours": missing if ours is None else fmt(ours, unit),
            "theirs": ("not measured" if why is None or ours is None else missing)
            if peer is None else fmt(peer, unit),
            "ratio": "" if r is None else (f"{r:.3f}" if r < 10 else f"{r:.1f}"),
            "goal": goal_text or ("" if goal is None else f"{'<' if strict else '≤'} {goal:g}"),
            "verdict": verdict, "title": self.title})

    def markdown(self):
        out = [f"## {self.title}", ""]
        if self.note:
            out += [self.note, ""]
        out += ["| figure | earlymod | peer | peer's | ratio | goal | |",
                "|---|---:|---|---:|---:|---|---|"]
        out += ["| " + " | ".join(r[k] for k in ("figure", "ours", "peer", "theirs",
                                                 "ratio", "goal", "verdict")) + " |"
                for r in self.rows]
        return "\n".join(out) + "\n"


# Issue 16, item 5: no more syscalls per module than kmod 34 on any path.
GOAL_SYSCALLS = 1.0


def syscalls_table(j):
    """Syscalls per module in the guest, from qemu/syscalls.py's JSON."""
    t = Table(
        "Syscalls per module in the guest",
        "`qemu/syscalls.py`: one leaf module (`dummy`) loaded by `insmod PATH` and by "
        "`modprobe NAME` under `strace -f` in a QEMU guest (Debian's 6.12 kernel, which "
        "decompresses xz only), the module unloaded before each run. **Per module**: "
        "the syscalls from the open of the module file to its close, both included; "
        "**process**: every syscall from execve to exit. kmod 34 is Debian trixie's "
        "(run in a chroot of its own files), kmod 30 the host's. Goal (issue 16, item 5): "
        "no more per-module syscalls than kmod 34 on any path.")
    if not j or not j.get("rows"):
        t.row("syscalls per module", "kmod 34", None, None, why="no qemu/syscalls.py JSON")
        return t
    by = {(r["tree"], r["tool"], r["command"]): r for r in j["rows"]}
    calls = []
    for tree, what in j.get("trees", {}).items():
        for command in ("insmod", "modprobe"):
            em = by.get((tree, "earlymod", command), {})
            for peer, label, goal in (("kmod34", "kmod 34", GOAL_SYSCALLS), ("kmod30", "kmod 30", None)):
                p = by.get((tree, peer, command), {})
                why = None
                if not em.get("ok"):
                    why = "earlymod: " + em.get("why", "not run")[:100]
                elif not p.get("ok"):
                    why = f"{label}: " + p.get("why", "not run")[:100]
                t.row(f"{what}, `{command}`: per module (process: "
                      f"{em.get('process', '-')} vs {p.get('process', '-')})", label,
                      em.get("module") if em.get("ok") else None,
                      p.get("module") if p.get("ok") else None, goal=goal, why=why)
            for tool in ("earlymod", "kmod34", "kmod30"):
                r = by.get((tree, tool, command), {})
                if r.get("ok") and command == "insmod":
                    calls.append(f"- {tree}, {tool}: " + " ".join(r["module_calls"]))
    t.note += "\n\nThe per-module calls (`insmod`; `modprobe` makes the same):\n\n" + "\n".join(calls)
    return t


def cell_ok(v):
    return "yes" if v else "**no**"


# ----------------------------------------------------------------- main

def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", default=os.path.join(REPO, "bench", "REPORT.md"))
    ap.add_argument("--quick", action="store_true",
                    help="one round of everything (for trying the script, not for figures)")
    ap.add_argument("--rounds", type=int, help="rounds for every piece (default 5/5/5/3/3)")
    ap.add_argument("--skip", action="append", default=[], choices=PIECES,
                    help="leave a piece out (its rows say so)")
    ap.add_argument("--input", action="append", default=[], metavar="PIECE=FILE",
                    help="use this JSON (a piece's --json output) instead of running it")
    ap.add_argument("--keep", metavar="DIR", help="keep the pieces' JSON and logs here")
    ap.add_argument("--syscalls", metavar="FILE",
                    help="qemu/syscalls.py's --json output (make bench writes it first); "
                         "its table is left out when the file is absent")
    args = ap.parse_args()
    if args.rounds is not None and args.rounds < 1:
        ap.error("--rounds must be >= 1")
    rounds = dict(zip(PIECES, (5, 5, 5, 3, 3)))
    reps = 40
    if args.quick:
        rounds, reps = dict.fromkeys(PIECES, 1), 10
    if args.rounds:
        rounds = dict.fromkeys(PIECES, args.rounds)
    inputs = {}
    for spec in args.input:
        name, _, path = spec.partition("=")
        if name not in PIECES or not path:
            ap.error(f"--input {spec}: want PIECE=FILE, PIECE one of {', '.join(PIECES)}")
        inputs[name] = path

    work = args.keep or tempfile.mkdtemp(prefix="earlymod-report-")
    os.makedirs(work, exist_ok=True)
    started = datetime.datetime.now(datetime.timezone.utc)
    t_start = time.monotonic()
    load_start = read("/proc/loadavg", "?").split()[:3]
    snap = os.path.join(work, "bin")
    sums = snapshot(snap)
    bin_ = {n: os.path.join(snap, n) if n in sums else os.path.join(REPO, "out", n)
            for n in BINARIES}
    earlymod = bin_["earlymod"]
    failed = []
    data = {}
    took = {}
    pieces = {
        "resolve": ["cargo", "run", "--locked", "--release", "-q", "-p", "earlymod-tests",
                    "--bin", "bench", "--", "--earlymod", bin_["earlymod-static"],
                    "--rounds", str(rounds["resolve"]), "--json"],
        "query": None,  # measured here
        "vmload": [sys.executable, "qemu/vmtest.py", "--bench",
                   "--rounds", str(rounds["vmload"]), "-j", "1", "--json"],
        "pack": [sys.executable, "initrd/packbench.py", "--pack", bin_["earlymod-pack"],
                 "--kernel", "k612", "--kernel", "k61", "--rounds", str(rounds["pack"]),
                 "--json"],
        "root": [sys.executable, "qemu/boottest.py", "--bench", "--pack", bin_["earlymod-pack"],
                 "--earlymod", bin_["earlymod"], "--rounds", str(rounds["root"]), "--json"],
    }
    for name, argv in pieces.items():
        if name in args.skip:
            data[name] = (None, "left out (--skip)")
            continue
        if name in inputs:
            j = load_json(inputs[name])
            data[name] = (j, None) if j is not None else (None, f"--input {inputs[name]} "
                                                                "is not readable JSON")
            if j is None:
                failed.append(name)
            continue
        t0 = time.monotonic()
        if argv is None:
            log("query: one -D and one -R query, earlymod vs kmod")
            try:
                data[name] = bench_queries(earlymod, rounds[name], reps, work)
            except OSError as e:
                data[name] = (None, f"{e}")
                failed.append(name)
            took[name] = time.monotonic() - t0
            continue
        jpath = os.path.join(work, f"{name}.json")
        if os.path.exists(jpath):
            os.remove(jpath)  # --keep DIR of an earlier run: no stale figures
        # vmtest's loader: $QEMU_EARLYMOD (default out/earlymod-static)
        env = dict(os.environ, QEMU_EARLYMOD=bin_["earlymod-static"])
        rc, last, _ = run_piece(name, argv + [jpath], work, env)
        took[name] = time.monotonic() - t0
        j = load_json(jpath)
        cmd = {"resolve": "tests/src/bin/bench.rs", "vmload": "qemu/vmtest.py --bench",
               "pack": "initrd/packbench.py", "root": "qemu/boottest.py --bench"}[name]
        if rc == 0 and j is not None:
            data[name] = (j, None)
        elif rc == 0:
            # The piece ran and said why it measured nothing (e.g. "SKIP: ...").
            data[name] = (None, f"`{cmd}`: {last[:100] or 'no figures'}")
        else:
            failed.append(name)
            data[name] = (None, f"`{cmd}` exited {rc}: {last[:100]}")

    tables = []
    kvers = {k: read(os.path.join(CACHE, k, "kver"), k) for k in ("k612", "k61")}

    # 1. resolution on the host: the whole set, and single queries
    j, why = data["resolve"]
    t = Table(
        "Resolution vs kmod: every module and every alias (host, 6.12 tree)",
        "One `modprobe -d ROOT -S KVER -a -D <every module of modules.dep>` and one "
        "`-a -R <a string derived from every modules.alias pattern>` per tool "
        "(`tests/src/bin/bench.rs`; an argument list over half of ARG_MAX is split into "
        "the same chunks for both), `out/earlymod-static` vs `/usr/sbin/modprobe` (kmod). "
        f"Wall time: median of {j['rounds'] if j else rounds['resolve']} rounds, tools "
        "alternating. Instructions: `valgrind --tool=callgrind`, one run, summed over the "
        "chunks (for kmod this includes the dynamic loader's work). Outputs compared byte "
        f"for byte. Goal ≤ {GOAL_RESOLVE:g} from issue 2 (the report task asked ≤ 1, no "
        "slower than kmod; a missed row says whether ≤ 1 holds).")
    for key, label in (("D", "-D"), ("R", "-R")):
        f = (j or {}).get(key) or {}
        if f:
            what = f"{label} {f['items']:,} {f['what']}"
            chunks = f" in {f['chunks']} chunks" if f.get("chunks", 1) > 1 else ""
            same = ("outputs identical" if f.get("identical") else "**outputs DIFFER**")
            wall = f"{what}{chunks}: wall s ({same})"
        else:
            what = f"{label} every {'module' if key == 'D' else 'alias'}"
            wall = f"{what}: wall s"
        t.row(wall, "kmod modprobe", f.get("earlymod_s"), f.get("kmod_s"),
              goal=GOAL_RESOLVE, also=1.0, why=why)
        t.row(f"{what}: instructions", "kmod modprobe", f.get("earlymod_instructions"),
              f.get("kmod_instructions"), goal=GOAL_RESOLVE, also=1.0,
              why=why or "valgrind missing or failed")
    tables.append(t)

    q, qwhy = data["query"]
    t = Table(
        "Resolution vs kmod: one query (host, 6.12 tree)",
        f"`modprobe -d ROOT -S KVER -D {QUERY_D}` and `-R {QUERY_R}` (the e1000 NIC's "
        "modalias), `out/earlymod` vs kmod's `/usr/sbin/modprobe`, each run its own "
        "child (`posix_spawn`, stdout to /dev/null) from `bench/report.py`; wall time from "
        "spawn to reap, median of "
        + (f"{q['rounds']} rounds × {q['reps']} runs per tool, alternating; "
           if q else "the runs; ")
        + "instructions from one `valgrind --tool=callgrind` run (kmod's include the "
        "dynamic loader relocating libcrypto, liblzma, libzstd and libc). Goal as above "
        "(issue 2, and ≤ 1), applied to one query.")
    for key, short in (("D", f"-D {QUERY_D}"), ("R", "-R e1000's modalias")):
        f = (q or {}).get(key) or {}
        same = ""
        if f:
            n = f["lines"]
            same = (f" (outputs identical, {n} line{'s' if n != 1 else ''})"
                    if f["identical"] else " (**outputs DIFFER**)")
        ms = (lambda x: None if x is None else x * 1e3)  # noqa: E731
        t.row(f"`{short}`: wall ms{same}", "kmod modprobe", ms(f.get("earlymod_s")),
              ms(f.get("kmod_s")), goal=GOAL_RESOLVE, also=1.0, why=qwhy)
        t.row(f"`{short}`: instructions", "kmod modprobe", f.get("earlymod_instructions"),
              f.get("kmod_instructions"), goal=GOAL_RESOLVE, also=1.0,
              why=qwhy or "valgrind missing or failed")
    tables.append(t)

    # 2. peak RSS
    t = Table(
        "Peak RSS vs kmod (host, 6.12 tree)",
        "Maximum resident set of each tool's process in KiB, by GNU time (`/usr/bin/time "
        "-f %M`, the kernel's `ru_maxrss`; it includes the few hundred KiB of time's own "
        "process before exec, for both tools alike). Every module / alias: `bench.rs`, one "
        "run per chunk, the largest chunk's. One query: "
        f"{RSS_RUNS} runs per tool from `bench/report.py`, the largest. No issue set a "
        "goal; the report task's: at most kmod's.")
    for key, label in (("D", "-D every module"), ("R", "-R every alias")):
        f = (j or {}).get(key) or {}
        t.row(label, "kmod modprobe", f.get("earlymod_rss_kib"), f.get("kmod_rss_kib"),
              unit=" KiB", goal=GOAL_RSS, why=why or "/usr/bin/time missing or failed")
    for key, short in (("D", f"-D {QUERY_D}"), ("R", "-R e1000's modalias")):
        f = (q or {}).get(key) or {}
        t.row(f"`{short}`", "kmod modprobe", f.get("earlymod_rss_kib"),
              f.get("kmod_rss_kib"), unit=" KiB", goal=GOAL_RSS,
              why=qwhy or f"{GNU_TIME} missing or failed")
    tables.append(t)

    # 3. loading in QEMU
    j, why = data["vmload"]
    nr = next(iter(j.values()), {}).get("rounds") if j else rounds["vmload"]
    t = Table(
        "Loading the module set in QEMU vs kmod and busybox",
        "`modprobe -a SET` (the 13 modules of `qemu/scenarios.py`) into a kernel with no "
        "module loaded, each loader in turn inside one VM per kernel (QEMU TCG, "
        f"`qemu/vmtest.py --bench`), {nr} rounds with the order rotating, median of the "
        "`/proc/timer_list` deltas. Module init (raid6/xor benchmarks, in-kernel xz) "
        "dominates under TCG. Issue 3 set no goal here (\"print the ratios\"); the goal "
        "is the report task's: no slower than kmod. busybox's modprobe has no softdeps, "
        "loads fewer modules and exits 1, so its row is for scale only.")
    for kname in ("k612", "k61"):
        b = (j or {}).get(f"{kname}-bench") or {}
        L = b.get("loaders", {})
        e = L.get("earlymod", {})
        erun = "; ".join(e.get("runs", [])) or "no data"
        for peer in ("kmod", "busybox"):
            p = L.get(peer, {})
            prun = "; ".join(p.get("runs", [])) or "no data"
            label = f"Linux {b.get('kver', kvers[kname])}: ms"
            if b:
                label += f" (earlymod {erun}; {peer} {prun})"
            t.row(label, f"{peer} modprobe", e.get("median_ms"), p.get("median_ms"),
                  goal=GOAL_VMLOAD if peer == "kmod" else None,
                  why=why or "no timing in the VM log"
                  + (f" ({b['note']})" if b.get("note") else ""))
    tables.append(t)

    # 3b. syscalls per module (qemu/syscalls.py --json, run by make bench before this)
    if args.syscalls and os.path.exists(args.syscalls):
        tables.append(syscalls_table(load_json(args.syscalls)))

    # 4. time to root
    j, why = data["root"]
    nr = next(iter(j.values()), {}).get("rounds") if j else rounds["root"]
    t = Table(
        "Time to root vs the busybox + kmod reference image",
        "`/proc/uptime` when the root's `/sbin/init` starts (QEMU TCG, `-smp 2` on "
        f"{len(os.sched_getaffinity(0))} host CPUs, ext4 root "
        "by UUID on virtio-blk, an AHCI disk too; `qemu/boottest.py --bench`): earlymod as "
        "PID 1 (parallel, and `earlymod.jobs=1`) vs busybox `/init` + kmod `modprobe` "
        f"(coldplug loop over `modalias`, `findfs`, `switch_root`); {nr} rounds, order "
        "rotating, median. Goal from issue 5, for the parallel boot.")
    for kname in ("k612", "k61"):
        k = (j or {}).get(kname) or {}
        m = k.get("median_s", {})
        ref = m.get("busybox+kmod")
        fails = {n: len(v) for n, v in (k.get("failed") or {}).items() if v}
        for name, goal in (("earlymod", GOAL_ROOT), ("earlymod jobs=1", None)):
            bad = ", ".join(f"{n} failed {c} of {nr}" for n, c in fails.items()
                            if n in (name, "busybox+kmod"))
            label = "parallel" if name == "earlymod" else "`earlymod.jobs=1`"
            t.row(f"Linux {k.get('kver', kvers[kname])}: s, earlymod {label}"
                  + (f" ({bad})" if bad else ""),
                  "busybox /init + kmod", m.get(name), ref, goal=goal,
                  why=why or "no boot reached the root")
    tables.append(t)

    # 4b. time to root against the peers
    t = Table(
        "Time to root against the peers",
        "The same boots as above (same kernel, root disk, QEMU command line and "
        "`root=UUID=`, rounds interleaved with the earlymod and reference images, median), "
        "with images made by the peers' own Debian tools for the same drivers "
        "(`qemu/peers.py`): **dracut** 059 (`--no-hostonly`, `-m \"base rootfs-block "
        "kernel-modules\"`: the shell init with udev, no systemd; `--drivers` = the "
        "`include` list of `tests/pack/boot.conf`, loaded on demand by udev), "
        "**initramfs-tools** (`mkinitramfs -d CONFDIR`: `MODULES=list`, `BUSYBOX=y`, a hook "
        "`manual_add_modules` of the same list; udev coldplug; the host's hooks add lvm/md "
        "modules), **tiny-initramfs** (`mktirfs -m no`, plus kmod's `modprobe -D` plan of "
        "the drivers of the VM's devices and root filesystem, decompressed: it has no "
        "coldplug and loads every module it is given, in order). All gzip. "
        "`earlymod handoff=root` is earlymod with `earlymod.handoff=root`. The goal against "
        "tiny-initramfs is \"on the same modules\": its row is an earlymod-pack image of "
        "tiny-initramfs's module list alone (earlymod still resolves and coldplugs them); "
        "the full image's row is for scale. A peer that did "
        "not build or boot says why. Goals from issue 16 (item 6).")
    own_notes = []
    for kname in ("k612", "k61"):
        k = (j or {}).get(kname) or {}
        kver = k.get("kver", kvers[kname])
        m = k.get("median_s", {})
        fails = {n: v for n, v in (k.get("failed") or {}).items() if v}
        if k and not k.get("peers"):
            t.row(f"Linux {kver}: s", "the peers", None, None,
                  why="peers not booted on this kernel (--peers)")
            continue
        for ours, peer, peer_label, goal in GOAL_PEERS:
            pwhy = why
            for n in (peer, ours):
                if not pwhy and m.get(n) is None:
                    pwhy = f"{n} FAILED: " + ((fails.get(n) or ["not in the JSON"])[0][:120])
            bad = ", ".join(f"{n} failed {len(v)} of {nr}" for n, v in fails.items()
                            if n in (ours, peer) and m.get(n) is not None)
            label = {"earlymod": "earlymod",
                     "earlymod same modules": "earlymod, an image of tiny-initramfs's modules"}.get(
                         ours, "`earlymod.handoff=root`")
            t.row(f"Linux {kver}: s, {label}" + (f" ({bad})" if bad else ""), peer_label,
                  None if pwhy else m.get(ours), None if pwhy else m.get(peer),
                  goal=goal, why=pwhy)
        for n, o in (k.get("overhead") or {}).items():
            if o.get("own_s") is None:
                continue
            own_notes.append(
                f"- Linux {kver}, {n}: {o['root_s']:.3f} s to root − {o['kernel_to_init_s']:.3f} s "
                f"kernel to /init − {o['critical_modules_s']:.3f} s module init on the critical "
                f"path = **{o['own_s']:.3f} s**"
                + (f" (outside the loading passes: {o['outside_passes_s']:.3f} s)"
                   if o.get("outside_passes_s") is not None else ""))
    t.note += (
        "\n\n**earlymod's own overhead** = time to root − the kernel's time to `/init` − "
        "module init on the critical path (medians of the rounds). The kernel's time to "
        "`/init`: the printk timestamp of \"Run /init as init process\" (`CONFIG_PRINTK_TIME=y`), "
        "printed from `dmesg` by the root's init (the line is KERN_INFO, below the console "
        "loglevel); it includes unpacking the image. The critical path: the root disk's "
        "driver chain (6.1: `virtio_pci`, whose load makes the disk's virtio device appear, "
        "then `virtio_blk`), then the root filesystem's (`ext4`), each the longest chain "
        "through what `modprobe -D` loads before a module (dependencies and softdeps), "
        "weighted by the per-module load times of earlymod's boot report (which include "
        "the kernel's xz decompression and the driver's probe; under TCG, loads running in "
        "parallel slow each other down, so this part is an upper bound and the overhead a "
        "lower one). The rest (mounting the API filesystems, coldplug scans, waiting for "
        "the other modules of a batch such as `ahci`, root discovery, switch_root, exec) "
        "is earlymod's. In brackets: time to root − kernel to `/init` − the wall time of "
        "the boot report's loading passes, i.e. PID 1's time outside module loading.\n\n"
        + ("\n".join(own_notes) if own_notes else "- not measured"))
    tables.append(t)

    # 5. packing
    j, why = data["pack"]
    nr = next(iter(j.values()), {}).get("rounds", rounds["pack"]) if j else rounds["pack"]
    t = Table(
        "Packing the default module set vs mkinitramfs (and dracut)",
        "The same list (`config/default-modules.conf`) from the same cached tree "
        "(`initrd/packbench.py`): earlymod-pack vs mkinitramfs (`MODULES=list`) and dracut "
        "(`-m base --force-drivers`), the peers with Debian's defaults and zstd; one "
        f"untimed warm-up each, then {nr} rounds, order rotating, median wall time; image "
        "size of the warm-up's image. Goals from issue 4 against mkinitramfs; dracut is for "
        "scale. The index rows write depmod's files for every module of the tree: "
        "`earlymod-pack --indexes-only` derives them from the tree's indexes, `depmod -b` "
        "reads every module file.")
    for kname in ("k612", "k61"):
        k = (j or {}).get(kname) or {}
        kver = k.get("kver", kvers[kname])
        tools = k.get("tools", {})
        med = {n: median(r.get("times")) for n, r in tools.items()}
        em = tools.get("earlymod-pack", {})
        emods = len((em.get("image") or {}).get("modules", []))
        ewhy = em.get("skip") or em.get("error")
        for peer in ("mkinitramfs", "dracut"):
            p = tools.get(peer)
            main_peer = peer == "mkinitramfs"
            pwhy = why
            if not pwhy and ewhy:
                pwhy = f"earlymod-pack: {ewhy.splitlines()[0][:100]}"
            if not pwhy and (p is None or p.get("skip") or p.get("error")):
                reason = "no result" if p is None else (p.get("skip") or p.get("error"))
                pwhy = f"{peer}: {reason.splitlines()[0][:100]}"
            n = f" (modules in it: {emods} vs {len(p['image']['modules'])})" \
                if not pwhy and p.get("image") else ""
            t.row(f"Linux {kver}: packing s", peer, None if pwhy else med.get("earlymod-pack"),
                  None if pwhy else med.get(peer),
                  goal=GOAL_PACK_TIME if main_peer else None, why=pwhy)
            t.row(f"Linux {kver}: image bytes{n}", peer, None if pwhy else em.get("bytes"),
                  None if pwhy else p.get("bytes"),
                  goal=GOAL_PACK_SIZE if main_peer else None, strict=True, why=pwhy)
        idx = k.get("indexes")
        if isinstance(idx, dict):
            t.row(f"Linux {kver}: indexes of all {idx['modules']:,} modules, s "
                  f"(modules.dep/.softdep identical: {cell_ok(idx['identical'])})",
                  "depmod -b", idx["earlymod-pack"], idx["depmod"])
        else:
            t.row(f"Linux {kver}: indexes of every module, s", "depmod -b", None, None,
                  why=why or "not in the JSON")
    tables.append(t)

    # 6. sizes
    bb, bbwhy = busybox_static()
    kmod, libs, kwhy = kmod_with_libs()
    kmod_total = (file_size(kmod) + sum(file_size(x) or 0 for x in libs)) if kmod else None
    t = Table(
        "Binary size",
        "Bytes on disk. `out/earlymod` is the static, libc-free multi-call binary with "
        "every decoder (a copy of `out/earlymod-static`); `out/earlymod-tiny` is PID 1 + "
        "modprobe/insmod with kernel-delegated decompression only. busybox-static is one static binary with far more "
        f"applets ({bb or bbwhy}). kmod counts `{kmod or 'kmod'}` plus every shared library "
        "`ldd` resolves, real files, the vdso excluded"
        + (f" ({', '.join(os.path.basename(x) + ' ' + format(file_size(x), ',') for x in libs)})"
           if libs else "")
        + ". Goals: smaller than both peers (the report task), and issue 12's budgets: "
        "128 KiB with everything, 33,888 bytes (tiny-initramfs's init-static) for the tiny build. "
        "The aarch64 and riscv64 builds (`make cross`, Debian's rustc 1.85) are compared with "
        "Debian's busybox-static for the same machine (goal: smaller) and with the x86_64 "
        "build of the same features (no goal).")
    full = file_size(earlymod)
    mini = file_size(bin_["earlymod-tiny"])
    for name, size, peer_goal in (("out/earlymod", full, GOAL_SIZE_PEER),
                                  ("out/earlymod-tiny", mini, None)):
        if size is None:
            t.row(name, "", None, None, why=f"{name} is missing (make)")
            continue
        t.row(f"{name}, bytes", "busybox-static", size, file_size(bb), goal=peer_goal,
              strict=True, why=None if bb else bbwhy)
        t.row(f"{name}, bytes", f"kmod + {len(libs)} libraries", size, kmod_total,
              goal=peer_goal, strict=True, why=None if kmod else kwhy)
    if full is not None:
        t.row("out/earlymod, bytes", "issue 12's budget", full, GOAL_SIZE_FULL, goal=1.0)
    if mini is not None:
        tinit, tiwhy = tiny_initramfs_init()
        t.row("out/earlymod-tiny, bytes", "tiny-initramfs init-static", mini,
              file_size(tinit) if tinit else None, goal=1.0, why=tiwhy)
    # The cross builds (`make cross`): against Debian's busybox-static for the
    # same machine (the cache's, fetched by `make setup`) and, as a ratio
    # without a goal, against the x86_64 build of the same features.
    for arch, debian, cache in (("aarch64", "arm64", "karm64"), ("riscv64", "riscv64", "kriscv64")):
        bbx = os.path.join(CACHE, cache, "busybox")
        for build, x86 in (("earlymod", full), ("earlymod-tiny", mini)):
            name = f"out/{arch}/{build}"
            size = file_size(os.path.join(REPO, name))
            if size is None:
                t.row(name, "", None, None, why=f"{name} is missing (make cross)")
                continue
            t.row(f"{name}, bytes", f"busybox-static:{debian}", size, file_size(bbx),
                  goal=GOAL_SIZE_PEER, strict=True,
                  why=None if file_size(bbx) else f"no {bbx} (make setup)")
            t.row(f"{name}, bytes", f"out/{build} (x86_64)", size, x86)
    tables.append(t)

    # header
    def git(*a):
        try:
            return subprocess.run(["git", "--no-optional-locks"] + list(a), cwd=REPO,
                                  capture_output=True, text=True).stdout.strip()
        except OSError:
            return ""
    commit = git("rev-parse", "--short", "HEAD") or "unknown"
    dirty = git("status", "--porcelain", "--untracked-files=no")
    cpu = "unknown"
    for line in (read("/proc/cpuinfo", "") or "").splitlines():
        if line.startswith("model name"):
            cpu = line.split(":", 1)[1].strip()
            break
    mem = re.search(r"MemTotal:\s+(\d+)", read("/proc/meminfo", "") or "")
    trees = [f"{k} = {read(os.path.join(CACHE, k, 'kver'), 'missing')}" for k in ("k612", "k61")]
    tools = []
    for argv in (["valgrind", "--version"], [KMOD_MODPROBE, "--version"],
                 ["qemu-system-x86_64", "--version"]):
        try:
            out = subprocess.run(argv, capture_output=True, text=True).stdout.splitlines()
            tools.append(out[0].strip() if out else "")
        except OSError:
            tools.append(f"{argv[0]} missing")
    changed = [n for n, h in sums.items() if sha256(os.path.join(REPO, "out", n)) != h]
    total = time.monotonic() - t_start
    load_end = read("/proc/loadavg", "?").split()[:3]
    all_rows = [r for tb in tables for r in tb.rows]
    goal_rows = [r for r in all_rows if r["verdict"]]
    met = sum(r["verdict"] == "met" for r in goal_rows)
    missed = [r for r in goal_rows if "missed" in r["verdict"]]
    unmeasured = [r for r in goal_rows if r["verdict"] == "not measured"]
    nproc = len(os.sched_getaffinity(0))
    head = [
        "# earlymod benchmark report",
        "",
        f"Written by `make bench` (`python3 bench/report.py"
        f"{' ' + ' '.join(sys.argv[1:]) if sys.argv[1:] else ''}`).",
        "",
        f"- **Date**: {started:%Y-%m-%d %H:%M} UTC; the run took {total / 60:.1f} min "
        f"({', '.join(f'{n} {s / 60:.1f}' for n, s in took.items())} min).",
        f"- **Machine**: {nproc} CPUs (nproc), {cpu}"
        + (f", {int(mem.group(1)) / 1048576:.1f} GiB RAM" if mem else "")
        + f"; host kernel {platform.release()}; load average {' '.join(load_start)} at the "
        f"start, {' '.join(load_end)} at the end (other work on the machine shows here).",
        f"- **Module trees**: {'; '.join(trees)} (Debian, `{CACHE}`).",
        f"- **Commit**: {commit}{' with uncommitted changes in tracked files' if dirty else ''}.",
        f"- **Tools**: {'; '.join(x for x in tools if x)}.",
        "- **Binaries**: copied from `out/` before the first piece, every piece used the "
        "copies: " + (", ".join(f"{n} {file_size(bin_[n]):,} bytes sha256 {h[:12]}"
                               for n, h in sums.items()) or "none found")
        + (f". `out/` changed during the run ({', '.join(changed)}): the figures are of the "
           "copies" if changed else "") + ".",
        "- **Rounds**: resolution " + str(rounds["resolve"]) + ", one query "
        + f"{rounds['query']} × {reps} runs, QEMU loading {rounds['vmload']}, packing "
        + f"{rounds['pack']}, time to root {rounds['root']}; every time is the **median** "
        "over its rounds; sizes and instruction counts are single measurements.",
        "- Ratio = earlymod / peer: below 1 is better for earlymod. Every figure was "
        "measured in this run"
        + (f", except the pieces read from files: "
           f"{', '.join(f'{n} ({p})' for n, p in inputs.items())}" if inputs else "")
        + ".",
        "",
    ]
    if args.quick or args.rounds == 1:
        head += ["**One round each: for trying the script, not for quoting.**", ""]
    if failed:
        head += [f"**Pieces that failed**: {', '.join(failed)} (logs in `{work}`).", ""]
    head += [f"**Goals**: {met} of {len(goal_rows)} met, {len(missed)} missed"
             + (f", {len(unmeasured)} not measured" if unmeasured else "")
             + (":" if missed else "."), ""]
    if missed:
        head += [f"- {r['title'].split(':')[0].split(' vs ')[0]}: {r['figure']} vs {r['peer']}: "
                 f"ratio {r['ratio']}, goal {r['goal']}" for r in missed] + [""]
    text = "\n".join(head) + "\n" + "\n".join(tb.markdown() for tb in tables)
    text += ("\n## Static builds (`make size`)\n\nEvery variant built by `scripts/size.py` "
             "(stripped; contributors from an unstripped twin of the same build, symbol bytes "
             "by crate):\n\n" + "\n".join(size_table()) + "\n")
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    with open(args.out, "w") as f:
        f.write(text)
    print("\n" + text)
    log(f"wrote {os.path.relpath(args.out, REPO)}")
    if not failed and not args.keep:
        shutil.rmtree(work, ignore_errors=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
