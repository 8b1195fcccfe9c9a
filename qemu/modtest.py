#!/usr/bin/env python3
"""earlymod's own test modules (qemu/testmod/) loaded under QEMU.

    python3 qemu/modtest.py [--only k612,k61] [--loader earlymod|kmod|both] [-j N]

Needs the modules built by scripts/testmod.sh (run by scripts/setup.sh).

One boot per kernel. The image holds the test modules that scripts/testmod.sh
built for that kernel (under /lib/modules/KVER/extra/, indexed by depmod),
busybox, earlymod (as /em/modprobe, /em/insmod) and the machine's kmod (as
/kmod/modprobe, /kmod/insmod). /init runs the same check groups with each
loader (`--loader` picks one or both), unloading everything (busybox rmmod)
between groups:

  params    em_params with options from /etc/modprobe.d, the kernel command
            line and modprobe's command line (quoted values with spaces,
            arrays with commas, a dashed module name), every parameter read
            back from /sys/module/em_params/parameters and compared with the
            value the kernel's rules give (later source wins)
  toolong   a value too long for em_params' 16-byte string: the kernel says
            ENOSPC; exit 1..127, one stderr line naming em_params and
            "No space left on device", nothing loaded
  nodev     em_nodev's init returns -ENODEV: exit 1..127, one stderr line
            naming em_nodev and "No such device", its init ran (dmesg)
  dep       `insmod em_user` alone fails (unknown symbol, one line naming
            em_user); `modprobe em_user` loads em_params first (modules.dep),
            em_params gets its modprobe.d and kernel-command-line options,
            em_user's init saw em_params_magic() = em_params.p_int + 1000
  sleep     `modprobe em_sleep ms=300` then `modprobe em_sleep2` (ms from
            modprobe.d): each init slept at least its ms, one after the other
  parallel  (earlymod only) `earlymod load-config --jobs=2` of
            /etc/modules-load.d/emtest.conf (em_sleep, em_sleep2): both
            inits overlap in time

Prints `vm: KERNEL LOADER GROUP ok|FAIL (reasons)`, then every difference
between earlymod's and kmod's stderr for the same command (informational,
see qemu/README.md), then `N passed, M failed`; exits 1 on any failure.
Images and serial logs stay in $QEMU_WORKDIR/mod/KERNEL.
"""

import argparse
import concurrent.futures
import os
import re
import shlex
import shutil
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
sys.path.insert(0, HERE)
import vmtest as V  # noqa: E402

WORK = os.path.join(V.WORK, "mod")
TESTMOD = os.path.join(V.CACHE, "testmod")
KERNELS = ["k612", "k61"]
LOADERS = ["earlymod", "kmod"]
MODULES = ["em_params", "em_user", "em_nodev", "em_sleep", "em_sleep2"]

# ---------------------------------------------------------------- options
# em_params' parameters and their kernel types (moduleparam.h).
TYPES = {
    "p_byte": "byte", "p_short": "short", "p_ushort": "ushort", "p_int": "int",
    "p_uint": "uint", "p_long": "long", "p_ulong": "ulong", "p_ullong": "ullong",
    "p_hexint": "hexint", "p_bool": "bool", "p_invbool": "invbool",
    "p_bint": "bint", "p_charp": "charp", "p_note": "charp",
    "p_intarr": "int[]", "p_strarr": "charp[]", "p_string": "string",
}
STRING_MAX = 15           # p_string is a 16-byte buffer

# /etc/modprobe.d/emtest.conf: (module as written, "param=value" as written).
# The dashed name must be normalised; two lines for one module add up.
CONF = [
    ("em-params", 'p_byte=200 p_short=-1234 p_ushort=65535 p_int=-7 '
                  'p_uint=4000000000 p_long=-9000000000 p_ulong=1 '
                  'p_ullong=12345678901234567890 p_hexint=0xbeef p_bool=1 '
                  'p_invbool=1 p_charp="from modprobe.d" p_intarr=1,2,3'),
    ("em_params", "p_bint=0"),
    ("em_sleep", "ms=400"),
    ("em_sleep2", "ms=400"),
]
# Kernel command line: quoted value with spaces, an array, a dashed name.
KCMD = ('em_params.p_int=42 em-params.p_ushort=7 '
        'em_params.p_note="kernel cmdline value" '
        'em_params.p_strarr=alpha,beta,gamma em_params.p_string="k str"')
