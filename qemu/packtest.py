#!/usr/bin/env python3
"""Boot images made by earlymod-pack and check what got loaded.

    python3 qemu/packtest.py [--pack out/earlymod-pack] [--earlymod out/earlymod]
                             [--only NAME[,NAME]] [-j N]

Each case packs tests/pack/script-init.conf (the default embedded set, busybox
and tests/pack/init-modprobe.sh as /init) for one kernel, boots it under
QEMU (TCG) and checks the serial log: the init's `earlymod modprobe -a` of
the set exited 0, and the live modules in /proc/modules are exactly kmod's
closure of the set (`modprobe -D -a` over the full tree, same modprobe.d).
Cases:
  k612      Debian 6.12 tree (.ko.xz, the kernel decompresses xz): kept as is
  k61       Debian 6.1 tree (plain .ko)
  k612-zst  the set's closure recompressed to .ko.zst (6.12 decompresses
            only xz): earlymod-pack stores plain .ko
  k61-xz64  the set's closure recompressed to .ko.xz with CRC64 checks (6.1
            has no module decompression): stored as plain .ko
  k612-microcode  as k612, with `--microcode amd` from the cache's firmware
            tree (Debian's amd64-microcode): unmkinitramfs must show the
            early member first holding exactly kernel/x86/microcode/
            AuthenticAMD.bin (the package's files concatenated), and the
            kernel's early loader must read it when booted as an AMD EPYC
            (family 17h, `-cpu EPYC,-hypervisor`: without the hypervisor
            bit the loader runs): it finds the patch for CPUID 0x800f12 and
            says so ("microcode: CPUID(1).EAX: 0x800f12" — TCG cannot apply
            it, so the kernel reports the unchanged revision)
After the check of the live modules, the init runs `earlymod coldplug` (the
helper mode for script-based initramfs) and `earlymod report`: exit 0 and a
report with at least one pass are required. Also checks that packing twice
gives the same sha256 (reproducibility).
Prints `packvm: NAME ok|FAIL (reason)`; exits 1 on any failure.
"""

import argparse
import concurrent.futures
import hashlib
import os
import re
import shutil
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
sys.path.insert(0, HERE)
import vmtest as V  # noqa: E402

WORK = os.path.join(V.WORK, "pack")
CONF = os.path.join(REPO, "tests/pack/script-init.conf")
EXAMPLE_D = os.path.join(REPO, "config/modprobe.d")


def load_set():
    with open(os.path.join(REPO, "config/default-modules.conf")) as f:
        return [l.strip() for l in f if l.strip() and not l.startswith("#")]


def closure(k, root, mods):
    out = V.sh(["modprobe", "-d", root, "-S", k.kver, "-C", EXAMPLE_D, "-D", "-a"] + mods)
    return sorted({V.modname(l.split()[1]) for l in out.splitlines()
                   if l.startswith("insmod ")})


def recompressed_tree(k, kind, mods):
    """The closure of mods from k's tree, recompressed (cached)."""
    flags = {"zst": ["zstd", "-q", "-19", "-c"],
             "xz64": ["xz", "--check=crc64", "-c"]}[kind]
    rels = [os.path.relpath(l.split()[1], k.moddir) for l in V.sh(
        ["modprobe", "-d", k.root, "-S", k.kver, "-C", EXAMPLE_D, "-D", "-a"] + mods
    ).splitlines() if l.startswith("insmod ")]
    key = hashlib.sha1(repr((k.kver, kind, sorted(rels), flags)).encode()).hexdigest()[:12]
    root = os.path.join(V.WORK, "trees", f"pack-{k.name}-{kind}-{key}")
    if os.path.isdir(root):
        return root
    tmp = root + ".tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    dst = os.path.join(tmp, "lib/modules", k.kver)
    suffix = {"zst": ".zst", "xz64": ".xz"}[kind]
    for rel in rels:
        data = subprocess.run(flags, input=V.read_plain(os.path.join(k.moddir, rel)),
                              check=True, capture_output=True).stdout
        V.write(os.path.join(dst, V.strip_ko(rel) + suffix), data)
    for f in ("modules.builtin", "modules.builtin.modinfo", "modules.order"):
        if os.path.exists(os.path.join(k.moddir, f)):
            shutil.copy(os.path.join(k.moddir, f), dst)
    V.sh(["depmod", "-b", tmp, k.kver])
    os.rename(tmp, root)
    return root


def pack(args, k, root, out, extra=()):
    cmd = [args.pack, "-b", root, "-k", k.kver, "-c", CONF, "-o", out,
           "--earlymod", args.earlymod,
           "--kernel-config", os.path.join(k.root, "boot", "config-" + k.kver)]
    cmd += list(extra)
    p = subprocess.run(cmd, capture_output=True, text=True)
    if p.returncode != 0:
        raise RuntimeError(f"earlymod-pack exit {p.returncode}: {p.stderr.strip()}")
    return p.stderr.strip()


def boot(k, img, log, timeout=120, cpu=None):
    argv = V.qemu_argv(k, img, log, "quiet loglevel=1" if cpu is None else "loglevel=7")
    if cpu:
        argv[argv.index("max")] = cpu
    return V.run_qemu(argv, log, timeout)


FIRMWARE = os.path.join(V.CACHE, "firmware/root/lib/firmware")


