//! Identifying a root device the way `root=` names it: filesystem
//! superblocks (ext2/3/4, btrfs, xfs) for `UUID=` and `LABEL=`, the GPT
//! partition table for `PARTUUID=`/`PARTLABEL=`, and the MBR disk signature
//! for `PARTUUID=SSSSSSSS-PP`. Pure functions over bytes the caller read;
//! every offset is bounds-checked.

use crate::text::{self, Hex, Piece, Sink};
use core::fmt;

/// Bytes a caller should read from the start of a device for
/// [`probe_fs`]: the btrfs superblock sits at 64 KiB.
pub const PROBE_LEN: usize = 0x10000 + 0x1000;

/// A filesystem type [`probe_fs`] recognises.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FsType {
    /// ext2, ext3 or ext4 (the kernel's `ext4` driver mounts all three).
    Ext4,
    /// btrfs.
    Btrfs,
    /// XFS.
    Xfs,
}

impl FsType {
    /// The name `mount(2)` takes (and `fs-NAME` is the module alias).
    pub const fn name(self) -> &'static str {
        match self {
            FsType::Ext4 => "ext4",
            FsType::Btrfs => "btrfs",
            FsType::Xfs => "xfs",
        }
    }
}

/// A 16-byte UUID, shown in the usual lower-case 8-4-4-4-12 form.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Uuid(pub [u8; 16]);

impl Piece for Uuid {
    fn put_to(&self, out: &mut dyn Sink) {
        for (i, b) in self.0.iter().enumerate() {
            if matches!(i, 4 | 6 | 8 | 10) {
                out.put(b"-");
            }
            Hex((*b).into(), 2).put_to(out);
        }
    }
}

impl fmt::Display for Uuid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        text::display(self, f)
    }
}

impl Uuid {
    /// True when `s` names this UUID (case-insensitive, dashes optional).
    pub fn matches(&self, s: &str) -> bool {
        let mut hex = s.bytes().filter(|&c| c != b'-');
        for b in self.0 {
            let (Some(h), Some(l)) = (hex.next(), hex.next()) else {
                return false;
            };
            match (nibble(h), nibble(l)) {
                (Some(h), Some(l)) if (h << 4 | l) == b => {}
                _ => return false,
            }
        }
        hex.next().is_none()
    }

    /// A GPT GUID as stored on disk (first three fields little-endian).
    pub fn from_guid(b: &[u8; 16]) -> Uuid {
        let mut u = *b;
        u[..4].reverse();
        u[4..6].reverse();
        u[6..8].reverse();
        Uuid(u)
    }
}

fn nibble(c: u8) -> Option<u8> {
    (c as char).to_digit(16).map(|d| d as u8)
}

/// What a superblock says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FsInfo<'a> {
    /// The filesystem type.
    pub kind: FsType,
    /// Its UUID.
    pub uuid: Uuid,
    /// Its label (empty when unset), as stored.
    pub label: &'a [u8],
}

impl FsInfo<'_> {
    /// True when `label` is this filesystem's label.
    pub fn has_label(&self, label: &str) -> bool {
        !label.is_empty() && self.label == label.as_bytes()
    }
}

fn uuid_at(b: &[u8], off: usize) -> Option<Uuid> {
    Some(Uuid(b.get(off..off + 16)?.try_into().ok()?))
}

fn cstr(b: &[u8]) -> &[u8] {
    let end = b.iter().position(|&c| c == 0).unwrap_or(b.len());
    &b[..end]
}

fn le16(b: &[u8], off: usize) -> Option<u16> {
    Some(u16::from_le_bytes(b.get(off..off + 2)?.try_into().ok()?))
}

fn le32(b: &[u8], off: usize) -> Option<u32> {
    Some(u32::from_le_bytes(b.get(off..off + 4)?.try_into().ok()?))
}

fn le64(b: &[u8], off: usize) -> Option<u64> {
    Some(u64::from_le_bytes(b.get(off..off + 8)?.try_into().ok()?))
}

