//! CPU microcode for the kernel's early loader: `kernel/x86/microcode/
//! GenuineIntel.bin` and `AuthenticAMD.bin` in an uncompressed archive at
//! the very start of the image (`Documentation/arch/x86/microcode.rst`),
//! built from the files Debian's `intel-microcode` (`intel-ucode/FF-MM-SS`)
//! and `amd64-microcode` (`amd-ucode/microcode_amd*.bin`) install in the
//! firmware tree.
//!
//! A vendor's bundle is its files concatenated in name order: Intel's
//! loader walks a sequence of update headers, AMD's a sequence of
//! containers, as initramfs-tools' hooks write them. For one host
//! (`--host-only`) only the host CPU's own file is taken: Intel's
//! `FF-MM-SS` of its family, model and stepping; AMD's
//! `microcode_amd_famXXh.bin` of its family (`microcode_amd.bin` before
//! family 0x15).

use std::path::{Path, PathBuf};
use std::str::FromStr;

/// A CPU vendor with an early microcode loader.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Vendor {
    /// `GenuineIntel`.
    Intel,
    /// `AuthenticAMD`.
    Amd,
}

impl Vendor {
    /// The vendor string, also the bundle's file name.
    pub fn id(self) -> &'static str {
        match self {
            Vendor::Intel => "GenuineIntel",
            Vendor::Amd => "AuthenticAMD",
        }
    }

    /// The bundle's path in the early member.
    pub fn image_path(self) -> String {
        format!("kernel/x86/microcode/{}.bin", self.id())
    }

    /// The firmware tree's directory of this vendor's files.
    fn subdir(self) -> &'static str {
        match self {
            Vendor::Intel => "intel-ucode",
            Vendor::Amd => "amd-ucode",
        }
    }
}

/// `--microcode`: which bundles to build.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Choice {
    /// The host CPU's vendor with `--host-only`, both otherwise; nothing
    /// (and no warning) when the firmware trees have none.
    #[default]
    Auto,
    /// Intel's, an error when there is none.
    Intel,
    /// AMD's, an error when there is none.
    Amd,
    /// No microcode.
    None,
}

impl FromStr for Choice {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "auto" => Ok(Choice::Auto),
            "intel" => Ok(Choice::Intel),
            "amd" => Ok(Choice::Amd),
            "none" => Ok(Choice::None),
            _ => Err(format!(
                "unknown microcode choice '{s}' (auto, intel, amd, none)"
            )),
        }
    }
}

/// The host CPU as `/proc/cpuinfo` describes its first processor.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cpu {
    /// Its vendor, if it has an early loader.
    pub vendor: Option<Vendor>,
    /// `cpu family`.
    pub family: u32,
    /// `model`.
    pub model: u32,
    /// `stepping`.
    pub stepping: u32,
}

impl Cpu {
    /// Parses the first processor of `/proc/cpuinfo`.
    pub fn from_cpuinfo(text: &str) -> Option<Cpu> {
        let mut cpu = Cpu {
            vendor: None,
            family: 0,
            model: 0,
            stepping: 0,
        };
        let mut seen = 0;
        for line in text.lines() {
            if line.trim().is_empty() && seen > 0 {
                break;
            }
            let Some((k, v)) = line.split_once(':') else {
                continue;
            };
            let v = v.trim();
            match k.trim() {
                "vendor_id" => {
                    cpu.vendor = match v {
                        "GenuineIntel" => Some(Vendor::Intel),
                        "AuthenticAMD" => Some(Vendor::Amd),
                        _ => None,
                    };
                    seen += 1;
                }
                "cpu family" => (cpu.family, seen) = (v.parse().ok()?, seen + 1),
                "model" => (cpu.model, seen) = (v.parse().ok()?, seen + 1),
                "stepping" => (cpu.stepping, seen) = (v.parse().ok()?, seen + 1),
                _ => {}
            }
        }
        (seen == 4).then_some(cpu)
    }

    /// The one file of its vendor's directory that serves this CPU.
    pub fn file_name(&self) -> Option<String> {
        match self.vendor? {
            Vendor::Intel => Some(format!(
                "{:02x}-{:02x}-{:02x}",
                self.family, self.model, self.stepping
            )),
            Vendor::Amd if self.family >= 0x15 => {
                Some(format!("microcode_amd_fam{:02x}h.bin", self.family))
            }
            Vendor::Amd => Some("microcode_amd.bin".into()),
        }
    }
}

/// A vendor's microcode bundle: the bytes and the files they came from.
pub type Bundle = (Vec<u8>, Vec<PathBuf>);

