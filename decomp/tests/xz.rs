//! Our xz decoder against the machine's `xz` and against xz4rust (a port
//! of xz-embedded, the differential oracle): real kernel modules, every
//! filter, lc/lp/pb variants, multi-block streams, random corruption.

mod common;

use std::path::PathBuf;

use common::{K612_MODULES, decode_exact, ko_xz_under, tool_on_file, xz_dc};

use earlymod_decompress::{Error, decompress_into, decompressed_len};
use xz4rust::{XzDecoder, XzNextBlockResult};

fn xorshift(x: &mut u32) -> u32 {
    *x ^= *x << 13;
    *x ^= *x >> 17;
    *x ^= *x << 5;
    *x
}

/// Moderately compressible bytes with random stretches (so BCJ patterns
/// occur).
fn payload(len: usize, seed: u32) -> Vec<u8> {
    let mut x = 0x9e37_79b9 ^ seed;
    let mut v = Vec::with_capacity(len);
    while v.len() < len {
        let r = xorshift(&mut x);
        if r % 3 == 0 {
            // A random run.
            for _ in 0..(r >> 8) % 64 {
                v.push(xorshift(&mut x) as u8);
            }
        } else {
            // A repeat of earlier bytes, or text.
            let n = ((r >> 4) % 40) as usize + 2;
            if v.len() > 1000 {
                let from = v.len() - 1 - ((r >> 12) as usize % 1000);
                for i in 0..n {
                    v.push(v[from + i % (v.len() - from)]);
                }
            } else {
                v.extend(b"module_param(debug, int, 0644);\n".iter().take(n));
            }
        }
    }
    v.truncate(len);
    v
}

/// `xz args -c FILE` over `data`; None when xz is missing or refuses.
fn xz(args: &[&str], data: &[u8]) -> Option<Vec<u8>> {
    tool_on_file("xz", &[args, &["-c"]].concat(), data)
}

/// xz4rust, one stream after another with the padding between them.
fn oracle(z: &[u8]) -> Result<Vec<u8>, String> {
    let mut dec = XzDecoder::with_alloc_dict_size(1 << 16, 1 << 28);
    let mut out = Vec::new();
    let mut buf = vec![0u8; 1 << 16];
    let mut ip = 0usize;
    loop {
        dec.reset();
        loop {
            let input = &z[ip..];
            if input.is_empty() {
                return Err("truncated".into());
            }
            match dec.decode(input, &mut buf) {
                Ok(XzNextBlockResult::NeedMoreData(i, o)) => {
                    ip += i;
                    out.extend_from_slice(&buf[..o]);
                    if i == 0 && o == 0 {
                        return Err("no progress".into());
                    }
                }
                Ok(XzNextBlockResult::EndOfStream(i, o)) => {
                    ip += i;
                    out.extend_from_slice(&buf[..o]);
                    break;
                }
                Err(e) => return Err(format!("{e:?}")),
            }
            if out.len() > 1 << 28 {
                return Err("too large".into());
            }
        }
        let rest = &z[ip..];
        let zeros = rest.iter().position(|&b| b != 0).unwrap_or(rest.len());
        if zeros % 4 != 0 {
            return Err("padding".into());
        }
        ip += zeros;
        if ip == z.len() {
            return Ok(out);
        }
    }
}

/// Every `.ko.xz` of the cached 6.12 trees.
fn modules() -> Vec<PathBuf> {
    let Ok(rd) = std::fs::read_dir(K612_MODULES) else {
        return Vec::new();
    };
    rd.flatten()
        .flat_map(|kver| ko_xz_under(&kver.path().join("kernel")))
        .collect()
}

/// Every 20th module of 6.12 plus the 10 largest: ours == `xz -dc` ==
/// xz4rust.
#[test]
fn kernel_modules_match_xz_and_xz4rust() {
    let all = modules();
    if all.is_empty() {
        eprintln!("note: /var/cache/earlymod/k612 absent, skipped");
        return;
    }
    let mut pick: Vec<PathBuf> = all.iter().step_by(20).cloned().collect();
    let mut by_size = all.clone();
    by_size.sort_by_key(|p| std::cmp::Reverse(std::fs::metadata(p).unwrap().len()));
    pick.extend(by_size.into_iter().take(10));
    let mut bytes = 0;
    for p in &pick {
        let z = std::fs::read(p).unwrap();
        let want = xz_dc(p).expect("xz -dc");
        let got = decode_exact(&z).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
        assert!(got == want, "{}: differs from xz -dc", p.display());
        let theirs = oracle(&z).unwrap_or_else(|e| panic!("{}: xz4rust: {e}", p.display()));
        assert!(theirs == want, "{}: xz4rust differs", p.display());
        bytes += got.len();
    }
    eprintln!(
        "{} of {} modules, {bytes} bytes decoded",
        pick.len(),
        all.len()
    );
}

