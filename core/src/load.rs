//! Loading a probe list into the kernel, behind the [`Kernel`] trait.
//!
//! The policy is libkmod's (`kmod_module_probe_insert_module` and
//! `kmod_module_insert_module`): modules already in the kernel are skipped,
//! `EEXIST` is success, a failing softdep is ignored while a failing
//! dependency stops the probe, and a module is handed to the kernel as a file
//! (`finit_module`) when it is uncompressed or compressed in the format the
//! kernel decompresses itself; otherwise it is decompressed in userspace.
//! earlymod goes one step further than kmod: when the kernel's own decoder
//! rejects a file (`EINVAL` on the compressed path), it retries in userspace.
//!
//! Everything here is allocation-free; the kernel side is a trait so the
//! whole policy runs on the host against a fake kernel.

use crate::config::Config;
use crate::name::ModName;
use crate::probe::{InitState, KernelState, Resolver, Step, step_options};
use crate::put;
use crate::text::{self, Piece, Sink};
use core::ffi::CStr;
use core::fmt::{self, Write};

/// `finit_module` flag: ignore symbol version hashes.
pub const MODULE_INIT_IGNORE_MODVERSIONS: u32 = 1;
/// `finit_module` flag: ignore the kernel version magic.
pub const MODULE_INIT_IGNORE_VERMAGIC: u32 = 2;
/// `finit_module` flag: the file is compressed; the kernel decompresses it.
pub const MODULE_INIT_COMPRESSED_FILE: u32 = 4;

/// Longest module path handed to the kernel.
pub const MAX_PATH: usize = 4096;
/// Longest parameter text handed to the kernel (its NUL not counted).
pub const MAX_PARAMS: usize = 4096;

/// Linux errno values the loader reasons about.
pub mod errno {
    /// Operation not permitted (module_blacklist=, lockdown).
    pub const EPERM: i32 = 1;
    /// No such file, or unknown symbol / parameter.
    pub const ENOENT: i32 = 2;
    /// Interrupted system call.
    pub const EINTR: i32 = 4;
    /// Exec format error: not a valid module.
    pub const ENOEXEC: i32 = 8;
    /// Try again.
    pub const EAGAIN: i32 = 11;
    /// Out of memory.
    pub const ENOMEM: i32 = 12;
    /// Busy (removal).
    pub const EBUSY: i32 = 16;
    /// Already loaded.
    pub const EEXIST: i32 = 17;
    /// Invalid argument (bad parameter, or the in-kernel decoder failed).
    pub const EINVAL: i32 = 22;
    /// Function not implemented.
    pub const ENOSYS: i32 = 38;
    /// Operation not supported (no in-kernel decompression).
    pub const EOPNOTSUPP: i32 = 95;
    /// Key was rejected by service (signature).
    pub const EKEYREJECTED: i32 = 129;
}

/// A kernel error number.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Errno(pub i32);

impl Errno {
    /// glibc's `strerror` text for the errno values a loader meets.
    pub fn text(self) -> &'static str {
        match self.0 {
            1 => "Operation not permitted",
            2 => "No such file or directory",
            4 => "Interrupted system call",
            5 => "Input/output error",
            7 => "Argument list too long",
            8 => "Exec format error",
            9 => "Bad file descriptor",
            11 => "Resource temporarily unavailable",
            12 => "Cannot allocate memory",
            13 => "Permission denied",
            14 => "Bad address",
            16 => "Device or resource busy",
            17 => "File exists",
            19 => "No such device",
            21 => "Is a directory",
            22 => "Invalid argument",
            26 => "Text file busy",
            27 => "File too large",
            28 => "No space left on device",
            36 => "File name too long",
            38 => "Function not implemented",
            61 => "No data available",
            74 => "Bad message",
            95 => "Operation not supported",
            110 => "Connection timed out",
            126 => "Required key not available",
            127 => "Key has expired",
            128 => "Key has been revoked",
            129 => "Key was rejected by service",
            _ => "Unknown error",
        }
    }
}

impl Piece for Errno {
    fn put_to(&self, out: &mut dyn Sink) {
        out.put(self.text().as_bytes());
    }
}

impl fmt::Display for Errno {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.text())
    }
}

/// Compression of a module file, from its first bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    /// Plain ELF (or anything unrecognised: the kernel judges it).
    None,
    /// `1F 8B`.
    Gzip,
    /// `FD 37 7A 58 5A 00`.
    Xz,
    /// `28 B5 2F FD`.
    Zstd,
}

impl Compression {
    /// Detects the format from a file's first bytes (6 are enough).
    pub fn detect(head: &[u8]) -> Self {
        if head.starts_with(&[0x1f, 0x8b]) {
            Compression::Gzip
        } else if head.starts_with(&[0xfd, b'7', b'z', b'X', b'Z', 0]) {
            Compression::Xz
        } else if head.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
            Compression::Zstd
        } else {
            Compression::None
        }
    }

    /// The name `/sys/module/compression` uses.
    pub fn name(self) -> &'static str {
        match self {
            Compression::None => "none",
            Compression::Gzip => "gzip",
            Compression::Xz => "xz",
            Compression::Zstd => "zstd",
        }
    }

    /// Parses `/sys/module/compression` (`gzip\n`, `xz\n` or `zstd\n`).
    pub fn from_sysfs(text: &[u8]) -> Option<Self> {
        match text.trim_ascii_end() {
            b"gzip" => Some(Compression::Gzip),
            b"xz" => Some(Compression::Xz),
            b"zstd" => Some(Compression::Zstd),
            _ => None,
        }
    }
}

/// The reason text of a decompression failure.
pub type Reason = heapless::String<96>;

/// Why one module did not load.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LoadError {
    /// The kernel failed with this errno.
    Kernel(Errno),
    /// The module file could not be opened or read.
    Open(Errno),
    /// Userspace decompression failed; the text says why.
    Decompress(Reason),
    /// This build has no userspace decoder for the format.
    NoDecoder(Compression),
    /// A path or parameter string did not fit its buffer: what, and the
    /// bound in bytes.
    TooLong(&'static str, usize),
    /// A path or parameter string holds a NUL byte (a C string cannot).
    EmbeddedNul(&'static str),
    /// An index could not answer a question the policy asks (is this
    /// module builtin?): the error names the file.
    Index(crate::error::Error),
    /// An install command failed with this exit status.
    Command(i32),
    /// Not attempted: this dependency failed earlier in the same probe.
    DependencyFailed(crate::name::ModName),
    /// Neither builtin nor in `modules.dep` (a config alias to a module the
    /// tree lacks): nothing to load (kmod: "could not find module by name").
    NoModuleFile,
}

impl Piece for LoadError {
    fn put_to(&self, out: &mut dyn Sink) {
        match self {
            LoadError::Kernel(e) => put!(out; match e.0 {
                errno::ENOEXEC => "Invalid module format (not a module for this kernel, see dmesg)",
                errno::ENOENT => "Unknown symbol in module, or unknown parameter (see dmesg)",
                errno::EKEYREJECTED | 126 => "module signature rejected (see dmesg)",
                errno::EPERM => "Operation not permitted (module_blacklist= or lockdown?)",
                errno::EEXIST => "Module already in kernel",
                _ => e.text(),
            }),
            LoadError::Open(e) => put!(out; "cannot read the module file: ", e),
            LoadError::Decompress(why) => put!(out; "decompression failed: ", why.as_str()),
            LoadError::NoDecoder(c) => {
                put!(out; c.name(), " modules need a decoder this build lacks")
            }
            LoadError::TooLong(what, limit) => {
                put!(out; *what, " too long (limit ", *limit, " bytes)")
            }
            LoadError::EmbeddedNul(what) => put!(out; *what, " contains a NUL byte"),
            LoadError::Index(e) => e.put_to(out),
            LoadError::Command(status) => {
                put!(out; "install command exited with status ", *status)
            }
            LoadError::DependencyFailed(dep) => {
                put!(out; "not loaded: its dependency ", dep.as_str(), " failed")
            }
            LoadError::NoModuleFile => {
                put!(out; "no such module: not builtin and not in modules.dep")
            }
        }
    }
}

impl fmt::Display for LoadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        text::display(self, f)
    }
}

