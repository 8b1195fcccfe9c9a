//! Writer for kmod's binary indexes (`modules.{dep,alias,symbols,builtin,
//! builtin.alias}.bin`) in the pre-order layout of kmod ≥ 34.
//!
//! The trie is the one depmod builds: a Patricia trie whose root never has a
//! prefix, every other node's prefix being the longest common prefix of the
//! key suffixes below it (cut where a key ends or the keys branch). See
//! `shared/notes/kmod-formats.md`, section "Binary index".
//!
//! Serializing sorts nothing: the keys live in a `BTreeMap`, so the trie is
//! laid out by one iterative depth-first walk over the sorted keys, each
//! node's child table being patched once its children are placed. A first
//! pass over the same walk only counts bytes, so the 28-bit offset limit is
//! checked before anything is allocated.

use std::collections::BTreeMap;
use std::fmt;

const MAGIC: u32 = 0xB007_F457;
const VERSION: u32 = 0x0002_0001;
const FLAG_PREFIX: u32 = 0x8000_0000;
const FLAG_VALUES: u32 = 0x4000_0000;
const FLAG_CHILDS: u32 = 0x2000_0000;
/// The five depmod binary indexes (tests rewrite the real ones).
#[cfg(test)]
const INDEX_NAMES: [&str; 5] = [
    "modules.alias.bin",
    "modules.dep.bin",
    "modules.symbols.bin",
    "modules.builtin.bin",
    "modules.builtin.alias.bin",
];

/// Largest file whose every offset fits the 28-bit offset field.
pub const MAX_INDEX_SIZE: usize = 0x0FFF_FFFF;
/// Header size; the root body follows at this offset.
const HEADER: usize = 12;

/// Why an index cannot be built or written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IndexWriteError {
    /// The key (given in full) contains a NUL byte.
    NulInKey(Vec<u8>),
    /// The value (given in full) contains a NUL byte.
    NulInValue(Vec<u8>),
    /// The file would be this many bytes, over [`MAX_INDEX_SIZE`].
    TooLarge(usize),
}

impl fmt::Display for IndexWriteError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::NulInKey(k) => {
                write!(f, "index key \"{}\" contains a NUL byte", k.escape_ascii())
            }
            Self::NulInValue(v) => {
                write!(
                    f,
                    "index value \"{}\" contains a NUL byte",
                    v.escape_ascii()
                )
            }
            Self::TooLarge(n) => write!(
                f,
                "index would be {n} bytes, over the {MAX_INDEX_SIZE}-byte limit of 28-bit offsets"
            ),
        }
    }
}

impl std::error::Error for IndexWriteError {}

/// Builds one index in memory.
#[derive(Debug, Clone, Default)]
pub struct IndexBuilder {
    /// Key → values, each kept sorted by priority (stable).
    keys: BTreeMap<Vec<u8>, Vec<(u32, Vec<u8>)>>,
}

impl IndexBuilder {
    /// An empty index.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds `value` under `key` with `priority`. Values of one key are
    /// written sorted by priority ascending; equal priorities keep insertion
    /// order (stable). Duplicate (key, value) pairs are kept, as depmod does.
    pub fn insert(
        &mut self,
        key: &[u8],
        value: &[u8],
        priority: u32,
    ) -> Result<(), IndexWriteError> {
        if key.contains(&0) {
            return Err(IndexWriteError::NulInKey(key.to_vec()));
        }
        if value.contains(&0) {
            return Err(IndexWriteError::NulInValue(value.to_vec()));
        }
        let values = match self.keys.get_mut(key) {
            Some(v) => v,
            None => self.keys.entry(key.to_vec()).or_default(),
        };
        let at = values.partition_point(|&(p, _)| p <= priority);
        values.insert(at, (priority, value.to_vec()));
        Ok(())
    }

    /// Number of distinct keys.
    pub fn len(&self) -> usize {
        self.keys.len()
    }

