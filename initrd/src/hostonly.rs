//! `--host-only`: what this machine needs.
//!
//! 1. **Storage**: the block device of `/` (from the mounts table, else its
//!    `MAJ:MIN` in mountinfo), of `/usr`, and of every swap device in
//!    `/etc/fstab` (resume) — each followed down through `slaves/` (dm, md,
//!    loop) and up through its parents to `/sys/devices`, taking every bound
//!    driver's module and every `MODALIAS=` on the way, plus what the
//!    stacking needs: `dm_mod`, `dm_crypt` for a `CRYPT-` mapping, `md-LEVEL`
//!    for an md array. Then `fs-TYPE` of the root filesystem.
//! 2. **Keyboards** (unless `--no-keyboard`): every input device whose key
//!    capabilities are a keyboard's (udev's test: keys 1–31, Esc to S, all
//!    present), with its chain of parents the same way (HID, USB, i2c,
//!    serio, the controllers).
//! 3. **Every device that counts** by the rule PID 1's coldplug uses too
//!    ([`earlymod_core::devices`]): devices on a bus, and the input class.
//!
//! Storage and keyboards come first, so the pack report names them as the
//! reason; a request already made is not repeated.

use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};

use earlymod_core::devices;

use crate::closure::Origin;

/// Where the host is described (the real paths, or a recorded tree).
#[derive(Debug, Clone)]
pub struct Host<'a> {
    /// sysfs (`/sys`).
    pub sysfs: &'a Path,
    /// devtmpfs (`/dev`), for `/dev/mapper/*` and `/dev/disk/by-*` links.
    pub dev: &'a Path,
    /// `/proc/mounts`.
    pub mounts: &'a str,
    /// `/proc/self/mountinfo` (the root's `MAJ:MIN` when its source is not
    /// a device path, e.g. `/dev/root`).
    pub mountinfo: &'a str,
    /// `/etc/fstab` (empty when there is none).
    pub fstab: &'a str,
    /// Follow the keyboards' chains.
    pub keyboard: bool,
}

/// Every `MODALIAS=` of the devices that count
/// ([`earlymod_core::devices`]), sorted, each once.
pub fn modaliases(sysfs: &Path) -> Vec<String> {
    let mut dirs: Vec<PathBuf> = Vec::new();
    if let Ok(rd) = fs::read_dir(sysfs.join(devices::BUS_DIR)) {
        for e in rd.flatten() {
            dirs.push(e.path().join(devices::BUS_DEVICES));
        }
    }
    dirs.extend(devices::CLASS_DIRS.iter().map(|c| sysfs.join(c)));
    let mut out = Vec::new();
    for dir in dirs {
        let Ok(rd) = fs::read_dir(&dir) else { continue };
        for e in rd.flatten() {
            if let Ok(text) = fs::read(e.path().join("uevent")) {
                out.extend(
                    devices::uevent_modaliases(&text)
                        .map(|v| String::from_utf8_lossy(v).into_owned()),
                );
            }
        }
    }
    out.sort();
    out.dedup();
    out
}

/// The filesystem type mounted on `/`, from a `/proc/mounts`-style text
/// (the last mount on `/` wins, as it hides the others).
pub fn root_fstype(mounts: &str) -> Option<String> {
    mount_of(mounts, "/").map(|(_, t)| t.to_string())
}

/// Source and type of the last mount on `dir`.
fn mount_of<'a>(mounts: &'a str, dir: &str) -> Option<(&'a str, &'a str)> {
    mounts
        .lines()
        .filter_map(|l| {
            let w: Vec<&str> = l.split_ascii_whitespace().collect();
            (w.len() >= 3 && w[1] == dir).then(|| (w[0], w[2]))
        })
        .next_back()
}

/// What the host needs, in order: storage chains, the root filesystem,
/// keyboards, every device; each request once, with its origin.
pub fn host_requests(h: &Host) -> Vec<(String, Origin)> {
    let mut out: Vec<(String, Origin)> = Vec::new();
    let mut seen = BTreeSet::new();
    let mut push = |r: String, o: Origin, out: &mut Vec<(String, Origin)>| {
        if seen.insert(r.clone()) {
            out.push((r, o));
        }
    };
    for node in storage_nodes(h) {
        for r in block_chain(h.sysfs, &node) {
            push(r, Origin::RootChain, &mut out);
        }
    }
    if let Some(t) =
        root_fstype(h.mounts).filter(|t| !matches!(t.as_str(), "rootfs" | "overlay" | "tmpfs"))
    {
        push(format!("fs-{t}"), Origin::RootFs, &mut out);
    }
    if h.keyboard {
        for kbd in keyboards(h.sysfs) {
            let parent = kbd.parent().map(Path::to_path_buf).unwrap_or_default();
            for r in chain_up(h.sysfs, &parent) {
                push(r, Origin::Keyboard, &mut out);
            }
        }
    }
    for m in modaliases(h.sysfs) {
        push(m, Origin::Device, &mut out);
    }
    out
}