/// The kernel and file system as the loader needs them.
pub trait Kernel: KernelState {
    /// An open module file.
    type File;

    /// Opens a module file read-only.
    fn open(&mut self, path: &CStr) -> Result<Self::File, Errno>;
    /// One `pread`: up to `buf.len()` bytes at `offset`; fewer (a short read)
    /// is allowed, 0 means end of file.
    fn read_at(&mut self, file: &Self::File, offset: u64, buf: &mut [u8]) -> Result<usize, Errno>;
    /// One `finit_module(fd, params, flags)` call (no retrying: the policy
    /// for `EINTR`/`EAGAIN` is [`retry_transient`]'s).
    fn finit_module(&mut self, file: &Self::File, params: &CStr, flags: u32) -> Result<(), Errno>;
    /// Decompresses `file` in userspace and calls `init_module`.
    fn init_module_decompressed(
        &mut self,
        file: &Self::File,
        format: Compression,
        params: &CStr,
    ) -> Result<(), LoadError>;
    /// The format the kernel decompresses itself (`/sys/module/compression`).
    fn kernel_compression(&mut self) -> Option<Compression>;
    /// Runs an install command (`/bin/sh -c "CMD OPTIONS"`).
    fn run_command(&mut self, command: &str, options: &str) -> Result<(), LoadError>;
}

/// How one module was (or was not) loaded, for `-v` and boot reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    /// `finit_module` on the plain file.
    File,
    /// `finit_module` with `MODULE_INIT_COMPRESSED_FILE`.
    KernelDecompressed(Compression),
    /// Decompressed here, then `init_module`.
    UserDecompressed(Compression),
    /// The kernel's decoder refused the file; decompressed here instead.
    UserAfterKernelFailed(Compression),
    /// Already live or builtin.
    AlreadyLoaded,
    /// An install command ran.
    Command,
}

/// Flags for one insertion.
#[derive(Debug, Clone, Copy, Default)]
pub struct InsertFlags {
    /// `--force-modversion` / `-f`.
    pub ignore_modversions: bool,
    /// `--force-vermagic` / `-f`.
    pub ignore_vermagic: bool,
}

impl InsertFlags {
    fn bits(self) -> u32 {
        (if self.ignore_modversions {
            MODULE_INIT_IGNORE_MODVERSIONS
        } else {
            0
        }) | (if self.ignore_vermagic {
            MODULE_INIT_IGNORE_VERMAGIC
        } else {
            0
        })
    }
}

/// Attempts a call gets when it keeps failing with `EINTR` or `EAGAIN`.
pub const TRANSIENT_ATTEMPTS: u32 = 5;

/// Whether `e` says "try again" (`EINTR`, `EAGAIN`) rather than "failed".
pub fn is_transient(e: Errno) -> bool {
    matches!(e.0, errno::EINTR | errno::EAGAIN)
}

/// Runs `call` again while it fails with a transient error, at most
/// [`TRANSIENT_ATTEMPTS`] times in all; the last error is returned. Bounded,
/// so a kernel that keeps answering `EAGAIN` cannot hold PID 1 forever.
pub fn retry_transient<T>(mut call: impl FnMut() -> Result<T, Errno>) -> Result<T, Errno> {
    let mut attempt = 1;
    loop {
        match call() {
            Err(e) if is_transient(e) && attempt < TRANSIENT_ATTEMPTS => attempt += 1,
            r => return r,
        }
    }
}

/// Fills `buf` from the start of `file` despite short reads; returns the
/// bytes read (fewer only at end of file).
fn read_head<K: Kernel>(kernel: &mut K, file: &K::File, buf: &mut [u8]) -> Result<usize, Errno> {
    let mut n = 0;
    while n < buf.len() {
        match retry_transient(|| kernel.read_at(file, n as u64, &mut buf[n..]))? {
            0 => break,
            got => n += got.min(buf.len() - n),
        }
    }
    Ok(n)
}

/// The format a module file's name says (kbuild's suffixes): `.ko` plain,
/// `.ko.gz`, `.ko.xz`, `.ko.zst`; `None` for any other name.
fn named_format(path: &[u8]) -> Option<Compression> {
    [
        (&b".ko"[..], Compression::None),
        (b".ko.xz", Compression::Xz),
        (b".ko.zst", Compression::Zstd),
        (b".ko.gz", Compression::Gzip),
    ]
    .into_iter()
    .find(|(suffix, _)| path.ends_with(suffix))
    .map(|(_, format)| format)
}

/// Whether a load that took the file for its name's format may have failed
/// because the file is in another one (a misnamed file): the kernel found
/// no ELF header, or the userspace decoder found no stream of that format.
fn maybe_misnamed(e: &LoadError) -> bool {
    matches!(
        e,
        LoadError::Kernel(Errno(errno::ENOEXEC))
            | LoadError::Decompress(_)
            | LoadError::NoDecoder(_)
    )
}

/// Inserts one module file the way kmod does, with earlymod's fallback.
/// `compression` is the kernel's own format, if any. Transient errors
/// (`EINTR`, `EAGAIN`) of every call are retried a bounded number of times.
///
/// kmod reads every file's magic first. Here a file whose name says its
/// format (kbuild's suffixes) goes to the kernel, or to the decoder, as
/// that format straight away: `open`, `finit_module`, `close` for a plain
/// or kernel-decompressed module. Only when that fails in a way a misnamed
/// file would is the magic read; a file in another format than its name
/// says then takes its magic's path (as in kmod), otherwise the first error
/// stands.
pub fn insert_file<K: Kernel>(
    kernel: &mut K,
    path: &CStr,
    params: &CStr,
    flags: InsertFlags,
    compression: Option<Compression>,
) -> Result<Method, LoadError> {
    let file = retry_transient(|| kernel.open(path)).map_err(LoadError::Open)?;
    let named = named_format(path.to_bytes());
    let mut first = None;
    if let Some(format) = named {
        match insert_as(kernel, &file, format, params, flags, compression) {
            Err(e) if maybe_misnamed(&e) => first = Some(e),
            r => return r,
        }
    }
    let mut head = [0u8; 6];
    let n = read_head(kernel, &file, &mut head).map_err(LoadError::Open)?;
    let format = Compression::detect(&head[..n]);
    match first {
        Some(e) if named == Some(format) => Err(e),
        _ => insert_as(kernel, &file, format, params, flags, compression),
    }
}

