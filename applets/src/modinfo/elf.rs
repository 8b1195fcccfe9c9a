//! Minimal, bounds-checked ELF section reader with libkmod's acceptance rules
//! (`libkmod-elf.c`): 32/64-bit, little/big endian; only what `modinfo`
//! needs (finding a section by name and splitting `.modinfo` strings).
//!
//! Nothing here panics on malformed input: every offset is checked.

/// Why a buffer was rejected as an ELF file. [`ElfError::errno`] gives the
/// errno libkmod reports for the same condition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ElfError {
    /// No ELF magic, or the file is shorter than `e_ident` (ENOEXEC).
    NotElf,
    /// Structurally invalid (EINVAL); the string says what is wrong.
    Invalid(&'static str),
}

impl ElfError {
    /// errno libkmod returns for this condition.
    pub fn errno(&self) -> i32 {
        match self {
            ElfError::NotElf => 8,      // ENOEXEC
            ElfError::Invalid(_) => 22, // EINVAL
        }
    }
}

const EI_NIDENT: usize = 16;
const EHDR32: usize = 52;
const EHDR64: usize = 64;
const SHDR32: u64 = 40;
const SHDR64: u64 = 64;

/// A parsed view of an ELF file's section table.
#[derive(Debug, Clone)]
pub struct Elf<'a> {
    data: &'a [u8],
    is64: bool,
    msb: bool,
    shoff: u64,
    shnum: u16,
    shentsize: u16,
    /// Section-name string table (guaranteed non-empty and NUL-terminated).
    shstrtab: &'a [u8],
}

struct SectionInfo {
    offset: u64,
    size: u64,
    name: u32,
}

impl<'a> Elf<'a> {
    /// Validate the ELF header and section-name table like `kmod_elf_new`.
    pub fn parse(data: &'a [u8]) -> Result<Elf<'a>, ElfError> {
        if data.len() <= EI_NIDENT || &data[..4] != b"\x7fELF" {
            return Err(ElfError::NotElf);
        }
        let is64 = match data[4] {
            1 if data.len() > EHDR32 => false,
            2 if data.len() > EHDR64 => true,
            1 | 2 => return Err(ElfError::Invalid("file shorter than its ELF header")),
            _ => return Err(ElfError::Invalid("unknown ELF class")),
        };
        let msb = match data[5] {
            1 => false,
            2 => true,
            _ => return Err(ElfError::Invalid("unknown ELF data encoding")),
        };
        let mut elf = Elf {
            data,
            is64,
            msb,
            shoff: 0,
            shnum: 0,
            shentsize: 0,
            shstrtab: &[],
        };
        let (shoff, shentsize, shnum, shstrndx) = if is64 {
            (
                elf.uint(0x28, 8),
                elf.uint(0x3a, 2),
                elf.uint(0x3c, 2),
                elf.uint(0x3e, 2),
            )
        } else {
            (
                elf.uint(0x20, 4),
                elf.uint(0x2e, 2),
                elf.uint(0x30, 2),
                elf.uint(0x32, 2),
            )
        };
        let (shoff, shentsize, shnum, shstrndx) = (
            shoff.ok_or(ElfError::Invalid("truncated header"))?,
            shentsize.ok_or(ElfError::Invalid("truncated header"))? as u16,
            shnum.ok_or(ElfError::Invalid("truncated header"))? as u16,
            shstrndx.ok_or(ElfError::Invalid("truncated header"))? as u16,
        );
        let want = if is64 { SHDR64 } else { SHDR32 };
        if u64::from(shentsize) != want {
            return Err(ElfError::Invalid("unexpected section header entry size"));
        }
        match (want * u64::from(shnum)).checked_add(shoff) {
            Some(end) if end <= data.len() as u64 => {}
            _ => {
                return Err(ElfError::Invalid(
                    "file too short to hold its section headers",
                ));
            }
        }
        elf.shoff = shoff;
        elf.shnum = shnum;
        elf.shentsize = shentsize;
        let strs = elf
            .section_info(shstrndx)
            .ok_or(ElfError::Invalid("bad section name string table"))?;
        // section_info guarantees offset + size <= len
        let tab = &data[strs.offset as usize..(strs.offset + strs.size) as usize];
        if tab.last() != Some(&0) {
            return Err(ElfError::Invalid(
                "section name string table is empty or not NUL-terminated",
            ));
        }
        elf.shstrtab = tab;
        Ok(elf)
    }

    fn uint(&self, off: u64, size: u64) -> Option<u64> {
        let end = off.checked_add(size)?;
        let bytes = self
            .data
            .get(usize::try_from(off).ok()?..usize::try_from(end).ok()?)?;
        let mut v = 0u64;
        if self.msb {
            for &b in bytes {
                v = (v << 8) | u64::from(b);
            }
        } else {
            for &b in bytes.iter().rev() {
                v = (v << 8) | u64::from(b);
            }
        }
        Some(v)
    }

    /// Section `idx`'s offset/size/name, or None when the index is invalid
    /// or the section lies outside the file.
    fn section_info(&self, idx: u16) -> Option<SectionInfo> {
        if idx == 0 || idx >= self.shnum {
            return None;
        }
        let base = self.shoff + u64::from(idx) * u64::from(self.shentsize);
        let (name, offset, size) = if self.is64 {
            (
                self.uint(base, 4)?,
                self.uint(base + 0x18, 8)?,
                self.uint(base + 0x20, 8)?,
            )
        } else {
            (
                self.uint(base, 4)?,
                self.uint(base + 0x10, 4)?,
                self.uint(base + 0x14, 4)?,
            )
        };
        match offset.checked_add(size) {
            Some(end) if end <= self.data.len() as u64 => Some(SectionInfo {
                offset,
                size,
                name: name as u32,
            }),
            _ => None,
        }
    }

    /// True for ELFCLASS64.
    pub fn is64(&self) -> bool {
        self.is64
    }

    /// The file's integer of `bytes.len()` (at most 8) bytes, in its byte order.
    pub fn uint_of(&self, bytes: &[u8]) -> u64 {
        let fold = |v: u64, b: &u8| (v << 8) | u64::from(*b);
        if self.msb {
            bytes.iter().fold(0, fold)
        } else {
            bytes.iter().rev().fold(0, fold)
        }
    }

    /// Contents of section `idx`, or None when the index is 0, past the
    /// table, or the section lies outside the file.
    pub fn section_at(&self, idx: u16) -> Option<&'a [u8]> {
        let info = self.section_info(idx)?;
        let start = info.offset as usize;
        Some(&self.data[start..start + info.size as usize])
    }

