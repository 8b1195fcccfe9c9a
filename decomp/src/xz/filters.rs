//! The xz filters that may precede LZMA2 (xz file format 5.3.2, 5.3.3):
//! delta and the branch/call/jump (BCJ) converters, run in place over a
//! block's whole decoded output once LZMA2 is done with it. Each BCJ filter
//! turns absolute branch targets (what the encoder wrote, for better
//! compression) back into the relative ones of the instruction set; `pc` is
//! the filter's start offset plus the position in the block. On a whole
//! block, the streaming converters' carried state reduces to this: the
//! final bytes too short to hold an instruction stay as they are.

use crate::{Error, Format};

const X: Format = Format::Xz;

/// Decode filter `id` (properties `prop`: the delta distance minus one, or
/// the BCJ start offset) over `buf`.
pub(crate) fn apply(id: u64, prop: u32, buf: &mut [u8]) -> Result<(), Error> {
    match id {
        3 => delta(buf, prop as usize + 1),
        4 => x86(buf, prop),
        5 => powerpc(buf, prop),
        6 => ia64(buf, prop),
        7 => arm(buf, prop),
        8 => arm_thumb(buf, prop),
        9 => sparc(buf, prop),
        0x0a => arm64(buf, prop),
        0x0b => {
            return Err(Error::Unsupported(
                X,
                "the RISC-V BCJ filter (xz 5.6) is not implemented",
            ));
        }
        _ => return Err(Error::Unsupported(X, "filter other than LZMA2, BCJ, delta")),
    }
    Ok(())
}

/// Delta: each byte was stored as its difference from the byte `dist`
/// earlier (bytes before the block count as zero).
pub(crate) fn delta(buf: &mut [u8], dist: usize) {
    for i in dist..buf.len() {
        buf[i] = buf[i].wrapping_add(buf[i - dist]);
    }
}

fn le32(b: &[u8]) -> u32 {
    u32::from_le_bytes([b[0], b[1], b[2], b[3]])
}

fn be32(b: &[u8]) -> u32 {
    u32::from_be_bytes([b[0], b[1], b[2], b[3]])
}

/// x86: E8 (call) and E9 (jmp) with a 32-bit displacement whose top byte
/// is 00 or FF. A small history of recent E8/E9 bytes (`mask`) tells which
/// candidates the encoder skipped, exactly as the encoder saw them.
pub(crate) fn x86(buf: &mut [u8], start: u32) {
    const ALLOWED: [bool; 8] = [true, true, true, false, true, false, false, false];
    const BIT: [u32; 8] = [0, 1, 2, 2, 3, 3, 3, 3];
    let ms = |b: u8| b == 0 || b == 0xff;
    if buf.len() < 5 {
        return;
    }
    let mut mask = 0u32;
    // Position just after the previous E8/E9 (none yet: far behind).
    let mut prev = start.wrapping_sub(5);
    let mut i = 0usize;
    while i + 5 <= buf.len() {
        let b = buf[i];
        if b & 0xfe != 0xe8 {
            i += 1;
            continue;
        }
        let here = start.wrapping_add(i as u32);
        let gap = here.wrapping_sub(prev);
        prev = here;
        if gap > 5 {
            mask = 0;
        } else {
            for _ in 0..gap {
                mask = (mask & 0x77) << 1;
            }
        }
        let top = buf[i + 4];
        if ms(top) && ALLOWED[((mask >> 1) & 7) as usize] && (mask >> 1) < 0x10 {
            let mut src = le32(&buf[i + 1..i + 5]);
            let mut dest;
            loop {
                dest = src.wrapping_sub(here.wrapping_add(5));
                if mask == 0 {
                    break;
                }
                // n is 1..=3 here (bit 0 of the mask is always shifted
                // out by now); the forms below hold for 0 too.
                let n = BIT[((mask >> 1) & 7) as usize];
                if !ms((dest >> (24 - n * 8)) as u8) {
                    break;
                }
                src = dest ^ (u32::MAX >> (n * 8));
            }
            // Bit 24 sign-extended into the top byte.
            let dest = (dest & 0x01ff_ffff) | ((dest >> 24) & 1).wrapping_neg() << 24;
            buf[i + 1..i + 5].copy_from_slice(&dest.to_le_bytes());
            i += 5;
            mask = 0;
        } else {
            i += 1;
            mask |= 1;
            if ms(top) {
                mask |= 0x10;
            }
        }
    }
}