    /// True when no key was inserted.
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// Serializes in the pre-order layout (root body at offset 12, then each
    /// child subtree depth-first in arc-byte order).
    pub fn to_bytes(&self) -> Result<Vec<u8>, IndexWriteError> {
        self.to_bytes_limited(MAX_INDEX_SIZE)
    }

    fn to_bytes_limited(&self, limit: usize) -> Result<Vec<u8>, IndexWriteError> {
        let entries: Vec<Entry<'_>> = self
            .keys
            .iter()
            .map(|(k, v)| (k.as_slice(), v.as_slice()))
            .collect();
        let mut count = Counter(0);
        layout(&entries, &mut count);
        if count.0 > limit {
            return Err(IndexWriteError::TooLarge(count.0));
        }
        let mut out = Vec::with_capacity(count.0);
        layout(&entries, &mut out);
        debug_assert_eq!(out.len(), count.0);
        Ok(out)
    }
}

type Entry<'a> = (&'a [u8], &'a [(u32, Vec<u8>)]);

/// Where [`layout`] puts bytes: a real buffer, or a byte counter.
trait Sink {
    fn pos(&self) -> usize;
    fn put(&mut self, bytes: &[u8]);
    fn put_u32(&mut self, v: u32) {
        self.put(&v.to_be_bytes());
    }
    /// Overwrites the word at `at` (already written as a placeholder).
    fn patch_u32(&mut self, at: usize, v: u32);
}

struct Counter(usize);

impl Sink for Counter {
    fn pos(&self) -> usize {
        self.0
    }
    fn put(&mut self, bytes: &[u8]) {
        self.0 += bytes.len();
    }
    fn patch_u32(&mut self, _: usize, _: u32) {}
}

impl Sink for Vec<u8> {
    fn pos(&self) -> usize {
        self.len()
    }
    fn put(&mut self, bytes: &[u8]) {
        self.extend_from_slice(bytes);
    }
    fn patch_u32(&mut self, at: usize, v: u32) {
        self[at..at + 4].copy_from_slice(&v.to_be_bytes());
    }
}

/// One pending node: the sorted keys `lo..hi` below it, the number of key
/// bytes its ancestors consumed, and where its node word goes.
struct Task {
    lo: usize,
    hi: usize,
    depth: usize,
    slot: usize,
}

