//! `modinfo` applet, output-compatible with kmod 30's `modinfo` (as built by
//! Debian: `+ZSTD +XZ +LIBCRYPTO`).
//!
//! The behaviour mirrors `tools/modinfo.c` and the parts of libkmod it uses
//! (`kmod_module_get_info`, the ELF reader, `modules.builtin.modinfo` and the
//! module signature parser with its OpenSSL PKCS#7 path); module name/alias
//! lookup is delegated to the caller's resolver.

use std::ffi::OsStr;
use std::io::Write;
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::{Path, PathBuf};

use crate::decompress;
use crate::elf;
use earlymod_core::getopt::{self, Opt};

/// A module found by the resolver.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Resolved {
    /// A module file (its path as kmod would print it).
    File(PathBuf),
    /// A module built into the kernel, by (normalised) name.
    Builtin(String),
}

/// Resolver callback: `(name_or_alias, moddir) -> modules`.
pub type Resolver<'a> = &'a dyn Fn(&str, &Path) -> Result<Vec<Resolved>, String>;

const PROG: &str = "modinfo";

const ENOENT: i32 = 2;
const EINVAL: i32 = 22;
const ENOSYS: i32 = 38;

/// Text of an errno value as `strerror` gives it.
fn strerror(errno: i32) -> String {
    let s = std::io::Error::from_raw_os_error(errno).to_string();
    match s.rfind(" (os error ") {
        Some(i) => s[..i].to_string(),
        None => s,
    }
}

// ------------------------------------------------------------ options ----

#[derive(Debug, Default)]
struct Opts {
    field: Option<String>,
    null: bool,
    modname: bool,
    kversion: Option<String>,
    basedir: Option<String>,
    operands: Vec<String>,
}

enum Parsed {
    Run(Opts),
    Exit(i32),
}

/// kmod 30 modinfo's options; the id is the short letter.
const OPTS: &[Opt] = &[
    Opt {
        short: Some('a'),
        long: &["author"],
        arg: false,
        id: "a",
    },
    Opt {
        short: Some('d'),
        long: &["description"],
        arg: false,
        id: "d",
    },
    Opt {
        short: Some('l'),
        long: &["license"],
        arg: false,
        id: "l",
    },
    Opt {
        short: Some('p'),
        long: &["parameters"],
        arg: false,
        id: "p",
    },
    Opt {
        short: Some('n'),
        long: &["filename"],
        arg: false,
        id: "n",
    },
    Opt {
        short: Some('0'),
        long: &["null"],
        arg: false,
        id: "0",
    },
    Opt {
        short: Some('m'),
        long: &["modname"],
        arg: false,
        id: "m",
    },
    Opt {
        short: Some('F'),
        long: &["field"],
        arg: true,
        id: "F",
    },
    Opt {
        short: Some('k'),
        long: &["set-version"],
        arg: true,
        id: "k",
    },
    Opt {
        short: Some('b'),
        long: &["basedir"],
        arg: true,
        id: "b",
    },
    Opt {
        short: Some('V'),
        long: &["version"],
        arg: false,
        id: "V",
    },
    Opt {
        short: Some('h'),
        long: &["help"],
        arg: false,
        id: "h",
    },
];

fn help_text() -> String {
    format!(
        "Usage:\n\
         \t{PROG} [options] <modulename|filename> [args]\n\
         Options:\n\
         \t-a, --author                Print only 'author'\n\
         \t-d, --description           Print only 'description'\n\
         \t-l, --license               Print only 'license'\n\
         \t-p, --parameters            Print only 'parm'\n\
         \t-n, --filename              Print only 'filename'\n\
         \t-0, --null                  Use \\0 instead of \\n\n\
         \t-m, --modname               Handle argument as module name instead of alias or filename\n\
         \t-F, --field=FIELD           Print only provided FIELD\n\
         \t-k, --set-version=VERSION   Use VERSION instead of `uname -r`\n\
         \t-b, --basedir=DIR           Use DIR as filesystem root for /lib/modules\n\
         \t-V, --version               Show version\n\
         \t-h, --help                  Show this help\n"
    )
}

/// Apply one option; returns Some(exit code) for -h/-V.
fn apply(o: &mut Opts, short: char, arg: Option<String>, out: &mut dyn Write) -> Option<i32> {
    match short {
        'a' => o.field = Some("author".into()),
        'd' => o.field = Some("description".into()),
        'l' => o.field = Some("license".into()),
        'p' => o.field = Some("parm".into()),
        'n' => o.field = Some("filename".into()),
        '0' => o.null = true,
        'm' => o.modname = true,
        'F' => o.field = arg,
        'k' => o.kversion = arg,
        'b' => o.basedir = arg,
        'h' => {
            let _ = out.write_all(help_text().as_bytes());
            return Some(0);
        }
        'V' => {
            let _ = out.write_all(b"kmod version 30\n+ZSTD +XZ +ZLIB +LIBCRYPTO -EXPERIMENTAL\n");
            return Some(0);
        }
        _ => {}
    }
    None
}

/// Parses modinfo's command line (GNU `getopt_long` rules and diagnostics).
fn parse_args(args: &[String], out: &mut dyn Write, err: &mut dyn Write) -> Parsed {
    let mut argv: Vec<&str> = args.iter().map(String::as_str).collect();
    let p = getopt::parse(&mut argv, OPTS);
    let mut o = Opts {
        operands: p.operands.iter().map(|s| s.to_string()).collect(),
        ..Opts::default()
    };
    for h in p.hits {
        let short = h.id.chars().next().unwrap_or('?');
        if let Some(code) = apply(&mut o, short, h.value.map(str::to_string), out) {
            return Parsed::Exit(code);
        }
    }
    if let Some(e) = p.error {
        let _ = writeln!(err, "{}", e.show(PROG, OPTS));
        return Parsed::Exit(1);
    }
    Parsed::Run(o)
}

