//! The signature appended to a module image, parsed like libkmod's
//! `kmod_module_signature_info` (with its OpenSSL PKCS#7 path). Borrowed
//! from the image wherever the bytes are printed as they are.

use alloc::borrow::Cow;
use alloc::vec::Vec;

/// What kmod prints about an appended module signature.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignatureInfo<'a> {
    /// The signature's identifier type (`PKCS#7`, `X509`, `PGP`).
    pub id_type: &'static str,
    /// The signer's name.
    pub signer: &'a [u8],
    /// The signing key's identifier.
    pub key_id: Cow<'a, [u8]>,
    /// The hash algorithm's name (`sha512`, ...).
    pub hash_algo: &'static str,
    /// The signature bytes.
    pub sig: &'a [u8],
}

pub(crate) const SIG_MAGIC: &[u8] = b"~Module signature appended~\n";
const PKEY_ALGO_COUNT: u8 = 2;
const HASH_ALGOS: [&str; 9] = [
    "md4", "md5", "sha1", "rmd160", "sha256", "sha384", "sha512", "sha224", "sm3",
];
const ID_TYPES: [&str; 3] = ["PGP", "X509", "PKCS#7"];

/// Parses the signature appended to a module image, if any.
pub fn signature_info(mem: &[u8]) -> Option<SignatureInfo<'_>> {
    let size = mem.len().checked_sub(SIG_MAGIC.len())?;
    if &mem[size..] != SIG_MAGIC {
        return None;
    }
    let size = size.checked_sub(12)?;
    let ms = &mem[size..size + 12];
    let (algo, hash, id_type, signer_len, key_id_len) = (ms[0], ms[1], ms[2], ms[3], ms[4]);
    if algo >= PKEY_ALGO_COUNT
        || usize::from(hash) >= HASH_ALGOS.len()
        || usize::from(id_type) >= ID_TYPES.len()
    {
        return None;
    }
    let sig_len = u32::from_be_bytes([ms[8], ms[9], ms[10], ms[11]]) as usize;
    if sig_len == 0 || size < usize::from(signer_len) + usize::from(key_id_len) + sig_len {
        return None;
    }
    let sig_start = size - sig_len;
    if id_type == 2 {
        return pkcs7_info(&mem[sig_start..size]);
    }
    let key_start = sig_start - usize::from(key_id_len);
    let signer_start = key_start - usize::from(signer_len);
    Some(SignatureInfo {
        id_type: ID_TYPES[usize::from(id_type)],
        signer: &mem[signer_start..key_start],
        key_id: Cow::Borrowed(&mem[key_start..sig_start]),
        hash_algo: HASH_ALGOS[usize::from(hash)],
        sig: &mem[sig_start..size],
    })
}

/// A DER TLV: tag class+constructed bits, tag number, contents.
struct Tlv<'a> {
    class_cons: u8,
    number: u32,
    body: &'a [u8],
}

const SEQUENCE: (u8, u32) = (0x20, 16);
const SET: (u8, u32) = (0x20, 17);
const INTEGER: (u8, u32) = (0x00, 2);
const OID: (u8, u32) = (0x00, 6);
const OCTET_STRING: (u8, u32) = (0x00, 4);

/// Reads one DER element (definite lengths only) from the front of `d`.
fn der_next(d: &[u8]) -> Option<(Tlv<'_>, &[u8])> {
    let first = *d.first()?;
    let class_cons = first & 0xe0;
    let mut pos = 1usize;
    let mut number = u32::from(first & 0x1f);
    if number == 0x1f {
        number = 0;
        loop {
            let b = *d.get(pos)?;
            pos += 1;
            number = number.checked_mul(128)? | u32::from(b & 0x7f);
            if b & 0x80 == 0 {
                break;
            }
        }
    }
    let l0 = *d.get(pos)?;
    pos += 1;
    let len = if l0 < 0x80 {
        usize::from(l0)
    } else {
        let n = usize::from(l0 & 0x7f);
        if n == 0 || n > 8 {
            return None; // indefinite or absurd length
        }
        let mut len = 0usize;
        for _ in 0..n {
            len = len.checked_mul(256)? | usize::from(*d.get(pos)?);
            pos += 1;
        }
        len
    };
    let end = pos.checked_add(len)?;
    let body = d.get(pos..end)?;
    Some((
        Tlv {
            class_cons,
            number,
            body,
        },
        &d[end..],
    ))
}

