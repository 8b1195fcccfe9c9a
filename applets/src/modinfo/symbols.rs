//! The tables `modprobe --show-exports` and `--show-modversions` print,
//! read the way libkmod reads them (`kmod_elf_get_symbols`,
//! `kmod_elf_get_modversions`): the exports are the `__crc_` symbols of
//! `.symtab` with their CRCs (or, when there are none, the names in
//! `__ksymtab_strings` with CRC 0); the modversions are the `__versions`
//! table of `{crc, name[56 or 60]}` records.

use super::elf::Elf;
use alloc::vec::Vec;

const EINVAL: i32 = 22;
const ENODATA: i32 = 61;
const SHN_UNDEF: u64 = 0;
const SHN_ABS: u64 = 0xfff1;
/// One `__versions` record: a CRC and a NUL-padded name, 64 bytes in all.
const MODVERSION_LEN: usize = 64;

/// One line of the output: a CRC and a symbol name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Symbol<'a> {
    /// The CRC (`u64::MAX` when it points outside its section, as libkmod).
    pub crc: u64,
    /// The symbol name, as stored.
    pub name: &'a [u8],
}

/// Which table to print.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Table {
    /// `--show-exports`: what the module exports.
    Exports,
    /// `--show-modversions`: the CRCs of what the module imports.
    Modversions,
}

impl Table {
    /// The table of `elf`, or the errno libkmod returns.
    pub fn read<'a>(self, elf: &Elf<'a>) -> Result<Vec<Symbol<'a>>, i32> {
        match self {
            Table::Exports => exports(elf),
            Table::Modversions => modversions(elf),
        }
    }

    /// The word of kmod's error line ("could not get symbols of ...").
    pub fn noun(self) -> &'static str {
        match self {
            Table::Exports => "symbols",
            Table::Modversions => "modversions",
        }
    }
}

/// The bytes of `b` up to its first NUL (all of it when there is none).
fn cstr(b: &[u8]) -> &[u8] {
    b.iter().position(|&c| c == 0).map_or(b, |n| &b[..n])
}

/// The `__versions` table; `ENODATA` without one, `EINVAL` when its size
/// is not a whole number of records or a name fills its record.
pub fn modversions<'a>(elf: &Elf<'a>) -> Result<Vec<Symbol<'a>>, i32> {
    let sec = elf.section(b"__versions").ok_or(ENODATA)?;
    if sec.len() % MODVERSION_LEN != 0 {
        return Err(EINVAL);
    }
    let crc_len = if elf.is64() { 8 } else { 4 };
    sec.chunks_exact(MODVERSION_LEN)
        .map(|rec| {
            let (crc, name) = rec.split_at(crc_len);
            let len = name.iter().position(|&c| c == 0).ok_or(EINVAL)?;
            let name = &name[..len];
            Ok(Symbol {
                crc: elf.uint_of(crc),
                name: name.strip_prefix(b".").unwrap_or(name),
            })
        })
        .collect()
}

/// The exported symbols: `__crc_` symbols of `.symtab` when there are any
/// (and the tables are sound), else the names in `__ksymtab_strings`.
pub fn exports<'a>(elf: &Elf<'a>) -> Result<Vec<Symbol<'a>>, i32> {
    match crc_symbols(elf) {
        Some(v) => Ok(v),
        None => ksymtab_strings(elf),
    }
}

