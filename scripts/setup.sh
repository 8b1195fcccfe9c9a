#!/usr/bin/env bash
# One-time, idempotent machine set-up for earlymod: apt packages, the two
# Debian test kernels (extracted, indexed by the machine's depmod) in a cache
# directory outside the repository. Prints the cache layout on success.
set -euo pipefail

CACHE=${EARLYMOD_CACHE:-/var/cache/earlymod}
# dracut-core: packdiff compares the firmware earlymod-pack packs with dracut's.
# initramfs-tools-core: its unmkinitramfs reads earlymod-pack's microcode member back.
# strace: qemu/syscalls.py counts the loaders' syscalls with it in the guest.
# lvm2 and cryptsetup-bin: qemu/cryptroot.py's setup VM builds an LVM + LUKS2
# disk with them, and tests/pack/cryptroot.conf packs them (`program`).
PKGS=(kmod xz-utils zstd cpio busybox-static e2fsprogs hyperfine time qemu-user-static dracut-core
    initramfs-tools-core lvm2 cryptsetup-bin strace)
# The image ships qemu-utils from bookworm-backports; qemu-system-x86 must match it.
BPO_PKGS=(qemu-system-x86 qemu-system-arm qemu-system-riscv opensbi)
# `setup.sh bench`: the other peers of the packing benchmark (the -core packages
# install side by side and bring no kernel hooks), tiny-initramfs's static
# init (the size peer of earlymod-tiny; -core is the binary alone) and
# callgrind for the resolution figures. The time-to-root peers
# (qemu/peers.py) boot images of dracut-core, initramfs-tools-core and
# tiny-initramfs-core: dracut's udev-rules module and mkinitramfs's udev hook
# copy the host's systemd-udevd and rules, so udev too (systemd is not needed).
if [ "${1:-}" = bench ]; then
    PKGS+=(tiny-initramfs-core valgrind udev)
fi

log() { printf 'setup: %s\n' "$*" >&2; }
is_installed() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q 'install ok installed'; }
need_root() { [ "$(id -u)" = 0 ] || { log "must run as root (apt-get, dpkg-deb)"; exit 1; }; }