// ------------------------------------------------------ path helpers ----

/// `get_current_dir_name()`: $PWD when it names the current directory,
/// else getcwd().
fn current_dir_name() -> Option<Vec<u8>> {
    use std::os::unix::fs::MetadataExt;
    if let Some(pwd) = std::env::var_os("PWD")
        && pwd.as_bytes().first() == Some(&b'/')
        && let (Ok(a), Ok(b)) = (std::fs::metadata(&pwd), std::fs::metadata("."))
        && a.dev() == b.dev()
        && a.ino() == b.ino()
    {
        return Some(pwd.as_bytes().to_vec());
    }
    std::env::current_dir()
        .ok()
        .map(|p| p.into_os_string().as_bytes().to_vec())
}

/// libkmod's `path_make_absolute_cwd`: no normalisation, just cwd + "/" + p.
fn make_absolute(p: &[u8]) -> Vec<u8> {
    if p.first() == Some(&b'/') {
        return p.to_vec();
    }
    match current_dir_name() {
        Some(mut cwd) => {
            cwd.push(b'/');
            cwd.extend_from_slice(p);
            cwd
        }
        None => p.to_vec(),
    }
}

/// libkmod's `path_to_modname`: basename up to the first '.', '-' -> '_'.
fn path_to_modname(p: &[u8]) -> String {
    let base = p.rsplit(|&b| b == b'/').next().unwrap_or(p);
    let stem = base.split(|&b| b == b'.').next().unwrap_or(base);
    let v: Vec<u8> = stem
        .iter()
        .map(|&b| if b == b'-' { b'_' } else { b })
        .collect();
    String::from_utf8_lossy(&v).into_owned()
}

const KMOD_EXTS: &[&str] = &[".ko", ".ko.gz", ".ko.xz", ".ko.zst"];

/// kmod's `is_module_filename`: an existing regular file with a module
/// extension.
fn is_module_filename(name: &str) -> bool {
    let ext_ok = KMOD_EXTS
        .iter()
        .any(|e| name.len() > e.len() && name.ends_with(e));
    ext_ok
        && std::fs::metadata(name)
            .map(|m| m.is_file())
            .unwrap_or(false)
}

/// Kernel release as `uname -r` reports it.
fn kernel_release() -> Option<String> {
    if let Ok(s) = std::fs::read_to_string("/proc/sys/kernel/osrelease") {
        let s = s.trim_end_matches('\n');
        if !s.is_empty() {
            return Some(s.to_string());
        }
    }
    uname_release()
}

fn uname_release() -> Option<String> {
    #[repr(C)]
    struct UtsName {
        fields: [[u8; 65]; 6],
    }
    unsafe extern "C" {
        fn uname(buf: *mut UtsName) -> i32;
    }
    let mut u = UtsName {
        fields: [[0; 65]; 6],
    };
    // SAFETY: `u` is a properly sized, writable `struct utsname` (Linux
    // uses six 65-byte fields in both glibc and musl).
    let rc = unsafe { uname(&mut u) };
    if rc != 0 {
        return None;
    }
    let r = &u.fields[2];
    let n = r.iter().position(|&b| b == 0).unwrap_or(r.len());
    Some(String::from_utf8_lossy(&r[..n]).into_owned())
}

/// The module directory kmod's modinfo would use, made absolute as
/// libkmod's `kmod_new` does.
pub fn module_dir(basedir: Option<&str>, kversion: Option<&str>) -> Option<PathBuf> {
    let dir: Vec<u8> = if basedir.is_some() || kversion.is_some() {
        let kv = match kversion {
            Some(k) => k.to_string(),
            None => kernel_release()?,
        };
        let mut d = basedir.unwrap_or("").as_bytes().to_vec();
        d.extend_from_slice(b"/lib/modules/");
        d.extend_from_slice(kv.as_bytes());
        make_absolute(&d)
    } else {
        let mut d = b"/lib/modules/".to_vec();
        d.extend_from_slice(kernel_release()?.as_bytes());
        d
    };
    Some(PathBuf::from(OsStr::from_bytes(&dir)))
}

// ----------------------------------------------------------- modinfo ----

/// One `.modinfo` (or signature) entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InfoEntry {
    pub key: Vec<u8>,
    pub value: Vec<u8>,
}

/// Why module information could not be read; `errno` is what libkmod
/// would report, `detail` an optional extra explanation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InfoError {
    pub errno: i32,
    pub detail: Option<String>,
}

impl InfoError {
    fn errno(errno: i32) -> Self {
        InfoError {
            errno,
            detail: None,
        }
    }
}

fn split_key_value(s: &[u8]) -> InfoEntry {
    match s.iter().position(|&b| b == b'=') {
        Some(eq) => InfoEntry {
            key: s[..eq].to_vec(),
            value: s[eq + 1..].to_vec(),
        },
        None => InfoEntry {
            key: s.to_vec(),
            value: Vec::new(),
        },
    }
}

