"""The VM scenarios: what each boot contains, what /init runs, what is checked.

Read by qemu/vmtest.py, which builds one initramfs per boot, boots it under
QEMU (TCG), parses the `@@EM SCENARIO ...` lines that /init prints on the
serial console and applies each scenario's `check`.

Shell helpers available in `script` (defined in vmtest.py's INIT_PRELUDE):
  run TAG CMD...   run CMD; report TAG.rc=<exit code> and its output (TAG.out)
                   plus the Live modules right after (TAG.live)
  param KEY M P    report KEY=<contents of /sys/module/M/parameters/P>
  em TEXT          print a raw marker line for this scenario
  clean            unload every module (busybox rmmod, not the loader under
                   test); reports clean=1, or clean=0 if something stayed
  usetree NAME     bind-mount the alternative tree NAME (see Boot.trees) over
                   /lib/modules/$KVER; `usetree` alone restores the main one
  $SET             the module set of scenarios 1-4 (space separated)

Check helpers on `r` (each returns None when fine, else the failure reason;
a scenario's `check` returns a list of them and the first reason is shown):
  r.rc(TAG, 0)          exit code equals 0
  r.failed(TAG)         exit code says failure but no crash (1..127)
  r.live(TAG, names)    every name is Live in /proc/modules after TAG
  r.not_live(TAG, names)
  r.closure(names)      kmod's `modprobe -D` closure of names on this boot's
                        kernel (host side, with MODPROBE_D below), as module names
  r.eq(KEY, value)      a reported value
  r.mentions(TAG, words) TAG's output mentions each word
  r.load_path(TAG, names, how) if TAG's -v output has earlymod's per-module
                        lines (`NOTICE: NAME: <how it went in>`), each name
                        has one and it says how ("kernel": decompressed by
                        the kernel, "userspace", "file": plain finit_module);
                        loaders without such lines (kmod) pass
  r.out(TAG)            TAG's output lines, r.value(KEY) a reported value
Every scenario is also checked automatically: it ran to its end, the state
before it was clean if it called `clean`, and its dmesg has no Oops/BUG/trace.
"""

from dataclasses import dataclass, field
from typing import Callable, Optional

# Scenarios 1-4: a realistic initramfs set (filesystems, block, net, usb,
# sound, gpu). Their closures include softdep targets (crc32c for ext4, ...).
SET = ("ext4 btrfs xfs virtio_blk virtio_net e1000 nvme ahci sd_mod xhci_pci "
       "usbhid snd_hda_intel drm").split()

# Installed as /etc/modprobe.d/vmtest.conf in every image (and passed with
# -C to the host's kmod when computing the expected closures). The dash in
# `nvme-core` checks that option names are normalised like kmod does.
MODPROBE_D = """\
# vmtest: options reach the module when it is loaded
options nvme-core default_ps_max_latency_us=12345
"""

# Appended to every boot's kernel command line: module parameters for
# modules that are loaded later by the loader (not by the kernel).
CMDLINE_PARAMS = "usbcore.autosuspend=7 e1000.copybreak=64"

# Good modules loaded next to the bad ones (scenario 7), not part of SET.
GOOD_EXTRA = ["dummy", "veth", "vcan"]
# Bad modules staged under extra/ of the main tree (all built from nlmon,
# indexed by depmod first, spoiled afterwards):
#   emt_corrupt.ko      ELF magic kept, the rest of the header garbage
#   emt_badxz.ko.xz     xz stream with flipped bytes (kernel decoder on 6.12)
#   emt_trunc.ko.zst    zstd stream cut in half
#   emt_missing.ko      in modules.dep, file deleted
#   emt_foreign.ko      the other kernel's nlmon (vermagic/modversions mismatch)
# plus emt_nosuch, a name no index knows.
BAD = ["emt_corrupt", "emt_badxz", "emt_trunc", "emt_missing", "emt_foreign",
       "emt_nosuch"]
BAD_CMD = ("modprobe -a dummy emt_corrupt emt_badxz emt_trunc veth "
           "emt_missing emt_foreign emt_nosuch vcan")


@dataclass
class Scenario:
    name: str
    what: str                      # one line for humans
    script: str                    # shell run by /init (see helpers above)
    check: Callable                # r -> list of Optional[str]
    xfail: dict = field(default_factory=dict)  # loader -> why it may fail
    # With the tiny build (`--loader earlymod-tiny`: no userspace decoders,
    # no rmmod/lsmod): None runs `check` as it is, a string skips the
    # scenario for that reason, a callable is the check to use instead.
    tiny: object = None