# The URI of the Debian archive the machine's own apt sources use for its
# release suite (deb822 .sources or one-line .list files), so every suite the
# project adds (bookworm-backports, trixie) comes from the same mirror.
debian_mirror() {
    local release uri
    release=$(. /etc/os-release && echo "${VERSION_CODENAME:-bookworm}")
    uri=$(cat /etc/apt/sources.list.d/*.sources 2>/dev/null | awk -v rel="$release" '
        function flush() { if (deb && suite && uri != "" && !found) { print uri; found = 1 } deb = 0; suite = 0; uri = "" }
        /^[ \t]*$/ { flush(); next }
        /^Types:/ { for (i = 2; i <= NF; i++) if ($i == "deb") deb = 1 }
        /^URIs:/ { uri = $2 }
        /^Suites:/ { for (i = 2; i <= NF; i++) if ($i == rel) suite = 1 }
        END { flush() }')
    if [ -z "$uri" ]; then
        uri=$(cat /etc/apt/sources.list /etc/apt/sources.list.d/*.list 2>/dev/null | awk -v rel="$release" '
            $1 == "deb" { i = 2; if ($i ~ /^\[/) { while ($i !~ /\]$/) i++; i++ } if ($(i + 1) == rel) { print $i; exit } }')
    fi
    [ -n "$uri" ] || { log "no apt source for the $release suite: cannot tell which Debian mirror to use"; exit 1; }
    echo "${uri%/}"
}

# private_apt DIR ARCH[,ARCH...]: an apt configuration of its own in DIR
# (the caller writes DIR/sources.list), for downloading packages of another
# suite or architecture without installing anything on the machine or
# changing its architectures: APT_OPTS holds the options for apt-get and
# apt-cache; the first ARCH is the native one.
private_apt() {
    local apt=$1 a
    mkdir -p "$apt/lists/partial" "$apt/cache/archives/partial" "$apt/parts"
    : > "$apt/status"
    APT_OPTS=(-o Dir::Etc::SourceList="$apt/sources.list" -o Dir::Etc::SourceParts="$apt/parts"
        -o Dir::State::Lists="$apt/lists" -o Dir::Cache="$apt/cache" -o Dir::State::Status="$apt/status"
        -o APT::Architecture="${2%%,*}" -o Debug::NoLocking=1 -o APT::Sandbox::User=root)
    for a in ${2//,/ }; do APT_OPTS+=(-o APT::Architectures::="$a"); done
}

# private_apt_sources DIR TEXT: DIR's sources.list says TEXT; its lists are
# fetched when the sources changed or are a day old.
private_apt_sources() {
    local apt=$1 sources=$2
    if [ "$(cat "$apt/sources.list" 2>/dev/null)" != "$sources" ]; then
        echo "$sources" > "$apt/sources.list"
        rm -f "$apt/.updated"
    fi
    if [ ! -f "$apt/.updated" ] || [ -n "$(find "$apt/.updated" -mtime +1)" ]; then
        apt-get "${APT_OPTS[@]}" update -qq >&2
        touch "$apt/.updated"
    fi
}

apt_ready() {
    local missing=() missing_bpo=()
    for p in "${PKGS[@]}"; do is_installed "$p" || missing+=("$p"); done
    for p in "${BPO_PKGS[@]}"; do is_installed "$p" || missing_bpo+=("$p"); done
    local bpo=/etc/apt/sources.list.d/earlymod-backports.list
    if [ ! -f "$bpo" ]; then
        need_root
        echo "deb $(debian_mirror) bookworm-backports main" > "$bpo"
        rm -f "$CACHE/.apt-updated"
    fi
    mkdir -p "$CACHE"
    if [ ! -f "$CACHE/.apt-updated" ] || [ $((${#missing[@]} + ${#missing_bpo[@]})) -gt 0 ]; then
        need_root
        log "apt-get update"
        apt-get update -qq >&2
        touch "$CACHE/.apt-updated"
    fi
    if [ ${#missing[@]} -gt 0 ]; then
        log "installing ${missing[*]}"
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2
    fi
    if [ ${#missing_bpo[@]} -gt 0 ]; then
        log "installing ${missing_bpo[*]} (bookworm-backports)"
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
            -t bookworm-backports "${missing_bpo[@]}" >&2
    fi
}

# kernel_pkg META SUITE [APT-OPTION...]: the versioned linux-image package
# that META (linux-image-amd64, linux-image-arm64) from SUITE depends on.
kernel_pkg() {
    local meta=$1 suite=$2
    shift 2
    apt-cache "$@" show "$meta/$suite" 2>/dev/null \
        | awk -F': ' '/^Depends:/ {print $2; exit}' \
        | tr ',' '\n' | sed -n 's/^ *\(linux-image-[0-9][^ ]*\).*/\1/p' | head -n1
}

# index_kernel DIR PKG: the kernel package PKG extracted in DIR/root,
# indexed by the machine's depmod (the index format is the same on every
# architecture); records PKG and the version, marks DIR done.
index_kernel() {
    local dir=$1 pkg=$2 kver
    kver=$(ls "$dir/root/lib/modules" | head -n1)
    log "depmod $kver"
    depmod -b "$dir/root" "$kver"
    echo "$pkg" > "$dir/pkg"
    echo "$kver" > "$dir/kver"
    rm -rf "$dir/deb"
    touch "$dir/.done"
}

# fetch_kernel NAME SUITE: extract into $CACHE/NAME/root, run depmod, record kver.
fetch_kernel() {
    local name=$1 suite=$2 dir="$CACHE/$1"
    local pkg
    pkg=$(kernel_pkg linux-image-amd64 "$suite")
    [ -n "$pkg" ] || { log "cannot resolve linux-image-amd64 in $suite"; exit 1; }
    if [ -f "$dir/.done" ] && [ "$(cat "$dir/pkg")" = "$pkg" ]; then
        return
    fi
    log "fetching $pkg ($suite)"
    rm -rf "$dir"; mkdir -p "$dir/deb"
    (cd "$dir/deb" && apt-get download -qq "$pkg/$suite" >&2)
    dpkg-deb -x "$dir"/deb/*.deb "$dir/root"
    index_kernel "$dir" "$pkg"
}

# kmod 34 from Debian trixie, the second reference beside the machine's kmod
# 30: kmod, libkmod2 and the libraries they load (kmod 34 dlopens its
# decompressors), fetched with a private apt configuration (nothing from
# trixie is installed on the machine), unpacked into $CACHE/kmod34/root and
# run through trixie's own loader: $CACHE/kmod34/bin/{modprobe,depmod,modinfo}.
KMOD34_PKGS=(kmod libkmod2 libc6 libssl3t64 liblzma5 libzstd1 zlib1g)
fetch_kmod34() {
    local dir="$CACHE/kmod34" apt="$CACHE/apt-trixie"
    [ -f "$dir/.done" ] && return
    need_root
    log "fetching kmod 34 (trixie): ${KMOD34_PKGS[*]}"
    rm -rf "$dir" "$apt"
    mkdir -p "$dir/deb" "$dir/bin"
    private_apt "$apt" amd64
    echo "deb $(debian_mirror) trixie main" > "$apt/sources.list"
    apt-get "${APT_OPTS[@]}" update -qq >&2
    (cd "$dir/deb" && apt-get "${APT_OPTS[@]}" download -qq "${KMOD34_PKGS[@]}" >&2)
    local d
    for d in "$dir"/deb/*.deb; do dpkg-deb -x "$d" "$dir/root"; done
    local ld libs
    ld=$(find "$dir/root" -name 'ld-linux-x86-64.so.2' -type f | head -n1)
    [ -n "$ld" ] || { log "kmod 34: no ld-linux-x86-64.so.2 in the trixie libc6"; exit 1; }
    libs="$dir/root/usr/lib/x86_64-linux-gnu:$dir/root/lib/x86_64-linux-gnu"
    for tool in modprobe depmod modinfo insmod rmmod lsmod kmod; do
        printf '#!/bin/sh\nexec %s --library-path %s --argv0 %s %s "$@"\n' \
            "$ld" "$libs" "$tool" "$dir/root/usr/bin/kmod" > "$dir/bin/$tool"
        chmod +x "$dir/bin/$tool"
    done
    "$dir/bin/kmod" --version >&2
    rm -rf "$dir/deb"
    touch "$dir/.done"
}

# fetch_firmware: Debian's firmware and CPU microcode packages of FIRMWARE_PKGS (component
# non-free-firmware, bookworm-backports where it has them (the 6.12
# kernel's drivers ask for newer files), else bookworm) unpacked into $CACHE/firmware/root/lib/firmware,
# the firmware tree earlymod-pack's tests pack from. Re-fetched when the
# versions apt resolves change.
FIRMWARE_PKGS=(firmware-realtek firmware-misc-nonfree firmware-amd-graphics intel-microcode amd64-microcode)
fetch_firmware() {
    local dir="$CACHE/firmware" apt="$CACHE/apt-firmware" want
    private_apt "$apt" amd64
    local sources
    sources=$(printf 'deb %s bookworm-backports non-free-firmware\ndeb %s bookworm non-free-firmware' \
        "$(debian_mirror)" "$(debian_mirror)")
    private_apt_sources "$apt" "$sources"
    want=$(for p in "${FIRMWARE_PKGS[@]}"; do
        printf '%s=%s\n' "$p" "$(apt-cache "${APT_OPTS[@]}" -o APT::Default-Release=bookworm-backports \
            policy "$p" | awk '/Candidate:/ {print $2}')"
    done)
    if [ -f "$dir/.done" ] && [ "$(cat "$dir/pkgs")" = "$want" ]; then
        return
    fi
    log "fetching ${FIRMWARE_PKGS[*]} (non-free-firmware) into $dir"
    rm -rf "$dir"; mkdir -p "$dir/deb" "$dir/root/lib"
    (cd "$dir/deb" && apt-get "${APT_OPTS[@]}" download -qq $want >&2)
    local d
    for d in "$dir"/deb/*.deb; do dpkg-deb -x "$d" "$dir/x"; done
    mkdir -p "$dir/root/lib/firmware"
    for d in "$dir/x/lib/firmware" "$dir/x/usr/lib/firmware"; do   # before and after usr-merge
        if [ -d "$d" ]; then cp -a "$d/." "$dir/root/lib/firmware/"; fi
    done
    rm -rf "$dir/x" "$dir/deb" "$apt/cache/archives/"*.deb
    echo "$want" > "$dir/pkgs"
    touch "$dir/.done"
}

# fetch_kernel_foreign NAME ARCH SUITE BASE: Debian's kernel for ARCH
# (linux-image-ARCH's versioned package in SUITE) and busybox-static:ARCH
# (from SUITE or BASE, the root's init in the boot tests) through a private
# apt configuration whose architecture is ARCH (the machine's own stays
# amd64-only), extracted into $CACHE/NAME/root and indexed by the machine's
# depmod (the index format is the same on every architecture).
fetch_kernel_foreign() {
    local name=$1 arch=$2 suite=$3 base=$4 dir="$CACHE/$1" apt="$CACHE/apt-$2"
    private_apt "$apt" "$arch"
    local sources
    sources=$(printf 'deb [arch=%s] %s %s main\n' "$arch" "$(debian_mirror)" "$suite")
    if [ "$base" != "$suite" ]; then
        sources+=$(printf '\ndeb [arch=%s] %s %s main' "$arch" "$(debian_mirror)" "$base")
    fi
    private_apt_sources "$apt" "$sources"
    local pkg
    pkg=$(kernel_pkg "linux-image-$arch" "$suite" "${APT_OPTS[@]}")
    [ -n "$pkg" ] || { log "cannot resolve linux-image-$arch in $suite"; exit 1; }
    if [ -f "$dir/.done" ] && [ "$(cat "$dir/pkg")" = "$pkg" ] && [ -x "$dir/busybox" ]; then
        return
    fi
    log "fetching $pkg ($suite, $arch) and busybox-static:$arch (the root's init)"
    rm -rf "$dir"; mkdir -p "$dir/deb"
    (cd "$dir/deb" && apt-get "${APT_OPTS[@]}" download -qq "$pkg:$arch" "busybox-static:$arch" >&2)
    dpkg-deb -x "$dir"/deb/linux-image-*.deb "$dir/root"
    if [ -d "$dir/root/usr/lib/modules" ]; then   # trixie's merged /usr: the
        mkdir -p "$dir/root/lib"                   # trees are read at lib/modules
        mv "$dir/root/usr/lib/modules" "$dir/root/lib/modules"
    fi
    dpkg-deb -x "$dir"/deb/busybox-static_*.deb "$dir/bb"
    mv "$(find "$dir/bb" -path '*/bin/busybox' | head -n1)" "$dir/busybox"   # /usr/bin from trixie on
    rm -rf "$dir/bb" "$apt/cache/archives/"*.deb
    index_kernel "$dir" "$pkg"
}

# index34 NAME: a hard-linked copy of kernel NAME's tree re-indexed by kmod
# 34's depmod (pre-order layout) in $CACHE/NAME-34.
index34() {
    local src="$CACHE/$1" dir="$CACHE/$1-34"
    if [ -f "$dir/.done" ] && [ "$(cat "$dir/pkg")" = "$(cat "$src/pkg")" ]; then
        return
    fi
    local kver
    kver=$(cat "$src/kver")
    log "depmod 34 $kver"
    rm -rf "$dir"; mkdir -p "$dir"
    cp -al "$src/root" "$dir/root"
    # depmod replaces the index files by rename: the hard links stay intact.
    "$CACHE/kmod34/bin/depmod" -b "$dir/root" "$kver"
    cp "$src/pkg" "$src/kver" "$dir/"
    touch "$dir/.done"
}

# cargo fuzz for the fuzz targets (run with the installed nightly).
fuzz_ready() {
    command -v cargo-fuzz >/dev/null 2>&1 && return
    log "installing cargo-fuzz"
    cargo install cargo-fuzz --locked -q >&2
}

# The aarch64/riscv64 toolchain (Debian trixie's rustc 1.85): scripts/cross.sh.
. "$(dirname "$0")/cross.sh"

apt_ready
fuzz_ready
fetch_cross
fetch_kernel k61 bookworm
fetch_kernel k612 bookworm-backports
fetch_kernel_foreign karm64 arm64 bookworm-backports bookworm
fetch_kernel_foreign kriscv64 riscv64 trixie trixie
fetch_kmod34
fetch_firmware
index34 k61
index34 k612
bash "$(dirname "$0")/testmod.sh"   # the test modules of qemu/modtest.py
for k in k61 k612 k61-34 k612-34 karm64 kriscv64; do
    printf '%s %s/%s/root %s\n' "$k" "$CACHE" "$k" "$(cat "$CACHE/$k/kver")"
done
