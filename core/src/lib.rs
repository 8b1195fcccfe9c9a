//! earlymod-core: kmod-exact module resolution for early boot, with no heap.
//!
//! Zero-copy readers for kmod's indexes, modprobe's lookup order, modprobe.d
//! and kernel command-line parsing, and the load plan. Every collection is
//! bounded; a full buffer is an [`Error`], never a panic or a silent cut.
//! No `alloc`, no `unsafe`: the caller owns every byte (index files,
//! config text, name buffers) and the kernel is a trait.
//!
//! # The pipeline
//!
//! 1. **Index** — [`db::ModuleDb`] reads a module directory's
//!    `modules.dep(.bin)`, `modules.alias(.bin)`, `modules.symbols(.bin)`,
//!    `modules.builtin(.bin)` and `modules.builtin.alias.bin` from byte
//!    slices ([`db::Source`]: the binary index, else the text file),
//!    zero-copy ([`index`] walks kmod's trie format in place).
//! 2. **Configuration** — [`config::Config`] parses modprobe.d text in place
//!    (`alias`, `options`, `blacklist`, `install`, `remove`, `softdep`,
//!    `weakdep`); [`cmdline`] applies the kernel command line's
//!    `MODULE.PARAM=` and `modprobe.blacklist=`.
//! 3. **Lookup** — [`probe::Resolver`] answers modprobe's question "what
//!    does this name mean" in kmod's order: config aliases, `modules.dep`,
//!    `modules.alias`, `modules.symbols`, the builtin indexes
//!    ([`probe::Resolver::lookup`], [`probe::Resolver::lookup_user`] for
//!    what a user typed).
//! 4. **Probe list** — [`probe::Resolver::probe_list`] expands one module
//!    into what `modprobe` would do for it: softdeps, dependencies
//!    (deepest first), install commands, blacklist, the loaded state.
//! 5. **Kernel** — [`load::run_probe`] runs the list through libkmod's
//!    policy ([`load::decide`], [`load::act`]) against a [`load::Kernel`]:
//!    `finit_module` with `MODULE_INIT_COMPRESSED_FILE` when the kernel
//!    decompresses the format, userspace decoders otherwise.
//!    [`fake::FakeKernel`] plays the kernel in memory for tests;
//!    earlymod' `kernel::Live` makes the syscalls.
//!
//! [`remove`] is `modprobe -r` over the same resolver, [`sched`] orders a
//! batch of modules for parallel loading, [`blkid`] finds a root device by
//! `UUID=`/`LABEL=`/`PARTUUID=`.
//!
//! All five steps, on the host, from text files in memory (this runs as a
//! doctest):
//!
//! ```
//! use earlymod_core::config::Config;
//! use earlymod_core::db::{ModuleDb, Source};
//! use earlymod_core::fake::FakeKernel;
//! use earlymod_core::load::{self, RunFlags};
//! use earlymod_core::name::AliasBuf;
//! use earlymod_core::probe::{Candidates, Found, NameArena, ProbeFlags, Resolver, Steps};
//!
//! // 1. The indexes (here their text forms; mapped files in a real boot).
//! let dep = b"kernel/fs/ext4.ko: kernel/lib/crc16.ko\nkernel/lib/crc16.ko:\n";
//! let alias = b"alias fs-ext4 ext4\n";
//! let db = ModuleDb {
//!     dep: Source::new(None, Some(dep)),
//!     alias: Source::new(None, Some(alias)),
//!     symbols: Source::Missing,
//!     builtin: Source::Missing,
//!     builtin_alias: Source::Missing,
//! };
//! // 2. modprobe.d, parsed in place (the buffer is the caller's).
//! let mut conf = *b"options ext4 debug=1\n";
//! let mut cfg = Config::new();
//! cfg.parse_file(&mut conf, &mut |_bad_line| {}).unwrap();
//! let r = Resolver { db: &db, cfg: &cfg };
//! // 3. Lookup, as modprobe does for what a user typed.
//! let (mut key, mut found) = (AliasBuf::new(), Candidates::new());
//! assert_eq!(r.lookup_user("fs-ext4", &mut key, &mut found), Ok(Found::Alias));
//! // 4. The probe list: dependencies first.
//! let kernel_files: &[(&str, &[u8])] =
//!     &[("/m/kernel/fs/ext4.ko", b"\x7fELF"), ("/m/kernel/lib/crc16.ko", b"\x7fELF")];
//! let mut kernel = FakeKernel::new(kernel_files);
//! let (names, mut steps) = (NameArena::new(), Steps::new());
//! r.probe_list(&found[0], ProbeFlags::default(), &kernel, &names, &mut steps)
//!     .unwrap()
//!     .unwrap();
//! // 5. Into the kernel, with each module's options.
//! let mut loaded = heapless::Vec::<_, 4>::new();
//! load::run_probe(&r, "/m", &steps, "", RunFlags::default(), &mut kernel, &mut |o, params| {
//!     let _ = loaded.push((o.step.name.clone(), heapless::String::<32>::try_from(params).unwrap()));
//! })
//! .unwrap();
//! assert_eq!(loaded[0].0, "crc16");
//! assert_eq!((loaded[1].0.as_str(), loaded[1].1.trim_end()), ("ext4", "debug=1"));
//! assert_eq!(kernel.live(), ["crc16", "ext4"]);
//! ```
//!
//! earlymod wraps these steps for programs: `Context::open` over a
//! real module directory, `Context::modprobe`, `Context::coldplug`, ...
#![no_std]
#![deny(missing_docs)]
#![forbid(unsafe_code)]

pub mod error;
pub mod fnmatch;
pub mod getopt;
pub mod index;
pub mod load;

pub use error::{Error, Result};
pub mod blkid;
pub mod cmdline;
pub mod config;
pub mod db;
pub mod devices;
pub mod fake;
pub mod modules_load;
pub mod name;
pub mod probe;
pub mod remove;
pub mod sched;
pub mod text;
pub mod uevent;
