#!/usr/bin/env python3
"""End-to-end boots with earlymod as PID 1 (/init of an earlymod-pack image).

    python3 qemu/boottest.py [--only NAME[,NAME]] [-j N]

Each case packs tests/pack/boot.conf (drivers only, `init earlymod`) for one
kernel, makes an ext4 root filesystem with `mkfs.ext4 -d` from a tiny tree
(busybox; /sbin/init prints a marker, /proc/modules and the boot report,
then powers off), boots QEMU (TCG, -smp 2) with the root on virtio-blk and
a second disk on AHCI, and checks the serial log. Cases:

  k612-uuid     6.12, root=UUID=..., parallel loading (default jobs),
                rd.driver.blacklist=ahci (so no ahci, no sd_mod); the
                image's /etc/modprobe.d has `options virtio_blk
                queue_depth=64` (read back from sysfs) and `blacklist
                e1000` with an e1000 NIC present (coldplug reaches it by
                its alias: it must stay out)
  k61-label     6.1, root=LABEL=... rootfstype=ext4 (virtio_pci is a module
                there: coldplug must iterate), earlymod.jobs=1, a module
                option from the command line, init= override
  k612-noroot   root=UUID of no disk: a clear message, no kernel panic;
                the rescue shell starts (the image's /bin/sh: a busybox
                script that reports its /proc/self/stat and powers off) in
                a session of its own with the console as its controlling
                terminal, in the foreground (job control and Ctrl-C work)
  k612-broken   a broken module (garbage .ko.xz for sd_mod) in the image:
                the boot still reaches the root
  k612-example  examples/pid1.rs (a custom PID 1 on the public API, built
                static) as the image's /init: coldplug, root=UUID, ext4,
                switch_root; its per-module lines are in the log

Prints `bootvm: NAME ok|FAIL (reason)`; exits 1 on any failure.
"""

import argparse
import concurrent.futures
import os
import re
import shutil
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
sys.path.insert(0, HERE)
import vmtest as V  # noqa: E402

WORK = os.path.join(V.WORK, "boot")
CONF = os.path.join(REPO, "tests/pack/boot.conf")
# `make demo`: the default config a user starts from.
DEFAULT_CONF = os.path.join(REPO, "config/pack/default.conf")
UUID = "5e1f0c2a-7d4b-4c1e-9a8f-0b6d2e4f1a3c"
LABEL = "emroot"

ROOT_INIT = r"""#!/bin/sh
export PATH=/sbin:/bin
echo "@@ROOT marker pid=$$ init=$0"
echo "@@ROOT uptime=$(cut -d' ' -f1 /proc/uptime)"
echo "@@ROOT mounts=$(awk '$2 == "/" {print $1 ":" $3}' /proc/mounts | tr '\n' ' ')"
echo "@@ROOT live=$(awk '$5 == "Live" {print $1}' /proc/modules | sort | tr '\n' ' ')"
[ -r /sys/module/e1000/parameters/copybreak ] && echo "@@ROOT e1000.copybreak=$(cat /sys/module/e1000/parameters/copybreak)"
[ -r /sys/module/virtio_blk/parameters/queue_depth ] && echo "@@ROOT virtio_blk.queue_depth=$(cat /sys/module/virtio_blk/parameters/queue_depth)"
echo "@@ROOT disks=$(ls /sys/class/block | tr '\n' ' ')"
echo "@@ROOT run=$(ls /run 2>/dev/null | tr '\n' ' ')"
sed 's/^/@@REPORT /' /run/earlymod/boot.log
echo "@@ROOT done"
sync
poweroff -f
sleep 10
"""


def make_root(d, kname):
    """An ext4 image whose /sbin/init (and /sbin/init2) print the markers."""
    apps = ("sh", "cat", "cut", "awk", "sort", "tr", "ls", "sed", "sync", "poweroff", "sleep")
    inits = {f"sbin/{n}": ROOT_INIT.replace("@@ROOT marker", f"@@ROOT marker {n}")
             for n in ("init", "init2")}
    img = V.busybox_root(d, shutil.which("busybox"), apps, inits, ["-L", LABEL, "-U", UUID])
    disk2 = os.path.join(d, "disk2.img")
    with open(disk2, "wb") as f:
        f.truncate(8 << 20)
    return img, disk2


