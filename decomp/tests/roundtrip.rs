//! Round trips against the machine's gzip, xz and zstd tools, on synthetic
//! data and on real kernel modules, plus truncation and corruption sweeps.

mod common;

use std::path::{Path, PathBuf};

use common::{decode_exact, ko_xz_under, tool_on_file, tool_on_stdin, xz_dc};

use earlymod_decompress::{
    Error, Format, MAX_OUTPUT, decompress_into, decompress_to_vec, decompressed_len, detect,
};

/// Deterministic, moderately compressible payload.
fn payload(len: usize, seed: u32) -> Vec<u8> {
    let mut x: u32 = 0x1234_5678 ^ seed;
    (0..len)
        .map(|i| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            if i % 7 == 0 {
                (x & 0xff) as u8
            } else {
                b"modinfo="[i % 8]
            }
        })
        .collect()
}

/// The compressor invocations every round trip uses: (format, tool, args,
/// whether the data carries an integrity check of the content).
const TOOLS: &[(Format, &str, &[&str], bool)] = &[
    (Format::Gzip, "gzip", &["-c", "-n"], true),
    (Format::Gzip, "gzip", &["-c", "-9"], true),
    (
        Format::Xz,
        "xz",
        &["-c", "--check=crc32", "--lzma2=dict=1MiB"],
        true,
    ),
    (Format::Xz, "xz", &["-c", "--check=crc64"], true),
    (Format::Xz, "xz", &["-c", "--check=none"], false),
    (Format::Xz, "xz", &["-c", "-9e"], true),
    (Format::Xz, "xz", &["-c", "--x86", "--lzma2=preset=6"], true),
    (Format::Zstd, "zstd", &["-c", "-q"], true),
    (Format::Zstd, "zstd", &["-c", "-q", "-19", "--check"], true),
    (
        Format::Zstd,
        "zstd",
        &["-c", "-q", "--no-content-size"],
        true,
    ),
    (Format::Zstd, "zstd", &["-c", "-q", "--no-check"], false),
];

struct Fixture {
    format: Format,
    label: String,
    data: Vec<u8>,
    checked: bool,
    known_size: bool,
}

fn fixtures(data: &[u8]) -> Vec<Fixture> {
    let mut v = Vec::new();
    let sha: &[(Format, &str, &[&str], bool)] = if cfg!(feature = "xz-sha256") {
        &[(Format::Xz, "xz", &["-c", "--check=sha256"], true)]
    } else {
        &[]
    };
    for &(format, tool, args, checked) in TOOLS.iter().chain(sha) {
        match tool_on_file(tool, args, data) {
            Some(z) => v.push(Fixture {
                format,
                label: format!("{tool} {}", args.join(" ")),
                data: z,
                checked,
                known_size: !args.contains(&"--no-content-size"),
            }),
            None => eprintln!("note: `{tool} {}` unavailable, skipped", args.join(" ")),
        }
    }
    v
}

fn check_round_trip(f: &Fixture, want: &[u8]) {
    let l = &f.label;
    assert_eq!(detect(&f.data), Some(f.format), "{l}");
    if f.known_size {
        assert_eq!(decompressed_len(&f.data), Ok(want.len()), "{l}");
        let got = decode_exact(&f.data).unwrap_or_else(|e| panic!("{l}: {e}"));
        assert!(got == want, "{l}: wrong output");
        // One byte short must fail cleanly.
        if !want.is_empty() {
            let mut out = vec![0u8; want.len() - 1];
            assert_eq!(
                decompress_into(&f.data, &mut out),
                Err(Error::OutputTooSmall),
                "{l}"
            );
        }
    } else {
        assert_eq!(
            decompressed_len(&f.data),
            Err(Error::UnknownSize(f.format)),
            "{l}"
        );
        // An oversized buffer works too.
        let mut out = vec![0u8; want.len() + 100];
        let n = decompress_into(&f.data, &mut out).unwrap_or_else(|e| panic!("{l}: {e}"));
        assert!(out[..n] == *want, "{l}: wrong output");
    }
    let v = decompress_to_vec(&f.data, MAX_OUTPUT).unwrap_or_else(|e| panic!("{l}: {e}"));
    assert!(v == want, "{l}: to_vec wrong output");
}