/// The sysfs directories of the block devices storage needs: `/`, `/usr`,
/// swap (resume) devices.
fn storage_nodes(h: &Host) -> Vec<PathBuf> {
    let mut specs: Vec<String> = Vec::new();
    let mut nodes = Vec::new();
    match mount_of(h.mounts, "/") {
        Some((src, _)) if block_dir(h, src).is_some() => specs.push(src.to_string()),
        _ => {
            // e.g. /dev/root: the root's MAJ:MIN from mountinfo
            if let Some(mm) = h.mountinfo.lines().find_map(|l| {
                let w: Vec<&str> = l.split_ascii_whitespace().collect();
                (w.len() > 4 && w[4] == "/").then(|| w[2])
            }) {
                if let Ok(p) = fs::canonicalize(h.sysfs.join("dev/block").join(mm)) {
                    nodes.push(p);
                }
            }
        }
    }
    if let Some((src, _)) = mount_of(h.mounts, "/usr") {
        specs.push(src.to_string());
    }
    for line in h.fstab.lines() {
        let w: Vec<&str> = line.split_ascii_whitespace().collect();
        if w.len() < 3 || w[0].starts_with('#') {
            continue;
        }
        if w[1] == "/" || w[1] == "/usr" || w[2] == "swap" {
            specs.push(w[0].to_string());
        }
    }
    for s in specs {
        if let Some(d) = block_dir(h, &s) {
            if !nodes.contains(&d) {
                nodes.push(d);
            }
        }
    }
    nodes
}

/// The sysfs directory of a block device named as fstab or the mounts
/// table name it (`/dev/sda1`, `/dev/mapper/x`, `UUID=`, `LABEL=`,
/// `PARTUUID=`, `PARTLABEL=`), through the `/dev` links.
fn block_dir(h: &Host, spec: &str) -> Option<PathBuf> {
    let rel = if let Some(p) = spec.strip_prefix("/dev/") {
        p.to_string()
    } else {
        let (key, val) = spec.split_once('=')?;
        let dir = match key {
            "UUID" => "disk/by-uuid",
            "LABEL" => "disk/by-label",
            "PARTUUID" => "disk/by-partuuid",
            "PARTLABEL" => "disk/by-partlabel",
            _ => return None,
        };
        format!("{dir}/{}", val.trim_matches('"'))
    };
    // Follow links inside /dev to the kernel's name.
    let mut at = rel;
    for _ in 0..8 {
        let Ok(t) = fs::read_link(h.dev.join(&at)) else {
            break;
        };
        let base = Path::new(&at).parent().unwrap_or(Path::new(""));
        at = normalize(&base.join(t))?;
    }
    let name = at.rsplit('/').next()?;
    fs::canonicalize(h.sysfs.join("class/block").join(name)).ok()
}

fn normalize(p: &Path) -> Option<String> {
    let mut parts: Vec<String> = Vec::new();
    for c in p.components() {
        match c {
            std::path::Component::Normal(s) => parts.push(s.to_string_lossy().into_owned()),
            std::path::Component::ParentDir => {
                parts.pop()?;
            }
            _ => {}
        }
    }
    Some(parts.join("/"))
}

/// A block device's needs: itself and its parents, and each device below
/// it in the stack (`slaves/`), with the stacking's own modules.
fn block_chain(sysfs: &Path, node: &Path) -> Vec<String> {
    let mut out = Vec::new();
    let mut queue = vec![node.to_path_buf()];
    let mut done = BTreeSet::new();
    while let Some(d) = queue.pop() {
        if !done.insert(d.clone()) {
            continue;
        }
        if let Ok(uuid) = fs::read_to_string(d.join("dm/uuid")) {
            out.push("dm_mod".to_string());
            if uuid.starts_with("CRYPT-") {
                out.push("dm_crypt".to_string());
            }
        }
        if let Ok(level) = fs::read_to_string(d.join("md/level")) {
            let level = level.trim();
            if !level.is_empty() {
                out.push(format!("md-{level}"));
            }
        }
        if let Ok(rd) = fs::read_dir(d.join("slaves")) {
            let mut below: Vec<PathBuf> = rd
                .flatten()
                .filter_map(|e| fs::canonicalize(e.path()).ok())
                .collect();
            below.sort();
            queue.extend(below.into_iter().rev());
        }
        out.extend(chain_up(sysfs, &d));
    }
    out
}