# modprobe's own arguments (one argv element each; one has a space).
ARGV = ["p_int=99", "p_ulong=0x10", "p_string=argv value", "p_intarr=4,5,6,7"]
TOOLONG = "p_string=" + "x" * 40
SLEEP_ARGV = ["ms=300"]


def split_words(text):
    """Words of an options line or command line, kernel style: spaces
    separate, double quotes group (and are dropped around the value)."""
    out, cur, quoted, have = [], "", False, False
    for c in text:
        if c == '"':
            quoted = not quoted
            have = True
        elif c.isspace() and not quoted:
            if have:
                out.append(cur)
            cur, have = "", False
        else:
            cur += c
            have = True
    if have:
        out.append(cur)
    return out


def norm(name):
    return name.replace("-", "_")


def assignments(module, argv=()):
    """(param, value) in the order the kernel applies them to `module`:
    modprobe.d, then the kernel command line, then modprobe's arguments."""
    seq = []
    for mod, line in CONF:
        if norm(mod) == module:
            seq += [w.partition("=")[::2] for w in split_words(line)]
    for w in split_words(KCMD):
        key, _, val = w.partition("=")
        mod, dot, param = key.partition(".")
        if dot and norm(mod) == module:
            seq.append((param, val))
    seq += [a.partition("=")[::2] for a in argv]
    return seq


def final(module, argv=()):
    vals = {}
    for p, v in assignments(module, argv):
        vals[p] = v
    return vals


def truth(v):
    if v in ("", "1", "y", "Y"):
        return True
    if v in ("0", "n", "N"):
        return False
    raise ValueError(f"not a bool: {v!r}")


def shown(typ, v):
    """What /sys/module/*/parameters/P reads for value v of type typ."""
    if typ.endswith("[]"):
        return ",".join(shown(typ[:-2], x) for x in v.split(","))
    if typ in ("byte", "short", "ushort", "int", "uint", "long", "ulong", "ullong"):
        return str(int(v, 0))
    if typ == "hexint":
        return f"{int(v, 0):#08x}"                # the kernel's "%#08x"
    if typ == "bool":
        return "Y" if truth(v) else "N"
    if typ == "bint":           # set like a bool, stored and shown as an int
        return "1" if truth(v) else "0"
    if typ == "invbool":        # stores the opposite, shows it inverted back
        return "N" if not truth(v) else "Y"
    return v                    # charp, string


def expected_params():
    vals = final("em_params", ARGV)
    want = {p: shown(TYPES[p], vals[p]) for p in TYPES}
    want["invbool_stored"] = "N" if truth(vals["p_invbool"]) else "Y"
    return want


# ---------------------------------------------------------------- image

PRELUDE = r"""
# r TAG CMD...: exit code, stdout (TAG.out) and stderr (TAG-err.out) apart,
# the live modules afterwards (TAG.live)
r() {
    tag=$1; shift
    "$@" > /tmp/o 2> /tmp/e
    rc=$?
    sed "s/^/@@EM $SCEN $tag.out: /" /tmp/o
    sed "s/^/@@EM $SCEN $tag-err.out: /" /tmp/e
    em "$tag.rc=$rc"
    em "$tag.live=$(live)"
}
params() { for p in $(ls /sys/module/$1/parameters); do param "$1.$p" "$1" "$p"; done; }
"""


