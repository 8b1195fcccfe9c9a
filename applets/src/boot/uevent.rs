//! The kernel's uevent socket (`NETLINK_KOBJECT_UEVENT`, group 1): opened
//! before the first sysfs scan so no device added after the scan is missed.
//! Coldplug drains it for new devices' modaliases; the root wait sleeps on
//! it and looks again when a block device appears. A socket that overflowed
//! (`ENOBUFS`: events were dropped) says so once, and the caller rescans
//! sysfs instead.

use alloc::string::{String, ToString};
use alloc::vec::Vec;

use earlymod_core::uevent::{Action, Uevent};
use rustix::fd::OwnedFd;
use rustix::net::{
    AddressFamily, RecvFlags, SocketFlags, SocketType,
    netlink::{self, SocketAddrNetlink},
};

/// The receive buffer asked for: room for the burst of events a driver
/// load brings (a USB hub's ports, a disk's partitions).
const RCVBUF: usize = 4 << 20;
/// The largest uevent message the kernel sends (`UEVENT_BUFFER_SIZE`).
const MSG_MAX: usize = 2048;
/// Most modaliases held between two drains; more counts as an overflow
/// (the caller rescans sysfs).
pub const MAX_PENDING: usize = 1024;

/// What one drain found.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Drained {
    /// `MODALIAS=` of added devices, in arrival order (at most
    /// [`MAX_PENDING`]).
    pub modaliases: Vec<String>,
    /// A block device was added or changed.
    pub block: bool,
    /// Events were lost (the socket overflowed, or more than
    /// [`MAX_PENDING`] modaliases came): rescan sysfs.
    pub overflow: bool,
    /// Messages read.
    pub events: usize,
}

/// The open uevent socket.
pub struct Uevents {
    fd: OwnedFd,
}

impl Uevents {
    /// Opens and binds the socket (non-blocking). `None` when the kernel
    /// has no netlink (the caller falls back to rescanning sysfs).
    pub fn open() -> Option<Uevents> {
        let fd = rustix::net::socket_with(
            AddressFamily::NETLINK,
            SocketType::DGRAM,
            SocketFlags::CLOEXEC | SocketFlags::NONBLOCK,
            Some(netlink::KOBJECT_UEVENT),
        )
        .ok()?;
        // Root may exceed rmem_max; anyone else gets what the limit allows.
        if rustix::net::sockopt::set_socket_recv_buffer_size_force(&fd, RCVBUF).is_err() {
            let _ = rustix::net::sockopt::set_socket_recv_buffer_size(&fd, RCVBUF);
        }
        rustix::net::bind(&fd, &SocketAddrNetlink::new(0, 1)).ok()?;
        Some(Uevents { fd })
    }

    /// Waits up to `ms` milliseconds for an event; true if one is there.
    pub fn wait(&self, ms: u64) -> bool {
        use rustix::event::{PollFd, PollFlags, poll};
        let mut fds = [PollFd::new(&self.fd, PollFlags::IN)];
        let ts = crate::sys::ms_timespec(ms);
        matches!(poll(&mut fds, Some(&ts)), Ok(n) if n > 0)
    }

    /// Reads every queued event without blocking: the added devices'
    /// modaliases, whether a block device came, whether events were lost.
    pub fn drain(&mut self) -> Drained {
        let mut d = Drained::default();
        let mut buf = [0u8; MSG_MAX];
        loop {
            match rustix::net::recvfrom(&self.fd, &mut buf, RecvFlags::DONTWAIT) {
                Ok((n, _, from)) => {
                    // Only the kernel (port 0) sends kernel uevents.
                    let kernel = from
                        .and_then(|a| SocketAddrNetlink::try_from(a).ok())
                        .is_none_or(|a| a.pid() == 0);
                    if !kernel {
                        continue;
                    }
                    d.events += 1;
                    let Some(ev) = Uevent::parse(&buf[..n.min(MSG_MAX)]) else {
                        continue;
                    };
                    d.block |= ev.is_block_change();
                    if let (Action::Add, Some(m)) = (ev.action, ev.modalias) {
                        if d.modaliases.len() < MAX_PENDING {
                            d.modaliases.push(m.to_string());
                        } else {
                            d.overflow = true;
                        }
                    }
                }
                Err(rustix::io::Errno::INTR) => continue,
                Err(rustix::io::Errno::NOBUFS) => d.overflow = true,
                Err(_) => return d,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    extern crate std;
    use super::*;

    /// The drain over a datagram socket fed by hand (a socketpair stands
    /// in for the kernel's): added devices' modaliases in order, a block
    /// device's arrival, removals and udev's messages ignored.
    #[test]
    fn drain_reads_what_is_queued() {
        let (tx, rx) = rustix::net::socketpair(
            AddressFamily::UNIX,
            SocketType::DGRAM,
            SocketFlags::CLOEXEC | SocketFlags::NONBLOCK,
            None,
        )
        .unwrap();
        let mut ev = Uevents { fd: rx };
        assert!(!ev.wait(0));
        assert_eq!(ev.drain(), Drained::default());
        let msgs: [&[u8]; 5] = [
            b"add@/devices/a\0ACTION=add\0DEVPATH=/devices/a\0SUBSYSTEM=pci\0MODALIAS=pci:v1\0",
            b"remove@/devices/b\0ACTION=remove\0DEVPATH=/devices/b\0MODALIAS=pci:v2\0",
            b"libudev\0\xfe\xed\xca\xfeMODALIAS=pci:v3\0",
            b"add@/devices/c/block/vda\0ACTION=add\0DEVPATH=/devices/c/block/vda\0SUBSYSTEM=block\0DEVTYPE=disk\0",
            b"add@/devices/d\0ACTION=add\0DEVPATH=/devices/d\0SUBSYSTEM=usb\0MODALIAS=usb:v1p2\0",
        ];
        for m in msgs {
            rustix::net::send(&tx, m, rustix::net::SendFlags::empty()).unwrap();
        }
        assert!(ev.wait(100));
        let d = ev.drain();
        assert_eq!(d.modaliases, ["pci:v1", "usb:v1p2"]);
        assert!(d.block);
        assert!(!d.overflow);
        assert_eq!(d.events, 5);
        assert_eq!(ev.drain(), Drained::default());
    }
}
