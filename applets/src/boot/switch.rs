//! switch_root: move the API filesystems into the new root, empty the
//! initramfs (without crossing into other filesystems), make the new root
//! `/`, and exec its init, keeping PID 1.

use alloc::string::String;
use alloc::vec::Vec;
use core::ffi::CStr;

use rustix::fd::OwnedFd;
use rustix::fs::{AtFlags, Mode, OFlags};

use super::OsError;
use super::root::SYSROOT;
use crate::log::text;
use crate::sys::CPath;

/// Checks that `init` exists in the new root and is an executable regular
/// file, resolving symlinks inside the new root.
pub fn check_init(init: &str) -> Result<(), String> {
    let root = rustix::fs::open(
        SYSROOT,
        OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| text(&[&SYSROOT, &": ", &OsError(e)]))?;
    let fd = rustix::fs::openat2(
        &root,
        init.trim_start_matches('/'),
        OFlags::PATH | OFlags::CLOEXEC,
        Mode::empty(),
        rustix::fs::ResolveFlags::IN_ROOT,
    )
    .map_err(|e| text(&[&"init ", &init, &": ", &OsError(e), &" in the new root"]))?;
    let st = rustix::fs::fstat(&fd).map_err(|e| text(&[&"init ", &init, &": ", &OsError(e)]))?;
    if rustix::fs::FileType::from_raw_mode(st.st_mode) != rustix::fs::FileType::RegularFile
        || st.st_mode & 0o111 == 0
    {
        return Err(text(&[
            &"init ",
            &init,
            &": not an executable file in the new root",
        ]));
    }
    Ok(())
}

/// Removes everything under directory `dir` that is on device `dev`.
fn empty_dir(dir: &OwnedFd, dev: u64) {
    let mut names: Vec<(String, bool)> = Vec::new();
    let mut buf = [core::mem::MaybeUninit::<u8>::uninit(); 4096];
    let mut it = rustix::fs::RawDir::new(dir, &mut buf);
    while let Some(Ok(e)) = it.next() {
        let Ok(n) = e.file_name().to_str() else {
            continue;
        };
        if n == "." || n == ".." {
            continue;
        }
        names.push((
            String::from(n),
            e.file_type() == rustix::fs::FileType::Directory,
        ));
    }
    for (n, is_dir) in names {
        let Ok(st) = rustix::fs::statat(dir, n.as_str(), AtFlags::SYMLINK_NOFOLLOW) else {
            continue;
        };
        if st.st_dev != dev {
            continue; // a mount point: another filesystem
        }
        if is_dir
            || rustix::fs::FileType::from_raw_mode(st.st_mode) == rustix::fs::FileType::Directory
        {
            if let Ok(sub) = rustix::fs::openat(
                dir,
                n.as_str(),
                OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                Mode::empty(),
            ) {
                empty_dir(&sub, dev);
            }
            let _ = rustix::fs::unlinkat(dir, n.as_str(), AtFlags::REMOVEDIR);
        } else {
            let _ = rustix::fs::unlinkat(dir, n.as_str(), AtFlags::empty());
        }
    }
}

/// Moves `/dev /proc /sys /run` into the new root, deletes the initramfs,
/// makes the new root `/`. Errors before the root moved are returned (the
/// caller can still rescue); after that the caller can only exec.
pub fn switch_root() -> Result<(), String> {
    for m in ["/dev", "/proc", "/sys", "/run"] {
        let Some(target) = CPath::join(&[SYSROOT, m]) else {
            continue;
        };
        let c = CPath::join(&[m]).ok_or("path")?;
        if rustix::mount::mount_move(c.as_cstr(), target.as_cstr()).is_err() {
            // No mount point for it in the new root: leave it behind.
            let _ = rustix::mount::unmount(c.as_cstr(), rustix::mount::UnmountFlags::DETACH);
        }
    }
    let root = rustix::fs::open(
        "/",
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| os_error("/", e))?;
    let dev = rustix::fs::fstat(&root)
        .map_err(|e| os_error("/", e))?
        .st_dev;
    rustix::process::chdir(SYSROOT)
        .map_err(|e| text(&[&"chdir ", &SYSROOT, &": ", &OsError(e)]))?;
    empty_dir(&root, dev);
    rustix::mount::mount_move(".", "/")
        .map_err(|e| text(&[&"move ", &SYSROOT, &" to /: ", &OsError(e)]))?;
    rustix::process::chroot(".").map_err(|e| os_error("chroot", e))?;
    rustix::process::chdir("/").map_err(|e| os_error("chdir /", e))?;
    Ok(())
}

/// "WHAT: os error N".
fn os_error(what: &str, e: rustix::io::Errno) -> String {
    text(&[&what, &": ", &OsError(e)])
}

/// Executes `path` with `argv` and a minimal environment; returns only on
/// failure.
pub fn exec(path: &CStr, argv: &[&CStr]) -> rustix::io::Errno {
    let mut av: Vec<*const u8> = argv.iter().map(|a| a.as_ptr().cast()).collect();
    av.push(core::ptr::null());
    let env = [
        c"HOME=/".as_ptr().cast::<u8>(),
        c"TERM=linux".as_ptr().cast(),
        c"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
            .as_ptr()
            .cast(),
        core::ptr::null(),
    ];
    // SAFETY: path, argv and envp are NUL-terminated C strings in
    // NULL-terminated arrays that outlive the call.
    unsafe { rustix::runtime::execve(path, av.as_ptr(), env.as_ptr()) }
}

/// The whole switch: checks `init` in the root mounted on [`SYSROOT`]
/// ([`check_init`]), moves into it ([`switch_root`]) and executes `init`
/// as this process. Returns only on failure, with the line to show (before
/// the move, the new root is unmounted again and the initramfs is intact).
pub fn switch_to(init: &str) -> String {
    if let Err(e) = check_init(init) {
        let _ = rustix::mount::unmount(SYSROOT, rustix::mount::UnmountFlags::empty());
        return e;
    }
    if let Err(e) = switch_root() {
        return e;
    }
    let Some(path) = CPath::join(&[init]) else {
        return text(&[&"init ", &init, &": path too long"]);
    };
    let e = exec(path.as_cstr(), &[path.as_cstr()]);
    text(&[&"exec ", &init, &": ", &OsError(e)])
}
