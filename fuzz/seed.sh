#!/usr/bin/env bash
# Seed corpora for the fuzz targets from the cached Debian trees and the
# project's own outputs, in $FUZZ_WORK (default /tmp/earlymod-fuzz), outside
# the repository. Idempotent: existing seeds are kept.
set -euo pipefail
cd "$(dirname "$0")/.."
CACHE=${EARLYMOD_CACHE:-/var/cache/earlymod}
W=${FUZZ_WORK:-/tmp/earlymod-fuzz}/corpus
mkdir -p "$W"/{index,config,cpio,blkid,decompress,zstd_diff,elf,resolve}
K=$CACHE/k612/root/lib/modules/$(cat "$CACHE/k612/kver")
K1=$CACHE/k61/root/lib/modules/$(cat "$CACHE/k61/kver")

# index: one key-length byte, the key, then a real index (the small ones
# whole; the big ones are too large for useful mutation, so cut).
i=0
for f in modules.builtin.bin modules.builtin.alias.bin; do
    for key in ext4 'pci:v00008086d0000100Esv*' crc32c; do
        { printf "\\x$(printf %02x ${#key})%s" "$key"; cat "$K/$f"; } > "$W/index/seed$i"
        i=$((i + 1))
    done
done
# config: a modprobe.d file, NUL, a kernel command line.
{ cat config/modprobe.d/example.conf "$K/modules.softdep"; printf '\0'
  printf 'ro quiet e1000.copybreak=64 modprobe.blacklist=a,b "x.y=1 2" rd.driver.pre=ahci'; } > "$W/config/seed0"
# cpio: a small image of each layout (a stand-in for the earlymod binary
# keeps the seeds small enough to mutate quickly).
stub=$(mktemp); printf '#!/bin/sh\nexit 0\n' > "$stub"
for c in gzip none zstd; do
    out/earlymod-pack -q -b "$CACHE/k612/root" -k "$(cat "$CACHE/k612/kver")" \
        -m crc16 --compress $c -o "$W/cpio/$c" --earlymod "$stub"
done
rm -f "$stub"
# blkid: the first 68 KiB of a fresh ext4 image, and a GPT disk head.
if [ ! -f "$W/blkid/ext4" ]; then
    t=$(mktemp); truncate -s 8M "$t"; mkfs.ext4 -q -F -L seed "$t"
    head -c $((0x11000)) "$t" > "$W/blkid/ext4"; rm -f "$t"
fi
# decompress and elf: small real modules in each format.
for m in crc16 crc-itu-t; do
    p=$(find "$K" -name "$m.ko.xz" | head -n1)
    [ -n "$p" ] || continue
    cp "$p" "$W/decompress/$m.xz"
    xz -dc "$p" > "$W/elf/$m.ko"
    gzip -9nc "$W/elf/$m.ko" > "$W/decompress/$m.gz"
    zstd -qc "$W/elf/$m.ko" > "$W/decompress/$m.zst"
    # zstd_diff: frames at other settings too (no checksum, 1 KiB window).
    zstd -qc --check -19 "$W/elf/$m.ko" > "$W/zstd_diff/$m-19.zst"
    zstd -qc --no-check --zstd=wlog=10 "$W/elf/$m.ko" > "$W/zstd_diff/$m-w10.zst"
    cp "$W/decompress/$m.zst" "$W/zstd_diff/$m.zst"
done
p=$(find "$K1" -name 'crc16.ko' | head -n1); [ -n "$p" ] && cp "$p" "$W/elf/crc16-6.1.ko"
# resolve: modprobe.d NUL a storage slice of modules.dep NUL queries.
{ cat config/modprobe.d/example.conf; printf 'softdep ext4 pre: crc32c\nsoftdep crc32c pre: ext4\n\0'
  grep -E '^kernel/(fs/ext4|drivers/scsi/sd_mod|drivers/ata/(ahci|libahci|libata)|lib/crc|crypto/crc)' "$K/modules.dep"
  printf '\0ext4\nsd_mod\nahci\ncrc32c\n'; } > "$W/resolve/seed0"
echo "$W"
