#!/usr/bin/env python3
"""earlymod as PID 1 on arm64 and riscv64: Debian's kernels for those
machines (the cache's karm64, bookworm-backports 6.12, and kriscv64, trixie
6.12) under QEMU's virt machines (TCG, -cpu max -smp 2), booting an
earlymod-pack image to an ext4 root by root=UUID= on virtio-blk.

    python3 qemu/archtest.py [--only NAME[,NAME]]

The image packs tests/pack/boot.conf for the machine's tree with the
cross build as /sbin/earlymod (`make cross`); the root (mkfs.ext4 -d)
holds Debian's busybox for that machine, whose /sbin/init prints the live
modules, the root mount and the boot report, then powers off. Cases:

  arm64          out/aarch64/earlymod: coldplug finds virtio_blk (through
                 the kernel's virtio-pci), ext4 and its dependencies load
                 through the kernel's xz decompression, the root is found
                 by UUID, switch_root runs the root's init as PID 1
  arm64-tiny     the same with out/aarch64/earlymod-tiny
  riscv64        the same with out/riscv64/earlymod on the riscv64 kernel
                 (qemu-system-riscv64 -M virt, OpenSBI as the firmware)
  riscv64-tiny   the same with out/riscv64/earlymod-tiny

Prints `archvm: NAME ok|FAIL (reason)`; exits 1 on any failure.
"""

import argparse
import os
import re
import shutil
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
sys.path.insert(0, HERE)
import vmtest as V  # noqa: E402

CACHE = os.environ.get("EARLYMOD_CACHE") or "/var/cache/earlymod"
WORK = os.path.join(V.WORK, "arch")
UUID = "3f6d2b1e-0c4a-4e8b-9d7f-a1b2c3d4e5f6"


class Machine:
    """One guest machine: its cached kernel tree, QEMU and console."""

    def __init__(self, cache, uname, qemu, console, kernel_file):
        self.dir = os.path.join(CACHE, cache)
        self.uname = uname          # what `uname -m` says in the guest
        self.qemu = qemu
        self.console = console
        self.kernel_file = kernel_file   # boot/NAME-KVER: vmlinuz or vmlinux


ARM64 = Machine("karm64", "aarch64", ["qemu-system-aarch64", "-M", "virt"],
                "ttyAMA0", "vmlinuz")
# Debian's riscv64 kernel is boot/vmlinux (an Image with an EFI stub), which
# QEMU hands to OpenSBI (-bios default) as the next stage.
RISCV64 = Machine("kriscv64", "riscv64", ["qemu-system-riscv64", "-M", "virt"],
                  "ttyS0", "vmlinux")
CASES = {
    "arm64": (ARM64, "out/aarch64/earlymod"),
    "arm64-tiny": (ARM64, "out/aarch64/earlymod-tiny"),
    "riscv64": (RISCV64, "out/riscv64/earlymod"),
    "riscv64-tiny": (RISCV64, "out/riscv64/earlymod-tiny"),
}

ROOT_INIT = r"""#!/bin/sh
export PATH=/sbin:/bin
echo "@@ROOT marker pid=$$ arch=$(uname -m)"
echo "@@ROOT live=$(awk '$5 == "Live" {print $1}' /proc/modules | sort | tr '\n' ' ')"
echo "@@ROOT mounts=$(awk '$2 == "/" {print $1 ":" $3}' /proc/mounts | tr '\n' ' ')"
sed 's/^/@@REPORT /' /run/earlymod/boot.log
echo "@@ROOT done"
sync
poweroff -f
sleep 10
"""


def make_root(d, m):
    apps = ("sh", "cat", "awk", "sort", "tr", "sed", "sync", "poweroff", "sleep", "uname")
    return V.busybox_root(d, os.path.join(m.dir, "busybox"), apps,
                          {"sbin/init": ROOT_INIT}, ["-U", UUID])


def run_case(args, name):
    mach, build = CASES[name]
    kver = open(os.path.join(mach.dir, "kver")).read().strip()
    kroot = os.path.join(mach.dir, "root")
    d = os.path.join(WORK, name)
    shutil.rmtree(d, ignore_errors=True)
    os.makedirs(d)
    root = make_root(d, mach)
    img = os.path.join(d, "initrd.img")
    p = subprocess.run([args.pack, "-b", kroot, "-k", kver, "-c",
                        os.path.join(REPO, "tests/pack/boot.conf"), "-o", img,
                        "--earlymod", os.path.join(REPO, build)],
                       capture_output=True, text=True)
    if p.returncode != 0:
        return [f"earlymod-pack exit {p.returncode}: {p.stderr.strip()}"], 0
    log = os.path.join(d, "serial.log")
    cmd = mach.qemu + ["-cpu", "max", "-smp", "2", "-m", "1024",
                       "-display", "none", "-monitor", "none", "-nic", "none", "-no-reboot",
                       "-serial", "file:" + log,
                       "-kernel", os.path.join(kroot, "boot", f"{mach.kernel_file}-{kver}"),
                       "-initrd", img, "-drive", f"file={root},if=none,id=d0,format=raw",
                       "-device", "virtio-blk-pci,drive=d0",
                       "-append", f"console={mach.console} panic=-1 loglevel=4 root=UUID={UUID}"]
    text, dt, note = V.run_qemu(cmd, log, 150)
    probs = [note] if note else []
    if V.CRASH.search(text):
        probs.append("kernel crash or panic in the log")
    m = re.search(r"@@ROOT marker pid=(\d+) arch=(\S+)", text)
    if not m:
        return probs + ["the root's init never ran"], dt
    if m.group(1) != "1" or m.group(2) != mach.uname:
        probs.append(f"root's init: pid {m.group(1)}, {m.group(2)}, want 1, {mach.uname}")
    live = re.search(r"@@ROOT live=(.*)", text)
    live = set(live.group(1).split()) if live else set()
    missing = [x for x in ("virtio_blk", "ext4", "jbd2", "mbcache") if x not in live]
    if missing:
        probs.append(f"not live: {missing}")
    if "@@ROOT mounts=/dev/vda:ext4" not in text:
        probs.append("root is not /dev/vda (ext4)")
    if "@@REPORT earlymod boot report" not in text:
        probs.append("no boot report in the new root's /run")
    if "@@ROOT done" not in text:
        probs.append("the root's init did not finish")
    return probs, dt


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--pack", default=os.path.join(REPO, "out/earlymod-pack"))
    ap.add_argument("--only", default="")
    args = ap.parse_args()
    names = args.only.split(",") if args.only else list(CASES)
    os.makedirs(WORK, exist_ok=True)
    failed = 0
    for name in names:
        probs, dt = run_case(args, name)
        state = "ok" if not probs else "FAIL (" + "; ".join(probs) + ")"
        print(f"archvm: {name} {state}: boot {dt:.1f} s")
        failed += bool(probs)
    print(f"archvm: {len(names) - failed} passed, {failed} failed")
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