    /// Contents of the first section (index >= 1) named `name`, skipping
    /// sections that lie outside the file, like `kmod_elf_get_section`.
    pub fn section(&self, name: &[u8]) -> Option<&'a [u8]> {
        for i in 1..self.shnum {
            let Some(info) = self.section_info(i) else {
                continue;
            };
            let Some(rest) = self.shstrtab.get(info.name as usize..) else {
                continue;
            };
            // the table ends with a NUL, so a terminator is always found
            let n = rest.iter().position(|&b| b == 0).unwrap_or(rest.len());
            if &rest[..n] != name {
                continue;
            }
            let start = info.offset as usize;
            return Some(&self.data[start..start + info.size as usize]);
        }
        None
    }
}

/// Split a `.modinfo`-style section into its NUL-separated strings, ignoring
/// empty ones (padding), exactly as `kmod_elf_get_strings` does.
pub fn split_strings(section: &[u8]) -> impl Iterator<Item = &[u8]> {
    section.split(|&b| b == 0).filter(|s| !s.is_empty())
}

#[cfg(test)]
pub(crate) mod tests {
    extern crate std;
    use super::*;
    use std::vec;
    use std::vec::Vec;

    /// Build a little ELF64 LE file with the given (name, contents) sections.
    pub(crate) fn build(sections: &[(&str, &[u8])], msb: bool, is64: bool) -> Vec<u8> {
        let ehdr = if is64 { EHDR64 } else { EHDR32 };
        let shdr = if is64 { SHDR64 } else { SHDR32 } as usize;
        let mut shstr = vec![0u8];
        let mut names = Vec::new();
        for (n, _) in sections {
            names.push(shstr.len());
            shstr.extend_from_slice(n.as_bytes());
            shstr.push(0);
        }
        names.push(shstr.len());
        shstr.extend_from_slice(b".shstrtab\0");
        let mut body = vec![0u8; ehdr];
        let mut placed = Vec::new();
        for (_, c) in sections {
            placed.push((body.len(), c.len()));
            body.extend_from_slice(c);
        }
        placed.push((body.len(), shstr.len()));
        body.extend_from_slice(&shstr);
        let shoff = body.len();
        let shnum = sections.len() + 2;
        body.resize(shoff + shnum * shdr, 0);
        let put = |b: &mut Vec<u8>, off: usize, size: usize, v: u64| {
            for i in 0..size {
                let byte = (v >> (8 * i)) as u8;
                let at = if msb { off + size - 1 - i } else { off + i };
                b[at] = byte;
            }
        };
        body[..4].copy_from_slice(b"\x7fELF");
        body[4] = if is64 { 2 } else { 1 };
        body[5] = if msb { 2 } else { 1 };
        body[6] = 1;
        if is64 {
            put(&mut body, 0x28, 8, shoff as u64);
            put(&mut body, 0x3a, 2, shdr as u64);
            put(&mut body, 0x3c, 2, shnum as u64);
            put(&mut body, 0x3e, 2, (shnum - 1) as u64);
        } else {
            put(&mut body, 0x20, 4, shoff as u64);
            put(&mut body, 0x2e, 2, shdr as u64);
            put(&mut body, 0x30, 2, shnum as u64);
            put(&mut body, 0x32, 2, (shnum - 1) as u64);
        }
        for (i, (off, len)) in placed.iter().enumerate() {
            let base = shoff + (i + 1) * shdr;
            put(&mut body, base, 4, names[i] as u64);
            if is64 {
                put(&mut body, base + 0x18, 8, *off as u64);
                put(&mut body, base + 0x20, 8, *len as u64);
            } else {
                put(&mut body, base + 0x10, 4, *off as u64);
                put(&mut body, base + 0x14, 4, *len as u64);
            }
        }
        body
    }

