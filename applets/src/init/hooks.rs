//! Hooks: executables in the image that PID 1 runs at fixed stages of the
//! boot, for the steps a loader cannot know (unlocking a LUKS volume,
//! activating LVM, assembling RAID). Stage `S`'s hooks are the executable
//! files of `/lib/earlymod/hooks/S/`, run one at a time in name order:
//!
//! - `pre-coldplug`: after the API filesystems and before any module loads;
//! - `pre-mount`: after coldplug settled, before PID 1 looks for `root=`
//!   (a hook may make the root device: `cryptsetup open`, `vgchange -ay`);
//!   again every `rd.retry=` seconds while the root is missing;
//! - `pre-switch`: the root is mounted on `/sysroot`, before switch_root.
//!
//! Each runs as `argv[0]` = its path, with `PATH=/usr/sbin:/usr/bin:/sbin:/bin`,
//! `EARLYMOD_STAGE=S`, `ROOT=` the `root=` value and `SYSROOT=/sysroot`,
//! stdin the console, stdout and stderr to `/dev/kmsg` and the boot report
//! line by line. One that runs longer than `earlymod.hook_timeout=`
//! seconds (default 30) is killed with its process group; a failure is
//! reported and the boot goes on. `rd.break=S` starts a shell before
//! stage `S`'s hooks (`rd.break` alone: just before switch_root); the
//! boot goes on when it exits.

use alloc::string::String;
use alloc::vec::Vec;

use earlymod_core::text::Piece;
use rustix::fd::OwnedFd;
use rustix::process::{Pid, Signal, WaitOptions};

use crate::boot::{self, switch};
use crate::sys::{self, CPath, Kind};

/// Where the stages' directories are.
pub const HOOK_DIR: &str = "/lib/earlymod/hooks";

/// The stages, in boot order.
pub const STAGES: [&str; 3] = ["pre-coldplug", "pre-mount", "pre-switch"];

/// The longest output line passed on; longer ones are cut there.
const LINE_MAX: usize = 512;

/// What hooks get to know.
pub struct Env<'a> {
    /// The `root=` value ("" if none).
    pub root: &'a str,
    /// Milliseconds a hook may run.
    pub timeout_ms: u64,
}

/// Runs stage `stage`'s hooks; `say` gets every line to report (the
/// hooks' output, their exit).
pub fn run_stage(stage: &str, env: &Env<'_>, say: &mut dyn FnMut(&[&dyn Piece])) {
    let Some(dir) = CPath::join(&[HOOK_DIR, "/", stage]) else {
        return;
    };
    let mut names: Vec<String> = Vec::new();
    sys::list_dir(dir.as_cstr(), &mut |n, k| {
        if k == Kind::Other && !n.starts_with('.') {
            names.push(n.into());
        }
    });
    names.sort_unstable();
    for name in names {
        let Some(path) = CPath::join(&[dir.as_str(), "/", &name]) else {
            continue;
        };
        if rustix::fs::access(path.as_cstr(), rustix::fs::Access::EXEC_OK).is_err() {
            say(&[&"hook ", &path.as_str(), &": not executable, skipped"]);
            continue;
        }
        run_one(&path, stage, env, say);
    }
}

/// `KEY=` + `value` as a C string (`KEY=` alone if the value is too long).
fn env_var(key: &str, value: &str) -> Option<CPath> {
    CPath::join(&[key, value]).or_else(|| CPath::join(&[key]))
}

fn run_one(path: &CPath, stage: &str, env: &Env<'_>, say: &mut dyn FnMut(&[&dyn Piece])) {
    let name = path.as_str();
    let Ok((r, w)) = rustix::pipe::pipe_with(rustix::pipe::PipeFlags::CLOEXEC) else {
        say(&[&"hook ", &name, &": no pipe"]);
        return;
    };
    let vars: Vec<CPath> = [
        env_var("PATH=", "/usr/sbin:/usr/bin:/sbin:/bin"),
        env_var("EARLYMOD_STAGE=", stage),
        env_var("ROOT=", env.root),
        env_var("SYSROOT=", crate::boot::root::SYSROOT),
    ]
    .into_iter()
    .flatten()
    .collect();
    let mut envp: Vec<*const u8> = vars.iter().map(|v| v.as_cstr().as_ptr().cast()).collect();
    envp.push(core::ptr::null());
    let argv = [path.as_cstr().as_ptr().cast::<u8>(), core::ptr::null()];
    let t0 = boot::now_us();
    // SAFETY: single-threaded; the child only rearranges its descriptors,
    // execs or exits.
    let pid = match unsafe { rustix::runtime::kernel_fork() } {
        Ok(rustix::runtime::Fork::Child(_)) => {
            drop(r);
            let _ = rustix::process::setpgid(None, None);
            let _ = rustix::stdio::dup2_stdout(&w);
            let _ = rustix::stdio::dup2_stderr(&w);
            // SAFETY: path, argv and envp are NUL-terminated C strings in
            // NULL-terminated arrays that outlive the call.
            let _ =
                unsafe { rustix::runtime::execve(path.as_cstr(), argv.as_ptr(), envp.as_ptr()) };
            rustix::runtime::exit_group(127)
        }
        Ok(rustix::runtime::Fork::ParentOf(pid)) => pid,
        Err(e) => {
            say(&[&"hook ", &name, &": fork: ", &boot::OsError(e)]);
            return;
        }
    };
    drop(w);
    let status = collect(&r, pid, env.timeout_ms, &mut |line| {
        say(&[&"hook ", &name, &": ", &line])
    });
    let ms = (boot::now_us() - t0) / 1000;
    match status {
        Exit::Code(0) => say(&[&"hook ", &name, &": done in ", &ms, &" ms"]),
        Exit::Code(c) => say(&[
            &"hook ",
            &name,
            &": exit status ",
            &c,
            &" after ",
            &ms,
            &" ms",
        ]),
        Exit::Signal(s) => say(&[&"hook ", &name, &": killed by signal ", &s]),
        Exit::TimedOut => say(&[
            &"hook ",
            &name,
            &": killed after ",
            &(env.timeout_ms / 1000),
            &" s (earlymod.hook_timeout=)",
        ]),
    }
}

