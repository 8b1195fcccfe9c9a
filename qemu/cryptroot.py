#!/usr/bin/env python3
"""A dm-crypt root inside LVM, for booting earlymod-pack images with hooks.

    python3 qemu/cryptroot.py [--disk-only] [--rebuild]

`build_disk(d, k)` makes D/crypt.img: a 96 MiB disk that is one LVM
physical volume holding VG `vg0` with LV `root` (56 MiB), and in that LV a
LUKS2 container (aes-xts-plain64, pbkdf2 with 1000 iterations: the guest is
small and TCG slow) opened by the keyfile tests/pack/cryptroot.key; inside
it, byte for byte, boottest's ext4 root (`make_root()`: fixed UUID, a
/sbin/init printing the `@@ROOT` markers).

The host is a container without device-mapper, so a setup VM builds it:
kernel k (the Debian 6.12 one) with a busybox initramfs carrying the
host's `lvm` (lvm2), `cryptsetup` (cryptsetup-bin) and kmod's `modprobe`
with their shared libraries, and the modules dm_mod, dm_crypt, xts and
aesni_intel (with their closure: cryptd, crypto_simd, gf128mul); the empty
disk is /dev/vda, the ext4 image /dev/vdb. With no udev in the guest, libdevmapper
creates the device nodes itself (`DM_DISABLE_UDEV=1`, and lvm's
`activation { udev_sync = 0 udev_rules = 0 }`). Its /init makes PV, VG
and LV, luksFormat, opens it, copies the ext4 image, closes it, opens it
again to compare, and powers off; `build_disk` checks the markers it
printed and the disk's on-disk labels (LVM's at sector 1, LUKS2's at the
LV's first extent).

`boot_args(d, k)` returns (disk, kernel append) for a boot of the image
packed from tests/pack/cryptroot.conf (earlymod as PID 1, its pre-mount
hook tests/pack/cryptroot-premount.sh activates vg0 and opens the LV as
/dev/mapper/cryptroot): `root=UUID=<the ext4 UUID>`.

Run alone, it builds the disk (reused while D/crypt.img.ok is there and
the labels check; --rebuild), packs tests/pack/cryptroot.conf for 6.12
(out/earlymod-pack, out/earlymod) twice (the same bytes), checks the image
(cpio -t: the tools, every library ldd lists for them, /bin/sh, the
keyfile, the hook), boots it with boottest's QEMU command and checks that
the root's init ran as PID 1 from a device-mapper device after the hook
said the volume is open. Prints `cryptroot: ok` or `cryptroot: FAIL: ...`
(exit 1).
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
import boottest as B  # noqa: E402

WORK = os.path.join(V.WORK, "cryptroot")
CONF = os.path.join(REPO, "tests/pack/cryptroot.conf")
KEYFILE = os.path.join(REPO, "tests/pack/cryptroot.key")
VG, LV, NAME = "vg0", "root", "cryptroot"
DISK_MB, LV_MB = 96, 56
# What the setup VM loads (kmod's modprobe: dependencies, softdeps).
SETUP_MODULES = ["virtio_blk", "dm_mod", "dm_crypt", "xts", "aesni_intel"]
MARK = "@@SETUP"

# lvm without udev (none in the guest) and without writing /etc/lvm.
LVM_CONFIG = ("activation { udev_sync = 0 udev_rules = 0 } "
              "devices { obtain_device_list_from_udev = 0 } "
              "backup { backup = 0 archive = 0 }")

SETUP_INIT = r"""#!/bin/sh
export PATH=/usr/sbin:/usr/bin:/sbin:/bin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
mount -t tmpfs tmpfs /run
# libdevmapper makes the /dev/mapper nodes itself: no udev here
export DM_DISABLE_UDEV=1
say() { echo "@MARK@ $*"; }
fail() { say "FAIL $*"; dmesg | tail -20 | sed 's/^/@MARK@ dmesg: /'; poweroff -f; sleep 10; }
for m in @MODULES@; do /sbin/modprobe "$m" || say "modprobe $m failed"; done
LVMC='@LVMCONF@'
lvm pvcreate --config "$LVMC" -y /dev/vda || fail pvcreate
lvm vgcreate --config "$LVMC" @VG@ /dev/vda || fail vgcreate
lvm lvcreate --config "$LVMC" -y -L @LVMB@M -n @LV@ @VG@ || fail lvcreate
[ -b /dev/mapper/@VG@-@LV@ ] || fail "no /dev/mapper/@VG@-@LV@"
cryptsetup luksFormat -q --type luks2 --cipher aes-xts-plain64 --key-size 512 \
    --pbkdf pbkdf2 --pbkdf-force-iterations 1000 --hash sha256 \
    --key-file /key /dev/mapper/@VG@-@LV@ || fail luksFormat
