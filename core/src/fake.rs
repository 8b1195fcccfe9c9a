//! [`FakeKernel`]: the [`Kernel`] seam played in memory, so a program that
//! embeds earlymod (a custom PID 1, an agent) tests its loading logic on
//! the host, without root and without a kernel. Module files live in
//! caller-owned slices; every call is recorded; loads succeed, or fail with
//! the errno the test scripted. Bounded like the rest of the crate: a full
//! record is an error the test sees, never a silent cut.
//!
//! ```
//! use earlymod_core::fake::{Call, FakeKernel};
//! use earlymod_core::load::{self, InsertFlags, Method, errno};
//! use earlymod_core::probe::{InitState, KernelState};
//!
//! let files: &[(&str, &[u8])] = &[
//!     ("/lib/modules/k/crc.ko", b"\x7fELF"),
//!     ("/lib/modules/k/ext4.ko", b"\x7fELF"),
//! ];
//! let mut kernel = FakeKernel::new(files).failing(&[("ext4", errno::ENOEXEC)]);
//! let insert = |k: &mut FakeKernel, path: &core::ffi::CStr| {
//!     load::insert_file(k, path, c"", InsertFlags::default(), None)
//! };
//! assert_eq!(insert(&mut kernel, c"/lib/modules/k/crc.ko"), Ok(Method::File));
//! assert!(insert(&mut kernel, c"/lib/modules/k/ext4.ko").is_err());
//! assert_eq!(kernel.initstate("crc"), InitState::Live);
//! assert_eq!(kernel.initstate("ext4"), InitState::Absent);
//! assert!(matches!(&kernel.calls()[0], Call::Finit { name, .. } if name == "crc"));
//! ```

use core::ffi::CStr;

use crate::load::{Compression, Errno, Kernel, LoadError, errno};
use crate::name::{ModName, modname_from_path};
use crate::probe::{InitState, KernelState};

/// Most modules a [`FakeKernel`] holds live, and most calls it records.
pub const MAX_FAKE: usize = 64;

/// Longest parameter string (or install command) a [`Call`] records; a
/// longer one fails the call with `E2BIG` rather than being cut.
pub const MAX_FAKE_TEXT: usize = 256;

/// `E2BIG`: what a call too long to record fails with.
const E2BIG: i32 = 7;

/// Recorded text of a call.
pub type FakeText = heapless::String<MAX_FAKE_TEXT>;

/// One call a [`FakeKernel`] received, in order.
// A test record of bounded texts, kept inline (no heap): a command's
// two texts make that variant larger than the others, by design.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Call {
    /// `finit_module` of the module named by its file, with these
    /// parameters and `MODULE_INIT_*` flags.
    Finit {
        /// Module name (from the file name).
        name: ModName,
        /// The parameter string.
        params: FakeText,
        /// The `MODULE_INIT_*` flags.
        flags: u32,
    },
    /// Userspace decompression of a `format` file, then `init_module`.
    Decompressed {
        /// Module name (from the file name).
        name: ModName,
        /// The file's compression.
        format: Compression,
        /// The parameter string.
        params: FakeText,
    },
    /// `delete_module` of a live module (`force`: `O_TRUNC`).
    Delete {
        /// The module.
        name: ModName,
        /// `rmmod -f`.
        force: bool,
    },
    /// A `remove` command run for a module.
    RemoveCommand {
        /// The command.
        command: FakeText,
    },
    /// An install command run with these options.
    Command {
        /// The command.
        command: FakeText,
        /// The options appended to it.
        options: FakeText,
    },
}

/// An open file of a [`FakeKernel`]: the index of its entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FakeFile(usize);

/// A kernel played in memory. See the [module documentation](self).
///
/// - `files`: the module files by absolute path, as the loader opens them
///   (`DIRNAME/PATH` of `modules.dep`); any other path is `ENOENT`.
/// - loading a file makes its module (the name from its file name) live;
///   one already live fails with `EEXIST`, as the kernel does;
/// - [`failing`](Self::failing): loads of these modules fail with errno;
/// - [`decompresses`](Self::decompresses): the format the kernel itself
///   decompresses (`/sys/module/compression`), none by default;
/// - [`decodes`](Self::decodes): the formats the "userspace decoders"
///   accept; any other gives [`LoadError::NoDecoder`];
/// - [`failing_commands`](Self::failing_commands): install commands that
///   exit with status 1 (the others succeed and load nothing).
#[derive(Debug, Clone)]
pub struct FakeKernel<'f> {
    files: &'f [(&'f str, &'f [u8])],
    failing: &'f [(&'f str, i32)],
    failing_commands: &'f [&'f str],
    compression: Option<Compression>,
    decoders: &'f [Compression],
    live: heapless::Vec<ModName, MAX_FAKE>,
    calls: heapless::Vec<Call, MAX_FAKE>,
    clock_ms: u64,
}