/// Inserts `file` as `format`: `finit_module` when it is plain or the
/// kernel's own format (falling back to userspace when the kernel's
/// decoder refuses the data), else decompressed here.
fn insert_as<K: Kernel>(
    kernel: &mut K,
    file: &K::File,
    format: Compression,
    params: &CStr,
    flags: InsertFlags,
    compression: Option<Compression>,
) -> Result<Method, LoadError> {
    let bits = flags.bits();
    if format == Compression::None {
        retry_transient(|| kernel.finit_module(file, params, bits)).map_err(LoadError::Kernel)?;
        return Ok(Method::File);
    }
    if compression == Some(format) {
        match retry_transient(|| {
            kernel.finit_module(file, params, bits | MODULE_INIT_COMPRESSED_FILE)
        }) {
            Ok(()) => return Ok(Method::KernelDecompressed(format)),
            // The kernel's decoder refused the data (e.g. xz made with a
            // crc64 check or a big dictionary): decode it here instead.
            Err(Errno(errno::EINVAL)) | Err(Errno(errno::EOPNOTSUPP)) => {
                kernel.init_module_decompressed(file, format, params)?;
                return Ok(Method::UserAfterKernelFailed(format));
            }
            Err(e) => return Err(LoadError::Kernel(e)),
        }
    }
    kernel.init_module_decompressed(file, format, params)?;
    Ok(Method::UserDecompressed(format))
}

/// What happened to one entry of a probe list.
pub struct Outcome<'s, 'a, 'k> {
    /// The entry.
    pub step: &'s Step<'a, 'k>,
    /// How it went.
    pub result: Result<Method, LoadError>,
}

/// Options of a probe run.
#[derive(Debug, Clone, Copy, Default)]
pub struct RunFlags {
    /// Do not consult the kernel's loaded state (`-D`).
    pub ignore_loaded: bool,
    /// Print, do not load (`-n`, `-D`).
    pub dry_run: bool,
    /// `--first-time`: the target being loaded already is an error.
    pub fail_on_loaded: bool,
    /// Insertion flags (`-f`).
    pub insert: InsertFlags,
}

/// Builds `dir/path` (or `path` when absolute) as a C string in `buf`.
pub fn module_path<'b>(
    buf: &'b mut heapless::Vec<u8, MAX_PATH>,
    dir: &str,
    path: &str,
) -> Result<&'b CStr, LoadError> {
    buf.clear();
    let too_long = || LoadError::TooLong("module path", MAX_PATH - 1);
    if !path.starts_with('/') {
        buf.extend_from_slice(dir.as_bytes())
            .map_err(|_| too_long())?;
        buf.push(b'/').map_err(|_| too_long())?;
    }
    buf.extend_from_slice(path.as_bytes())
        .map_err(|_| too_long())?;
    buf.push(0).map_err(|_| too_long())?;
    CStr::from_bytes_with_nul(buf).map_err(|_| LoadError::EmbeddedNul("module path"))
}

/// A fixed-size C-string builder for module parameters.
pub struct Params {
    /// The text and, once [`Params::as_cstr`] asked, its NUL.
    buf: heapless::Vec<u8, { MAX_PARAMS + 1 }>,
}

impl Write for Params {
    /// Appends text; more than [`MAX_PARAMS`] bytes in all is an error
    /// (the buffer keeps room for the NUL).
    fn write_str(&mut self, s: &str) -> fmt::Result {
        if self.buf.len() + s.len() > MAX_PARAMS {
            return Err(fmt::Error);
        }
        self.buf
            .extend_from_slice(s.as_bytes())
            .map_err(|_| fmt::Error)
    }
}

impl Default for Params {
    fn default() -> Self {
        Self::new()
    }
}

impl Params {
    /// No parameters.
    pub fn new() -> Params {
        Params {
            buf: heapless::Vec::new(),
        }
    }

    /// Parameters given as one string (`insmod FILE a=1 b=2`); text longer
    /// than [`MAX_PARAMS`] is an error, never cut.
    pub fn from_text(text: &str) -> Result<Params, LoadError> {
        let mut p = Params::new();
        p.write_str(text).map_err(|_| too_long_params())?;
        Ok(p)
    }

    /// Rewrites these parameters for `step` (one buffer serves a whole probe).
    pub fn fill(
        &mut self,
        cfg: &Config<'_>,
        step: &Step<'_, '_>,
        extra: &str,
    ) -> Result<(), LoadError> {
        self.buf.clear();
        if step_options(cfg, step, extra, self).is_err() {
            self.buf.clear();
            return Err(too_long_params());
        }
        Ok(())
    }

    /// The text, without the NUL.
    pub fn as_str(&self) -> &str {
        let text = self.buf.strip_suffix(&[0]).unwrap_or(&self.buf);
        core::str::from_utf8(text).unwrap_or("")
    }

    /// As a C string.
    pub fn as_cstr(&mut self) -> Result<&CStr, LoadError> {
        if self.buf.last() != Some(&0) {
            self.buf.push(0).map_err(|_| too_long_params())?;
        }
        let len = self.buf.len();
        CStr::from_bytes_with_nul(&self.buf[..len])
            .map_err(|_| LoadError::EmbeddedNul("module parameters"))
    }
}

fn too_long_params() -> LoadError {
    LoadError::TooLong("module parameters", MAX_PARAMS)
}

/// One entry of a load, as the policy sees it: a probe-list [`Step`], or a
/// job PID 1 carries into a child process.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Entry<'e> {
    /// Module name.
    pub name: &'e str,
    /// Known builtin (found through a builtin index).
    pub builtin: bool,
    /// Made from a module file's path: never builtin
    /// ([`Candidate::from_path`](crate::probe::Candidate::from_path)).
    pub from_path: bool,
    /// Path from `modules.dep`, relative to the module directory or absolute.
    pub path: Option<&'e str>,
    /// Install command to run instead of loading.
    pub install: Option<&'e str>,
    /// The probed module itself (`--first-time` concerns it only).
    pub is_target: bool,
}

impl<'e> Entry<'e> {
    /// The entry of one probe-list step.
    pub fn of(step: &'e Step<'_, '_>) -> Self {
        Entry {
            name: &step.name,
            builtin: step.builtin,
            from_path: step.from_path,
            path: step.path,
            install: step.install,
            is_target: step.is_target,
        }
    }
}

/// libkmod's `module_is_inkernel`: known builtin, listed in
/// `modules.builtin` (unless made from a path), or `live` in sysfs. An index that cannot answer is an
/// error (naming the file), not "no".
pub fn in_kernel(
    resolver: &Resolver<'_, '_>,
    entry: &Entry<'_>,
    kernel: &dyn KernelState,
) -> Result<bool, LoadError> {
    Ok(entry.builtin
        || (!entry.from_path && resolver.is_builtin(entry.name).map_err(LoadError::Index)?)
        || kernel.initstate(entry.name) == InitState::Live)
}

/// What the policy decides for one entry before the kernel is asked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Load it: [`act`].
    Load,
    /// Already in the kernel (live or builtin): nothing to do or report.
    InKernel,
    /// `--first-time` and the target is in the kernel already: the probe
    /// fails with `EEXIST`, nothing reported (libkmod's order).
    FirstTimeLoaded,
    /// Not handed to the kernel, reported as failed: a `modules.dep`
    /// dependency failed earlier in the same run, or an index could not
    /// tell whether the module is builtin.
    Fail(LoadError),
}

/// The failures of the run so far, by `modules.dep` path: the module name
/// when the entry at that path failed (or was not loaded because of a
/// failure). `None` when nothing failed yet (no lookup needed).
pub type Failures<'f> = Option<&'f dyn Fn(&str) -> Option<ModName>>;