/// Identifies the filesystem whose first bytes are `dev` (read at least
/// [`PROBE_LEN`] bytes, or all of a smaller device).
pub fn probe_fs(dev: &[u8]) -> Option<FsInfo<'_>> {
    // ext2/3/4: superblock at 1024, magic 0xEF53 at +0x38.
    if le16(dev, 1024 + 0x38) == Some(0xEF53) {
        return Some(FsInfo {
            kind: FsType::Ext4,
            uuid: uuid_at(dev, 1024 + 0x68)?,
            label: cstr(dev.get(1024 + 0x78..1024 + 0x88)?),
        });
    }
    // XFS: "XFSB" at 0, UUID at 32, 12-byte label at 108.
    if dev.starts_with(b"XFSB") {
        return Some(FsInfo {
            kind: FsType::Xfs,
            uuid: uuid_at(dev, 32)?,
            label: cstr(dev.get(108..120)?),
        });
    }
    // btrfs: superblock at 64 KiB, magic at +0x40, fsid at +0x20, label
    // (256 bytes) at +0x12b.
    let sb = 0x10000;
    if dev.get(sb + 0x40..sb + 0x48) == Some(b"_BHRfS_M") {
        return Some(FsInfo {
            kind: FsType::Btrfs,
            uuid: uuid_at(dev, sb + 0x20)?,
            label: cstr(dev.get(sb + 0x12b..sb + 0x22b)?),
        });
    }
    None
}

/// One partition of a table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Partition<'a> {
    /// 1-based number, as in `/dev/sda1`.
    pub number: u32,
    /// GPT unique partition GUID (`PARTUUID=`), or the MBR form.
    pub id: PartId,
    /// GPT partition name (UTF-16LE, as stored; empty for MBR).
    pub name_utf16: &'a [u8],
}

/// A partition's `PARTUUID`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PartId {
    /// GPT: the unique partition GUID.
    Gpt(Uuid),
    /// MBR: the disk signature and partition number (`SSSSSSSS-PP`).
    Mbr(u32, u32),
}

impl PartId {
    /// True when `s` (the value of `PARTUUID=`) names this partition.
    pub fn matches(&self, s: &str) -> bool {
        match self {
            PartId::Gpt(u) => u.matches(s),
            PartId::Mbr(sig, n) => {
                let Some((a, b)) = s.split_once('-') else {
                    return false;
                };
                u32::from_str_radix(a, 16) == Ok(*sig) && u32::from_str_radix(b, 16) == Ok(*n)
            }
        }
    }
}

impl Partition<'_> {
    /// True when `label` (ASCII) is this GPT partition's name.
    pub fn has_name(&self, label: &str) -> bool {
        let units = self
            .name_utf16
            .chunks_exact(2)
            .map(|c| u16::from_le_bytes([c[0], c[1]]));
        let mut want = label.bytes();
        for u in units {
            match (u, want.next()) {
                (0, None) => return true,
                (u, Some(c)) if u == u16::from(c) => {}
                _ => return false,
            }
        }
        want.next().is_none() && !label.is_empty()
    }
}

/// The largest number of partition entries read from one table.
pub const MAX_PARTITIONS: usize = 128;