/// Entries of a module file: `.modinfo` strings in order, then signature
/// fields when the (decompressed) file carries a module signature.
pub fn module_file_info(path: &Path) -> Result<Vec<InfoEntry>, InfoError> {
    let raw =
        std::fs::read(path).map_err(|e| InfoError::errno(e.raw_os_error().unwrap_or(EINVAL)))?;
    // libkmod refuses files shorter than the longest magic it probes (6).
    if raw.len() < 6 {
        return Err(InfoError::errno(EINVAL));
    }
    let data = match decompress::decompress(&raw) {
        Ok(d) => d,
        // libkmod feeds libzstd until end of file and keeps whatever came
        // out, so a cut .ko.zst is judged by the ELF reader, not rejected.
        Err(e @ decompress::DecompressError::Truncated(decompress::Compression::Zstd)) => {
            match decompress::zstd_truncation(&raw) {
                decompress::ZstdTruncation::NothingDecoded => {
                    return Err(InfoError {
                        errno: elf::ElfError::NotElf.errno(),
                        detail: Some(e.to_string()),
                    });
                }
                decompress::ZstdTruncation::OnlyChecksumMissing(patched) => {
                    match decompress::decompress(&patched) {
                        Ok(d) => return module_info_from_bytes(&d),
                        Err(e) => {
                            return Err(InfoError {
                                errno: EINVAL,
                                detail: Some(e.to_string()),
                            });
                        }
                    }
                }
                _ => {
                    return Err(InfoError {
                        errno: EINVAL,
                        detail: Some(e.to_string()),
                    });
                }
            }
        }
        Err(e) => {
            return Err(InfoError {
                errno: EINVAL,
                detail: Some(e.to_string()),
            });
        }
    };
    module_info_from_bytes(&data)
}

/// Like [`module_file_info`] on an already decompressed image.
pub fn module_info_from_bytes(data: &[u8]) -> Result<Vec<InfoEntry>, InfoError> {
    let elf = elf::Elf::parse(data).map_err(|e| InfoError {
        errno: e.errno(),
        detail: None,
    })?;
    let sec = elf.section(b".modinfo").ok_or(InfoError::errno(ENOENT))?;
    let mut list: Vec<InfoEntry> = elf::split_strings(sec)
        .into_iter()
        .map(split_key_value)
        .collect();
    if let Some(sig) = signature_info(data) {
        let mut push = |k: &str, v: Vec<u8>| {
            list.push(InfoEntry {
                key: k.as_bytes().to_vec(),
                value: v,
            })
        };
        push("sig_id", sig.id_type.as_bytes().to_vec());
        push("signer", sig.signer);
        push("sig_key", hex_to_str(&sig.key_id));
        push("sig_hashalgo", sig.hash_algo.as_bytes().to_vec());
        push("signature", hex_to_str(&sig.sig));
    }
    Ok(list)
}

/// Entries of a built-in module from `MODDIR/modules.builtin.modinfo`.
pub fn builtin_info(moddir: &Path, name: &str) -> Result<Vec<InfoEntry>, InfoError> {
    let data = std::fs::read(moddir.join("modules.builtin.modinfo"))
        .map_err(|e| InfoError::errno(e.raw_os_error().unwrap_or(EINVAL)))?;
    // Only NUL-terminated strings count; iteration stops at the first
    // string without a "modname." prefix, as libkmod's iterator does.
    let mut strings: Vec<&[u8]> = data.split(|&b| b == 0).collect();
    strings.pop(); // the piece after the last NUL is not a complete string
    let mut i = 0;
    while i < strings.len() {
        let Some(dot) = strings[i].iter().position(|&b| b == b'.') else {
            break;
        };
        let prefix = &strings[i][..dot];
        let mut j = i;
        let mut group = Vec::new();
        while j < strings.len() {
            let s = strings[j];
            match s.iter().position(|&b| b == b'.') {
                Some(d) if &s[..d] == prefix => group.push(&s[d + 1..]),
                _ => break,
            }
            j += 1;
        }
        if prefix == name.as_bytes() {
            return Ok(group.into_iter().map(split_key_value).collect());
        }
        if j < strings.len() && !strings[j].contains(&b'.') {
            break;
        }
        i = j;
    }
    Err(InfoError::errno(ENOSYS))
}

/// libkmod's hex dump: "01:AB:..." with "\n\t\t" after every 20 bytes.
fn hex_to_str(bytes: &[u8]) -> Vec<u8> {
    let mut s = String::with_capacity(bytes.len() * 3 + bytes.len() / 20 * 3);
    for (i, b) in bytes.iter().enumerate() {
        s.push_str(&format!("{b:02X}"));
        if i + 1 < bytes.len() {
            s.push(':');
            if (i + 1) % 20 == 0 {
                s.push_str("\n\t\t");
            }
        }
    }
    s.into_bytes()
}

// --------------------------------------------------------- signature ----

/// What kmod prints about an appended module signature.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignatureInfo {
    pub id_type: &'static str,
    pub signer: Vec<u8>,
    pub key_id: Vec<u8>,
    pub hash_algo: &'static str,
    pub sig: Vec<u8>,
}

const SIG_MAGIC: &[u8] = b"~Module signature appended~\n";
const PKEY_ALGO_COUNT: u8 = 2;
const HASH_ALGOS: [&str; 9] = [
    "md4", "md5", "sha1", "rmd160", "sha256", "sha384", "sha512", "sha224", "sm3",
];
const ID_TYPES: [&str; 3] = ["PGP", "X509", "PKCS#7"];

/// Parse the signature appended to a module image like
/// `kmod_module_signature_info` (with its OpenSSL PKCS#7 path).
pub fn signature_info(mem: &[u8]) -> Option<SignatureInfo> {
    let size = mem.len().checked_sub(SIG_MAGIC.len())?;
    if &mem[size..] != SIG_MAGIC {
        return None;
    }
    let size = size.checked_sub(12)?;
    let ms = &mem[size..size + 12];
    let (algo, hash, id_type, signer_len, key_id_len) = (ms[0], ms[1], ms[2], ms[3], ms[4]);
    if algo >= PKEY_ALGO_COUNT
        || usize::from(hash) >= HASH_ALGOS.len()
        || usize::from(id_type) >= ID_TYPES.len()
    {
        return None;
    }
    let sig_len = u32::from_be_bytes([ms[8], ms[9], ms[10], ms[11]]) as usize;
    if sig_len == 0 || size < usize::from(signer_len) + usize::from(key_id_len) + sig_len {
        return None;
    }
    let sig_start = size - sig_len;
    if id_type == 2 {
        return pkcs7_info(&mem[sig_start..size]);
    }
    let key_start = sig_start - usize::from(key_id_len);
    let signer_start = key_start - usize::from(signer_len);
    Some(SignatureInfo {
        id_type: ID_TYPES[usize::from(id_type)],
        signer: mem[signer_start..key_start].to_vec(),
        key_id: mem[key_start..sig_start].to_vec(),
        hash_algo: HASH_ALGOS[usize::from(hash)],
        sig: mem[sig_start..size].to_vec(),
    })
}

