"""The peers of earlymod as PID 1, for `boottest.py --bench` (time to root).

Each builder takes the kernel (vmtest.Kernel), a work directory and the
driver list, and returns the path of an initramfs image that boots the
bench's root disk (`root=UUID=...` on virtio-blk, an AHCI disk beside it)
with Debian's own tool:

  dracut          dracut 059 (dracut-core), no host-only, no systemd in the
                  image (the shell init of 99base): `-m "base rootfs-block
                  kernel-modules"` (+ udev-rules, fs-lib by dependency),
                  `--drivers LIST` (exactly these modules and their
                  dependencies; udev loads them by modalias at boot, the
                  kernel's request_module the filesystem), gzip.
  initramfs-tools mkinitramfs (initramfs-tools-core) with a private config
                  dir: MODULES=list, BUSYBOX=y, gzip, an empty `modules`
                  file and a hook calling manual_add_modules LIST (in the
                  image, loaded on demand by udev, like earlymod's
                  `include`; names in `modules` would be force-loaded).
                  mkinitramfs reads /lib/modules/KVER and /boot/config-KVER
                  only (no option): they are made for the build from the
                  cached tree and removed afterwards (initrd/packbench.py's
                  HostLinks).
  tiny-initramfs  mktirfs (tiny-initramfs-core) `-m no -M no` makes the image
                  with its init; the modules go in a second cpio member in
                  mktirfs's own layout (/NAME.ko files and /modules listing
                  them in load order): kmod's `modprobe -D -a` plan for the
                  list over the cached tree (tiny-initramfs cannot resolve
                  dependencies at boot, and mktirfs resolves only against
                  /lib/modules), decompressed, because its init calls
                  init_module and cannot decompress. It has no coldplug: it
                  loads every module listed, in order, so it gets the
                  drivers of the VM's devices and root filesystem, not the
                  whole driver list.

Also: the bench's root disk (boottest's root init plus one line, after the
uptime is read, printing the kernel's "Run /init as init process" line from
dmesg), and the figures derived from a serial log (kernel's time to /init,
earlymod's module times and own overhead).
"""

import contextlib
import os
import re
import shutil
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
sys.path.insert(0, HERE)
import vmtest as V  # noqa: E402

PEERS = ("dracut", "initramfs-tools", "tiny-initramfs")


def _run(cmd, **kw):
    p = subprocess.run(cmd, capture_output=True, text=True, stdin=subprocess.DEVNULL, **kw)
    if p.returncode != 0:
        tail = (p.stderr or p.stdout).strip().splitlines()[-3:]
        raise RuntimeError(f"{os.path.basename(cmd[0])} exit {p.returncode}: {' / '.join(tail)}")
    return p


@contextlib.contextmanager
def host_tree(k):
    """/lib/modules/KVER and /boot/config-KVER from the cached tree for the
    duration (mkinitramfs reads nothing else); removes what it made."""
    sys.path.insert(0, os.path.join(REPO, "initrd"))
    import packbench  # noqa: E402
    host = packbench.HostLinks()
    try:
        why = host.ensure_modules(k.root, k.kver) or host.ensure_config(k.root, k.kver)
        if why:
            raise RuntimeError(why)
        yield
    finally:
        host.undo()


def _fresh(d):
    shutil.rmtree(d, ignore_errors=True)
    os.makedirs(d)
    return d


def dracut_image(k, work, drivers):
    """dracut 059 without host-only and without systemd, exactly `drivers`
    (and their dependencies) from the cached tree."""
    if not shutil.which("dracut"):
        raise RuntimeError("dracut not installed (apt-get install dracut-core)")
    d = _fresh(os.path.join(work, "dracut"))
    conf = os.path.join(d, "empty.conf")
    open(conf, "w").close()
    os.makedirs(os.path.join(d, "conf.d"))
    os.makedirs(os.path.join(d, "tmp"))
    img = os.path.join(d, "initrd.img")
    _run(["dracut", "-q", "--conf", conf, "--confdir", os.path.join(d, "conf.d"),
          "--tmpdir", os.path.join(d, "tmp"), "--no-hostonly", "--kver", k.kver,
          "--kmoddir", k.moddir, "-m", "base rootfs-block kernel-modules",
          "--drivers", " ".join(drivers), "--compress", "gzip",
          "--no-early-microcode", "--force", img])
    return img


MKINITRAMFS_HOOK = """#!/bin/sh
# The bench's drivers: in the image, loaded on demand (udev, request_module).
case "$1" in prereqs) exit 0 ;; esac
. /usr/share/initramfs-tools/hook-functions
manual_add_modules @MODS@
"""


