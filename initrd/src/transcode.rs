//! Storing each module in a form the target kernel loads by itself: kept as
//! is when it is plain ELF or compressed with the one algorithm the kernel
//! decompresses (`CONFIG_MODULE_DECOMPRESS` + `CONFIG_MODULE_COMPRESS_*`),
//! otherwise decompressed to a plain `.ko` — unless the caller keeps the
//! compression for earlymod's userspace decoders.

use std::path::Path;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

use earlymod::modinfo::module_info;
use earlymod_decompress::{Format, MAX_OUTPUT, decompress_to_vec, detect};

use crate::arch::{self, Machine};

/// The module decompression a kernel config enables: the algorithm, or
/// `None` when the kernel only takes plain modules.
pub fn kernel_decompression(config: &str) -> Option<Format> {
    let on = |sym: &str| {
        config
            .lines()
            .any(|l| l.trim().strip_suffix("=y") == Some(sym))
    };
    if !on("CONFIG_MODULE_DECOMPRESS") {
        return None;
    }
    [
        ("CONFIG_MODULE_COMPRESS_GZIP", Format::Gzip),
        ("CONFIG_MODULE_COMPRESS_XZ", Format::Xz),
        ("CONFIG_MODULE_COMPRESS_ZSTD", Format::Zstd),
    ]
    .into_iter()
    .find(|(sym, _)| on(sym))
    .map(|(_, f)| f)
}

/// The largest LZMA2 dictionary kept for the in-kernel xz decoder (what
/// kbuild uses; larger dictionaries are decompressed to be safe).
pub const XZ_MAX_DICT: u64 = 1 << 20;

/// Why an xz module is not fit for the in-kernel decoder, or `None` when it
/// is: CRC32 or no check, one LZMA2 filter, dictionary ≤ [`XZ_MAX_DICT`].
pub fn xz_unfit_for_kernel(data: &[u8]) -> Option<String> {
    xz_fit_for_kernel(data, XZ_MAX_DICT).err()
}

/// Why an xz firmware file is not fit for the kernel's firmware loader, or
/// `None` when it is: as [`xz_unfit_for_kernel`], any dictionary size (the
/// loader allocates what the stream asks for; linux-firmware's `xz`
/// defaults use 8 MiB).
pub fn xz_unfit_for_firmware(data: &[u8]) -> Option<String> {
    xz_fit_for_kernel(data, u64::MAX).err()
}

fn xz_fit_for_kernel(data: &[u8], max_dict: u64) -> Result<(), String> {
    let short = || "truncated xz header".to_string();
    let flags = data.get(6..8).ok_or_else(short)?;
    let check = flags[1] & 0x0f;
    if flags[0] != 0 || !matches!(check, 0 | 1) {
        let name = match check {
            4 => "CRC64",
            10 => "SHA-256",
            _ => "unknown",
        };
        return Err(format!(
            "xz check {name} (the kernel's decoder takes CRC32)"
        ));
    }
    let size = (usize::from(*data.get(12).ok_or_else(short)?) + 1) * 4;
    let hdr = data.get(12..12 + size).ok_or_else(short)?;
    let bflags = hdr[1];
    if bflags & 0x03 != 0 {
        return Err("xz filter chain other than LZMA2 alone (e.g. BCJ)".into());
    }
    let mut pos = 2;
    let mut varint = || -> Result<u64, String> {
        let mut v = 0u64;
        for i in 0..9 {
            let b = *hdr.get(pos).ok_or_else(short)?;
            pos += 1;
            v |= u64::from(b & 0x7f) << (7 * i);
            if b & 0x80 == 0 {
                return Ok(v);
            }
        }
        Err("bad xz block header".into())
    };
    if bflags & 0x40 != 0 {
        varint()?;
    }
    if bflags & 0x80 != 0 {
        varint()?;
    }
    if varint()? != 0x21 || varint()? != 1 {
        return Err("xz filter other than LZMA2".into());
    }
    let d = *hdr.get(pos).ok_or_else(short)?;
    if d > 40 {
        return Err("bad LZMA2 dictionary size".into());
    }
    let dict = if d == 40 {
        u64::from(u32::MAX)
    } else {
        (2 | u64::from(d & 1)) << (d / 2 + 11)
    };
    if dict > max_dict {
        return Err(format!(
            "xz dictionary {} KiB (over the {} KiB kept for the kernel's decoder)",
            dict >> 10,
            max_dict >> 10
        ));
    }
    Ok(())
}

/// What to do with one module file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Store the file as it is.
    Keep,
    /// Store it decompressed, for this reason.
    Decompress(String),
}