impl<'f> FakeKernel<'f> {
    /// A kernel with these module files and nothing loaded.
    pub fn new(files: &'f [(&'f str, &'f [u8])]) -> Self {
        FakeKernel {
            files,
            failing: &[],
            failing_commands: &[],
            compression: None,
            decoders: &[],
            live: heapless::Vec::new(),
            calls: heapless::Vec::new(),
            clock_ms: 0,
        }
    }

    /// Loads of these modules (by name) fail with the errno.
    pub fn failing(mut self, modules: &'f [(&'f str, i32)]) -> Self {
        self.failing = modules;
        self
    }

    /// These install commands exit with status 1.
    pub fn failing_commands(mut self, commands: &'f [&'f str]) -> Self {
        self.failing_commands = commands;
        self
    }

    /// The kernel decompresses this format itself.
    pub fn decompresses(mut self, format: Compression) -> Self {
        self.compression = Some(format);
        self
    }

    /// Userspace decoding succeeds for these formats.
    pub fn decodes(mut self, formats: &'f [Compression]) -> Self {
        self.decoders = formats;
        self
    }

    /// Marks module `name` (`-` and `_` alike) live, as if loaded before
    /// the test. Fails when [`MAX_FAKE`] modules are live already or the
    /// name is too long.
    pub fn with_live(mut self, name: &str) -> Result<Self, crate::Error> {
        let name = crate::name::modname(name)?;
        self.live
            .push(name)
            .map_err(|_| crate::Error::Capacity("live modules of the fake kernel", MAX_FAKE))?;
        Ok(self)
    }

    /// Every call so far, in order.
    pub fn calls(&self) -> &[Call] {
        &self.calls
    }

    /// The live modules, in the order they became live.
    pub fn live(&self) -> &[ModName] {
        &self.live
    }

    fn name_of(&self, file: FakeFile) -> Result<ModName, Errno> {
        let path = self.files.get(file.0).ok_or(Errno(errno::EINVAL))?.0;
        modname_from_path(path).map_err(|_| Errno(errno::EINVAL))
    }

    fn record(&mut self, call: Call) -> Result<(), Errno> {
        self.calls.push(call).map_err(|_| Errno(errno::ENOMEM))
    }

    /// The kernel's side of a load: `EEXIST` when live, the scripted
    /// failure, or live from now on.
    fn insert(&mut self, name: ModName) -> Result<(), Errno> {
        if self.live.contains(&name) {
            return Err(Errno(errno::EEXIST));
        }
        if let Some(&(_, e)) = self.failing.iter().find(|(m, _)| *m == name.as_str()) {
            return Err(Errno(e));
        }
        self.live.push(name).map_err(|_| Errno(errno::ENOMEM))
    }
}

fn text(s: &str) -> Result<FakeText, Errno> {
    FakeText::try_from(s).map_err(|_| Errno(E2BIG))
}

fn cstr_text(s: &CStr) -> Result<FakeText, Errno> {
    text(s.to_str().map_err(|_| Errno(errno::EINVAL))?)
}

impl KernelState for FakeKernel<'_> {
    fn initstate(&self, name: &str) -> InitState {
        if self.live.iter().any(|l| l == name) {
            InitState::Live
        } else {
            InitState::Absent
        }
    }
}

