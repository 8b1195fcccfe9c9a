#!/usr/bin/env python3
"""Sizes of earlymod's static builds (`make size`).

Builds every variant of the static, libc-free binary the way the Makefile
does (stripped, profile `static`), and an unstripped twin of each for the
contributors: the symbols' sizes (`nm -S`) grouped by crate. Prints one
table (build, features, bytes, ceiling, goal) and each build's largest
contributors; `--features` adds each optional feature's cost (the full
build without it); `--json FILE` writes the figures; `--check` exits 1 when
a build is over its ceiling (in `make test`).

Ceilings stop growth: a change that makes a build bigger than its ceiling
fails the check, and a change that makes it smaller lowers the ceiling (edit
CEILINGS). The goals are issue 12's budgets (128 KiB with everything; the
33,888 bytes of tiny-initramfs's whole static init for PID 1 + modprobe).
"""

import argparse
import collections
import json
import os
import re
import subprocess
import sys

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FLAGS = "-C target-feature=+crt-static -C relocation-model=static"

CACHE = os.environ.get("EARLYMOD_CACHE") or "/var/cache/earlymod"
# Debian trixie's rustc/cargo for the other architectures (scripts/cross.sh).
CROSS = os.path.join(CACHE, "rust-cross", "bin")
TARGETS = {"aarch64": "aarch64-unknown-linux-gnu", "riscv64": "riscv64gc-unknown-linux-gnu"}

# name: (cargo features, cargo profile, what it is)
BUILDS = {
    "earlymod": ("static-bin,config,cmdline,modinfo,rmmod,lsmod,init,hooks,coldplug,parallel,decompress", "static",
                 "everything: every applet, PID 1, gzip/xz/zstd decoders"),
    "earlymod-tiny": ("static-bin,init,config,cmdline", "static-tiny",
                      "PID 1 + modprobe/insmod (modprobe.d, kernel command line), "
                      "kernel-delegated decompression"),
    "earlymod-loader": ("static-bin", "static-tiny",
                        "modprobe/insmod only, no modprobe.d, no kernel command line: "
                        "the smallest loader"),
}
# The same two builds for each other architecture: "NAME-ARCH".
for arch in TARGETS:
    for base in ("earlymod", "earlymod-tiny"):
        f, prof, what = BUILDS[base]
        BUILDS[f"{base}-{arch}"] = (f, prof, f"{what} ({arch}, Debian rustc 1.85)")

# Bytes a build may not exceed (measured, then rounded up: see the docstring).
# Raised with issue 16's PID 1 (the uevent socket, root-first batches and
# earlymod.handoff=root in every PID 1 build; hooks and rd.break, 6,488 B, in
# the full ones; the loader's suffix-first insert and the small-module
# buffer): 235,008 / 132,728 / 75,192 measured (x86_64), 223,912 / 125,088
# (aarch64), 210,272 / 119,096 (riscv64).
CEILINGS = {"earlymod": 235_600, "earlymod-tiny": 133_200, "earlymod-loader": 75_400,
            "earlymod-aarch64": 224_500, "earlymod-tiny-aarch64": 125_600,
            "earlymod-riscv64": 210_800, "earlymod-tiny-riscv64": 119_600}
# Issue 12's budgets.
GOALS = {"earlymod": 131_072, "earlymod-tiny": 33_888, "earlymod-aarch64": 131_072, "earlymod-riscv64": 131_072,
         "earlymod-tiny-aarch64": 33_888, "earlymod-tiny-riscv64": 33_888}
OPTIONAL = ["config", "cmdline", "modinfo", "rmmod", "lsmod", "init", "hooks", "coldplug", "parallel", "gzip", "xz", "zstd"]


def arch_of(name):
    """The other architecture a build name ends with, or None (x86_64)."""
    return next((a for a in TARGETS if name.endswith("-" + a)), None)


def build(features, target_dir, strip=True, profile="static", arch=None):
    """Builds the static binary with `features` (for `arch`, with the cross
    toolchain); returns its path."""
    env = dict(os.environ, RUSTFLAGS=FLAGS)
    if not strip:
        env["CARGO_PROFILE_" + profile.upper().replace("-", "_") + "_STRIP"] = "false"
    cargo, target = "cargo", []
    if arch:
        t = TARGETS[arch]
        cargo, target = os.path.join(CROSS, "cargo"), ["--target", t]
        env.update(RUSTC=os.path.join(CROSS, "rustc"), RUSTDOC=os.path.join(CROSS, "rustdoc"))
        env["CARGO_TARGET_" + t.upper().replace("-", "_") + "_LINKER"] = os.path.join(CROSS, "cc-lld")
    cmd = [cargo, "build", "--locked", "-q", "--profile", profile, "-p", "earlymod",
           "--bin", "earlymod-static", "--no-default-features", "--features", features,
           "--target-dir", target_dir] + target
    r = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True)
    if r.returncode != 0:
        sys.exit(f"size: build failed ({features}{', ' + arch if arch else ''}):\n{r.stderr}")
    return os.path.join(target_dir, *([TARGETS[arch]] if arch else []), profile, "earlymod-static")