/// Decides for a file whose contents start with `head`.
pub fn decide(head: &[u8], kernel: Option<Format>, keep_compression: bool) -> Action {
    let Some(fmt) = detect(head) else {
        return Action::Keep;
    };
    if keep_compression {
        return Action::Keep;
    }
    match kernel {
        Some(k) if k == fmt => match fmt {
            Format::Xz => xz_unfit_for_kernel(head).map_or(Action::Keep, Action::Decompress),
            _ => Action::Keep,
        },
        Some(k) => Action::Decompress(format!("{fmt} module, the kernel decompresses {k} only")),
        None => Action::Decompress(format!(
            "{fmt} module, the kernel has no module decompression"
        )),
    }
}

/// The path a module gets once decompressed (`x.ko.xz` → `x.ko`).
pub fn plain_path(rel: &str) -> String {
    for ext in [".gz", ".xz", ".zst"] {
        if let Some(p) = rel.strip_suffix(ext) {
            return p.to_string();
        }
    }
    rel.to_string()
}

/// One module as it goes into the image.
#[derive(Debug, Clone)]
pub struct Stored {
    /// Module name.
    pub name: String,
    /// Path in the tree, relative to the module directory.
    pub src_rel: String,
    /// Path in the image's module directory.
    pub rel: String,
    /// The bytes stored.
    pub data: Vec<u8>,
    /// Size of the source file.
    pub src_len: u64,
    /// Why it was decompressed, if it was.
    pub transcoded: Option<String>,
    /// Compression of the stored bytes (None = plain).
    pub format: Option<Format>,
    /// What its `.modinfo` and ELF header say.
    pub facts: Facts,
}

/// What a module file says of itself.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Facts {
    /// `firmware=` entries, in order.
    pub firmware: Vec<String>,
    /// `vermagic=`.
    pub vermagic: Option<String>,
    /// The ELF machine it was built for.
    pub machine: Option<Machine>,
}

impl Facts {
    /// Reads a plain (decompressed) module's facts.
    pub fn of(plain: &[u8]) -> Result<Facts, String> {
        let entries = module_info(plain).map_err(|e| {
            let why = e.why.map(|w| w.into_owned()).unwrap_or_else(|| {
                let text = std::io::Error::from_raw_os_error(e.errno).to_string();
                text.split(" (os error")
                    .next()
                    .unwrap_or_default()
                    .to_string()
            });
            format!("cannot read .modinfo: {why}")
        })?;
        let mut f = Facts {
            machine: arch::module_machine(plain),
            ..Facts::default()
        };
        for e in entries {
            let value = String::from_utf8_lossy(&e.value).into_owned();
            match e.key {
                b"firmware" => f.firmware.push(value),
                b"vermagic" => f.vermagic = Some(value),
                _ => {}
            }
        }
        Ok(f)
    }
}

/// One module's result: stored (with an error when stored as is), or why
/// it could not be read.
type Outcome = Result<(Stored, Option<String>), String>;

/// Reads and transcodes `modules` (name, relative path) from `moddir` with
/// `jobs` threads. Files that cannot be read are errors (left out); files
/// that cannot be decompressed are stored unchanged with an error, so the
/// loader reports them at boot like any broken module.
pub fn transcode_all(
    moddir: &Path,
    modules: &[(String, String)],
    kernel: Option<Format>,
    keep_compression: bool,
    jobs: usize,
    progress: &(dyn Fn(usize, usize) + Sync),
) -> (Vec<Stored>, Vec<String>) {
    let next = AtomicUsize::new(0);
    let done = AtomicUsize::new(0);
    let results: Vec<Mutex<Option<Outcome>>> = modules.iter().map(|_| Mutex::new(None)).collect();
    std::thread::scope(|s| {
        for _ in 0..jobs.clamp(1, modules.len().max(1)) {
            s.spawn(|| {
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let Some((name, rel)) = modules.get(i) else {
                        break;
                    };
                    let r = one(moddir, name, rel, kernel, keep_compression);
                    *results[i].lock().unwrap_or_else(|e| e.into_inner()) = Some(r);
                    progress(done.fetch_add(1, Ordering::Relaxed) + 1, modules.len());
                }
            });
        }
    });
    let mut stored = Vec::new();
    let mut errors = Vec::new();
    for r in results {
        match r.into_inner().unwrap_or_else(|e| e.into_inner()) {
            Some(Ok((s, err))) => {
                errors.extend(err);
                stored.push(s);
            }
            Some(Err(e)) => errors.push(e),
            None => {}
        }
    }
    (stored, errors)
}