/// A DER TLV: (tag class+constructed bits, tag number, contents, rest).
struct Tlv<'a> {
    class_cons: u8,
    number: u32,
    body: &'a [u8],
}

const SEQUENCE: (u8, u32) = (0x20, 16);
const SET: (u8, u32) = (0x20, 17);
const INTEGER: (u8, u32) = (0x00, 2);
const OID: (u8, u32) = (0x00, 6);
const OCTET_STRING: (u8, u32) = (0x00, 4);

/// Read one DER element (definite lengths only) from the front of `d`.
fn der_next(d: &[u8]) -> Option<(Tlv<'_>, &[u8])> {
    let first = *d.first()?;
    let class_cons = first & 0xe0;
    let mut pos = 1usize;
    let mut number = u32::from(first & 0x1f);
    if number == 0x1f {
        number = 0;
        loop {
            let b = *d.get(pos)?;
            pos += 1;
            number = number.checked_mul(128)? | u32::from(b & 0x7f);
            if b & 0x80 == 0 {
                break;
            }
        }
    }
    let l0 = *d.get(pos)?;
    pos += 1;
    let len = if l0 < 0x80 {
        usize::from(l0)
    } else {
        let n = usize::from(l0 & 0x7f);
        if n == 0 || n > 8 {
            return None; // indefinite or absurd length
        }
        let mut len = 0usize;
        for _ in 0..n {
            len = len.checked_mul(256)? | usize::from(*d.get(pos)?);
            pos += 1;
        }
        len
    };
    let end = pos.checked_add(len)?;
    let body = d.get(pos..end)?;
    Some((
        Tlv {
            class_cons,
            number,
            body,
        },
        &d[end..],
    ))
}

fn der_expect(d: &[u8], want: (u8, u32)) -> Option<(&[u8], &[u8])> {
    let (t, rest) = der_next(d)?;
    if (t.class_cons, t.number) != want {
        return None;
    }
    Some((t.body, rest))
}

/// Content bytes of the (flattened) Name entries: (oid, value) pairs.
fn name_entries(name: &[u8]) -> Option<Vec<(&[u8], &[u8])>> {
    let mut v = Vec::new();
    let mut rdns = name;
    while !rdns.is_empty() {
        let (set, rest) = der_expect(rdns, SET)?;
        rdns = rest;
        let mut atvs = set;
        while !atvs.is_empty() {
            let (atv, rest) = der_expect(atvs, SEQUENCE)?;
            atvs = rest;
            let (oid, after) = der_expect(atv, OID)?;
            let (val, _) = der_next(after)?;
            v.push((oid, val.body));
        }
    }
    Some(v)
}

fn hash_algo_from_oid(oid: &[u8]) -> &'static str {
    const TABLE: &[(&[u8], &str)] = &[
        (&[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x02, 0x04], "md4"),
        (&[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x02, 0x05], "md5"),
        (&[0x2b, 0x0e, 0x03, 0x02, 0x1a], "sha1"),
        (&[0x2b, 0x24, 0x03, 0x02, 0x01], "rmd160"),
        (
            &[0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x01],
            "sha256",
        ),
        (
            &[0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x02],
            "sha384",
        ),
        (
            &[0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x03],
            "sha512",
        ),
        (
            &[0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x04],
            "sha224",
        ),
        (&[0x2a, 0x81, 0x1c, 0xcf, 0x55, 0x01, 0x83, 0x11], "sm3"),
    ];
    TABLE
        .iter()
        .find(|(o, _)| *o == oid)
        .map(|(_, n)| *n)
        // kmod indexes its table with -1 here (undefined behaviour)
        .unwrap_or("unknown")
}

/// Walk a DER PKCS#7 SignedData for the first SignerInfo's issuer CN,
/// serial number, digest algorithm and encrypted digest.
fn pkcs7_info(der: &[u8]) -> Option<SignatureInfo> {
    const SIGNED_DATA: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x07, 0x02];
    const CN: &[u8] = &[0x55, 0x04, 0x03];
    let (ci, _) = der_expect(der, SEQUENCE)?;
    let (ctype, rest) = der_expect(ci, OID)?;
    if ctype != SIGNED_DATA {
        return None;
    }
    let (explicit, _) = der_expect(rest, (0xa0, 0))?;
    let (sd, _) = der_expect(explicit, SEQUENCE)?;
    let (_version, rest) = der_expect(sd, INTEGER)?;
    let (_digest_algs, rest) = der_expect(rest, SET)?;
    let (_content, mut rest) = der_expect(rest, SEQUENCE)?;
    // optional [0] certificates, [1] crls
    loop {
        let (t, after) = der_next(rest)?;
        if t.class_cons & 0xc0 == 0x80 && (t.number == 0 || t.number == 1) {
            rest = after;
            continue;
        }
        break;
    }
    let (signer_infos, _) = der_expect(rest, SET)?;
    let (si, _) = der_expect(signer_infos, SEQUENCE)?;
    let (_version, rest) = der_expect(si, INTEGER)?;
    let (ias, rest) = der_expect(rest, SEQUENCE)?;
    let (dig_alg, mut rest) = der_expect(rest, SEQUENCE)?;
    let (auth, after) = der_next(rest)?;
    if auth.class_cons & 0xc0 == 0x80 && auth.number == 0 {
        rest = after;
    }
    let (_sig_alg, rest) = der_expect(rest, SEQUENCE)?;
    let (enc_digest, _) = der_expect(rest, OCTET_STRING)?;

    let (issuer, rest) = der_expect(ias, SEQUENCE)?;
    let (serial, _) = der_expect(rest, INTEGER)?;
    let (dig_oid, _) = der_expect(dig_alg, OID)?;

    // ASN1_INTEGER_to_BN + BN_bn2bin: magnitude, big endian, no leading 0s.
    let mut mag: Vec<u8> = serial.to_vec();
    if mag.first().is_some_and(|&b| b & 0x80 != 0) {
        // negative: two's complement negate
        for b in mag.iter_mut() {
            *b = !*b;
        }
        for b in mag.iter_mut().rev() {
            let (v, carry) = b.overflowing_add(1);
            *b = v;
            if !carry {
                break;
            }
        }
    }
    let nz = mag.iter().position(|&b| b != 0).unwrap_or(mag.len());
    let key_id = mag[nz..].to_vec();

    // x509_name_to_str: the first commonName, else the last entry; the
    // value is used as a C string.
    let entries = name_entries(issuer)?;
    let signer = match entries.iter().find(|(o, _)| *o == CN).or(entries.last()) {
        Some((_, v)) => {
            let n = v.iter().position(|&b| b == 0).unwrap_or(v.len());
            v[..n].to_vec()
        }
        None => Vec::new(),
    };

    Some(SignatureInfo {
        id_type: ID_TYPES[2],
        signer,
        key_id,
        hash_algo: hash_algo_from_oid(dig_oid),
        sig: enc_digest.to_vec(),
    })
}