def microcode_member(img):
    """Problems with the image's early member (unmkinitramfs's view)."""
    d = img + ".unpacked"
    shutil.rmtree(d, ignore_errors=True)
    p = subprocess.run(["unmkinitramfs", img, d], capture_output=True, text=True)
    if p.returncode != 0:
        return [f"unmkinitramfs exit {p.returncode}: {p.stderr.strip()}"]
    early = os.path.join(d, "early")
    files = sorted(os.path.relpath(os.path.join(r, f), early)
                   for r, _, fs in os.walk(early) for f in fs)
    if files != ["kernel/x86/microcode/AuthenticAMD.bin"]:
        return [f"early member holds {files}, want kernel/x86/microcode/AuthenticAMD.bin"]
    src = os.path.join(FIRMWARE, "amd-ucode")
    want = b"".join(open(os.path.join(src, f), "rb").read() for f in sorted(os.listdir(src))
                    if f.startswith("microcode_amd") and f.endswith(".bin"))
    with open(os.path.join(early, files[0]), "rb") as f:
        if f.read() != want:
            return ["AuthenticAMD.bin is not the amd-ucode files concatenated"]
    return []


CASES = {
    "k612": ("k612", None),
    "k61": ("k61", None),
    "k612-zst": ("k612", "zst"),
    "k61-xz64": ("k61", "xz64"),
    "k612-microcode": ("k612", None),
}


def run_case(args, name):
    kname, kind = CASES[name]
    k = V.Kernel(kname)
    mods = load_set()
    root = k.root if kind is None else recompressed_tree(k, kind, mods)
    d = os.path.join(WORK, name)
    shutil.rmtree(d, ignore_errors=True)
    os.makedirs(d)
    img = os.path.join(d, "initrd.img")
    micro = name == "k612-microcode"
    summary = pack(args, k, root, img, ["-f", FIRMWARE, "--microcode", "amd"] if micro else [])
    with open(img, "rb") as f:
        data = f.read()
    text, dt, note = boot(k, img, os.path.join(d, "serial.log"),
                          cpu="EPYC,-hypervisor" if micro else None)
    kv = {}
    for line in text.splitlines():
        m = re.match(r".*@@PACK (\w+)=(.*)$", line.rstrip())
        if m:
            kv[m.group(1)] = m.group(2).strip()
    want = closure(k, root, mods)
    live = sorted(kv.get("live", "").split())
    problems = []
    if note:
        problems.append(note)
    if micro:
        problems += microcode_member(img)
        if "microcode: CPUID(1).EAX: 0x800f12" not in text:
            problems.append("the kernel's early loader did not find the EPYC patch")
    if V.CRASH.search(text):
        problems.append("kernel crash in the log")
    if kv.get("kver") != k.kver:
        problems.append(f"init did not report (kver={kv.get('kver')!r})")
    if kv.get("rc") != "0":
        problems.append(f"modprobe -a exit {kv.get('rc')!r}")
    m = re.search(r"(\d+) modules \((\d+) builtin needed none, (\d+) decompressed", summary)
    if not m:
        problems.append(f"no summary from earlymod-pack: {summary!r}")
    elif kind is not None and m.group(1) != m.group(3):
        # Every module had to be decompressed for this kernel.
        problems.append(f"{m.group(3)} of {m.group(1)} modules decompressed")
    elif kind is None and m.group(3) != "0":
        problems.append(f"{m.group(3)} modules decompressed, expected none")
    if kv.get("coldplug_rc") != "0":
        problems.append(f"earlymod coldplug exit {kv.get('coldplug_rc')!r}")
    if kv.get("report_passes", "0") in ("", "0"):
        problems.append("earlymod report printed no passes")
    if live != want:
        problems.append(f"live modules differ: missing {sorted(set(want) - set(live))}, "
                        f"extra {sorted(set(live) - set(want))}")
    return name, problems, dt, len(data), len(live), summary


def reproducible(args):
    """Two packs of the same inputs (different -j) must be byte-identical."""
    k = V.Kernel("k612")
    d = os.path.join(WORK, "repro")
    shutil.rmtree(d, ignore_errors=True)
    os.makedirs(d)
    sums = []
    for i, jobs in enumerate(("1", "4")):
        out = os.path.join(d, f"img{i}")
        pack(args, k, k.root, out, ["-q", "-j", jobs])
        with open(out, "rb") as f:
            sums.append(hashlib.sha256(f.read()).hexdigest())
    return sums


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--pack", default=os.path.join(REPO, "out/earlymod-pack"))
    ap.add_argument("--earlymod", default=os.path.join(REPO, "out/earlymod"))
    ap.add_argument("--only", default="")
    ap.add_argument("-j", type=int, default=2)
    args = ap.parse_args()
    names = args.only.split(",") if args.only else list(CASES)
    os.makedirs(WORK, exist_ok=True)
    failed = 0
    sums = reproducible(args)
    ok = sums[0] == sums[1]
    print(f"packvm: reproducible {'ok' if ok else 'FAIL'} (sha256 {sums[0][:16]} vs {sums[1][:16]})")
    failed += not ok
    with concurrent.futures.ThreadPoolExecutor(args.j) as ex:
        futs = [ex.submit(run_case, args, n) for n in names]
        for f in futs:
            try:
                name, problems, dt, size, nlive, summary = f.result()
            except Exception as e:  # noqa: BLE001
                print(f"packvm: FAIL ({e})")
                failed += 1
                continue
            state = "ok" if not problems else "FAIL (" + "; ".join(problems) + ")"
            print(f"packvm: {name} {state}: {nlive} modules live, image {size} bytes, "
                  f"boot {dt:.1f} s")
            print(f"        {summary}")
            failed += bool(problems)
    print(f"packvm: {len(names) + 1 - failed} passed, {failed} failed")
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