#[test]
fn detect_magic() {
    assert_eq!(detect(b"\x1f\x8b\x08"), Some(Format::Gzip));
    assert_eq!(detect(b"\xfd7zXZ\x00\x00"), Some(Format::Xz));
    assert_eq!(detect(b"\x28\xb5\x2f\xfd\x00"), Some(Format::Zstd));
    assert_eq!(detect(b"\x7fELF"), None);
    assert_eq!(detect(b""), None);
    assert_eq!(detect(b"\xfd7zX"), None);
    assert_eq!(decompressed_len(b"\x7fELF..."), Err(Error::NotCompressed));
    assert_eq!(
        decompress_into(b"\x7fELF...", &mut []),
        Err(Error::NotCompressed)
    );
}

#[test]
fn round_trip_synthetic() {
    for (len, seed) in [
        (0usize, 1u32),
        (1, 2),
        (1000, 3),
        (300_000, 4),
        (2_000_000, 5),
    ] {
        let data = payload(len, seed);
        for f in fixtures(&data) {
            check_round_trip(&f, &data);
        }
    }
}

#[test]
fn round_trip_zeros_and_noise() {
    let zeros = vec![0u8; 3 << 20];
    let mut x = 99u64;
    let noise: Vec<u8> = (0..200_000)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect();
    for data in [zeros, noise] {
        for f in fixtures(&data) {
            check_round_trip(&f, &data);
        }
    }
}

/// The first `kernel/fs/ext4/ext4.ko*` of a cached test kernel tree.
fn cached_module(tree: &str, rel: &str) -> Option<PathBuf> {
    let base = Path::new("/var/cache/earlymod")
        .join(tree)
        .join("root/lib/modules");
    for kver in std::fs::read_dir(&base).ok()?.flatten() {
        let p = kver.path().join("kernel").join(rel);
        if p.exists() {
            return Some(p);
        }
    }
    None
}

#[test]
fn round_trip_real_module() {
    let Some(path) = cached_module("k61", "fs/ext4/ext4.ko") else {
        eprintln!("note: /var/cache/earlymod/k61 ext4.ko absent, skipped");
        return;
    };
    let ko = std::fs::read(&path).unwrap();
    assert!(ko.starts_with(b"\x7fELF"));
    for f in fixtures(&ko) {
        check_round_trip(&f, &ko);
    }
}

#[test]
fn real_ko_xz_matches_xz_tool() {
    let Some(ext4) = cached_module("k612", "fs/ext4/ext4.ko.xz") else {
        eprintln!("note: /var/cache/earlymod/k612 ext4.ko.xz absent, skipped");
        return;
    };
    // ext4 plus every 40th module of the tree.
    let kernel = ext4.ancestors().nth(3).unwrap().to_path_buf();
    let all = ko_xz_under(&kernel);
    let mut pick: Vec<PathBuf> = all.iter().step_by(40).cloned().collect();
    pick.push(ext4);
    for p in &pick {
        let z = std::fs::read(p).unwrap();
        let want = xz_dc(p).unwrap_or_else(|| panic!("{}: xz -dc failed", p.display()));
        let got = decode_exact(&z).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
        assert!(got == want, "{}: differs from xz -dc", p.display());
    }
    eprintln!("decoded {} real .ko.xz files", pick.len());
}

#[test]
fn every_truncation_fails() {
    let data = payload(3000, 9);
    for f in fixtures(&data) {
        let z = &f.data;
        for cut in 0..z.len() {
            let t = &z[..cut];
            let _ = decompressed_len(t);
            let mut out = vec![0u8; 8192];
            let r = decompress_into(t, &mut out);
            match (f.format, r) {
                (_, Ok(n)) => panic!("{}: cut at {cut} decoded {n} bytes", f.label),
                (Format::Xz | Format::Zstd, Err(e)) if cut >= 6 => {
                    assert_eq!(e, Error::Truncated(f.format), "{} cut {cut}", f.label);
                }
                (_, Err(e)) => assert!(!e.to_string().is_empty()),
            }
            assert!(decompress_to_vec(t, 1 << 20).is_err());
        }
    }
}