/// Writes the whole file for the sorted `entries` into `out`. Offsets are
/// truncated to 28 bits; the caller checks the size first.
fn layout<S: Sink>(entries: &[Entry<'_>], out: &mut S) {
    out.put_u32(MAGIC);
    out.put_u32(VERSION);
    out.put_u32(0); // root word, patched below
    debug_assert_eq!(out.pos(), HEADER);
    let mut stack = vec![Task {
        lo: 0,
        hi: entries.len(),
        depth: 0,
        slot: 8,
    }];
    while let Some(Task {
        lo,
        hi,
        depth,
        slot,
    }) = stack.pop()
    {
        let offset = out.pos();
        let mut word = offset as u32 & 0x0FFF_FFFF;
        if lo == hi {
            // Only the root of an empty index has no keys: an empty body.
            out.patch_u32(slot, word);
            continue;
        }
        let first = entries[lo].0;
        // depmod's root never has a prefix; other nodes take the common
        // prefix of their first and last (hence of all) key suffixes.
        let plen = if slot == 8 {
            0
        } else {
            common_prefix(&first[depth..], &entries[hi - 1].0[depth..])
        };
        let end = depth + plen;
        // Sorted order puts the key ending here (if any) first.
        let values = (first.len() == end).then_some(entries[lo].1);
        let kids = lo + usize::from(values.is_some());
        if plen > 0 {
            word |= FLAG_PREFIX;
            out.put(&first[depth..end]);
            out.put(&[0]);
        }
        let pending = stack.len();
        if kids < hi {
            word |= FLAG_CHILDS;
            let lo_ch = entries[kids].0[end];
            let hi_ch = entries[hi - 1].0[end];
            out.put(&[lo_ch, hi_ch]);
            let table = out.pos();
            for _ in lo_ch..=hi_ch {
                out.put_u32(0);
            }
            // Keys kids..hi are sorted and agree up to `end`, so their byte
            // at `end` is non-decreasing: each arc is one contiguous run.
            let mut i = kids;
            while i < hi {
                let ch = entries[i].0[end];
                let j = i + entries[i..hi].partition_point(|e| e.0[end] <= ch);
                stack.push(Task {
                    lo: i,
                    hi: j,
                    depth: end + 1,
                    slot: table + 4 * usize::from(ch - lo_ch),
                });
                i = j;
            }
        }
        if let Some(values) = values {
            word |= FLAG_VALUES;
            out.put_u32(values.len() as u32);
            for (priority, value) in values {
                out.put_u32(*priority);
                out.put(value);
                out.put(&[0]);
            }
        }
        out.patch_u32(slot, word);
        // Pop children in arc-byte order: pre-order, lowest arc first.
        stack[pending..].reverse();
    }
}

fn common_prefix(a: &[u8], b: &[u8]) -> usize {
    a.iter().zip(b).take_while(|(x, y)| x == y).count()
}

#[cfg(test)]
mod tests {
    use super::*;
    use earlymod_core::index::{Index, Value};
    use std::time::Instant;

    fn unhex(s: &str) -> Vec<u8> {
        let digits: Vec<u8> = s.bytes().filter(u8::is_ascii_hexdigit).collect();
        digits
            .chunks(2)
            .map(|p| u8::from_str_radix(std::str::from_utf8(p).unwrap(), 16).unwrap())
            .collect()
    }

    /// Every (key, priority, value) in file order, as the reader yields them.
    fn dump(data: &[u8]) -> Vec<(Vec<u8>, u32, Vec<u8>)> {
        let idx = Index::new(data).unwrap();
        let mut all = Vec::new();
        idx.for_each(&mut |k, Value { priority, value }| {
            all.push((k.to_vec(), priority, value.to_vec()))
        })
        .unwrap();
        all
    }

    #[test]
    fn golden_vector_byte_exact() {
        let expected = unhex(
            "b007f457 00020001 2000000c \
             616f 2000004a 00000000 00000000 00000000 00000000 00000000 00000000 \
             00000000 00000000 00000000 00000000 00000000 00000000 00000000 e000006c \
             7374 c0000054 c0000060 6b00 00000001 00000000 4100 6500 00000001 00000001 4200 \
             6e00 6365 c0000086 00000000 40000092 00000001 00000002 4300 \
             6500 00000001 00000003 4400 00000001 00000004 4500",
        );
        assert_eq!(expected.len(), 156);
        // Insertion order must not matter.
        let mut b = IndexBuilder::new();
        for (k, v, p) in [
            ("one", "E", 4),
            ("ate", "B", 1),
            ("once", "D", 3),
            ("ask", "A", 0),
            ("on", "C", 2),
        ] {
            b.insert(k.as_bytes(), v.as_bytes(), p).unwrap();
        }
        assert_eq!(b.len(), 5);
        assert_eq!(b.to_bytes().unwrap(), expected);
    }

    #[test]
    fn empty_index() {
        let b = IndexBuilder::new();
        assert!(b.is_empty());
        assert_eq!(b.len(), 0);
        let data = b.to_bytes().unwrap();
        assert_eq!(data, unhex("b007f457 00020001 0000000c"));
        let idx = Index::new(&data).unwrap();
        // libkmod reads this as a bare root; earlymod-core's reader currently
        // reports OffsetOutOfBounds(12) for a node at the very end of the
        // file, so only "no value found" is asserted here.
        assert!(!matches!(idx.exact(b"x"), Ok(Some(_))));
    }

    #[test]
    fn single_key_root_has_no_prefix() {
        // depmod: root "" → 'a' child with prefix "bc".
        let mut b = IndexBuilder::new();
        b.insert(b"abc", b"v", 7).unwrap();
        let data = b.to_bytes().unwrap();
        assert_eq!(
            data,
            unhex("b007f457 00020001 2000000c 6161 c0000012 626300 00000001 00000007 7600")
        );
        assert_eq!(
            Index::new(&data).unwrap().exact(b"abc").unwrap(),
            Some(&b"v"[..])
        );
    }

    #[test]
    fn empty_key_is_a_root_value() {
        let mut b = IndexBuilder::new();
        b.insert(b"", b"r", 0).unwrap();
        b.insert(b"x", b"y", 0).unwrap();
        let data = b.to_bytes().unwrap();
        let idx = Index::new(&data).unwrap();
        assert_eq!(idx.exact(b"").unwrap(), Some(&b"r"[..]));
        assert_eq!(idx.exact(b"x").unwrap(), Some(&b"y"[..]));
    }

    #[test]
    fn nul_rejected() {
        let mut b = IndexBuilder::new();
        assert_eq!(
            b.insert(b"a\0b", b"v", 0),
            Err(IndexWriteError::NulInKey(b"a\0b".to_vec()))
        );
        assert_eq!(
            b.insert(b"ab", b"\0", 0),
            Err(IndexWriteError::NulInValue(b"\0".to_vec()))
        );
        assert!(b.is_empty());
        let msg = IndexWriteError::NulInKey(b"a\0b".to_vec()).to_string();
        assert_eq!(msg, "index key \"a\\x00b\" contains a NUL byte");
        assert!(
            !IndexWriteError::TooLarge(1 << 28)
                .to_string()
                .contains('\n')
        );
    }

    #[test]
    fn too_large_is_an_error() {
        let mut b = IndexBuilder::new();
        b.insert(b"k", &[b'v'; 100], 0).unwrap();
        let size = b.to_bytes().unwrap().len();
        assert_eq!(b.to_bytes_limited(size).unwrap().len(), size);
        assert_eq!(
            b.to_bytes_limited(size - 1),
            Err(IndexWriteError::TooLarge(size))
        );
    }

    #[test]
    fn values_sorted_by_priority_stable_duplicates_kept() {
        let mut b = IndexBuilder::new();
        for (v, p) in [("c", 5), ("a", 1), ("d", 5), ("b", 1), ("c", 5), ("z", 0)] {
            b.insert(b"key", v.as_bytes(), p).unwrap();
        }
        let data = b.to_bytes().unwrap();
        let got: Vec<(u32, Vec<u8>)> = dump(&data).into_iter().map(|(_, p, v)| (p, v)).collect();
        let want: Vec<(u32, Vec<u8>)> =
            [(0, "z"), (1, "a"), (1, "b"), (5, "c"), (5, "d"), (5, "c")]
                .iter()
                .map(|&(p, v)| (p, v.as_bytes().to_vec()))
                .collect();
        assert_eq!(got, want);
        assert_eq!(
            Index::new(&data).unwrap().exact(b"key").unwrap(),
            Some(&b"z"[..])
        );
    }

    struct XorShift(u64);
    impl XorShift {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0
        }
        fn below(&mut self, n: usize) -> usize {
            (self.next() % n as u64) as usize
        }
    }

    #[test]
    fn round_trip_random() {
        const ALPHABET: &[u8] = b"abc*?[]-_:\x01\x7f\x80\xff";
        let mut rng = XorShift(0x9E37_79B9_7F4A_7C15);
        for round in 0..200 {
            let mut b = IndexBuilder::new();
            let mut model: BTreeMap<Vec<u8>, Vec<(u32, Vec<u8>)>> = BTreeMap::new();
            let mut keys: Vec<Vec<u8>> = Vec::new();
            let n = 1 + rng.below(if round % 10 == 0 { 2000 } else { 60 });
            for _ in 0..n {
                let key: Vec<u8> = if !keys.is_empty() && rng.below(3) == 0 {
                    // Extend or shorten an existing key, or repeat it.
                    let base = keys[rng.below(keys.len())].clone();
                    match rng.below(3) {
                        0 => base[..rng.below(base.len() + 1)].to_vec(),
                        1 => {
                            let mut k = base;
                            for _ in 0..1 + rng.below(4) {
                                k.push(ALPHABET[rng.below(ALPHABET.len())]);
                            }
                            k
                        }
                        _ => base,
                    }
                } else {
                    let len = rng.below(12);
                    (0..len)
                        .map(|_| ALPHABET[rng.below(ALPHABET.len())])
                        .collect()
                };
                let value: Vec<u8> = (0..rng.below(6))
                    .map(|_| b'A' + rng.below(26) as u8)
                    .collect();
                let priority = rng.below(4) as u32;
                b.insert(&key, &value, priority).unwrap();
                let vals = model.entry(key.clone()).or_default();
                vals.push((priority, value));
                vals.sort_by_key(|v| v.0); // stable
                keys.push(key);
            }
            assert_eq!(b.len(), model.len());
            let data = b.to_bytes().unwrap();
            let want: Vec<(Vec<u8>, u32, Vec<u8>)> = model
                .iter()
                .flat_map(|(k, vs)| vs.iter().map(move |(p, v)| (k.clone(), *p, v.clone())))
                .collect();
            assert_eq!(dump(&data), want, "round {round}");
            let idx = Index::new(&data).unwrap();
            for (k, vs) in &model {
                assert_eq!(idx.exact(k).unwrap(), Some(&vs[0].1[..]), "round {round}");
                let mut probe = k.clone();
                probe.push(b'#'); // '#' is not in the alphabet
                assert_eq!(idx.exact(&probe).unwrap(), None);
                if let Some(shorter) = k.get(..k.len().saturating_sub(1)) {
                    let found = idx.exact(shorter).unwrap();
                    let want = model.get(shorter).map(|vs| &vs[0].1[..]);
                    assert_eq!(found, want);
                }
            }
            // Deterministic output regardless of insertion order of keys.
            assert_eq!(b.clone().to_bytes().unwrap(), data);
        }
    }

    #[test]
    fn wildcard_lookup_of_written_aliases() {
        let mut b = IndexBuilder::new();
        b.insert(b"pci:v00001234d00001111sv*sd*bc03sc00i00*", b"bochs", 3)
            .unwrap();
        b.insert(b"pci:v00001234d00001111sv*sd*bc*sc*i*", b"bochs", 3)
            .unwrap();
        b.insert(b"pci:v*d*sv*sd*bc03sc*i*", b"vgaish", 1).unwrap();
        b.insert(b"usb:v[0-9]*", b"other", 0).unwrap();
        let data = b.to_bytes().unwrap();
        let idx = Index::new(&data).unwrap();
        let mut out: heapless::Vec<Value, 8> = heapless::Vec::new();
        idx.wildcard(
            b"pci:v00001234d00001111sv00001AF4sd00001100bc03sc00i00",
            &mut out,
        )
        .unwrap();
        let names: Vec<&[u8]> = out.iter().map(|v| v.value).collect();
        assert_eq!(names, [&b"vgaish"[..], b"bochs", b"bochs"]);
    }

    /// The real Debian 6.12 indexes (kmod 30, post-order) re-written pre-order:
    /// same size, same content in the same order.
    #[test]
    fn real_612_indexes_round_trip() {
        let base = "/var/cache/earlymod/k612";
        let Ok(kver) = std::fs::read_to_string(format!("{base}/kver")) else {
            eprintln!("skipping: {base}/kver missing");
            return;
        };
        let dir = format!("{base}/root/lib/modules/{}", kver.trim());
        for name in INDEX_NAMES {
            let path = format!("{dir}/{name}");
            let Ok(orig) = std::fs::read(&path) else {
                eprintln!("skipping: {path} missing");
                continue;
            };
            let entries = dump(&orig);
            let t = Instant::now();
            let mut b = IndexBuilder::new();
            for (k, p, v) in &entries {
                b.insert(k, v, *p).unwrap();
            }
            let built = t.elapsed();
            let data = b.to_bytes().unwrap();
            eprintln!(
                "{name}: {} keys, {} values, {} bytes: insert {:?}, to_bytes {:?}",
                b.len(),
                entries.len(),
                data.len(),
                built,
                t.elapsed() - built
            );
            assert_eq!(data.len(), orig.len(), "{name}");
            assert_eq!(dump(&data), entries, "{name}");
            let root = u32::from_be_bytes([orig[8], orig[9], orig[10], orig[11]]);
            if root & 0x0FFF_FFFF == HEADER as u32 {
                assert_eq!(data, orig, "{name}: pre-order original");
            }
        }
    }
}