// ------------------------------------------------------------- output ----

struct Module {
    name: String,
    /// None for built-in modules.
    path: Option<Vec<u8>>,
}

struct Ctx<'a> {
    field: Option<&'a str>,
    sep: u8,
    moddir: &'a Path,
}

fn err_line(err: &mut dyn Write, msg: &[u8]) {
    let mut v = format!("{PROG}: ERROR: ").into_bytes();
    v.extend_from_slice(msg);
    let _ = err.write_all(&v);
}

/// A parameter merged from `parm` and `parmtype` entries.
struct Param {
    name: Vec<u8>,
    desc: Option<Vec<u8>>,
    ptype: Option<Vec<u8>>,
}

/// `process_parm` over all entries; kmod keeps the list newest-first.
fn collect_params(list: &[InfoEntry], err: &mut dyn Write) -> Vec<Param> {
    let mut params: Vec<Param> = Vec::new();
    for e in list {
        let is_parm = e.key == b"parm";
        if !is_parm && e.key != b"parmtype" {
            continue;
        }
        let Some(colon) = e.value.iter().position(|&b| b == b':') else {
            let mut m = b"Found invalid \"".to_vec();
            m.extend_from_slice(&e.key);
            m.push(b'=');
            m.extend_from_slice(&e.value);
            m.extend_from_slice(b"\": missing ':'\n");
            err_line(err, &m);
            continue;
        };
        let name = &e.value[..colon];
        let rest = e.value[colon + 1..].to_vec();
        let idx = match params.iter().position(|p| p.name == name) {
            Some(i) => i,
            None => {
                params.push(Param {
                    name: name.to_vec(),
                    desc: None,
                    ptype: None,
                });
                params.len() - 1
            }
        };
        if is_parm {
            params[idx].desc = Some(rest);
        } else {
            params[idx].ptype = Some(rest);
        }
    }
    params.reverse();
    params
}

fn print_params_only(ctx: &Ctx, list: &[InfoEntry], out: &mut Vec<u8>, err: &mut dyn Write) {
    for p in collect_params(list, err) {
        out.extend_from_slice(&p.name);
        match (&p.desc, &p.ptype) {
            (None, t) => {
                out.extend_from_slice(b": (");
                out.extend_from_slice(t.as_deref().unwrap_or(b""));
                out.push(b')');
            }
            (Some(d), Some(t)) => {
                out.push(b':');
                out.extend_from_slice(d);
                out.extend_from_slice(b" (");
                out.extend_from_slice(t);
                out.push(b')');
            }
            (Some(d), None) => {
                out.push(b':');
                out.extend_from_slice(d);
            }
        }
        out.push(ctx.sep);
    }
}

fn pad16(out: &mut Vec<u8>, label: &[u8]) {
    out.extend_from_slice(label);
    for _ in label.len()..16 {
        out.push(b' ');
    }
}

