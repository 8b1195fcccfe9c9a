#!/usr/bin/env python3
"""Packing benchmark: earlymod-pack against Debian's mkinitramfs and dracut.

Packs the same module set (config/default-modules.conf by default) from one
cached Debian kernel tree with each tool, interleaved for N rounds, and prints
a markdown table: median wall time, image size, modules in the image, and the
ratios earlymod/peer.  The goals (from the issue): >= 10x faster than
mkinitramfs, and a smaller image.

    python3 initrd/packbench.py --pack target/release/earlymod-pack \
        [--rounds 3] [--kernel k612|k61 ...]

Peers, as a Debian user would run them for "just these modules":

  mkinitramfs (initramfs-tools-core)
      mkinitramfs -d CONFDIR -o OUT KVER
      CONFDIR/initramfs.conf = Debian's defaults with MODULES=list,
      RESUME=none (no host swap probing), COMPRESS=--compress;
      CONFDIR/modules = the module list (force_load: included + loaded).
      mkinitramfs hard-codes /lib/modules/$KVER and greps
      /boot/config-$KVER for CONFIG_RD_<COMP>, so for the run we create
      /lib/modules/$KVER as a hard-link copy of the cached tree (cp -al; a
      plain copy if that fails) and /boot/config-$KVER as a symlink, only if
      absent, and remove both afterwards.  A *symlinked* /lib/modules/$KVER
      does not work: copy_file() resolves links and puts the modules under
      var/cache/... in the image, with symlinks, and they are then not
      decompressed.

  dracut (dracut-core)
      dracut --conf EMPTY --confdir EMPTYDIR --tmpdir TMP --no-hostonly
             --kver KVER --kmoddir ROOT/lib/modules/KVER -m base
             --force-drivers "LIST" --compress COMP --no-early-microcode
             --force OUT
      --kmoddir reads the cached tree in place; -m base is dracut's minimal
      module set (base + udev-rules); --force-drivers = include + load, like
      MODULES=list.

  earlymod-pack
      PACK -q -b ROOT -k KVER -c CONF -o OUT, CONF = "load NAME NAME ...",
      tests/pack/init-modprobe.sh as /init, and busybox.

One untimed warm-up run per tool comes first (page cache; its image is the
one analysed), then the timed rounds, rotating the tool order each round.
Images are listed with unmkinitramfs (handles an uncompressed early cpio
followed by a compressed one); modules are the *.ko[.xz|.zst|.gz] entries.
With --baseline (default) each peer is also run once with an empty module
list, to show the image size that does not come from the modules.

Nothing is downloaded.  Temporary files live in one temp dir, removed on
exit (also on failure / SIGTERM), as are the /lib/modules and /boot entries
this script created.
"""

import argparse
import filecmp
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
DEFAULT_MODULES = os.path.join(REPO, "config", "default-modules.conf")
DEFAULT_CACHE = os.environ.get("EARLYMOD_CACHE", "/var/cache/earlymod")
MOD_SUFFIXES = (".ko", ".ko.xz", ".ko.zst", ".ko.gz")


def log(msg):
    print(f"packbench: {msg}", file=sys.stderr, flush=True)


def read_module_list(path):
    names = []
    with open(path) as f:
        for line in f:
            line = line.split("#", 1)[0]
            names.extend(line.split())
    if not names:
        raise SystemExit(f"packbench: no module names in {path}")
    return names


def mod_name(path):
    base = os.path.basename(path)
    for suf in MOD_SUFFIXES:
        if base.endswith(suf):
            return base[: -len(suf)].replace("-", "_")
    return None


# --------------------------------------------------------------------------
# Host set-up for mkinitramfs (/lib/modules/$KVER, /boot/config-$KVER)