#[test]
fn byte_flips_never_panic_and_checks_catch_them() {
    let data = payload(20_000, 11);
    for f in fixtures(&data) {
        let mut x: u32 = 0xdead_beef;
        let mut outcomes = [0usize; 2];
        for i in 0..1200 {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            let mut m = f.data.clone();
            let pos = if i < m.len().min(200) {
                i
            } else {
                (x as usize) % m.len()
            };
            m[pos] ^= 1 << (x % 8);
            if detect(&m) != Some(f.format) {
                continue;
            }
            let _ = decompressed_len(&m);
            let mut out = vec![0u8; data.len() + 4096];
            match decompress_into(&m, &mut out) {
                Ok(n) => {
                    outcomes[0] += 1;
                    if f.checked {
                        assert!(
                            out[..n] == data[..],
                            "{}: flip at {pos} decoded wrongly",
                            f.label
                        );
                    }
                }
                Err(e) => {
                    outcomes[1] += 1;
                    assert!(!e.to_string().is_empty());
                }
            }
        }
        eprintln!(
            "{}: {} flips decoded (harmless), {} rejected",
            f.label, outcomes[0], outcomes[1]
        );
        assert!(outcomes[1] > 0, "{}", f.label);
    }
}

#[test]
fn garbage_after_magic_never_panics() {
    let mut x: u32 = 7;
    for magic in [&b"\x1f\x8b"[..], b"\xfd7zXZ\x00", b"\x28\xb5\x2f\xfd"] {
        for len in 0..400usize {
            let mut v = magic.to_vec();
            for _ in 0..len {
                x ^= x << 13;
                x ^= x >> 17;
                x ^= x << 5;
                v.push(x as u8);
            }
            let _ = decompressed_len(&v);
            let mut out = vec![0u8; 4096];
            assert!(decompress_into(&v, &mut out).is_err() || len > 0);
            let _ = decompress_to_vec(&v, 1 << 16);
        }
        assert!(decompress_into(magic, &mut [0; 16]).is_err());
    }
}

fn cat(parts: &[&[u8]]) -> Vec<u8> {
    parts.concat()
}

#[test]
fn concatenation_and_padding() {
    let a = payload(5000, 21);
    let b = payload(7000, 22);
    let ab = cat(&[&a, &b]);
    for (tool, args) in [
        ("gzip", &["-c", "-n"][..]),
        ("xz", &["-c"][..]),
        ("zstd", &["-c", "-q"][..]),
    ] {
        let (Some(za), Some(zb)) = (tool_on_file(tool, args, &a), tool_on_file(tool, args, &b))
        else {
            continue;
        };
        let z = cat(&[&za, &zb]);
        assert_eq!(decompress_to_vec(&z, MAX_OUTPUT).unwrap(), ab, "{tool}");
        // Zero padding (a multiple of four for xz) after the last part.
        // (Only xz has padding between streams; gzip and zstd allow zeros
        // only at the very end.)
        let z = if tool != "xz" {
            cat(&[&za, &zb, &[0; 12]])
        } else {
            cat(&[&za, &[0; 8], &zb, &[0; 12]])
        };
        if tool != "gzip" {
            assert_eq!(decompressed_len(&z), Ok(ab.len()), "{tool}");
            assert_eq!(decode_exact(&z).unwrap(), ab, "{tool}");
        }
        assert_eq!(decompress_to_vec(&z, MAX_OUTPUT).unwrap(), ab, "{tool}");
        // Trailing garbage is an error.
        let z = cat(&[&za, b"junk"]);
        assert!(decompress_to_vec(&z, MAX_OUTPUT).is_err(), "{tool}");
    }
    // A skippable zstd frame between two frames (detection, like libkmod's,
    // needs the frame magic first).
    if let (Some(za), Some(zb)) = (
        tool_on_file("zstd", &["-c", "-q"], &a),
        tool_on_file("zstd", &["-c", "-q"], &b),
    ) {
        let z = cat(&[&za, b"\x50\x2a\x4d\x18\x03\x00\x00\x00abc", &zb]);
        assert_eq!(decode_exact(&z).unwrap(), ab);
        let z = cat(&[&za, b"\x50\x2a\x4d\x18\x09\x00\x00\x00abc"]);
        assert_eq!(decode_exact(&z), Err(Error::Truncated(Format::Zstd)));
    }
    // xz padding that is not a multiple of four.
    if let Some(za) = tool_on_file("xz", &["-c"], &a) {
        let z = cat(&[&za, &[0; 3]]);
        assert!(decompress_to_vec(&z, MAX_OUTPUT).is_err());
    }
}