def pack(args, k, out, extra_conf=""):
    """CONF (with `extra_conf` lines appended) packed for kernel k."""
    conf = CONF
    if extra_conf:
        conf = out + ".conf"
        with open(CONF) as f:
            text = f.read().replace("../../config/", os.path.join(REPO, "config") + "/")
        with open(conf, "w") as f:
            f.write(text + extra_conf)
    return pack_conf(args.pack, args.earlymod, k, conf, out)


def pack_conf(pack_bin, earlymod, k, conf, out):
    """earlymod-pack of `conf` for kernel k's tree into `out`; returns its
    stderr (summary and problems), raises with it on failure."""
    cmd = [pack_bin, "-b", k.root, "-k", k.kver, "-c", conf, "-o", out, "--earlymod", earlymod]
    p = subprocess.run(cmd, capture_output=True, text=True)
    if p.returncode != 0:
        raise RuntimeError(f"earlymod-pack exit {p.returncode}: {p.stderr.strip()}")
    return p.stderr.strip()


def boot(k, img, root, disk2, append, log, timeout=90, stop=None, devices=(), usb_root=False):
    """usb_root: the root disk is a USB stick on an xHCI controller
    (found through uevents: enumeration is asynchronous), not virtio."""
    if usb_root:
        disk = ["-device", "qemu-xhci,id=xhci", "-drive", f"id=usbroot,file={root},if=none,format=raw",
                "-device", "usb-storage,bus=xhci.0,drive=usbroot"]
    else:
        disk = ["-drive", f"file={root},if=virtio,format=raw"]
    cmd = V.qemu_argv(k, img, log, "loglevel=4 " + append, disk + [
        "-device", "ahci,id=ahci",
        "-drive", f"id=d2,file={disk2},if=none,format=raw",
        "-device", "ide-hd,drive=d2,bus=ahci.0"] + list(devices))
    return V.run_qemu(cmd, log, timeout, stop)


def check_root(text, want_init, want_mods, report=True):
    probs = []
    kv = {}
    for line in text.splitlines():
        m = re.match(r".*@@ROOT (\S+?)=(.*)$", line.rstrip())
        if m:
            kv[m.group(1)] = m.group(2).strip()
    m = re.search(r"@@ROOT marker (\S+) pid=(\d+)", text)
    if not m:
        probs.append("the root's init never ran")
        return probs, kv
    if m.group(1) != want_init:
        probs.append(f"ran {m.group(1)}, expected {want_init}")
    if m.group(2) != "1":
        probs.append(f"init is pid {m.group(2)}, not 1")
    live = set(kv.get("live", "").split())
    missing = [x for x in want_mods if x not in live]
    if missing:
        probs.append(f"not live: {missing}")
    if report and "@@REPORT earlymod boot report" not in text:
        probs.append("no boot report in the new root's /run")
    if "@@ROOT done" not in text:
        probs.append("init did not finish")
    return probs, kv


