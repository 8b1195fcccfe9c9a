#!/usr/bin/env python3
"""Boot the cached Debian kernels under QEMU and load real modules.

    python3 qemu/vmtest.py [--only BOOT[,BOOT]] [--loader earlymod|earlymod-tiny|kmod|busybox]
                           [--bench [--rounds N]] [-j N]

For every boot in qemu/scenarios.py: stage the module trees (closure of the
scenario modules copied from the cached kernel tree, recompressed if asked,
indexed by the machine's depmod), busybox, the loader under test as
/sbin/{modprobe,insmod,rmmod,lsmod}, and a generated /init; pack it with
cpio; boot it with QEMU (TCG); parse the `@@EM` lines of the serial log and
check every scenario. Prints `vm: NAME ok|FAIL (reason)` per scenario and
`N passed, M failed`; exits 1 if anything failed.

The arm64 and riscv64 boots run qemu-system-aarch64 / -riscv64 (-M virt)
with the cross builds (out/aarch64/earlymod, out/riscv64/earlymod, and their
-tiny twins; `make cross`) and Debian's busybox for that machine; kmod and
busybox's modprobe exist only as the host's x86_64 builds, so with those
loaders their scenarios are shown as skipped.

Environment: QEMU_LOADER (default earlymod), QEMU_EARLYMOD (the x86_64
earlymod binary; default out/earlymod-static, else out/earlymod), EARLYMOD_CACHE
(default /var/cache/earlymod), QEMU_WORKDIR (default /tmp/earlymod-vm, where
the images, staged trees and serial logs of the last run stay),
QEMU_TIMEOUT (seconds per boot, overrides the boot's own), QEMU_GZIP=1
(gzip the initrd).
"""

import argparse
import concurrent.futures
import dataclasses
import hashlib
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
sys.path.insert(0, HERE)
import scenarios as S  # noqa: E402

CACHE = os.environ.get("EARLYMOD_CACHE", "/var/cache/earlymod")
WORK = os.environ.get("QEMU_WORKDIR", "/tmp/earlymod-vm")
MARK = "@@EM"
# Busybox applets that must not shadow the loader under test.
BB_SKIP = {"modprobe", "insmod", "rmmod", "lsmod", "depmod", "modinfo",
           "init", "linuxrc"}
LOADER_APPLETS = ["modprobe", "insmod", "rmmod", "lsmod"]
ERRLINE = re.compile(r"ERROR|FATAL|WARNING|[Ee]rror|can't|could not|fail|unknown")
# What differs between the guests' machines. "loaders": the loader builds
# for that machine (kmod and busybox's modprobe are the host's, x86_64 only).
ARCHES = {
    "x86_64": {
        "qemu": ["qemu-system-x86_64", "-accel", "tcg", "-cpu", "max", "-m", "512"],
        "console": "ttyS0",
        "busybox": lambda: shutil.which("busybox"),
        "loaders": {"earlymod": lambda: earlymod_binary(),
                    "earlymod-tiny": lambda: os.path.join(REPO, "out/earlymod-tiny"),
                    "kmod": lambda: shutil.which("kmod"),
                    "busybox": None},
    },
    "arm64": {
        "qemu": ["qemu-system-aarch64", "-M", "virt", "-cpu", "max", "-m", "1024"],
        "console": "ttyAMA0",
        "busybox": lambda: os.path.join(CACHE, "karm64", "busybox"),
        "loaders": {"earlymod": lambda: os.path.join(REPO, "out/aarch64/earlymod"),
                    "earlymod-tiny": lambda: os.path.join(REPO, "out/aarch64/earlymod-tiny")},
        # the arm64 busybox lists its applets under the user-mode emulator
        "run": ["qemu-aarch64-static"],
    },
    "riscv64": {
        # OpenSBI (QEMU's -bios default) starts the kernel's boot/vmlinux
        "qemu": ["qemu-system-riscv64", "-M", "virt", "-cpu", "max", "-m", "1024"],
        "console": "ttyS0",
        "busybox": lambda: os.path.join(CACHE, "kriscv64", "busybox"),
        "loaders": {"earlymod": lambda: os.path.join(REPO, "out/riscv64/earlymod"),
                    "earlymod-tiny": lambda: os.path.join(REPO, "out/riscv64/earlymod-tiny")},
        "run": ["qemu-riscv64-static"],
    },
}
CRASH = re.compile(r"BUG:|Oops|general protection fault|Call Trace|"
                   r"kernel BUG|Kernel panic|segfault|traps:")


def sh(cmd, **kw):
    """Run a command (list), return stdout; raise with stderr on failure."""
    p = subprocess.run(cmd, capture_output=True, text=True, **kw)
    if p.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)}: exit {p.returncode}: {p.stderr.strip()}")
    return p.stdout


# ----------------------------------------------------------------- kernels