#[test]
fn gzip_header_fields_and_trailer_checks() {
    let data = payload(10_000, 31);
    let Some(z) = tool_on_file("gzip", &["-c", "-n"], &data) else {
        return;
    };
    assert_eq!(z[3], 0, "gzip -n writes no optional fields");
    // Rebuild the member with FEXTRA, FNAME, FCOMMENT and FHCRC.
    let mut h = z[..10].to_vec();
    h[3] = 0x02 | 0x04 | 0x08 | 0x10;
    h.extend_from_slice(&[4, 0, b'A', b'B', 0, 0]);
    h.extend_from_slice(b"ext4.ko\0a comment\0");
    let hcrc = crc32fast::hash(&h) as u16;
    h.extend_from_slice(&hcrc.to_le_bytes());
    let full = cat(&[&h, &z[10..]]);
    assert_eq!(decode_exact(&full).unwrap(), data);
    let mut bad = full.clone();
    bad[h.len() - 1] ^= 1;
    assert_eq!(
        decode_exact(&bad),
        Err(Error::Corrupt(Format::Gzip, "header CRC16 mismatch"))
    );

    let n = z.len();
    let mut bad = z.clone();
    bad[n - 8] ^= 0xff;
    let e = decode_exact(&bad).unwrap_err();
    assert!(matches!(e, Error::GzipCrcMismatch { .. }), "{e}");
    assert!(e.to_string().starts_with("gzip CRC32 mismatch"), "{e}");
    let mut bad = z.clone();
    bad[n - 4] ^= 0x01;
    let mut out = vec![0u8; data.len() + 10];
    let e = decompress_into(&bad, &mut out).unwrap_err();
    assert!(matches!(e, Error::GzipSizeMismatch { .. }), "{e}");
    // ISIZE beyond what deflate can expand to, or beyond the cap.
    let mut bad = z.clone();
    bad[n - 4..].copy_from_slice(&0x3fff_ffffu32.to_le_bytes());
    assert!(matches!(
        decompressed_len(&bad),
        Err(Error::Corrupt(Format::Gzip, _))
    ));
    bad[n - 4..].copy_from_slice(&0x8000_0000u32.to_le_bytes());
    assert!(matches!(
        decompressed_len(&bad),
        Err(Error::Corrupt(Format::Gzip, _))
    ));
    // ... and the growing decoder then tells what is really wrong.
    let e = decompress_to_vec(&bad, MAX_OUTPUT).unwrap_err();
    assert!(matches!(e, Error::GzipSizeMismatch { .. }), "{e}");
    let e = decompress_to_vec(&z[..n / 2], MAX_OUTPUT).unwrap_err();
    assert_eq!(e, Error::Truncated(Format::Gzip));
    // Method other than deflate, reserved flags.
    let mut bad = z.clone();
    bad[2] = 7;
    assert!(matches!(
        decompressed_len(&bad),
        Err(Error::Unsupported(Format::Gzip, _))
    ));
    let mut bad = z.clone();
    bad[3] = 0x20;
    assert!(decompressed_len(&bad).is_err());
}

/// Recompute an xz stream's header and footer CRC32s after editing flags.
fn xz_set_check(z: &mut [u8], id: u8) {
    z[7] = id;
    let c = crc32fast::hash(&z[6..8]);
    z[8..12].copy_from_slice(&c.to_le_bytes());
    let n = z.len();
    z[n - 3] = id;
    let c = crc32fast::hash(&z[n - 8..n - 2]);
    z[n - 12..n - 8].copy_from_slice(&c.to_le_bytes());
}