/// The loader's policy for one entry before the kernel is asked — the one
/// policy of `modprobe` ([`run_probe`]) and of PID 1's parallel plans:
/// an entry already in the kernel is skipped (or, the `--first-time`
/// target, refused); an entry with a `modules.dep` dependency that failed
/// earlier in the run is not handed to the kernel (install commands run
/// anyway, as in kmod). Then [`act`] loads it.
pub fn decide(
    resolver: &Resolver<'_, '_>,
    entry: &Entry<'_>,
    flags: RunFlags,
    failed: Failures<'_>,
    kernel: &dyn KernelState,
) -> Decision {
    if !flags.ignore_loaded {
        match in_kernel(resolver, entry, kernel) {
            // libkmod: -EEXIST, success unless --first-time on the target.
            Ok(true) if flags.fail_on_loaded && entry.is_target => {
                return Decision::FirstTimeLoaded;
            }
            Ok(true) => return Decision::InKernel,
            Ok(false) => {}
            Err(e) => return Decision::Fail(e),
        }
    }
    let Some(failed) = failed else {
        return Decision::Load;
    };
    if entry.install.is_some() || entry.path.is_none() {
        return Decision::Load;
    }
    match failed_dependency(resolver, entry, failed) {
        Ok(Some(dep)) => Decision::Fail(LoadError::DependencyFailed(dep)),
        Ok(None) => Decision::Load,
        Err(e) => Decision::Fail(e),
    }
}

/// The first of `entry`'s `modules.dep` dependencies that `failed` knows
/// failed.
fn failed_dependency(
    resolver: &Resolver<'_, '_>,
    entry: &Entry<'_>,
    failed: &dyn Fn(&str) -> Option<ModName>,
) -> Result<Option<ModName>, LoadError> {
    let line = resolver.db.dep_line(entry.name).map_err(LoadError::Index)?;
    Ok(line
        .and_then(crate::db::DepLine::parse)
        .and_then(|l| l.deps().find_map(failed)))
}

/// Loads one entry [`decide`] said to load: runs its install command
/// (with `params` as its options), or inserts its file (`dirname/path`)
/// with [`insert_file`]; an entry with neither is builtin (nothing to do)
/// or an error, as in kmod.
/// `EEXIST` (loaded meanwhile, by the kernel's `request_module` say) is
/// success, except for the `--first-time` target.
pub fn act<K: Kernel>(
    kernel: &mut K,
    dirname: &str,
    entry: &Entry<'_>,
    params: &mut Params,
    flags: RunFlags,
    compression: Option<Compression>,
) -> Result<Method, LoadError> {
    let result = if let Some(cmd) = entry.install {
        if flags.dry_run {
            Ok(Method::Command)
        } else {
            kernel
                .run_command(cmd, params.as_str())
                .map(|_| Method::Command)
        }
    } else if let Some(p) = entry.path {
        if flags.dry_run {
            Ok(Method::File)
        } else {
            let mut path = heapless::Vec::new();
            match (module_path(&mut path, dirname, p), params.as_cstr()) {
                (Ok(cpath), Ok(cparams)) => {
                    insert_file(kernel, cpath, cparams, flags.insert, compression)
                }
                (Err(e), _) | (_, Err(e)) => Err(e),
            }
        }
    } else if entry.builtin || flags.dry_run {
        // Builtin: nothing to load (a dry run prints it as builtin, or
        // nothing for an alias with no module file, as kmod does).
        Ok(Method::AlreadyLoaded)
    } else {
        // Not builtin (decide asked), no file: kmod fails with -ENOENT.
        Err(LoadError::NoModuleFile)
    };
    match result {
        Err(LoadError::Kernel(Errno(errno::EEXIST)))
            if !(flags.fail_on_loaded && entry.is_target) =>
        {
            Ok(Method::AlreadyLoaded)
        }
        r => r,
    }
}