/// Calls `f` for each used partition of the table in `disk` (the first
/// bytes of a whole disk: 34 sectors cover GPT with 128 entries at 512-byte
/// sectors), GPT first, else MBR primaries.
pub fn partitions<'a>(disk: &'a [u8], f: &mut dyn FnMut(Partition<'a>)) {
    for sector in [512usize, 4096] {
        let Some(h) = disk.get(sector..sector + 92) else {
            continue;
        };
        if &h[..8] != b"EFI PART" {
            continue;
        }
        let (Some(lba), Some(n), Some(size)) = (le64(h, 72), le32(h, 80), le32(h, 84)) else {
            return;
        };
        let size = size as usize;
        if size < 128 {
            return;
        }
        let start = (lba as usize).saturating_mul(sector);
        for i in 0..(n as usize).min(MAX_PARTITIONS) {
            let Some(e) = disk.get(start + i * size..start + i * size + 128) else {
                return;
            };
            if e[..16].iter().all(|&b| b == 0) {
                continue;
            }
            let guid: &[u8; 16] = e[16..32].try_into().unwrap_or(&[0; 16]);
            f(Partition {
                number: i as u32 + 1,
                id: PartId::Gpt(Uuid::from_guid(guid)),
                name_utf16: &e[56..128],
            });
        }
        return;
    }
    // MBR: signature 0x55AA at 510, disk signature at 440, 4 entries at 446.
    if disk.get(510..512) != Some(&[0x55, 0xaa]) {
        return;
    }
    let Some(sig) = le32(disk, 440) else { return };
    for i in 0..4 {
        let e = 446 + i * 16;
        if disk.get(e + 4).is_some_and(|&t| t != 0 && t != 0xee) {
            f(Partition {
                number: i as u32 + 1,
                id: PartId::Mbr(sig, i as u32 + 1),
                name_utf16: &[],
            });
        }
    }
}