/// From `dir` up to `/sys/devices`: each bound driver's module (builtin
/// drivers have no `module` link) and each `MODALIAS=`.
fn chain_up(sysfs: &Path, dir: &Path) -> Vec<String> {
    let top = fs::canonicalize(sysfs.join("devices")).unwrap_or_else(|_| sysfs.join("devices"));
    let mut out = Vec::new();
    let mut at = dir.to_path_buf();
    while at.starts_with(&top) && at != top {
        if let Ok(m) = fs::read_link(at.join("driver/module")) {
            if let Some(n) = m.file_name() {
                out.push(n.to_string_lossy().into_owned());
            }
        }
        if let Ok(text) = fs::read(at.join("uevent")) {
            out.extend(
                devices::uevent_modaliases(&text).map(|v| String::from_utf8_lossy(v).into_owned()),
            );
        }
        if !at.pop() {
            break;
        }
    }
    out
}

/// The input devices (`inputN`, as sysfs paths) that are keyboards.
fn keyboards(sysfs: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let Ok(rd) = fs::read_dir(sysfs.join("class/input")) else {
        return out;
    };
    let mut names: Vec<String> = rd
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("input"))
        .collect();
    names.sort();
    for n in names {
        let Ok(dir) = fs::canonicalize(sysfs.join("class/input").join(&n)) else {
            continue;
        };
        let read =
            |f: &str| fs::read_to_string(dir.join("capabilities").join(f)).unwrap_or_default();
        if is_keyboard(&read("ev"), &read("key")) {
            out.push(dir);
        }
    }
    out
}

