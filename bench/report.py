#!/usr/bin/env python3
"""make bench: every benchmark in one run, then bench/REPORT.md.

Runs, in order and one at a time (no two timings overlap):
  1. tests/src/bin/bench.rs   -D / -R resolution vs kmod on the 6.12 tree:
                              wall time, callgrind instructions, peak RSS
  2. qemu/vmtest.py --bench   loading the scenario set in QEMU: earlymod vs
                              kmod vs busybox modprobe, 6.12 and 6.1
  3. initrd/packbench.py      earlymod-pack vs mkinitramfs (and dracut):
                              packing time and image size; indexes vs depmod
  4. qemu/boottest.py --bench time to root: earlymod as PID 1 vs the
                              busybox + kmod reference image
and measures the binary sizes here. Each piece writes JSON; this script
turns it into one table per subject, each row: ours, the peer's, the ratio,
the goal. A piece that fails or cannot run leaves its rows "not measured"
with the reason; the report is written anyway and the exit status says so.
Every figure comes from this run; nothing is carried over.

    python3 bench/report.py [--quick] [--out bench/REPORT.md]
"""
import argparse
import datetime
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CACHE = os.environ.get("EARLYMOD_CACHE", "/var/cache/earlymod")

# The goals, as the issues set them (issue numbers in the notes column).
GOAL_RESOLVE = 0.5      # issue 2: -D/-R at most 0.5 x kmod
GOAL_ROOT = 0.6         # issue 5: time to root at most 0.6 x the reference
GOAL_PACK_TIME = 0.1    # issue 4: >= 10x faster than mkinitramfs
GOAL_PACK_SIZE = 1.0    # issue 4: a smaller image
GOAL_SIZE_FULL = 128 * 1024   # issue 3: out/earlymod with every decoder
GOAL_SIZE_MIN = 24 * 1024     # issue 3: minimal build


def log(msg):
    print(f"report: {msg}", file=sys.stderr, flush=True)


def run_piece(name, argv, logdir):
    """Runs one benchmark with its output shown live and kept in a log."""
    path = os.path.join(logdir, f"{name}.log")
    log(f"{name}: {' '.join(argv)}")
    t0 = time.monotonic()
    with open(path, "w") as out:
        p = subprocess.Popen(argv, cwd=REPO, stdout=subprocess.PIPE,
                             stderr=subprocess.STDOUT, text=True)
        for line in p.stdout:
            sys.stdout.write(line)
            out.write(line)
        rc = p.wait()
    log(f"{name}: exit {rc} after {time.monotonic() - t0:.0f} s")
    return rc, path


def load_json(path):
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


# ----------------------------------------------------------------- sizes

def file_size(path):
    try:
        return os.path.getsize(path)
    except OSError:
        return None


def busybox_static():
    """busybox-static's binary, from its package file list."""
    try:
        files = subprocess.run(["dpkg", "-L", "busybox-static"], capture_output=True,
                               text=True, check=True).stdout.split()
    except (OSError, subprocess.CalledProcessError):
        return None
    for f in files:
        if f.endswith("/busybox") and os.path.isfile(f) and not os.path.islink(f):
            return f
    return None


def kmod_with_libs():
    """kmod's binary plus every shared library it loads (ldd), real sizes."""
    kmod = shutil.which("kmod") or "/usr/bin/kmod"
    if not os.path.isfile(kmod):
        return None, []
    out = subprocess.run(["ldd", kmod], capture_output=True, text=True).stdout
    libs = []
    for line in out.splitlines():
        m = re.search(r"(/\S+) \(0x", line)
        if m and os.path.isfile(m.group(1)):
            libs.append(os.path.realpath(m.group(1)))
    return os.path.realpath(kmod), sorted(set(libs))


# ----------------------------------------------------------------- table

def ratio(a, b):
    return a / b if a is not None and b else None


def fmt(x, unit=""):
    if x is None:
        return "not measured"
    if isinstance(x, float):
        return f"{x:.3f}{unit}"
    return f"{x:,}{unit}"


def verdict(r, goal, below=True):
    if r is None or goal is None:
        return ""
    return "met" if (r <= goal if below else r < goal) else "**missed**"


class Table:
    def __init__(self, title, peer, note=""):
        self.title, self.peer, self.note, self.rows = title, peer, note, []

    def row(self, figure, ours, peer, unit="", goal=None, goal_text=None, strict=False,
            why=None, instead=None):
        """`instead` replaces the met/missed verdict (the work differed)."""
        r = ratio(ours, peer)
        self.rows.append((figure, fmt(ours, unit) if why is None else f"not measured: {why}",
                          fmt(peer, unit) if why is None else "",
                          "" if r is None else f"{r:.3f}",
                          goal_text or ("" if goal is None else f"<= {goal}"),
                          instead or verdict(r, goal, below=not strict)))

    def markdown(self):
        out = [f"## {self.title}", ""]
        if self.note:
            out += [self.note, ""]
        out += [f"| figure | earlymod | {self.peer} | ratio | goal | |",
                "|---|---:|---:|---:|---|---|"]
        out += ["| " + " | ".join(r) + " |" for r in self.rows]
        return "\n".join(out) + "\n"


