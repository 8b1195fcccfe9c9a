#!/usr/bin/env python3
"""earlymod as PID 1 on arm64: Debian's arm64 kernel (the cache's karm64,
bookworm-backports) under qemu-system-aarch64 (-M virt -cpu max -smp 2,
TCG), booting an earlymod-pack image to an ext4 root by root=UUID= on
virtio-blk.

    python3 qemu/armtest.py [--only NAME[,NAME]]

The image packs config/pack/boot.conf for the arm64 tree with the aarch64
build as /sbin/earlymod (`make cross`); the root (mkfs.ext4 -d) holds
Debian's arm64 busybox, whose /sbin/init prints the live modules, the root
mount and the boot report, then powers off. Cases:

  arm64         out/aarch64/earlymod: coldplug finds virtio_blk (through
                the arm64 kernel's virtio-pci), ext4 and its dependencies
                load through the kernel's xz decompression, the root is
                found by UUID, switch_root runs the root's init as PID 1
  arm64-tiny    the same with out/aarch64/earlymod-tiny

Prints `armvm: NAME ok|FAIL (reason)`; exits 1 on any failure.
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
KARM = os.path.join(CACHE, "karm64")
WORK = os.path.join(V.WORK, "arm64")
UUID = "3f6d2b1e-0c4a-4e8b-9d7f-a1b2c3d4e5f6"
CASES = {"arm64": "out/aarch64/earlymod", "arm64-tiny": "out/aarch64/earlymod-tiny"}

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


def make_root(d):
    tree = os.path.join(d, "rootfs")
    shutil.rmtree(tree, ignore_errors=True)
    for sub in ("bin", "sbin", "dev", "proc", "sys", "run", "tmp"):
        os.makedirs(os.path.join(tree, sub))
    shutil.copy(os.path.join(KARM, "busybox"), os.path.join(tree, "bin/busybox"))
    for app in ("sh", "cat", "awk", "sort", "tr", "sed", "sync", "poweroff", "sleep", "uname"):
        os.symlink("busybox", os.path.join(tree, "bin", app))
    V.write(os.path.join(tree, "sbin/init"), ROOT_INIT.encode(), 0o755)
    img = os.path.join(d, "root.img")
    if os.path.exists(img):
        os.unlink(img)
    V.sh(["mkfs.ext4", "-q", "-F", "-d", tree, "-U", UUID, img, "32M"])
    return img


def run_case(args, name):
    kver = open(os.path.join(KARM, "kver")).read().strip()
    kroot = os.path.join(KARM, "root")
    d = os.path.join(WORK, name)
    shutil.rmtree(d, ignore_errors=True)
    os.makedirs(d)
    root = make_root(d)
    img = os.path.join(d, "initrd.img")
    p = subprocess.run([args.pack, "-b", kroot, "-k", kver, "-c",
                        os.path.join(REPO, "config/pack/boot.conf"), "-o", img,
                        "--earlymod", os.path.join(REPO, CASES[name])],
                       capture_output=True, text=True)
    if p.returncode != 0:
        return [f"earlymod-pack exit {p.returncode}: {p.stderr.strip()}"], 0
    log = os.path.join(d, "serial.log")
    cmd = ["qemu-system-aarch64", "-M", "virt", "-cpu", "max", "-smp", "2", "-m", "1024",
           "-display", "none", "-monitor", "none", "-nic", "none", "-no-reboot",
           "-serial", "file:" + log, "-kernel", os.path.join(kroot, "boot", "vmlinuz-" + kver),
           "-initrd", img, "-drive", f"file={root},if=none,id=d0,format=raw",
           "-device", "virtio-blk-pci,drive=d0",
           "-append", f"console=ttyAMA0 panic=-1 loglevel=4 root=UUID={UUID}"]
    text, dt, note = V.run_qemu(cmd, log, 150)
    probs = [note] if note else []
    if V.CRASH.search(text):
        probs.append("kernel crash or panic in the log")
    m = re.search(r"@@ROOT marker pid=(\d+) arch=(\S+)", text)
    if not m:
        return probs + ["the root's init never ran"], dt
    if m.group(1) != "1" or m.group(2) != "aarch64":
        probs.append(f"root's init: pid {m.group(1)}, {m.group(2)}")
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
        print(f"armvm: {name} {state}: boot {dt:.1f} s")
        failed += bool(probs)
    print(f"armvm: {len(names) - failed} passed, {failed} failed")
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