cryptsetup open --key-file /key /dev/mapper/@VG@-@LV@ @NAME@ || fail open
dd if=/dev/vdb of=/dev/mapper/@NAME@ bs=1M conv=fsync 2>/dev/null || fail dd
cryptsetup close @NAME@ || fail close
cryptsetup open --key-file /key /dev/mapper/@VG@-@LV@ @NAME@ || fail reopen
size=$(blockdev --getsize64 /dev/vdb)
say "luks=$(cryptsetup luksDump /dev/mapper/@VG@-@LV@ | awk '/^Version/ {print "v" $2} /cipher:/ {print $2; exit}' | tr '\n' ' ')"
if cmp -n "$size" /dev/vdb /dev/mapper/@NAME@; then say "copy=same"; else say "copy=differs"; fi
cryptsetup close @NAME@
lvm vgchange --config "$LVMC" -an @VG@ || fail vgchange
say "lvs=$(lvm lvs --config "$LVMC" --noheadings -o vg_name,lv_name,lv_size --units m @VG@ | tr -s ' ')"
sync
say done
poweroff -f
sleep 10
"""


def ensure_modprobe_d():
    """vmtest's tree staging resolves closures with WORK/modprobe.d."""
    os.makedirs(os.path.join(V.WORK, "modprobe.d"), exist_ok=True)
    with open(os.path.join(V.WORK, "modprobe.d", "vmtest.conf"), "w") as f:
        f.write(V.S.MODPROBE_D)


def setup_image(d, k):
    """The setup VM's initramfs: busybox, kmod, lvm, cryptsetup (with their
    libraries), the modules, the keyfile and SETUP_INIT."""
    ensure_modprobe_d()
    stage = os.path.join(d, "setup-stage")
    shutil.rmtree(stage, ignore_errors=True)
    V.stage_base(stage)
    for name in ("lvm", "cryptsetup"):
        path = shutil.which(name, path="/usr/sbin:/sbin:/usr/bin:/bin")
        if not path:
            raise RuntimeError(f"no {name} on this host (apt-get install lvm2 cryptsetup-bin)")
        V.install_binary(stage, path, "/usr/sbin/" + name)
    V.install_binary(stage, shutil.which("kmod"), "/bin/kmod")
    V.symlink(stage, "/sbin/modprobe", "/bin/kmod")
    V.stage_tree(k, stage, "native", SETUP_MODULES)
    shutil.copy(KEYFILE, os.path.join(stage, "key"))
    init = (SETUP_INIT.replace("@MARK@", MARK).replace("@MODULES@", " ".join(SETUP_MODULES))
            .replace("@LVMCONF@", LVM_CONFIG).replace("@VG@", VG).replace("@LV@", LV)
            .replace("@LVMB@", str(LV_MB)).replace("@NAME@", NAME))
    V.write(os.path.join(stage, "init"), init.encode(), 0o755)
    img = os.path.join(d, "setup.cpio")
    V.pack(stage, img)
    return img


def check_disk(disk):
    """LVM2's label at sector 1 and LUKS2's header at the LV's first extent
    (the PV's data area starts at 1 MiB by default)."""
    with open(disk, "rb") as f:
        head = f.read(2 << 20)
    probs = []
    if head[512:520] != b"LABELONE" or head[536:544] != b"LVM2 001":
        probs.append("no LVM2 label at sector 1")
    if head[1 << 20:(1 << 20) + 6] != b"LUKS\xba\xbe" or head[(1 << 20) + 6:(1 << 20) + 8] != b"\x00\x02":
        probs.append("no LUKS2 header at 1 MiB")
    return probs


def build_disk(d, k, rebuild=False, timeout=300):
    """D/crypt.img (see the module's doc); reused when D/crypt.img.ok says
    a setup VM built it. Returns its path; raises with the reason."""
    disk = os.path.join(d, "crypt.img")
    stamp = disk + ".ok"
    if not rebuild and os.path.exists(stamp) and not check_disk(disk):
        return disk
    os.makedirs(d, exist_ok=True)
    for p in (stamp, disk):
        if os.path.exists(p):
            os.unlink(p)
    root, _ = B.make_root(d, k.name)
    with open(disk, "wb") as f:
        f.truncate(DISK_MB << 20)
    img = setup_image(d, k)
    log = os.path.join(d, "setup-serial.log")
    cmd = V.qemu_argv(k, img, log, "loglevel=4", [
        "-drive", f"file={disk},if=virtio,format=raw",
        "-drive", f"file={root},if=virtio,format=raw,readonly=on"])
    with open(os.path.join(d, "setup-qemu.cmd"), "w") as f:
        f.write(" ".join(cmd) + "\n")
    text, dt, note = V.run_qemu(cmd, log, timeout)
    lines = [ln.rstrip() for ln in text.splitlines() if MARK in ln]
    probs = [ln.split(MARK, 1)[1].strip() for ln in lines if "FAIL" in ln or "failed" in ln]
    if f"{MARK} copy=same" not in text:
        probs.append("the LUKS volume does not hold the ext4 image")
    if f"{MARK} done" not in text:
        probs.append("the setup VM did not finish" + (f" ({note})" if note else ""))
    if V.CRASH.search(text):
        probs.append("kernel crash in the setup VM")
    probs += check_disk(disk)
    if probs:
        raise RuntimeError(f"cryptroot setup VM ({dt:.0f} s, log {log}): " + "; ".join(probs))
    with open(stamp, "w") as f:
        f.write("\n".join(lines) + "\n")
    return disk