class Kernel:
    def __init__(self, name):
        self.name = name
        self.root = os.path.join(CACHE, name, "root")
        with open(os.path.join(CACHE, name, "kver")) as f:
            self.kver = f.read().strip()
        self.moddir = os.path.join(self.root, "lib/modules", self.kver)
        self.vmlinuz = os.path.join(self.root, "boot", "vmlinuz-" + self.kver)
        if not os.path.exists(self.vmlinuz):   # riscv64: an Image with an EFI stub
            self.vmlinuz = os.path.join(self.root, "boot", "vmlinux-" + self.kver)
        self._closures = {}

    def show_depends(self, mods):
        """kmod's load plan for mods: module file paths relative to moddir."""
        conf = os.path.join(WORK, "modprobe.d")   # written by main()
        out = sh(["modprobe", "-d", self.root, "-S", self.kver, "-C", conf,
                  "-D", "-a"] + list(mods))
        rels = []
        for line in out.splitlines():
            w = line.split()
            if len(w) >= 2 and w[0] == "insmod":
                rel = os.path.relpath(w[1], self.moddir)
                if rel not in rels:
                    rels.append(rel)
        return rels

    def closure(self, mods):
        """Module names (as /proc/modules spells them) of kmod's closure."""
        key = tuple(mods)
        if key not in self._closures:
            self._closures[key] = sorted({modname(r) for r in self.show_depends(mods)})
        return self._closures[key]


def modname(path):
    base = os.path.basename(path)
    base = re.sub(r"\.ko(\.(gz|xz|zst))?$", "", base)
    return base.replace("-", "_")


# ----------------------------------------------------------------- staging

def read_plain(path):
    """A module file's ELF bytes, whatever its compression."""
    if path.endswith(".xz"):
        return subprocess.run(["xz", "-dc", path], check=True, capture_output=True).stdout
    if path.endswith(".zst"):
        return subprocess.run(["zstd", "-qdc", path], check=True, capture_output=True).stdout
    if path.endswith(".gz"):
        return subprocess.run(["gzip", "-dc", path], check=True, capture_output=True).stdout
    with open(path, "rb") as f:
        return f.read()


COMPRESS = {
    "gz": ["gzip", "-9n", "-c"],
    "zst": ["zstd", "-q", "-9", "-c"],
    # kbuild's settings: what the kernel's own xz decoder accepts
    "xz": ["xz", "--check=crc32", "--lzma2=dict=1MiB", "-c"],
}


def compress(data, kind):
    if kind == "ko":
        return data
    return subprocess.run(COMPRESS[kind], input=data, check=True,
                          capture_output=True).stdout


def write(path, data, mode=0o644):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as f:
        f.write(data)
    os.chmod(path, mode)


def strip_ko(rel):
    return re.sub(r"\.ko(\.(gz|xz|zst))?$", ".ko", rel)


def stage_tree(k, root, kind, mods, bad_from=None):
    """Copy the closure of mods from kernel k to ROOT/lib/modules/KVER,
    compressed as kind ("native" keeps Debian's files), and index it.
    Recompressed trees are cached in WORK/trees (recompressing is the slow
    part of building an image); delete that directory to rebuild them."""
    if bad_from is None and kind != "native":
        key = hashlib.sha1(repr((k.kver, kind, sorted(mods), COMPRESS,
                                 os.path.getmtime(k.moddir))).encode()).hexdigest()[:12]
        cached = os.path.join(WORK, "trees", f"{k.name}-{kind}-{key}")
        if not os.path.isdir(cached):
            tmp = cached + ".tmp"
            shutil.rmtree(tmp, ignore_errors=True)
            _stage_tree(k, tmp, kind, mods)
            os.rename(tmp, cached)
        shutil.copytree(cached, root, symlinks=True)
        return
    _stage_tree(k, root, kind, mods, bad_from)


def _stage_tree(k, root, kind, mods, bad_from=None):
    dst = os.path.join(root, "lib/modules", k.kver)
    os.makedirs(dst, exist_ok=True)
    rels = k.show_depends(mods)
    for rel in rels:
        src = os.path.join(k.moddir, rel)
        if kind == "native":
            os.makedirs(os.path.dirname(os.path.join(dst, rel)), exist_ok=True)
            shutil.copy(src, os.path.join(dst, rel))
        elif kind == "gz":
            # indexed as plain .ko first (kmod's depmod skips .ko.gz)
            write(os.path.join(dst, strip_ko(rel)), read_plain(src))
        else:
            new = strip_ko(rel) + ("" if kind == "ko" else "." + kind)
            write(os.path.join(dst, new), compress(read_plain(src), kind))
    for f in ("modules.builtin", "modules.builtin.modinfo", "modules.order"):
        if os.path.exists(os.path.join(k.moddir, f)):
            shutil.copy(os.path.join(k.moddir, f), dst)
    spoil = []
    if bad_from is not None:
        spoil = stage_bad(k, dst, bad_from)
    sh(["depmod", "-b", root, k.kver])
    for fn in spoil:
        fn()
    if kind == "gz":
        # gzip the files and derive the text modules.dep; without
        # modules.dep.bin the loader falls back to the text file.
        for rel in rels:
            p = os.path.join(dst, strip_ko(rel))
            write(p + ".gz", compress(read_plain(p), "gz"))
            os.unlink(p)
        dep = os.path.join(dst, "modules.dep")
        with open(dep) as f:
            text = f.read()
        with open(dep, "w") as f:
            f.write(re.sub(r"\.ko\b", ".ko.gz", text))
        os.unlink(dep + ".bin")