/// How a hook ended.
enum Exit {
    Code(i32),
    Signal(i32),
    TimedOut,
}

/// Passes the child's output on line by line until it exits (or the
/// timeout kills it and its process group), then what it left in the pipe.
fn collect(r: &OwnedFd, pid: Pid, timeout_ms: u64, line: &mut dyn FnMut(&str)) -> Exit {
    let deadline = boot::now_us() + timeout_ms * 1000;
    let mut pending: Vec<u8> = Vec::new();
    let mut open = true;
    let mut buf = [0u8; 1024];
    loop {
        if let Ok(Some((_, st))) = rustix::process::waitpid(Some(pid), WaitOptions::NOHANG) {
            // What it wrote before exiting (a daemon it left behind may
            // hold the pipe open: read only what is there).
            drain_ready(r, &mut pending, &mut buf, line);
            flush(&mut pending, line, true);
            return match (st.exit_status(), st.terminating_signal()) {
                (Some(c), _) => Exit::Code(c),
                (None, Some(s)) => Exit::Signal(s),
                (None, None) => Exit::Code(-1),
            };
        }
        let now = boot::now_us();
        if now >= deadline {
            let _ = rustix::process::kill_process_group(pid, Signal::KILL);
            let _ = rustix::process::kill_process(pid, Signal::KILL);
            let _ = rustix::process::waitpid(Some(pid), WaitOptions::empty());
            drain_ready(r, &mut pending, &mut buf, line);
            flush(&mut pending, line, true);
            return Exit::TimedOut;
        }
        let wait = ((deadline - now) / 1000).clamp(1, 50);
        if open {
            open = read_some(r, wait, &mut pending, &mut buf, line) != Pipe::Closed;
        } else {
            boot::sleep_ms(wait);
        }
    }
}

/// What one look at the pipe found.
#[derive(PartialEq, Eq)]
enum Pipe {
    /// Output (passed on as whole lines).
    Data,
    /// Nothing within the wait (or an interrupted read).
    Nothing,
    /// End of file or an error: the pipe is done.
    Closed,
}

/// Waits up to `ms` milliseconds for output, reads once and passes on the
/// whole lines.
fn read_some(
    r: &OwnedFd,
    ms: u64,
    pending: &mut Vec<u8>,
    buf: &mut [u8],
    line: &mut dyn FnMut(&str),
) -> Pipe {
    use rustix::event::{PollFd, PollFlags, poll};
    let mut fds = [PollFd::new(r, PollFlags::IN)];
    if !matches!(poll(&mut fds, Some(&crate::sys::ms_timespec(ms))), Ok(n) if n > 0) {
        return Pipe::Nothing;
    }
    match rustix::io::read(r, &mut *buf) {
        Ok(0) => Pipe::Closed,
        Ok(n) => {
            pending.extend_from_slice(&buf[..n]);
            flush(pending, line, false);
            Pipe::Data
        }
        Err(rustix::io::Errno::INTR) => Pipe::Nothing,
        Err(_) => Pipe::Closed,
    }
}

/// Reads what the pipe holds now, without waiting.
fn drain_ready(r: &OwnedFd, pending: &mut Vec<u8>, buf: &mut [u8], line: &mut dyn FnMut(&str)) {
    while read_some(r, 0, pending, buf, line) == Pipe::Data {}
}

