//! The userspace module decoders (gzip, xz, zstd) on arbitrary bytes, with
//! a 16 MiB output bound (a bomb must stop there, not exhaust memory).
#![no_main]

use earlymod_decompress::{decompress_into, decompress_to_vec, decompressed_len};
use libfuzzer_sys::fuzz_target;

const LIMIT: usize = 16 << 20;

fuzz_target!(|data: &[u8]| {
    let _ = decompress_to_vec(data, LIMIT);
    // The heap-free path, as the static binary sizes it from the headers.
    if let Ok(n @ 0..=LIMIT) = decompressed_len(data) {
        let mut out = vec![0u8; n];
        let _ = decompress_into(data, &mut out);
    }
});