def group_scripts(loader, ext):
    """(group, shell) for one loader; L is /em or /kmod."""
    L = {"earlymod": "/em", "kmod": "/kmod"}[loader]
    q = " ".join(shlex.quote(a) for a in ARGV)
    extra = "/lib/modules/$KVER/extra"
    g = [
        ("toolong", f"clean\nr load {L}/modprobe em_params {TOOLONG}\n"),
        ("nodev", f"clean\nr load {L}/modprobe em_nodev\n"),
        ("dep", f"clean\nr insmod {L}/insmod {extra}/em_user.ko{ext}\n"
                f"r load {L}/modprobe em_user\nparams em_user\nparams em_params\n"),
        ("params", f"clean\nr load {L}/modprobe em_params {q}\nparams em_params\n"),
        ("sleep", f"clean\nr a {L}/modprobe em_sleep {' '.join(SLEEP_ARGV)}\n"
                  f"r b {L}/modprobe em_sleep2\nparams em_sleep\nparams em_sleep2\n"),
    ]
    if loader == "earlymod":
        g.append(("parallel", "clean\nr load /bin/earlymod load-config --jobs=2\n"
                              "params em_sleep\nparams em_sleep2\n"))
    return g


def init_body(loaders, ext):
    body = [PRELUDE]
    for loader in loaders:
        for group, script in group_scripts(loader, ext):
            body.append(f"\nbegin {loader}.{group}\n{script}end\n")
    body.append("clean\n")
    return "".join(body)


def build_image(k, loaders):
    src = os.path.join(TESTMOD, k.kver, "extra")
    if not os.path.isdir(src):
        raise RuntimeError(f"no test modules in {src}: run scripts/testmod.sh")
    files = sorted(os.listdir(src))
    ext = ".xz" if all(f.endswith(".ko.xz") for f in files) else ""
    d = os.path.join(WORK, k.name)
    shutil.rmtree(d, ignore_errors=True)
    stage = os.path.join(d, "stage")
    V.stage_base(stage)
    V.install_binary(stage, V.earlymod_binary(), "/bin/earlymod")
    V.install_binary(stage, shutil.which("kmod"), "/bin/kmod")
    for a in V.LOADER_APPLETS:
        V.symlink(stage, "/em/" + a, "/bin/earlymod")
        V.symlink(stage, "/kmod/" + a, "/bin/kmod")
        V.symlink(stage, "/sbin/" + a, "/bin/earlymod")
    moddir = os.path.join(stage, "lib/modules", k.kver)
    os.makedirs(os.path.join(moddir, "extra"))
    for f in files:
        shutil.copy(os.path.join(src, f), os.path.join(moddir, "extra", f))
    for f in ("modules.builtin", "modules.builtin.modinfo", "modules.order"):
        if os.path.exists(os.path.join(k.moddir, f)):
            shutil.copy(os.path.join(k.moddir, f), moddir)
    V.sh(["depmod", "-b", stage, k.kver])
    conf = "".join(f"options {m} {o}\n" for m, o in CONF)
    V.write(os.path.join(stage, "etc/modprobe.d/emtest.conf"), conf.encode())
    V.write(os.path.join(stage, "etc/modules-load.d/emtest.conf"), b"em_sleep\nem_sleep2\n")
    init = (V.INIT_PRELUDE.replace("@BOOT@", "mod-" + k.name)
            .replace("@LOADER@", "+".join(loaders)).replace("@SET@", "")
            + init_body(loaders, ext) + V.INIT_TRAILER)
    V.write(os.path.join(stage, "init"), init.encode(), 0o755)
    img = os.path.join(d, "initrd.img")
    V.pack(stage, img)
    return img, ext


# ---------------------------------------------------------------- checks

def one_error(r, tag, module, words):
    """Failure exit, exactly one stderr line, naming module and the words."""
    errs = [ln for ln in r.out(tag + "-err") if ln.strip()]
    out = [r.failed(tag)]
    if len(errs) != 1:
        out.append(f"{tag}: {len(errs)} stderr lines, want 1: {' | '.join(errs)!r}")
    text = " ".join(errs)
    miss = [w for w in [module] + words if w not in text]
    if miss:
        out.append(f"{tag}: stderr {text!r} does not say {', '.join(map(repr, miss))}")
    return out


