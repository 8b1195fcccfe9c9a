//! modinfo's ELF section reader on arbitrary bytes (the applets crate is
//! not linked: its origin start-up would clash with libFuzzer's main).
#![no_main]

#[path = "../../applets/src/modinfo/elf.rs"]
#[allow(dead_code)]
mod elf;

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(e) = elf::Elf::parse(data) {
        for name in [
            &b".modinfo"[..],
            b".gnu.linkonce.this_module",
            b"__versions",
        ] {
            if let Some(s) = e.section(name) {
                let _ = elf::split_strings(s).count();
            }
        }
    }
});
