//! modprobe's resolution and load policy end to end: the input is split at
//! NULs into a modprobe.d file, a text `modules.dep` and query names (one
//! per line). Each query is looked up, its probe list built (loaded state
//! honoured and ignored) and run against a fake kernel whose answers come
//! from the module names, so dependency failures, softdep loops and `EEXIST`
//! are all reached.
#![no_main]

use core::ffi::CStr;
use earlymod_core::config::Config;
use earlymod_core::db::ModuleDb;
use earlymod_core::load::{self, Compression, Errno, Kernel, LoadError, RunFlags};
use earlymod_core::probe::{
    Candidates, InitState, KernelState, NameArena, ProbeFlags, Resolver, Steps,
};
use libfuzzer_sys::fuzz_target;

/// Loads succeed or fail by the module name's first byte; loaded modules
/// stay live (a bounded set).
#[derive(Default)]
struct FakeKernel {
    live: heapless::Vec<heapless::String<64>, 64>,
}

impl KernelState for FakeKernel {
    fn initstate(&self, name: &str) -> InitState {
        if self.live.iter().any(|l| l == name) {
            InitState::Live
        } else {
            InitState::Absent
        }
    }
}

impl Kernel for FakeKernel {
    type File = heapless::String<64>;
    fn open(&mut self, path: &CStr) -> Result<Self::File, Errno> {
        let p = path.to_str().map_err(|_| Errno(load::errno::ENOENT))?;
        let name = p
            .rsplit('/')
            .next()
            .unwrap_or(p)
            .split('.')
            .next()
            .unwrap_or("");
        heapless::String::try_from(name).map_err(|_| Errno(load::errno::ENOENT))
    }
    fn read_at(&mut self, file: &Self::File, offset: u64, buf: &mut [u8]) -> Result<usize, Errno> {
        match file.as_bytes().first().map(|b| b % 4) {
            Some(0) => Err(Errno(load::errno::EINTR)),
            Some(1) if offset < 6 && !buf.is_empty() => {
                buf[0] = [0xfd, b'7', b'z', b'X', b'Z', 0][offset as usize];
                Ok(1)
            }
            _ => Ok(0),
        }
    }
    fn finit_module(&mut self, file: &Self::File, _: &CStr, _: u32) -> Result<(), Errno> {
        match file.as_bytes().last().map(|b| b % 5) {
            Some(0) => Err(Errno(load::errno::ENOEXEC)),
            Some(1) => Err(Errno(load::errno::EAGAIN)),
            Some(2) => Err(Errno(load::errno::EEXIST)),
            _ => {
                let _ = self.live.push(file.clone());
                Ok(())
            }
        }
    }
    fn init_module_decompressed(
        &mut self,
        file: &Self::File,
        _: Compression,
        params: &CStr,
    ) -> Result<(), LoadError> {
        self.finit_module(file, params, 0)
            .map_err(LoadError::Kernel)
    }
    fn kernel_compression(&mut self) -> Option<Compression> {
        Some(Compression::Xz)
    }
    fn run_command(&mut self, command: &str, _: &str) -> Result<(), LoadError> {
        if command.len() % 2 == 0 {
            Ok(())
        } else {
            Err(LoadError::Command(1))
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let mut parts = data.splitn(3, |&b| b == 0);
    let (conf, dep, queries) = (
        parts.next().unwrap_or(&[]),
        parts.next().unwrap_or(&[]),
        parts.next().unwrap_or(&[]),
    );
    let mut conf = conf.to_vec();
    let mut cfg = Config::new();
    let _ = cfg.parse_file(&mut conf, &mut |_| {});
    let db = ModuleDb::from_dep_text(dep);
    let r = Resolver { db: &db, cfg: &cfg };
    let Ok(queries) = core::str::from_utf8(queries) else {
        return;
    };
    let mut kernel = FakeKernel::default();
    for q in queries.lines().take(8) {
        let mut found = Candidates::new();
        if r.lookup(q, &mut found).is_err() {
            continue;
        }
        for c in found.iter() {
            for ignore_loaded in [false, true] {
                let names = NameArena::new();
                let mut steps = Steps::new();
                let flags = ProbeFlags {
                    ignore_loaded,
                    ..Default::default()
                };
                if !matches!(
                    r.probe_list(c, flags, &kernel, &names, &mut steps),
                    Ok(Ok(()))
                ) {
                    continue;
                }
                let run = RunFlags {
                    ignore_loaded,
                    ..Default::default()
                };
                let mut reports = 0;
                let res =
                    load::run_probe(&r, "/m", &steps, "x=1", run, &mut kernel, &mut |_, _| {
                        reports += 1;
                    });
                // Each entry is reported at most once; a failure is a reported step.
                assert!(reports <= steps.len());
                if let Err((i, _)) = res {
                    assert!(i < steps.len() && steps[i].required);
                }
            }
        }
    }
});