def crate_of(symbol):
    """The crate a demangled symbol belongs to (`core`, `earlymod_core`, ...)."""
    # `<T as crate::Trait>::f`: the trait's crate (core's formatting
    # impls for char, usize, ... are core's bytes).
    m = re.match(r"<.*? as [&*]?(?:dyn )?([A-Za-z_][A-Za-z0-9_]*)::", symbol)
    if m:
        return m.group(1)
    s = symbol.lstrip("<&*")
    s = re.sub(r"^(dyn |mut |const )+", "", s)
    m = re.match(r"([A-Za-z_][A-Za-z0-9_]*)::", s)
    if m:
        return m.group(1)
    if s.startswith(("_ZN", "__rust", "rust_")):
        return "rust runtime"
    return "(other: " + s.split(" ")[0][:30] + ")"


def contributors(unstripped, top):
    """The `top` largest crates of an unstripped binary, by symbol size."""
    r = subprocess.run(["nm", "-S", "--size-sort", "-C", unstripped], capture_output=True, text=True)
    by = collections.Counter()
    for line in r.stdout.splitlines():
        parts = line.split(" ", 3)
        if len(parts) == 4:
            by[crate_of(parts[3])] += int(parts[1], 16)
    return by.most_common(top)


def section_sizes(path):
    r = subprocess.run(["size", "-A", path], capture_output=True, text=True)
    out = {}
    for line in r.stdout.splitlines():
        p = line.split()
        if len(p) >= 2 and p[0].startswith(".") and p[1].isdigit():
            out[p[0]] = int(p[1])
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--check", action="store_true", help="exit 1 when a build is over its ceiling")
    ap.add_argument("--features", action="store_true", help="also measure each feature's cost")
    ap.add_argument("--top", type=int, default=10, help="contributors shown per build")
    ap.add_argument("--no-contributors", action="store_true",
                    help="skip the unstripped twins (faster: sizes only)")
    ap.add_argument("--json", help="write the figures to this file")
    a = ap.parse_args()

    work = os.path.join(REPO, "target", "size")
    results = {}
    for name, (features, profile, what) in BUILDS.items():
        arch = arch_of(name)
        if arch and not os.path.exists(os.path.join(CROSS, "cargo")):
            print(f"size: {name} skipped: no cross toolchain in {CROSS} (make setup)")
            continue
        path = build(features, os.path.join(work, name), profile=profile, arch=arch)
        size = os.path.getsize(path)
        # The contributors come from the host's nm: x86_64 builds only.
        twin = None if a.no_contributors or arch else build(
            features, os.path.join(work, name + "-sym"), strip=False, profile=profile)
        results[name] = {
            "features": features, "profile": profile, "what": what, "bytes": size,
            "ceiling": CEILINGS.get(name), "goal": GOALS.get(name),
            "sections": section_sizes(twin) if twin else {},
            "contributors": contributors(twin, a.top) if twin else [],
        }
    costs = {}
    if a.features:
        # What the one feature outside the full build would add.
        p = build(results["earlymod"]["features"] + ",panic-message",
                  os.path.join(work, "with-panic-message"))
        costs["+panic-message"] = os.path.getsize(p) - results["earlymod"]["bytes"]
        full = BUILDS["earlymod"][0].split(",")
        full = [f for f in full if f != "decompress"] + ["gzip", "xz", "zstd"]
        base = results["earlymod"]["bytes"]
        for f in OPTIONAL:
            # `hooks` needs `init`: without init, without its hooks too.
            rest = ",".join(x for x in full if x != f and not (f == "init" and x == "hooks"))
            p = build(rest, os.path.join(work, "without-" + f))
            costs[f] = base - os.path.getsize(p)

    print(f"{'build':22} {'bytes':>9} {'ceiling':>9} {'goal':>9}  features")
    over = []
    for name, r in results.items():
        goal = f"{r['goal']:,}" if r["goal"] else "-"
        print(f"{name:22} {r['bytes']:>9,} {r['ceiling']:>9,} {goal:>9}  {r['features']}")
        if r["ceiling"] and r["bytes"] > r["ceiling"]:
            over.append(name)
    for name, r in results.items():
        if not r["contributors"]:
            continue
        text = r["sections"].get(".text", 0)
        rodata = r["sections"].get(".rodata", 0)
        print(f"\n{name}: .text {text:,}, .rodata {rodata:,}; largest contributors (unstripped twin):")
        for crate, n in r["contributors"]:
            print(f"  {n:>8,}  {crate}")
    if costs:
        print("\nfeature cost (the full build without it is this much smaller; "
              "+X: what adding X to it costs):")
        for f, n in costs.items():
            print(f"  {f:10} {n:>8,}")
    if a.json:
        with open(a.json, "w") as fh:
            json.dump({"builds": results, "feature_costs": costs}, fh, indent=1)
    if a.check:
        if over:
            for name in over:
                r = results[name]
                print(f"size: FAIL {name} is {r['bytes']:,} bytes, over its ceiling of "
                      f"{r['ceiling']:,} (scripts/size.py)")
            sys.exit(1)
        print(f"size: {len(results)} builds within their ceilings")


if __name__ == "__main__":
    main()