# ----------------------------------------------------------------- main

def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", default=os.path.join(REPO, "bench", "REPORT.md"))
    ap.add_argument("--quick", action="store_true",
                    help="one round of everything (for trying the script, not for figures)")
    ap.add_argument("--skip", action="append", default=[],
                    choices=["resolve", "vmload", "pack", "root"],
                    help="leave a piece out (its rows say so)")
    args = ap.parse_args()
    r_host, r_vm, r_pack, r_root = (1, 1, 1, 1) if args.quick else (5, 5, 3, 3)

    work = tempfile.mkdtemp(prefix="earlymod-report-")
    started = datetime.datetime.now(datetime.timezone.utc)
    failed = []
    data = {}
    pieces = {
        "resolve": ["cargo", "run", "--locked", "--release", "-q", "-p", "earlymod-tests",
                    "--bin", "bench", "--", "--earlymod", "out/earlymod-static",
                    "--rounds", str(r_host), "--json"],
        "vmload": [sys.executable, "qemu/vmtest.py", "--bench", "--rounds", str(r_vm),
                   "-j", "1", "--json"],
        "pack": [sys.executable, "initrd/packbench.py", "--pack", "out/earlymod-pack",
                 "--kernel", "k612", "--kernel", "k61", "--rounds", str(r_pack), "--json"],
        "root": [sys.executable, "qemu/boottest.py", "--bench", "--rounds", str(r_root),
                 "--json"],
    }
    for name, argv in pieces.items():
        if name in args.skip:
            data[name] = (None, "left out (--skip)")
            continue
        jpath = os.path.join(work, f"{name}.json")
        rc, logpath = run_piece(name, argv + [jpath], work)
        j = load_json(jpath)
        if rc != 0 or j is None:
            failed.append(name)
            data[name] = (None, f"`{' '.join(argv[:4])}...` exited {rc}"
                          f"{'' if j else ', no figures'}")
        else:
            data[name] = (j, None)

    tables = []

    # 1. resolution on the host
    j, why = data["resolve"]
    t = Table("Resolution vs kmod (host, 6.12 tree)", "kmod modprobe",
              "One process per argv chunk, `modprobe -d ROOT -S KVER -a -D <every module>` and "
              "`-a -R <every alias derived from modules.alias>`; wall time is the median of "
              f"{r_host} interleaved rounds; instructions from `valgrind --tool=callgrind` "
              "(summed over chunks); peak RSS from `/usr/bin/time` (largest chunk). "
              "Outputs compared byte for byte.")
    if j is None:
        t.row("-D / -R", None, None, why=why)
    else:
        for key, label in (("D", "-D"), ("R", "-R")):
            f = j[key]
            what = f"{label} {f['items']:,} {f['what']}"
            same = "identical" if f["identical"] else "DIFFERENT"
            t.row(f"{what}: wall s (outputs {same})", f["earlymod_s"], f["kmod_s"],
                  goal=GOAL_RESOLVE)
            t.row(f"{what}: instructions", f["earlymod_instructions"], f["kmod_instructions"],
                  goal=GOAL_RESOLVE)
            t.row(f"{what}: peak RSS KiB", f["earlymod_rss_kib"], f["kmod_rss_kib"],
                  goal=1.0, goal_text="<= 1 (ours)")
    tables.append(t)

    # 2. loading in QEMU
    j, why = data["vmload"]
    t = Table("Loading the module set in QEMU vs kmod and busybox", "peer",
              "`modprobe -a SET` into an empty kernel, each loader in turn, interleaved "
              f"rounds ({r_vm}), median of the uptime deltas inside the guest (TCG). "
              "No goal was set for this one; `<= 1` is ours (not slower).")
    if j is None:
        t.row("load the set", None, None, why=why)
    else:
        for boot, b in sorted(j.items()):
            L = b["loaders"]
            e = L["earlymod"]["median_ms"]
            ours = "; ".join(L["earlymod"]["runs"])
            for peer in ("kmod", "busybox"):
                theirs = "; ".join(L[peer]["runs"])
                # A peer that failed part of the set did less work: no verdict.
                t.row(f"Linux {b['kver']}, `modprobe -a` of {b['set']} names: ms vs {peer} "
                      f"(earlymod: {ours}; {peer}: {theirs})", e, L[peer]["median_ms"],
                      goal=1.0, goal_text="<= 1 (ours)",
                      instead=None if theirs == ours else "not comparable: different work")
    tables.append(t)

    # 3. time to root
    j, why = data["root"]
    t = Table("Time to root vs the busybox + kmod reference image", "busybox+kmod",
              "Uptime when the root's init starts (QEMU TCG, -smp 2, ext4 root by UUID), "
              f"earlymod as PID 1 vs busybox /init + kmod modprobe, {r_root} interleaved "
              "rounds, median.")
    if j is None:
        t.row("time to root", None, None, why=why)
    else:
        for kname, k in j.items():
            m = k["median_s"]
            ref = m.get("busybox+kmod")
            t.row(f"Linux {k['kver']}: s, earlymod (parallel)", m.get("earlymod"), ref,
                  goal=GOAL_ROOT)
            t.row(f"Linux {k['kver']}: s, earlymod.jobs=1", m.get("earlymod jobs=1"), ref,
                  goal=GOAL_ROOT)
    tables.append(t)

    # 4. packing
    j, why = data["pack"]
    t = Table("Packing the default module set vs mkinitramfs (and dracut)", "peer",
              "Same module list (`config/default-modules.conf`) on the same tree; peers with "
              f"Debian's defaults and zstd; median of {r_pack} interleaved rounds. The index "
              "rows pack every module of the tree (`--indexes-only`) against `depmod -b`, "
              "which reads every module file; earlymod-pack derives the subset from the "
              "tree's existing indexes.")
    if j is None:
        t.row("packing", None, None, why=why)
    else:
        import statistics
        for kname, k in j.items():
            tools = k.get("tools", {})
            med = {n: statistics.median(r["times"]) if r.get("times") else None
                   for n, r in tools.items()}
            em = tools.get("earlymod-pack", {})
            for peer in ("mkinitramfs", "dracut"):
                p = tools.get(peer)
                if p is None:
                    continue
                if p.get("skip") or p.get("error"):
                    t.row(f"Linux {k['kver']} vs {peer}", None, None,
                          why=(p.get("skip") or p.get("error")).splitlines()[0][:80])
                    continue
                main = peer == "mkinitramfs"
                t.row(f"Linux {k['kver']}: packing s vs {peer}", med.get("earlymod-pack"),
                      med.get(peer), goal=GOAL_PACK_TIME if main else None)
                t.row(f"Linux {k['kver']}: image bytes vs {peer}", em.get("bytes"),
                      p.get("bytes"), goal=GOAL_PACK_SIZE if main else None,
                      goal_text="< 1" if main else None, strict=True)
            idx = k.get("indexes")
            if idx:
                t.row(f"Linux {k['kver']}: whole-tree indexes s vs depmod", idx[0], idx[1])
    tables.append(t)

    # 5. sizes
    t = Table("Binary size", "peer",
              "Bytes on disk. kmod counts its binary plus every shared library `ldd` "
              "resolves (the vdso excluded); busybox-static is one static binary with far "
              "more applets. Issue 3's goals are absolute: 128 KiB with every decoder, "
              "24 KiB minimal.")
    full = file_size(os.path.join(REPO, "out", "earlymod"))
    mini = file_size(os.path.join(REPO, "out", "earlymod-min"))
    bb = busybox_static()
    kmod, libs = kmod_with_libs()
    kmod_total = (file_size(kmod) + sum(file_size(x) or 0 for x in libs)) if kmod else None
    t.row("out/earlymod vs busybox-static" + (f" ({bb})" if bb else ""), full,
          file_size(bb) if bb else None)
    t.row(f"out/earlymod vs kmod + {len(libs)} libraries", full, kmod_total)
    t.row("out/earlymod vs its goal", full, GOAL_SIZE_FULL, goal=1.0)
    t.row("out/earlymod-min vs its goal", mini, GOAL_SIZE_MIN, goal=1.0)
    tables.append(t)

    # header
    try:
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO,
                                capture_output=True, text=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"],
                               cwd=REPO, capture_output=True, text=True).stdout.strip()
    except OSError:
        commit, dirty = "unknown", ""
    cpu = "unknown"
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next(l.split(":", 1)[1].strip() for l in f if l.startswith("model name"))
    except (OSError, StopIteration):
        pass
    kvers = []
    for k in ("k612", "k61"):
        try:
            with open(os.path.join(CACHE, k, "kver")) as f:
                kvers.append(f.read().strip())
        except OSError:
            pass
    took = (datetime.datetime.now(datetime.timezone.utc) - started).total_seconds()
    head = [
        "# earlymod benchmark report",
        "",
        f"Written by `make bench` (`bench/report.py`{' --quick' if args.quick else ''}) on "
        f"{started:%Y-%m-%d %H:%M} UTC in {took / 60:.1f} min; commit {commit}"
        f"{' with local changes' if dirty else ''}; {os.cpu_count()} CPUs ({cpu}); host "
        f"kernel {platform.release()}; module trees {', '.join(kvers) or 'missing'}. "
        "Ratio = earlymod / peer (below 1 is better for earlymod). Every figure is from "
        "this run.",
        "",
    ]
    if args.quick:
        head += ["**Quick run (one round each): not for quoting.**", ""]
    if failed:
        head += [f"Pieces that failed: {', '.join(failed)} (logs were in {work}).", ""]
    text = "\n".join(head) + "\n" + "\n".join(tb.markdown() for tb in tables)
    os.makedirs(os.path.dirname(args.out), exist_ok=True)
    with open(args.out, "w") as f:
        f.write(text)
    print("\n" + text)
    log(f"wrote {os.path.relpath(args.out, REPO)}")
    if not failed:
        shutil.rmtree(work, ignore_errors=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
