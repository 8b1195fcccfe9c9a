//! Our zstd decoder against ruzstd on arbitrary bytes: ours never panics,
//! measures what it decodes, and whenever ruzstd decodes a frame and
//! verifies its content checksum, ours gives the same bytes (unless the
//! frame header records a content size or window that the data breaks,
//! which ruzstd does not check).
#![no_main]

use earlymod_decompress::{Error, decompress_into, measure};
use libfuzzer_sys::fuzz_target;

const LIMIT: usize = 16 << 20;

fn ruzstd_verified(mut data: &[u8]) -> Option<Vec<u8>> {
    use ruzstd::decoding::{BlockDecodingStrategy, FrameDecoder};
    let mut dec = FrameDecoder::new();
    dec.init(&mut data).ok()?;
    dec.decode_blocks(&mut data, BlockDecodingStrategy::UptoBytes(LIMIT))
        .ok()?;
    if !dec.is_finished() || !data.is_empty() || dec.can_collect() > LIMIT {
        return None;
    }
    let sum = dec.get_checksum_from_data()?;
    (dec.get_calculated_checksum()? == sum).then(|| dec.collect().unwrap_or_default())
}

fuzz_target!(|data: &[u8]| {
    if !data.starts_with(&earlymod_decompress::ZSTD_MAGIC) {
        return;
    }
    let measured = measure(data, LIMIT);
    let mut out = vec![0u8; *measured.as_ref().unwrap_or(&0)];
    let ours = match measured {
        Ok(_) => decompress_into(data, &mut out).map(|n| &out[..n]),
        Err(e) => Err(e),
    };
    if let Ok(v) = ours {
        assert_eq!(v.len(), out.len(), "measure and decode disagree");
    }
    if let Some(want) = ruzstd_verified(data) {
        match ours {
            Ok(v) => assert!(v == &want[..], "ruzstd verified other bytes"),
            Err(Error::Corrupt(_, "content size differs from the frame header"))
            | Err(Error::Corrupt(_, "offset beyond the window"))
            | Err(Error::Corrupt(_, "block larger than its maximum size")) => {}
            Err(e) => panic!("ruzstd verified the frame, ours: {e}"),
        }
    }
});