def run_case(args, name):
    kname = "k61" if name.startswith("k61-") else "k612"
    k = V.Kernel(kname)
    d = os.path.join(WORK, name)
    shutil.rmtree(d, ignore_errors=True)
    os.makedirs(d)
    root, disk2 = make_root(d, kname)
    img = os.path.join(d, "initrd.img")
    log = os.path.join(d, "serial.log")
    # The image's own /etc/modprobe.d (earlymod-pack carries these lines
    # to /etc/modprobe.d/earlymod-pack.conf): PID 1 must apply them.
    image_conf = ""
    if name == "k612-uuid":
        image_conf = "options virtio_blk queue_depth=64\nblacklist e1000\n"
    if name == "k612-example":
        image_conf = f"init {args.example}\n"
    if name == "k612-noroot":
        sh = os.path.join(d, "rescue-sh")
        V.write(sh, RESCUE_SH.encode(), 0o755)
        image_conf = (f"file {shutil.which('busybox')} bin/busybox 0755\n"
                      f"file {sh} bin/sh 0755\n")
    if name == "k612-usb":
        image_conf = "include xhci_pci usb_storage\n"
    if name == "k612-hooks":
        image_conf = hook_conf(d)
    if name == "k612-cryptroot":
        # The root in LUKS2 inside LVM (qemu/cryptroot.py builds the disk
        # in a setup VM); tests/pack/cryptroot.conf's pre-mount hook opens it.
        import cryptroot as C
        root, crypt_append = C.boot_args(d, k)
        summary = C.pack_image(k, img, args.pack, args.earlymod)
    else:
        summary = pack(args, k, img, image_conf)
    if name == "k612-broken":
        # Replace sd_mod in the image's tree with garbage: repack from a
        # copy of the tree whose sd_mod file is broken.
        tree = os.path.join(d, "tree")
        dst = os.path.join(tree, "lib/modules", k.kver)
        os.makedirs(os.path.dirname(dst))
        subprocess.run(["cp", "-al", k.moddir, dst], check=True)
        sd = subprocess.run(["modprobe", "-d", k.root, "-S", k.kver, "-D", "sd_mod"],
                            capture_output=True, text=True, check=True).stdout.split()[-1]
        rel = os.path.relpath(sd, k.moddir)
        os.unlink(os.path.join(dst, rel))
        V.write(os.path.join(dst, rel), b"\xfd7zXZ\x00" + b"\x00\x04" + os.urandom(3000))
        os.makedirs(os.path.join(tree, "boot"))
        shutil.copy(os.path.join(k.root, "boot", "config-" + k.kver), os.path.join(tree, "boot"))
        cmd = [args.pack, "-b", tree, "-k", k.kver, "-c", CONF, "-o", img,
               "--earlymod", args.earlymod]
        p = subprocess.run(cmd, capture_output=True, text=True)
        summary = p.stderr.strip()
    want_init, mods, append = "init", ["virtio_blk", "ext4", "ahci", "sd_mod"], ""
    unwanted, devices = [], []
    if name == "k612-uuid":
        append = f"root=UUID={UUID} rw rd.driver.blacklist=ahci"
        mods, unwanted = ["virtio_blk", "ext4"], ["ahci", "sd_mod", "e1000"]
        # A NIC (no backend) whose modalias resolves to e1000.
        devices = ["-device", "e1000"]
    elif name == "k61-label":
        append = (f"root=LABEL={LABEL} rootfstype=ext4 earlymod.jobs=1 init=/sbin/init2 "
                  "e1000.copybreak=77 rd.modules_load=e1000")
        want_init = "init2"
        mods = mods + ["virtio_pci", "e1000"]
    elif name == "k612-noroot":
        append = "root=UUID=00000000-0000-0000-0000-000000000001 earlymod.root_timeout=3"
    elif name == "k612-broken":
        append = f"root=UUID={UUID}"
        mods = ["virtio_blk", "ext4", "ahci"]
    elif name == "k612-example":
        append = f"root=UUID={UUID}"
    elif name == "k612-usb":
        append = f"root=UUID={UUID}"
        mods = ["xhci_pci", "usb_storage", "sd_mod", "ext4"]
    elif name == "k612-handoff":
        append = f"root=UUID={UUID} earlymod.handoff=root"
        mods, unwanted = ["virtio_blk", "ext4"], ["e1000"]
        devices = ["-device", "e1000"]
    elif name == "k612-cryptroot":
        append = crypt_append
        mods = ["virtio_blk", "ext4", "dm_mod", "dm_crypt"]
    elif name == "k612-hooks":
        append = (f"root=UUID={UUID} rd.break=pre-mount earlymod.hook_timeout=2 "
                  "rd.driver.post=e1000")
        mods = ["virtio_blk", "ext4", "e1000"]
    stop = "@@RESCUE done" if name == "k612-noroot" else None
    text, dt, note = boot(k, img, root, disk2, append, log, stop=stop, devices=devices,
                          usb_root=name == "k612-usb")
    probs = []
    if V.CRASH.search(text):
        probs.append("kernel crash or panic in the log")
    if name == "k612-noroot":
        if "root device UUID=00000000-0000-0000-0000-000000000001 not found" not in text:
            probs.append("no clear 'root device ... not found' message")
        if "@@ROOT" in text:
            probs.append("reached a root it should not have")
        probs += rescue_problems(text)
        kv = {}
    else:
        if note:
            probs.append(note)
        p2, kv = check_root(text, want_init, mods, report=name != "k612-example")
        probs += p2
        bad = [m for m in unwanted if m in kv.get("live", "").split()]
        if bad:
            probs.append(f"blacklisted (command line or the image's modprobe.d) but live: {bad}")
        if name == "k612-uuid":
            if kv.get("virtio_blk.queue_depth") != "64":
                probs.append(f"virtio_blk.queue_depth={kv.get('virtio_blk.queue_depth')!r}, "
                             "expected 64 from the image's /etc/modprobe.d")
            # The blacklist must have been what kept e1000 out: coldplug
            # reached it through the NIC's alias and said so.
            if not re.search(r"pci:v00008086d0000100E\S*: e1000 is blacklisted, not loaded", text):
                probs.append("e1000 was not reached through its alias and refused as blacklisted")
        if name == "k612-uuid" and "/dev/vda:ext4" not in kv.get("mounts", ""):
            probs.append(f"root mounts {kv.get('mounts')!r}")
        if name == "k61-label" and kv.get("e1000.copybreak") != "77":
            probs.append(f"e1000.copybreak={kv.get('e1000.copybreak')!r}, expected 77 from the command line")
        if name == "k612-example":
            for want in ["pid1: virtio_blk ", "pid1: ext4 ", "pid1: /dev/vda (ext4) mounted on /sysroot"]:
                if want not in text:
                    probs.append(f"the example PID 1 did not print {want!r}")
        if name == "k612-broken":
            if "sd_mod" not in text or "FAILED" not in text:
                probs.append("the broken sd_mod was not reported")
        probs += case_problems(name, text, kv)
    return name, probs, dt, kv.get("uptime"), summary


