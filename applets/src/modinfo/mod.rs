//! `modinfo`, output-compatible with kmod 30's `modinfo` (as Debian builds
//! it: `+ZSTD +XZ +LIBCRYPTO`).
//!
//! The behaviour mirrors `tools/modinfo.c` and the parts of libkmod it uses
//! (`kmod_module_get_info`, the ELF reader, `modules.builtin.modinfo` and
//! the module signature parser with its OpenSSL PKCS#7 path); names and
//! aliases are looked up as modprobe does ([`resolve`]).
//!
//! Unlike the loading applets this one uses the heap (`alloc`): the entry
//! list, decompressed images and signature hex dumps. Entries borrow from
//! the mapped or decompressed image, so a module costs a few allocations.

mod elf;
mod signature;
pub mod symbols;
mod unpack;

use crate::log::{LOG_WARNING, Log, text};
use crate::moddir::{DEFAULT_CONFIG_PATHS, DirName, ModDir};
use crate::sys::{self, CPath, Out};
use alloc::borrow::Cow;
use alloc::string::String;
use alloc::vec::Vec;
use earlymod_core::db::DepLine;
use earlymod_core::getopt::{self, Opt};
use earlymod_core::name::AliasBuf;
use earlymod_core::probe::Candidates;
use earlymod_core::put;
use earlymod_core::text::{Hex, Piece};

pub use signature::{SignatureInfo, signature_info};
pub use unpack::Fail;

const PROG: &str = "modinfo";

const ENOENT: i32 = 2;
const ENOSYS: i32 = 38;

/// Where modinfo writes: the process's stdout and stderr ([`Out`]), or a
/// buffer in tests.
pub trait Sink {
    /// Appends bytes.
    fn put(&mut self, b: &[u8]);
    /// Writes out what is buffered.
    fn flush(&mut self) {}
}

impl Sink for Out {
    fn put(&mut self, b: &[u8]) {
        self.bytes(b);
    }
    fn flush(&mut self) {
        Out::flush(self);
    }
}

impl Sink for Vec<u8> {
    fn put(&mut self, b: &[u8]) {
        self.extend_from_slice(b);
    }
}

/// A [`Sink`] as the pieces' sink.
struct Pieces<'s>(&'s mut dyn Sink);

impl earlymod_core::text::Sink for Pieces<'_> {
    fn put(&mut self, b: &[u8]) {
        self.0.put(b);
    }
}

/// ` (why)`, or nothing.
struct Why<'a>(Option<&'a str>);

impl Piece for Why<'_> {
    fn put_to(&self, out: &mut dyn earlymod_core::text::Sink) {
        if let Some(w) = self.0 {
            put!(out; " (", w, ")");
        }
    }
}

/// A module found by the resolver.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Resolved {
    /// A module file (its path as kmod would print it).
    File(String),
    /// A module built into the kernel, by (normalised) name.
    Builtin(String),
    /// A module with no file that is not built in either (an alias of a
    /// module missing from `modules.dep`), by name.
    NoFile(String),
}

/// How a command-line word is looked up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lookup {
    /// As modprobe does: config aliases, names, aliases, builtins.
    Alias,
    /// `-m`: a module name only (`modules.dep`, the builtin indexes).
    ModName,
}

/// Resolver callback: `(name_or_alias, moddir, how)` → the modules, or why
/// the lookup itself failed (a corrupt index, a name over a bound).
pub type Resolver<'r> = &'r dyn Fn(&str, &str, Lookup) -> Result<Vec<Resolved>, String>;

/// glibc's `strerror` text of an errno.
struct Strerror(i32);

impl Piece for Strerror {
    fn put_to(&self, out: &mut dyn earlymod_core::text::Sink) {
        let text = match self.0 {
            20 => "Not a directory",
            23 => "Too many open files in system",
            24 => "Too many open files",
            40 => "Too many levels of symbolic links",
            e => earlymod_core::load::Errno(e).text(),
        };
        out.put(text.as_bytes());
        if text == "Unknown error" {
            put!(out; " ", self.0);
        }
    }
}

// ------------------------------------------------------------ options ----

#[derive(Default)]
struct Opts<'a> {
    field: Option<&'a str>,
    null: bool,
    modname: bool,
    kversion: Option<&'a str>,
    basedir: Option<&'a str>,
}

/// kmod 30 modinfo's options; the id is the short letter.
const OPTS: &[Opt] = &[
    Opt::new(Some('a'), &["author"], false, "a"),
    Opt::new(Some('d'), &["description"], false, "d"),
    Opt::new(Some('l'), &["license"], false, "l"),
    Opt::new(Some('p'), &["parameters"], false, "p"),
    Opt::new(Some('n'), &["filename"], false, "n"),
    Opt::new(Some('0'), &["null"], false, "0"),
    Opt::new(Some('m'), &["modname"], false, "m"),
    Opt::new(Some('F'), &["field"], true, "F"),
    Opt::new(Some('k'), &["set-version"], true, "k"),
    Opt::new(Some('b'), &["basedir"], true, "b"),
    Opt::new(Some('V'), &["version"], false, "V"),
    Opt::new(Some('h'), &["help"], false, "h"),
];