class HostLinks:
    """Creates /lib/modules/KVER and /boot/config-KVER if absent; undo()
    removes exactly what was created."""

    def __init__(self):
        self.created = []  # (kind, path), undone in reverse order

    def ensure_modules(self, root, kver):
        src = os.path.join(root, "lib", "modules", kver)
        dst = os.path.join("/lib/modules", kver)
        if os.path.lexists(dst):
            # Usable only if it is the same tree (same modules.dep).
            try:
                with open(os.path.join(src, "modules.dep"), "rb") as a, open(
                    os.path.join(dst, "modules.dep"), "rb"
                ) as b:
                    same = a.read() == b.read()
            except OSError:
                same = False
            if not same:
                return f"{dst} exists and is not the cached tree; not touching it"
            if os.path.islink(dst):
                return (f"{dst} is a symlink: mkinitramfs would copy the modules "
                        "to their resolved path and not decompress them")
            return None
        if not os.path.isdir("/lib/modules"):
            os.makedirs("/lib/modules")
            self.created.append(("dir", "/lib/modules"))
        r = subprocess.run(["cp", "-al", src, dst], capture_output=True, text=True)
        if r.returncode != 0:
            shutil.rmtree(dst, ignore_errors=True)
            r = subprocess.run(["cp", "-a", src, dst], capture_output=True, text=True)
            if r.returncode != 0:
                shutil.rmtree(dst, ignore_errors=True)
                return f"cannot create {dst}: {r.stderr.strip()}"
        self.created.append(("tree", dst))
        return None

    def ensure_config(self, root, kver):
        dst = f"/boot/config-{kver}"
        if os.path.lexists(dst):
            return None
        src = os.path.join(root, "boot", f"config-{kver}")
        if not os.path.isfile(src):
            return f"no {src}"
        os.makedirs("/boot", exist_ok=True)
        os.symlink(src, dst)
        self.created.append(("link", dst))
        return None

    def undo(self):
        while self.created:
            kind, path = self.created.pop()
            try:
                if kind == "tree":
                    shutil.rmtree(path)
                elif kind == "link":
                    os.unlink(path)
                elif kind == "dir":
                    os.rmdir(path)  # only if still empty
            except OSError as e:
                log(f"cleanup of {path} failed: {e}")


# --------------------------------------------------------------------------
# Tools


class Tool:
    name = "?"

    def __init__(self, work, kname, root, kver, modules, args):
        self.work = os.path.join(work, kname, self.name)
        os.makedirs(self.work, exist_ok=True)
        self.root, self.kver, self.modules, self.args = root, kver, modules, args
        self.skip = None  # reason string when unavailable

    def prepare(self):
        pass

    def command(self, out, baseline=False):
        raise NotImplementedError

    def env(self):
        return None

    def run(self, out, baseline=False):
        """Returns (seconds, error or None)."""
        if os.path.exists(out):
            os.unlink(out)
        cmd = self.command(out, baseline)
        t0 = time.perf_counter()
        r = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                           stdin=subprocess.DEVNULL, env=self.env())
        dt = time.perf_counter() - t0
        if r.returncode != 0:
            tail = (r.stderr or r.stdout).decode(errors="replace").strip()[-600:]
            return dt, f"exit {r.returncode}: {tail}"
        if not os.path.isfile(out) or os.path.getsize(out) == 0:
            return dt, "exit 0 but no image written"
        return dt, None


