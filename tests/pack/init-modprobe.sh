#!/bin/sh
# Minimal /init for earlymod-pack images: mount the API filesystems, load
# everything listed in modules-load.d with earlymod's modprobe, print the
# live modules and power off. Lines start with @@PACK for the QEMU test.
export PATH=/sbin:/bin
busybox mount -t proc proc /proc
busybox mount -t sysfs sysfs /sys
busybox mount -t devtmpfs devtmpfs /dev
set -- $(busybox cat /etc/modules-load.d/*.conf 2>/dev/null | busybox grep -v '^[#;]')
echo "@@PACK kver=$(busybox uname -r)"
echo "@@PACK set=$*"
/sbin/modprobe -a "$@"
echo "@@PACK rc=$?"
echo "@@PACK live=$(busybox awk '$5 == "Live" {print $1}' /proc/modules | busybox sort | busybox tr '\n' ' ')"
# The helper mode a script-based initramfs uses: coldplug without PID 1.
busybox mount -t tmpfs tmpfs /run
/sbin/earlymod coldplug
echo "@@PACK coldplug_rc=$?"
echo "@@PACK report_passes=$(/sbin/earlymod report | busybox grep -c '^pass ')"
busybox sync
busybox poweroff -f
busybox sleep 10