def initramfs_tools_image(k, work, drivers):
    """mkinitramfs with a private config dir (MODULES=list, BUSYBOX=y, gzip)
    and a hook adding `drivers`."""
    if not shutil.which("mkinitramfs"):
        raise RuntimeError("mkinitramfs not installed (apt-get install initramfs-tools-core)")
    d = _fresh(os.path.join(work, "initramfs-tools"))
    conf = os.path.join(d, "conf")
    for sub in ("conf.d", "hooks", "scripts"):
        os.makedirs(os.path.join(conf, sub))
    with open(os.path.join(conf, "initramfs.conf"), "w") as f:
        # Debian's defaults, except MODULES=list, gzip and no resume probing.
        f.write("MODULES=list\nBUSYBOX=y\nKEYMAP=n\nCOMPRESS=gzip\nDEVICE=\n"
                "NFSROOT=auto\nRUNSIZE=10%\nFSTYPE=auto\nRESUME=none\n")
    open(os.path.join(conf, "modules"), "w").close()
    V.write(os.path.join(conf, "hooks", "bench-drivers"),
            MKINITRAMFS_HOOK.replace("@MODS@", " ".join(drivers)).encode(), 0o755)
    tmp = os.path.join(d, "tmp")
    os.makedirs(tmp)
    img = os.path.join(d, "initrd.img")
    with host_tree(k):
        _run(["mkinitramfs", "-d", conf, "-o", img, k.kver], env=dict(os.environ, TMPDIR=tmp))
    return img


def tiny_initramfs_image(k, work, mods):
    """mktirfs's image (its init, no modules, no microcode) plus a member
    with kmod's load plan of `mods` in mktirfs's layout, decompressed."""
    if not shutil.which("mktirfs"):
        raise RuntimeError("mktirfs not installed (apt-get install tiny-initramfs-core)")
    d = _fresh(os.path.join(work, "tiny-initramfs"))
    tmp = os.path.join(d, "tmp")
    os.makedirs(tmp)
    base = os.path.join(d, "base.img")
    _run(["mktirfs", "-o", base, "-m", "no", "-M", "no", "-d", "no", k.kver],
         env=dict(os.environ, TMPDIR=tmp))
    stage = os.path.join(d, "stage")
    os.makedirs(stage)
    lines = []
    for rel in k.show_depends(mods):
        name = re.sub(r"\.ko(\.(gz|xz|zst))?$", ".ko", os.path.basename(rel))
        V.write(os.path.join(stage, name), V.read_plain(os.path.join(k.moddir, rel)))
        lines.append(f"/{name}\n")
    V.write(os.path.join(stage, "modules"), "".join(lines).encode())
    mods_cpio = os.path.join(d, "modules.cpio")
    V.pack(stage, mods_cpio)
    with open(mods_cpio, "rb") as f:
        gz = subprocess.run(["gzip", "-9", "-n"], input=f.read(), check=True,
                            capture_output=True).stdout
    img = os.path.join(d, "initrd.img")
    with open(base, "rb") as f, open(img, "wb") as out:
        out.write(f.read())
        out.write(gz)
    return img


BUILDERS = {"dracut": dracut_image, "initramfs-tools": initramfs_tools_image,
            "tiny-initramfs": tiny_initramfs_image}


# ----------------------------------------------------------------- the root

KINIT_LINE = ("echo \"@@ROOT kinit=$(dmesg | grep -m1 'Run .* as init process' "
              "| cut -d']' -f1 | tr -d '[ ')\"\n")


def bench_root(d, root_init, label, uuid):
    """The root disk of the bench: root_init (boottest.ROOT_INIT) with a line
    after the uptime one printing the kernel's timestamp of "Run /init as
    init process" (printk time, from dmesg: the line is KERN_INFO and the
    console's loglevel is 4)."""
    lines = root_init.splitlines(keepends=True)
    at = next(i for i, line in enumerate(lines) if "@@ROOT uptime=" in line) + 1
    text = "".join(lines[:at]) + KINIT_LINE + "".join(lines[at:])
    apps = ("sh", "cat", "cut", "awk", "sort", "tr", "ls", "sed", "sync", "poweroff",
            "sleep", "dmesg", "grep")
    img = V.busybox_root(d, shutil.which("busybox"), apps, {"sbin/init": text},
                         ["-L", label, "-U", uuid])
    disk2 = os.path.join(d, "disk2.img")
    with open(disk2, "wb") as f:
        f.truncate(8 << 20)
    return img, disk2


# ----------------------------------------------------------------- figures

def kernel_to_init(text):
    """Seconds from kernel start to "Run /init as init process"."""
    m = re.search(r"@@ROOT kinit=([0-9.]+)", text)
    return float(m.group(1)) if m else None


def report_modules(text):
    """{module: seconds} from earlymod's boot report (@@REPORT lines)."""
    return {m.group(1): int(m.group(2)) / 1e6
            for m in re.finditer(r"@@REPORT module (\S+) (\d+) us", text)}


def live_modules(text):
    m = re.search(r"@@ROOT live=(.*)", text)
    return sorted(m.group(1).split()) if m else []