/// ARM: BL, a 24-bit word offset, condition "always" (byte 3 = EB).
pub(crate) fn arm(buf: &mut [u8], start: u32) {
    let mut i = 0;
    while i + 4 <= buf.len() {
        if buf[i + 3] == 0xeb {
            let src = le32(&buf[i..i + 4]) << 2;
            let pc = start.wrapping_add(i as u32).wrapping_add(8);
            let dest = src.wrapping_sub(pc) >> 2;
            buf[i..i + 3].copy_from_slice(&dest.to_le_bytes()[..3]);
        }
        i += 4;
    }
}

/// ARM-Thumb: the BL pair of 16-bit halves (F000 + F800), 22-bit halfword
/// offset, on 2-byte alignment.
pub(crate) fn arm_thumb(buf: &mut [u8], start: u32) {
    let mut i = 0;
    while i + 4 <= buf.len() {
        if buf[i + 1] & 0xf8 == 0xf0 && buf[i + 3] & 0xf8 == 0xf8 {
            let src = (u32::from(buf[i + 1] & 7) << 19
                | u32::from(buf[i]) << 11
                | u32::from(buf[i + 3] & 7) << 8
                | u32::from(buf[i + 2]))
                << 1;
            let pc = start.wrapping_add(i as u32).wrapping_add(4);
            let dest = src.wrapping_sub(pc) >> 1;
            buf[i + 1] = 0xf0 | ((dest >> 19) & 7) as u8;
            buf[i] = (dest >> 11) as u8;
            buf[i + 3] = 0xf8 | ((dest >> 8) & 7) as u8;
            buf[i + 2] = dest as u8;
            i += 2;
        }
        i += 2;
    }
}

/// PowerPC (big endian): `bl` (opcode 18 with AA=0, LK=1).
pub(crate) fn powerpc(buf: &mut [u8], start: u32) {
    let mut i = 0;
    while i + 4 <= buf.len() {
        let w = be32(&buf[i..i + 4]);
        if w & 0xfc00_0003 == 0x4800_0001 {
            let pc = start.wrapping_add(i as u32);
            let dest = (w & 0x03ff_fffc).wrapping_sub(pc);
            // (The low two bits of a misaligned start offset show through,
            // as in liblzma.)
            let w = 0x4800_0000 | (dest & 0x03ff_ffff) | (w & 3);
            buf[i..i + 4].copy_from_slice(&w.to_be_bytes());
        }
        i += 4;
    }
}

/// SPARC: `call` whose 30-bit displacement fits in 23 bits (top bits all
/// equal).
pub(crate) fn sparc(buf: &mut [u8], start: u32) {
    let mut i = 0;
    while i + 4 <= buf.len() {
        if (buf[i] == 0x40 && buf[i + 1] & 0xc0 == 0)
            || (buf[i] == 0x7f && buf[i + 1] & 0xc0 == 0xc0)
        {
            let src = be32(&buf[i..i + 4]) << 2;
            let pc = start.wrapping_add(i as u32);
            let dest = src.wrapping_sub(pc) >> 2;
            let dest = ((((dest >> 22) & 1).wrapping_neg() << 22) & 0x3fff_ffff)
                | (dest & 0x003f_ffff)
                | 0x4000_0000;
            buf[i..i + 4].copy_from_slice(&dest.to_be_bytes());
        }
        i += 4;
    }
}