class Mkinitramfs(Tool):
    name = "mkinitramfs"

    def __init__(self, *a, host=None):
        super().__init__(*a)
        self.host = host
        if not shutil.which("mkinitramfs"):
            self.skip = "not installed (apt-get install initramfs-tools-core)"

    def _confdir(self, modules):
        d = os.path.join(self.work, "conf-base" if not modules else "conf")
        for sub in ("conf.d", "hooks", "scripts"):
            os.makedirs(os.path.join(d, sub), exist_ok=True)
        with open(os.path.join(d, "initramfs.conf"), "w") as f:
            # Debian's /etc/initramfs-tools/initramfs.conf defaults, except
            # MODULES=list and RESUME=none (no swap probing on the host).
            f.write("MODULES=list\n"
                    f"BUSYBOX={self.args.busybox}\n"
                    "KEYMAP=n\n"
                    f"COMPRESS={self.args.compress}\n"
                    "DEVICE=\nNFSROOT=auto\nRUNSIZE=10%\nFSTYPE=auto\n"
                    "RESUME=none\n")
        with open(os.path.join(d, "modules"), "w") as f:
            f.writelines(m + "\n" for m in modules)
        return d

    def prepare(self):
        if self.skip:
            return
        if os.geteuid() != 0 and not os.path.isdir(f"/lib/modules/{self.kver}"):
            self.skip = f"needs root to create /lib/modules/{self.kver}"
            return
        why = (self.host.ensure_modules(self.root, self.kver)
               or self.host.ensure_config(self.root, self.kver))
        if why:
            self.skip = why
            return
        self.conf = self._confdir(self.modules)
        self.conf_base = self._confdir([])
        self.tmp = os.path.join(self.work, "tmp")
        os.makedirs(self.tmp, exist_ok=True)

    def env(self):
        e = dict(os.environ)
        e["TMPDIR"] = self.tmp
        return e

    def command(self, out, baseline=False):
        return ["mkinitramfs", "-d", self.conf_base if baseline else self.conf,
                "-o", out, self.kver]


class Dracut(Tool):
    name = "dracut"

    def __init__(self, *a):
        super().__init__(*a)
        if not shutil.which("dracut"):
            self.skip = "not installed (apt-get install dracut-core)"

    def prepare(self):
        if self.skip:
            return
        self.emptyconf = os.path.join(self.work, "empty.conf")
        open(self.emptyconf, "w").close()
        self.emptydir = os.path.join(self.work, "conf.d")
        self.tmp = os.path.join(self.work, "tmp")
        os.makedirs(self.emptydir, exist_ok=True)
        os.makedirs(self.tmp, exist_ok=True)

    def command(self, out, baseline=False):
        cmd = ["dracut", "-q", "--conf", self.emptyconf, "--confdir", self.emptydir,
               "--tmpdir", self.tmp, "--no-hostonly", "--kver", self.kver,
               "--kmoddir", os.path.join(self.root, "lib", "modules", self.kver),
               "-m", "base", "--compress", self.args.compress,
               "--no-early-microcode", "--force"]
        if not baseline:
            cmd += ["--force-drivers", " ".join(self.modules)]
        return cmd + [out]


class EarlymodPack(Tool):
    name = "earlymod-pack"

    def __init__(self, *a):
        super().__init__(*a)
        p = self.args.pack
        if not p:
            self.skip = "no --pack given"
        elif not (os.path.isfile(p) and os.access(p, os.X_OK)):
            self.skip = f"{p}: no such executable"

    def prepare(self):
        if self.skip:
            return
        self.conf = os.path.join(self.work, "pack.conf")
        # Like the peers' images: the set, an /init (the minimal busybox
        # script; mkinitramfs ships busybox too) and busybox itself.
        init = os.path.join(REPO, "tests", "pack", "init-modprobe.sh")
        with open(self.conf, "w") as f:
            f.write("load " + " ".join(self.modules) + "\n")
            f.write(f"init {init}\nfile /bin/busybox bin/busybox 0755\n"
                    "symlink bin/sh busybox\n")
            if self.args.pack_compress:
                f.write(f"compress {self.args.pack_compress}\n")

    def command(self, out, baseline=False):
        return [os.path.abspath(self.args.pack), "-q", "-b", self.root, "-k",
                self.kver, "-c", self.conf, "-o", out] + self.args.pack_arg


# --------------------------------------------------------------------------
# Image analysis