/// `modinfo_do`: print one module; Err(errno) on failure.
fn modinfo_do(ctx: &Ctx, m: &Module, out: &mut Vec<u8>, err: &mut dyn Write) -> Result<(), i32> {
    let is_builtin = m.path.is_none();
    let filename: &[u8] = m.path.as_deref().unwrap_or(b"(builtin)");
    if is_builtin {
        match ctx.field {
            None => {
                pad16(out, b"name:");
                out.extend_from_slice(m.name.as_bytes());
                out.push(ctx.sep);
            }
            Some("name") => {
                out.extend_from_slice(m.name.as_bytes());
                out.push(ctx.sep);
            }
            _ => {}
        }
    }
    match ctx.field {
        Some("filename") => {
            out.extend_from_slice(filename);
            out.push(ctx.sep);
            return Ok(());
        }
        None => {
            pad16(out, b"filename:");
            out.extend_from_slice(filename);
            out.push(ctx.sep);
        }
        Some(_) => {}
    }

    let info = match &m.path {
        None => builtin_info(ctx.moddir, &m.name),
        Some(p) => module_file_info(Path::new(OsStr::from_bytes(p))),
    };
    let list = match info {
        Ok(l) => l,
        Err(e) if is_builtin && e.errno == ENOENT => return Ok(()),
        Err(e) => {
            // kmod prints only the errno text; `e.detail` (the precise
            // reason) is deliberately not shown, for byte-identical stderr.
            err_line(
                err,
                format!(
                    "could not get modinfo from '{}': {}\n",
                    m.name,
                    strerror(e.errno)
                )
                .as_bytes(),
            );
            return Err(e.errno);
        }
    };

    if ctx.field == Some("parm") {
        print_params_only(ctx, &list, out, err);
        return Ok(());
    }

    let mut parm_entries: Vec<InfoEntry> = Vec::new();
    for e in &list {
        if let Some(f) = ctx.field {
            if f.as_bytes() == e.key {
                out.extend_from_slice(&e.value);
                out.push(ctx.sep);
            }
            continue;
        }
        if e.key == b"parm" || e.key == b"parmtype" {
            parm_entries.push(e.clone());
            continue;
        }
        out.extend_from_slice(&e.key);
        if ctx.sep == 0 {
            out.push(b'=');
        } else {
            out.push(b':');
            // printf("%s:%-*s", key, 15 - keylen, ""): a negative width is
            // a '-' flag plus its absolute value.
            let pad = (15 - e.key.len() as i64).unsigned_abs();
            out.extend(std::iter::repeat_n(b' ', pad as usize));
        }
        out.extend_from_slice(&e.value);
        out.push(ctx.sep);
    }
    if ctx.field.is_some() {
        return Ok(());
    }
    for p in collect_params(&parm_entries, err) {
        pad16(out, b"parm:");
        out.extend_from_slice(&p.name);
        out.push(b':');
        match (&p.desc, &p.ptype) {
            (None, t) => out.extend_from_slice(t.as_deref().unwrap_or(b"")),
            (Some(d), Some(t)) => {
                out.extend_from_slice(d);
                out.extend_from_slice(b" (");
                out.extend_from_slice(t);
                out.push(b')');
            }
            (Some(d), None) => out.extend_from_slice(d),
        }
        out.push(ctx.sep);
    }
    Ok(())
}

fn resolved_to_module(r: Resolved) -> Module {
    match r {
        Resolved::File(p) => {
            let bytes = p.into_os_string().into_vec();
            Module {
                name: path_to_modname(&bytes),
                path: Some(bytes),
            }
        }
        Resolved::Builtin(name) => Module { name, path: None },
    }
}

