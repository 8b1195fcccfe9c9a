//! Running a modprobe.d `install` command: `/bin/sh -c "CMD OPTIONS"`,
//! with `$CMDLINE_OPTS` set as kmod does.

use core::ffi::CStr;
use earlymod_core::load::LoadError;

/// Runs `command` through `/bin/sh -c` and waits for it.
pub fn run_install(command: &str, options: &str) -> Result<(), LoadError> {
    const MAX: usize = 4096;
    const VAR: &[u8] = b"CMDLINE_OPTS=";
    let mut cmd: heapless::Vec<u8, MAX> = heapless::Vec::new();
    let too_long = || LoadError::TooLong("install command", MAX - 1);
    cmd.extend_from_slice(command.as_bytes())
        .map_err(|_| too_long())?;
    cmd.push(0).map_err(|_| too_long())?;
    let mut env: heapless::Vec<u8, MAX> = heapless::Vec::new();
    let too_long = || LoadError::TooLong("install command options", MAX - 1 - VAR.len());
    env.extend_from_slice(VAR).map_err(|_| too_long())?;
    env.extend_from_slice(options.as_bytes())
        .map_err(|_| too_long())?;
    env.push(0).map_err(|_| too_long())?;
    let cmd =
        CStr::from_bytes_with_nul(&cmd).map_err(|_| LoadError::EmbeddedNul("install command"))?;
    let env = CStr::from_bytes_with_nul(&env)
        .map_err(|_| LoadError::EmbeddedNul("install command options"))?;
    let argv = [
        c"/bin/sh".as_ptr().cast::<u8>(),
        c"-c".as_ptr().cast(),
        cmd.as_ptr().cast(),
        core::ptr::null(),
    ];
    let envp = [
        env.as_ptr().cast::<u8>(),
        c"PATH=/usr/sbin:/usr/bin:/sbin:/bin".as_ptr().cast(),
        core::ptr::null(),
    ];
    let errno =
        |e: rustix::io::Errno| LoadError::Kernel(earlymod_core::load::Errno(e.raw_os_error()));
    // SAFETY: this process is single-threaded here; the child only calls
    // execve (async-signal-safe) or exits.
    match unsafe { rustix::runtime::kernel_fork() }.map_err(errno)? {
        rustix::runtime::Fork::Child(_) => {
            // SAFETY: argv and envp are NUL-terminated arrays of C strings
            // that outlive the call.
            let _ = unsafe { rustix::runtime::execve(c"/bin/sh", argv.as_ptr(), envp.as_ptr()) };
            rustix::runtime::exit_group(127)
        }
        rustix::runtime::Fork::ParentOf(pid) => loop {
            match rustix::process::waitpid(Some(pid), rustix::process::WaitOptions::empty()) {
                Err(rustix::io::Errno::INTR) => continue,
                Err(e) => return Err(errno(e)),
                Ok(None) => continue,
                Ok(Some((_, status))) => {
                    return match status.exit_status() {
                        Some(0) => Ok(()),
                        Some(code) => Err(LoadError::Command(code)),
                        None => Err(LoadError::Command(-1)),
                    };
                }
            }
        },
    }
}