/// A vendor's bundle from the first firmware tree that has its directory:
/// every file (or only `only`) concatenated in name order, and the files
/// used. `None` when no tree has any.
pub fn bundle(
    vendor: Vendor,
    dirs: &[PathBuf],
    only: Option<&str>,
) -> Result<Option<Bundle>, String> {
    for dir in dirs {
        let sub = dir.join(vendor.subdir());
        let Ok(rd) = std::fs::read_dir(&sub) else {
            continue;
        };
        let mut files: Vec<PathBuf> = rd
            .flatten()
            .map(|e| e.path())
            .filter(|p| p.is_file())
            .filter(|p| wanted(vendor, p, only))
            .collect();
        if files.is_empty() {
            continue;
        }
        files.sort();
        let mut data = Vec::new();
        for f in &files {
            data.extend(std::fs::read(f).map_err(|e| format!("{}: {e}", f.display()))?);
        }
        return Ok(Some((data, files)));
    }
    Ok(None)
}

fn wanted(vendor: Vendor, p: &Path, only: Option<&str>) -> bool {
    let name = p
        .file_name()
        .map(|n| n.to_string_lossy())
        .unwrap_or_default();
    if let Some(o) = only {
        return name == o;
    }
    match vendor {
        // FF-MM-SS; the package also ships notes and a list
        Vendor::Intel => {
            name.len() == 8
                && name
                    .split('-')
                    .all(|h| h.len() == 2 && h.bytes().all(|b| b.is_ascii_hexdigit()))
        }
        Vendor::Amd => name.starts_with("microcode_amd") && name.ends_with(".bin"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::TempDir;

    const INTEL: &str = "processor\t: 0\nvendor_id\t: GenuineIntel\ncpu family\t: 6\n\
                         model\t\t: 85\nmodel name\t: Xeon\nstepping\t: 7\n\nprocessor\t: 1\n\
                         vendor_id\t: AuthenticAMD\n";
    const AMD: &str = "vendor_id\t: AuthenticAMD\ncpu family\t: 25\nmodel\t\t: 17\nstepping\t: 1\n";

    #[test]
    fn host_cpu_and_its_file() {
        let i = Cpu::from_cpuinfo(INTEL).unwrap();
        assert_eq!(
            (i.vendor, i.family, i.model, i.stepping),
            (Some(Vendor::Intel), 6, 85, 7)
        );
        assert_eq!(i.file_name().unwrap(), "06-55-07");
        let a = Cpu::from_cpuinfo(AMD).unwrap();
        assert_eq!(a.file_name().unwrap(), "microcode_amd_fam19h.bin");
        let old = Cpu { family: 0x10, ..a };
        assert_eq!(old.file_name().unwrap(), "microcode_amd.bin");
        assert_eq!(Cpu::from_cpuinfo("vendor_id : GenuineIntel\n"), None);
        let other = Cpu::from_cpuinfo(&AMD.replace("AuthenticAMD", "HygonGenuine")).unwrap();
        assert_eq!(other.file_name(), None);
        assert_eq!("amd".parse::<Choice>(), Ok(Choice::Amd));
        assert!("both".parse::<Choice>().is_err());
    }

    #[test]
    fn bundles_concatenate_in_name_order() {
        let t = TempDir::new("ucode");
        let put = |rel: &str, data: &[u8]| {
            let p = t.0.join(rel);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(p, data).unwrap();
        };
        put("intel-ucode/06-55-07", b"B");
        put("intel-ucode/06-55-04", b"A");
        put("intel-ucode/list", b"not microcode");
        put("amd-ucode/microcode_amd_fam19h.bin", b"19");
        put("amd-ucode/microcode_amd.bin", b"old");
        put("amd-ucode/microcode_amd_fam17h.bin.asc", b"sig");
        let dirs = [t.0.join("none"), t.0.clone()];
        let (data, files) = bundle(Vendor::Intel, &dirs, None).unwrap().unwrap();
        assert_eq!(data, b"AB");
        assert_eq!(files.len(), 2);
        let (data, _) = bundle(Vendor::Amd, &dirs, None).unwrap().unwrap();
        assert_eq!(data, b"old19");
        let (data, _) = bundle(Vendor::Intel, &dirs, Some("06-55-07"))
            .unwrap()
            .unwrap();
        assert_eq!(data, b"B");
        assert_eq!(
            bundle(Vendor::Intel, &dirs, Some("06-8f-08")).unwrap(),
            None
        );
        assert_eq!(
            bundle(Vendor::Amd, &[t.0.join("none")], None).unwrap(),
            None
        );
    }
}
