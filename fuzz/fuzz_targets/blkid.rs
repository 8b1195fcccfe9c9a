//! Superblock, partition-table and root= probes on arbitrary bytes.
#![no_main]

use earlymod_core::blkid::{RootSpec, partitions, probe_fs};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Some(i) = probe_fs(data) {
        let _ = i.has_label("root");
        let _ = i.uuid.matches("00000000-0000-0000-0000-000000000000");
    }
    partitions(data, &mut |p| {
        let _ = p.id.matches("1234abcd-01");
        let _ = p.has_name("root");
    });
    if let Ok(s) = core::str::from_utf8(&data[..data.len().min(256)]) {
        let _ = RootSpec::parse(s);
    }
});
