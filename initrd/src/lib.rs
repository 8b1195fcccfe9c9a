//! Building initramfs images for earlymod: the module closure of a config,
//! subset indexes that kmod itself reads, modules transcoded for the target
//! kernel, and a reproducible newc cpio. Host-side (std); the early-boot
//! binary does not link this crate.
#![deny(missing_docs)]

pub mod arch;
pub mod closure;
pub mod compress;
pub mod cpio;
pub mod firmware;
pub mod hostonly;
pub mod image;
pub mod index_write;
pub mod microcode;
pub mod pack;
pub mod packconf;
pub mod program;
pub mod report;
pub mod subset;
#[cfg(test)]
mod testutil;
pub mod transcode;
pub mod tree;