impl Kernel for FakeKernel<'_> {
    type File = FakeFile;

    fn open(&mut self, path: &CStr) -> Result<FakeFile, Errno> {
        let path = path.to_bytes();
        self.files
            .iter()
            .position(|(p, _)| p.as_bytes() == path)
            .map(FakeFile)
            .ok_or(Errno(errno::ENOENT))
    }

    fn read_at(&mut self, file: &FakeFile, offset: u64, buf: &mut [u8]) -> Result<usize, Errno> {
        let data = self.files.get(file.0).ok_or(Errno(errno::EINVAL))?.1;
        let rest = usize::try_from(offset)
            .ok()
            .and_then(|o| data.get(o..))
            .unwrap_or(&[]);
        let n = rest.len().min(buf.len());
        buf[..n].copy_from_slice(&rest[..n]);
        Ok(n)
    }

    fn finit_module(&mut self, file: &FakeFile, params: &CStr, flags: u32) -> Result<(), Errno> {
        let name = self.name_of(*file)?;
        let params = cstr_text(params)?;
        self.record(Call::Finit {
            name: name.clone(),
            params,
            flags,
        })?;
        self.insert(name)
    }

    fn init_module_decompressed(
        &mut self,
        file: &FakeFile,
        format: Compression,
        params: &CStr,
    ) -> Result<(), LoadError> {
        if !self.decoders.contains(&format) {
            return Err(LoadError::NoDecoder(format));
        }
        let name = self.name_of(*file).map_err(LoadError::Open)?;
        let params = cstr_text(params).map_err(LoadError::Kernel)?;
        self.record(Call::Decompressed {
            name: name.clone(),
            format,
            params,
        })
        .map_err(LoadError::Kernel)?;
        self.insert(name).map_err(LoadError::Kernel)
    }

    fn kernel_compression(&mut self) -> Option<Compression> {
        self.compression
    }

    fn run_command(&mut self, command: &str, options: &str) -> Result<(), LoadError> {
        let call = Call::Command {
            command: text(command).map_err(LoadError::Kernel)?,
            options: text(options).map_err(LoadError::Kernel)?,
        };
        self.record(call).map_err(LoadError::Kernel)?;
        if self.failing_commands.contains(&command) {
            return Err(LoadError::Command(1));
        }
        Ok(())
    }
}

