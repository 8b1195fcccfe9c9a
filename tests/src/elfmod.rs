//! A small writer of synthetic kernel modules: relocatable x86_64 ELF64
//! files with just the sections kmod's libkmod reads (`libkmod-elf.c`) —
//! `.modinfo`, `__ksymtab_strings`, `__versions`, `.symtab`/`.strtab` —
//! so that depmod computes dependencies, aliases, softdeps and weakdeps
//! from them and modinfo/modprobe print their fields.
//!
//! - `.modinfo`: the `key=value` records, each NUL-terminated.
//! - Exports: each name in `__ksymtab_strings`, a defined global symbol of
//!   that name in `.text` and a `__ksymtab_NAME` symbol in `__ksymtab`; with
//!   `export_crcs`, also an absolute `__crc_NAME` symbol whose value is the
//!   CRC (kmod then takes the exports from the `__crc_` symbols, as for a
//!   kernel built with CONFIG_MODVERSIONS; otherwise from
//!   `__ksymtab_strings`, with CRC 0).
//! - Imports: undefined global symbols (depmod resolves them against the
//!   other modules' exports).
//! - `__versions`: 64-byte records, a little-endian u64 CRC and a 56-byte
//!   NUL-padded name.
//! - An optional appended signature in the pre-PKCS#7 layout (`signer`,
//!   `key id`, `signature`, the 12-byte `module_signature` trailer and the
//!   `~Module signature appended~\n` magic), which kmod decodes itself.

/// What one synthetic module contains.
#[derive(Clone, Debug, Default)]
pub struct ModSpec {
    /// `.modinfo` records (`key=value`), in order.
    pub modinfo: Vec<String>,
    /// Exported symbol names.
    pub exports: Vec<String>,
    /// Also write `__crc_NAME` symbols (CRC = [`crc_of`]).
    pub export_crcs: bool,
    /// Undefined (imported) symbol names.
    pub imports: Vec<String>,
    /// `__versions` records: (CRC, symbol name).
    pub versions: Vec<(u64, String)>,
    /// An appended signature.
    pub signature: Option<Signature>,
}

/// A pre-PKCS#7 module signature (`id_type` 0 = PGP, 1 = X509).
#[derive(Clone, Debug)]
pub struct Signature {
    /// 0 = DSA, 1 = RSA.
    pub algo: u8,
    /// 0 md4, 1 md5, 2 sha1, 3 rmd160, 4 sha256, 5 sha384, 6 sha512, 7 sha224.
    pub hash: u8,
    pub id_type: u8,
    pub signer: String,
    pub key_id: Vec<u8>,
    pub sig: Vec<u8>,
}

/// A deterministic 32-bit "CRC" for a symbol name (FNV-1a).
pub fn crc_of(name: &str) -> u32 {
    let mut h: u32 = 0x811c_9dc5;
    for b in name.bytes() {
        h ^= u32::from(b);
        h = h.wrapping_mul(0x0100_0193);
    }
    h
}

const SHT_PROGBITS: u32 = 1;
const SHT_SYMTAB: u32 = 2;
const SHT_STRTAB: u32 = 3;
const SHF_ALLOC: u64 = 2;
const SHF_EXECINSTR: u64 = 4;
const SHN_ABS: u16 = 0xfff1;
const STB_GLOBAL: u8 = 1;
const STT_NOTYPE: u8 = 0;
const STT_OBJECT: u8 = 1;
const STT_FUNC: u8 = 2;

struct Section {
    name: &'static str,
    kind: u32,
    flags: u64,
    data: Vec<u8>,
    align: u64,
    link: u32,
    info: u32,
    entsize: u64,
}

fn strtab_add(tab: &mut Vec<u8>, s: &str) -> u32 {
    let off = tab.len() as u32;
    tab.extend_from_slice(s.as_bytes());
    tab.push(0);
    off
}

fn sym(out: &mut Vec<u8>, name: u32, info: u8, shndx: u16, value: u64, size: u64) {
    out.extend_from_slice(&name.to_le_bytes());
    out.push(info);
    out.push(0);
    out.extend_from_slice(&shndx.to_le_bytes());
    out.extend_from_slice(&value.to_le_bytes());
    out.extend_from_slice(&size.to_le_bytes());
}

