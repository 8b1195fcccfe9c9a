//! earlymod-core: kmod-exact module resolution for early boot, with no heap.
//!
//! Zero-copy readers for kmod's indexes, modprobe's lookup order, modprobe.d
//! and kernel command-line parsing, and the load plan. Every collection is
//! bounded; a full buffer is an [`Error`], never a panic or a silent cut.
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
pub mod fake;
pub mod modules_load;
pub mod name;
pub mod probe;
pub mod remove;
pub mod sched;
pub mod text;