def report_lines(text):
    return [l.split("@@REPORT ", 1)[1].rstrip() for l in text.splitlines() if "@@REPORT " in l]


def case_problems(name, text, kv):
    """The checks of the uevent, handoff and hooks cases (issue 16)."""
    probs = []
    rep = "\n".join(report_lines(text))
    m = re.search(r"uevents: (\d+) read, sysfs scans: (\d+)", rep)
    if name in ("k612-usb", "k612-handoff", "k612-hooks"):
        if not m:
            probs.append("no uevent line in the boot report")
        elif int(m.group(1)) == 0 or m.group(2) != "1":
            probs.append(f"uevents {m.group(1)} read and {m.group(2)} sysfs scans "
                         "(expected events, and the first scan only)")
    if name == "k612-cryptroot":
        if not kv.get("mounts", "").startswith("/dev/dm-"):
            probs.append(f"root mounts {kv.get('mounts')!r}, not the device-mapper volume")
        h = "hook /lib/earlymod/hooks/pre-mount/cryptroot-premount.sh"
        for w in [f"{h}: cryptroot: /dev/mapper/cryptroot is open", f"{h}: done in "]:
            if w not in rep:
                probs.append(f"the report lacks {w!r}")
    if name == "k612-usb":
        if not re.search(r"/dev/sd[a-z]:ext4", kv.get("mounts", "")):
            probs.append(f"root mounts {kv.get('mounts')!r}, expected the USB disk")
        if not re.search(r"root /dev/sd[a-z] mounted at", rep):
            probs.append("the report does not say the USB disk was mounted")
    if name == "k612-handoff":
        if "root chain loaded (earlymod.handoff=root)" not in rep:
            probs.append("the report has no handoff=root time")
        if "root device seen during loading" not in rep:
            probs.append("the root device was not seen during the first batch (block uevent)")
        if not re.search(r"handoff=root: [1-9]\d* device modaliases and \d+ planned modules "
                         r"left to the real system", rep):
            probs.append("the report does not say which devices were left to the real system")
    if name == "k612-hooks":
        h = "/lib/earlymod/hooks"
        want = [f"hook {h}/pre-coldplug/10-env: stage pre-coldplug root UUID={UUID} sysroot /sysroot",
                f"hook {h}/pre-mount/10-env: stage pre-mount root UUID={UUID} sysroot /sysroot",
                f"hook {h}/pre-mount/20-fail: exit status 3 after ",
                f"hook {h}/pre-mount/30-slow: started",
                f"hook {h}/pre-mount/30-slow: killed after 2 s (earlymod.hook_timeout=)",
                f"hook {h}/pre-switch/10-env: stage pre-switch root UUID={UUID} sysroot /sysroot",
                f"hook {h}/pre-switch/20-init: /sysroot/sbin/init is there",
                "rd.break=pre-mount: shell exited, booting on",
                "pass rd.driver.post: 1 requests, 1 modules loaded"]
        for w in want:
            if w not in rep:
                probs.append(f"the report lacks {w!r}")
        if "never" in rep:
            probs.append("the slow hook was not killed in time")
        # The break shell ran between coldplug and the pre-mount hooks.
        order = [text.find("@@BREAK pre-mount"), text.find(f"{h}/pre-mount/10-env: stage")]
        if order[0] < 0:
            probs.append("the rd.break=pre-mount shell did not run")
        elif order[1] >= 0 and order[0] > order[1]:
            probs.append("the rd.break shell ran after the stage's hooks")
    return probs


