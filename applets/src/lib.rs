//! earlymod's applets over rustix, `no_std` and heap-free on the loading
//! path: `modprobe`, `insmod`, `rmmod`, `lsmod`. The static libc-free
//! binary (`src/bin/static.rs`) and the host binary both call [`dispatch`].
#![no_std]

pub mod command;
pub mod decode;
pub mod insmod;
pub mod kernel;
pub mod log;
pub mod lsmod;
pub mod moddir;
pub mod modprobe;
pub mod rmmod;
pub mod showconfig;
pub mod sys;

/// The applet for `argv[0]`'s base name, or `None`.
pub fn applet_of(argv0: &str) -> Option<&'static str> {
    let base = argv0.rsplit('/').next().unwrap_or(argv0);
    ["modprobe", "insmod", "rmmod", "lsmod", "modinfo"]
        .into_iter()
        .find(|a| *a == base)
}

/// Runs applet `applet` with `args` (without the applet word); `None` when
/// this library has no such applet (the caller may have more).
pub fn dispatch<'a>(
    applet: &str,
    args: &mut [&'a str],
    modprobe_options: Option<&'a str>,
) -> Option<i32> {
    Some(match applet {
        "modprobe" => modprobe::main("modprobe", args, modprobe_options),
        "insmod" => insmod::main("insmod", args),
        "rmmod" => rmmod::main("rmmod", args),
        "lsmod" => lsmod::main("lsmod"),
        _ => return None,
    })
}