def analyse(image, scratch):
    """Unpacks IMAGE with unmkinitramfs; returns a dict with the module names
    and the unpacked bytes (hard links counted once), or None."""
    d = tempfile.mkdtemp(dir=scratch, prefix="unpack-")
    try:
        r = subprocess.run(["unmkinitramfs", image, d], capture_output=True,
                           stdin=subprocess.DEVNULL)
        if r.returncode != 0:
            return None
        seen = set()
        mods, mod_bytes, other_bytes, files = set(), 0, 0, 0
        for dirpath, _dirs, names in os.walk(d):
            for n in names:
                p = os.path.join(dirpath, n)
                st = os.lstat(p)
                if not os.path.isfile(p) or os.path.islink(p):
                    continue
                key = (st.st_dev, st.st_ino)
                if key in seen:
                    continue
                seen.add(key)
                files += 1
                m = mod_name(n)
                if m:
                    mods.add(m)
                    mod_bytes += st.st_size
                else:
                    other_bytes += st.st_size
        if files == 0:
            return None
        return {"modules": sorted(mods), "module_bytes": mod_bytes,
                "other_bytes": other_bytes, "files": files}
    finally:
        shutil.rmtree(d, ignore_errors=True)


# --------------------------------------------------------------------------
# Benchmark


def bench_kernel(kname, args, modules, work, host):
    kdir = os.path.join(args.cache, kname)
    root = os.path.join(kdir, "root")
    try:
        with open(os.path.join(kdir, "kver")) as f:
            kver = f.read().strip()
    except OSError:
        raise SystemExit(f"packbench: {kdir}/kver missing (run scripts/setup.sh)")
    if not os.path.isfile(os.path.join(root, "lib", "modules", kver, "modules.dep")):
        raise SystemExit(f"packbench: {root}/lib/modules/{kver} not depmod'ed")

    targs = (work, kname, root, kver, modules, args)
    tools = []
    if not args.no_mkinitramfs:
        tools.append(Mkinitramfs(*targs, host=host))
    if not args.no_dracut:
        tools.append(Dracut(*targs))
    tools.append(EarlymodPack(*targs))

    res = {t.name: {"times": [], "error": None, "skip": t.skip} for t in tools}
    for t in tools:
        try:
            t.prepare()
        except OSError as e:
            t.skip = f"prepare failed: {e}"
        res[t.name]["skip"] = t.skip
        if t.skip:
            log(f"{kname}: {t.name} skipped: {t.skip}")
    live = [t for t in tools if not t.skip]

    # Warm-up (untimed): its image is the one analysed.
    for t in list(live):
        out = os.path.join(t.work, "image")
        log(f"{kname}: warm-up {t.name}")
        _, err = t.run(out)
        if err:
            log(f"{kname}: {t.name} failed: {err}")
            res[t.name]["error"] = err
            live.remove(t)
            continue
        res[t.name]["bytes"] = os.path.getsize(out)
        res[t.name]["image"] = analyse(out, work)
        if args.keep:
            os.makedirs(args.keep, exist_ok=True)
            shutil.copy(out, os.path.join(args.keep, f"{kname}-{t.name}.img"))

    for i in range(args.rounds):
        order = live[i % len(live):] + live[: i % len(live)] if live else []
        for t in order:
            if res[t.name]["error"]:
                continue
            dt, err = t.run(os.path.join(t.work, "image"))
            if err:
                log(f"{kname}: {t.name} round {i + 1} failed: {err}")
                res[t.name]["error"] = err
                continue
            res[t.name]["times"].append(dt)
            log(f"{kname}: round {i + 1} {t.name} {dt:.3f}s")

    if args.baseline:
        for t in live:
            if t.name == "earlymod-pack" or res[t.name]["error"]:
                continue
            out = os.path.join(t.work, "baseline")
            dt, err = t.run(out, baseline=True)
            if err:
                log(f"{kname}: {t.name} baseline failed: {err}")
                continue
            res[t.name]["baseline_bytes"] = os.path.getsize(out)
            res[t.name]["baseline_image"] = analyse(out, work)
            res[t.name]["baseline_seconds"] = dt
    return kver, res


def fmt_int(n):
    return "n/a" if n is None else f"{n:,}"


def fmt_s(x):
    return "n/a" if x is None else f"{x:.3f}"