/// A few decompressed modules (or synthetic data) recompressed with the
/// settings that matter: kbuild's, presets, multi-block, lc/lp/pb.
#[test]
fn encoder_settings() {
    let mut inputs = vec![payload(700_000, 1)];
    let all = modules();
    for name in ["/ext4.ko.xz", "/crc16.ko.xz", "/snd-hda-codec.ko.xz"] {
        if let Some(p) = all.iter().find(|p| p.to_str().unwrap().ends_with(name)) {
            inputs.push(xz_dc(p).expect("xz -dc"));
        }
    }
    let settings: &[&[&str]] = &[
        &["--lzma2=dict=1MiB", "--check=crc32"],
        &["-9e"],
        &["-0"],
        &["-1e", "--check=none"],
        &["--block-size=65536"],
        &["--block-size=100000", "--check=crc64", "-T2"],
        &["--lzma2=lc=0,lp=4,pb=0"],
        &["--lzma2=lc=4,lp=0,pb=4"],
        &["--lzma2=lc=1,lp=3,pb=1,dict=4KiB"],
        &["--lzma2=lc=0,lp=0,pb=0,mode=fast,nice=8"],
        &["--lzma2=preset=6,lc=2,lp=2,pb=3,mf=bt2,nice=273"],
        &["--format=xz", "--lzma2=dict=64KiB,depth=1000"],
    ];
    for data in &inputs {
        for s in settings {
            let Some(z) = xz(s, data) else {
                panic!("xz {s:?} failed");
            };
            let got = decode_exact(&z).unwrap_or_else(|e| panic!("{s:?}: {e}"));
            assert!(got == *data, "{s:?}: wrong output");
            assert!(oracle(&z).unwrap() == *data, "{s:?}: xz4rust");
        }
    }
}

/// Each BCJ filter and delta, through `xz`, against the original and
/// xz4rust (which knows no start offsets).
#[test]
fn filters_round_trip() {
    let mut x86 = payload(300_000, 7);
    if let Some(p) = modules().iter().find(|p| p.ends_with("crc16.ko.xz")) {
        x86 = xz_dc(p).expect("xz -dc");
        x86.extend(payload(100_000, 8));
    }
    let mixed = payload(400_000, 9);
    let cases: &[(&str, bool)] = &[
        ("--x86", true),
        ("--x86=start=4096", true),
        ("--arm", false),
        ("--arm=start=64", false),
        ("--armthumb", false),
        ("--arm64", false),
        ("--arm64=start=1048576", false),
        ("--powerpc", false),
        ("--powerpc=start=256", false),
        ("--sparc", false),
        ("--sparc=start=8", false),
        ("--ia64", false),
        ("--ia64=start=4096", false),
        ("--delta=dist=1", false),
        ("--delta=dist=4", false),
        ("--delta=dist=256", false),
    ];
    for &(filter, real) in cases {
        for data in [
            if real { &x86 } else { &mixed },
            &payload(3, 1),
            &Vec::new(),
        ] {
            let Some(z) = xz(&[filter, "--lzma2=preset=6", "--check=crc64"], data) else {
                eprintln!("note: xz {filter} unavailable, skipped");
                continue;
            };
            let got = decode_exact(&z).unwrap_or_else(|e| panic!("{filter}: {e}"));
            assert!(got == *data, "{filter}: wrong output");
            match oracle(&z) {
                Ok(v) => assert!(v == *data, "{filter}: xz4rust differs"),
                Err(e) => assert!(filter.contains("start"), "{filter}: xz4rust: {e}"),
            }
            // The filter really changed the data (so it was exercised).
            if data.len() > 1000 {
                let plain = xz(&["--lzma2=preset=6", "--check=crc64"], data).unwrap();
                assert_ne!(z.len(), plain.len(), "{filter}: no effect?");
            }
        }
    }
    // Two filters before LZMA2.
    let z = xz(&["--delta=dist=2", "--x86", "--lzma2"], &x86).unwrap();
    assert!(decode_exact(&z).unwrap() == x86);
}

/// Random damage to valid streams: never a panic; when xz4rust decodes the
/// damaged stream, ours does too, to the same bytes.
#[test]
fn corruption_matches_xz4rust() {
    let data = payload(30_000, 3);
    let settings: &[&[&str]] = &[
        &["--check=none"],
        &["--check=crc32", "--lzma2=dict=1MiB"],
        &["--check=crc64", "--block-size=8000"],
        &["--check=none", "--lzma2=lc=0,lp=4,pb=0"],
        &["--check=none", "-0"],
        &["--check=none", "--x86", "--lzma2"],
        &["--check=none", "--delta=dist=3", "--lzma2"],
    ];
    let mut x = 0x1234_5678u32;
    let (mut same, mut both_fail, mut only_ours_fail) = (0, 0, 0);
    // Noise is stored in uncompressed LZMA2 chunks: damage there decodes.
    let mut y = 5u32;
    let noise: Vec<u8> = (0..20_000).map(|_| xorshift(&mut y) as u8).collect();
    let noisy: &[&str] = &["--check=none"];
    for (s, data) in settings
        .iter()
        .map(|s| (s, &data))
        .chain([(&noisy, &noise)])
    {
        let z = xz(s, data).unwrap();
        for i in 0..1500 {
            let mut m = z.clone();
            for _ in 0..1 + i % 3 {
                let r = xorshift(&mut x);
                let pos = r as usize % m.len();
                if r & 0x8000_0000 != 0 {
                    m[pos] ^= 1 << (r % 8);
                } else {
                    m[pos] = (r >> 8) as u8;
                }
            }
            let mut out = vec![0u8; data.len() + 64];
            let r = decompress_into(&m, &mut out);
            match (oracle(&m), r) {
                (Ok(v), Ok(n)) => {
                    assert!(out[..n] == v[..], "{s:?} #{i}: output differs");
                    same += 1;
                }
                (Ok(v), Err(e)) => {
                    // Only a lie in the index about the size may refuse
                    // what xz4rust accepts (it checks the index only after
                    // the data).
                    assert!(
                        v.len() > out.len() || matches!(e, Error::OutputTooSmall),
                        "{s:?} #{i}: xz4rust decodes {} bytes, ours fails: {e}",
                        v.len()
                    );
                    only_ours_fail += 1;
                }
                (Err(_), Ok(_)) | (Err(_), Err(_)) => both_fail += 1,
            }
        }
    }
    eprintln!(
        "{same} decoded alike, {both_fail} refused by xz4rust, {only_ours_fail} only by ours"
    );
}