@dataclass
class Boot:
    name: str
    kernel: str                    # cache dir name: k61 or k612
    # tree name -> compression of the modules in it: "native" (as Debian
    # ships them), "ko", "gz", "xz", "zst". "main" is /lib/modules/$KVER and
    # also holds the bad modules; the others live under /alt/NAME and are
    # bind-mounted over the main one by `usetree NAME`.
    trees: dict
    scenarios: list
    timeout: int = 150
    # The guest's machine ("x86_64" or "arm64", see vmtest.ARCHES): which
    # QEMU, console, busybox and loader builds the boot uses.
    arch: str = "x86_64"
    # The module set of the load-set scenarios ($SET in /init, r.set).
    set: list = field(default_factory=lambda: list(SET))
    # Module parameters appended to the kernel command line.
    cmdline: str = CMDLINE_PARAMS


def load_set(name, what, path, tree=None, xfail=None):
    """Scenarios 1-4: modprobe -v -a the whole SET from one tree; path is how
    each module must go in ("kernel", "userspace" or "file"), checked only if
    the loader's -v output says it (see r.load_path)."""
    use = f"usetree {tree}\n" if tree else ""
    back = "usetree\n" if tree else ""
    # On the in-kernel path earlymod must not touch the heap: it reports
    # its allocation count when EARLYMOD_ALLOC_STATS=1 (r.heap_free).
    stats, unstats = ("export EARLYMOD_ALLOC_STATS=1\n", "unset EARLYMOD_ALLOC_STATS\n") if path in ("kernel", "file") else ("", "")
    # The tiny build has no userspace decoder: every module of a set the
    # kernel cannot decompress fails, with one line naming it and the decoder.
    fmt = {"gz": "gzip", "xz": "xz", "zst": "zstd"}.get(tree)
    tiny = None
    if path == "userspace":
        tiny = lambda r: [r.failed("load"), r.not_live("load", r.closure(r.set)),
                          r.no_decoder("load", r.set, fmt)]
    return Scenario(
        name, what,
        script=f"clean\n{use}{stats}run load modprobe -v -a $SET\n{unstats}{back}",
        check=lambda r: [r.rc("load", 0), r.live("load", r.closure(r.set)),
                         r.load_path("load", r.closure(r.set), path),
                         r.heap_free("load") if stats else None],
        xfail=xfail or {}, tiny=tiny)


def bad_input(name):
    """Scenario 7: one modprobe -a with good and bad names mixed."""
    return Scenario(
        name, "scenario 7: bad modules each fail clearly, the good ones in the same command load",
        script=f"clean\nrun bad {BAD_CMD}\nrun again modprobe dummy\n",
        check=lambda r: [
            r.failed("bad"),
            r.live("bad", r.closure(GOOD_EXTRA)),
            r.not_live("bad", BAD + ["nlmon"]),
            r.mentions("bad", BAD),
            r.rc("again", 0),
        ])


def request_module(name):
    return Scenario(
        name, "the kernel's request_module() runs /sbin/modprobe "
        "-q -- fs-xfs (earlymod) when xfs is mounted, and xfs loads",
        script="clean\n"
               "echo /sbin/modprobe > /proc/sys/kernel/modprobe\n"
               "mkdir -p /mnt/x\n"
               "run mnt mount -t xfs /dev/null /mnt/x\n"
               "echo /bin/false > /proc/sys/kernel/modprobe\n",
        check=lambda r: [r.live("mnt", r.closure(["xfs"]))])


def softdep(name):
    return Scenario(
        name, "scenario 6: libcrc32c alone pulls its softdep crc32c first",
        script="clean\nrun load modprobe libcrc32c\n",
        check=lambda r: [
            r.rc("load", 0), r.live("load", ["libcrc32c"]),
            r.any_live("load", ["crc32c_generic", "crc32c_intel"])])


def params(name):
    return Scenario(
        name, "scenario 5: options from modprobe.d, the kernel command "
        "line and the modprobe command line reach /sys/module",
        script="param confd nvme_core default_ps_max_latency_us\n"
               "param cmdline1 usbcore autosuspend\n"
               "param cmdline2 e1000 copybreak\n"
               "run loop modprobe loop max_loop=3\n"
               "param argv loop max_loop\n",
        check=lambda r: [
            r.eq("confd", "12345"), r.eq("cmdline1", "7"),
            r.eq("cmdline2", "64"), r.rc("loop", 0), r.eq("argv", "3")])