def param_mismatches(r, module, want):
    bad = []
    for p, v in want.items():
        got = r.value(f"{module}.{p}")
        if got != v:
            bad.append(f"{module}.{p} = {got!r}, want {v!r}")
    return bad


def init_times(r, module):
    try:
        return int(r.value(f"{module}.t_start_us")), int(r.value(f"{module}.t_end_us"))
    except (TypeError, ValueError):
        return None


def slept(r, module, ms):
    """The module's ms reads back as expected, and its init slept that long."""
    t = init_times(r, module)
    if t is None:
        return [f"{module}: no init times read back"]
    out = []
    got = r.value(f"{module}.ms")
    if got != str(ms):
        out.append(f"{module}.ms = {got!r}, want '{ms}'")
    # Under TCG the guest's clocksource and its timer tick drift apart (an
    # msleep(100) measured 67 ms once): half the time is proof enough that
    # the init slept the ms it was given.
    if got and got.isdigit() and t[1] - t[0] < int(got) * 500:
        out.append(f"{module}: init took {(t[1] - t[0]) / 1000:.0f} ms with ms={got}")
    return out


def check_group(group, r):
    """Every failure reason of one group (empty: ok)."""
    if group == "toolong":
        return one_error(r, "load", "em_params", ["No space left on device"]) + [
            r.not_live("load", ["em_params"])]
    if group == "nodev":
        ran = any("em_nodev: init" in ln for ln in r.d["dmesg"])
        return one_error(r, "load", "em_nodev", ["No such device"]) + [
            r.not_live("load", ["em_nodev"]),
            None if ran else "em_nodev's init did not run (no dmesg line)"]
    if group == "dep":
        dep = final("em_params")
        inits = [m.group(1) for ln in r.d["dmesg"]
                 for m in [re.search(r"(em_params|em_user): init", ln)] if m]
        return one_error(r, "insmod", "em_user", ["Unknown symbol"]) + [
            r.not_live("insmod", ["em_user", "em_params"]),
            r.rc("load", 0), r.live("load", ["em_params", "em_user"]),
            None if inits == ["em_params", "em_user"] else
            f"init order in dmesg {inits}, want ['em_params', 'em_user']",
            r.eq("em_user.got", str(int(dep["p_int"]) + 1000)),
            r.eq("em_params.p_int", dep["p_int"]),
            r.eq("em_params.p_string", dep["p_string"]),
            r.eq("em_params.p_ushort", dep["p_ushort"]),
        ]
    if group == "params":
        return [r.rc("load", 0), r.live("load", ["em_params"])] + \
            param_mismatches(r, "em_params", expected_params())
    if group == "sleep":
        a = int(final("em_sleep", SLEEP_ARGV)["ms"])
        b = int(final("em_sleep2")["ms"])
        ta, tb = init_times(r, "em_sleep"), init_times(r, "em_sleep2")
        seq = None
        if ta and tb and tb[0] < ta[1]:
            seq = "em_sleep2 started before em_sleep's init ended"
        return [r.rc("a", 0), r.rc("b", 0), r.live("b", ["em_sleep", "em_sleep2"])] + \
            slept(r, "em_sleep", a) + slept(r, "em_sleep2", b) + [seq]
    if group == "parallel":
        ta, tb = init_times(r, "em_sleep"), init_times(r, "em_sleep2")
        over = None
        if ta and tb and max(ta[0], tb[0]) >= min(ta[1], tb[1]):
            over = (f"inits did not overlap: em_sleep {ta[0]}..{ta[1]} us, "
                    f"em_sleep2 {tb[0]}..{tb[1]} us")
        return [r.rc("load", 0), r.live("load", ["em_sleep", "em_sleep2"])] + \
            slept(r, "em_sleep", int(final("em_sleep")["ms"])) + \
            slept(r, "em_sleep2", int(final("em_sleep2")["ms"])) + [over]
    return [f"unknown group {group}"]


