//! Kernel uevents (`NETLINK_KOBJECT_UEVENT`, multicast group 1), read in
//! place: a message is `ACTION@DEVPATH`, NUL, then `KEY=VALUE` fields each
//! ended by NUL. [`Uevent::parse`] borrows every field from the message.
//!
//! ```
//! use earlymod_core::uevent::{Action, Uevent};
//! let msg = b"add@/devices/pci0000:00/0000:00:04.0\0ACTION=add\0\
//!     DEVPATH=/devices/pci0000:00/0000:00:04.0\0SUBSYSTEM=pci\0\
//!     MODALIAS=pci:v00001AF4d00001001sv00001AF4sd00000002bc01sc00i00\0SEQNUM=812\0";
//! let ev = Uevent::parse(msg).unwrap();
//! assert_eq!(ev.action, Action::Add);
//! assert_eq!(ev.subsystem, "pci");
//! assert!(ev.modalias.is_some_and(|m| m.starts_with("pci:v00001AF4")));
//! ```

/// What happened to the device.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// `add`.
    Add,
    /// `remove`.
    Remove,
    /// `change`.
    Change,
    /// `bind`: a driver took the device.
    Bind,
    /// Any other (`move`, `online`, `offline`, `unbind`).
    Other,
}

/// One kernel uevent, borrowed from the message it was read from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Uevent<'a> {
    /// `ACTION=`.
    pub action: Action,
    /// `DEVPATH=` (under `/sys`).
    pub devpath: &'a str,
    /// `SUBSYSTEM=` (`pci`, `block`, `usb`, …); empty if absent.
    pub subsystem: &'a str,
    /// `DEVTYPE=` (`disk`, `partition`, `usb_interface`, …).
    pub devtype: Option<&'a str>,
    /// `DEVNAME=` (under `/dev`).
    pub devname: Option<&'a str>,
    /// `MODALIAS=`, if the device has one.
    pub modalias: Option<&'a str>,
}

impl<'a> Uevent<'a> {
    /// Parses a kernel uevent message. `None` for anything else: udev's
    /// own messages (they start `libudev`), a missing `@` header, fields
    /// that are not UTF-8, or a header and `ACTION=`/`DEVPATH=` that
    /// disagree.
    pub fn parse(msg: &'a [u8]) -> Option<Uevent<'a>> {
        let mut fields = msg.split(|&b| b == 0).filter(|f| !f.is_empty());
        let header = core::str::from_utf8(fields.next()?).ok()?;
        let (head_action, head_path) = header.split_once('@')?;
        let mut ev = Uevent {
            action: Action::Other,
            devpath: head_path,
            subsystem: "",
            devtype: None,
            devname: None,
            modalias: None,
        };
        let mut action = head_action;
        for f in fields {
            let Ok(f) = core::str::from_utf8(f) else {
                return None;
            };
            let Some((k, v)) = f.split_once('=') else {
                continue;
            };
            match k {
                "ACTION" => action = v,
                "DEVPATH" => ev.devpath = v,
                "SUBSYSTEM" => ev.subsystem = v,
                "DEVTYPE" => ev.devtype = Some(v),
                "DEVNAME" => ev.devname = Some(v),
                "MODALIAS" if !v.is_empty() => ev.modalias = Some(v),
                _ => {}
            }
        }
        if action != head_action || ev.devpath != head_path || head_path.is_empty() {
            return None;
        }
        ev.action = match action {
            "add" => Action::Add,
            "remove" => Action::Remove,
            "change" => Action::Change,
            "bind" => Action::Bind,
            _ => Action::Other,
        };
        Some(ev)
    }

    /// A block device (disk or partition) appeared or changed (a
    /// partition table read, a device-mapper table loaded): the time to
    /// look for `root=` again.
    pub fn is_block_change(&self) -> bool {
        self.subsystem == "block" && matches!(self.action, Action::Add | Action::Change)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const USB_IFACE: &[u8] = b"add@/devices/pci0000:00/0000:00:05.0/usb2/2-1/2-1:1.0\0\
        ACTION=add\0DEVPATH=/devices/pci0000:00/0000:00:05.0/usb2/2-1/2-1:1.0\0\
        SUBSYSTEM=usb\0DEVTYPE=usb_interface\0PRODUCT=46f4/1/0\0TYPE=0/0/0\0\
        INTERFACE=8/6/80\0MODALIAS=usb:v46F4p0001d0000dc00dsc00dp00ic08isc06ip50in00\0SEQNUM=1203\0";

    #[test]
    fn a_usb_interface() {
        let ev = Uevent::parse(USB_IFACE).unwrap();
        assert_eq!(ev.action, Action::Add);
        assert_eq!(ev.subsystem, "usb");
        assert_eq!(ev.devtype, Some("usb_interface"));
        assert_eq!(
            ev.modalias,
            Some("usb:v46F4p0001d0000dc00dsc00dp00ic08isc06ip50in00")
        );
        assert!(!ev.is_block_change());
    }

    #[test]
    fn a_disk() {
        let msg = b"add@/devices/virtual/block/dm-0\0ACTION=add\0DEVPATH=/devices/virtual/block/dm-0\0\
            SUBSYSTEM=block\0MAJOR=254\0MINOR=0\0DEVNAME=dm-0\0DEVTYPE=disk\0DISKSEQ=9\0SEQNUM=2001\0";
        let ev = Uevent::parse(msg).unwrap();
        assert!(ev.is_block_change());
        assert_eq!(ev.devname, Some("dm-0"));
        assert_eq!(ev.modalias, None);
    }

    #[test]
    fn not_kernel_uevents() {
        // udev's monitor messages, no header, a header without fields that
        // disagree, bad UTF-8.
        for m in [
            &b"libudev\0\xfe\xed\xca\xfe"[..],
            b"ACTION=add\0DEVPATH=/x\0",
            b"add@/a\0ACTION=remove\0",
            b"add@/a\0DEVPATH=/b\0",
            b"add@\0",
            b"add@/a\0SUBSYSTEM=\xff\0",
            b"",
        ] {
            assert_eq!(Uevent::parse(m), None, "{m:?}");
        }
        // A header alone is a uevent (old kernels send few fields).
        let ev = Uevent::parse(b"remove@/devices/x").unwrap();
        assert_eq!(
            (ev.action, ev.devpath, ev.subsystem),
            (Action::Remove, "/devices/x", "")
        );
    }

    #[test]
    fn every_prefix_and_byte_flip_is_safe() {
        for n in 0..USB_IFACE.len() {
            let _ = Uevent::parse(&USB_IFACE[..n]);
            let mut buf = [0u8; 512];
            let m = &mut buf[..USB_IFACE.len()];
            m.copy_from_slice(USB_IFACE);
            m[n] ^= 0x80;
            let _ = Uevent::parse(m);
            m[n] = 0;
            let _ = Uevent::parse(m);
        }
    }
}
