//! Finding the device `root=` names among `/sys/class/block`, and mounting
//! it on `/sysroot`.

use alloc::string::{String, ToString};
use alloc::vec;
use alloc::vec::Vec;

use earlymod_core::blkid::{self, RootSpec};
use rustix::fs::{Mode, OFlags};

use super::OsError;
use crate::log::text;
use crate::sys::{self, CPath, Kind};

/// Where the new root is mounted.
pub const SYSROOT: &str = "/sysroot";

/// A block device that matched.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Found {
    /// `/dev/NAME`.
    pub dev: String,
    /// Filesystem type from its superblock, if recognised.
    pub fstype: Option<&'static str>,
}

fn read_head(dev: &str, len: usize) -> Option<Vec<u8>> {
    let path = CPath::join(&[dev])?;
    let fd = rustix::fs::open(
        path.as_cstr(),
        OFlags::RDONLY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .ok()?;
    let mut buf = vec![0u8; len];
    let mut n = 0;
    while n < len {
        match rustix::io::read(&fd, &mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(rustix::io::Errno::INTR) => continue,
            Err(_) => break,
        }
    }
    buf.truncate(n);
    Some(buf)
}

fn sysfs_attr(name: &str, attr: &str) -> Option<String> {
    let p = CPath::join(&["/sys/class/block/", name, "/", attr])?;
    let mut buf = [0u8; 64];
    let b = sys::read_small(p.as_cstr(), &mut buf)?;
    Some(core::str::from_utf8(b).ok()?.trim().to_string())
}

/// The disk a partition belongs to (`vda1` → `vda`), from the sysfs link.
fn parent_disk(name: &str) -> Option<String> {
    let p = CPath::join(&["/sys/class/block/", name])?;
    let mut buf = [core::mem::MaybeUninit::<u8>::uninit(); 1024];
    let (link, _) = rustix::fs::readlinkat_raw(rustix::fs::CWD, p.as_cstr(), &mut buf[..]).ok()?;
    let link = core::str::from_utf8(link).ok()?;
    let mut parts = link.rsplit('/');
    parts.next();
    parts.next().map(str::to_string)
}

/// Block device names in `/sys/class/block`, sorted.
pub fn block_devices() -> Vec<String> {
    let mut v = Vec::new();
    sys::list_dir(c"/sys/class/block", &mut |n, _k: Kind| {
        v.push(n.to_string())
    });
    v.sort_unstable();
    v
}

/// How long [`find`] waits for the root device.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Wait {
    /// Until it appears (`rootwait`).
    Forever,
    /// At most this many microseconds.
    Micros(u64),
}

impl Wait {
    /// At most `s` seconds.
    pub fn secs(s: u64) -> Wait {
        Wait::Micros(s.saturating_mul(1_000_000))
    }
}

/// Waits for the device `spec` names (`root=`'s forms: `/dev/NAME`,
/// `MAJ:MIN`, `UUID=`, `LABEL=`, `PARTUUID=`, `PARTLABEL=`), looking every
/// 50 ms and calling `between` with `log` before each new look (to
/// coldplug: SCSI and USB disks appear late), with a line to `log` every
/// 5 s. The error is
/// the line to show: the form is unknown, or the device did not appear in
/// time.
pub fn find(
    spec: &str,
    wait: Wait,
    log: &mut dyn super::Logger,
    between: &mut dyn FnMut(&mut dyn super::Logger),
) -> Result<Found, String> {
    wait_for(spec, wait, log, &mut |log| {
        between(log);
        super::sleep_ms(50);
        true
    })
}