const HELP: &str = "Usage:\n\
     \tmodinfo [options] <modulename|filename> [args]\n\
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
     \t-h, --help                  Show this help\n";

#[cfg(userspace_decoders)]
const VERSION: &str = "kmod version 30\n+ZSTD +XZ +ZLIB +LIBCRYPTO -EXPERIMENTAL\n";
#[cfg(not(userspace_decoders))]
const VERSION: &str = "kmod version 30\n-ZSTD -XZ -ZLIB +LIBCRYPTO -EXPERIMENTAL\n";

// ------------------------------------------------------ path helpers ----

/// True when `a` and `b` name the same file.
fn same_file(a: &str, b: &str) -> bool {
    let st = |p: &str| CPath::join(&[p]).and_then(|c| rustix::fs::stat(c.as_cstr()).ok());
    match (st(a), st(b)) {
        (Some(x), Some(y)) => x.st_dev == y.st_dev && x.st_ino == y.st_ino,
        _ => false,
    }
}

/// libkmod's `path_make_absolute_cwd`: no normalisation, just cwd + "/" +
/// p, the cwd as glibc's `get_current_dir_name` gives it ($PWD when it
/// names the current directory).
fn make_absolute(p: &str, pwd: Option<&str>) -> String {
    if p.starts_with('/') {
        return p.into();
    }
    if let Some(pwd) = pwd.filter(|d| d.starts_with('/') && same_file(d, ".")) {
        return [pwd, "/", p].concat();
    }
    let mut buf = [core::mem::MaybeUninit::uninit(); 4096];
    match sys::current_dir(&mut buf) {
        Some(cwd) => [cwd, "/", p].concat(),
        None => p.into(),
    }
}

/// libkmod's `path_to_modname`: basename up to the first '.', '-' -> '_'.
fn path_to_modname(p: &str) -> String {
    let base = p.rsplit('/').next().unwrap_or(p);
    base.split('.').next().unwrap_or(base).replace('-', "_")
}

/// kmod's `is_module_filename`: an existing regular file with a module
/// extension.
fn is_module_filename(name: &str) -> bool {
    [".ko", ".ko.gz", ".ko.xz", ".ko.zst"]
        .iter()
        .any(|e| name.len() > e.len() && name.ends_with(e))
        && CPath::join(&[name]).is_some_and(|c| {
            rustix::fs::stat(c.as_cstr()).is_ok_and(|st| {
                rustix::fs::FileType::from_raw_mode(st.st_mode) == rustix::fs::FileType::RegularFile
            })
        })
}

/// The module directory kmod's modinfo would use, made absolute as
/// libkmod's `kmod_new` does.
pub fn module_dir(basedir: Option<&str>, kversion: Option<&str>, pwd: Option<&str>) -> String {
    let mut release = heapless::String::<128>::new();
    let kv = match kversion {
        Some(k) => k,
        None => {
            sys::kernel_release(&mut release);
            &release
        }
    };
    if basedir.is_some() || kversion.is_some() {
        make_absolute(&[basedir.unwrap_or(""), "/lib/modules/", kv].concat(), pwd)
    } else {
        ["/lib/modules/", kv].concat()
    }
}

/// modprobe-style lookup for `modinfo NAME` in module directory `moddir`
/// (with the default modprobe.d configuration): every module the name or
/// alias resolves to, as a file or a builtin; or why the lookup failed.
pub fn resolve(name: &str, moddir: &str, how: Lookup) -> Result<Vec<Resolved>, String> {
    let log = Log {
        prog: PROG,
        verbose: LOG_WARNING,
    };
    let dirname = DirName::try_from(moddir).map_err(|_| {
        text(&[
            &"module directory ",
            &crate::modprobe::Short(moddir),
            &": ",
            &moddir.len(),
            &" bytes (limit ",
            &crate::moddir::MAX_DIRNAME,
            &")",
        ])
    })?;
    let dir = ModDir::open(dirname);
    let failed = |e: earlymod_core::Error| {
        text(&[
            &"could not look up '",
            &crate::modprobe::Short(name),
            &"' in ",
            &moddir,
            &": ",
            &e,
        ])
    };
    crate::modprobe::with_config(&dir, &DEFAULT_CONFIG_PATHS, &log, |ctx| {
        ctx.modules(name, how).map_err(failed)
    })
}

/// One module's entries as [`Context::info`](crate::context::Context::info)
/// gives them, or why they could not be read.
pub type InfoResult<'r, 'e> = Result<&'r [InfoEntry<'e>], Fail>;

