//! The userspace module decoders (gzip, xz, zstd) on arbitrary bytes, with
//! a 16 MiB output bound (a bomb must stop there, not exhaust memory).
#![no_main]

use earlymod_decompress::{decompress_into, decompress_to_vec, decompressed_len, scratch_len};
use libfuzzer_sys::fuzz_target;

const LIMIT: usize = 16 << 20;

fuzz_target!(|data: &[u8]| {
    let _ = decompress_to_vec(data, LIMIT);
    // The heap-free path, as the static binary sizes it from the headers.
    let sizes = (decompressed_len(data), scratch_len(data));
    if let (Ok(n @ 0..=LIMIT), Ok(s @ 0..=LIMIT)) = sizes {
        let mut out = vec![0u8; n];
        let mut scratch = vec![0u8; s];
        let _ = decompress_into(data, &mut out, &mut scratch);
    }
});