/// [`find`] with the waiting left to `step`: it waits for something to
/// happen (a uevent, a timer) and says whether block devices may have
/// changed. The devices are looked at again when they may have, and at
/// least once a second.
pub fn wait_for(
    spec: &str,
    wait: Wait,
    log: &mut dyn super::Logger,
    step: &mut dyn FnMut(&mut dyn super::Logger) -> bool,
) -> Result<Found, String> {
    let Some(parsed) = RootSpec::parse(spec) else {
        return Err(text(&[&"root=", &spec, &": unknown form"]));
    };
    let start = super::now_us();
    let mut last_note = start;
    let mut last_look = start;
    let mut look = true;
    loop {
        if look || super::now_us() - last_look > 1_000_000 {
            if let Some(f) = find_now(&parsed) {
                return Ok(f);
            }
            last_look = super::now_us();
        }
        let waited = super::now_us() - start;
        if let Wait::Micros(limit) = wait {
            if waited > limit {
                return Err(text(&[
                    &"root device ",
                    &spec,
                    &" not found after ",
                    &(limit / 1_000_000),
                    &" s",
                ]));
            }
        }
        if super::now_us() - last_note > 5_000_000 {
            log.line(&[&"waiting for root device ", &spec]);
            last_note = super::now_us();
        }
        look = step(log);
    }
}

/// Looks for the device `spec` names among the current block devices,
/// once.
pub fn find_now(spec: &RootSpec<'_>) -> Option<Found> {
    for name in block_devices() {
        let dev = text(&[&"/dev/", &name.as_str()]);
        let hit = match *spec {
            RootSpec::Path(p) => p == dev,
            RootSpec::DevNum(ma, mi) => sysfs_attr(&name, "dev") == Some(text(&[&ma, &":", &mi])),
            RootSpec::Uuid(u) => read_head(&dev, blkid::PROBE_LEN)
                .is_some_and(|h| blkid::probe_fs(&h).is_some_and(|i| i.uuid.matches(u))),
            RootSpec::Label(l) => read_head(&dev, blkid::PROBE_LEN)
                .is_some_and(|h| blkid::probe_fs(&h).is_some_and(|i| i.has_label(l))),
            RootSpec::PartUuid(_) | RootSpec::PartLabel(_) => part_matches(&name, spec),
        };
        if hit {
            let fstype = read_head(&dev, blkid::PROBE_LEN)
                .and_then(|h| blkid::probe_fs(&h).map(|i| i.kind.name()));
            return Some(Found { dev, fstype });
        }
    }
    None
}

fn part_matches(name: &str, spec: &RootSpec<'_>) -> bool {
    let Some(num) = sysfs_attr(name, "partition").and_then(|n| n.parse::<u32>().ok()) else {
        return false;
    };
    let Some(disk) = parent_disk(name) else {
        return false;
    };
    let Some(head) = read_head(&text(&[&"/dev/", &disk.as_str()]), 34 * 4096) else {
        return false;
    };
    let mut hit = false;
    blkid::partitions(&head, &mut |p| {
        if p.number == num {
            hit |= match *spec {
                RootSpec::PartUuid(u) => p.id.matches(u),
                RootSpec::PartLabel(l) => p.has_name(l),
                _ => false,
            };
        }
    });
    hit
}

/// Mount flags and data from the command line.
#[derive(Debug, Clone, Copy, Default)]
pub struct MountOpts<'a> {
    /// `rootfstype=`.
    pub fstype: Option<&'a str>,
    /// `rootflags=`.
    pub flags: Option<&'a str>,
    /// `rw` (the kernel's default is read-only).
    pub rw: bool,
}

/// Mounts `dev` on [`SYSROOT`].
pub fn mount(found: &Found, o: &MountOpts<'_>) -> Result<String, String> {
    let _ = rustix::fs::mkdir(SYSROOT, Mode::from_raw_mode(0o755));
    let fstype = match (o.fstype, found.fstype) {
        (Some(t), _) => t,
        (None, Some(t)) => t,
        (None, None) => {
            return Err(text(&[
                &found.dev.as_str(),
                &": unknown filesystem (give rootfstype=)",
            ]));
        }
    };
    let mut flags = rustix::mount::MountFlags::empty();
    if !o.rw {
        flags |= rustix::mount::MountFlags::RDONLY;
    }
    let data = CPath::join(&[o.flags.unwrap_or("")]).ok_or("rootflags too long")?;
    rustix::mount::mount(found.dev.as_str(), SYSROOT, fstype, flags, data.as_cstr()).map_err(
        |e| {
            text(&[
                &"mount ",
                &found.dev.as_str(),
                &" on ",
                &SYSROOT,
                &" (",
                &fstype,
                &"): ",
                &OsError(e),
            ])
        },
    )?;
    Ok(fstype.to_string())
}