fn der_expect(d: &[u8], want: (u8, u32)) -> Option<(&[u8], &[u8])> {
    let (t, rest) = der_next(d)?;
    if (t.class_cons, t.number) != want {
        return None;
    }
    Some((t.body, rest))
}

/// `x509_name_to_str`'s pick among a Name's entries: the value of the
/// first commonName, else of the last entry (`None`: malformed; an empty
/// Name gives an empty value).
fn name_value(name: &[u8]) -> Option<&[u8]> {
    const CN: &[u8] = &[0x55, 0x04, 0x03];
    let (mut cn, mut last) = (None, None);
    let mut rdns = name;
    while !rdns.is_empty() {
        let (set, rest) = der_expect(rdns, SET)?;
        rdns = rest;
        let mut atvs = set;
        while !atvs.is_empty() {
            let (atv, rest) = der_expect(atvs, SEQUENCE)?;
            atvs = rest;
            let (oid, after) = der_expect(atv, OID)?;
            let (val, _) = der_next(after)?;
            if oid == CN && cn.is_none() {
                cn = Some(val.body);
            }
            last = Some(val.body);
        }
    }
    Some(cn.or(last).unwrap_or(&[]))
}

fn hash_algo_from_oid(oid: &[u8]) -> &'static str {
    const SHA2: &[u8] = &[0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02];
    const RSADSI: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x02];
    match oid {
        [0x2b, 0x0e, 0x03, 0x02, 0x1a] => "sha1",
        [0x2b, 0x24, 0x03, 0x02, 0x01] => "rmd160",
        [0x2a, 0x81, 0x1c, 0xcf, 0x55, 0x01, 0x83, 0x11] => "sm3",
        [p @ .., n] if p == RSADSI && (4..=5).contains(n) => ["md4", "md5"][usize::from(n - 4)],
        [p @ .., n] if p == SHA2 && (1..=4).contains(n) => {
            ["sha256", "sha384", "sha512", "sha224"][usize::from(n - 1)]
        }
        // kmod indexes its table with -1 here (undefined behaviour)
        _ => "unknown",
    }
}

/// Walks a DER PKCS#7 SignedData for the first SignerInfo's issuer CN,
/// serial number, digest algorithm and encrypted digest.
fn pkcs7_info(der: &[u8]) -> Option<SignatureInfo<'_>> {
    const SIGNED_DATA: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x07, 0x02];
    let (ci, _) = der_expect(der, SEQUENCE)?;
    let (ctype, rest) = der_expect(ci, OID)?;
    if ctype != SIGNED_DATA {
        return None;
    }
    let (explicit, _) = der_expect(rest, (0xa0, 0))?;
    let (sd, _) = der_expect(explicit, SEQUENCE)?;
    let (_version, rest) = der_expect(sd, INTEGER)?;
    let (_digest_algs, rest) = der_expect(rest, SET)?;
    let (_content, mut rest) = der_expect(rest, SEQUENCE)?;
    // optional [0] certificates, [1] crls
    loop {
        let (t, after) = der_next(rest)?;
        if t.class_cons & 0xc0 == 0x80 && (t.number == 0 || t.number == 1) {
            rest = after;
            continue;
        }
        break;
    }
    let (signer_infos, _) = der_expect(rest, SET)?;
    let (si, _) = der_expect(signer_infos, SEQUENCE)?;
    let (_version, rest) = der_expect(si, INTEGER)?;
    let (ias, rest) = der_expect(rest, SEQUENCE)?;
    let (dig_alg, mut rest) = der_expect(rest, SEQUENCE)?;
    let (auth, after) = der_next(rest)?;
    if auth.class_cons & 0xc0 == 0x80 && auth.number == 0 {
        rest = after;
    }
    let (_sig_alg, rest) = der_expect(rest, SEQUENCE)?;
    let (enc_digest, _) = der_expect(rest, OCTET_STRING)?;

    let (issuer, rest) = der_expect(ias, SEQUENCE)?;
    let (serial, _) = der_expect(rest, INTEGER)?;
    let (dig_oid, _) = der_expect(dig_alg, OID)?;

    // ASN1_INTEGER_to_BN + BN_bn2bin: magnitude, big endian, no leading 0s.
    let key_id = if serial.first().is_some_and(|&b| b & 0x80 != 0) {
        // negative: two's complement negate
        let mut mag: Vec<u8> = serial.iter().map(|b| !b).collect();
        for b in mag.iter_mut().rev() {
            let (v, carry) = b.overflowing_add(1);
            *b = v;
            if !carry {
                break;
            }
        }
        let nz = mag.iter().position(|&b| b != 0).unwrap_or(mag.len());
        mag.drain(..nz);
        Cow::Owned(mag)
    } else {
        let nz = serial.iter().position(|&b| b != 0).unwrap_or(serial.len());
        Cow::Borrowed(&serial[nz..])
    };

    // The value is used as a C string.
    let v = name_value(issuer)?;
    let signer = &v[..v.iter().position(|&b| b == 0).unwrap_or(v.len())];

    Some(SignatureInfo {
        id_type: ID_TYPES[2],
        signer,
        key_id,
        hash_algo: hash_algo_from_oid(dig_oid),
        sig: enc_digest,
    })
}