# k612-hooks: hooks at every stage (their environment, a failing one, one
# killed by earlymod.hook_timeout=), and /bin/sh for rd.break=pre-mount: it
# says so on the console and exits, and the boot goes on.
HOOK_ENV = """#!/bin/busybox sh
echo "stage $EARLYMOD_STAGE root $ROOT sysroot $SYSROOT"
"""
HOOK_FAIL = """#!/bin/busybox sh
echo "failing on purpose" >&2
exit 3
"""
HOOK_SLOW = """#!/bin/busybox sh
echo started
/bin/busybox sleep 20
echo never
"""
HOOK_INIT = """#!/bin/busybox sh
[ -x "$SYSROOT/sbin/init" ] && echo "$SYSROOT/sbin/init is there"
"""
BREAK_SH = """#!/bin/busybox sh
echo "@@BREAK pre-mount pid=$$"
"""


def hook_conf(d):
    lines = [f"file {shutil.which('busybox')} bin/busybox 0755"]
    files = {"bin/sh": BREAK_SH, "h/pre-coldplug/10-env": HOOK_ENV, "h/pre-mount/10-env": HOOK_ENV,
             "h/pre-mount/20-fail": HOOK_FAIL, "h/pre-mount/30-slow": HOOK_SLOW,
             "h/pre-switch/10-env": HOOK_ENV, "h/pre-switch/20-init": HOOK_INIT}
    for dest, body in files.items():
        src = os.path.join(d, dest.replace("/", "_"))
        V.write(src, body.encode(), 0o755)
        dest = "lib/earlymod/hooks/" + dest[2:] if dest.startswith("h/") else dest
        lines.append(f"file {src} {dest} 0755")
    return "\n".join(lines) + "\n"


# The image's /bin/sh for k612-noroot: reports the rescue shell's
# /proc/self/stat (read by the shell itself) and powers off.
RESCUE_SH = """#!/bin/busybox sh
read -r stat < /proc/self/stat
echo "@@RESCUE pid=$$ stat=$stat"
echo "@@RESCUE done"
/bin/busybox poweroff -f
"""


def rescue_problems(text):
    """The rescue shell leads its own session, the console is its
    controlling terminal and it is that terminal's foreground group."""
    m = re.search(r"@@RESCUE pid=(\d+) stat=\d+ \(.*?\) \S+ \d+ (\d+) (\d+) (-?\d+) (-?\d+)", text)
    if not m:
        return ["the rescue shell did not start (or did not report)"]
    pid, pgrp, session, tty_nr, tpgid = (int(x) for x in m.groups())
    probs = []
    if session != pid:
        probs.append(f"rescue shell: session {session}, not its own ({pid})")
    if tty_nr == 0:
        probs.append("rescue shell: no controlling terminal")
    if tpgid != pgrp:
        probs.append(f"rescue shell: not the terminal's foreground group ({tpgid} vs {pgrp})")
    return probs