/// `__crc_NAME` symbols with their CRCs; `None` sends libkmod to the
/// fallback (no `.strtab`/`.symtab`, a ragged `.symtab`, a name offset
/// outside `.strtab`, or no `__crc_` symbol at all).
fn crc_symbols<'a>(elf: &Elf<'a>) -> Option<Vec<Symbol<'a>>> {
    let strtab = elf.section(b".strtab")?;
    let symtab = elf.section(b".symtab")?;
    // Elf64_Sym: name u32, info, other, shndx u16, value u64, size u64;
    // Elf32_Sym: name u32, value u32, size u32, info, other, shndx u16.
    let (entry, value_at, shndx_at) = if elf.is64() {
        (24, 8..16, 6..8)
    } else {
        (16, 4..8, 14..16)
    };
    if symtab.len() % entry != 0 {
        return None;
    }
    let mut out = Vec::new();
    for sym in symtab.chunks_exact(entry).skip(1) {
        let name_off = usize::try_from(elf.uint_of(&sym[..4])).ok()?;
        let name = cstr(strtab.get(name_off..).filter(|r| !r.is_empty())?);
        let Some(name) = name.strip_prefix(b"__crc_") else {
            continue;
        };
        let value = elf.uint_of(&sym[value_at.clone()]);
        let shndx = elf.uint_of(&sym[shndx_at.clone()]);
        out.push(Symbol {
            crc: resolve_crc(elf, value, shndx),
            name,
        });
    }
    (!out.is_empty()).then_some(out)
}

/// A `__crc_` symbol's CRC: its value when absolute (or undefined), else
/// the 32-bit word at that offset of its section; `u64::MAX` when the
/// section or the offset is bad (libkmod's `kmod_elf_resolve_crc`).
fn resolve_crc(elf: &Elf<'_>, value: u64, shndx: u64) -> u64 {
    if shndx == SHN_ABS || shndx == SHN_UNDEF {
        return value;
    }
    let Some(sec) = u16::try_from(shndx).ok().and_then(|i| elf.section_at(i)) else {
        return u64::MAX;
    };
    match usize::try_from(value) {
        Ok(at) if sec.len() >= 4 && at <= sec.len() - 4 => elf.uint_of(&sec[at..at + 4]),
        _ => u64::MAX,
    }
}