def report(kname, kver, res, args, modules):
    print(f"\n### {kname} ({kver}), {len(modules)} listed modules, "
          f"{args.rounds} rounds, peer compression {args.compress}\n")
    print("| tool | median s | min s | max s | image bytes | modules in image "
          "| unpacked module bytes | unpacked other bytes | files |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    med = {}
    for name, r in res.items():
        if r["skip"] or r["error"]:
            why = r["skip"] or ("failed: " + r["error"].splitlines()[0][:80])
            print(f"| {name} | {why} | | | | | | | |")
            continue
        ts = r["times"]
        med[name] = statistics.median(ts) if ts else None
        img = r.get("image")
        print(f"| {name} | {fmt_s(med[name])} | {fmt_s(min(ts) if ts else None)} "
              f"| {fmt_s(max(ts) if ts else None)} | {fmt_int(r.get('bytes'))} "
              f"| {len(img['modules']) if img else 'n/a'} "
              f"| {fmt_int(img['module_bytes']) if img else 'n/a'} "
              f"| {fmt_int(img['other_bytes']) if img else 'n/a'} "
              f"| {img['files'] if img else 'n/a'} |")

    base = [(n, r) for n, r in res.items() if r.get("baseline_bytes")]
    if base:
        print("\nPeers with an empty module list (fixed overhead of the image):\n")
        print("| tool | image bytes | files | image bytes due to the list "
              "| modules still in image |")
        print("|---|---:|---:|---:|---|")
        for n, r in base:
            bi = r.get("baseline_image")
            mods = (f"{len(bi['modules'])}: {' '.join(bi['modules'])}".rstrip(": ")
                    if bi else "n/a")
            print(f"| {n} | {fmt_int(r['baseline_bytes'])} "
                  f"| {bi['files'] if bi else 'n/a'} "
                  f"| {fmt_int(r['bytes'] - r['baseline_bytes'])} | {mods} |")

    em = res.get("earlymod-pack", {})
    if "earlymod-pack" in med:
        print("\nearlymod-pack / peer (time < 0.1 and size < 1 meet the goals "
              "against mkinitramfs):\n")
        print("| peer | time ratio | speed-up | size ratio | same module set |")
        print("|---|---:|---:|---:|---|")
        emi = em.get("image")
        for name in res:
            if name == "earlymod-pack" or name not in med:
                continue
            r = res[name]
            tr = (med["earlymod-pack"] / med[name]) if med[name] else None
            sr = em["bytes"] / r["bytes"]
            if emi and r.get("image"):
                a, b = set(emi["modules"]), set(r["image"]["modules"])
                if a == b:
                    same = "yes"
                else:
                    parts = []
                    if b - a:
                        parts.append("peer only: " + " ".join(sorted(b - a)))
                    if a - b:
                        parts.append("earlymod only: " + " ".join(sorted(a - b)))
                    same = "; ".join(parts)
            else:
                same = "n/a (image not listable)"
            print(f"| {name} | {fmt_s(tr)} | "
                  f"{'n/a' if not tr else f'{1 / tr:.1f}x'} | {sr:.3f} | {same} |")
    elif em.get("skip") or em.get("error"):
        print(f"\n(earlymod-pack not measured: {em.get('skip') or em.get('error')})")


def bench_indexes(kname, args, work):
    """The index part for the whole tree: earlymod-pack --indexes-only with
    every module of the tree against depmod -b on a hard-link copy of it.
    depmod reads every module file (decompressing .ko.xz) to compute what it
    writes; earlymod-pack derives the subset from the tree's existing
    indexes, so this compares the two ways of producing the same files."""
    base = os.path.join(args.cache, kname)
    with open(os.path.join(base, "kver")) as f:
        kver = f.read().strip()
    root = os.path.join(base, "root")
    moddir = os.path.join(root, "lib/modules", kver)
    with open(os.path.join(moddir, "modules.dep")) as f:
        names = [mod_name(l.split(":")[0]) for l in f if ":" in l]
    conf = os.path.join(work, f"all-{kname}.conf")
    with open(conf, "w") as f:
        f.write("include " + " ".join(names) + "\n")
    copy = os.path.join(work, f"depmod-{kname}")
    os.makedirs(os.path.join(copy, "lib/modules"))
    subprocess.run(["cp", "-al", moddir, os.path.join(copy, "lib/modules", kver)], check=True)
    out = os.path.join(work, f"idx-{kname}")
    times = {"earlymod-pack": [], "depmod": []}
    for _ in range(args.rounds):
        for tool in times:
            if tool == "depmod":
                cmd = ["depmod", "-b", copy, kver]
            else:
                cmd = [os.path.abspath(args.pack), "-q", "-b", root, "-k", kver,
                       "-c", conf, "--indexes-only", out]
            t0 = time.monotonic()
            subprocess.run(cmd, check=True, capture_output=True)
            times[tool].append(time.monotonic() - t0)
    em, dm = statistics.median(times["earlymod-pack"]), statistics.median(times["depmod"])
    print(f"\n### Index files for the whole tree, {kver} ({len(names)} modules, "
          f"median of {args.rounds})\n")
    print("| tool | time | ratio earlymod/peer |\n|---|---:|---:|")
    print(f"| earlymod-pack --indexes-only | {fmt_s(em)} | |")
    print(f"| depmod -b | {fmt_s(dm)} | {em / dm:.3f} |")
    same = all(filecmp.cmp(os.path.join(out, f), os.path.join(copy, "lib/modules", kver, f),
                           shallow=False)
               for f in ("modules.dep", "modules.softdep"))
    print(f"\nmodules.dep and modules.softdep byte-identical to depmod's: {same}")
    return {"earlymod-pack": em, "depmod": dm, "modules": len(names),
            "rounds": args.rounds, "identical": same}


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--pack", help="path to the earlymod-pack binary")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--kernel", action="append", choices=["k612", "k61"],
                    help="cached tree (repeatable; default k612)")
    ap.add_argument("--cache", default=DEFAULT_CACHE)
    ap.add_argument("--modules", default=DEFAULT_MODULES,
                    help="module list, one name per line, # comments")
    ap.add_argument("--compress", default="zstd", choices=["zstd", "gzip", "xz"],
                    help="peers' image compression (default zstd, Debian's)")
    ap.add_argument("--busybox", default="auto", choices=["auto", "y", "n"],
                    help="mkinitramfs BUSYBOX= (default auto, Debian's)")
    ap.add_argument("--pack-compress", help="add 'compress X' to the pack config")
    ap.add_argument("--pack-arg", action="append", default=[],
                    help="extra argument for earlymod-pack (repeatable)")
    ap.add_argument("--no-dracut", action="store_true")
    ap.add_argument("--no-mkinitramfs", action="store_true")
    ap.add_argument("--no-baseline", dest="baseline", action="store_false",
                    help="skip the peers' empty-list runs")
    ap.add_argument("--keep", metavar="DIR", help="copy the analysed images here")
    ap.add_argument("--json", metavar="FILE", help="also write the results as JSON")
    args = ap.parse_args()
    if args.rounds < 1:
        ap.error("--rounds must be >= 1")
    kernels = args.kernel or ["k612"]
    modules = read_module_list(args.modules)

    # Make SIGTERM/SIGHUP run the finally blocks below.
    def on_signal(sig, _frame):
        raise SystemExit(128 + sig)
    for s in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(s, on_signal)

    host = HostLinks()
    work = tempfile.mkdtemp(prefix="packbench-")
    results = {}
    try:
        print(f"Module list ({args.modules}): {' '.join(modules)}")
        for k in kernels:
            try:
                kver, res = bench_kernel(k, args, modules, work, host)
            finally:
                host.undo()  # /lib/modules/KVER is per kernel
            results[k] = {"kver": kver, "listed": len(modules), "rounds": args.rounds,
                          "compress": args.compress, "tools": res}
            report(k, kver, res, args, modules)
        if args.pack and os.path.isfile(args.pack):
            for k in kernels:
                results.setdefault(k, {})["indexes"] = bench_indexes(k, args, work)
        if args.json:
            with open(args.json, "w") as f:
                json.dump(results, f, indent=1)
    finally:
        host.undo()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