/// Checks against the host's kmod tools (`modprobe`, installed by
/// `scripts/setup.sh`).
#[cfg(test)]
mod kmod_tests {
    use super::*;
    use std::path::{Path, PathBuf};
    use std::process::Command;

    fn scratch(name: &str) -> PathBuf {
        let root = std::env::temp_dir().join(format!(
            "earlymod-index-write-{name}-{}",
            std::process::id()
        ));
        let _ = std::fs::remove_dir_all(&root);
        root
    }

    fn modprobe(root: &Path, kver: &str, args: &[&str]) -> (bool, String) {
        let out = Command::new("modprobe")
            .arg("-d")
            .arg(root)
            .args(["-S", kver])
            .args(args)
            .output()
            .expect("run modprobe");
        let stdout = String::from_utf8(out.stdout).unwrap();
        let stderr = String::from_utf8(out.stderr).unwrap();
        assert!(
            out.status.success() || stderr.contains("not found"),
            "modprobe {args:?}: {stderr}"
        );
        (out.status.success(), stdout)
    }

    fn build(entries: &[(&str, &str, u32)]) -> Vec<u8> {
        let mut b = IndexBuilder::new();
        for (k, v, p) in entries {
            b.insert(k.as_bytes(), v.as_bytes(), *p).unwrap();
        }
        b.to_bytes().unwrap()
    }

