#!/usr/bin/env bash
# Builds earlymod's own test modules (qemu/testmod/, GPL-2.0 C) for the two
# cached Debian test kernels (scripts/setup.sh), for qemu/modtest.py.
#
# For each kernel in $CACHE/{k61,k612}: Debian's linux-headers-KVER,
# linux-headers-KVER-common and linux-kbuild-* packages of exactly the
# kernel's version (read from its vmlinuz), unpacked into
# $CACHE/testmod/hdr/KVER; the modules built out of tree with gcc-12 (the
# compiler both kernels were built with) in $CACHE/testmod/KVER/build, the
# results in $CACHE/testmod/KVER/extra/ — plain .ko for 6.1, .ko.xz made
# the way kbuild compresses (CRC32, 1 MiB dictionary) where the kernel
# config says CONFIG_MODULE_COMPRESS_XZ (6.12), like the tree's own modules.
# Debug info is stripped as Debian's modules_install does. Nothing is written into the repository. A kernel is skipped when its
# modules were built from the same sources and packages (the .stamp file).
#
# The header packages are unpacked rather than installed: the 6.12
# linux-headers package depends on its linux-image package, and installing
# that would put a kernel (and initramfs-tools with its hooks) on the
# machine. apt installs only the toolchain: gcc-12, make, pahole (6.12's
# headers ship vmlinux, so kbuild makes BTF for the modules), libelf1 and
# libssl3 (linux-kbuild's programs).
set -euo pipefail

CACHE=${EARLYMOD_CACHE:-/var/cache/earlymod}
HERE=$(cd "$(dirname "$0")/.." && pwd)
SRC="$HERE/qemu/testmod"
TOOLS=(gcc-12 make binutils pahole libelf1 libssl3 xz-utils file)

log() { printf 'testmod: %s\n' "$*" >&2; }
is_installed() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q 'install ok installed'; }
need_root() { [ "$(id -u)" = 0 ] || { log "must run as root (apt-get)"; exit 1; }; }

