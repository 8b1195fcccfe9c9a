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

/// Where the two bytes `pat` first occur in `s` (a byte scan: a `str`
/// pattern search would bring its two-way searcher into PID 1).
fn find2(s: &str, pat: &[u8; 2]) -> Option<usize> {
    s.as_bytes().windows(2).position(|w| w == pat)
}

/// Whether a device with this modalias is on the way to a disk: a storage
/// controller, a disk, or a bus that carries disks. PID 1 loads these
/// drivers first (the root device's chain before other devices'):
/// - PCI class 01 (mass storage: SCSI, IDE, SATA, RAID, NVMe), 0C/03 (USB
///   controllers), 0C/04 (Fibre Channel), 08/05 (SD host controllers);
/// - virtio block (device 2) and SCSI (device 8) devices;
/// - SCSI disks (type 0x00) and reduced-block-command devices (0x0e);
/// - USB interfaces of class 08 (mass storage);
/// - MMC cards (`mmc:block`) and Xen virtual block devices (`xen:vbd`).
///
/// Platform, ACPI and device-tree controllers are not recognised: they
/// load with the others.
pub fn is_storage_path(modalias: &str) -> bool {
    if let Some(pci) = modalias.strip_prefix("pci:") {
        let Some(at) = find2(pci, b"bc") else {
            return false;
        };
        let class = &pci[at + 2..];
        let (base, sub) = (class.get(..2), class.get(4..6));
        return match (base, sub) {
            (Some("01"), _) => true,
            (Some(b), Some(s)) => {
                matches!((b, s), ("0C" | "0c", "03" | "04") | ("08", "05"))
            }
            _ => false,
        };
    }
    if let Some(v) = modalias.strip_prefix("virtio:d") {
        return v.starts_with("00000002v") || v.starts_with("00000008v");
    }
    if let Some(t) = modalias.strip_prefix("scsi:t-0x") {
        return t == "00" || t == "0e" || t == "0E";
    }
    if let Some(u) = modalias.strip_prefix("usb:") {
        return find2(u, b"ic").is_some_and(|i| u[i + 2..].starts_with("08"));
    }
    modalias == "mmc:block" || modalias.starts_with("xen:vbd")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn storage_paths() {
        for m in [
            "pci:v00001AF4d00001001sv00001AF4sd00000002bc01sc00i00",
            "pci:v00008086d00002922sv00001AF4sd00001100bc01sc06i01",
            "pci:v00001B36d0000000Dsv00001AF4sd00001100bc0Csc03i30",
            "pci:v00001B36d00000010sv00001AF4sd00001100bc01sc08i02",
            "pci:v00001180d00000822sv0sd0bc08sc05i01",
            "virtio:d00000002v00001AF4",
            "virtio:d00000008v00001AF4",
            "scsi:t-0x00",
            "usb:v46F4p0001d0000dc00dsc00dp00ic08isc06ip50in00",
            "mmc:block",
            "xen:vbd",
        ] {
            assert!(is_storage_path(m), "{m}");
        }
        for m in [
            "pci:v00008086d0000100Esv00001AF4sd00001100bc02sc00i00",
            "pci:v00008086d00007000sv00001AF4sd00001100bc06sc01i00",
            "pci:v00001B36d0000000Dsv00001AF4sd00001100bc0Csc05i00",
            "pci:v00008086d0000100E",
            "pci:v0bc0",
            "virtio:d00000001v00001AF4",
            "scsi:t-0x05",
            "usb:v0627p0001d0000dc00dsc00dp00ic03isc00ip00in00",
            "input:b0011v0001p0001eAB41-e0,1,4,11,14,",
            "acpi:PNP0303:",
            "",
        ] {
            assert!(!is_storage_path(m), "{m}");
        }
    }

    #[test]
    fn modaliases_of_a_uevent() {
        let t = b"DRIVER=virtio-pci\nPCI_CLASS=10000\nMODALIAS=pci:v00001AF4d00001001\nMODALIAS=\n";
        assert_eq!(
            uevent_modaliases(t).collect::<heapless::Vec<&[u8], 4>>(),
            [&b"pci:v00001AF4d00001001"[..]]
        );
    }
}