#[test]
fn xz_checks() {
    let data = payload(100_000, 41);
    let Some(z) = tool_on_file("xz", &["-c", "--check=crc32", "--lzma2=dict=1MiB"], &data) else {
        return;
    };
    let mut out = vec![0u8; data.len()];
    assert_eq!(decompress_into(&z, &mut out), Ok(data.len()));
    assert_eq!(out, data);
    // A reserved check ID (2) with valid header and footer CRCs.
    let mut bad = z.clone();
    xz_set_check(&mut bad, 2);
    let e = decompressed_len(&bad).unwrap_err();
    assert_eq!(e, Error::XzCheckUnsupported(2));
    assert!(
        e.to_string().starts_with("xz check type unsupported"),
        "{e}"
    );
    // A damaged check value is caught, for each check type.
    let mut checks = vec![
        (&["-c", "--check=crc32"][..], "CRC32"),
        (&["-c", "--check=crc64"][..], "CRC64"),
    ];
    if cfg!(feature = "xz-sha256") {
        checks.push((&["-c", "--check=sha256"][..], "SHA-256"));
    } else {
        // Without the feature SHA-256 streams are refused, by name.
        let z = tool_on_file("xz", &["-c", "--check=sha256"], &data).unwrap();
        assert_eq!(decompressed_len(&z), Err(Error::XzCheckUnsupported(10)));
    }
    for (args, name) in checks {
        let z = tool_on_file("xz", args, &data).unwrap();
        // Layout: header 12, block (header, data, padding, check), index,
        // footer 12. The check sits right before the index.
        let footer = &z[z.len() - 12..];
        let index_size = (u32::from_le_bytes(footer[4..8].try_into().unwrap()) as usize + 1) * 4;
        let check_end = z.len() - 12 - index_size;
        let mut bad = z.clone();
        bad[check_end - 1] ^= 0x40;
        let e = decompress_into(&bad, &mut out).unwrap_err();
        assert_eq!(e, Error::XzCheckMismatch(name));
        assert_eq!(e.to_string(), format!("xz {name} check mismatch"));
    }
}

#[test]
fn zstd_header_checks() {
    let data = payload(200_000, 51);
    let Some(z) = tool_on_file("zstd", &["-c", "-q", "--check"], &data) else {
        return;
    };
    // Frame content size claiming more than the cap.
    let fhd = z[4];
    assert_eq!(fhd >> 6, 2, "a 4-byte FCS field is expected for 200 kB");
    let single = fhd & 0x20 != 0;
    let fcs_pos = 5 + usize::from(!single);
    let mut bad = z.clone();
    bad[fcs_pos..fcs_pos + 4].copy_from_slice(&0x7000_0000u32.to_le_bytes());
    assert_eq!(decompressed_len(&bad), Err(Error::TooLarge(Format::Zstd)));
    // Frame content size smaller than the content.
    let mut bad = z.clone();
    bad[fcs_pos..fcs_pos + 4].copy_from_slice(&1000u32.to_le_bytes());
    let mut out = vec![0u8; data.len()];
    assert!(decompress_into(&bad, &mut out).is_err());
    // Checksum.
    let mut bad = z.clone();
    let n = bad.len();
    bad[n - 1] ^= 0x80;
    let e = decompress_into(&bad, &mut out).unwrap_err();
    assert!(matches!(e, Error::ZstdChecksumMismatch { .. }), "{e}");
    // Reserved bit.
    let mut bad = z.clone();
    bad[4] |= 0x08;
    assert_eq!(
        decompressed_len(&bad),
        Err(Error::Corrupt(
            Format::Zstd,
            "reserved frame header bit set"
        ))
    );
    assert_eq!(
        Error::Corrupt(Format::Zstd, "x").to_string(),
        "corrupt zstd frame: x"
    );
}

#[test]
fn to_vec_limit() {
    let data = vec![0u8; 1 << 20];
    for f in fixtures(&data) {
        assert_eq!(
            decompress_to_vec(&f.data, 1000),
            Err(Error::TooLarge(f.format)),
            "{}",
            f.label
        );
    }
}

#[test]
fn error_messages() {
    assert_eq!(Error::OutputTooSmall.to_string(), "output buffer too small");
    assert_eq!(
        Error::Truncated(Format::Xz).to_string(),
        "truncated xz stream"
    );
    assert_eq!(
        Error::XzCheckUnsupported(5).to_string(),
        "xz check type unsupported (check ID 5)"
    );
    assert_eq!(
        Error::UnknownSize(Format::Zstd).to_string(),
        "zstd stream does not record its decompressed size"
    );
    assert_eq!(
        Error::TooLarge(Format::Gzip).to_string(),
        "gzip stream decompresses to more than 256 MiB"
    );
}

