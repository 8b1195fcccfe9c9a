//! Which devices count: the one rule PID 1's coldplug and
//! `earlymod-pack --host-only` share.
//!
//! A device counts when it sits on a bus — it is listed in
//! `/sys/bus/BUS/devices/` (links into `/sys/devices`) — or is in the input
//! class (`/sys/class/input/`, the one class whose devices carry a
//! `MODALIAS=`: `evdev`, `joydev`). Each such device's `uevent` file gives
//! its `MODALIAS=`. Class devices of other classes (block, net, tty) have
//! none; their hardware is a bus device further up. Reading these
//! directories touches far fewer files than walking all of `/sys/devices`.

/// The directory (under sysfs) whose subdirectories are the buses.
pub const BUS_DIR: &str = "bus";

/// Each bus's directory of device links, under `BUS_DIR/BUS/`.
pub const BUS_DEVICES: &str = "devices";

/// Class directories (under sysfs) whose devices count too.
pub const CLASS_DIRS: [&str; 1] = ["class/input"];

/// The `MODALIAS=` values of a `uevent` file's text.
pub fn uevent_modaliases(text: &[u8]) -> impl Iterator<Item = &[u8]> {
    text.split(|&c| c == b'\n')
        .filter_map(|l| l.strip_prefix(b"MODALIAS="))
        .filter(|v| !v.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn modaliases_of_a_uevent() {
        let t = b"DRIVER=virtio-pci\nPCI_CLASS=10000\nMODALIAS=pci:v00001AF4d00001001\nMODALIAS=\n";
        assert_eq!(
            uevent_modaliases(t).collect::<heapless::Vec<&[u8], 4>>(),
            [&b"pci:v00001AF4d00001001"[..]]
        );
    }
}