/// Truncation and multi-stream with padding, block-level.
#[test]
fn multi_stream_and_cuts() {
    let a = payload(50_000, 11);
    let b = payload(20_000, 12);
    let za = xz(&["--block-size=16384", "--check=crc32"], &a).unwrap();
    let zb = xz(&["--check=none"], &b).unwrap();
    let z = [&za[..], &[0; 4], &zb, &[0; 8]].concat();
    let want = [&a[..], &b].concat();
    assert!(decode_exact(&z).unwrap() == want);
    assert!(oracle(&z).unwrap() == want);
    for cut in 0..z.len() {
        // A cut at a stream boundary leaves a valid file.
        if let Ok(v) = decode_exact(&z[..cut]) {
            assert!(v == a || v == want, "cut at {cut}");
        }
    }
}

/// Decode throughput, ours against xz4rust, over about 100 real modules
/// (every 42nd of 6.12), as the loader decodes: exactly sized output, a
/// fixed dictionary for xz4rust. Run in release mode:
/// `cargo test --release -p earlymod-decompress --test xz -- --ignored --nocapture throughput`
#[test]
#[ignore]
fn throughput() {
    use std::time::Instant;
    let all = modules();
    let files: Vec<Vec<u8>> = all
        .iter()
        .step_by(42)
        .map(|p| std::fs::read(p).unwrap())
        .collect();
    if files.is_empty() {
        return;
    }
    let sizes: Vec<usize> = files.iter().map(|z| decompressed_len(z).unwrap()).collect();
    let total: usize = sizes.iter().sum();
    let mut dict = vec![0u8; 1 << 20];
    let mut best = [f64::MAX; 2];
    for _ in 0..5 {
        let t = Instant::now();
        for (z, &n) in files.iter().zip(&sizes) {
            let mut out = vec![0u8; n];
            assert_eq!(decompress_into(z, &mut out), Ok(n));
        }
        best[0] = best[0].min(t.elapsed().as_secs_f64());
        let t = Instant::now();
        for (z, &n) in files.iter().zip(&sizes) {
            let mut out = vec![0u8; n];
            let mut dec = XzDecoder::with_fixed_size_dict(&mut dict);
            let r = dec.decode(z, &mut out).unwrap();
            assert!(r.is_end_of_stream() && r.output_produced() == n);
        }
        best[1] = best[1].min(t.elapsed().as_secs_f64());
    }
    let mb = total as f64 / 1e6;
    // The same data as one plain `xz` stream: CRC64, 8 MiB dictionary.
    let all: Vec<u8> = files
        .iter()
        .flat_map(|z| decode_exact(z).unwrap())
        .collect();
    let z = xz(&["-6", "--check=crc64"], &all).unwrap();
    let mut big = vec![0u8; 8 << 20];
    let mut crc64_best = [f64::MAX; 2];
    for _ in 0..3 {
        let mut out = vec![0u8; all.len()];
        let t = Instant::now();
        assert_eq!(decompress_into(&z, &mut out), Ok(all.len()));
        crc64_best[0] = crc64_best[0].min(t.elapsed().as_secs_f64());
        let t = Instant::now();
        let mut dec = XzDecoder::with_fixed_size_dict(&mut big);
        let r = dec.decode(&z, &mut out).unwrap();
        assert!(r.is_end_of_stream());
        crc64_best[1] = crc64_best[1].min(t.elapsed().as_secs_f64());
    }
    eprintln!(
        "one -6 CRC64 stream of it: ours {:.1} MB/s, xz4rust {:.1} MB/s, ratio {:.3}",
        mb / crc64_best[0],
        mb / crc64_best[1],
        crc64_best[0] / crc64_best[1]
    );
    eprintln!(
        "{} modules, {mb:.1} MB: ours {:.1} MB/s, xz4rust {:.1} MB/s, time ratio ours/xz4rust {:.3}",
        files.len(),
        mb / best[0],
        mb / best[1],
        best[0] / best[1]
    );
}