impl crate::context::Context<'_> {
    /// The modules `name` means, as `modinfo` finds them: with
    /// [`Lookup::Alias`] modprobe's lookup of a name or alias (an invalid
    /// alias finds nothing), with [`Lookup::ModName`] a module name only.
    /// Each is a file (its path as kmod prints it), a builtin, or a name
    /// with neither.
    pub fn modules(&self, name: &str, how: Lookup) -> earlymod_core::Result<Vec<Resolved>> {
        let r = &self.resolver();
        let mut key = AliasBuf::new();
        let mut found = Candidates::new();
        match how {
            Lookup::Alias => {
                self.lookup(name, &mut key, &mut found)?;
            }
            Lookup::ModName => {
                let n = earlymod_core::name::modname(name)?;
                let _ = key.push_str(&n);
                r.lookup_name(&key, &mut found)?;
            }
        }
        let dirname = &self.dir().dirname;
        let mut out = Vec::new();
        for c in found.iter() {
            let line = r.db.dep_line(&c.name)?;
            match line.and_then(DepLine::parse) {
                Some(d) if d.path.starts_with('/') => out.push(Resolved::File(d.path.into())),
                Some(d) => out.push(Resolved::File([dirname, "/", d.path].concat())),
                None if c.builtin || r.is_builtin(&c.name)? => {
                    out.push(Resolved::Builtin(c.name.as_str().into()))
                }
                // No module file: kmod's modinfo still shows it, as built
                // in ("filename: (builtin)"), with nothing more.
                None => out.push(Resolved::NoFile(c.name.as_str().into())),
            }
        }
        Ok(out)
    }

    /// `modinfo NAME` as data: for each module `name` means
    /// ([`modules`](Self::modules) with [`Lookup::Alias`]), its `.modinfo`
    /// entries in order (then its signature's), or why they could not be
    /// read; a builtin's come from `modules.builtin.modinfo`, a module
    /// with neither file nor builtin entry has none. `each` gets them in
    /// turn; the error is the lookup's.
    pub fn info(
        &self,
        name: &str,
        each: &mut dyn FnMut(&Resolved, InfoResult<'_, '_>),
    ) -> earlymod_core::Result<usize> {
        let found = self.modules(name, Lookup::Alias)?;
        for m in &found {
            let image = match m {
                Resolved::File(p) => unpack::load(p),
                Resolved::Builtin(_) => {
                    unpack::map_file(&[&self.dir().dirname, "/modules.builtin.modinfo"].concat())
                        .map(unpack::Image::Mapped)
                }
                Resolved::NoFile(_) => {
                    each(m, Ok(&[]));
                    continue;
                }
            };
            let list = image.and_then(|img| {
                let list = match m {
                    Resolved::Builtin(n) => builtin_info(img.bytes(), n).map_err(Fail::from),
                    _ => module_info(img.bytes()),
                };
                list.map(|l| each(m, Ok(&l)))
            });
            if let Err(f) = list {
                each(m, Err(f));
            }
        }
        Ok(found.len())
    }
}

// ----------------------------------------------------------- modinfo ----

/// One `.modinfo` (or signature) entry, borrowed from the image where it
/// can be.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InfoEntry<'a> {
    /// The field name (`license`, `alias`, `parm`, `signer`, ...).
    pub key: &'a [u8],
    /// Its value, as kmod prints it.
    pub value: Cow<'a, [u8]>,
}

fn split_key_value(s: &[u8]) -> InfoEntry<'_> {
    let (key, value) = match s.iter().position(|&b| b == b'=') {
        Some(eq) => (&s[..eq], &s[eq + 1..]),
        None => (s, &[][..]),
    };
    InfoEntry {
        key,
        value: Cow::Borrowed(value),
    }
}

/// The ELF view of a module image; the errno libkmod reports (with the
/// reason for a malformed file).
fn parse_elf(data: &[u8]) -> Result<elf::Elf<'_>, unpack::Fail> {
    elf::Elf::parse(data).map_err(|e| match e {
        elf::ElfError::NotElf => unpack::Fail::from(e.errno()),
        elf::ElfError::Invalid(why) => unpack::Fail {
            errno: e.errno(),
            why: Some(Cow::Borrowed(why)),
        },
    })
}

/// `modprobe --show-exports` / `--show-modversions` of the module file
/// `path` (kmod 34 takes a path, not a name): kmod's `0x%08x\tNAME` lines
/// on stdout, or one error line at `prio`. Returns the exit code.
pub fn show_symbols(path: &str, table: symbols::Table, log: &Log<'_>, prio: i32) -> i32 {
    if CPath::join(&[path]).is_none_or(|c| rustix::fs::stat(c.as_cstr()).is_err()) {
        log.say(prio, &[&"Module ", &path, &" not found."]);
        return 1;
    }
    let img = unpack::load(path);
    let list = img.as_ref().map_err(Clone::clone).and_then(|img| {
        let elf = parse_elf(img.bytes())?;
        table.read(&elf).map_err(unpack::Fail::from)
    });
    match list {
        Ok(list) => {
            let mut out = Out::stdout();
            for sym in list {
                put!(&mut out; "0x", Hex(sym.crc, 8), "\t", sym.name, "\n");
            }
            0
        }
        Err(f) => {
            log.say(
                prio,
                &[
                    &"could not get ",
                    &table.noun(),
                    &" of ",
                    &path,
                    &": ",
                    &Strerror(f.errno),
                    &Why(f.why.as_deref()),
                ],
            );
            1
        }
    }
}