    /// A small tree written by [`IndexBuilder`], resolved by modprobe.
    #[test]
    fn host_modprobe_reads_written_indexes() {
        let root = scratch("small");
        let dir = root.join("lib/modules/9.9.9");
        std::fs::create_dir_all(dir.join("kernel")).unwrap();
        // kmod 30 resolves dep paths, so the module files must exist.
        for m in ["emtfoo", "emtbaz", "emtbar", "emtba"] {
            std::fs::write(dir.join(format!("kernel/{m}.ko")), b"").unwrap();
        }
        let files: [(&str, Vec<u8>); 5] = [
            (
                "modules.dep.bin",
                build(&[
                    (
                        "emtfoo",
                        "kernel/emtfoo.ko: kernel/emtbaz.ko kernel/emtbar.ko",
                        0,
                    ),
                    ("emtbaz", "kernel/emtbaz.ko: kernel/emtbar.ko", 1),
                    ("emtbar", "kernel/emtbar.ko:", 2),
                    ("emtba", "kernel/emtba.ko:", 3),
                ]),
            ),
            (
                "modules.alias.bin",
                build(&[
                    ("pci:v00001234d*sv*", "emtfoo", 0),
                    ("pci:v00001234d0000ABCDsv*", "emtbaz", 1),
                    ("emt_alias", "emtbar", 2),
                    ("emt_alias", "emtba", 3),
                    ("emt?lias[0-9]", "emtbaz", 1),
                ]),
            ),
            (
                "modules.symbols.bin",
                build(&[("symbol:emt_sym", "emtbaz", 1)]),
            ),
            ("modules.builtin.bin", build(&[("emtbuiltin", "", 0)])),
            ("modules.builtin.alias.bin", build(&[])),
        ];
        for (name, data) in &files {
            std::fs::write(dir.join(name), data).unwrap();
        }
        let p = |m: &str| format!("insmod {}/kernel/{m}.ko \n", dir.display());
        let cases: [(&[&str], String); 9] = [
            (
                &["-R", "pci:v00001234d0000ABCDsv00001111"],
                "emtfoo\nemtbaz\n".into(),
            ),
            (&["-R", "pci:v00001234d00000001sv0"], "emtfoo\n".into()),
            (&["-R", "emt_alias"], "emtbar\nemtba\n".into()),
            (&["-R", "emtalias7"], "emtbaz\n".into()),
            (&["-R", "symbol:emt_sym"], "emtbaz\n".into()),
            (&["-D", "emtfoo"], p("emtbar") + &p("emtbaz") + &p("emtfoo")),
            (&["-D", "emtba"], p("emtba")),
            (&["-D", "emtbuiltin"], "builtin emtbuiltin\n".into()),
            (&["-R", "emtb"], String::new()),
        ];
        for (args, want) in cases {
            let (ok, out) = modprobe(&root, "9.9.9", args);
            assert_eq!(ok, !want.is_empty(), "{args:?}");
            assert_eq!(out, want, "{args:?}");
        }
        std::fs::remove_dir_all(&root).unwrap();
    }

