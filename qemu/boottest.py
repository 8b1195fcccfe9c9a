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
    conf = CONF
    if extra_conf:
        conf = out + ".conf"
        with open(CONF) as f:
            text = f.read().replace("../../config/", os.path.join(REPO, "config") + "/")
        with open(conf, "w") as f:
            f.write(text + extra_conf)
    cmd = [args.pack, "-b", k.root, "-k", k.kver, "-c", conf, "-o", out,
           "--earlymod", args.earlymod]
    p = subprocess.run(cmd, capture_output=True, text=True)
    if p.returncode != 0:
        raise RuntimeError(f"earlymod-pack exit {p.returncode}: {p.stderr.strip()}")
    return p.stderr.strip()


def boot(k, img, root, disk2, append, log, timeout=90, stop=None, devices=()):
    cmd = V.qemu_argv(k, img, log, "loglevel=4 " + append, [
        "-drive", f"file={root},if=virtio,format=raw",
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
    stop = "@@RESCUE done" if name == "k612-noroot" else None
    text, dt, note = boot(k, img, root, disk2, append, log, stop=stop, devices=devices)
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
    return name, probs, dt, kv.get("uptime"), summary


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


CASES = ["k612-uuid", "k61-label", "k612-noroot", "k612-broken", "k612-example"]

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
    as PID 1 (parallel and earlymod.jobs=1) vs the reference image, rounds
    interleaved, one VM at a time."""
    import statistics
    with open(CONF) as f:
        mods = [w for l in f if l.startswith("include ") for w in l.split()[1:]]
    rows = []
    results = {}
    for kname in ("k612", "k61"):
        k = V.Kernel(kname)
        d = os.path.join(WORK, f"bench-{kname}")
        shutil.rmtree(d, ignore_errors=True)
        os.makedirs(d)
        root, disk2 = make_root(d, kname)
        em = os.path.join(d, "earlymod.img")
        pack(args, k, em)
        ref = reference_image(k, d, mods)
        variants = [("earlymod", em, ""), ("earlymod jobs=1", em, " earlymod.jobs=1"),
                    ("busybox+kmod", ref, "")]
        times = {v[0]: [] for v in variants}
        failed = {v[0]: [] for v in variants}
        for rnd in range(args.rounds):
            for name, img, extra in variants[rnd % 3:] + variants[:rnd % 3]:
                log = os.path.join(d, f"{name.replace(' ', '_')}-{rnd}.log")
                text, _, note = boot(k, img, root, disk2, f"root=UUID={UUID}{extra}", log)
                t = uptime_of(text)
                print(f"bootbench: {kname} round {rnd + 1} {name}: "
                      f"{t if t is not None else 'FAILED ' + note} s", flush=True)
                if t is not None:
                    times[name].append(t)
                else:
                    failed[name].append(f"round {rnd + 1}: {note or 'no root marker'} ({log})")
        med = {n: statistics.median(v) if v else None for n, v in times.items()}
        rows.append((k.kver, med))
        results[kname] = {"kver": k.kver, "rounds": args.rounds, "median_s": med,
                          "all_s": times, "failed": failed}
    print("\n### Time from kernel start to the root's init (median uptime, s)\n")
    print("| kernel | earlymod | earlymod jobs=1 | busybox+kmod | ratio parallel/ref | ratio jobs=1/ref | goal |")
    print("|---|---:|---:|---:|---:|---:|---|")
    for kver, m in rows:
        e, e1, r = m["earlymod"], m["earlymod jobs=1"], m["busybox+kmod"]
        ratio = lambda a: f"{a / r:.2f}" if a and r else "n/a"  # noqa: E731
        print(f"| {kver} | {e} | {e1} | {r} | {ratio(e)} | {ratio(e1)} | <= 0.60 |")
    if args.json:
        import json
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