def stage_bad(k, dst, other):
    """Scenario 7's bad modules (see scenarios.py), made from nlmon. Returns
    the spoilers to run after depmod indexed the still-good files."""
    extra = os.path.join(dst, "extra")
    nlmon = read_plain(os.path.join(k.moddir, k.show_depends(["nlmon"])[0]))
    foreign = read_plain(os.path.join(other.moddir, other.show_depends(["nlmon"])[0]))
    write(os.path.join(extra, "emt_corrupt.ko"), nlmon)
    write(os.path.join(extra, "emt_badxz.ko.xz"), compress(nlmon, "xz"))
    write(os.path.join(extra, "emt_trunc.ko.zst"), compress(nlmon, "zst"))
    write(os.path.join(extra, "emt_missing.ko"), nlmon)
    write(os.path.join(extra, "emt_foreign.ko"), foreign)

    def corrupt():   # keep the ELF magic, garble the rest of the header
        p = os.path.join(extra, "emt_corrupt.ko")
        write(p, nlmon[:4] + bytes([0xA5]) * 4092 + nlmon[4096:])

    def badxz():     # flip bytes in the middle of the compressed stream
        p = os.path.join(extra, "emt_badxz.ko.xz")
        with open(p, "rb") as f:
            d = bytearray(f.read())
        for i in range(len(d) // 2, len(d) // 2 + 64):
            d[i] ^= 0x5A
        write(p, bytes(d))

    def trunc():
        p = os.path.join(extra, "emt_trunc.ko.zst")
        os.truncate(p, os.path.getsize(p) // 2)

    def missing():
        os.unlink(os.path.join(extra, "emt_missing.ko"))
    return [corrupt, badxz, trunc, missing]


def ldd_libs(binary):
    """Shared libraries (and the dynamic loader) a binary needs; [] if static."""
    p = subprocess.run(["ldd", binary], capture_output=True, text=True)
    if p.returncode != 0:
        return []
    libs = []
    for line in p.stdout.splitlines():
        m = re.search(r"(/\S+)\s+\(0x", line)
        if m:
            libs.append(m.group(1))
    return libs


def install_binary(stage, src, dest):
    write(os.path.join(stage, dest.lstrip("/")), open(src, "rb").read(), 0o755)
    for lib in ldd_libs(src):
        d = os.path.join(stage, lib.lstrip("/"))
        if not os.path.exists(d):
            os.makedirs(os.path.dirname(d), exist_ok=True)
            shutil.copy(os.path.realpath(lib), d)


def symlink(stage, path, target):
    p = os.path.join(stage, path.lstrip("/"))
    os.makedirs(os.path.dirname(p), exist_ok=True)
    if os.path.lexists(p):
        os.unlink(p)
    os.symlink(target, p)


def earlymod_binary():
    """$QEMU_EARLYMOD, else the static loader out/earlymod-static, else out/earlymod."""
    for b in (os.environ.get("QEMU_EARLYMOD"), "out/earlymod-static", "out/earlymod"):
        if b:
            p = os.path.join(REPO, b)
            if os.path.exists(p):
                return p
    raise RuntimeError("no out/earlymod-static or out/earlymod: run `make` first")


def install_loader(stage, loader, arch="x86_64"):
    """Put the loader under test (its build for arch) into the /sbin/modprobe
    etc. slots."""
    applets = LOADER_APPLETS
    builds = ARCHES[arch]["loaders"]
    if loader not in builds:
        raise RuntimeError(f"no {loader} build for {arch}")
    if loader == "busybox":
        target = "/bin/busybox"
    else:
        target = "/bin/kmod" if loader == "kmod" else "/bin/earlymod"
        install_binary(stage, builds[loader](), target)
        if loader == "earlymod-tiny":
            applets = ["modprobe", "insmod"]
    for a in applets:
        symlink(stage, "/sbin/" + a, target)


def stage_base(stage, arch="x86_64"):
    """busybox (arch's build) with its applet links (minus the module tools),
    /dev nodes, mount points, modprobe.d."""
    busybox = ARCHES[arch]["busybox"]()
    install_binary(stage, busybox, "/bin/busybox")
    for path in sh(ARCHES[arch].get("run", []) + [busybox, "--list-full"]).split():
        if os.path.basename(path) not in BB_SKIP and path != "bin/busybox":
            symlink(stage, "/" + path, "/bin/busybox")
    for d in ("proc", "sys", "dev", "tmp", "run", "etc/modprobe.d"):
        os.makedirs(os.path.join(stage, d), exist_ok=True)
    os.mknod(os.path.join(stage, "dev/console"), 0o600 | 0o020000, os.makedev(5, 1))
    os.mknod(os.path.join(stage, "dev/null"), 0o666 | 0o020000, os.makedev(1, 3))
    write(os.path.join(stage, "etc/modprobe.d/vmtest.conf"), S.MODPROBE_D.encode())


def busybox_root(d, busybox, apps, inits, mkfs_args):
    """D/root.img: a 32 MB ext4 (`mkfs.ext4 -d`, with mkfs_args such as -U
    UUID) holding busybox with links for apps and the scripts of inits
    (image path -> text) — the root filesystem the boot tests switch to."""
    tree = os.path.join(d, "rootfs")
    shutil.rmtree(tree, ignore_errors=True)
    for sub in ("bin", "sbin", "dev", "proc", "sys", "run", "tmp"):
        os.makedirs(os.path.join(tree, sub))
    shutil.copy(busybox, os.path.join(tree, "bin/busybox"))
    for app in apps:
        os.symlink("busybox", os.path.join(tree, "bin", app))
    for path, text in inits.items():
        write(os.path.join(tree, path.lstrip("/")), text.encode(), 0o755)
    img = os.path.join(d, "root.img")
    if os.path.exists(img):
        os.unlink(img)
    sh(["mkfs.ext4", "-q", "-F", "-d", tree] + list(mkfs_args) + [img, "32M"])
    return img


def pack(stage, img):
    """newc cpio of the stage dir (issue 4 replaces this with our writer)."""
    names = subprocess.run("find . -mindepth 1 | sort", shell=True, cwd=stage,
                           check=True, capture_output=True).stdout
    data = subprocess.run(["cpio", "-o", "-H", "newc", "-R", "0:0", "--quiet"],
                          input=names, cwd=stage, check=True,
                          capture_output=True).stdout
    if os.environ.get("QEMU_GZIP") == "1":
        data = subprocess.run(["gzip", "-1", "-n"], input=data, check=True,
                              capture_output=True).stdout
    write(img, data)


# ----------------------------------------------------------------- /init

INIT_PRELUDE = r"""#!/bin/sh
# Generated by qemu/vmtest.py (boot @BOOT@, loader @LOADER@). Do not edit.
export PATH=/sbin:/bin:/usr/sbin:/usr/bin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev 2>/dev/null
# The kernel must not load modules behind the loader's back (request_module
# runs /sbin/modprobe): every module is loaded by the command under test,
# so softdeps and dependencies really have to be honoured.
echo /bin/false > /proc/sys/kernel/modprobe
KVER=$(uname -r)
SET="@SET@"
SCEN=boot
em() { echo "@@EM $SCEN $*"; }
live() { awk '$5 == "Live" {print $1}' /proc/modules | sort | tr '\n' ' '; }
# run TAG CMD...: exit code, output and the live modules afterwards.
# Debian's static busybox sh runs its own applets first (standalone shell),
# so a bare `modprobe` would be busybox's: call the /sbin one by path.
run() {
    tag=$1; cmd=$2; shift 2
    case $cmd in */*) ;; *) [ -e "/sbin/$cmd" ] && cmd=/sbin/$cmd ;; esac
    "$cmd" "$@" > /tmp/out 2>&1
    rc=$?
    sed "s/^/@@EM $SCEN $tag.out: /" /tmp/out
    em "$tag.rc=$rc"
    em "$tag.live=$(live)"
}
param() { em "$1=$(cat "/sys/module/$2/parameters/$3" 2>&1)"; }
# Unload everything with busybox's rmmod (not the loader under test),
# leaves first, a few passes.
unload_all() {
    i=0
    while [ -n "$(cat /proc/modules)" ] && [ $i -lt 30 ]; do
        for m in $(awk '$3 == 0 {print $1}' /proc/modules); do
            busybox rmmod "$m" 2>/dev/null
        done
        i=$((i + 1))
    done
}
clean() {
    unload_all
    if [ -n "$(cat /proc/modules)" ]; then em "clean=0 left: $(live)"; else em clean=1; fi
}
usetree() {
    umount "/lib/modules/$KVER" 2>/dev/null
    [ -n "$1" ] && mount --bind "/alt/$1/lib/modules/$KVER" "/lib/modules/$KVER"
}
up() { cut -d' ' -f1 /proc/uptime; }
begin() { SCEN=$1; dmesg -c > /dev/null; em "t0=$(up)"; em begin; }
end() { dmesg -c | sed "s/^/@@EM $SCEN dmesg: /"; em "t1=$(up)"; em end; SCEN=boot; }
dmesg -c > /dev/null
em "t=$(up)"
em "start kver=$KVER loader=@LOADER@"
"""

INIT_TRAILER = r"""
em done
sync
poweroff -f
sleep 10
"""


def init_script(boot, loader, body):
    return (INIT_PRELUDE.replace("@BOOT@", boot.name)
            .replace("@LOADER@", loader).replace("@SET@", " ".join(boot.set))
            + body + INIT_TRAILER)


def scenario_body(boot):
    parts = []
    for sc in boot.scenarios:
        parts.append(f"\n# --- {sc.name}: {sc.what}\nbegin {sc.name}\n"
                     f"{sc.script.rstrip()}\nend\n")
    return "".join(parts)


def build_image(boot, loader, body, bench=False):
    """Stage and pack one boot's initramfs; returns the image path."""
    k = Kernel(boot.kernel)
    # the bad modules' foreign nlmon: the other x86 kernel's (vermagic and
    # modversions differ), or on arm64 the x86_64 6.12 one (another machine)
    other = Kernel("k61" if boot.kernel == "k612" else "k612")
    d = os.path.join(WORK, boot.name)
    shutil.rmtree(d, ignore_errors=True)
    stage = os.path.join(d, "stage")
    stage_base(stage, boot.arch)
    install_loader(stage, loader, boot.arch)
    if bench:   # all three loaders side by side
        install_binary(stage, earlymod_binary(), "/bin/earlymod")
        install_binary(stage, shutil.which("kmod"), "/bin/kmod")
        symlink(stage, "/bench/kmod/modprobe", "/bin/kmod")
        symlink(stage, "/bench/busybox/modprobe", "/bin/busybox")
        symlink(stage, "/bench/earlymod/modprobe", "/bin/earlymod")
    mods = boot.set + ["libcrc32c", "loop"] + S.GOOD_EXTRA
    for tree, kind in boot.trees.items():
        if tree == "main":
            stage_tree(k, stage, kind, mods, bad_from=other)
        else:
            stage_tree(k, os.path.join(stage, "alt", tree), kind, boot.set)
    write(os.path.join(stage, "init"), init_script(boot, loader, body).encode(), 0o755)
    img = os.path.join(d, "initrd.img")
    pack(stage, img)
    return k, img


def qemu_argv(k, img, log, append, extra=(), arch="x86_64"):
    """QEMU (TCG, 2 vCPUs, no network, serial console to `log`) booting
    kernel k with initramfs img on arch's machine; `extra` adds devices."""
    a = ARCHES[arch]
    return (a["qemu"] + ["-smp", "2", "-display", "none", "-monitor", "none", "-nic", "none",
                         "-no-reboot", "-serial", "file:" + log, "-kernel", k.vmlinuz,
                         "-initrd", img] + list(extra) +
            ["-append", f"console={a['console']} panic=-1 " + append])


def run_qemu(cmd, log, timeout, stop=None):
    """Runs QEMU until it exits, `timeout` seconds pass, or (with `stop`)
    that text appears in the serial log; returns (log text, seconds, note).
    A QEMU that exits with an error before the guest wrote a single byte
    (it never started: seen once in CI, 3 s, empty log) is started once
    more, saying why on stderr; a guest that crashes (QEMU exits 0 under
    -no-reboot) is not retried."""
    text, dt, note = _run_qemu_once(cmd, log, timeout, stop)
    if text == "" and note.startswith("QEMU exited"):
        print(f"note: {note}; starting it once more ({log})", file=sys.stderr)
        text, dt, again = _run_qemu_once(cmd, log, timeout, stop)
        note = again
    elif note.startswith("timeout") and TCG_STALL in text:
        # The guest kernel's own timers stopped under TCG (seen once in CI:
        # RCU stall reports from 2 s on, nothing from /init for 90 s): not
        # the code under test. One more boot, said on stderr.
        print(f"note: the guest kernel's timers stalled ({TCG_STALL!r}); "
              f"starting it once more ({log})", file=sys.stderr)
        text, dt, note = _run_qemu_once(cmd, log, timeout, stop)
    return text, dt, note


# The kernel's report of a timer that never fired (a TCG glitch).
TCG_STALL = "kthread timer wakeup didn't happen"


def _run_qemu_once(cmd, log, timeout, stop):
    t0 = time.monotonic()
    # QEMU's own complaints (a device it refuses, a locked image) go beside
    # the serial log and into the note when it exits without booting.
    err_path = log + ".qemu-stderr"
    with open(err_path, "w") as err:
        p = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                             stderr=err)
    note = ""
    while p.poll() is None:
        if time.monotonic() - t0 > timeout:
            note = f"timeout after {timeout}s"
            break
        if stop and os.path.exists(log):
            with open(log, errors="replace") as f:
                if stop in f.read():
                    time.sleep(1)
                    break
        time.sleep(0.2)
    if p.poll() is None:
        p.kill()
        p.wait()
    elif p.returncode != 0:
        with open(err_path, errors="replace") as f:
            said = " ".join(f.read().split())[:300]
        note = (note + "; " if note else "") + f"QEMU exited {p.returncode}: {said}"
    with open(log, errors="replace") as f:
        return f.read(), time.monotonic() - t0, note


def boot_vm(boot, k, img):
    """Boot under TCG; returns (serial log text, wall seconds, note)."""
    log = os.path.join(WORK, boot.name, "serial.log")
    timeout = int(os.environ.get("QEMU_TIMEOUT", boot.timeout))
    cmd = qemu_argv(k, img, log, "quiet loglevel=1 " + boot.cmdline, arch=boot.arch)
    with open(os.path.join(WORK, boot.name, "qemu.cmd"), "w") as f:
        f.write(" ".join(cmd) + "\n")
    t0 = time.monotonic()
    note = ""
    try:
        subprocess.run(cmd, stdin=subprocess.DEVNULL, capture_output=True,
                       timeout=timeout)
    except subprocess.TimeoutExpired:
        note = f"timeout after {timeout}s"
    dt = time.monotonic() - t0
    with open(log, errors="replace") as f:
        return f.read(), dt, note


# ----------------------------------------------------------------- checking

def parse(text):
    """{scenario: {"kv": {}, "out": {tag: [lines]}, "dmesg": [], "begin",
    "end"}} from the serial log."""
    res = {}
    for line in text.splitlines():
        line = line.rstrip("\r")
        i = line.find(MARK + " ")
        if i < 0:
            continue
        rest = line[i + len(MARK) + 1:]
        scen, _, payload = rest.partition(" ")
        r = res.setdefault(scen, {"kv": {}, "out": {}, "dmesg": [],
                                  "begin": False, "end": False})
        m = re.match(r"([\w.-]+)\.out: ?(.*)$", payload)
        if m:
            r["out"].setdefault(m.group(1), []).append(m.group(2))
        elif payload.startswith("dmesg: "):
            r["dmesg"].append(payload[7:])
        elif payload in ("begin", "end"):
            r[payload] = True
        elif payload.startswith("clean="):
            r["kv"]["clean"] = payload[6:]
        else:
            key, eq, val = payload.partition("=")
            r["kv"][key] = val if eq else ""
    return res


class Result:
    """What one scenario reported; the check helpers of scenarios.py."""

    def __init__(self, kernel, data, modset=None):
        self.k = kernel
        self.d = data
        self.set = modset if modset is not None else S.SET

    def value(self, key):
        return self.d["kv"].get(key)

    def out(self, tag):
        return self.d["out"].get(tag, [])

    def closure(self, names):
        return self.k.closure(names)

    def _live(self, tag):
        v = self.value(tag + ".live")
        return None if v is None else set(v.split())

    def rc(self, tag, want=0):
        v = self.value(tag + ".rc")
        if v is None:
            return f"{tag}: no exit code reported"
        if v != str(want):
            out = self.out(tag)
            errs = [ln for ln in out if ERRLINE.search(ln)]
            last = " | ".join((errs or out)[:3] if errs else out[-3:])
            return f"{tag}: exit {v}, want {want}" + (f": {last}" if last else "")
        return None

    def failed(self, tag):
        v = self.value(tag + ".rc")
        if v is None:
            return f"{tag}: no exit code reported"
        if not v.isdigit() or not 1 <= int(v) <= 127:
            return f"{tag}: exit {v}, want a failure code 1..127 (no crash)"
        return None

    def live(self, tag, names):
        have = self._live(tag)
        if have is None:
            return f"{tag}: no module list reported"
        miss = [n for n in names if n not in have]
        return f"{tag}: not loaded: {' '.join(miss)}" if miss else None

    def any_live(self, tag, names):
        have = self._live(tag) or set()
        return None if have & set(names) else f"{tag}: none of {' '.join(names)} loaded"

    def not_live(self, tag, names):
        have = self._live(tag) or set()
        extra = [n for n in names if n in have]
        return f"{tag}: unexpectedly loaded: {' '.join(extra)}" if extra else None

    def eq(self, key, want):
        v = self.value(key)
        return None if v == want else f"{key} = {v!r}, want {want!r}"

    def mentions(self, tag, words):
        text = "\n".join(self.out(tag))
        miss = [w for w in words if w not in text]
        return f"{tag}: output does not name {' '.join(miss)}" if miss else None

    # earlymod's `-v` line per module: "modprobe: NOTICE: NAME: HOW"
    HOW = {"kernel": "loaded with finit_module, decompressed by the kernel",
           "userspace": "decompressed in userspace",
           "file": "loaded with finit_module"}

    def load_path(self, tag, names, how):
        said = {}
        for ln in self.out(tag):
            m = re.search(r"NOTICE: (\S+): (.*)$", ln)
            if m:
                said[m.group(1).replace("-", "_")] = m.group(2).strip()
        if not said:   # the loader does not say (kmod): nothing to check
            return None
        want = self.HOW[how]
        bad = [f"{n} ({said.get(n, 'not reported')})" for n in names
               if said.get(n) != want and not (how == "userspace" and want in said.get(n, ""))]
        return f"{tag}: not loaded the {how} way: {', '.join(bad)}" if bad else None

    def no_decoder(self, tag, names, fmt):
        """The tiny build's refusal: every name is on a line saying that
        FMT modules need a decoder this build lacks."""
        said = [ln.replace("-", "_") for ln in self.out(tag)
                if f"{fmt} modules need a decoder this build lacks" in ln]
        if not said:
            return f"{tag}: no line says {fmt} modules need a decoder this build lacks"
        miss = [n for n in names if f"'{n.replace('-', '_')}'" not in " ".join(said)]
        return f"{tag}: the decoder line does not name {' '.join(miss)}" if miss else None

    def heap_free(self, tag):
        """earlymod's `N heap allocations` line must say 0 (loaders that
        do not report are not checked)."""
        counts = [m.group(1) for ln in self.out(tag)
                  for m in [re.search(r"(\d+) heap allocations", ln)] if m]
        if not counts:
            return None
        return None if counts == ["0"] else f"{tag}: heap allocations: {' '.join(counts)}, want 0"

    def lsmod_matches(self, tag):
        lines = self.out(tag)
        if not lines or not re.match(r"Module\s+Size\s+Used by$", lines[0]):
            return f"{tag}: header is {lines[:1]!r}, want 'Module  Size  Used by'"
        names = {ln.split()[0] for ln in lines[1:] if ln.split()}
        have = self._live(tag) or set()
        if names != have:
            return (f"{tag}: lsmod lists {len(names)} modules, /proc/modules "
                    f"{len(have)}; differ: {' '.join(sorted(names ^ have))}")
        return None


def check(kernel, sc, data, vmnote, modset=None):
    """First failure reason for a scenario, or None."""
    if data is None or not data["begin"]:
        return "never started" + (f" ({vmnote})" if vmnote else " (VM ended early)")
    if not data["end"]:
        return "did not finish" + (f" ({vmnote})" if vmnote else " (VM ended early)")
    if data["kv"].get("clean", "1") != "1":
        return "could not unload the previous scenario's modules: " + data["kv"]["clean"]
    crash = [ln for ln in data["dmesg"] if CRASH.search(ln)]
    if crash:
        return "kernel: " + crash[0].strip()
    try:
        for reason in sc.check(Result(kernel, data, modset)):
            if reason:
                return reason
    except Exception as e:  # a check that cannot run is a failure, not a crash
        return f"check error: {e!r}"
    return None


# ----------------------------------------------------------------- runs

# A scenario the loader under test cannot run: shown, counted, not failed.
SKIP = "skipped: "


def run_boot(boot, loader):
    t0 = time.monotonic()
    k, img = build_image(boot, loader, scenario_body(boot))
    tb = time.monotonic() - t0
    text, dt, note = boot_vm(boot, k, img)
    res = parse(text)
    lines = []
    for sc in boot.scenarios:
        if loader == "earlymod-tiny" and isinstance(sc.tiny, str):
            lines.append((sc.name, SKIP + sc.tiny))
            continue
        if loader == "earlymod-tiny" and sc.tiny:
            sc = dataclasses.replace(sc, check=sc.tiny)
        why = check(k, sc, res.get(sc.name), note, boot.set)
        if why and loader in sc.xfail:
            why += f" [expected with {loader}: {sc.xfail[loader]}]"
        lines.append((sc.name, why))
    secs = []
    for sc in boot.scenarios:
        kv = res.get(sc.name, {}).get("kv", {})
        try:
            secs.append(f"{sc.name} {float(kv['t1']) - float(kv['t0']):.1f}")
        except (KeyError, ValueError):
            pass
    size = os.path.getsize(img) >> 20
    boot_t = res.get("boot", {}).get("kv", {}).get("t", "?")
    info = (f"{boot.name}: image {size} MiB built in {tb:.1f}s, VM {dt:.1f}s, "
            f"/init at {boot_t}s; in-VM seconds: {', '.join(secs)}")
    return lines, info + (f" ({note})" if note else "")


def vmtest(boots, loader, jobs):
    t0 = time.monotonic()
    passed = failed = skipped = 0
    for b in [b for b in boots if loader not in ARCHES[b.arch]["loaders"]]:
        for sc in b.scenarios:
            print(f"vm: {sc.name} {SKIP}no {loader} build for {b.arch}", flush=True)
            skipped += 1
    boots = [b for b in boots if loader in ARCHES[b.arch]["loaders"]]
    with concurrent.futures.ThreadPoolExecutor(max_workers=jobs) as ex:
        futs = [(b, ex.submit(run_boot, b, loader)) for b in boots]
        for b, fut in futs:
            try:
                lines, info = fut.result()
            except Exception as e:
                lines = [(sc.name, f"build/boot error: {e}") for sc in b.scenarios]
                info = f"{b.name}: error"
            for name, why in lines:
                if why and why.startswith(SKIP):
                    print(f"vm: {name} {why}", flush=True)
                    skipped += 1
                    continue
                print(f"vm: {name} " + (f"FAIL ({why})" if why else "ok"), flush=True)
                if why:
                    failed += 1
                else:
                    passed += 1
            print(f"  ({info}; log {os.path.join(WORK, b.name, 'serial.log')})")
    builds = {os.path.relpath(ARCHES[b.arch]["loaders"][loader](), REPO)
              for b in boots if ARCHES[b.arch]["loaders"][loader]}
    if builds:
        loader += " " + " ".join(sorted(builds))
    print(f"  (loader {loader}, {len(boots)} boots, {time.monotonic() - t0:.0f}s total)")
    print(f"{passed} passed, {failed} failed" + (f", {skipped} skipped" if skipped else ""))
    return 1 if failed else 0


# ----------------------------------------------------------------- bench

BENCH_BODY = r"""
# Interleaved rounds: each loader loads the whole set into an empty kernel.
now() { sed -n 's/^now at \([0-9]*\) nsecs$/\1/p;3q' /proc/timer_list; }
SCEN=bench
order="@ORDER@"
r=1
while [ $r -le @ROUNDS@ ]; do
    for l in $order; do
        unload_all
        t0=$(now)
        /bench/$l/modprobe -a $SET > /tmp/out 2>&1
        rc=$?
        t1=$(now)
        n=$(wc -l < /proc/modules)
        em "round=$r loader=$l ns=$((t1 - t0)) rc=$rc modules=$n"
        [ $rc -ne 0 ] && [ $r -eq 1 ] && sed "s/^/@@EM $SCEN $l.out: /" /tmp/out | head -5
    done
    set -- $order; order="$2 $3 $1"   # rotate: no loader always goes first
    r=$((r + 1))
done
"""


def bench(boots, rounds, jobs, json_path=None):
    """Time `modprobe -a SET` by earlymod, kmod and busybox in one VM per kernel."""
    loaders = ["earlymod", "kmod", "busybox"]
    results = {}

    def one(b):
        b = S.Boot(b.name + "-bench", b.kernel, trees={"main": "native"},
                   scenarios=[], timeout=max(b.timeout, 60 + 40 * rounds))
        order = " ".join(loaders)
        body = (BENCH_BODY.replace("@ROUNDS@", str(rounds))
                .replace("@ORDER@", order))
        k, img = build_image(b, "kmod", body, bench=True)
        text, dt, note = boot_vm(b, k, img)
        return b, k, text, dt, note

    with concurrent.futures.ThreadPoolExecutor(max_workers=jobs) as ex:
        for b, k, text, dt, note in ex.map(one, boots):
            times = {l: [] for l in loaders}
            runs = {l: set() for l in loaders}
            for m in re.finditer(r"@@EM bench round=\d+ loader=(\w+) ns=(-?\d+) "
                                 r"rc=(\d+) modules=(\d+)", text):
                times[m.group(1)].append(int(m.group(2)) / 1e6)
                runs[m.group(1)].add(f"exit {m.group(3)}, {m.group(4)} modules")
            print(f"bench {b.name} (Linux {k.kver}, {rounds} rounds, VM {dt:.0f}s"
                  f"{', ' + note if note else ''}); log {WORK}/{b.name}/serial.log")
            base = statistics.median(times["earlymod"]) if times["earlymod"] else None
            for l in loaders:
                if not times[l]:
                    print(f"  {l:9} no data")
                    continue
                med = statistics.median(times[l])
                ratio = f"  {med / base:6.2f}x earlymod" if base else ""
                print(f"  {l:9} median {med:8.1f} ms (min {min(times[l]):.1f}, "
                      f"max {max(times[l]):.1f}){ratio}  [{'; '.join(sorted(runs[l]))}]")
            results[b.name] = {
                "kver": k.kver, "rounds": rounds, "set": len(b.set),
                "loaders": {l: {"median_ms": statistics.median(times[l]) if times[l] else None,
                                "all_ms": times[l], "runs": sorted(runs[l])}
                            for l in loaders},
                "note": note or None}
    if json_path:
        with open(json_path, "w") as f:
            json.dump(results, f, indent=1)
    return 0


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--only", help="comma-separated boot names (" +
                    ",".join(b.name for b in S.BOOTS) + ")")
    ap.add_argument("--loader", default=os.environ.get("QEMU_LOADER", "earlymod"),
                    choices=["earlymod", "earlymod-tiny", "kmod", "busybox"])
    ap.add_argument("-j", "--jobs", type=int, default=2)
    ap.add_argument("--bench", action="store_true", help="vm-bench mode")
    ap.add_argument("--json", metavar="FILE", help="vm-bench: also write the figures as JSON")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--list", action="store_true", help="list boots and scenarios")
    a = ap.parse_args()
    if a.list:
        for b in S.BOOTS:
            print(f"{b.name} ({b.kernel}, trees {', '.join(f'{t}={c}' for t, c in b.trees.items())})")
            for sc in b.scenarios:
                print(f"  {sc.name:14} {sc.what}")
        return 0
    boots = S.BOOTS
    if a.only:
        want = a.only.split(",")
        boots = [b for b in boots if b.name in want]
    # the scenarios' modprobe.d, for the host's kmod computing closures
    os.makedirs(os.path.join(WORK, "modprobe.d"), exist_ok=True)
    with open(os.path.join(WORK, "modprobe.d", "vmtest.conf"), "w") as f:
        f.write(S.MODPROBE_D)
    if a.bench:   # kmod and busybox run on the x86_64 guests only
        return bench([b for b in boots if b.arch == "x86_64"], a.rounds, a.jobs, a.json)
    return vmtest(boots, a.loader, a.jobs)


if __name__ == "__main__":
    sys.exit(main())