    /// The real 6.12 indexes re-written pre-order: `modprobe -c` (which dumps
    /// the alias and symbol tries) and `-D` of every module agree with the
    /// original Debian files.
    #[test]
    fn host_modprobe_agrees_on_rewritten_612() {
        let base = Path::new("/var/cache/earlymod/k612");
        let Ok(kver) = std::fs::read_to_string(base.join("kver")) else {
            eprintln!("skipping: no 6.12 tree");
            return;
        };
        let kver = kver.trim();
        let orig_root = base.join("root");
        let orig = orig_root.join("lib/modules").join(kver);
        let root = scratch("612");
        let dir = root.join("lib/modules").join(kver);
        std::fs::create_dir_all(&dir).unwrap();
        // kernel/, modules.softdep, text indexes... as they are.
        for e in std::fs::read_dir(&orig).unwrap() {
            let name = e.unwrap().file_name();
            if !name.to_string_lossy().ends_with(".bin") {
                std::os::unix::fs::symlink(orig.join(&name), dir.join(&name)).unwrap();
            }
        }
        let mut names = Vec::new();
        for name in INDEX_NAMES {
            let data = std::fs::read(orig.join(name)).unwrap();
            let idx = earlymod_core::index::Index::new(&data).unwrap();
            let mut b = IndexBuilder::new();
            idx.for_each(&mut |k, v| {
                if name == "modules.dep.bin" {
                    names.push(String::from_utf8(k.to_vec()).unwrap());
                }
                b.insert(k, v.value, v.priority).unwrap();
            })
            .unwrap();
            let out = b.to_bytes().unwrap();
            assert_eq!(&out[8..12], &[0x20, 0, 0, 12][..], "{name}: root at 12");
            std::fs::write(dir.join(name), out).unwrap();
        }
        let (_, want) = modprobe(&orig_root, kver, &["-c"]);
        let (_, got) = modprobe(&root, kver, &["-c"]);
        assert!(want.lines().count() > 40_000, "{}", want.lines().count());
        assert!(got == want, "modprobe -c differs");
        let strip = |s: String, d: &Path| s.replace(&d.display().to_string(), "DIR");
        for m in &names {
            let (_, want) = modprobe(&orig_root, kver, &["-D", m]);
            let (_, got) = modprobe(&root, kver, &["-D", m]);
            assert_eq!(strip(got, &dir), strip(want, &orig), "-D {m}");
        }
        eprintln!("{} modules agree", names.len());
        std::fs::remove_dir_all(&root).unwrap();
    }
}