/// Removal on the fake (`modprobe -r`, [`crate::remove::remove`]): a live
/// module is removed and recorded as [`Call::Delete`]; one not live fails
/// with `ENOENT`. Nothing holds anything (refcount 0, no holders); `remove`
/// commands are recorded and succeed unless listed in
/// [`failing_commands`](FakeKernel::failing_commands); `--wait` sleeps on a
/// clock that only moves when slept on.
impl crate::remove::Remover for FakeKernel<'_> {
    fn state(&self, name: &str) -> crate::remove::SysState {
        match self.initstate(name) {
            InitState::Absent => crate::remove::SysState::Absent,
            _ => crate::remove::SysState::Loaded,
        }
    }

    fn refcnt(&self, name: &str) -> Option<i64> {
        self.live.iter().any(|l| l == name).then_some(0)
    }

    fn holders(&self, _name: &str, _f: &mut dyn FnMut(&str)) {}

    fn delete_module(&mut self, name: &str, force: bool) -> Result<(), Errno> {
        let Some(i) = self.live.iter().position(|l| l == name) else {
            return Err(Errno(errno::ENOENT));
        };
        let name = self.live.remove(i);
        self.record(Call::Delete { name, force })
    }

    fn run_command(&mut self, command: &str, _name: &str) -> Result<(), i32> {
        let command = text(command).map_err(|e| e.0)?;
        self.record(Call::RemoveCommand {
            command: command.clone(),
        })
        .map_err(|e| e.0)?;
        match self.failing_commands.contains(&command.as_str()) {
            true => Err(1),
            false => Ok(()),
        }
    }

    fn now_ms(&self) -> u64 {
        self.clock_ms
    }

    fn sleep_until_ms(&mut self, until: u64) {
        self.clock_ms = self.clock_ms.max(until);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;
    use crate::db::{ModuleDb, Source};
    use crate::load::{Method, RunFlags, run_probe};
    use crate::probe::{Candidates, NameArena, ProbeFlags, Resolver, Steps};

    const DEP: &[u8] = b"kernel/fs/ext4.ko.xz: kernel/lib/crc16.ko kernel/fs/mbcache.ko\nkernel/lib/crc16.ko:\nkernel/fs/mbcache.ko:\n";
    const XZ: &[u8] = &[0xfd, b'7', b'z', b'X', b'Z', 0, 1, 2];

    fn db() -> ModuleDb<'static> {
        ModuleDb {
            dep: Source::new(None, Some(DEP)),
            alias: Source::Missing,
            symbols: Source::Missing,
            builtin: Source::Missing,
            builtin_alias: Source::Missing,
        }
    }

    /// modprobe's sequence (lookup, probe list, run) against the fake:
    /// dependencies first, the target's file decompressed by the kernel,
    /// every call recorded with its parameters.
    #[test]
    fn a_probe_runs_against_the_fake() {
        let (db, cfg, names) = (db(), Config::new(), NameArena::new());
        let r = Resolver { db: &db, cfg: &cfg };
        let files: &[(&str, &[u8])] = &[
            ("/m/kernel/fs/ext4.ko.xz", XZ),
            ("/m/kernel/lib/crc16.ko", b"\x7fELF"),
            ("/m/kernel/fs/mbcache.ko", b"\x7fELF"),
        ];
        let mut k = FakeKernel::new(files)
            .decompresses(Compression::Xz)
            .with_live("mbcache")
            .unwrap();
        let mut found = Candidates::new();
        r.lookup("ext4", &mut found).unwrap();
        let mut steps = Steps::new();
        r.probe_list(&found[0], ProbeFlags::default(), &k, &names, &mut steps)
            .unwrap()
            .unwrap();
        let mut methods = heapless::Vec::<(ModName, Method), 4>::new();
        run_probe(
            &r,
            "/m",
            &steps,
            "nr=1",
            RunFlags::default(),
            &mut k,
            &mut |o, _| {
                if let Ok(m) = o.result {
                    methods.push((o.step.name.clone(), m)).unwrap();
                }
            },
        )
        .unwrap();
        let live: heapless::Vec<&str, 4> = k.live().iter().map(|n| n.as_str()).collect();
        assert_eq!(&live[..], ["mbcache", "crc16", "ext4"]);
        assert_eq!(methods[1].1, Method::KernelDecompressed(Compression::Xz));
        assert_eq!(
            k.calls()[1],
            Call::Finit {
                name: ModName::try_from("ext4").unwrap(),
                params: FakeText::try_from("nr=1").unwrap(),
                flags: crate::load::MODULE_INIT_COMPRESSED_FILE,
            }
        );
    }

    /// Scripted failures, missing files and decoders, commands, `EEXIST`.
    #[test]
    fn failures_are_what_the_test_scripted() {
        let files: &[(&str, &[u8])] = &[
            ("/a.ko", b"\x7fELF"),
            ("/z.ko.zst", &[0x28, 0xb5, 0x2f, 0xfd]),
        ];
        let mut k = FakeKernel::new(files)
            .failing(&[("a", errno::ENOEXEC)])
            .failing_commands(&["false"]);
        assert_eq!(k.open(c"/b.ko"), Err(Errno(errno::ENOENT)));
        let a = k.open(c"/a.ko").unwrap();
        assert_eq!(k.finit_module(&a, c"", 0), Err(Errno(errno::ENOEXEC)));
        let z = k.open(c"/z.ko.zst").unwrap();
        assert_eq!(
            k.init_module_decompressed(&z, Compression::Zstd, c""),
            Err(LoadError::NoDecoder(Compression::Zstd))
        );
        let mut k = k.decodes(&[Compression::Zstd]);
        assert_eq!(
            k.init_module_decompressed(&z, Compression::Zstd, c""),
            Ok(())
        );
        assert_eq!(
            k.init_module_decompressed(&z, Compression::Zstd, c""),
            Err(LoadError::Kernel(Errno(errno::EEXIST)))
        );
        assert_eq!(k.run_command("false", "x=1"), Err(LoadError::Command(1)));
        assert_eq!(k.run_command("true", ""), Ok(()));
        let long = [b'x'; MAX_FAKE_TEXT + 1];
        let long = core::str::from_utf8(&long).unwrap();
        assert_eq!(
            k.run_command(long, ""),
            Err(LoadError::Kernel(Errno(E2BIG)))
        );
        let mut buf = [0u8; 8];
        assert_eq!(k.read_at(&z, 2, &mut buf), Ok(2));
        assert_eq!(k.read_at(&z, 99, &mut buf), Ok(0));
        assert_eq!(k.calls().len(), 5);
    }
}