/// Entries of a module image: `.modinfo` strings in order, then signature
/// fields when the image carries a module signature; the errno libkmod
/// reports (with the reason for a malformed ELF file).
pub fn module_info(data: &[u8]) -> Result<Vec<InfoEntry<'_>>, unpack::Fail> {
    let elf = parse_elf(data)?;
    let sec = elf.section(b".modinfo").ok_or(unpack::Fail::from(ENOENT))?;
    let mut list: Vec<InfoEntry> = elf::split_strings(sec).map(split_key_value).collect();
    if let Some(sig) = signature_info(data) {
        let fields: [(&[u8], Cow<'_, [u8]>); 5] = [
            (b"sig_id", Cow::Borrowed(sig.id_type.as_bytes())),
            (b"signer", Cow::Borrowed(sig.signer)),
            (b"sig_key", Cow::Owned(hex_to_str(&sig.key_id))),
            (b"sig_hashalgo", Cow::Borrowed(sig.hash_algo.as_bytes())),
            (b"signature", Cow::Owned(hex_to_str(sig.sig))),
        ];
        list.extend(fields.map(|(key, value)| InfoEntry { key, value }));
    }
    Ok(list)
}

/// Entries of built-in module `name` in the contents of
/// `modules.builtin.modinfo`; `Err(ENOSYS)` when it is not there.
pub fn builtin_info<'a>(data: &'a [u8], name: &str) -> Result<Vec<InfoEntry<'a>>, i32> {
    // Only NUL-terminated strings count; iteration stops at the first
    // string without a "modname." prefix, as libkmod's iterator does, and
    // only the first run of the module's strings is returned.
    let mut found = Vec::new();
    for s in data
        .split_inclusive(|&b| b == 0)
        .take_while(|s| s.last() == Some(&0))
    {
        let s = &s[..s.len() - 1];
        let Some(dot) = s.iter().position(|&b| b == b'.') else {
            break;
        };
        if &s[..dot] == name.as_bytes() {
            found.push(split_key_value(&s[dot + 1..]));
        } else if !found.is_empty() {
            break;
        }
    }
    if found.is_empty() {
        return Err(ENOSYS);
    }
    Ok(found)
}

/// libkmod's hex dump: "01:AB:..." with "\n\t\t" after every 20 bytes.
fn hex_to_str(bytes: &[u8]) -> Vec<u8> {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    let mut s = Vec::with_capacity(bytes.len() * 3 + bytes.len() / 20 * 3);
    for (i, b) in bytes.iter().enumerate() {
        s.extend_from_slice(&[HEX[usize::from(b >> 4)], HEX[usize::from(b & 15)]]);
        if i + 1 < bytes.len() {
            s.push(b':');
            if (i + 1) % 20 == 0 {
                s.extend_from_slice(b"\n\t\t");
            }
        }
    }
    s
}

// ------------------------------------------------------------- output ----

struct Module {
    name: String,
    /// None for built-in modules (and modules without a file).
    path: Option<String>,
    /// Listed as built in (its entries are in modules.builtin.modinfo).
    builtin: bool,
}

impl From<Resolved> for Module {
    fn from(r: Resolved) -> Module {
        match r {
            Resolved::File(p) => Module {
                name: path_to_modname(&p),
                path: Some(p),
                builtin: false,
            },
            Resolved::Builtin(name) => Module {
                name,
                path: None,
                builtin: true,
            },
            Resolved::NoFile(name) => Module {
                name,
                path: None,
                builtin: false,
            },
        }
    }
}

struct Ctx<'a> {
    field: Option<&'a str>,
    sep: u8,
    moddir: &'a str,
}

/// The pieces, then a flush (stderr is unbuffered in kmod).
fn say(err: &mut dyn Sink, pieces: &[&dyn Piece]) {
    for p in pieces {
        p.put_to(&mut Pieces(err));
    }
    err.flush();
}

/// `modinfo: ERROR: ` + the pieces, written at once.
fn err_line(err: &mut dyn Sink, pieces: &[&dyn Piece]) {
    err.put(b"modinfo: ERROR: ");
    say(err, pieces);
}

/// A parameter merged from `parm` and `parmtype` entries.
struct Param<'a> {
    name: &'a [u8],
    desc: Option<&'a [u8]>,
    ptype: Option<&'a [u8]>,
}

