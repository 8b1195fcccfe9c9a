#!/bin/sh
# pre-mount hook of tests/pack/cryptroot.conf (packed at
# /lib/earlymod/hooks/pre-mount/): PID 1 runs it after coldplug, before it
# looks for root=. It activates VG vg0 and opens its LUKS LV `root` with
# the image's keyfile as /dev/mapper/cryptroot, whose ext4 root= names.
# No udev in this initramfs: libdevmapper makes the /dev/mapper nodes.
export DM_DISABLE_UDEV=1
LVMC='activation { udev_sync = 0 udev_rules = 0 }
devices { obtain_device_list_from_udev = 0 }
backup { backup = 0 archive = 0 }'
echo "cryptroot: $EARLYMOD_STAGE hook for root=$ROOT"
lvm vgchange --config "$LVMC" -ay vg0 || exit 1
cryptsetup open --key-file /etc/cryptroot.key /dev/mapper/vg0-root cryptroot || exit 1
echo "cryptroot: /dev/mapper/cryptroot is open"