/// udev's keyboard test (`input_id`): `EV_KEY` and keys 1–31 (Esc, the
/// digits, the top letter row...) all present. `ev` and `key` are sysfs
/// bitmaps: hex words, the most significant first.
pub fn is_keyboard(ev: &str, key: &str) -> bool {
    let low = |s: &str| {
        s.split_ascii_whitespace()
            .next_back()
            .and_then(|w| u64::from_str_radix(w, 16).ok())
            .unwrap_or(0)
    };
    low(ev) & (1 << 1) != 0 && low(key) & 0xFFFF_FFFE == 0xFFFF_FFFE
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::TempDir;
    use std::os::unix::fs::symlink;

    /// A recorded sysfs (and /dev) tree: directories, uevent files,
    /// drivers bound with or without a module, class and dev links.
    struct Sys {
        t: TempDir,
    }

    impl Sys {
        fn new(tag: &str) -> Sys {
            let s = Sys {
                t: TempDir::new(tag),
            };
            for d in [
                "sys/devices",
                "sys/class/block",
                "sys/class/input",
                "sys/bus",
                "dev",
            ] {
                fs::create_dir_all(s.t.0.join(d)).unwrap();
            }
            s
        }
        fn sys(&self) -> PathBuf {
            self.t.0.join("sys")
        }
        /// A device at devices/PATH on BUS, with a modalias and a driver
        /// (module None: built in).
        fn device(
            &self,
            path: &str,
            bus: Option<&str>,
            alias: Option<&str>,
            driver: Option<(&str, Option<&str>)>,
        ) {
            let d = self.sys().join("devices").join(path);
            fs::create_dir_all(&d).unwrap();
            let mut ue = String::new();
            if let Some((drv, _)) = driver {
                ue += &format!("DRIVER={drv}\n");
            }
            if let Some(a) = alias {
                ue += &format!("MODALIAS={a}\n");
            }
            fs::write(d.join("uevent"), ue).unwrap();
            if let Some(b) = bus {
                let bd = self.sys().join("bus").join(b).join("devices");
                fs::create_dir_all(&bd).unwrap();
                let name = path.rsplit('/').next().unwrap();
                let _ = symlink(&d, bd.join(name));
                if let Some((drv, module)) = driver {
                    let dd = self.sys().join("bus").join(b).join("drivers").join(drv);
                    fs::create_dir_all(&dd).unwrap();
                    if let Some(m) = module {
                        let md = self.sys().join("module").join(m);
                        fs::create_dir_all(&md).unwrap();
                        let _ = symlink(&md, dd.join("module"));
                    }
                    symlink(&dd, d.join("driver")).unwrap();
                }
            }
        }
        fn block(&self, path: &str) {
            let d = self.sys().join("devices").join(path);
            fs::create_dir_all(&d).unwrap();
            fs::write(d.join("uevent"), "DEVTYPE=partition\n").unwrap();
            let name = path.rsplit('/').next().unwrap();
            symlink(&d, self.sys().join("class/block").join(name)).unwrap();
        }
        fn write(&self, rel: &str, text: &str) {
            let p = self.t.0.join(rel);
            fs::create_dir_all(p.parent().unwrap()).unwrap();
            fs::write(p, text).unwrap();
        }
        fn link(&self, rel: &str, target: &str) {
            let p = self.t.0.join(rel);
            fs::create_dir_all(p.parent().unwrap()).unwrap();
            symlink(target, p).unwrap();
        }
        fn input(&self, path: &str, ev: &str, key: &str) {
            let d = self.sys().join("devices").join(path);
            fs::create_dir_all(d.join("capabilities")).unwrap();
            fs::write(d.join("capabilities/ev"), ev).unwrap();
            fs::write(d.join("capabilities/key"), key).unwrap();
            fs::write(
                d.join("uevent"),
                "PRODUCT=3/46d/c31c/110\nMODALIAS=input:b0003v046Dp\n",
            )
            .unwrap();
            let name = path.rsplit('/').next().unwrap();
            symlink(&d, self.sys().join("class/input").join(name)).unwrap();
        }
        fn needs(&self, mounts: &str, fstab: &str, keyboard: bool) -> Vec<(String, Origin)> {
            let sys = self.sys();
            let dev = self.t.0.join("dev");
            host_requests(&Host {
                sysfs: &sys,
                dev: &dev,
                mounts,
                mountinfo: "",
                fstab,
                keyboard,
            })
        }
    }

    fn of(needs: &[(String, Origin)], o: Origin) -> Vec<&str> {
        needs
            .iter()
            .filter(|(_, x)| *x == o)
            .map(|(r, _)| r.as_str())
            .collect()
    }

    const KBD_EV: &str = "120013\n";
    const KBD_KEY: &str = "1000000000007 ff9f207ac14057ff febeffdfffefffff fffffffffffffffe\n";
    const MOUSE_KEY: &str = "1f0000 0 0 0 0\n";

    #[test]
    fn keyboard_test_is_udevs() {
        assert!(is_keyboard(KBD_EV, KBD_KEY));
        assert!(!is_keyboard(KBD_EV, MOUSE_KEY));
        assert!(!is_keyboard("1\n", "fffffffe\n"), "no EV_KEY");
        assert!(is_keyboard("3", "fffffffe"));
    }

    #[test]
    fn nvme_under_pci() {
        let s = Sys::new("nvme");
        let pci = "pci0000:00/0000:00:1d.0/0000:01:00.0";
        s.device(
            "pci0000:00/0000:00:1d.0",
            Some("pci"),
            Some("pci:v00008086d0000A330sv"),
            Some(("pcieport", None)),
        );
        s.device(
            pci,
            Some("pci"),
            Some("pci:v0000144Dd0000A808sv"),
            Some(("nvme", Some("nvme"))),
        );
        s.block(&format!("{pci}/nvme/nvme0/nvme0n1/nvme0n1p2"));
        let n = s.needs("/dev/nvme0n1p2 / ext4 rw 0 0\n", "", false);
        assert_eq!(
            of(&n, Origin::RootChain),
            [
                "nvme",
                "pci:v0000144Dd0000A808sv",
                "pci:v00008086d0000A330sv"
            ]
        );
        assert_eq!(of(&n, Origin::RootFs), ["fs-ext4"]);
        // Devices already named are not repeated as plain devices.
        assert!(of(&n, Origin::Device).is_empty(), "{n:?}");
    }

    #[test]
    fn dm_crypt_on_a_partition_by_uuid() {
        let s = Sys::new("dmcrypt");
        let sata = "pci0000:00/0000:00:17.0";
        s.device(
            sata,
            Some("pci"),
            Some("pci:v00008086d0000A352sv"),
            Some(("ahci", Some("ahci"))),
        );
        let disk = format!("{sata}/ata1/host0/target0:0:0/0:0:0:0");
        s.device(
            &disk,
            Some("scsi"),
            Some("scsi:t-0x00"),
            Some(("sd", Some("sd_mod"))),
        );
        s.block(&format!("{disk}/block/sda/sda2"));
        s.block("virtual/block/dm-0");
        s.write(
            "sys/devices/virtual/block/dm-0/dm/uuid",
            "CRYPT-LUKS2-0123abcd-cryptroot\n",
        );
        s.link(
            "sys/devices/virtual/block/dm-0/slaves/sda2",
            s.sys()
                .join("devices")
                .join(&disk)
                .join("block/sda/sda2")
                .to_str()
                .unwrap(),
        );
        s.link("dev/mapper/cryptroot", "../dm-0");
        s.link("dev/disk/by-uuid/5f1e", "../../dm-0");
        s.device(
            "platform/pcspkr",
            Some("platform"),
            Some("platform:pcspkr"),
            None,
        );
        let n = s.needs(
            "/dev/mapper/cryptroot / ext4 rw 0 0\n",
            "UUID=5f1e / ext4 defaults 0 1\n",
            false,
        );
        assert_eq!(
            of(&n, Origin::RootChain),
            [
                "dm_mod",
                "dm_crypt",
                "sd_mod",
                "scsi:t-0x00",
                "ahci",
                "pci:v00008086d0000A352sv"
            ]
        );
        assert_eq!(of(&n, Origin::Device), ["platform:pcspkr"]);
        // The same through fstab's UUID= when the mounts table says /dev/root.
        let n = s.needs(
            "/dev/root / ext4 rw 0 0\n",
            "UUID=5f1e / ext4 defaults 0 1\n",
            false,
        );
        assert_eq!(of(&n, Origin::RootChain)[..2], ["dm_mod", "dm_crypt"]);
    }

    #[test]
    fn md_raid1_and_swap_from_fstab() {
        let s = Sys::new("md");
        for (i, slot) in [(1, "04"), (2, "05")] {
            let pci = format!("pci0000:00/0000:00:{slot}.0");
            s.device(
                &pci,
                Some("pci"),
                Some("pci:v00001AF4d00001001sv"),
                Some(("virtio-pci", Some("virtio_pci"))),
            );
            let v = format!("{pci}/virtio{i}");
            s.device(
                &v,
                Some("virtio"),
                Some("virtio:d00000002v00001AF4"),
                Some(("virtio_blk", Some("virtio_blk"))),
            );
            let letter = if i == 1 { "a" } else { "b" };
            s.block(&format!("{v}/block/vd{letter}/vd{letter}1"));
            s.block(&format!("{v}/block/vd{letter}/vd{letter}2"));
        }
        s.block("virtual/block/md0");
        s.write("sys/devices/virtual/block/md0/md/level", "raid1\n");
        for (l, slot) in [("a", "04"), ("b", "05")] {
            let target = s.sys().join(format!(
                "devices/pci0000:00/0000:00:{slot}.0/virtio{}/block/vd{l}/vd{l}1",
                if l == "a" { 1 } else { 2 }
            ));
            s.link(
                &format!("sys/devices/virtual/block/md0/slaves/vd{l}1"),
                target.to_str().unwrap(),
            );
        }
        s.link("dev/disk/by-label/swap", "../../vdb2");
        let n = s.needs(
            "/dev/md0 / xfs rw 0 0\n",
            "LABEL=swap none swap sw 0 0\n",
            false,
        );
        let chain = of(&n, Origin::RootChain);
        assert_eq!(chain[0], "md-raid1");
        for want in [
            "virtio_blk",
            "virtio:d00000002v00001AF4",
            "virtio_pci",
            "pci:v00001AF4d00001001sv",
        ] {
            assert!(chain.contains(&want), "{want} in {chain:?}");
        }
        assert_eq!(of(&n, Origin::RootFs), ["fs-xfs"]);
    }

    #[test]
    fn keyboards_usb_i2c_hid_and_at() {
        let s = Sys::new("kbd");
        // USB: xhci → usb device → interface (usbhid) → HID (hid-generic) → input.
        let x = "pci0000:00/0000:00:14.0";
        s.device(
            x,
            Some("pci"),
            Some("pci:v00008086d0000A36Dsv"),
            Some(("xhci_hcd", Some("xhci_pci"))),
        );
        s.device(
            &format!("{x}/usb1/1-1"),
            Some("usb"),
            None,
            Some(("usb", Some("usbcore"))),
        );
        let intf = format!("{x}/usb1/1-1/1-1:1.0");
        s.device(
            &intf,
            Some("usb"),
            Some("usb:v046DpC31Cd6400dc00dsc00dp00ic03isc01ip01in00"),
            Some(("usbhid", Some("usbhid"))),
        );
        let hid = format!("{intf}/0003:046D:C31C.0001");
        s.device(
            &hid,
            Some("hid"),
            Some("hid:b0003g0001v0000046Dp0000C31C"),
            Some(("hid-generic", Some("hid_generic"))),
        );
        s.input(&format!("{hid}/input/input3"), KBD_EV, KBD_KEY);
        // A USB mouse beside it: not a keyboard.
        let m = format!("{x}/usb1/1-2/1-2:1.0/0003:046D:C077.0002");
        s.device(
            &m,
            Some("hid"),
            Some("hid:b0003g0001v0000046Dp0000C077"),
            Some(("hid-generic", Some("hid_generic"))),
        );
        s.input(&format!("{m}/input/input4"), "17\n", MOUSE_KEY);
        // i2c-hid: designware controller → i2c client (i2c_hid_acpi) → HID.
        let i2c = "platform/AMDI0010:00";
        s.device(
            i2c,
            Some("platform"),
            Some("acpi:AMDI0010:AMDI0010:"),
            Some(("i2c_designware", Some("i2c_designware_platform"))),
        );
        let client = format!("{i2c}/i2c-0/i2c-ELAN0001:00");
        s.device(
            &client,
            Some("i2c"),
            Some("acpi:ELAN0001:PNP0C50:"),
            Some(("i2c_hid_acpi", Some("i2c_hid_acpi"))),
        );
        let h2 = format!("{client}/0018:04F3:3140.0003");
        s.device(
            &h2,
            Some("hid"),
            Some("hid:b0018g0001v000004F3p00003140"),
            Some(("hid-generic", Some("hid_generic"))),
        );
        s.input(&format!("{h2}/input/input5"), KBD_EV, KBD_KEY);
        // AT: i8042 (built in) → serio0 (atkbd, built in) → input0.
        s.device(
            "platform/i8042",
            Some("platform"),
            Some("platform:i8042"),
            Some(("i8042", None)),
        );
        s.device(
            "platform/i8042/serio0",
            Some("serio"),
            Some("serio:ty06pr00id00ex00"),
            Some(("atkbd", None)),
        );
        s.input("platform/i8042/serio0/input/input0", KBD_EV, KBD_KEY);

        let n = s.needs("", "", true);
        let kbd = of(&n, Origin::Keyboard);
        assert_eq!(
            kbd,
            [
                "serio:ty06pr00id00ex00",
                "platform:i8042",
                "hid_generic",
                "hid:b0003g0001v0000046Dp0000C31C",
                "usbhid",
                "usb:v046DpC31Cd6400dc00dsc00dp00ic03isc01ip01in00",
                "usbcore",
                "xhci_pci",
                "pci:v00008086d0000A36Dsv",
                "hid:b0018g0001v000004F3p00003140",
                "i2c_hid_acpi",
                "acpi:ELAN0001:PNP0C50:",
                "i2c_designware_platform",
                "acpi:AMDI0010:AMDI0010:",
            ]
        );
        // The mouse's HID device is a plain device, not a keyboard's.
        assert!(of(&n, Origin::Device).contains(&"hid:b0003g0001v0000046Dp0000C077"));
        // --no-keyboard: the same modaliases, as plain devices.
        let n = s.needs("", "", false);
        assert!(of(&n, Origin::Keyboard).is_empty());
        assert!(of(&n, Origin::Device).contains(&"hid:b0018g0001v000004F3p00003140"));
    }

    #[test]
    fn root_type() {
        let m =
            "rootfs / rootfs rw 0 0\n/dev/vda1 / ext4 rw,relatime 0 0\nproc /proc proc rw 0 0\n";
        assert_eq!(root_fstype(m).as_deref(), Some("ext4"));
        assert_eq!(root_fstype("proc /proc proc rw 0 0\n"), None);
    }
}
