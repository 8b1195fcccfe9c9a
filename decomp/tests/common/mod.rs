//! What the decompress test binaries share: running the machine's
//! compressors, finding the cached kernel modules, the loader's exact
//! decode. Each binary uses some of it.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};

use earlymod_decompress::{Error, decompress_into, decompressed_len};

/// The cached Debian 6.12 module trees (`KVER/kernel/...`).
pub const K612_MODULES: &str = "/var/cache/earlymod/k612/root/lib/modules";

/// `tool args FILE` with `data` in FILE, so the tool knows the input size
/// (as when it compresses modules); its stdout, or None when the tool is
/// missing or fails.
pub fn tool_on_file(tool: &str, args: &[&str], data: &[u8]) -> Option<Vec<u8>> {
    static N: AtomicUsize = AtomicUsize::new(0);
    let dir = std::env::temp_dir().join(format!(
        "earlymod-decomp-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    ));
    std::fs::create_dir_all(&dir).unwrap();
    let src = dir.join("in");
    std::fs::write(&src, data).unwrap();
    let out = Command::new(tool)
        .args(args)
        .arg(&src)
        .stderr(Stdio::null())
        .output();
    let _ = std::fs::remove_dir_all(&dir);
    let out = out.ok()?;
    out.status.success().then_some(out.stdout)
}

/// `tool args` reading `data` from a pipe (so the tool does not know the
/// size); its stdout, or None when the tool is missing or fails.
pub fn tool_on_stdin(tool: &str, args: &[&str], data: &[u8]) -> Option<Vec<u8>> {
    use std::io::Write;
    let mut c = Command::new(tool)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .ok()?;
    let mut stdin = c.stdin.take()?;
    let data = data.to_vec();
    let w = std::thread::spawn(move || stdin.write_all(&data));
    let out = c.wait_with_output().ok()?;
    w.join().ok()?.ok()?;
    out.status.success().then_some(out.stdout)
}

/// `xz -dc PATH`; None when xz fails.
pub fn xz_dc(path: &Path) -> Option<Vec<u8>> {
    let out = Command::new("xz").arg("-dc").arg(path).output().ok()?;
    out.status.success().then_some(out.stdout)
}

/// Every `.ko.xz` under `dir`, depth first, each directory in name order.
pub fn ko_xz_under(dir: &Path) -> Vec<PathBuf> {
    fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
        let Ok(rd) = std::fs::read_dir(dir) else {
            return;
        };
        let mut entries: Vec<_> = rd.flatten().map(|e| e.path()).collect();
        entries.sort();
        for p in entries {
            if p.is_dir() {
                walk(&p, out);
            } else if p.to_str().is_some_and(|s| s.ends_with(".ko.xz")) {
                out.push(p);
            }
        }
    }
    let mut out = Vec::new();
    walk(dir, &mut out);
    out
}

/// Decode with exactly sized buffers, as the early-boot loader does.
pub fn decode_exact(z: &[u8]) -> Result<Vec<u8>, Error> {
    let n = decompressed_len(z)?;
    let mut out = vec![0u8; n];
    let got = decompress_into(z, &mut out)?;
    assert_eq!(got, n, "decompress_into wrote a size other than announced");
    Ok(out)
}
