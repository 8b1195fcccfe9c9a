//! `--host-only`: what this machine needs — the modalias of every device
//! under `/sys/devices` and the module of the root filesystem's type.

use std::fs;
use std::path::Path;

/// Every distinct `MODALIAS=` value of `sys/devices/**/uevent` under
/// `sysfs` (normally `/sys`), sorted. Symlinks are not followed.
pub fn modaliases(sysfs: &Path) -> Vec<String> {
    let mut out = Vec::new();
    let mut stack = vec![sysfs.join("devices")];
    while let Some(dir) = stack.pop() {
        let Ok(rd) = fs::read_dir(&dir) else { continue };
        for e in rd.flatten() {
            let Ok(ft) = e.file_type() else { continue };
            if ft.is_dir() {
                stack.push(e.path());
            } else if ft.is_file() && e.file_name() == "uevent" {
                let Ok(text) = fs::read_to_string(e.path()) else {
                    continue;
                };
                out.extend(
                    text.lines()
                        .filter_map(|l| l.strip_prefix("MODALIAS="))
                        .map(str::to_string),
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
    mounts
        .lines()
        .filter_map(|l| {
            let w: Vec<&str> = l.split_ascii_whitespace().collect();
            (w.len() >= 3 && w[1] == "/").then(|| w[2].to_string())
        })
        .next_back()
}

/// The requests `--host-only` adds: modaliases, then `fs-TYPE` for the root
/// filesystem (the name the kernel's `request_module` asks for).
pub fn host_requests(sysfs: &Path, mounts: &str) -> Vec<String> {
    let mut r = modaliases(sysfs);
    if let Some(t) =
        root_fstype(mounts).filter(|t| !matches!(t.as_str(), "rootfs" | "overlay" | "tmpfs"))
    {
        r.push(format!("fs-{t}"));
    }
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn root_type() {
        let m =
            "rootfs / rootfs rw 0 0\n/dev/vda1 / ext4 rw,relatime 0 0\nproc /proc proc rw 0 0\n";
        assert_eq!(root_fstype(m).as_deref(), Some("ext4"));
        assert_eq!(root_fstype("proc /proc proc rw 0 0\n"), None);
    }

    #[test]
    fn scans_uevent_files() {
        let d = std::env::temp_dir().join(format!("earlymod-hostonly-{}", std::process::id()));
        let dev = d.join("devices/pci0000:00/0000:00:01.0");
        fs::create_dir_all(dev.join("virtio0")).unwrap();
        fs::write(
            dev.join("uevent"),
            "DRIVER=x\nMODALIAS=pci:v00001AF4d00001001sv\n",
        )
        .unwrap();
        fs::write(
            dev.join("virtio0/uevent"),
            "MODALIAS=virtio:d00000002v00001AF4\n",
        )
        .unwrap();
        fs::write(
            d.join("devices/uevent"),
            "MODALIAS=pci:v00001AF4d00001001sv\n",
        )
        .unwrap();
        let got = host_requests(&d, "/dev/vda / xfs rw 0 0\n");
        fs::remove_dir_all(&d).unwrap();
        assert_eq!(
            got,
            [
                "pci:v00001AF4d00001001sv",
                "virtio:d00000002v00001AF4",
                "fs-xfs"
            ]
        );
    }
}
