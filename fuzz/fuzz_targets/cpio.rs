//! Initramfs reader on arbitrary bytes (bounded decompression), and the
//! writer → reader round trip on entries made from the input.
#![no_main]

use earlymod_initrd::cpio::{Entry, read_image, read_image_with_limit, write_newc};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = read_image_with_limit(data, 16 << 20);
    // Round trip: split the input into (name, contents) pairs.
    let mut entries = Vec::new();
    for (i, chunk) in data.chunks(37).enumerate().take(32) {
        let path = format!("d{}/f{i}", chunk.first().copied().unwrap_or(0) % 4);
        entries.push(Entry::file(path, 0o644, chunk.to_vec()));
    }
    entries.sort_by(|a, b| a.path.cmp(&b.path));
    let mut dirs: Vec<Entry> = (0..4).map(|d| Entry::dir(format!("d{d}"), 0o755)).collect();
    dirs.extend(entries);
    let mut out = Vec::new();
    if write_newc(&dirs, 0, 1, &mut out).is_ok() {
        let back = read_image(&out).expect("our own archive reads back");
        assert_eq!(back.len(), dirs.len());
        for (a, b) in dirs.iter().zip(&back) {
            assert_eq!(a.path, b.path);
        }
    }
});
