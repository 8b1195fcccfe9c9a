//! Our zstd decoder against the `zstd` tool and `ruzstd` (the oracle): real
//! kernel modules compressed at many settings must come back byte for byte
//! from both, and mutated frames must never make ours panic, nor fail where
//! ruzstd decodes and verifies the content checksum.
//!
//! `cargo test --release -p earlymod-decompress --test zstd_diff -- --ignored
//! --nocapture throughput` compares decoding speeds.

mod common;

use std::path::{Path, PathBuf};

use common::{K612_MODULES, ko_xz_under, tool_on_file, tool_on_stdin, xz_dc};

use earlymod_decompress::{Error, decompress_into, decompress_to_vec, decompressed_len, measure};

/// Every `.ko.xz` of the cached 6.12 tree, sorted.
fn module_paths() -> Vec<PathBuf> {
    let mut out = ko_xz_under(Path::new(K612_MODULES));
    out.sort();
    out
}

/// `n` modules spread over the tree (by path), decompressed with `xz -dc`,
/// none above `max` bytes compressed.
fn modules(n: usize, max: u64) -> Vec<(String, Vec<u8>)> {
    let all: Vec<PathBuf> = module_paths()
        .into_iter()
        .filter(|p| p.metadata().is_ok_and(|m| m.len() <= max))
        .collect();
    if all.is_empty() {
        return Vec::new();
    }
    let step = (all.len() / n).max(1);
    all.iter()
        .step_by(step)
        .take(n)
        .filter_map(|p| {
            let name = p.file_name().unwrap().to_string_lossy().into_owned();
            Some((name, xz_dc(p)?))
        })
        .collect()
}

/// `zstd -c -q args` on `data` (through a file, so that the content size
/// is recorded, unless `pipe`); None without the tool.
fn zstd(args: &[&str], data: &[u8], pipe: bool) -> Option<Vec<u8>> {
    let args = [&["-c", "-q"], args].concat();
    if pipe {
        tool_on_stdin("zstd", &args, data)
    } else {
        tool_on_file("zstd", &args, data)
    }
}

/// ruzstd's decoding of every frame, and whether every frame carried a
/// content checksum that matched; None when ruzstd refuses the data.
fn oracle(mut data: &[u8]) -> Option<(Vec<u8>, bool)> {
    use ruzstd::decoding::errors::{FrameDecoderError, ReadFrameHeaderError};
    use ruzstd::decoding::{BlockDecodingStrategy, FrameDecoder};
    let mut out = Vec::new();
    let mut verified = true;
    let mut frames = 0;
    while !data.is_empty() {
        if frames > 0 && data.iter().all(|&b| b == 0) {
            break;
        }
        let mut dec = FrameDecoder::new();
        match dec.init(&mut data) {
            Ok(()) => {}
            Err(FrameDecoderError::ReadFrameHeaderError(ReadFrameHeaderError::SkipFrame {
                length,
                ..
            })) => {
                data = data.get(length as usize..)?;
                continue;
            }
            Err(_) => return None,
        }
        dec.decode_blocks(&mut data, BlockDecodingStrategy::All)
            .ok()?;
        if !dec.is_finished() {
            return None;
        }
        out.extend(dec.collect().unwrap_or_default());
        match (dec.get_checksum_from_data(), dec.get_calculated_checksum()) {
            (Some(a), Some(b)) if a == b => {}
            (Some(_), _) => return None,
            _ => verified = false,
        }
        frames += 1;
    }
    (frames > 0).then_some((out, verified))
}

/// Ours, every way: to a Vec, measured, into an exact buffer when the size
/// is recorded (the three must agree).
fn ours(z: &[u8]) -> Result<Vec<u8>, Error> {
    let v = decompress_to_vec(z, 64 << 20);
    if let Ok(v) = &v {
        assert_eq!(measure(z, 64 << 20), Ok(v.len()));
    }
    if let Ok(n @ 0..=0x400_0000) = decompressed_len(z) {
        let mut out = vec![0u8; n];
        let r = decompress_into(z, &mut out).map(|k| out[..k].to_vec());
        if let (Ok(a), Ok(b)) = (&r, &v) {
            assert_eq!(a, b);
        }
    }
    v
}

const SETTINGS: &[&[&str]] = &[
    &["-1"],
    &["-3"],
    &["-9", "--no-check"],
    &["--fast=5"],
    &["--long=27"],
    // A 1 KiB window: blocks of at most 1 KiB, offsets near the window.
    &["-12", "--zstd=wlog=10"],
    &["-6", "--zstd=wlog=14,slog=1"],
];