#[cfg(test)]
mod tests {
    extern crate std;
    use super::*;
    use std::vec;

    #[test]
    fn default_signature_layout() {
        let mut m = b"\x7fELF....module".to_vec();
        m.extend_from_slice(b"Signer");
        m.extend_from_slice(&[1, 2]);
        m.extend_from_slice(&[9; 5]);
        m.extend_from_slice(&[1, 4, 1, 6, 2, 0, 0, 0, 0, 0, 0, 5]);
        m.extend_from_slice(SIG_MAGIC);
        let s = signature_info(&m).unwrap();
        assert_eq!(s.id_type, "X509");
        assert_eq!(s.signer, b"Signer");
        assert_eq!(&*s.key_id, [1, 2]);
        assert_eq!(s.hash_algo, "sha256");
        assert_eq!(s.sig, [9; 5]);
        // out-of-range fields or lengths: no signature
        let n = m.len() - SIG_MAGIC.len() - 12;
        let mut bad = m.clone();
        bad[n + 1] = 9;
        assert!(signature_info(&bad).is_none());
        let mut bad = m.clone();
        bad[n + 11] = 200;
        assert!(signature_info(&bad).is_none());
        assert!(signature_info(SIG_MAGIC).is_none());
        assert!(signature_info(b"").is_none());
    }

    fn tlv(tag: u8, body: &[u8]) -> Vec<u8> {
        let mut v = vec![tag];
        if body.len() < 128 {
            v.push(body.len() as u8);
        } else {
            v.extend_from_slice(&[0x82, (body.len() >> 8) as u8, body.len() as u8]);
        }
        v.extend_from_slice(body);
        v
    }