/// `process_parm` over all entries; kmod keeps the list newest-first.
fn collect_params<'a>(list: &'a [InfoEntry<'_>], err: &mut dyn Sink) -> Vec<Param<'a>> {
    let mut params: Vec<Param> = Vec::new();
    for e in list {
        let is_parm = e.key == b"parm";
        if !is_parm && e.key != b"parmtype" {
            continue;
        }
        let value: &[u8] = &e.value;
        let Some(colon) = value.iter().position(|&b| b == b':') else {
            err_line(
                err,
                &[
                    &"Found invalid \"",
                    &e.key,
                    &"=",
                    &value,
                    &"\": missing ':'\n",
                ],
            );
            continue;
        };
        let (name, rest) = (&value[..colon], &value[colon + 1..]);
        let p = match params.iter_mut().position(|p| p.name == name) {
            Some(i) => &mut params[i],
            None => {
                params.push(Param {
                    name,
                    desc: None,
                    ptype: None,
                });
                params.last_mut().unwrap_or_else(|| unreachable!())
            }
        };
        if is_parm {
            p.desc = Some(rest);
        } else {
            p.ptype = Some(rest);
        }
    }
    params.reverse();
    params
}

fn pad16(out: &mut dyn Sink, label: &[u8]) {
    out.put(label);
    out.put(&b"                "[label.len().min(16)..]);
}

/// `modinfo_do`: prints one module; `Err(errno)` on failure.
fn modinfo_do(ctx: &Ctx, m: &Module, out: &mut dyn Sink, err: &mut dyn Sink) -> Result<(), i32> {
    let sep = &[ctx.sep][..];
    let filename = m.path.as_deref().unwrap_or("(builtin)").as_bytes();
    if m.path.is_none() && matches!(ctx.field, None | Some("name")) {
        if ctx.field.is_none() {
            pad16(out, b"name:");
        }
        out.put(m.name.as_bytes());
        out.put(sep);
    }
    match ctx.field {
        Some("filename") => {
            out.put(filename);
            out.put(sep);
            return Ok(());
        }
        None => {
            pad16(out, b"filename:");
            out.put(filename);
            out.put(sep);
        }
        Some(_) => {}
    }
    print_info(ctx, m, out, err)
}

/// The entries of `m`, as `-F`, `-p` or in full.
fn print_info(ctx: &Ctx, m: &Module, out: &mut dyn Sink, err: &mut dyn Sink) -> Result<(), i32> {
    let sep = &[ctx.sep][..];
    // libkmod finds no file to read (ENOENT), which modinfo takes for an
    // old kernel's builtin: nothing more to print, no error.
    if m.path.is_none() && !m.builtin {
        return Ok(());
    }
    let image = match &m.path {
        None => unpack::map_file(&[ctx.moddir, "/modules.builtin.modinfo"].concat())
            .map(unpack::Image::Mapped),
        Some(p) => unpack::load(p),
    };
    let list = image
        .as_ref()
        .map_err(Clone::clone)
        .and_then(|img| match &m.path {
            None => builtin_info(img.bytes(), &m.name).map_err(unpack::Fail::from),
            Some(_) => module_info(img.bytes()),
        });
    let list = match list {
        Ok(l) => l,
        Err(f) if f.errno == ENOENT && m.path.is_none() => return Ok(()),
        Err(f) => {
            err_line(
                err,
                &[
                    &"could not get modinfo from '",
                    &m.name.as_str(),
                    &"': ",
                    &Strerror(f.errno),
                    &Why(f.why.as_deref()),
                    &"\n",
                ],
            );
            return Err(f.errno);
        }
    };

    let params_only = ctx.field == Some("parm");
    if let Some(f) = ctx.field.filter(|_| !params_only) {
        for e in list.iter().filter(|e| e.key == f.as_bytes()) {
            out.put(&e.value);
            out.put(sep);
        }
        return Ok(());
    }
    if !params_only {
        for e in &list {
            if e.key == b"parm" || e.key == b"parmtype" {
                continue;
            }
            out.put(e.key);
            if ctx.sep == 0 {
                out.put(b"=");
            } else {
                out.put(b":");
                // kmod 34: printf("%s:%-*s", key, 15 - min(keylen, 15), ""):
                // a key of 15 bytes or more gets no padding.
                for _ in 0..15usize.saturating_sub(e.key.len()) {
                    out.put(b" ");
                }
            }
            out.put(&e.value);
            out.put(sep);
        }
    }
    for p in collect_params(&list, err) {
        if !params_only {
            pad16(out, b"parm:");
        }
        out.put(p.name);
        match (p.desc, p.ptype) {
            (None, t) if params_only => {
                out.put(b": (");
                out.put(t.unwrap_or(b""));
                out.put(b")");
            }
            (None, t) => {
                out.put(b":");
                out.put(t.unwrap_or(b""));
            }
            (Some(d), Some(t)) => {
                out.put(b":");
                out.put(d);
                out.put(b" (");
                out.put(t);
                out.put(b")");
            }
            (Some(d), None) => {
                out.put(b":");
                out.put(d);
            }
        }
        out.put(sep);
    }
    Ok(())
}

/// Runs `modinfo` with `args` (without `argv[0]`) on the process's stdout
/// and stderr; `pwd` is `$PWD`. Returns the exit code.
pub fn main(args: &mut [&str], pwd: Option<&str>) -> i32 {
    let (mut out, mut err) = (Out::stdout(), Out::stderr());
    run(args, pwd, &resolve, &mut out, &mut err)
}

/// `modinfo` with a given resolver and output; returns the exit code.
pub fn run(
    args: &mut [&str],
    pwd: Option<&str>,
    resolve: Resolver<'_>,
    out: &mut dyn Sink,
    err: &mut dyn Sink,
) -> i32 {
    let p = getopt::parse(args, OPTS);
    let mut o = Opts::default();
    for h in p.hits.iter() {
        match h.id {
            "a" => o.field = Some("author"),
            "d" => o.field = Some("description"),
            "l" => o.field = Some("license"),
            "p" => o.field = Some("parm"),
            "n" => o.field = Some("filename"),
            "0" => o.null = true,
            "m" => o.modname = true,
            "F" => o.field = h.value,
            "k" => o.kversion = h.value,
            "b" => o.basedir = h.value,
            "h" | "V" => {
                out.put(if h.id == "h" { HELP } else { VERSION }.as_bytes());
                out.flush();
                return 0;
            }
            _ => {}
        }
    }
    if let Some(e) = p.error {
        say(err, &[&e.show(PROG, OPTS), &"\n"]);
        return 1;
    }
    if p.operands.is_empty() {
        err_line(err, &[&"missing module or filename.\n"]);
        return 1;
    }
    let moddir = module_dir(o.basedir, o.kversion, pwd);
    let ctx = Ctx {
        field: o.field,
        sep: if o.null { 0 } else { b'\n' },
        moddir: &moddir,
    };

    let mut failed = false;
    for &name in p.operands {
        let mut show = |m: Module| failed |= modinfo_do(&ctx, &m, out, err).is_err();
        if o.modname {
            match resolve(name, &moddir, Lookup::ModName) {
                Ok(mut list) if !list.is_empty() => show(list.swap_remove(0).into()),
                Ok(_) => {
                    err_line(err, &[&"Module name ", &name, &" not found.\n"]);
                    failed = true;
                }
                Err(why) => {
                    err_line(err, &[&why.as_str(), &"\n"]);
                    failed = true;
                }
            }
        } else if is_module_filename(name) {
            show(Module {
                name: path_to_modname(name),
                path: Some(make_absolute(name, pwd)),
                builtin: false,
            });
        } else {
            match resolve(name, &moddir, Lookup::Alias) {
                Err(why) => {
                    err_line(err, &[&why.as_str(), &"\n"]);
                    failed = true;
                }
                Ok(list) if list.is_empty() => {
                    err_line(err, &[&"Module ", &name, &" not found.\n"]);
                    failed = true;
                }
                Ok(list) => list.into_iter().for_each(|r| show(r.into())),
            }
        }
    }
    out.flush();
    i32::from(failed)
}

#[cfg(test)]
pub(crate) mod tests {
    extern crate std;
    use super::*;
    use std::cell::RefCell;
    use std::path::{Path, PathBuf};
    use std::string::ToString;
    use std::vec;

    /// A scratch directory removed when dropped.
    pub(crate) struct TempDir(PathBuf);

    impl TempDir {
        /// A fresh directory named after `tag`, the process and the thread.
        pub(crate) fn new(tag: &str) -> TempDir {
            let p = std::env::temp_dir().join(std::format!(
                "earlymod-{tag}-{}-{:?}",
                std::process::id(),
                std::thread::current().id()
            ));
            let _ = std::fs::remove_dir_all(&p);
            std::fs::create_dir_all(&p).unwrap();
            TempDir(p)
        }

        /// The directory.
        pub(crate) fn path(&self) -> &Path {
            &self.0
        }
    }

    impl Drop for TempDir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    fn run_with(args: &[&str], resolve: Resolver<'_>) -> (i32, String, String) {
        let mut argv: Vec<&str> = args.to_vec();
        let (mut out, mut err) = (Vec::new(), Vec::new());
        let code = run(&mut argv, None, resolve, &mut out, &mut err);
        (
            code,
            String::from_utf8(out).unwrap(),
            String::from_utf8(err).unwrap(),
        )
    }

    fn no_resolve(_: &str, _: &str, _: Lookup) -> Result<Vec<Resolved>, String> {
        Ok(Vec::new())
    }

    #[test]
    fn hex_wraps_every_20_bytes() {
        assert_eq!(hex_to_str(&[]), b"");
        assert_eq!(hex_to_str(&[0xab]), b"AB");
        assert_eq!(hex_to_str(&[0x0f, 0xa0]), b"0F:A0");
        let v: Vec<u8> = (0..20).collect();
        assert!(!hex_to_str(&v).contains(&b'\n'));
        let v: Vec<u8> = (0..21).collect();
        let s = String::from_utf8(hex_to_str(&v)).unwrap();
        assert!(s.ends_with("12:13:\n\t\t14"), "{s}");
    }

    #[test]
    fn strerror_texts() {
        assert_eq!(text(&[&Strerror(2)]), "No such file or directory");
        assert_eq!(text(&[&Strerror(20)]), "Not a directory");
        assert_eq!(text(&[&Strerror(4095)]), "Unknown error 4095");
    }

    #[test]
    fn builtin_modinfo_records() {
        let data: &[u8] = b"ext4.license=GPL\0ext4.description=Fourth\0unix.license=GPL\0unix.alias=net-pf-1\0ext4.late=ignored\0nodot\0after.x=y\0cut.x=y";
        let e = builtin_info(data, "unix").unwrap();
        assert_eq!(e.len(), 2);
        assert_eq!(e[1].key, b"alias");
        assert_eq!(&*e[1].value, b"net-pf-1");
        assert_eq!(builtin_info(data, "ext4").unwrap().len(), 2);
        assert_eq!(builtin_info(data, "nope").unwrap_err(), ENOSYS);
        assert_eq!(builtin_info(data, "after").unwrap_err(), ENOSYS);
        assert_eq!(builtin_info(b"cut.x=y", "cut").unwrap_err(), ENOSYS);

        let resolve = |n: &str, _: &str, _: Lookup| -> Result<Vec<Resolved>, String> {
            Ok(vec![Resolved::Builtin(n.into())])
        };
        // -b ROOT -k KVER -> ROOT/lib/modules/KVER
        let root = TempDir::new("builtin-root");
        let md = root.path().join("lib/modules/9.9");
        std::fs::create_dir_all(&md).unwrap();
        std::fs::write(md.join("modules.builtin.modinfo"), data).unwrap();
        let r = root.path().to_str().unwrap();
        let (code, out, _) = run_with(&["-b", r, "-k", "9.9", "unix"], &resolve);
        assert_eq!(code, 0);
        assert_eq!(
            out,
            "name:           unix\nfilename:       (builtin)\nlicense:        GPL\nalias:          net-pf-1\n"
        );
        let (_, out, _) = run_with(&["-b", r, "-k", "9.9", "-F", "name", "unix"], &resolve);
        assert_eq!(out, "unix\n");
        let (_, out, _) = run_with(&["-b", r, "-k", "9.9", "-F", "alias", "unix"], &resolve);
        assert_eq!(out, "net-pf-1\n");
        // a builtin missing from the file is an error (ENOSYS)
        let (code, _, err) = run_with(&["-b", r, "-k", "9.9", "nope"], &resolve);
        assert_eq!(code, 1);
        assert_eq!(
            err,
            "modinfo: ERROR: could not get modinfo from 'nope': Function not implemented\n"
        );
        // no modules.builtin.modinfo at all: name and filename only
        let (code, out, err) = run_with(&["-b", r, "-k", "1.0", "unix"], &resolve);
        assert_eq!((code, err.as_str()), (0, ""));
        assert_eq!(out, "name:           unix\nfilename:       (builtin)\n");
    }

    #[test]
    fn module_file_output() {
        let d = TempDir::new("file");
        let modinfo: &[u8] = b"license=GPL\0parmtype=a:int\0parm=a:first\0parm=b:second\0\
            averyveryverylongkey=v\0parmtype=c:bool\0noeq\0parm=bad\0";
        let f = elf::tests::build(&[(".modinfo", modinfo)], false, true);
        let p = d.path().join("my-mod.ko");
        std::fs::write(&p, &f).unwrap();
        let ps = p.to_str().unwrap();
        let (code, out, err) = run_with(&[ps], &no_resolve);
        assert_eq!(code, 0);
        assert_eq!(
            out,
            std::format!(
                "filename:       {ps}\nlicense:        GPL\naveryveryverylongkey:v\n\
                 noeq:           \nparm:           c:bool\nparm:           b:second\n\
                 parm:           a:first (int)\n"
            )
        );
        assert_eq!(
            err,
            "modinfo: ERROR: Found invalid \"parm=bad\": missing ':'\n"
        );
        let (_, out, _) = run_with(&["-p", ps], &no_resolve);
        assert_eq!(out, "c: (bool)\nb:second\na:first (int)\n");
        let (_, out, _) = run_with(&["-0", "-F", "license", ps], &no_resolve);
        assert_eq!(out, "GPL\0");
        let (_, out, _) = run_with(&["--null", ps], &no_resolve);
        assert!(out.starts_with(&std::format!("filename:       {ps}\0license=GPL\0")));
        let (_, out, _) = run_with(&["-n", ps], &no_resolve);
        assert_eq!(out, std::format!("{ps}\n"));
        let (_, out, _) = run_with(&["-F", "name", ps], &no_resolve);
        assert_eq!(out, "");

        // no .modinfo section
        let f = elf::tests::build(&[(".text", b"x")], false, true);
        let p2 = d.path().join("bare.ko");
        std::fs::write(&p2, &f).unwrap();
        let (code, _, err) = run_with(&[p2.to_str().unwrap()], &no_resolve);
        assert_eq!(code, 1);
        assert_eq!(
            err,
            "modinfo: ERROR: could not get modinfo from 'bare': No such file or directory\n"
        );
        // not an ELF file
        let p3 = d.path().join("text.ko");
        std::fs::write(&p3, b"hello world\n").unwrap();
        let (_, _, err) = run_with(&[p3.to_str().unwrap()], &no_resolve);
        assert_eq!(
            err,
            "modinfo: ERROR: could not get modinfo from 'text': Exec format error\n"
        );
        // a resolved file that is missing
        let gone = d.path().join("gone.ko").to_str().unwrap().to_string();
        let resolve = move |_: &str, _: &str, _: Lookup| -> Result<Vec<Resolved>, String> {
            Ok(vec![Resolved::File(gone.clone())])
        };
        let (code, out, err) = run_with(&["gone"], &resolve);
        assert_eq!(code, 1);
        assert!(out.starts_with("filename:"), "{out}");
        assert_eq!(
            err,
            "modinfo: ERROR: could not get modinfo from 'gone': No such file or directory\n"
        );
    }

    #[test]
    fn relative_paths_use_pwd() {
        let cwd = std::env::current_dir().unwrap();
        let cwd = cwd.to_str().unwrap();
        assert_eq!(make_absolute("/a/b", None), "/a/b");
        assert_eq!(make_absolute("x.ko", None), std::format!("{cwd}/x.ko"));
        assert_eq!(make_absolute("x.ko", Some(cwd)), std::format!("{cwd}/x.ko"));
        // a $PWD that is not the current directory is ignored
        assert_eq!(
            make_absolute("x.ko", Some("/nonexistent")),
            std::format!("{cwd}/x.ko")
        );
        assert_eq!(path_to_modname("/a/b/snd-hda.ko.xz"), "snd_hda");
        assert!(!is_module_filename("/nonexistent.ko"));
    }

    #[test]
    fn lookup_errors_and_options() {
        let (code, _, err) = run_with(&[], &no_resolve);
        assert_eq!(
            (code, err.as_str()),
            (1, "modinfo: ERROR: missing module or filename.\n")
        );
        let (code, _, err) = run_with(&["-b", "/nonexistent", "-k", "1", "foo"], &no_resolve);
        assert_eq!(
            (code, err.as_str()),
            (1, "modinfo: ERROR: Module foo not found.\n")
        );
        // a failed lookup says why, on one line
        let failing = |n: &str, _: &str, _: Lookup| -> Result<Vec<Resolved>, String> {
            Err(std::format!(
                "could not look up '{n}' in /m: modules.dep.bin: bad index magic 0x00000000"
            ))
        };
        let (code, _, err) = run_with(&["-k", "1", "foo"], &failing);
        assert_eq!(code, 1);
        assert_eq!(
            err,
            "modinfo: ERROR: could not look up 'foo' in /m: modules.dep.bin: bad index magic 0x00000000\n"
        );
        let (_, _, err) = run_with(&["-k", "1", "-m", "foo"], &failing);
        assert!(err.starts_with("modinfo: ERROR: could not look up 'foo'"));
        let (_, _, err) = run_with(&["-k", "1", "-m", "foo"], &no_resolve);
        assert_eq!(err, "modinfo: ERROR: Module name foo not found.\n");
        let (code, _, err) = run_with(&["--fi", "x"], &no_resolve);
        assert_eq!(code, 1);
        assert!(err.contains("is ambiguous"), "{err}");
        let (code, _, err) = run_with(&["-F"], &no_resolve);
        assert_eq!(code, 1);
        assert_eq!(err, "modinfo: option requires an argument -- 'F'\n");
        let (code, out, _) = run_with(&["-h"], &no_resolve);
        assert_eq!(code, 0);
        assert!(out.starts_with("Usage:\n\tmodinfo [options]"));
        let (code, out, _) = run_with(&["-V"], &no_resolve);
        assert_eq!(code, 0);
        assert!(out.starts_with("kmod version 30\n"));
        // the resolver sees ROOT/lib/modules/KVER, made absolute
        let seen = RefCell::new(String::new());
        let spy = |_: &str, d: &str, _: Lookup| -> Result<Vec<Resolved>, String> {
            *seen.borrow_mut() = d.to_string();
            Ok(Vec::new())
        };
        run_with(&["-b", "/r", "-k", "6.1", "x"], &spy);
        assert_eq!(*seen.borrow(), "/r/lib/modules/6.1");
        run_with(&["-b", "/", "-k", "6.1", "x"], &spy);
        assert_eq!(*seen.borrow(), "//lib/modules/6.1");
        run_with(&["-k", "6.1", "x"], &spy);
        assert_eq!(*seen.borrow(), "/lib/modules/6.1");
    }
}