/// The bytes of the module file.
pub fn build(spec: &ModSpec) -> Vec<u8> {
    // Section indexes, fixed: 1 .text, 2 .modinfo, 3 __ksymtab_strings,
    // 4 __ksymtab, 5 __versions, 6 .symtab, 7 .strtab, 8 .shstrtab.
    const TEXT: u16 = 1;
    const KSYMTAB: u16 = 4;
    const STRTAB: u32 = 7;

    let text = vec![0xc3u8; 16 * spec.exports.len().max(1)];
    let mut modinfo = Vec::new();
    for rec in &spec.modinfo {
        modinfo.extend_from_slice(rec.as_bytes());
        modinfo.push(0);
    }
    let mut ksymtab_strings = Vec::new();
    for e in &spec.exports {
        ksymtab_strings.extend_from_slice(e.as_bytes());
        ksymtab_strings.push(0);
    }
    let ksymtab = vec![0u8; 12 * spec.exports.len()];
    let mut versions = Vec::new();
    for (crc, name) in &spec.versions {
        versions.extend_from_slice(&crc.to_le_bytes());
        let mut n = name.as_bytes().to_vec();
        n.truncate(55);
        n.resize(56, 0);
        versions.extend_from_slice(&n);
    }

    let mut strtab = vec![0u8];
    let mut symtab = vec![0u8; 24];
    for (i, e) in spec.exports.iter().enumerate() {
        let n = strtab_add(&mut strtab, e);
        sym(
            &mut symtab,
            n,
            (STB_GLOBAL << 4) | STT_FUNC,
            TEXT,
            16 * i as u64,
            1,
        );
        let n = strtab_add(&mut strtab, &format!("__ksymtab_{e}"));
        sym(
            &mut symtab,
            n,
            (STB_GLOBAL << 4) | STT_OBJECT,
            KSYMTAB,
            12 * i as u64,
            12,
        );
        if spec.export_crcs {
            let n = strtab_add(&mut strtab, &format!("__crc_{e}"));
            sym(
                &mut symtab,
                n,
                (STB_GLOBAL << 4) | STT_NOTYPE,
                SHN_ABS,
                u64::from(crc_of(e)),
                0,
            );
        }
    }
    for imp in &spec.imports {
        let n = strtab_add(&mut strtab, imp);
        sym(&mut symtab, n, (STB_GLOBAL << 4) | STT_NOTYPE, 0, 0, 0);
    }

    let sections = vec![
        Section {
            name: ".text",
            kind: SHT_PROGBITS,
            flags: SHF_ALLOC | SHF_EXECINSTR,
            data: text,
            align: 16,
            link: 0,
            info: 0,
            entsize: 0,
        },
        Section {
            name: ".modinfo",
            kind: SHT_PROGBITS,
            flags: SHF_ALLOC,
            data: modinfo,
            align: 8,
            link: 0,
            info: 0,
            entsize: 0,
        },
        Section {
            name: "__ksymtab_strings",
            kind: SHT_PROGBITS,
            flags: SHF_ALLOC,
            data: ksymtab_strings,
            align: 1,
            link: 0,
            info: 0,
            entsize: 0,
        },
        Section {
            name: "__ksymtab",
            kind: SHT_PROGBITS,
            flags: SHF_ALLOC,
            data: ksymtab,
            align: 4,
            link: 0,
            info: 0,
            entsize: 0,
        },
        Section {
            name: "__versions",
            kind: SHT_PROGBITS,
            flags: SHF_ALLOC,
            data: versions,
            align: 32,
            link: 0,
            info: 0,
            entsize: 0,
        },
        Section {
            name: ".symtab",
            kind: SHT_SYMTAB,
            flags: 0,
            data: symtab,
            align: 8,
            link: STRTAB,
            info: 1,
            entsize: 24,
        },
        Section {
            name: ".strtab",
            kind: SHT_STRTAB,
            flags: 0,
            data: strtab,
            align: 1,
            link: 0,
            info: 0,
            entsize: 0,
        },
    ];
    let mut shstrtab = vec![0u8];
    let mut name_offs = Vec::new();
    for s in &sections {
        name_offs.push(strtab_add(&mut shstrtab, s.name));
    }
    let shstrtab_name = strtab_add(&mut shstrtab, ".shstrtab");

    let mut out = vec![0u8; 64];
    let mut placed = Vec::new();
    let pad_to = |out: &mut Vec<u8>, align: u64| {
        while (out.len() as u64) % align.max(1) != 0 {
            out.push(0);
        }
    };
    for s in &sections {
        pad_to(&mut out, s.align);
        placed.push(out.len() as u64);
        out.extend_from_slice(&s.data);
    }
    let shstr_off = out.len() as u64;
    out.extend_from_slice(&shstrtab);
    pad_to(&mut out, 8);
    let shoff = out.len() as u64;
    let shnum = sections.len() as u16 + 2;
    let shstrndx = shnum - 1;

    // Section headers: null, the sections, .shstrtab.
    out.extend_from_slice(&[0u8; 64]);
    let shdr = |out: &mut Vec<u8>,
                name: u32,
                kind: u32,
                flags: u64,
                off: u64,
                size: u64,
                link: u32,
                info: u32,
                align: u64,
                entsize: u64| {
        out.extend_from_slice(&name.to_le_bytes());
        out.extend_from_slice(&kind.to_le_bytes());
        out.extend_from_slice(&flags.to_le_bytes());
        out.extend_from_slice(&0u64.to_le_bytes()); // sh_addr
        out.extend_from_slice(&off.to_le_bytes());
        out.extend_from_slice(&size.to_le_bytes());
        out.extend_from_slice(&link.to_le_bytes());
        out.extend_from_slice(&info.to_le_bytes());
        out.extend_from_slice(&align.to_le_bytes());
        out.extend_from_slice(&entsize.to_le_bytes());
    };
    for ((s, off), name) in sections.iter().zip(&placed).zip(&name_offs) {
        shdr(
            &mut out,
            *name,
            s.kind,
            s.flags,
            *off,
            s.data.len() as u64,
            s.link,
            s.info,
            s.align,
            s.entsize,
        );
    }
    shdr(
        &mut out,
        shstrtab_name,
        SHT_STRTAB,
        0,
        shstr_off,
        shstrtab.len() as u64,
        0,
        0,
        1,
        0,
    );

    // ELF header.
    let h = &mut out[..64];
    h[..4].copy_from_slice(b"\x7fELF");
    h[4] = 2; // ELFCLASS64
    h[5] = 1; // ELFDATA2LSB
    h[6] = 1; // EV_CURRENT
    h[16..18].copy_from_slice(&1u16.to_le_bytes()); // ET_REL
    h[18..20].copy_from_slice(&62u16.to_le_bytes()); // EM_X86_64
    h[20..24].copy_from_slice(&1u32.to_le_bytes());
    h[40..48].copy_from_slice(&shoff.to_le_bytes());
    h[52..54].copy_from_slice(&64u16.to_le_bytes()); // e_ehsize
    h[58..60].copy_from_slice(&64u16.to_le_bytes()); // e_shentsize
    h[60..62].copy_from_slice(&shnum.to_le_bytes());
    h[62..64].copy_from_slice(&shstrndx.to_le_bytes());

    if let Some(sig) = &spec.signature {
        out.extend_from_slice(sig.signer.as_bytes());
        out.extend_from_slice(&sig.key_id);
        out.extend_from_slice(&sig.sig);
        out.push(sig.algo);
        out.push(sig.hash);
        out.push(sig.id_type);
        out.push(sig.signer.len() as u8);
        out.push(sig.key_id.len() as u8);
        out.extend_from_slice(&[0, 0, 0]);
        out.extend_from_slice(&(sig.sig.len() as u32).to_be_bytes());
        out.extend_from_slice(b"~Module signature appended~\n");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_and_sections() {
        let m = build(&ModSpec {
            modinfo: vec!["license=GPL".into(), "name=x".into()],
            exports: vec!["f".into()],
            export_crcs: true,
            imports: vec!["g".into()],
            versions: vec![(1, "module_layout".into())],
            signature: None,
        });
        assert_eq!(&m[..4], b"\x7fELF");
        let shoff = u64::from_le_bytes(m[40..48].try_into().unwrap()) as usize;
        let shnum = u16::from_le_bytes(m[60..62].try_into().unwrap()) as usize;
        assert_eq!(shnum, 9);
        assert_eq!(m.len(), shoff + 64 * shnum);
        let needle = b"license=GPL\0name=x\0";
        assert!(m.windows(needle.len()).any(|w| w == needle));
    }
}