    #[test]
    fn finds_sections_all_classes() {
        for (msb, is64) in [(false, true), (true, true), (false, false), (true, false)] {
            let f = build(
                &[
                    (".text", b"\x90\x90"),
                    (".modinfo", b"\0\0license=GPL\0\0a=b\0"),
                ],
                msb,
                is64,
            );
            let elf = Elf::parse(&f).unwrap();
            assert_eq!(elf.msb, msb);
            assert_eq!(elf.is64, is64);
            let s = elf.section(b".modinfo").unwrap();
            assert_eq!(
                split_strings(s).collect::<Vec<_>>(),
                vec![&b"license=GPL"[..], &b"a=b"[..]]
            );
            assert_eq!(elf.section(b".text").unwrap(), b"\x90\x90");
            assert!(elf.section(b".nope").is_none());
        }
    }

    #[test]
    fn rejects_bad_headers() {
        assert_eq!(Elf::parse(b"").unwrap_err(), ElfError::NotElf);
        assert_eq!(
            Elf::parse(b"\x7fELF\x02\x01").unwrap_err(),
            ElfError::NotElf
        );
        assert_eq!(Elf::parse(&[b'x'; 100]).unwrap_err(), ElfError::NotElf);
        let mut f = build(&[(".modinfo", b"a=b\0")], false, true);
        f[4] = 3;
        assert!(matches!(Elf::parse(&f), Err(ElfError::Invalid(_))));
        let f = build(&[(".modinfo", b"a=b\0")], false, true);
        assert!(matches!(Elf::parse(&f[..64]), Err(ElfError::Invalid(_))));
        assert!(matches!(
            Elf::parse(&f[..f.len() - 1]),
            Err(ElfError::Invalid(_))
        ));
    }

    #[test]
    fn never_panics_on_mutations() {
        let f = build(
            &[(".text", b"\x90\x90"), (".modinfo", b"a=b\0c=d\0")],
            false,
            true,
        );
        let mut x: u32 = 99;
        for _ in 0..20_000 {
            let mut m = f.clone();
            for _ in 0..3 {
                x ^= x << 13;
                x ^= x >> 17;
                x ^= x << 5;
                let pos = x as usize % m.len();
                m[pos] = (x >> 8) as u8;
            }
            let cut = (x >> 3) as usize % (m.len() + 1);
            for d in [&m[..], &m[..cut]] {
                if let Ok(e) = Elf::parse(d) {
                    let _ = e.section(b".modinfo").map(|s| split_strings(s).count());
                }
            }
        }
    }
}