    fn pkcs7(issuer: &[(&[u8], &[u8])], serial: &[u8], digest_oid: &[u8], sig: &[u8]) -> Vec<u8> {
        let mut name = Vec::new();
        for (oid, val) in issuer {
            let atv = [tlv(0x06, oid), tlv(0x0c, val)].concat();
            name.extend(tlv(0x31, &tlv(0x30, &atv)));
        }
        let ias = tlv(0x30, &[tlv(0x30, &name), tlv(0x02, serial)].concat());
        let alg = tlv(0x30, &[tlv(0x06, digest_oid), vec![5, 0]].concat());
        let si = tlv(
            0x30,
            &[
                tlv(0x02, &[1]),
                ias,
                alg.clone(),
                tlv(
                    0x30,
                    &tlv(0x06, &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 1, 1, 1]),
                ),
                tlv(0x04, sig),
            ]
            .concat(),
        );
        let sd = tlv(
            0x30,
            &[
                tlv(0x02, &[1]),
                tlv(0x31, &alg),
                tlv(
                    0x30,
                    &tlv(0x06, &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 1, 7, 1]),
                ),
                tlv(0x31, &si),
            ]
            .concat(),
        );
        let ct = tlv(0x06, &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 1, 7, 2]);
        tlv(0x30, &[ct, tlv(0xa0, &sd)].concat())
    }

    fn with_pkcs7(p7: &[u8]) -> Vec<u8> {
        let mut m = b"module body".to_vec();
        m.extend_from_slice(p7);
        m.extend_from_slice(&[0, 0, 2, 0, 0, 0, 0, 0]);
        m.extend_from_slice(&(p7.len() as u32).to_be_bytes());
        m.extend_from_slice(SIG_MAGIC);
        m
    }

    #[test]
    fn pkcs7_fields() {
        const CN: &[u8] = &[0x55, 4, 3];
        const O: &[u8] = &[0x55, 4, 10];
        const SHA512: &[u8] = &[0x60, 0x86, 0x48, 1, 0x65, 3, 4, 2, 3];
        let p7 = pkcs7(
            &[(O, b"Org"), (CN, b"Key CN"), (CN, b"Second CN")],
            &[0, 0xff, 1],
            SHA512,
            &[7; 30],
        );
        let m = with_pkcs7(&p7);
        let s = signature_info(&m).unwrap();
        assert_eq!(s.id_type, "PKCS#7");
        assert_eq!(s.signer, b"Key CN");
        assert_eq!(&*s.key_id, [0xff, 1]);
        assert_eq!(s.hash_algo, "sha512");
        assert_eq!(s.sig, [7; 30]);
        // no commonName: the last entry; negative serial: its magnitude
        let p7 = pkcs7(
            &[(O, b"Org"), (&[0x55, 4, 11], b"Unit")],
            &[0xff],
            SHA512,
            &[1],
        );
        let m = with_pkcs7(&p7);
        let s = signature_info(&m).unwrap();
        assert_eq!(s.signer, b"Unit");
        assert_eq!(&*s.key_id, [1]);
        let p7 = pkcs7(&[], &[0xfe, 0xff, 0x00], SHA512, &[1]);
        let m = with_pkcs7(&p7);
        assert_eq!(&*signature_info(&m).unwrap().key_id, [1, 0x01, 0x00]);
        // zero serial, empty name
        let p7 = pkcs7(&[], &[0], &[1, 2, 3], &[1]);
        let m = with_pkcs7(&p7);
        let s = signature_info(&m).unwrap();
        assert_eq!(s.signer, b"");
        assert_eq!(&*s.key_id, b"");
        assert_eq!(s.hash_algo, "unknown");
        // malformed DER: no signature at all, and no panic on any prefix
        let good = pkcs7(&[(CN, b"x")], &[5], SHA512, &[1; 64]);
        for cut in 0..good.len() {
            assert!(signature_info(&with_pkcs7(&good[..cut])).is_none(), "{cut}");
        }
    }

    #[test]
    fn digest_oids() {
        let rsadsi = |n: u8| [0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x02, n];
        let sha2 = |n: u8| [0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, n];
        assert_eq!(hash_algo_from_oid(&rsadsi(4)), "md4");
        assert_eq!(hash_algo_from_oid(&rsadsi(5)), "md5");
        assert_eq!(hash_algo_from_oid(&rsadsi(6)), "unknown");
        assert_eq!(hash_algo_from_oid(&sha2(1)), "sha256");
        assert_eq!(hash_algo_from_oid(&sha2(2)), "sha384");
        assert_eq!(hash_algo_from_oid(&sha2(3)), "sha512");
        assert_eq!(hash_algo_from_oid(&sha2(4)), "sha224");
        assert_eq!(hash_algo_from_oid(&sha2(5)), "unknown");
        assert_eq!(hash_algo_from_oid(&[0x2b, 0x0e, 0x03, 0x02, 0x1a]), "sha1");
        assert_eq!(
            hash_algo_from_oid(&[0x2b, 0x24, 0x03, 0x02, 0x01]),
            "rmd160"
        );
        assert_eq!(
            hash_algo_from_oid(&[0x2a, 0x81, 0x1c, 0xcf, 0x55, 0x01, 0x83, 0x11]),
            "sm3"
        );
        assert_eq!(hash_algo_from_oid(&[]), "unknown");
    }
}