def check(k, group, data, note):
    if data is None or not data["begin"]:
        return ["never started" + (f" ({note})" if note else " (VM ended early)")]
    if not data["end"]:
        return ["did not finish" + (f" ({note})" if note else " (VM ended early)")]
    if data["kv"].get("clean", "1") != "1":
        return ["could not unload the previous group's modules: " + data["kv"]["clean"]]
    crash = [ln for ln in data["dmesg"] if V.CRASH.search(ln)]
    if crash:
        return ["kernel: " + crash[0].strip()]
    try:
        return [x for x in check_group(group, V.Result(k, data)) if x]
    except Exception as e:  # noqa: BLE001 — a check that cannot run fails
        return [f"check error: {e!r}"]


def stderr_diffs(k, res, loaders):
    """Lines of earlymod's and kmod's stderr that differ, per command."""
    if loaders != LOADERS:
        return []
    out = []
    for group, _ in group_scripts("kmod", ""):
        a = res.get(f"earlymod.{group}", {}).get("out", {})
        b = res.get(f"kmod.{group}", {}).get("out", {})
        for tag in sorted({t for t in list(a) + list(b) if t.endswith("-err")}):
            ea, eb = a.get(tag, []), b.get(tag, [])
            if ea != eb:
                out.append(f"  stderr {k.name} {group} {tag[:-4]}: earlymod "
                           f"{' | '.join(ea)!r} / kmod {' | '.join(eb)!r}")
    return out


def run_kernel(kname, loaders):
    k = V.Kernel(kname)
    t0 = time.monotonic()
    img, _ = build_image(k, loaders)
    tb = time.monotonic() - t0
    log = os.path.join(WORK, kname, "serial.log")
    timeout = int(os.environ.get("QEMU_TIMEOUT", 120))
    cmd = V.qemu_argv(k, img, log, "quiet loglevel=1 " + KCMD)
    with open(os.path.join(WORK, kname, "qemu.cmd"), "w") as f:
        f.write(" ".join(shlex.quote(c) for c in cmd) + "\n")
    text, dt, note = V.run_qemu(cmd, log, timeout)
    res = V.parse(text)
    lines = []
    for loader in loaders:
        for group, _ in group_scripts(loader, ""):
            lines.append((f"{kname} {loader} {group}",
                          check(k, group, res.get(f"{loader}.{group}"), note)))
    info = (f"  ({kname}: Linux {k.kver}, image built in {tb:.1f}s, VM {dt:.1f}s"
            f"{', ' + note if note else ''}; log {log})")
    return lines, stderr_diffs(k, res, loaders), info


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--only", help="comma-separated kernels (" + ",".join(KERNELS) + ")")
    env = os.environ.get("QEMU_LOADER")
    ap.add_argument("--loader", default=env if env in LOADERS else "both",
                    choices=["earlymod", "kmod", "both"],
                    help="default: both (QEMU_LOADER=earlymod|kmod picks one)")
    ap.add_argument("-j", "--jobs", type=int, default=2)
    a = ap.parse_args()
    kernels = a.only.split(",") if a.only else KERNELS
    loaders = LOADERS if a.loader == "both" else [a.loader]
    os.makedirs(WORK, exist_ok=True)
    t0 = time.monotonic()
    passed = failed = 0
    diffs = []
    with concurrent.futures.ThreadPoolExecutor(max_workers=a.jobs) as ex:
        futs = [(kn, ex.submit(run_kernel, kn, loaders)) for kn in kernels]
        for kn, fut in futs:
            try:
                lines, d, info = fut.result()
            except Exception as e:  # noqa: BLE001
                lines, d, info = [(f"{kn} build/boot", [str(e)])], [], f"  ({kn}: error)"
            for name, why in lines:
                print(f"vm: {name} " + (f"FAIL ({'; '.join(why)})" if why else "ok"), flush=True)
                failed += bool(why)
                passed += not why
            print(info)
            diffs += d
    if diffs:
        print("stderr differences, earlymod vs kmod (see qemu/README.md):")
        print("\n".join(diffs))
    print(f"  (earlymod {os.path.relpath(V.earlymod_binary(), REPO)}, {len(kernels)} boots, "
          f"{time.monotonic() - t0:.0f}s total)")
    print(f"{passed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