#[test]
fn inputs_beyond_the_bound_are_refused_unread() {
    // A sparse-file stand-in: the magic, then zeros past MAX_OUTPUT. calloc'd
    // pages stay untouched unless a decoder reads them.
    for (magic, format) in [
        (&[0x1f, 0x8b, 8, 0][..], Format::Gzip),
        (&[0xfd, b'7', b'z', b'X', b'Z', 0][..], Format::Xz),
        (&[0x28, 0xb5, 0x2f, 0xfd][..], Format::Zstd),
    ] {
        let mut data = vec![0u8; MAX_OUTPUT + 1];
        data[..magic.len()].copy_from_slice(magic);
        let want = Error::InputTooLarge(format);
        assert_eq!(decompressed_len(&data), Err(want));
        assert_eq!(decompress_to_vec(&data, MAX_OUTPUT), Err(want));
        assert_eq!(decompress_into(&data, &mut [0u8; 16]), Err(want));
        assert_eq!(
            Error::InputTooLarge(format).to_string(),
            format!("{format} file larger than 256 MiB: not a kernel module")
        );
    }
}

#[test]
fn measure_matches_the_data() {
    for len in [0usize, 1, 70_000, 300_000] {
        let data = payload(len, 77);
        for f in fixtures(&data) {
            assert_eq!(
                earlymod_decompress::measure(&f.data, MAX_OUTPUT),
                Ok(len),
                "{}",
                f.label
            );
            assert_eq!(
                earlymod_decompress::measure(&f.data, len.saturating_sub(1)).is_err(),
                len > 0,
                "{}",
                f.label
            );
        }
    }
    // zstd from a pipe records no content size: measured, then decoded.
    let data = payload(200_000, 78);
    if let Some(z) = tool_on_stdin("zstd", &["-c", "-q"], &data) {
        assert_eq!(decompressed_len(&z), Err(Error::UnknownSize(Format::Zstd)));
        assert_eq!(earlymod_decompress::measure(&z, MAX_OUTPUT), Ok(data.len()));
        assert_eq!(decompress_to_vec(&z, MAX_OUTPUT).unwrap(), data);
    }
}

/// A gzip ISIZE smaller than the stream (a lie, or the true size modulo
/// 2^32): the record is not trusted once the output overflows it; the
/// stream is measured, decoded, and its trailer found wrong.
#[test]
fn a_lying_gzip_isize_costs_only_the_true_size() {
    let data = payload(1 << 20, 79);
    let Some(mut z) = tool_on_file("gzip", &["-c"], &data) else {
        return;
    };
    let n = z.len();
    z[n - 4..].copy_from_slice(&4096u32.to_le_bytes());
    assert_eq!(decompressed_len(&z), Ok(4096));
    assert_eq!(earlymod_decompress::measure(&z, MAX_OUTPUT), Ok(data.len()));
    assert_eq!(
        decompress_to_vec(&z, MAX_OUTPUT),
        Err(Error::GzipSizeMismatch {
            expected: 4096,
            actual: data.len() as u32
        })
    );
}

/// Decompression bombs: 257 MiB of zeros, over the bound, through each
/// container with and without a size record. Refused from the record when
/// there is one; otherwise measured in constant memory up to the bound.
#[test]
fn bombs_are_refused() {
    let zeros = vec![0u8; MAX_OUTPUT + (1 << 20)];
    let cases: [(&str, &[&str], bool); 4] = [
        ("gzip", &["-c", "-1"], false),
        ("xz", &["-c", "-0", "-T1"], false),
        ("zstd", &["-c", "-q", "-1"], false),
        ("zstd", &["-c", "-q", "-1"], true),
    ];
    for (tool, args, from_pipe) in cases {
        let z = if from_pipe {
            tool_on_stdin(tool, args, &zeros)
        } else {
            tool_on_file(tool, args, &zeros)
        };
        let Some(z) = z else { continue };
        let format = detect(&z).unwrap();
        let want = Err(Error::TooLarge(format));
        assert_eq!(
            decompress_to_vec(&z, MAX_OUTPUT),
            want,
            "{tool} {from_pipe}"
        );
        assert_eq!(
            earlymod_decompress::measure(&z, MAX_OUTPUT).map(|_| ()),
            want.map(|_: Vec<u8>| ()),
            "{tool}"
        );
    }
}
