//! modprobe.d and kernel command-line parsers: the input is split at the
//! first NUL into a config file and a command line.
#![no_main]

use earlymod_core::cmdline::{BootParams, apply_kernel_cmdline, words};
use earlymod_core::config::Config;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let (conf, cmdline) = match data.iter().position(|&b| b == 0) {
        Some(i) => (&data[..i], &data[i + 1..]),
        None => (data, &[][..]),
    };
    let mut conf = conf.to_vec();
    let mut cmd = cmdline.to_vec();
    let mut cfg = Config::new();
    let _ = cfg.parse_file(&mut conf, &mut |_| {});
    let _ = apply_kernel_cmdline(&mut cfg, &mut cmd, &mut |_| {});
    for name in ["a", "snd_hda_intel", "x"] {
        let _ = cfg
            .softdep_for(name)
            .map(|s| (s.pre().count(), s.post().count()));
        let _ = cfg.is_blacklisted(name);
        let _ = cfg.install_for(name);
    }
    if let Ok(text) = core::str::from_utf8(cmdline) {
        let _ = BootParams::parse(text);
        let _ = words(text).count();
    }
});