/// The names in `__ksymtab_strings` (CRC 0): `ENODATA` without the
/// section, `EINVAL` when it does not end with a NUL.
fn ksymtab_strings<'a>(elf: &Elf<'a>) -> Result<Vec<Symbol<'a>>, i32> {
    let sec = elf.section(b"__ksymtab_strings").ok_or(ENODATA)?;
    // Leading padding is skipped, down to one byte.
    let skip = sec
        .iter()
        .position(|&c| c != 0)
        .unwrap_or(sec.len())
        .min(sec.len().saturating_sub(1));
    let strings = &sec[skip..];
    if strings.len() <= 1 {
        return Ok(Vec::new());
    }
    if strings.last() != Some(&0) {
        return Err(EINVAL);
    }
    Ok(super::elf::split_strings(strings)
        .map(|name| Symbol { crc: 0, name })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::super::elf::tests::build;
    use super::*;
    use alloc::vec;

    fn names<'a>(v: &[Symbol<'a>]) -> Vec<(u64, &'a [u8])> {
        v.iter().map(|s| (s.crc, s.name)).collect()
    }

    fn record(crc: u64, name: &[u8], is64: bool, msb: bool) -> Vec<u8> {
        let crc_len = if is64 { 8 } else { 4 };
        let mut r = vec![0u8; MODVERSION_LEN];
        for i in 0..crc_len {
            let b = (crc >> (8 * i)) as u8;
            r[if msb { crc_len - 1 - i } else { i }] = b;
        }
        r[crc_len..crc_len + name.len()].copy_from_slice(name);
        r
    }

    #[test]
    fn modversions_every_class() {
        for (msb, is64) in [(false, true), (true, true), (false, false), (true, false)] {
            let mut sec = record(0x1234_5678, b"printk", is64, msb);
            sec.extend(record(0xdead_beef, b".module_layout", is64, msb));
            let f = build(&[("__versions", &sec)], msb, is64);
            let elf = Elf::parse(&f).unwrap();
            assert_eq!(
                names(&modversions(&elf).unwrap()),
                vec![
                    (0x1234_5678, &b"printk"[..]),
                    (0xdead_beef, &b"module_layout"[..])
                ]
            );
        }
    }

    #[test]
    fn modversions_errors() {
        let f = build(&[(".text", b"x")], false, true);
        assert_eq!(modversions(&Elf::parse(&f).unwrap()), Err(ENODATA));
        let f = build(&[("__versions", b"")], false, true);
        assert_eq!(modversions(&Elf::parse(&f).unwrap()), Ok(vec![]));
        let f = build(&[("__versions", &[0u8; 65])], false, true);
        assert_eq!(modversions(&Elf::parse(&f).unwrap()), Err(EINVAL));
        // A name that fills its 56 bytes has no terminator.
        let f = build(
            &[("__versions", &record(1, &[b'a'; 56], true, false))],
            false,
            true,
        );
        assert_eq!(modversions(&Elf::parse(&f).unwrap()), Err(EINVAL));
    }

    /// `.symtab` (ELF64 LE) with one null entry and `(name offset, value,
    /// shndx)` entries.
    fn symtab64(entries: &[(u32, u64, u16)]) -> Vec<u8> {
        let mut t = vec![0u8; 24];
        for &(name, value, shndx) in entries {
            let mut e = vec![0u8; 24];
            e[..4].copy_from_slice(&name.to_le_bytes());
            e[6..8].copy_from_slice(&shndx.to_le_bytes());
            e[8..16].copy_from_slice(&value.to_le_bytes());
            t.extend(e);
        }
        t
    }

    #[test]
    fn exports_from_crc_symbols() {
        // Sections: 1 __kcrctab, 2 .strtab, 3 .symtab.
        let kcrctab = [0x11u8, 0x22, 0x33, 0x44, 0xaa, 0xbb, 0xcc, 0xdd];
        let strtab = b"\0__crc_foo\0bar\0__crc_baz\0__crc_abs\0__crc_far\0";
        let symtab = symtab64(&[
            (1, 0, 1),            // foo: first word of section 1
            (11, 0, 0),           // bar: not a CRC symbol
            (15, 4, 1),           // baz: second word
            (25, 0x1234, 0xfff1), // abs: the value itself
            (35, 5, 1),           // far: offset past the last word
        ]);
        let f = build(
            &[
                ("__kcrctab", &kcrctab),
                (".strtab", strtab),
                (".symtab", &symtab),
                ("__ksymtab_strings", b"\0ignored\0"),
            ],
            false,
            true,
        );
        let elf = Elf::parse(&f).unwrap();
        assert_eq!(
            names(&exports(&elf).unwrap()),
            vec![
                (0x4433_2211, &b"foo"[..]),
                (0xddcc_bbaa, &b"baz"[..]),
                (0x1234, &b"abs"[..]),
                (u64::MAX, &b"far"[..]),
            ]
        );
    }

    #[test]
    fn exports_fall_back_to_ksymtab_strings() {
        let strtab = b"\0plain\0";
        let ok = symtab64(&[(1, 0, 0)]);
        let bad_name = symtab64(&[(1, 0, 0), (99, 0, 0)]);
        for symtab in [&ok[..], &bad_name[..], &ok[..30]] {
            let f = build(
                &[
                    (".strtab", strtab),
                    (".symtab", symtab),
                    ("__ksymtab_strings", b"\0\0alpha\0\0beta\0"),
                ],
                false,
                true,
            );
            let elf = Elf::parse(&f).unwrap();
            assert_eq!(
                names(&exports(&elf).unwrap()),
                vec![(0, &b"alpha"[..]), (0, &b"beta"[..])]
            );
        }
        let f = build(&[(".text", b"x")], false, true);
        assert_eq!(exports(&Elf::parse(&f).unwrap()), Err(ENODATA));
        let f = build(&[("__ksymtab_strings", b"\0\0\0")], false, true);
        assert_eq!(exports(&Elf::parse(&f).unwrap()), Ok(vec![]));
        let f = build(&[("__ksymtab_strings", b"\0abc")], false, true);
        assert_eq!(exports(&Elf::parse(&f).unwrap()), Err(EINVAL));
    }
}