CASES = ["k612-uuid", "k61-label", "k612-noroot", "k612-broken", "k612-example",
         "k612-usb", "k612-handoff", "k612-hooks", "k612-cryptroot"]

REF_INIT = r"""#!/bin/sh
# Reference initramfs: busybox + kmod's modprobe, coldplug by a shell loop
# over modalias files, until a pass finds nothing new.
export PATH=/sbin:/bin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
seen=" "
coldplug() {
    new=0
    for f in $(find /sys/devices -name modalias); do
        read -r a < "$f" || continue
        case "$seen" in *" $a "*) continue ;; esac
        seen="$seen$a "
        new=1
        /sbin/modprobe -q -b "$a"
    done
}
while :; do coldplug; [ "$new" = 0 ] && break; done
i=0
while ! dev=$(findfs UUID=@UUID@ 2>/dev/null); do
    coldplug; sleep 0.05; i=$((i + 1))
    [ $i -gt 200 ] && { echo "reference: no root"; sleep 100000; }
done
/sbin/modprobe -q ext4
mkdir -p /sysroot
mount -o ro -t ext4 "$dev" /sysroot
for m in dev proc sys; do mount --move "/$m" "/sysroot/$m"; done
exec switch_root /sysroot /sbin/init
"""


def reference_image(k, d, mods):
    """busybox + kmod (with its libraries) + the same modules, gzip'd cpio."""
    stage = os.path.join(d, "ref-stage")
    shutil.rmtree(stage, ignore_errors=True)
    V.stage_base(stage)
    V.install_binary(stage, shutil.which("kmod"), "/bin/kmod")
    for a in ("modprobe", "insmod", "rmmod", "lsmod"):
        V.symlink(stage, "/sbin/" + a, "/bin/kmod")
    V.stage_tree(k, stage, "native", mods)
    V.write(os.path.join(stage, "init"), REF_INIT.replace("@UUID@", UUID).encode(), 0o755)
    raw = os.path.join(d, "ref.cpio")
    V.pack(stage, raw)
    img = os.path.join(d, "ref.img")
    with open(raw, "rb") as f:
        data = subprocess.run(["gzip", "-3", "-n"], input=f.read(), check=True,
                              capture_output=True).stdout
    with open(img, "wb") as f:
        f.write(data)
    return img


def uptime_of(text):
    m = re.search(r"@@ROOT uptime=([0-9.]+)", text)
    return float(m.group(1)) if m else None


def demo(args):
    """The main job: config/pack/default.conf (the default embedded set and
    the boot drivers), packed for 6.12 with earlymod as PID 1, booted
    with a tiny ext4 root; prints what the root's init saw and the boot
    report."""
    k = V.Kernel("k612")
    d = os.path.join(WORK, "demo")
    shutil.rmtree(d, ignore_errors=True)
    os.makedirs(d)
    root, disk2 = make_root(d, "k612")
    img = os.path.join(d, "initrd.img")
    cmd = [args.pack, "-b", k.root, "-k", k.kver, "-c", DEFAULT_CONF, "-o", img,
           "--earlymod", args.earlymod]
    p = subprocess.run(cmd, capture_output=True, text=True)
    print(p.stderr.strip())
    if p.returncode != 0:
        sys.exit(1)
    log = os.path.join(d, "serial.log")
    print(f"== booting Linux {k.kver} under QEMU (TCG): root=UUID={UUID}, earlymod as /init")
    text, dt, note = boot(k, img, root, disk2, f"root=UUID={UUID}", log)
    for line in text.splitlines():
        line = line.rstrip()
        if "@@ROOT" in line or "@@REPORT" in line or "earlymod:" in line:
            print(line.split("@@REPORT ", 1)[-1].split("@@ROOT ", 1)[-1])
    probs, _ = check_root(text, "init", ["virtio_blk", "ext4"])
    print(f"== {'ok' if not probs else 'FAILED: ' + '; '.join(probs)} "
          f"(QEMU {dt:.1f} s{', ' + note if note else ''}; serial log {log})")
    sys.exit(1 if probs else 0)