def lsmod(name):
    return Scenario(
        name, "scenario 8: lsmod prints kmod's table for every live module",
        script="run lsmod lsmod\n",
        check=lambda r: [r.rc("lsmod", 0), r.lsmod_matches("lsmod")],
        tiny="the tiny build has no lsmod applet")


def rmmod_reload(name):
    return Scenario(
        name, "scenario 8: rmmod, busy rmmod fails, modprobe again, "
        "already-loaded is success, insmod of a path with a parameter",
        script="run rm rmmod e1000\n"
               "run busy rmmod usbcore\n"
               "run reload modprobe e1000\n"
               "param copybreak e1000 copybreak\n"
               "run again modprobe e1000\n"
               "run againall modprobe -a ext4 btrfs xfs\n"
               "run rmloop rmmod loop\n"
               "run insmod insmod /lib/modules/$KVER/kernel/drivers/block/loop.ko.xz max_loop=5\n"
               "param maxloop loop max_loop\n",
        check=lambda r: [
            r.rc("rm", 0), r.not_live("rm", ["e1000"]),
            r.failed("busy"), r.live("busy", ["usbcore"]),
            r.rc("reload", 0), r.live("reload", ["e1000"]),
            r.eq("copybreak", "64"),
            r.rc("again", 0), r.rc("againall", 0),
            r.rc("rmloop", 0), r.rc("insmod", 0), r.eq("maxloop", "5")],
        tiny="the tiny build has no rmmod applet")


def cross_boot(arch, kernel):
    """The 6.12 scenarios (bar the .ko.zst set) on another machine."""
    return Boot(arch, kernel, arch=arch, trees={"main": "native"},
                set=SET + ["virtio_gpu"], scenarios=[
                    request_module(f"{arch}-request-module"),
                    softdep(f"{arch}-softdep"),
                    load_set(f"{arch}-set-xz", f"{arch}: the set as .ko.xz through "
                             "the kernel's decompressor", "kernel"),
                    params(f"{arch}-params"),
                    lsmod(f"{arch}-lsmod"),
                    rmmod_reload(f"{arch}-rmmod-reload"),
                    bad_input(f"{arch}-bad"),
                ])


GZ_XFAIL = {"kmod": "Debian's kmod 30 is built without zlib",
            "busybox": "busybox modprobe has no softdeps"}

BOOTS = [
    # ---- Linux 6.12: modules are .ko.xz, the kernel decompresses xz ----
    Boot("k612", "k612", trees={"main": "native", "zst": "zst"}, scenarios=[
        request_module("request-module"),
        softdep("softdep"),
        load_set("612-set-xz", "scenario 1: the set as .ko.xz through the "
                 "kernel's decompressor", "kernel"),
        params("params"),
        lsmod("lsmod"),
        rmmod_reload("rmmod-reload"),
        bad_input("612-bad"),
        load_set("612-set-zst", "scenario 4: the set as .ko.zst: the kernel "
                 "only does xz, so userspace decompresses", "userspace", tree="zst"),
    ]),
    # ---- Linux 6.1: plain .ko, no in-kernel decompression ----
    Boot("k61", "k61", trees={"main": "native", "gz": "gz", "zst": "zst",
                              "xz": "xz"}, scenarios=[
        load_set("61-set-ko", "scenario 2: the set from plain .ko files", "file"),
        bad_input("61-bad"),
        load_set("61-set-gz", "scenario 3: the set as .ko.gz (text modules.dep, "
                 "userspace inflate)", "userspace", tree="gz", xfail=GZ_XFAIL),
        load_set("61-set-zst", "scenario 3: the set as .ko.zst (userspace)",
                 "userspace", tree="zst"),
        load_set("61-set-xz", "scenario 3: the set as .ko.xz (userspace)",
                 "userspace", tree="xz"),
    ]),
    # ---- Linux 6.12 on arm64 and riscv64 (QEMU's virt machines): the cross
    # builds with those trees' .ko.xz, decompressed by the kernel; the set
    # adds a DRM driver (virtio-gpu); the bad modules' "foreign" one is the
    # x86_64 kernel's nlmon (another machine's ELF).
    cross_boot("arm64", "karm64"),
    cross_boot("riscv64", "kriscv64"),
]