/// ARM64: BL (26-bit word offset) and ADRP (21-bit page offset, only
/// when it fits in +-512 MiB, i.e. 18 bits).
pub(crate) fn arm64(buf: &mut [u8], start: u32) {
    let mut i = 0;
    while i + 4 <= buf.len() {
        let pc = start.wrapping_add(i as u32);
        let w = le32(&buf[i..i + 4]);
        if w >> 26 == 0x25 {
            let w = 0x9400_0000 | (w.wrapping_sub(pc >> 2) & 0x03ff_ffff);
            buf[i..i + 4].copy_from_slice(&w.to_le_bytes());
        } else if w & 0x9f00_0000 == 0x9000_0000 {
            let src = ((w >> 29) & 3) | ((w >> 3) & 0x001f_fffc);
            if src.wrapping_add(0x0002_0000) & 0x001c_0000 == 0 {
                let dest = src.wrapping_sub(pc >> 12);
                let w = (w & 0x9000_001f)
                    | (dest & 3) << 29
                    | (dest & 0x0003_fffc) << 3
                    | (dest & 0x0002_0000).wrapping_neg() & 0x00e0_0000;
                buf[i..i + 4].copy_from_slice(&w.to_le_bytes());
            }
        }
        i += 4;
    }
}

/// IA-64: 16-byte bundles; the template says which of the three 41-bit
/// slots hold branches (opcode 5, btype 0), whose 21-bit bundle offset
/// (imm20b + sign) is converted.
pub(crate) fn ia64(buf: &mut [u8], start: u32) {
    const BRANCH: [u8; 32] = [
        0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 4, 4, 6, 6, 0, 0, 7, 7, 4, 4, 0, 0, 4, 4,
        0, 0,
    ];
    let mut i = 0;
    while i + 16 <= buf.len() {
        let bundle = &mut buf[i..i + 16];
        let mask = BRANCH[usize::from(bundle[0] & 0x1f)];
        for slot in 0..3 {
            if (mask >> slot) & 1 == 0 {
                continue;
            }
            let bit = 5 + 41 * slot;
            let (byte, shift) = (bit / 8, bit % 8);
            let field = &mut bundle[byte..byte + 6];
            let mut word = [0u8; 8];
            word[..6].copy_from_slice(field);
            let raw = u64::from_le_bytes(word);
            let mut ins = raw >> shift;
            if (ins >> 37) & 0xf != 5 || (ins >> 9) & 7 != 0 {
                continue;
            }
            let src = ((((ins >> 13) & 0x0f_ffff) | ((ins >> 36) & 1) << 20) as u32) << 4;
            let pc = start.wrapping_add(i as u32);
            let dest = src.wrapping_sub(pc) >> 4;
            ins &= !(0x8f_ffffu64 << 13);
            ins |= u64::from(dest & 0x0f_ffff) << 13;
            ins |= u64::from(dest & 0x10_0000) << (36 - 20);
            let raw = (raw & ((1u64 << shift) - 1)) | (ins << shift);
            field.copy_from_slice(&raw.to_le_bytes()[..6]);
        }
        i += 16;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every filter over random bytes of every small length and some start
    /// offsets: no panic (the round trips against `xz` are in tests/xz.rs).
    #[test]
    fn any_bytes_any_length() {
        let mut x = 0x2545_f491u32;
        let mut buf = [0u8; 300];
        for len in (0..40).chain([255, 300]) {
            for start in [0, 1, 3, 4, 0xffff_fff0, u32::MAX] {
                for id in 3..=0x0b {
                    for b in buf.iter_mut() {
                        x ^= x << 13;
                        x ^= x >> 17;
                        x ^= x << 5;
                        // Plenty of E8/EB/F0/48 ... patterns.
                        *b = [x as u8, 0xe8, 0xeb, 0xf0, 0xf8, 0x48, 0x94, 0x00, 0xff]
                            [x as usize % 9];
                    }
                    let r = apply(
                        id,
                        if id == 3 { start & 0xff } else { start },
                        &mut buf[..len],
                    );
                    assert_eq!(r.is_err(), id == 0x0b);
                }
            }
        }
        assert!(apply(0x21, 0, &mut buf).is_err());
    }
}
