#!/usr/bin/env bash
# The cross toolchain for the aarch64 and riscv64 builds (`make cross`):
# Debian trixie's rustc and cargo (1.85, the workspace's rust-version), its
# lld 19, and the target rlibs of libstd-rust-dev:arm64 / :riscv64 (they
# only work with Debian's rustc of the same version). Downloaded with a
# private apt configuration (nothing from trixie is installed on the
# machine), unpacked into $CACHE/rust-cross/root and run through trixie's own
# ld-linux loader by the wrappers in $CACHE/rust-cross/bin: rustc, rustdoc,
# cargo, ld.lld, and cc-lld (scripts/cc-lld: gcc's linker arguments for
# ld.lld). Idempotent; sourced by setup.sh (needs its debian_mirror,
# private_apt and log).
#
# The x86_64 builds keep the rustup toolchain.

CROSS_ARCHES=(arm64 riscv64)

# amd64: the compiler and what it, lld and cargo load.
CROSS_HOST_PKGS=(rustc libstd-rust-1.85 libstd-rust-dev libllvm19 lld-19
    libc6 libgcc-s1 libstdc++6 libzstd1 zlib1g libffi8 libedit2 libbsd0 libmd0
    libtinfo6 libxml2 libz3-4 liblzma5)
CROSS_CARGO_PKGS=(cargo libcurl4t64 libgit2-1.9 libsqlite3-0 libssh2-1t64 libssl3t64
    openssl-provider-legacy libbrotli1 libkrb5support0 libcom-err2 libk5crypto3
    libkeyutils1 libkrb5-3 libgssapi-krb5-2 libunistring5 libidn2-0 libdb5.3t64
    libsasl2-modules-db libsasl2-2 libldap2 libnghttp2-14 libnghttp3-9 libpsl5t64
    libnettle8t64 libhogweed6t64 libgmp10 libp11-kit0 libtasn1-6 libgnutls30t64
    librtmp1 libhttp-parser2.9 libmbedcrypto16 libmbedx509-7 libmbedtls21
    libpcre2-8-0 libcrypt1)

fetch_cross() {
    local dir="$CACHE/rust-cross" here
    here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
    if [ -f "$dir/.done" ] && cmp -s "$here/cc-lld" "$dir/bin/cc-lld"; then
        return
    fi
    log "fetching the cross toolchain (trixie rustc, lld, libstd-rust-dev:${CROSS_ARCHES[*]})"
    rm -rf "$dir"
    local apt="$dir/apt"
    mkdir -p "$dir/deb" "$dir/bin"
    local arches=amd64 a
    for a in "${CROSS_ARCHES[@]}"; do arches+=",$a"; done
    private_apt "$apt" "$arches"
    echo "deb [arch=$arches] $(debian_mirror) trixie main" > "$apt/sources.list"
    apt-get "${APT_OPTS[@]}" update -qq >&2
    local pkgs=("${CROSS_HOST_PKGS[@]}" "${CROSS_CARGO_PKGS[@]}")
    for a in "${CROSS_ARCHES[@]}"; do pkgs+=("libstd-rust-dev:$a"); done
    (cd "$dir/deb" && apt-get "${APT_OPTS[@]}" download -qq "${pkgs[@]}" >&2 2>/dev/null) \
        || { log "cross: apt-get download failed (${pkgs[*]})"; exit 1; }
    local d
    for d in "$dir"/deb/*.deb; do dpkg-deb -x "$d" "$dir/root"; done
    local r="$dir/root"
    local ld="$r/usr/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2" libs="$r/usr/lib/x86_64-linux-gnu"
    local t
    for t in rustc rustdoc cargo; do
        printf '#!/bin/sh\nexec %s --library-path %s %s "$@"\n' "$ld" "$libs" "$r/usr/bin/$t" > "$dir/bin/$t"
    done
    # lld picks its flavour from argv[0].
    printf '#!/bin/sh\nexec %s --library-path %s --argv0 ld.lld %s "$@"\n' \
        "$ld" "$libs" "$r/usr/lib/llvm-19/bin/lld" > "$dir/bin/ld.lld"
    cp "$here/cc-lld" "$dir/bin/cc-lld"
    chmod +x "$dir"/bin/*
    # Nothing may load from the machine's own (older) libraries.
    for t in usr/bin/rustc usr/bin/cargo usr/lib/llvm-19/bin/lld; do
        if "$ld" --library-path "$libs" --list "$r/$t" | grep '=>' | grep -v "$r/" >&2; then
            log "cross: $t loads a library from outside $r"; exit 1
        fi
    done
    local v
    v=$("$dir/bin/rustc" -V) || { log "cross: trixie's rustc does not run"; exit 1; }
    log "cross: $v"
    for a in aarch64 riscv64gc; do
        ls -d "$r/usr/lib/rustlib/$a-unknown-linux-gnu/lib" >/dev/null \
            || { log "cross: no $a rlibs in libstd-rust-dev"; exit 1; }
    done
    rm -rf "$dir/deb" "$apt/cache"
    touch "$dir/.done"
}