/// Runs a probe list like `kmod_module_probe_insert_module`: each entry
/// goes through [`decide`] and [`act`] in order (in a dry run it is only
/// reported); `report` sees every entry acted on. Returns the probe's
/// result: `Ok` when every required entry loaded or was already there.
pub fn run_probe<'s, 'a, 'k, K: Kernel>(
    resolver: &Resolver<'_, 'a>,
    dirname: &str,
    steps: &'s [Step<'a, 'k>],
    extra: &str,
    flags: RunFlags,
    kernel: &mut K,
    report: &mut dyn FnMut(&Outcome<'s, 'a, 'k>, &str),
) -> Result<(), (usize, LoadError)> {
    let compression = if flags.dry_run {
        None
    } else {
        kernel.kernel_compression()
    };
    let mut params = Params::new();
    // Steps that failed so far: a later step that depends on one of them is
    // not handed to the kernel (a softdep's dependency may fail without
    // stopping the probe; its dependents then cannot load either).
    let mut failed: heapless::Vec<usize, { crate::probe::MAX_STEPS }> = heapless::Vec::new();
    for (i, step) in steps.iter().enumerate() {
        // The same module met again after it failed (kmod's lists may hold
        // one module twice): not attempted, not reported a second time.
        if failed
            .iter()
            .any(|&j| steps[j].name == step.name && steps[j].path == step.path)
        {
            continue;
        }
        let entry = Entry::of(step);
        let by_path = |p: &str| {
            failed
                .iter()
                .map(|&j| &steps[j])
                .find(|f| f.path == Some(p))
                .map(|f| f.name.clone())
        };
        let failures: Failures<'_> = if failed.is_empty() {
            None
        } else {
            Some(&by_path)
        };
        let decision = match decide(resolver, &entry, flags, failures, &*kernel) {
            Decision::InKernel => continue,
            Decision::FirstTimeLoaded => return Err((i, LoadError::Kernel(Errno(errno::EEXIST)))),
            d => d,
        };
        // Options that do not fit stop the probe (before its report).
        if let Err(e) = params.fill(resolver.cfg, step, extra) {
            return Err((i, e));
        }
        let result = match decision {
            Decision::Fail(e) => Err(e),
            _ => act(kernel, dirname, &entry, &mut params, flags, compression),
        };
        let outcome = Outcome { step, result };
        report(&outcome, params.as_str());
        if let Err(e) = outcome.result {
            if step.required {
                return Err((i, e));
            }
            // Cannot overflow: one entry per step.
            let _ = failed.push(i);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    extern crate std;
    use super::*;
    use crate::db::{ModuleDb, Source};
    use crate::probe::{Candidates, InitState, NameArena, NothingLoaded, ProbeFlags, Steps};
    use std::string::{String, ToString};
    use std::vec::Vec;

    /// Which kernel call a transient fault hits.
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    enum Call {
        Open,
        Read,
        Finit,
    }

    /// A kernel whose files, loaded set and failures are scripted.
    #[derive(Default)]
    struct Fake {
        files: Vec<(String, Vec<u8>)>,
        live: Vec<String>,
        /// Persistent failures: the load of this module fails with this errno.
        fail: Vec<(String, i32)>,
        /// Transient failures: (module, call, errno, how many times more).
        transient: Vec<(String, Call, i32, u32)>,
        /// Files that come back one byte per read.
        short_reads: Vec<String>,
        /// In the kernel already, not yet visible in sysfs (a race).
        hidden: Vec<String>,
        /// (trigger, module): `module` goes live (another loader) when
        /// `trigger` is loaded.
        appears: Vec<(String, String)>,
        /// Each module's dependencies, checked at every load.
        deps: Vec<(String, Vec<String>)>,
        /// Broken rules: a module loaded twice, or before a dependency.
        violations: Vec<String>,
        /// Modules opened, in order.
        opened: Vec<String>,
        kernel_fails_decoding: bool,
        /// `read_at` calls made.
        reads: usize,
        compression: Option<Compression>,
        calls: Vec<String>,
    }

    fn stem(path: &str) -> String {
        crate::name::modname_from_path(path).unwrap().to_string()
    }

    impl KernelState for Fake {
        fn initstate(&self, name: &str) -> InitState {
            if self.live.iter().any(|l| l == name) {
                InitState::Live
            } else {
                InitState::Absent
            }
        }
    }

    impl Kernel for Fake {
        type File = String;
        fn open(&mut self, path: &CStr) -> Result<String, Errno> {
            let p = path.to_str().unwrap().to_string();
            self.opened.push(stem(&p));
            self.transient(&p, Call::Open)?;
            if self.files.iter().any(|(f, _)| *f == p) {
                Ok(p)
            } else {
                Err(Errno(errno::ENOENT))
            }
        }
        fn read_at(&mut self, file: &String, offset: u64, buf: &mut [u8]) -> Result<usize, Errno> {
            self.transient(file, Call::Read)?;
            self.reads += 1;
            let data = &self.files.iter().find(|(f, _)| f == file).unwrap().1;
            let data = data.get(offset as usize..).unwrap_or(&[]);
            let mut n = data.len().min(buf.len());
            if self.short_reads.contains(&stem(file)) {
                n = n.min(1);
            }
            buf[..n].copy_from_slice(&data[..n]);
            Ok(n)
        }
        fn finit_module(&mut self, file: &String, params: &CStr, flags: u32) -> Result<(), Errno> {
            let name = stem(file);
            self.calls.push(std::format!(
                "finit {name} flags={flags} params={}",
                params.to_str().unwrap()
            ));
            self.transient(file, Call::Finit)?;
            if flags & MODULE_INIT_COMPRESSED_FILE != 0 && self.kernel_fails_decoding {
                return Err(Errno(errno::EINVAL));
            }
            // The kernel judges the data, not the name: no ELF header is
            // ENOEXEC, data its decoder does not know is EINVAL.
            let format = Compression::detect(self.data(file));
            if flags & MODULE_INIT_COMPRESSED_FILE == 0 && format != Compression::None {
                return Err(Errno(errno::ENOEXEC));
            }
            if flags & MODULE_INIT_COMPRESSED_FILE != 0 && Some(format) != self.compression {
                return Err(Errno(errno::EINVAL));
            }
            self.finish(name)
        }
        fn init_module_decompressed(
            &mut self,
            file: &String,
            format: Compression,
            params: &CStr,
        ) -> Result<(), LoadError> {
            let name = stem(file);
            self.calls.push(std::format!(
                "init {name} {} params={}",
                format.name(),
                params.to_str().unwrap()
            ));
            if Compression::detect(self.data(file)) != format {
                let mut why = Reason::new();
                let _ = why.push_str("not ");
                let _ = why.push_str(format.name());
                return Err(LoadError::Decompress(why));
            }
            self.finish(name).map_err(LoadError::Kernel)
        }
        fn kernel_compression(&mut self) -> Option<Compression> {
            self.compression
        }
        fn run_command(&mut self, command: &str, options: &str) -> Result<(), LoadError> {
            self.calls.push(std::format!("run {command} {options}"));
            Ok(())
        }
    }

    impl Fake {
        fn data(&self, file: &str) -> &[u8] {
            &self.files.iter().find(|(f, _)| f == file).unwrap().1
        }

        fn transient(&mut self, path: &str, call: Call) -> Result<(), Errno> {
            let name = stem(path);
            match self
                .transient
                .iter_mut()
                .find(|t| t.0 == name && t.1 == call && t.3 > 0)
            {
                Some(t) => {
                    t.3 -= 1;
                    Err(Errno(t.2))
                }
                None => Ok(()),
            }
        }

        fn finish(&mut self, name: String) -> Result<(), Errno> {
            if self.live.contains(&name) {
                self.violations.push(std::format!("{name} loaded twice"));
                return Err(Errno(errno::EEXIST));
            }
            if let Some(i) = self.hidden.iter().position(|h| *h == name) {
                self.hidden.remove(i);
                self.live.push(name);
                return Err(Errno(errno::EEXIST));
            }
            if let Some((_, e)) = self.fail.iter().find(|(n, _)| *n == name) {
                return Err(Errno(*e));
            }
            if let Some((_, deps)) = self.deps.iter().find(|(n, _)| *n == name) {
                for d in deps {
                    if !self.live.contains(d) {
                        self.violations
                            .push(std::format!("{name} loaded before its dependency {d}"));
                    }
                }
            }
            let appearing: Vec<String> = self
                .appears
                .iter()
                .filter(|(t, m)| *t == name && !self.live.contains(m))
                .map(|(_, m)| m.clone())
                .collect();
            self.live.push(name);
            self.live.extend(appearing);
            Ok(())
        }
    }

    const XZ: &[u8] = &[0xfd, b'7', b'z', b'X', b'Z', 0, 1];
    const ZST: &[u8] = &[0x28, 0xb5, 0x2f, 0xfd, 1];
    const ELF: &[u8] = b"\x7fELF....";
    const DEP: &[u8] = b"k/a.ko.xz: k/b.ko.zst k/c.ko\nk/b.ko.zst: k/c.ko\nk/c.ko:\nk/s.ko:\nk/bad.ko:\nk/t.ko: k/bad.ko\n";

    fn fake(compression: Option<Compression>) -> Fake {
        let mut f = Fake {
            compression,
            ..Default::default()
        };
        for (p, d) in [
            ("/m/k/a.ko.xz", XZ),
            ("/m/k/b.ko.zst", ZST),
            ("/m/k/c.ko", ELF),
            ("/m/k/s.ko", ELF),
            ("/m/k/bad.ko", ELF),
            ("/m/k/t.ko", ELF),
        ] {
            f.files.push((p.to_string(), d.to_vec()));
        }
        f
    }

    /// Resolves and runs `name`; returns the probe result and the report lines.
    fn probe(
        f: &mut Fake,
        cfg_text: &str,
        name: &str,
        flags: RunFlags,
    ) -> (Result<(), (usize, LoadError)>, Vec<String>) {
        let db = ModuleDb::from_dep_text(DEP);
        let mut text = cfg_text.as_bytes().to_vec();
        let mut cfg = Config::new();
        cfg.parse_file(&mut text, &mut |_| {}).unwrap();
        let r = Resolver { db: &db, cfg: &cfg };
        let names = NameArena::new();
        let mut found = Candidates::new();
        r.lookup(name, &mut found).unwrap();
        let mut steps = Steps::new();
        r.probe_list(
            &found[0],
            ProbeFlags {
                ignore_loaded: flags.ignore_loaded,
                ..Default::default()
            },
            &*f,
            &names,
            &mut steps,
        )
        .unwrap()
        .unwrap();
        let mut lines = Vec::new();
        let res = run_probe(&r, "/m", &steps, "x=1", flags, f, &mut |o, params| {
            lines.push(std::format!("{} {:?} [{params}]", o.step.name, o.result));
        });
        (res, lines)
    }

    #[test]
    fn each_format_takes_the_right_path() {
        let mut f = fake(Some(Compression::Xz));
        let (res, _) = probe(&mut f, "", "a", RunFlags::default());
        assert_eq!(res, Ok(()));
        assert_eq!(
            f.calls,
            [
                "finit c flags=0 params=",
                "init b zstd params=",
                "finit a flags=4 params=x=1"
            ]
        );
    }

    /// A file whose name says its format is handed over without being
    /// read; a misnamed one takes its magic's path once the name's failed,
    /// and a file that is what its name says keeps its first error.
    #[test]
    fn the_name_says_the_format_and_the_magic_corrects_a_misnamed_one() {
        use Compression::{Xz, Zstd};
        let mut f = fake(Some(Xz));
        for (p, d) in [
            ("/m/k/x.ko", XZ),
            ("/m/k/p.ko.xz", ELF),
            ("/m/k/q.ko.zst", ELF),
            ("/m/k/z.ko.xz", b"\x28\xb5\x2f\xfd\x01\x02\x03"),
            ("/m/k/n.bin", b"\x28\xb5\x2f\xfd\x01\x02\x03"),
        ] {
            f.files.push((p.to_string(), d.to_vec()));
        }
        let mut ins = |p: &CStr| {
            f.reads = 0;
            let r = insert_file(&mut f, p, c"", InsertFlags::default(), Some(Xz));
            (r, f.reads)
        };
        assert_eq!(ins(c"/m/k/c.ko"), (Ok(Method::File), 0));
        assert_eq!(
            ins(c"/m/k/a.ko.xz"),
            (Ok(Method::KernelDecompressed(Xz)), 0)
        );
        assert_eq!(
            ins(c"/m/k/b.ko.zst"),
            (Ok(Method::UserDecompressed(Zstd)), 0)
        );
        assert_eq!(ins(c"/m/k/x.ko"), (Ok(Method::KernelDecompressed(Xz)), 1));
        assert_eq!(ins(c"/m/k/p.ko.xz"), (Ok(Method::File), 1));
        assert_eq!(ins(c"/m/k/q.ko.zst"), (Ok(Method::File), 1));
        assert_eq!(
            ins(c"/m/k/z.ko.xz"),
            (Ok(Method::UserDecompressed(Zstd)), 1)
        );
        assert_eq!(ins(c"/m/k/n.bin"), (Ok(Method::UserDecompressed(Zstd)), 1));
        f.fail.push(("s".to_string(), errno::ENOEXEC));
        let r = insert_file(&mut f, c"/m/k/s.ko", c"", InsertFlags::default(), Some(Xz));
        assert_eq!(r, Err(LoadError::Kernel(Errno(errno::ENOEXEC))));
        assert_eq!(
            f.calls.iter().filter(|c| c.starts_with("finit s ")).count(),
            1
        );
    }

    #[test]
    fn kernel_decoder_failure_falls_back_to_userspace() {
        let mut f = fake(Some(Compression::Xz));
        f.kernel_fails_decoding = true;
        let (res, lines) = probe(&mut f, "", "a", RunFlags::default());
        assert_eq!(res, Ok(()));
        assert_eq!(f.calls.last().unwrap(), "init a xz params=x=1");
        assert!(lines.last().unwrap().contains("UserAfterKernelFailed(Xz)"));
    }

    #[test]
    fn without_in_kernel_decompression_everything_compressed_is_decoded_here() {
        let mut f = fake(None);
        probe(&mut f, "", "a", RunFlags::default()).0.unwrap();
        assert_eq!(
            f.calls,
            [
                "finit c flags=0 params=",
                "init b zstd params=",
                "init a xz params=x=1"
            ]
        );
    }

    #[test]
    fn loaded_modules_are_skipped_and_eexist_is_success() {
        let mut f = fake(Some(Compression::Xz));
        f.live.push("c".to_string());
        probe(&mut f, "", "a", RunFlags::default()).0.unwrap();
        assert_eq!(f.calls.len(), 2, "c is live: {:?}", f.calls);
        // A race: the kernel says EEXIST although sysfs did not show it.
        let mut f = fake(Some(Compression::Xz));
        f.fail.push(("b".to_string(), errno::EEXIST));
        assert_eq!(probe(&mut f, "", "a", RunFlags::default()).0, Ok(()));
    }

    #[test]
    fn first_time_fails_only_for_the_target() {
        let mut f = fake(Some(Compression::Xz));
        f.live.push("a".to_string());
        let flags = RunFlags {
            fail_on_loaded: true,
            ..Default::default()
        };
        let (res, _) = probe(
            &mut f,
            "",
            "c",
            RunFlags {
                ignore_loaded: true,
                ..flags
            },
        );
        assert_eq!(res, Ok(()));
        let mut f = fake(Some(Compression::Xz));
        f.live.push("c".to_string());
        let (res, _) = probe(
            &mut f,
            "",
            "c",
            RunFlags {
                ignore_loaded: true,
                ..flags
            },
        );
        assert_eq!(res, Err((0, LoadError::Kernel(Errno(errno::EEXIST)))));
    }

    #[test]
    fn a_failing_dependency_stops_the_probe_but_a_failing_softdep_does_not() {
        let mut f = fake(None);
        f.fail.push(("bad".to_string(), errno::ENOEXEC));
        let (res, _) = probe(&mut f, "", "t", RunFlags::default());
        assert_eq!(res, Err((0, LoadError::Kernel(Errno(errno::ENOEXEC)))));
        assert!(!f.live.contains(&"t".to_string()));
        let mut f = fake(None);
        f.fail.push(("bad".to_string(), errno::ENOEXEC));
        let (res, lines) = probe(&mut f, "softdep s pre: bad\n", "s", RunFlags::default());
        assert_eq!(res, Ok(()));
        assert_eq!(lines.len(), 2);
        assert!(f.live.contains(&"s".to_string()));
    }

    #[test]
    fn missing_files_and_options_and_commands() {
        let mut f = fake(None);
        f.files.retain(|(p, _)| p != "/m/k/c.ko");
        let (res, _) = probe(&mut f, "", "a", RunFlags::default());
        assert_eq!(res, Err((0, LoadError::Open(Errno(errno::ENOENT)))));
        assert_eq!(
            std::format!("{}", LoadError::Open(Errno(errno::ENOENT))),
            "cannot read the module file: No such file or directory"
        );
        let mut f = fake(None);
        probe(
            &mut f,
            "options c dbg=2\ninstall s /bin/true\n",
            "a",
            RunFlags::default(),
        )
        .0
        .unwrap();
        assert_eq!(f.calls[0], "finit c flags=0 params=dbg=2 ");
        probe(&mut f, "install s /bin/true\n", "s", RunFlags::default())
            .0
            .unwrap();
        assert_eq!(f.calls.last().unwrap(), "run /bin/true x=1");
    }

    #[test]
    fn dry_run_touches_nothing() {
        let mut f = fake(Some(Compression::Xz));
        let (res, lines) = probe(
            &mut f,
            "",
            "a",
            RunFlags {
                dry_run: true,
                ignore_loaded: true,
                ..Default::default()
            },
        );
        assert_eq!(res, Ok(()));
        assert!(f.calls.is_empty());
        assert_eq!(lines.len(), 3);
    }

    fn rng(seed: &mut u64) -> u64 {
        *seed ^= *seed << 13;
        *seed ^= *seed >> 7;
        *seed ^= *seed << 17;
        *seed
    }

    /// One random module set: `modules.dep` text, softdep config, a fake
    /// kernel with scripted faults, and each module's dependency closure.
    struct World {
        dep: String,
        cfg: String,
        fake: Fake,
        closure: Vec<Vec<usize>>,
    }

    const PERSISTENT: [i32; 6] = [
        errno::ENOMEM,
        errno::EBUSY,
        errno::ENOEXEC,
        errno::EKEYREJECTED,
        errno::EPERM,
        errno::ENOENT,
    ];

    fn world(seed: &mut u64) -> World {
        let n = 3 + (rng(seed) % 9) as usize;
        let name = |i: usize| std::format!("m{i}");
        // Dependencies point to higher numbers, so the graph is a DAG and
        // ascending order lists dependents before dependencies (depmod's).
        let mut direct = std::vec![Vec::new(); n];
        for (i, d) in direct.iter_mut().enumerate() {
            for j in i + 1..n {
                if rng(seed) % 10 < 3 {
                    d.push(j);
                }
            }
        }
        let mut closure: Vec<Vec<usize>> = std::vec![Vec::new(); n];
        for i in (0..n).rev() {
            let mut c: Vec<usize> = direct[i].clone();
            for &j in &direct[i] {
                c.extend(closure[j].iter().copied());
            }
            c.sort();
            c.dedup();
            closure[i] = c;
        }
        let mut fake = Fake {
            compression: if rng(seed) % 2 == 0 {
                Some(Compression::Xz)
            } else {
                None
            },
            kernel_fails_decoding: rng(seed) % 4 == 0,
            ..Default::default()
        };
        let mut dep = String::new();
        let mut paths = Vec::new();
        for (i, deps) in closure.iter().enumerate() {
            let (ext, head): (&str, &[u8]) = match rng(seed) % 4 {
                0 => (".ko.xz", XZ),
                1 => (".ko.zst", ZST),
                2 => (".ko.gz", &[0x1f, 0x8b, 8, 0, 0, 0, 0]),
                _ => (".ko", ELF),
            };
            paths.push(std::format!("k/{}{ext}", name(i)));
            fake.files
                .push((std::format!("/m/k/{}{ext}", name(i)), head.to_vec()));
            fake.deps
                .push((name(i), deps.iter().map(|&j| name(j)).collect()));
        }
        for i in 0..n {
            dep += &paths[i];
            dep += ":";
            for &j in &closure[i] {
                dep += " ";
                dep += &paths[j];
            }
            dep += "\n";
        }
        let mut cfg = String::new();
        for i in 0..n {
            if rng(seed) % 6 == 0 {
                let j = (rng(seed) % n as u64) as usize;
                let when = if rng(seed) % 2 == 0 { "pre" } else { "post" };
                if j != i {
                    cfg += &std::format!("softdep {} {when}: {}\n", name(i), name(j));
                }
            }
            let m = name(i);
            let k = rng(seed) % 3;
            match rng(seed) % 24 {
                0..=5 => fake.fail.push((m, PERSISTENT[(rng(seed) % 6) as usize])),
                6 => fake.files.retain(|(p, _)| stem(p) != m),
                // 1..=ATTEMPTS+1 tries: below, at and over the bound.
                7 => fake.transient.push((
                    m,
                    Call::Open,
                    errno::EINTR,
                    TRANSIENT_ATTEMPTS - 1 + k as u32,
                )),
                8 => fake
                    .transient
                    .push((m, Call::Read, errno::EAGAIN, 1 + k as u32 * 2)),
                9 => fake.transient.push((
                    m,
                    Call::Finit,
                    errno::EINTR,
                    TRANSIENT_ATTEMPTS - 1 + k as u32,
                )),
                10 => fake.transient.push((
                    m,
                    Call::Finit,
                    errno::EAGAIN,
                    TRANSIENT_ATTEMPTS - 1 + k as u32,
                )),
                11 => fake.short_reads.push(m),
                12 => fake.hidden.push(m),
                13 => fake.live.push(m),
                14 => {
                    let t = name((rng(seed) % n as u64) as usize);
                    fake.appears.push((t, m));
                }
                _ => {}
            }
        }
        World {
            dep,
            cfg,
            fake,
            closure,
        }
    }

    /// Whether loading `m` must fail in the fake's current state.
    fn doomed(f: &Fake, m: &str) -> bool {
        !f.live.iter().any(|l| l == m)
            && !f.hidden.iter().any(|h| h == m)
            && (f.fail.iter().any(|(n, _)| n == m)
                || !f.files.iter().any(|(p, _)| stem(p) == m)
                || f.transient
                    .iter()
                    .any(|t| t.0 == m && t.3 >= TRANSIENT_ATTEMPTS))
    }

    /// Whether `e` is what the fake's faults make `m` fail with.
    fn justified(f: &Fake, m: &str, e: &LoadError) -> bool {
        let transient = |call: Call, e: Errno| {
            f.transient
                .iter()
                .any(|t| t.0 == m && t.1 == call && t.2 == e.0 && t.3 >= TRANSIENT_ATTEMPTS)
        };
        match e {
            LoadError::Kernel(e) => {
                f.fail.iter().any(|(n, x)| n == m && *x == e.0) || transient(Call::Finit, *e)
            }
            LoadError::Open(e) if e.0 == errno::ENOENT => {
                !f.files.iter().any(|(p, _)| stem(p) == m)
            }
            LoadError::Open(e) => transient(Call::Open, *e) || transient(Call::Read, *e),
            _ => false,
        }
    }

    /// Fault injection: random module graphs with softdeps, every kind of
    /// kernel failure at random points (persistent errnos, EINTR/EAGAIN below,
    /// at and over the retry bound on open, read and finit_module, short
    /// reads, a module in the kernel before sysfs shows it, a module another
    /// loader brings up mid-plan), then `modprobe -a` of random targets.
    #[test]
    fn fault_injection_over_random_plans() {
        let mut seed = 0x9e37_79b9_7f4a_7c15u64;
        let (mut probes, mut failures, mut loads, mut dep_failed) = (0, 0, 0, 0);
        for round in 0..1000 {
            let mut w = world(&mut seed);
            let n = w.closure.len();
            let db = ModuleDb::from_dep_text(w.dep.as_bytes());
            let mut text = w.cfg.as_bytes().to_vec();
            let mut cfg = Config::new();
            cfg.parse_file(&mut text, &mut |_| {}).unwrap();
            let r = Resolver { db: &db, cfg: &cfg };
            let names = NameArena::new();
            let f = &mut w.fake;
            let targets: Vec<usize> = (0..n).filter(|_| rng(&mut seed) % 2 == 0).collect();
            for &t in &targets {
                let target = std::format!("m{t}");
                let ctx = std::format!("round {round} target {target}\n{}{}", w.dep, w.cfg);
                let mut found = Candidates::new();
                r.lookup(&target, &mut found).unwrap();
                let mut steps = Steps::new();
                match r.probe_list(&found[0], ProbeFlags::default(), &*f, &names, &mut steps) {
                    Ok(Ok(())) => {}
                    Ok(Err(_)) => continue,
                    // Softdep loops deeper than the bound: a clear error.
                    Err(e) => {
                        assert_eq!(e, crate::error::Error::TooDeep, "{ctx}");
                        continue;
                    }
                }
                let must_load = std::iter::once(t)
                    .chain(w.closure[t].iter().copied())
                    .all(|m| !doomed(f, &std::format!("m{m}")));
                // Faults as they stood before the run, to judge its errors.
                let before = Fake {
                    files: f.files.clone(),
                    fail: f.fail.clone(),
                    transient: f.transient.clone(),
                    ..Default::default()
                };
                f.opened.clear();
                let mut reported: Vec<(String, Result<Method, LoadError>)> = Vec::new();
                let res = run_probe(&r, "/m", &steps, "", RunFlags::default(), f, &mut |o, _| {
                    reported.push((o.step.name.to_string(), o.result.clone()));
                });
                probes += 1;
                // Every module the kernel was asked about is reported once.
                let mut seen: Vec<&str> = reported.iter().map(|(m, _)| m.as_str()).collect();
                seen.sort();
                let len = seen.len();
                seen.dedup();
                assert_eq!(
                    seen.len(),
                    len,
                    "a module reported twice: {reported:?}\n{ctx}"
                );
                for m in &f.opened {
                    assert!(seen.contains(&m.as_str()), "{m} tried, not reported\n{ctx}");
                }
                for (i, (m, result)) in reported.iter().enumerate() {
                    match result {
                        Ok(_) => {
                            loads += 1;
                            assert!(f.live.contains(m), "{m} reported loaded\n{ctx}")
                        }
                        Err(LoadError::DependencyFailed(d)) => {
                            failures += 1;
                            dep_failed += 1;
                            let d = d.as_str();
                            assert!(
                                reported[..i].iter().any(|(x, r)| x == d && r.is_err()),
                                "{m}: {d} did not fail before\n{ctx}"
                            );
                        }
                        Err(e) => {
                            failures += 1;
                            assert!(justified(&before, m, e), "{m}: {e:?} unjustified\n{ctx}");
                        }
                    }
                }
                match res {
                    Ok(()) => assert!(f.live.contains(&target), "{ctx}"),
                    Err((i, e)) => {
                        assert!(!must_load, "{target} should have loaded: {e:?}\n{ctx}");
                        assert!(steps[i].required, "{ctx}");
                        // The probe stops at its failure: it is the last report.
                        let (last, last_result) = reported.last().unwrap();
                        assert_eq!(
                            (last.as_str(), last_result),
                            (steps[i].name.as_str(), &Err(e)),
                            "{ctx}"
                        );
                    }
                }
                assert!(f.violations.is_empty(), "{:?}\n{ctx}", f.violations);
            }
        }
        // The random plans did exercise every outcome.
        assert!(
            probes > 2000 && failures > 1000 && loads > 1000 && dep_failed > 20,
            "{probes} probes, {failures} failures, {dep_failed} after a failed dependency, {loads} loads"
        );
    }

    /// Options over the kernel's bound are an error naming the bound, never
    /// an empty (or cut) options string: at the bound they pass whole.
    #[test]
    fn params_over_the_bound_are_an_error_not_empty() {
        let at = "a".repeat(MAX_PARAMS);
        let mut p = Params::from_text(&at).unwrap();
        assert_eq!(p.as_cstr().unwrap().to_bytes().len(), MAX_PARAMS);
        let over = "a".repeat(MAX_PARAMS + 1);
        let e = Params::from_text(&over).err().unwrap();
        assert_eq!(e, LoadError::TooLong("module parameters", MAX_PARAMS));
        assert_eq!(
            std::format!("{e}"),
            "module parameters too long (limit 4096 bytes)"
        );
        assert_eq!(
            Params::from_text("a\0b").unwrap().as_cstr().err(),
            Some(LoadError::EmbeddedNul("module parameters"))
        );
        // From modprobe.d: the probe fails with the bound before the kernel
        // sees anything.
        let mut f = fake(None);
        let cfg = std::format!("options c p={}\n", "x".repeat(MAX_PARAMS));
        let (res, lines) = probe(&mut f, &cfg, "c", RunFlags::default());
        assert_eq!(res, Err((0, too_long_params())));
        assert!(f.calls.is_empty() && lines.is_empty(), "{:?}", f.calls);
        // Just at the bound: loaded with every byte.
        let mut f = fake(None);
        // ("p=", the value, the space before the extra options "x=1").
        let cfg = std::format!("options c p={}\n", "x".repeat(MAX_PARAMS - 6));
        let (res, _) = probe(&mut f, &cfg, "c", RunFlags::default());
        assert_eq!(res, Ok(()));
        assert_eq!(
            f.calls[0].len(),
            "finit c flags=0 params=".len() + MAX_PARAMS
        );
    }

    /// A `modules.builtin.bin` that cannot answer "is it builtin?" fails the
    /// step with the file's error instead of being taken for "no" (the
    /// module would be handed to the kernel on a guess).
    #[test]
    fn an_index_error_is_not_taken_for_not_builtin() {
        use crate::error::{Error, IndexFault};
        let fault = Error::Index("modules.builtin.bin", IndexFault::BadMagic(0x1234));
        let db = ModuleDb::from_dep_text(DEP);
        let cfg = Config::new();
        let r = Resolver { db: &db, cfg: &cfg };
        let names = NameArena::new();
        let mut found = Candidates::new();
        r.lookup("c", &mut found).unwrap();
        let mut steps = Steps::new();
        r.probe_list(
            &found[0],
            ProbeFlags::default(),
            &NothingLoaded,
            &names,
            &mut steps,
        )
        .unwrap()
        .unwrap();
        // The plan was made; the index turns bad before the load.
        let bad = ModuleDb {
            builtin: Source::Corrupt(fault),
            ..db
        };
        let r = Resolver {
            db: &bad,
            cfg: &cfg,
        };
        let mut f = fake(None);
        let mut lines = Vec::new();
        let res = run_probe(
            &r,
            "/m",
            &steps,
            "",
            RunFlags::default(),
            &mut f,
            &mut |o, _| {
                lines.push(std::format!("{} {:?}", o.step.name, o.result));
            },
        );
        assert_eq!(res, Err((0, LoadError::Index(fault))));
        assert!(f.calls.is_empty(), "{:?}", f.calls);
        assert_eq!(lines.len(), 1);
        assert_eq!(
            std::format!("{}", LoadError::Index(fault)),
            "modules.builtin.bin: bad index magic 0x00001234"
        );
        // The same question from PID 1's plan: an error, not "not loaded".
        let e = Entry::of(&steps[0]);
        assert_eq!(
            in_kernel(&r, &e, &NothingLoaded),
            Err(LoadError::Index(fault))
        );
        assert_eq!(
            decide(&r, &e, RunFlags::default(), None, &NothingLoaded),
            Decision::Fail(LoadError::Index(fault))
        );
        // -D (ignore loaded state) does not ask.
        let flags = RunFlags {
            ignore_loaded: true,
            ..Default::default()
        };
        assert_eq!(decide(&r, &e, flags, None, &NothingLoaded), Decision::Load);
    }

    /// A config alias to a module the tree lacks (not builtin, not in
    /// modules.dep) fails as in kmod ("could not find module by name"),
    /// instead of passing as loaded; a dry run prints nothing for it.
    #[test]
    fn a_module_without_a_file_is_an_error_as_in_kmod() {
        let mut f = fake(None);
        let (res, lines) = probe(&mut f, "alias foo nosuch\n", "foo", RunFlags::default());
        assert_eq!(res, Err((0, LoadError::NoModuleFile)));
        assert_eq!(lines.len(), 1);
        assert!(f.calls.is_empty());
        assert_eq!(
            std::format!("{}", LoadError::NoModuleFile),
            "no such module: not builtin and not in modules.dep"
        );
        let dry = RunFlags {
            dry_run: true,
            ignore_loaded: true,
            ..Default::default()
        };
        let (res, _) = probe(&mut f, "alias foo nosuch\n", "foo", dry);
        assert_eq!(res, Ok(()));
    }

    #[test]
    fn error_texts_name_the_reason() {
        let s = |e: LoadError| std::format!("{e}");
        assert_eq!(
            s(LoadError::Kernel(Errno(errno::ENOEXEC))),
            "Invalid module format (not a module for this kernel, see dmesg)"
        );
        assert_eq!(
            s(LoadError::Decompress(
                Reason::try_from("truncated xz stream").unwrap()
            )),
            "decompression failed: truncated xz stream"
        );
        assert_eq!(Errno(errno::EINVAL).text(), "Invalid argument");
        assert_eq!(Compression::from_sysfs(b"xz\n"), Some(Compression::Xz));
        assert_eq!(Compression::detect(b"\x7fELF"), Compression::None);
    }
}