/// What `root=` asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RootSpec<'a> {
    /// `/dev/...`: a device node path.
    Path(&'a str),
    /// `UUID=`.
    Uuid(&'a str),
    /// `LABEL=`.
    Label(&'a str),
    /// `PARTUUID=` (GPT GUID or MBR `SSSSSSSS-PP`).
    PartUuid(&'a str),
    /// `PARTLABEL=` (GPT partition name).
    PartLabel(&'a str),
    /// `MAJ:MIN` (hex-free decimal device number).
    DevNum(u32, u32),
}

impl<'a> RootSpec<'a> {
    /// Parses the value of `root=`; `None` for forms this does not know.
    pub fn parse(v: &'a str) -> Option<Self> {
        let tag = |p: &str| v.strip_prefix(p).filter(|r| !r.is_empty());
        if let Some(r) = tag("UUID=") {
            Some(RootSpec::Uuid(r))
        } else if let Some(r) = tag("LABEL=") {
            Some(RootSpec::Label(r))
        } else if let Some(r) = tag("PARTUUID=") {
            Some(RootSpec::PartUuid(r))
        } else if let Some(r) = tag("PARTLABEL=") {
            Some(RootSpec::PartLabel(r))
        } else if v.starts_with("/dev/") {
            Some(RootSpec::Path(v))
        } else {
            let (a, b) = v.split_once(':')?;
            Some(RootSpec::DevNum(a.parse().ok()?, b.parse().ok()?))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uuids() {
        let u = Uuid([
            0x12, 0x34, 0x56, 0x78, 0x9a, 0xbc, 0xde, 0xf0, 0x01, 0x23, 0x45, 0x67, 0x89, 0xab,
            0xcd, 0xef,
        ]);
        let mut s: heapless::String<40> = heapless::String::new();
        core::fmt::write(&mut s, format_args!("{u}")).unwrap();
        assert_eq!(s, "12345678-9abc-def0-0123-456789abcdef");
        assert!(u.matches("12345678-9ABC-def0-0123-456789abcdef"));
        assert!(u.matches("123456789abcdef00123456789abcdef"));
        assert!(!u.matches("12345678-9abc-def0-0123-456789abcdee"));
        assert!(!u.matches("12345678-9abc-def0-0123-456789abcdef00"));
        assert!(!u.matches("12345678"));
        let g = Uuid::from_guid(&u.0);
        assert!(g.matches("78563412-bc9a-f0de-0123-456789abcdef"));
    }

    #[test]
    fn specs() {
        assert_eq!(RootSpec::parse("UUID=abc"), Some(RootSpec::Uuid("abc")));
        assert_eq!(RootSpec::parse("LABEL=root"), Some(RootSpec::Label("root")));
        assert_eq!(
            RootSpec::parse("PARTUUID=1234abcd-02"),
            Some(RootSpec::PartUuid("1234abcd-02"))
        );
        assert_eq!(
            RootSpec::parse("/dev/vda1"),
            Some(RootSpec::Path("/dev/vda1"))
        );
        assert_eq!(RootSpec::parse("254:1"), Some(RootSpec::DevNum(254, 1)));
        assert_eq!(RootSpec::parse("UUID="), None);
        assert_eq!(RootSpec::parse("nfs"), None);
    }

    #[test]
    fn ext4_xfs_btrfs() {
        let mut d = [0u8; PROBE_LEN];
        d[1024 + 0x38..1024 + 0x3a].copy_from_slice(&0xEF53u16.to_le_bytes());
        d[1024 + 0x68..1024 + 0x78].copy_from_slice(&[7; 16]);
        d[1024 + 0x78..1024 + 0x7c].copy_from_slice(b"root");
        let i = probe_fs(&d).unwrap();
        assert_eq!(
            (i.kind, i.uuid, i.label),
            (FsType::Ext4, Uuid([7; 16]), &b"root"[..])
        );
        assert!(i.has_label("root") && !i.has_label("roo") && !i.has_label(""));
        let mut x = [0u8; PROBE_LEN];
        x[..4].copy_from_slice(b"XFSB");
        x[32..48].copy_from_slice(&[9; 16]);
        x[108..120].copy_from_slice(b"twelve_chars");
        let i = probe_fs(&x).unwrap();
        assert_eq!((i.kind, i.label), (FsType::Xfs, &b"twelve_chars"[..]));
        let mut b = [0u8; PROBE_LEN];
        b[0x10040..0x10048].copy_from_slice(b"_BHRfS_M");
        b[0x10020..0x10030].copy_from_slice(&[1; 16]);
        b[0x1012b..0x1012e].copy_from_slice(b"bfs");
        let i = probe_fs(&b).unwrap();
        assert_eq!(
            (i.kind, i.uuid, i.label),
            (FsType::Btrfs, Uuid([1; 16]), &b"bfs"[..])
        );
        assert_eq!(probe_fs(&[0; 100]), None);
        // Short devices never panic.
        for n in [0, 1000, 1024 + 0x39, 1024 + 0x70, 0x10045] {
            let _ = probe_fs(&d[..n]);
            let _ = probe_fs(&b[..n.min(b.len())]);
        }
    }

    #[test]
    fn gpt_and_mbr() {
        let mut disk = [0u8; 34 * 512];
        let h = 512;
        disk[h..h + 8].copy_from_slice(b"EFI PART");
        disk[h + 72..h + 80].copy_from_slice(&2u64.to_le_bytes());
        disk[h + 80..h + 84].copy_from_slice(&128u32.to_le_bytes());
        disk[h + 84..h + 88].copy_from_slice(&128u32.to_le_bytes());
        let e = 1024 + 128; // second entry
        disk[e] = 1; // type GUID non-zero
        disk[e + 16..e + 32].copy_from_slice(&[0x11; 16]);
        for (i, c) in b"rootfs".iter().enumerate() {
            disk[e + 56 + 2 * i] = *c;
        }
        let mut found = heapless::Vec::<Partition<'_>, 4>::new();
        partitions(&disk, &mut |p| found.push(p).unwrap());
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].number, 2);
        assert!(found[0].id.matches("11111111-1111-1111-1111-111111111111"));
        assert!(found[0].has_name("rootfs") && !found[0].has_name("root"));
        let mut mbr = [0u8; 512];
        mbr[440..444].copy_from_slice(&0x1234abcdu32.to_le_bytes());
        mbr[510] = 0x55;
        mbr[511] = 0xaa;
        mbr[446 + 16 + 4] = 0x83;
        let mut found = heapless::Vec::<Partition<'_>, 4>::new();
        partitions(&mbr, &mut |p| found.push(p).unwrap());
        assert_eq!(found.len(), 1);
        assert!(found[0].id.matches("1234abcd-02") && !found[0].id.matches("1234abcd-01"));
        // Truncated tables never panic.
        for n in [0, 100, 520, 600, 1100, 1200] {
            partitions(&disk[..n], &mut |_| {});
        }
    }
}