/// `modinfo` entry point. `args` are the arguments after the program name.
/// `resolve(name, moddir)` looks a module name or alias up in `moddir`.
/// Returns the process exit code.
pub fn modinfo_main(
    args: &[String],
    resolve: Resolver<'_>,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> i32 {
    let opts = match parse_args(args, out, err) {
        Parsed::Run(o) => o,
        Parsed::Exit(code) => return code,
    };
    if opts.operands.is_empty() {
        err_line(err, b"missing module or filename.\n");
        return 1;
    }
    let Some(moddir) = module_dir(opts.basedir.as_deref(), opts.kversion.as_deref()) else {
        err_line(
            err,
            b"uname() failed: cannot determine the kernel release\n",
        );
        return 1;
    };
    let ctx = Ctx {
        field: opts.field.as_deref(),
        sep: if opts.null { 0 } else { b'\n' },
        moddir: &moddir,
    };

    let mut failed = false;
    for name in &opts.operands {
        let mut buf = Vec::new();
        let run = |m: Module, buf: &mut Vec<u8>, err: &mut dyn Write| -> bool {
            modinfo_do(&ctx, &m, buf, err).is_ok()
        };
        if opts.modname {
            match resolve(name, &moddir) {
                Ok(mut list) if !list.is_empty() => {
                    let m = resolved_to_module(list.swap_remove(0));
                    if !run(m, &mut buf, err) {
                        failed = true;
                    }
                }
                _ => {
                    err_line(err, format!("Module name {name} not found.\n").as_bytes());
                    failed = true;
                }
            }
        } else if is_module_filename(name) {
            let abs = make_absolute(name.as_bytes());
            let m = Module {
                name: path_to_modname(name.as_bytes()),
                path: Some(abs),
            };
            if !run(m, &mut buf, err) {
                failed = true;
            }
        } else {
            match resolve(name, &moddir) {
                Err(_) => {
                    err_line(err, format!("Module alias {name} not found.\n").as_bytes());
                    failed = true;
                }
                Ok(list) if list.is_empty() => {
                    err_line(err, format!("Module {name} not found.\n").as_bytes());
                    failed = true;
                }
                Ok(list) => {
                    for r in list {
                        if !run(resolved_to_module(r), &mut buf, err) {
                            failed = true;
                        }
                        let _ = out.write_all(&buf);
                        buf.clear();
                    }
                }
            }
        }
        let _ = out.write_all(&buf);
    }
    let _ = out.flush();
    if failed { 1 } else { 0 }
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::testutil::TempDir;

    fn run(args: &[&str], resolve: Resolver<'_>) -> (i32, String, String) {
        let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
        let (mut out, mut err) = (Vec::new(), Vec::new());
        let code = modinfo_main(&args, resolve, &mut out, &mut err);
        (
            code,
            String::from_utf8(out).unwrap(),
            String::from_utf8(err).unwrap(),
        )
    }

    fn no_resolve(_: &str, _: &Path) -> Result<Vec<Resolved>, String> {
        Ok(Vec::new())
    }

    #[test]
    fn hex_wraps_every_20_bytes() {
        assert_eq!(hex_to_str(&[]), b"");
        assert_eq!(hex_to_str(&[0xab]), b"AB");
        let v: Vec<u8> = (0..20).collect();
        assert!(!hex_to_str(&v).contains(&b'\n'));
        let v: Vec<u8> = (0..21).collect();
        let s = String::from_utf8(hex_to_str(&v)).unwrap();
        assert!(s.ends_with("12:13:\n\t\t14"), "{s}");
    }

    #[test]
    fn default_signature_layout() {
        let mut m = b"\x7fELF....module".to_vec();
        m.extend_from_slice(b"Signer");
        m.extend_from_slice(&[1, 2]);
        m.extend_from_slice(&[9; 5]);
        m.extend_from_slice(&[1, 4, 1, 6, 2, 0, 0, 0, 0, 0, 0, 5]);
        m.extend_from_slice(SIG_MAGIC);
        let s = signature_info(&m).unwrap();
        assert_eq!(s.id_type, "X509");
        assert_eq!(s.signer, b"Signer");
        assert_eq!(s.key_id, [1, 2]);
        assert_eq!(s.hash_algo, "sha256");
        assert_eq!(s.sig, [9; 5]);
        // out-of-range fields or lengths: no signature
        let n = m.len() - SIG_MAGIC.len() - 12;
        let mut bad = m.clone();
        bad[n + 1] = 9;
        assert!(signature_info(&bad).is_none());
        let mut bad = m.clone();
        bad[n + 11] = 200;
        assert!(signature_info(&bad).is_none());
        assert!(signature_info(SIG_MAGIC).is_none());
        assert!(signature_info(b"").is_none());
    }

    fn tlv(tag: u8, body: &[u8]) -> Vec<u8> {
        let mut v = vec![tag];
        if body.len() < 128 {
            v.push(body.len() as u8);
        } else {
            v.extend_from_slice(&[0x82, (body.len() >> 8) as u8, body.len() as u8]);
        }
        v.extend_from_slice(body);
        v
    }

    fn pkcs7(issuer: &[(&[u8], &[u8])], serial: &[u8], digest_oid: &[u8], sig: &[u8]) -> Vec<u8> {
        let mut name = Vec::new();
        for (oid, val) in issuer {
            let atv = [tlv(0x06, oid), tlv(0x0c, val)].concat();
            name.extend(tlv(0x31, &tlv(0x30, &atv)));
        }
        let ias = tlv(0x30, &[tlv(0x30, &name), tlv(0x02, serial)].concat());
        let alg = tlv(0x30, &[tlv(0x06, digest_oid), vec![5, 0]].concat());
        let si = tlv(
            0x30,
            &[
                tlv(0x02, &[1]),
                ias,
                alg.clone(),
                tlv(
                    0x30,
                    &tlv(0x06, &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 1, 1, 1]),
                ),
                tlv(0x04, sig),
            ]
            .concat(),
        );
        let sd = tlv(
            0x30,
            &[
                tlv(0x02, &[1]),
                tlv(0x31, &alg),
                tlv(
                    0x30,
                    &tlv(0x06, &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 1, 7, 1]),
                ),
                tlv(0x31, &si),
            ]
            .concat(),
        );
        let ct = tlv(0x06, &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 1, 7, 2]);
        tlv(0x30, &[ct, tlv(0xa0, &sd)].concat())
    }

    fn with_pkcs7(p7: &[u8]) -> Vec<u8> {
        let mut m = b"module body".to_vec();
        m.extend_from_slice(p7);
        m.extend_from_slice(&[0, 0, 2, 0, 0, 0, 0, 0]);
        m.extend_from_slice(&(p7.len() as u32).to_be_bytes());
        m.extend_from_slice(SIG_MAGIC);
        m
    }

    #[test]
    fn pkcs7_fields() {
        const CN: &[u8] = &[0x55, 4, 3];
        const O: &[u8] = &[0x55, 4, 10];
        const SHA512: &[u8] = &[0x60, 0x86, 0x48, 1, 0x65, 3, 4, 2, 3];
        let p7 = pkcs7(
            &[(O, b"Org"), (CN, b"Key CN")],
            &[0, 0xff, 1],
            SHA512,
            &[7; 30],
        );
        let s = signature_info(&with_pkcs7(&p7)).unwrap();
        assert_eq!(s.id_type, "PKCS#7");
        assert_eq!(s.signer, b"Key CN");
        assert_eq!(s.key_id, [0xff, 1]);
        assert_eq!(s.hash_algo, "sha512");
        assert_eq!(s.sig, [7; 30]);
        // no commonName: the last entry; negative serial: its magnitude
        let p7 = pkcs7(
            &[(O, b"Org"), (&[0x55, 4, 11], b"Unit")],
            &[0xff],
            SHA512,
            &[1],
        );
        let s = signature_info(&with_pkcs7(&p7)).unwrap();
        assert_eq!(s.signer, b"Unit");
        assert_eq!(s.key_id, [1]);
        // zero serial, empty name
        let p7 = pkcs7(&[], &[0], &[1, 2, 3], &[1]);
        let s = signature_info(&with_pkcs7(&p7)).unwrap();
        assert_eq!(s.signer, b"");
        assert_eq!(s.key_id, b"");
        assert_eq!(s.hash_algo, "unknown");
        // malformed DER: no signature at all, and no panic on any prefix
        let good = pkcs7(&[(CN, b"x")], &[5], SHA512, &[1; 64]);
        for cut in 0..good.len() {
            assert!(signature_info(&with_pkcs7(&good[..cut])).is_none(), "{cut}");
        }
    }

    #[test]
    fn builtin_modinfo_records() {
        let d = TempDir::new("builtin");
        std::fs::write(
            d.path().join("modules.builtin.modinfo"),
            b"ext4.license=GPL\0ext4.description=Fourth\0unix.license=GPL\0unix.alias=net-pf-1\0ext4.late=ignored\0",
        )
        .unwrap();
        let e = builtin_info(d.path(), "unix").unwrap();
        assert_eq!(e.len(), 2);
        assert_eq!(e[1].key, b"alias");
        assert_eq!(e[1].value, b"net-pf-1");
        assert_eq!(builtin_info(d.path(), "ext4").unwrap().len(), 2);
        assert_eq!(builtin_info(d.path(), "nope").unwrap_err().errno, ENOSYS);

        let resolve = |n: &str, _: &Path| -> Result<Vec<Resolved>, String> {
            Ok(vec![Resolved::Builtin(n.to_string())])
        };
        let dir = d.path().to_str().unwrap().to_string();
        // -b ROOT -k KVER -> ROOT/lib/modules/KVER; point it at the temp dir
        let root = TempDir::new("builtin-root");
        let md = root.path().join("lib/modules/9.9");
        std::fs::create_dir_all(&md).unwrap();
        std::fs::copy(
            Path::new(&dir).join("modules.builtin.modinfo"),
            md.join("modules.builtin.modinfo"),
        )
        .unwrap();
        let r = root.path().to_str().unwrap();
        let (code, out, _) = run(&["-b", r, "-k", "9.9", "unix"], &resolve);
        assert_eq!(code, 0);
        assert_eq!(
            out,
            "name:           unix\nfilename:       (builtin)\nlicense:        GPL\nalias:          net-pf-1\n"
        );
        let (_, out, _) = run(&["-b", r, "-k", "9.9", "-F", "name", "unix"], &resolve);
        assert_eq!(out, "unix\n");
        // a builtin missing from the file is an error (ENOSYS)
        let (code, _, err) = run(&["-b", r, "-k", "9.9", "nope"], &resolve);
        assert_eq!(code, 1);
        assert_eq!(
            err,
            "modinfo: ERROR: could not get modinfo from 'nope': Function not implemented\n"
        );
    }

    #[test]
    fn module_file_output() {
        let d = TempDir::new("file");
        let modinfo: &[u8] = b"license=GPL\0parmtype=a:int\0parm=a:first\0parm=b:second\0\
            averyveryverylongkey=v\0parmtype=c:bool\0noeq\0parm=bad\0";
        let f = crate::elf::tests::build(&[(".modinfo", modinfo)], false, true);
        let p = d.path().join("my-mod.ko");
        std::fs::write(&p, &f).unwrap();
        let ps = p.to_str().unwrap();
        let (code, out, err) = run(&[ps], &no_resolve);
        assert_eq!(code, 0);
        assert_eq!(
            out,
            format!(
                "filename:       {ps}\nlicense:        GPL\naveryveryverylongkey:     v\n\
                 noeq:           \nparm:           c:bool\nparm:           b:second\n\
                 parm:           a:first (int)\n"
            )
        );
        assert_eq!(
            err,
            "modinfo: ERROR: Found invalid \"parm=bad\": missing ':'\n"
        );
        let (_, out, _) = run(&["-p", ps], &no_resolve);
        assert_eq!(out, "c: (bool)\nb:second\na:first (int)\n");
        let (_, out, _) = run(&["-0", "-F", "license", ps], &no_resolve);
        assert_eq!(out, "GPL\0");
        let (_, out, _) = run(&["--null", ps], &no_resolve);
        assert!(out.starts_with(&format!("filename:       {ps}\0license=GPL\0")));

        // no .modinfo section
        let f = crate::elf::tests::build(&[(".text", b"x")], false, true);
        let p2 = d.path().join("bare.ko");
        std::fs::write(&p2, &f).unwrap();
        let (code, _, err) = run(&[p2.to_str().unwrap()], &no_resolve);
        assert_eq!(code, 1);
        assert_eq!(
            err,
            "modinfo: ERROR: could not get modinfo from 'bare': No such file or directory\n"
        );
        // not an ELF file
        let p3 = d.path().join("text.ko");
        std::fs::write(&p3, b"hello world\n").unwrap();
        let (_, _, err) = run(&[p3.to_str().unwrap()], &no_resolve);
        assert_eq!(
            err,
            "modinfo: ERROR: could not get modinfo from 'text': Exec format error\n"
        );
    }

    #[test]
    fn lookup_errors_and_options() {
        let (code, _, err) = run(&[], &no_resolve);
        assert_eq!(
            (code, err.as_str()),
            (1, "modinfo: ERROR: missing module or filename.\n")
        );
        let (code, _, err) = run(&["-b", "/nonexistent", "-k", "1", "foo"], &no_resolve);
        assert_eq!(
            (code, err.as_str()),
            (1, "modinfo: ERROR: Module foo not found.\n")
        );
        let failing = |_: &str, _: &Path| -> Result<Vec<Resolved>, String> { Err("x".into()) };
        let (_, _, err) = run(&["-k", "1", "foo"], &failing);
        assert_eq!(err, "modinfo: ERROR: Module alias foo not found.\n");
        let (_, _, err) = run(&["-k", "1", "-m", "foo"], &no_resolve);
        assert_eq!(err, "modinfo: ERROR: Module name foo not found.\n");
        let (code, _, err) = run(&["--fi", "x"], &no_resolve);
        assert_eq!(code, 1);
        assert!(err.contains("is ambiguous"), "{err}");
        let (code, _, err) = run(&["-F"], &no_resolve);
        assert_eq!(code, 1);
        assert_eq!(err, "modinfo: option requires an argument -- 'F'\n");
        let (code, out, _) = run(&["-h"], &no_resolve);
        assert_eq!(code, 0);
        assert!(out.starts_with("Usage:\n\tmodinfo [options]"));
        // the resolver sees ROOT/lib/modules/KVER, made absolute
        let seen = std::cell::RefCell::new(PathBuf::new());
        let spy = |_: &str, d: &Path| -> Result<Vec<Resolved>, String> {
            *seen.borrow_mut() = d.to_path_buf();
            Ok(Vec::new())
        };
        run(&["-b", "/r", "-k", "6.1", "x"], &spy);
        assert_eq!(*seen.borrow(), PathBuf::from("/r/lib/modules/6.1"));
        run(&["-b", "/", "-k", "6.1", "x"], &spy);
        assert_eq!(*seen.borrow(), PathBuf::from("//lib/modules/6.1"));
    }
}