fn one(
    moddir: &Path,
    name: &str,
    rel: &str,
    kernel: Option<Format>,
    keep_compression: bool,
) -> Outcome {
    let path = moddir.join(rel);
    let data = std::fs::read(&path).map_err(|e| format!("{name}: {}: {e}", path.display()))?;
    let src_len = data.len() as u64;
    let mut s = Stored {
        name: name.to_string(),
        src_rel: rel.to_string(),
        rel: rel.to_string(),
        format: detect(&data),
        data,
        src_len,
        transcoded: None,
        facts: Facts::default(),
    };
    let cannot = |e| {
        format!(
            "{name}: {}: cannot decompress ({e}); stored as is",
            path.display()
        )
    };
    if let Action::Decompress(why) = decide(&s.data, kernel, keep_compression) {
        match decompress_to_vec(&s.data, MAX_OUTPUT) {
            Ok(plain) => {
                s.data = plain;
                s.rel = plain_path(rel);
                s.format = None;
                s.transcoded = Some(why);
            }
            Err(e) => return Ok((s, Some(cannot(e)))),
        }
    }
    // Kept compressed: decompressed here only to read it.
    let plain;
    let elf = if s.format.is_some() {
        match decompress_to_vec(&s.data, MAX_OUTPUT) {
            Ok(p) => {
                plain = p;
                &plain
            }
            Err(e) => return Ok((s, Some(cannot(e)))),
        }
    } else {
        &s.data
    };
    match Facts::of(elf) {
        Ok(f) => s.facts = f,
        Err(e) => return Ok((s, Some(format!("{name}: {}: {e}", path.display())))),
    }
    Ok((s, None))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kernel_configs() {
        let k612 = "CONFIG_MODULE_COMPRESS=y\n# CONFIG_MODULE_COMPRESS_GZIP is not set\n\
                    CONFIG_MODULE_COMPRESS_XZ=y\nCONFIG_MODULE_DECOMPRESS=y\n";
        assert_eq!(kernel_decompression(k612), Some(Format::Xz));
        let k61 = "CONFIG_MODULE_COMPRESS_NONE=y\n# CONFIG_MODULE_COMPRESS_XZ is not set\n";
        assert_eq!(kernel_decompression(k61), None);
        // Compressed modules but no in-kernel decompression.
        assert_eq!(
            kernel_decompression("CONFIG_MODULE_COMPRESS_ZSTD=y\n"),
            None
        );
    }

    fn xz(args: &[&str], data: &[u8]) -> Vec<u8> {
        use std::io::Write;
        let mut c = std::process::Command::new("xz")
            .args(args)
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .expect("xz");
        c.stdin.take().unwrap().write_all(data).unwrap();
        c.wait_with_output().unwrap().stdout
    }

    #[test]
    fn xz_limits() {
        let data = b"\x7fELF module body".repeat(100);
        let ok = xz(&["-c", "--check=crc32", "--lzma2=dict=1MiB"], &data);
        assert_eq!(xz_unfit_for_kernel(&ok), None);
        let crc64 = xz(&["-c", "--check=crc64", "--lzma2=dict=1MiB"], &data);
        assert!(xz_unfit_for_kernel(&crc64).unwrap().contains("CRC64"));
        let big = xz(&["-c", "--check=crc32", "--lzma2=dict=8MiB"], &data);
        assert!(xz_unfit_for_kernel(&big).unwrap().contains("8192 KiB"));
        let bcj = xz(
            &["-c", "--check=crc32", "--x86", "--lzma2=dict=1MiB"],
            &data,
        );
        assert!(xz_unfit_for_kernel(&bcj).is_some());
        assert_eq!(
            decide(&ok, Some(Format::Xz), false),
            Action::Keep,
            "kbuild-style xz stays"
        );
        assert!(matches!(
            decide(&crc64, Some(Format::Xz), false),
            Action::Decompress(_)
        ));
        assert_eq!(decide(&crc64, Some(Format::Xz), true), Action::Keep);
        assert!(matches!(decide(&ok, None, false), Action::Decompress(_)));
        assert!(matches!(
            decide(&ok, Some(Format::Zstd), false),
            Action::Decompress(_)
        ));
        assert_eq!(decide(b"\x7fELF", None, false), Action::Keep);
        // Hostile headers: no panic.
        for n in 0..ok.len().min(64) {
            let _ = xz_unfit_for_kernel(&ok[..n]);
        }
    }

    #[test]
    fn paths() {
        assert_eq!(
            plain_path("kernel/fs/ext4/ext4.ko.xz"),
            "kernel/fs/ext4/ext4.ko"
        );
        assert_eq!(plain_path("kernel/a.ko"), "kernel/a.ko");
    }
}