def bench(args):
    """Time from kernel start to the root's init (its /proc/uptime), earlymod
    as PID 1 (parallel, earlymod.jobs=1, earlymod.handoff=root) vs the
    reference image and the peers (qemu/peers.py: dracut, initramfs-tools,
    tiny-initramfs; on the kernels of --peers), rounds interleaved (the
    order rotates), one VM at a time, the same root disk and command line."""
    import json
    import statistics
    import peers as P
    with open(CONF) as f:
        mods = [w for l in f if l.startswith("include ") for w in l.split()[1:]]
    # tiny-initramfs has no coldplug and loads every module it is given: the
    # drivers of the VM's devices (virtio disk, AHCI) and root filesystem.
    tiny_mods = [m for m in ("virtio_pci", "virtio_blk", "ahci", "sd_mod", "ext4") if m in mods]
    peer_kernels = [x for x in args.peers.split(",") if x and x != "none"]
    root_init = ROOT_INIT.replace("@@ROOT marker", "@@ROOT marker init")
    results = {}
    for kname in ("k612", "k61"):
        k = V.Kernel(kname)
        d = os.path.join(WORK, f"bench-{kname}")
        shutil.rmtree(d, ignore_errors=True)
        os.makedirs(d)
        root, disk2 = P.bench_root(d, root_init, LABEL, UUID)
        em = os.path.join(d, "earlymod.img")
        pack(args, k, em)
        variants = [("earlymod", em, ""), ("earlymod jobs=1", em, " earlymod.jobs=1"),
                    ("earlymod handoff=root", em, " earlymod.handoff=root"),
                    ("busybox+kmod", reference_image(k, d, mods), "")]
        if kname in peer_kernels:
            # The same modules as tiny-initramfs's image (its closure, by
            # earlymod-pack): earlymod still resolves and coldplugs them.
            same = os.path.join(d, "earlymod-tiny-modules.img")
            conf = os.path.join(d, "tiny-modules.conf")
            with open(conf, "w") as f:
                f.write(f"include {' '.join(tiny_mods)}\ninit earlymod\ncompress gzip\n")
            pack_conf(args.pack, args.earlymod, k, conf, same)
            variants.append(("earlymod same modules", same, ""))
        broken = {}
        if kname in peer_kernels:
            for name in P.PEERS:
                try:
                    img = P.BUILDERS[name](k, d, tiny_mods if name == "tiny-initramfs" else mods)
                    variants.append((name, img, ""))
                except Exception as e:  # noqa: BLE001
                    broken[name] = f"image not built: {e}"
                    print(f"bootbench: {kname} {name}: FAILED, {broken[name]}", flush=True)
        names = [v[0] for v in variants] + list(broken)
        times = {n: [] for n in names}
        failed = {n: ([broken[n]] if n in broken else []) for n in names}
        parts = {n: [] for n in names}
        live = {}
        path = P.CriticalPath(k)
        for rnd in range(args.rounds):
            r = rnd % len(variants)
            for name, img, extra in variants[r:] + variants[:r]:
                log = os.path.join(d, f"{name.replace(' ', '_')}-{rnd}.log")
                text, _, note = boot(k, img, root, disk2, f"root=UUID={UUID}{extra}", log)
                probs, kv = check_root(text, "init", ["virtio_blk", "ext4"], report=False)
                if V.CRASH.search(text):
                    probs.append("kernel crash or panic in the log")
                t = uptime_of(text)
                if t is None or probs:
                    why = "; ".join(([note] if note else []) + probs) or "no uptime"
                    failed[name].append(f"round {rnd + 1}: {why} ({log})")
                    print(f"bootbench: {kname} round {rnd + 1} {name}: FAILED {why}", flush=True)
                    continue
                times[name].append(t)
                live.setdefault(name, P.live_modules(text))
                o = P.overhead(text, path)
                parts[name].append(o)
                print(f"bootbench: {kname} round {rnd + 1} {name}: {t} s "
                      f"(kernel to /init {o['kernel_to_init_s']})", flush=True)
        med = {n: statistics.median(v) if v else None for n, v in times.items()}

        def med_part(n, key):
            xs = [o[key] for o in parts[n] if o[key] is not None]
            return round(statistics.median(xs), 4) if xs else None
        results[kname] = {
            "kver": k.kver, "rounds": args.rounds, "median_s": med, "all_s": times,
            "failed": failed, "live": live,
            "image_bytes": {v[0]: os.path.getsize(v[1]) for v in variants},
            "kernel_to_init_s": {n: med_part(n, "kernel_to_init_s") for n in names},
            "overhead": {n: {key: med_part(n, key) for key in P.OVERHEAD_KEYS}
                         for n in names if n.startswith("earlymod")},
            "tiny_modules": tiny_mods, "peers": kname in peer_kernels}
    print("\n### Time from kernel start to the root's init (median uptime, s)\n")
    print("| kernel | earlymod | earlymod jobs=1 | busybox+kmod | ratio parallel/ref | ratio jobs=1/ref | goal |")
    print("|---|---:|---:|---:|---:|---:|---|")
    for r in results.values():
        m = r["median_s"]
        e, e1, ref = m["earlymod"], m["earlymod jobs=1"], m["busybox+kmod"]
        ratio = lambda a: f"{a / ref:.2f}" if a and ref else "n/a"  # noqa: E731
        print(f"| {r['kver']} | {e} | {e1} | {ref} | {ratio(e)} | {ratio(e1)} | <= 0.60 |")
    P.print_tables(results)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=1)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--pack", default=os.path.join(REPO, "out/earlymod-pack"))
    ap.add_argument("--earlymod", default=os.path.join(REPO, "out/earlymod"))
    ap.add_argument("--example", default=os.path.join(REPO, "out/example-pid1"),
                    help="the example PID 1 (examples/pid1.rs, built static)")
    ap.add_argument("--only", default="")
    ap.add_argument("-j", type=int, default=2)
    ap.add_argument("--bench", action="store_true",
                    help="time to root vs a busybox+kmod reference image")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--peers", default="k612,k61", metavar="KERNELS",
                    help="--bench: the kernels (k612,k61) booting the dracut, "
                    "initramfs-tools and tiny-initramfs images too; none: no peers")
    ap.add_argument("--json", metavar="FILE", help="--bench: also write the figures as JSON")
    ap.add_argument("--demo", action="store_true",
                    help="boot the default set on 6.12 and print the boot report")
    args = ap.parse_args()
    if args.demo:
        os.makedirs(WORK, exist_ok=True)
        demo(args)
    if args.bench:
        os.makedirs(WORK, exist_ok=True)
        # vmtest's tree staging resolves closures with this modprobe.d.
        os.makedirs(os.path.join(V.WORK, "modprobe.d"), exist_ok=True)
        with open(os.path.join(V.WORK, "modprobe.d", "vmtest.conf"), "w") as f:
            f.write(V.S.MODPROBE_D)
        bench(args)
        return
    names = args.only.split(",") if args.only else CASES
    # The example PID 1 does not use --earlymod: it boots once, with the
    # default binary's run.
    if not args.only and os.path.basename(args.earlymod) != "earlymod":
        names = [n for n in names if n != "k612-example"]
    # The tiny build has no hooks (the `hooks` feature), and boots the
    # uevent cases the same way as the full build: those run once.
    if not args.only and "tiny" in os.path.basename(args.earlymod):
        names = [n for n in names if n not in ("k612-hooks", "k612-handoff", "k612-cryptroot")]
    os.makedirs(WORK, exist_ok=True)
    failed = 0
    with concurrent.futures.ThreadPoolExecutor(args.j) as ex:
        for f in [ex.submit(run_case, args, n) for n in names]:
            try:
                name, probs, dt, up, summary = f.result()
            except Exception as e:  # noqa: BLE001
                print(f"bootvm: FAIL ({e})")
                failed += 1
                continue
            state = "ok" if not probs else "FAIL (" + "; ".join(probs) + ")"
            print(f"bootvm: {name} {state}: boot {dt:.1f} s, root's init at uptime {up}")
            failed += bool(probs)
    print(f"bootvm: {len(names) - failed} passed, {failed} failed")
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
