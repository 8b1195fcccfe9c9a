#!/usr/bin/env bash
# One-time, idempotent machine set-up for earlymod: apt packages, the two
# Debian test kernels (extracted, indexed by the machine's depmod) in a cache
# directory outside the repository. Prints the cache layout on success.
set -euo pipefail

CACHE=${EARLYMOD_CACHE:-/var/cache/earlymod}
PKGS=(kmod xz-utils zstd cpio busybox-static e2fsprogs hyperfine time)
# The image ships qemu-utils from bookworm-backports; qemu-system-x86 must match it.
BPO_PKGS=(qemu-system-x86)
# `setup.sh bench`: the peers of the packing benchmark (the -core packages
# install side by side and bring no kernel hooks) and callgrind for the
# resolution figures.
if [ "${1:-}" = bench ]; then
    PKGS+=(initramfs-tools-core dracut-core valgrind)
fi

log() { printf 'setup: %s\n' "$*" >&2; }
is_installed() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q 'install ok installed'; }
need_root() { [ "$(id -u)" = 0 ] || { log "must run as root (apt-get, dpkg-deb)"; exit 1; }; }

apt_ready() {
    local missing=() missing_bpo=()
    for p in "${PKGS[@]}"; do is_installed "$p" || missing+=("$p"); done
    for p in "${BPO_PKGS[@]}"; do is_installed "$p" || missing_bpo+=("$p"); done
    local bpo=/etc/apt/sources.list.d/earlymod-backports.list
    if [ ! -f "$bpo" ]; then
        need_root
        echo 'deb http://deb.debian.org/debian bookworm-backports main' > "$bpo"
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

# The versioned linux-image package that linux-image-amd64 from SUITE depends on.
kernel_pkg() {
    local suite=$1
    apt-cache show "linux-image-amd64/$suite" 2>/dev/null \
        | awk -F': ' '/^Depends:/ {print $2; exit}' \
        | tr ',' '\n' | sed -n 's/^ *\(linux-image-[0-9][^ ]*\).*/\1/p' | head -n1
}

# fetch_kernel NAME SUITE: extract into $CACHE/NAME/root, run depmod, record kver.
fetch_kernel() {
    local name=$1 suite=$2 dir="$CACHE/$1"
    local pkg
    pkg=$(kernel_pkg "$suite")
    [ -n "$pkg" ] || { log "cannot resolve linux-image-amd64 in $suite"; exit 1; }
    if [ -f "$dir/.done" ] && [ "$(cat "$dir/pkg")" = "$pkg" ]; then
        return
    fi
    log "fetching $pkg ($suite)"
    rm -rf "$dir"; mkdir -p "$dir/deb"
    (cd "$dir/deb" && apt-get download -qq "$pkg/$suite" >&2)
    dpkg-deb -x "$dir"/deb/*.deb "$dir/root"
    local kver
    kver=$(ls "$dir/root/lib/modules" | head -n1)
    log "depmod $kver"
    depmod -b "$dir/root" "$kver"
    echo "$pkg" > "$dir/pkg"
    echo "$kver" > "$dir/kver"
    rm -rf "$dir/deb"
    touch "$dir/.done"
}

# cargo fuzz for the fuzz targets (run with the installed nightly).
fuzz_ready() {
    command -v cargo-fuzz >/dev/null 2>&1 && return
    log "installing cargo-fuzz"
    cargo install cargo-fuzz --locked -q >&2
}

apt_ready
fuzz_ready
fetch_kernel k61 bookworm
fetch_kernel k612 bookworm-backports
for k in k61 k612; do
    printf '%s %s/%s/root %s\n' "$k" "$CACHE" "$k" "$(cat "$CACHE/$k/kver")"
done