class CriticalPath:
    """Module init on the root's critical path: the root disk's driver chain
    (on 6.1 virtio_pci, whose load makes the virtio device appear, then
    virtio_blk) followed by the root filesystem's (ext4), each the longest
    chain through what modprobe loads before a module (modules.dep and
    softdeps: `modprobe -D`), weighted by the load times earlymod reports.
    Modules not in the report (built in) weigh nothing."""

    def __init__(self, k, heads=("virtio_pci", "virtio_blk", "ext4")):
        self.k, self.heads, self._pre = k, heads, {}

    def before(self, mod):
        if mod not in self._pre:
            try:
                plan = [V.modname(r) for r in self.k.show_depends([mod])]
            except RuntimeError:
                plan = []
            self._pre[mod] = [m for m in plan if m != V.modname(mod)]
        return self._pre[mod]

    def seconds(self, times):
        memo = {}

        def longest(mod):
            if mod not in memo:
                memo[mod] = 0.0   # cycles (none expected) end here
                memo[mod] = times.get(mod, 0.0) + max(
                    [longest(p) for p in self.before(mod)], default=0.0)
            return memo[mod]
        return sum(longest(h) for h in self.heads if h in times)


def report_passes(text):
    """Wall seconds of the boot report's loading passes, summed."""
    us = [int(m.group(1)) for m in re.finditer(r"@@REPORT pass .*, (\d+) us", text)]
    return sum(us) / 1e6 if us else None


OVERHEAD_KEYS = ("root_s", "kernel_to_init_s", "critical_modules_s", "own_s",
                 "passes_s", "outside_passes_s")


def overhead(text, path):
    """Seconds: time to root, kernel to /init, module init on the critical
    path, own = the first minus the other two (earlymod's own overhead,
    which includes waiting for modules off the root's path, e.g. the AHCI
    chain of the same coldplug batch); passes = the loading passes' wall
    time, outside_passes = time to root - kernel to /init - passes (PID 1's
    time outside module loading). None where unreadable."""
    up = re.search(r"@@ROOT uptime=([0-9.]+)", text)
    up = float(up.group(1)) if up else None
    kinit = kernel_to_init(text)
    times = report_modules(text)
    crit = path.seconds(times) if times else None
    passes = report_passes(text)
    own = outside = None
    if None not in (up, kinit, crit):
        own = up - kinit - crit
    if None not in (up, kinit, passes):
        outside = up - kinit - passes
    return {"root_s": up, "kernel_to_init_s": kinit, "critical_modules_s": crit,
            "own_s": own, "passes_s": passes, "outside_passes_s": outside}


# ----------------------------------------------------------------- tables

# (label, earlymod variant, peer, goal) of the peers table.
PEER_RATIOS = [("earlymod / dracut", "earlymod", "dracut", 0.5),
               ("earlymod / initramfs-tools", "earlymod", "initramfs-tools", 0.5),
               ("earlymod / tiny-initramfs", "earlymod", "tiny-initramfs", 1.0),
               ("handoff=root / busybox+kmod", "earlymod handoff=root", "busybox+kmod", 0.6)]


def print_tables(results):
    def cell(x):
        return "n/a" if x is None else f"{x:.3f}"

    def failure(k, n):
        f = k["failed"].get(n) or []
        return f"FAILED ({f[0]})" if f and k["median_s"].get(n) is None else None
    print("\n### Time to root against the peers (median of the rounds, s)\n")
    print("| kernel | image | time to root | kernel to /init | image bytes | failed rounds |")
    print("|---|---|---:|---:|---:|---|")
    for k in results.values():
        for n, t in k["median_s"].items():
            bad = failure(k, n)
            nf = len(k["failed"].get(n) or [])
            print(f"| {k['kver']} | {n} | {bad or cell(t)} | {cell(k['kernel_to_init_s'].get(n))} "
                  f"| {k['image_bytes'].get(n, 'n/a')} | {nf} of {k['rounds']} |")
    print("\n| kernel | ratio | value | goal | met |")
    print("|---|---|---:|---|---|")
    for k in results.values():
        if not k["peers"]:
            continue
        m = k["median_s"]
        for label, ours, peer, goal in PEER_RATIOS:
            a, b = m.get(ours), m.get(peer)
            r = a / b if a and b else None
            met = "n/a" if r is None else ("yes" if r <= goal else "**no**")
            why = failure(k, peer) or failure(k, ours) or ""
            print(f"| {k['kver']} | {label} | {cell(r) if r else why or 'n/a'} | <= {goal:g} | {met} |")
    print("\n### earlymod's own overhead (median of the rounds, s)\n")
    print("own = time to root - kernel to /init - module init on the critical path "
          "(the root disk's driver chain, then the root filesystem's, longest "
          "dependency chain each, weighted by the boot report's per-module times); "
          "it includes waiting for modules off the root's path in the same batch. "
          "Outside passes = time to root - kernel to /init - the loading passes' wall time.\n")
    print("| kernel | variant | time to root | kernel to /init | critical-path modules | own "
          "| loading passes | outside passes |")
    print("|---|---|---:|---:|---:|---:|---:|---:|")
    for k in results.values():
        for n, o in k["overhead"].items():
            print(f"| {k['kver']} | {n} | " + " | ".join(cell(o.get(key)) for key in OVERHEAD_KEYS)
                  + " |")