def boot_args(d, k, rebuild=False):
    """(disk, kernel append) for booting the cryptroot image: the disk
    from build_disk, `root=UUID=` of the ext4 filesystem inside the LUKS
    volume (PID 1 looks for it once the pre-mount hook opened it)."""
    disk = build_disk(d, k, rebuild)
    return disk, f"root=UUID={B.UUID}"


def pack_image(k, out, pack=None, earlymod=None):
    """tests/pack/cryptroot.conf packed for kernel k; returns the
    earlymod-pack stderr (its summary and problems)."""
    pack = pack or os.path.join(REPO, "out/earlymod-pack")
    earlymod = earlymod or os.path.join(REPO, "out/earlymod")
    return B.pack_conf(pack, earlymod, k, CONF, out)


def image_names(img):
    """The paths in a packed image (every member), as `cpio -t` lists them."""
    # earlymod-pack's images: an uncompressed member, then one gzip member
    import gzip
    data = open(img, "rb").read()
    names, at = [], 0
    while at < len(data):
        if data[at:at + 2] == b"\x1f\x8b":
            chunk = gzip.decompress(data[at:])
            at = len(data)
        else:
            end = data.find(b"TRAILER!!!", at)
            if end < 0:
                break
            end = end + 11
            end += -end % 4
            chunk, at = data[at:end], end
        p = subprocess.run(["cpio", "-t", "--quiet"], input=chunk, capture_output=True)
        names += p.stdout.decode().split()
    return names


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--pack", default=os.path.join(REPO, "out/earlymod-pack"))
    ap.add_argument("--earlymod", default=os.path.join(REPO, "out/earlymod"))
    ap.add_argument("--rebuild", action="store_true", help="build the disk again")
    ap.add_argument("--disk-only", action="store_true", help="only build and check the disk")
    args = ap.parse_args()
    k = V.Kernel("k612")
    disk, append = boot_args(WORK, k, args.rebuild)
    print(f"cryptroot: disk {disk}")
    with open(disk + ".ok") as f:
        print(f.read().rstrip())
    if args.disk_only:
        return
    img = os.path.join(WORK, "initrd.img")
    print(pack_image(k, img, args.pack, args.earlymod))
    probs = image_problems(img)
    again = os.path.join(WORK, "initrd-again.img")
    pack_image(k, again, args.pack, args.earlymod)
    if open(img, "rb").read() != open(again, "rb").read():
        probs.append("packing twice gave different images")
    disk2 = os.path.join(WORK, "disk2.img")
    with open(disk2, "wb") as f:
        f.truncate(8 << 20)
    log = os.path.join(WORK, "serial.log")
    text, dt, note = B.boot(k, img, disk, disk2, append, log, timeout=180)
    p2, kv = B.check_root(text, "init", ["virtio_blk", "ext4", "dm_mod", "dm_crypt"])
    probs += p2
    print(f"cryptroot: root mounts {kv.get('mounts')!r}")
    if not kv.get("mounts", "").startswith("/dev/dm-"):
        probs.append("the root is not on a device-mapper device")
    if "cryptroot: /dev/mapper/cryptroot is open" not in text:
        probs.append("the pre-mount hook did not open the LUKS volume")
    if V.CRASH.search(text):
        probs.append("kernel crash or panic in the log")
    print(f"cryptroot: {'ok' if not probs else 'FAIL: ' + '; '.join(probs)} "
          f"(QEMU {dt:.1f} s{', ' + note if note else ''}; serial log {log})")
    sys.exit(1 if probs else 0)


def image_problems(img):
    """What tests/pack/cryptroot.conf must have put in the image: the
    tools, the shell, the keyfile, the hook, the program interpreter and
    each tool's libraries (by soname, as ldd lists them)."""
    names = set(image_names(img))
    want = ["usr/sbin/lvm", "usr/sbin/cryptsetup", "bin/busybox", "bin/sh",
            "etc/cryptroot.key", "lib/earlymod/hooks/pre-mount/cryptroot-premount.sh"]
    for tool in ("/usr/sbin/lvm", "/usr/sbin/cryptsetup"):
        want += [lib.lstrip("/") for lib in V.ldd_libs(tool)]
    missing = sorted({w for w in want if w not in names})
    libs = sorted(n for n in names if re.search(r"\.so(\.|$)", n))
    print(f"cryptroot: image {img}: {len(names)} entries, {len(libs)} library paths")
    return [f"not in the image: {' '.join(missing)}"] if missing else []

if __name__ == "__main__":
    main()