/// Passes on the complete lines of `pending` (all of it with `all`),
/// cutting lines longer than [`LINE_MAX`].
fn flush(pending: &mut Vec<u8>, line: &mut dyn FnMut(&str), all: bool) {
    loop {
        let end = pending.iter().position(|&b| b == b'\n');
        let (take, skip) = match end {
            Some(e) if e <= LINE_MAX => (e, 1),
            _ if pending.len() > LINE_MAX => (LINE_MAX, 0),
            None if all && !pending.is_empty() => (pending.len(), 0),
            _ => return,
        };
        let text = String::from_utf8_lossy(&pending[..take]);
        line(text.trim_end());
        pending.drain(..take + skip);
    }
}

/// `rd.break=stage`: a shell on the console before the stage; the boot
/// goes on when it exits. Without `/bin/sh`, a line says so.
pub fn break_shell(stage: &str, say: &mut dyn FnMut(&[&dyn Piece])) {
    if rustix::fs::access("/bin/sh", rustix::fs::Access::EXEC_OK).is_err() {
        say(&[&"rd.break=", &stage, &": no /bin/sh in the image, going on"]);
        return;
    }
    say(&[
        &"rd.break=",
        &stage,
        &": starting /bin/sh; exit it to go on booting",
    ]);
    // SAFETY: single-threaded; the child only execs or exits.
    match unsafe { rustix::runtime::kernel_fork() } {
        Ok(rustix::runtime::Fork::Child(_)) => {
            super::console_session();
            let _ = switch::exec(c"/bin/sh", &[c"sh"]);
            rustix::runtime::exit_group(127)
        }
        Ok(rustix::runtime::Fork::ParentOf(pid)) => {
            let _ = rustix::process::waitpid(Some(pid), WaitOptions::empty());
        }
        Err(e) => say(&[&"rd.break: fork: ", &boot::OsError(e)]),
    }
    say(&[&"rd.break=", &stage, &": shell exited, booting on"]);
}

#[cfg(test)]
mod tests {
    extern crate std;
    use super::*;
    use alloc::string::ToString;

    #[test]
    fn lines_are_cut_and_flushed() {
        let mut got: Vec<String> = Vec::new();
        let mut p = b"one\ntwo\npart".to_vec();
        flush(&mut p, &mut |l| got.push(l.to_string()), false);
        assert_eq!(got, ["one", "two"]);
        assert_eq!(p, b"part");
        let mut long = alloc::vec![b'x'; LINE_MAX + 10];
        flush(&mut long, &mut |l| got.push(l.to_string()), false);
        assert_eq!(got.last().unwrap().len(), LINE_MAX);
        assert_eq!(long.len(), 10);
        flush(&mut long, &mut |l| got.push(l.to_string()), true);
        assert_eq!(got.last().unwrap(), "xxxxxxxxxx");
        assert!(long.is_empty());
    }

    /// A real hook on the host: its output, its exit status, a timeout
    /// that kills it.
    #[test]
    fn a_hook_runs_and_times_out() {
        use std::os::unix::fs::PermissionsExt;
        let dir = std::env::temp_dir().join(alloc::format!("earlymod-hook-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let ok = dir.join("10-ok");
        std::fs::write(
            &ok,
            "#!/bin/sh\necho \"stage $EARLYMOD_STAGE root $ROOT\"\necho err >&2\nexit 3\n",
        )
        .unwrap();
        let slow = dir.join("20-slow");
        std::fs::write(&slow, "#!/bin/sh\necho start\nsleep 30\necho never\n").unwrap();
        for f in [&ok, &slow] {
            std::fs::set_permissions(f, std::fs::Permissions::from_mode(0o755)).unwrap();
        }
        let env = Env {
            root: "UUID=1234",
            timeout_ms: 500,
        };
        let mut got: Vec<String> = Vec::new();
        let p = CPath::join(&[ok.to_str().unwrap()]).unwrap();
        run_one(&p, "pre-mount", &env, &mut |l| {
            got.push(crate::log::text(l))
        });
        let p = CPath::join(&[slow.to_str().unwrap()]).unwrap();
        let t0 = boot::now_us();
        run_one(&p, "pre-mount", &env, &mut |l| {
            got.push(crate::log::text(l))
        });
        assert!(boot::now_us() - t0 < 5_000_000);
        let ok = ok.to_str().unwrap();
        let slow = slow.to_str().unwrap();
        assert_eq!(
            got[0],
            alloc::format!("hook {ok}: stage pre-mount root UUID=1234")
        );
        assert_eq!(got[1], alloc::format!("hook {ok}: err"));
        assert!(got[2].starts_with(&alloc::format!("hook {ok}: exit status 3 after ")));
        assert_eq!(got[3], alloc::format!("hook {slow}: start"));
        assert_eq!(
            got[4],
            alloc::format!("hook {slow}: killed after 0 s (earlymod.hook_timeout=)")
        );
        assert_eq!(got.len(), 5);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