tools_ready() {
    local missing=() p
    for p in "${TOOLS[@]}"; do is_installed "$p" || missing+=("$p"); done
    [ ${#missing[@]} -eq 0 ] && return
    need_root
    log "installing ${missing[*]}"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2
}

# The Debian version of the kernel package a vmlinuz came from
# ("... #1 SMP PREEMPT_DYNAMIC Debian 6.1.176-1 (2026-07-02) ...").
kernel_version() {
    file -b "$1" | sed -n 's/.* Debian \([^ ]*\) .*/\1/p'
}

# pkg_download NAME [VERSION]: NAME=VERSION if apt has it, else apt's
# candidate (linux-kbuild-6.1 only asks for >= the kernel's version).
pkg_download() {
    if [ -n "${2:-}" ] && apt-get download -qq "$1=$2" >&2 2>/dev/null; then
        return
    fi
    [ -z "${2:-}" ] || log "$1=$2 not in apt: using its candidate"
    apt-get download -qq "$1" >&2
}

# headers KNAME: unpack the headers of cached kernel KNAME, print their dir.
headers() {
    local kdir="$CACHE/$1" kver pkg ver hdr
    kver=$(cat "$kdir/kver")
    pkg=$(cat "$kdir/pkg")
    ver=$(kernel_version "$kdir/root/boot/vmlinuz-$kver")
    [ -n "$ver" ] || { log "$1: no Debian version in $kdir/root/boot/vmlinuz-$kver"; exit 1; }
    hdr="$CACHE/testmod/hdr/$kver"
    if [ -f "$hdr/.done" ] && [ "$(cat "$hdr/pkg")" = "$pkg $ver" ]; then
        echo "$hdr"; return
    fi
    need_root
    local name=${pkg/linux-image-/linux-headers-}
    log "$1: unpacking $name $ver and its -common and linux-kbuild packages"
    rm -rf "$hdr"; mkdir -p "$hdr/deb"
    (
        cd "$hdr/deb"
        pkg_download "$name" "$ver"
        local deps common kbuild
        deps=$(dpkg-deb -f ./"${name}"_*.deb Depends | tr ',' '\n')
        common=$(sed -n 's/^ *\(linux-headers-[^ ]*-common\).*/\1/p' <<<"$deps" | head -n1)
        kbuild=$(sed -n 's/^ *\(linux-kbuild-[^ ]*\).*/\1/p' <<<"$deps" | head -n1)
        [ -n "$common" ] && [ -n "$kbuild" ] || { log "$name: no -common/kbuild in Depends"; exit 1; }
        pkg_download "$common" "$ver"
        pkg_download "$kbuild" "$ver"
    )
    local d
    for d in "$hdr"/deb/*.deb; do dpkg-deb -x "$d" "$hdr/root"; done
    # The arch Makefile includes the -common one by absolute path: point it
    # at the unpacked copy (everything else is relative).
    local mk="$hdr/root/usr/src/linux-headers-$kver/Makefile"
    sed -i "s|^include /usr/src/|include $hdr/root/usr/src/|" "$mk"
    grep -q "^include $hdr/root/usr/src/" "$mk" || { log "$mk: unexpected include line"; exit 1; }
    (cd "$hdr/deb" && ls *.deb) > "$hdr/debs"
    rm -rf "$hdr/deb"
    echo "$pkg $ver" > "$hdr/pkg"
    touch "$hdr/.done"
    echo "$hdr"
}

# build KNAME: the test modules for cached kernel KNAME.
build() {
    local kdir="$CACHE/$1" kver hdr out key
    [ -f "$kdir/.done" ] || { log "$1: kernel not in the cache (run scripts/setup.sh)"; exit 1; }
    kver=$(cat "$kdir/kver")
    hdr=$(headers "$1")
    out="$CACHE/testmod/$kver"
    key=$( (cat "$hdr/pkg" "$hdr/debs"; cd "$SRC" && sha256sum Kbuild *.[ch]) | sha256sum | cut -d' ' -f1)
    if [ -f "$out/.stamp" ] && [ "$(cat "$out/.stamp")" = "$key" ]; then
        return
    fi
    local kb="$hdr/root/usr/src/linux-headers-$kver" t0=$SECONDS
    log "$1: building the test modules for $kver"
    rm -rf "$out"; mkdir -p "$out/build" "$out/extra"
    cp "$SRC"/Kbuild "$SRC"/*.[ch] "$out/build/"
    make -s -C "$kb" M="$out/build" -j2 modules > "$out/build.log" 2>&1 \
        || { cat "$out/build.log" >&2; log "$1: build failed"; exit 1; }
    local xz=0 ko
    grep -q '^CONFIG_MODULE_COMPRESS_XZ=y' "$kb/.config" && xz=1
    for ko in "$out"/build/*.ko; do
        # as modules_install with INSTALL_MOD_STRIP=1 (Debian's modules)
        strip --strip-debug "$ko"
        if [ $xz = 1 ]; then
            xz --check=crc32 --lzma2=dict=1MiB -c "$ko" > "$out/extra/$(basename "$ko").xz"
        else
            cp "$ko" "$out/extra/"
        fi
    done
    # The vermagic must be the kernel's own (same as one of its modules).
    local ours theirs
    ours=$(modinfo -F vermagic "$out/build/em_params.ko")
    theirs=$(modinfo -F vermagic "$(find "$kdir/root/lib/modules/$kver/kernel/drivers/net" -name 'dummy.ko*' | head -n1)")
    [ "$ours" = "$theirs" ] || { log "$1: vermagic '$ours' is not the kernel's '$theirs'"; exit 1; }
    echo "$key" > "$out/.stamp"
    log "$1: $(ls "$out/extra" | tr '\n' ' ')in $((SECONDS - t0)) s"
}

tools_ready
for k in k61 k612; do build "$k"; done
