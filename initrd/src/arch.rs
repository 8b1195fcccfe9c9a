//! The target's machine type: a kernel's, from its config or a module's
//! ELF header, and an executable's, from its own. earlymod-pack refuses an
//! `--earlymod` binary (or an `init` executable) built for another machine
//! than the kernel it packs for.

use earlymod_decompress::{MAX_OUTPUT, decompress_to_vec, detect};

/// A machine as ELF names it: `e_machine` and the class (64-bit or not).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Machine {
    /// `e_machine` (`EM_X86_64` 62, `EM_AARCH64` 183, `EM_RISCV` 243, ...).
    pub em: u16,
    /// ELFCLASS64.
    pub is_64: bool,
}

impl Machine {
    /// The name Debian and the kernel use (`x86_64`, `aarch64`, ...).
    pub fn name(self) -> String {
        let known = match (self.em, self.is_64) {
            (62, true) => "x86_64",
            (3, false) => "i386",
            (183, true) => "aarch64",
            (40, false) => "arm",
            (243, true) => "riscv64",
            (243, false) => "riscv32",
            (21, true) => "ppc64",
            (20, false) => "ppc",
            (22, true) => "s390x",
            (8, _) => "mips",
            (258, true) => "loongarch64",
            _ => "",
        };
        match known {
            "" => format!(
                "ELF machine {} ({}-bit)",
                self.em,
                if self.is_64 { 64 } else { 32 }
            ),
            n => n.to_string(),
        }
    }
}

/// The machine of an ELF file's header, or `None` when `bytes` is not ELF.
pub fn elf_machine(bytes: &[u8]) -> Option<Machine> {
    let h = bytes.get(..20)?;
    if &h[..4] != b"\x7fELF" {
        return None;
    }
    let is_64 = match h[4] {
        1 => false,
        2 => true,
        _ => return None,
    };
    let em = match h[5] {
        1 => u16::from_le_bytes([h[18], h[19]]),
        2 => u16::from_be_bytes([h[18], h[19]]),
        _ => return None,
    };
    Some(Machine { em, is_64 })
}

/// The machine a kernel config builds for (`CONFIG_X86_64=y`,
/// `CONFIG_ARM64=y`, `CONFIG_RISCV=y` with `CONFIG_64BIT=y`, ...), or
/// `None` when it names none this knows.
pub fn kernel_machine(config: &str) -> Option<Machine> {
    let on = |sym: &str| {
        config
            .lines()
            .any(|l| l.trim().strip_suffix("=y") == Some(sym))
    };
    let m = |em, is_64| Some(Machine { em, is_64 });
    if on("CONFIG_X86_64") {
        m(62, true)
    } else if on("CONFIG_X86_32") {
        m(3, false)
    } else if on("CONFIG_ARM64") {
        m(183, true)
    } else if on("CONFIG_ARM") {
        m(40, false)
    } else if on("CONFIG_RISCV") {
        m(243, on("CONFIG_64BIT"))
    } else if on("CONFIG_PPC64") {
        m(21, true)
    } else if on("CONFIG_S390") {
        m(22, true)
    } else if on("CONFIG_LOONGARCH") {
        m(258, true)
    } else {
        None
    }
}

/// The machine of a module file (compressed or not), or `None`.
pub fn module_machine(data: &[u8]) -> Option<Machine> {
    match detect(data) {
        None => elf_machine(data),
        Some(_) => elf_machine(&decompress_to_vec(data, MAX_OUTPUT).ok()?),
    }
}

/// Refuses `exe` (what `what` names: `--earlymod PATH`, `init PATH`) when
/// it is an ELF executable for another machine than `target`: the one-line
/// error names both. Scripts and non-ELF files pass.
pub fn check_executable(what: &str, exe: &[u8], target: Machine, kver: &str) -> Result<(), String> {
    match elf_machine(exe) {
        Some(m) if m != target => Err(format!(
            "{what}: built for {}, but kernel {kver} is {}",
            m.name(),
            target.name()
        )),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(class: u8, data: u8, em: u16) -> Vec<u8> {
        let mut h = vec![0u8; 64];
        h[..4].copy_from_slice(b"\x7fELF");
        h[4] = class;
        h[5] = data;
        let b = if data == 1 {
            em.to_le_bytes()
        } else {
            em.to_be_bytes()
        };
        h[18..20].copy_from_slice(&b);
        h
    }

    #[test]
    fn machines_from_headers_and_configs() {
        let x86 = elf_machine(&header(2, 1, 62)).unwrap();
        assert_eq!(x86.name(), "x86_64");
        assert_eq!(elf_machine(&header(2, 1, 183)).unwrap().name(), "aarch64");
        assert_eq!(elf_machine(&header(2, 2, 22)).unwrap().name(), "s390x");
        assert_eq!(
            elf_machine(&header(1, 1, 4242)).unwrap().name(),
            "ELF machine 4242 (32-bit)"
        );
        assert_eq!(elf_machine(b"#!/bin/sh\n"), None);
        assert_eq!(elf_machine(b"\x7fELF"), None);
        let cfg = "# comment\nCONFIG_ARM64=y\nCONFIG_64BIT=y\n";
        assert_eq!(kernel_machine(cfg).unwrap().name(), "aarch64");
        assert_eq!(
            kernel_machine("CONFIG_RISCV=y\nCONFIG_64BIT=y\n")
                .unwrap()
                .name(),
            "riscv64"
        );
        assert_eq!(kernel_machine("CONFIG_X86_64=y\n"), Some(x86));
        assert_eq!(kernel_machine("CONFIG_ARM64=m\n"), None);
    }

    #[test]
    fn a_binary_for_another_machine_is_refused_naming_both() {
        let target = kernel_machine("CONFIG_ARM64=y\n").unwrap();
        let e = check_executable(
            "--earlymod out/earlymod",
            &header(2, 1, 62),
            target,
            "6.12-arm64",
        );
        assert_eq!(
            e,
            Err(
                "--earlymod out/earlymod: built for x86_64, but kernel 6.12-arm64 is aarch64"
                    .into()
            )
        );
        assert!(check_executable("init x", &header(2, 1, 183), target, "k").is_ok());
        assert!(check_executable("init x", b"#!/bin/sh\n", target, "k").is_ok());
    }
}