#[test]
fn real_modules_match_the_tool_and_ruzstd() {
    let mods = modules(40, 400_000);
    if mods.is_empty() || zstd(&[], b"x", false).is_none() {
        return;
    }
    let mut cases = 0;
    let check = |name: &str, args: &[&str], data: &[u8], z: &[u8]| {
        let got = ours(z).unwrap_or_else(|e| panic!("{name} {args:?}: {e}"));
        assert!(got == data, "{name} {args:?}: output differs");
        let (r, _) = oracle(z).unwrap_or_else(|| panic!("{name} {args:?}: ruzstd failed"));
        assert!(r == got, "{name} {args:?}: ruzstd differs");
    };
    for (i, (name, data)) in mods.iter().enumerate() {
        let mut settings: Vec<&[&str]> = SETTINGS.to_vec();
        // The slow levels on a quarter of the modules.
        if i % 4 == 0 {
            settings.extend([&["-19"][..], &["--ultra", "-22", "--long=27"]]);
        }
        for args in settings {
            let z = zstd(args, data, false).unwrap();
            check(name, args, data, &z);
            cases += 1;
        }
        // From a pipe: no content size; ours must measure.
        let z = zstd(&["-5"], data, true).unwrap();
        assert!(matches!(decompressed_len(&z), Err(Error::UnknownSize(_))));
        check(name, &["-5", "(pipe)"], data, &z);
        cases += 1;
    }
    // Several modules as consecutive frames, a skippable frame between.
    let mut cat = Vec::new();
    let mut want = Vec::new();
    for (i, (_, data)) in mods.iter().take(6).enumerate() {
        cat.extend(zstd(&["-3"], data, i % 2 == 0).unwrap());
        cat.extend([0x50, 0x2a, 0x4d, 0x18, 3, 0, 0, 0, 1, 2, 3]);
        want.extend_from_slice(data);
    }
    check("six modules", &["-3"], &want, &cat);
    eprintln!("{} modules, {} cases", mods.len(), cases + 1);
}

/// Deterministic xorshift.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

/// The frame header's length (the first frame's).
fn header_len(z: &[u8]) -> usize {
    let fhd = z[4];
    let single = fhd & 0x20 != 0;
    let fcs = [usize::from(single), 2, 4, 8][usize::from(fhd >> 6)];
    5 + usize::from(!single) + [0, 1, 2, 4][usize::from(fhd & 3)] + fcs
}

#[test]
fn mutated_frames_never_panic_and_agree_with_ruzstd() {
    let mods = modules(8, 60_000);
    if mods.is_empty() || zstd(&[], b"x", false).is_none() {
        return;
    }
    let mut rng = Rng(0x2545_f491_4f6c_dd1d);
    let (mut tried, mut ours_ok, mut both_ok) = (0, 0, 0);
    for (i, (name, data)) in mods.iter().enumerate() {
        let level = ["-1", "-3", "-19", "--fast=3"][i % 4];
        let z = zstd(&[level, "--check"], data, false).unwrap();
        let hl = header_len(&z);
        for _ in 0..400 {
            let mut m = z.clone();
            let at = rng.below(m.len());
            match rng.below(6) {
                0 => m[at] ^= 1 << rng.below(8),
                1 => m[at] = rng.next() as u8,
                2 => m.truncate(at),
                3 => {
                    m.remove(at);
                }
                4 => m.insert(at, rng.next() as u8),
                _ => {
                    for _ in 0..4 {
                        let k = rng.below(m.len());
                        m[k] ^= rng.next() as u8;
                    }
                }
            }
            tried += 1;
            let got = ours(&m);
            ours_ok += usize::from(got.is_ok());
            let flag = m.get(4).is_some_and(|&f| f & 4 != 0);
            if let Some((r, true)) = oracle(&m) {
                both_ok += 1;
                match &got {
                    Ok(v) => assert!(*v == r, "{name}: mutation at {at}: outputs differ"),
                    // A header change (window, content size) that ruzstd
                    // does not check but we do.
                    Err(e) if at < hl => eprintln!("{name}: header mutation at {at}: {e}"),
                    Err(e) => panic!("{name}: mutation at {at}: ruzstd verified, ours: {e}"),
                }
            }
            if let (Ok(v), true, true) = (&got, flag, at >= hl) {
                assert!(
                    *v == *data,
                    "{name}: mutation at {at} decoded to other data"
                );
            }
        }
    }
    eprintln!("{tried} mutations: ours decoded {ours_ok}, ruzstd verified {both_ok}");
}

/// Throughput over ~100 real modules compressed with `zstd -19`: ours
/// against ruzstd (run with --release; `CARGO_PROFILE_RELEASE_OPT_LEVEL`
/// to compare opt-levels).
#[test]
#[ignore]
fn throughput() {
    use std::time::Instant;
    let mods = modules(100, 2_000_000);
    let frames: Vec<(Vec<u8>, usize)> = mods
        .iter()
        .map(|(_, d)| (zstd(&["-19"], d, false).unwrap(), d.len()))
        .collect();
    let total: usize = frames.iter().map(|f| f.1).sum();
    let zbytes: usize = frames.iter().map(|f| f.0.len()).sum();
    let mut out = vec![0u8; frames.iter().map(|f| f.1).max().unwrap_or(0)];
    let rounds = 5;
    let mut best = [f64::MAX; 2];
    for _ in 0..rounds {
        let t = Instant::now();
        for (z, n) in &frames {
            assert_eq!(decompress_into(z, &mut out), Ok(*n));
        }
        best[0] = best[0].min(t.elapsed().as_secs_f64());
        let t = Instant::now();
        for (z, n) in &frames {
            let mut dec = ruzstd::decoding::FrameDecoder::new();
            let k = dec.decode_all(z, &mut out).unwrap();
            assert_eq!(k, *n);
        }
        best[1] = best[1].min(t.elapsed().as_secs_f64());
    }
    let mb = total as f64 / 1e6;
    eprintln!(
        "{} modules, {:.1} MB ({:.1} MB compressed): ours {:.0} MB/s, ruzstd {:.0} MB/s, ours takes {:.2}x ruzstd's time",
        frames.len(),
        mb,
        zbytes as f64 / 1e6,
        mb / best[0],
        mb / best[1],
        best[0] / best[1]
    );
}
