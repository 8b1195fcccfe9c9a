//! Zero-copy reader for kmod's binary indexes (`modules.*.bin`).
//!
//! The file is a Patricia trie of big-endian words; see
//! `shared/notes/kmod-formats.md`. Both depmod layouts (post-order, kmod ≤ 33,
//! and pre-order, kmod ≥ 34) are read, since the reader only follows offsets.
//! Every read is bounds-checked; recursion is bounded by [`MAX_DEPTH`] and each
//! walk by a work budget equal to the file size: a real index is a tree, so
//! no walk visits more nodes and values than the file has bytes. Each visit
//! costs one unit plus one per [`WORK_UNIT`] bytes of work it does (glob
//! matching is quadratic in the pattern and key lengths, a dump writes the
//! key per value), so hostile files — loops, shared subtrees with
//! exponentially many paths, long globs reached along many paths, absurd
//! counts — cost time, stack and output linear in their size.

use crate::error::{Error, IndexFault, Result};
use crate::fnmatch::{fnmatch_counted, prefix_may_match_counted};

const MAGIC: u32 = 0xB007_F457;
const FLAG_PREFIX: u32 = 0x8000_0000;
const FLAG_VALUES: u32 = 0x4000_0000;
const FLAG_CHILDS: u32 = 0x2000_0000;
const OFFSET_MASK: u32 = 0x0FFF_FFFF;

/// Longest key gathered while walking a trie (a wildcard search's pattern,
/// a dump's key): the longest alias accepted ([`crate::name::MAX_ALIAS`]).
pub const MAX_PATTERN: usize = 1024;
/// Deepest trie walk accepted (the walks recurse once per level). A level
/// is a point where keys branch or end, so real indexes stay well under 100
/// levels however long their keys; a deeper walk is a loop or a hostile
/// file.
pub const MAX_DEPTH: usize = 256;

/// Steps of work (glob-matching steps, key bytes written) that cost one
/// budget unit beyond the unit every visit costs. A walk's budget is the
/// file size plus [`BUDGET_FLOOR`] units, so a hostile file gets at most
/// (its size + the floor) x `WORK_UNIT` steps of work per walk.
pub const WORK_UNIT: usize = 64;
/// Budget units every walk has beyond the file size: two glob matches of
/// the longest pattern against the longest key, each of which may take
/// `MAX_PATTERN`² steps in a small but valid file.
pub const BUDGET_FLOOR: usize = 2 * MAX_PATTERN * MAX_PATTERN / WORK_UNIT;

/// One value stored under a key: the payload and its priority.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Value<'a> {
    /// Lower sorts first (the owning module's rank in `modules.order`).
    pub priority: u32,
    /// The value bytes, without the NUL.
    pub value: &'a [u8],
}

/// A validated view over one index file.
#[derive(Debug, Clone, Copy)]
pub struct Index<'a> {
    data: &'a [u8],
    root: u32,
    /// The file name errors carry (empty: none).
    name: &'static str,
}

/// A decoded node: borrowed prefix, child table and value area.
struct Node<'a> {
    offset: usize,
    prefix: &'a [u8],
    first: u8,
    last: u8,
    children: &'a [u8],
    value_count: u32,
    values: &'a [u8],
}

impl<'a> Node<'a> {
    fn child_word(&self, ch: u8) -> u32 {
        if self.children.is_empty() || ch < self.first || ch > self.last {
            return 0;
        }
        let i = usize::from(ch - self.first) * 4;
        be32(&self.children[i..i + 4])
    }
}

fn be32(b: &[u8]) -> u32 {
    u32::from_be_bytes([b[0], b[1], b[2], b[3]])
}

/// Iterates the values of one node in file order, checking each as it goes
/// (a node's values are only read when its key matches).
struct Values<'a> {
    rest: &'a [u8],
    start: usize,
    left: u32,
    name: &'static str,
}

impl<'a> Iterator for Values<'a> {
    type Item = Result<Value<'a>>;
    fn next(&mut self) -> Option<Result<Value<'a>>> {
        if self.left == 0 {
            return None;
        }
        self.left -= 1;
        let Some(head) = self.rest.get(..4) else {
            self.left = 0;
            return Some(Err(Error::Index(
                self.name,
                IndexFault::OffsetOutOfBounds(self.start as u32),
            )));
        };
        let priority = be32(head);
        let Some(nul) = self.rest[4..].iter().position(|&b| b == 0) else {
            self.left = 0;
            return Some(Err(Error::Index(
                self.name,
                IndexFault::MissingNul(self.start as u32),
            )));
        };
        let value = &self.rest[4..4 + nul];
        self.rest = &self.rest[4 + nul + 1..];
        Some(Ok(Value { priority, value }))
    }
}

/// Inserts `v` the way libkmod does: before the first value whose priority is
/// not lower, so equal priorities come out newest first. A full `out` is
/// [`Error::Capacity`] ("modules matching one name", `N`).
pub fn insert_by_priority<'a, const N: usize>(
    out: &mut heapless::Vec<Value<'a>, N>,
    v: Value<'a>,
) -> Result<()> {
    let pos = out
        .iter()
        .position(|x| x.priority >= v.priority)
        .unwrap_or(out.len());
    out.insert(pos, v)
        .map_err(|_| Error::Capacity("modules matching one name", N))
}

impl<'a> Index<'a> {
    /// Checks the header and returns a reader whose errors name no file.
    pub fn new(data: &'a [u8]) -> Result<Self> {
        Self::named(data, "")
    }

    /// Checks the header and returns a reader whose errors name `name`
    /// (`modules.alias.bin`).
    pub fn named(data: &'a [u8], name: &'static str) -> Result<Self> {
        let fault = |f| Err(Error::Index(name, f));
        if data.len() < 12 {
            return fault(IndexFault::TooShort);
        }
        let magic = be32(&data[0..4]);
        if magic != MAGIC {
            return fault(IndexFault::BadMagic(magic));
        }
        let version = be32(&data[4..8]);
        if version >> 16 != 2 {
            return fault(IndexFault::BadVersion(version));
        }
        Ok(Index {
            data,
            root: be32(&data[8..12]),
            name,
        })
    }

    /// The file name errors carry (empty when none was given).
    pub fn name(&self) -> &'static str {
        self.name
    }

    fn fault(&self, f: IndexFault) -> Error {
        Error::Index(self.name, f)
    }

    fn string_at(&self, off: usize) -> Result<(&'a [u8], usize)> {
        let tail = self
            .data
            .get(off..)
            .ok_or(self.fault(IndexFault::OffsetOutOfBounds(off as u32)))?;
        let nul = tail
            .iter()
            .position(|&b| b == 0)
            .ok_or(self.fault(IndexFault::MissingNul(off as u32)))?;
        Ok((&tail[..nul], off + nul + 1))
    }

    fn node(&self, word: u32) -> Result<Option<Node<'a>>> {
        let start = (word & OFFSET_MASK) as usize;
        if start == 0 {
            return Ok(None);
        }
        let oob = || self.fault(IndexFault::OffsetOutOfBounds(start as u32));
        // A node with no parts has no bytes: the empty index's root sits
        // at the end of the file, and libkmod reads that as empty.
        let flags = word & (FLAG_PREFIX | FLAG_VALUES | FLAG_CHILDS);
        if start > self.data.len() || (start == self.data.len() && flags != 0) {
            return Err(oob());
        }
        let mut off = start;
        let mut prefix: &'a [u8] = &[];
        if word & FLAG_PREFIX != 0 {
            let (p, next) = self.string_at(off)?;
            prefix = p;
            off = next;
        }
        let (mut first, mut last, mut children): (u8, u8, &'a [u8]) = (0, 0, &[]);
        if word & FLAG_CHILDS != 0 {
            let fl = self.data.get(off..off + 2).ok_or_else(oob)?;
            (first, last) = (fl[0], fl[1]);
            if first > last {
                return Err(self.fault(IndexFault::BadChildRange(start as u32)));
            }
            let n = (usize::from(last - first) + 1) * 4;
            children = self.data.get(off + 2..off + 2 + n).ok_or_else(oob)?;
            off += 2 + n;
        }
        let (mut value_count, mut values): (u32, &'a [u8]) = (0, &[]);
        if word & FLAG_VALUES != 0 {
            let c = self.data.get(off..off + 4).ok_or_else(oob)?;
            value_count = be32(c);
            off += 4;
            // Each value needs at least 5 bytes (priority + NUL).
            if value_count as usize > (self.data.len() - off.min(self.data.len())) / 5 {
                return Err(self.fault(IndexFault::BadValueCount(start as u32)));
            }
            values = &self.data[off..];
        }
        Ok(Some(Node {
            offset: start,
            prefix,
            first,
            last,
            children,
            value_count,
            values,
        }))
    }

    fn values(&self, node: &Node<'a>) -> Values<'a> {
        Values {
            rest: node.values,
            start: node.offset,
            left: node.value_count,
            name: self.name,
        }
    }

    /// Exact lookup: the first value stored under `key`, as libkmod's
    /// `index_search` returns it.
    pub fn exact(&self, key: &[u8]) -> Result<Option<&'a [u8]>> {
        let mut word = self.root;
        let mut i = 0usize;
        for _ in 0..=key.len() + 1 {
            let Some(node) = self.node(word)? else {
                return Ok(None);
            };
            let rest = &key[i..];
            if rest.len() < node.prefix.len() || &rest[..node.prefix.len()] != node.prefix {
                return Ok(None);
            }
            i += node.prefix.len();
            if i == key.len() {
                return self
                    .values(&node)
                    .next()
                    .transpose()
                    .map(|v| v.map(|v| v.value));
            }
            word = node.child_word(key[i]);
            i += 1;
        }
        Err(self.fault(IndexFault::TooDeep))
    }

    /// Wildcard lookup: every value whose stored key, read as an fnmatch
    /// pattern, matches `key`; ordered by priority exactly as libkmod's
    /// `index_searchwild` orders them. More than `N` matches is
    /// [`IndexFault::TooManyMatches`].
    pub fn wildcard<const N: usize>(
        &self,
        key: &[u8],
        out: &mut heapless::Vec<Value<'a>, N>,
    ) -> Result<()> {
        self.wildcard_walk(key, out).map_err(|e| match e {
            Error::Capacity(_, n) => self.fault(IndexFault::TooManyMatches(n)),
            e => e,
        })
    }

    fn wildcard_walk<const N: usize>(
        &self,
        key: &[u8],
        out: &mut heapless::Vec<Value<'a>, N>,
    ) -> Result<()> {
        let mut budget = self.data.len() + BUDGET_FLOOR;
        let mut pattern: heapless::Vec<u8, MAX_PATTERN> = heapless::Vec::new();
        let mut word = self.root;
        let mut i = 0usize;
        for _ in 0..=key.len() + 1 {
            let Some(node) = self.node(word)? else {
                return Ok(());
            };
            self.spend(&mut budget, 1)?;
            for (j, &ch) in node.prefix.iter().enumerate() {
                if matches!(ch, b'*' | b'?' | b'[') {
                    return self.collect_all(
                        &node,
                        j,
                        &mut pattern,
                        &key[(i + j).min(key.len())..],
                        out,
                        &mut budget,
                        0,
                    );
                }
                if key.get(i + j) != Some(&ch) {
                    return Ok(());
                }
            }
            i += node.prefix.len();
            for wild in [b'*', b'?', b'['] {
                if let Some(child) = self.node(node.child_word(wild))? {
                    self.push(&mut pattern, wild)?;
                    self.collect_all(&child, 0, &mut pattern, &key[i..], out, &mut budget, 0)?;
                    pattern.pop();
                }
            }
            if i == key.len() {
                for v in self.values(&node) {
                    insert_by_priority(out, v?)?;
                }
                return Ok(());
            }
            word = node.child_word(key[i]);
            i += 1;
        }
        Err(self.fault(IndexFault::TooDeep))
    }

    /// Visits the whole subtree below `node` (from prefix byte `skip`),
    /// adding the values of every key whose pattern matches `subkey`.
    #[allow(clippy::too_many_arguments)]
    fn collect_all<const N: usize>(
        &self,
        node: &Node<'a>,
        skip: usize,
        pattern: &mut heapless::Vec<u8, MAX_PATTERN>,
        subkey: &[u8],
        out: &mut heapless::Vec<Value<'a>, N>,
        budget: &mut usize,
        depth: usize,
    ) -> Result<()> {
        if depth > MAX_DEPTH {
            return Err(self.fault(IndexFault::TooDeep));
        }
        let pushed = node.prefix.len() - skip;
        for &ch in &node.prefix[skip..] {
            self.push(pattern, ch)?;
        }
        let mut steps = 0;
        let may_match = prefix_may_match_counted(pattern, subkey, &mut steps);
        self.spend(budget, 1 + steps / WORK_UNIT)?;
        if !may_match {
            // No key below this node can match: skip the subtree.
            pattern.truncate(pattern.len() - pushed);
            return Ok(());
        }
        if !node.children.is_empty() {
            for ch in node.first..=node.last {
                let Some(child) = self.node(node.child_word(ch))? else {
                    continue;
                };
                // Parsing it read its prefix.
                self.spend(budget, 1 + child.prefix.len() / WORK_UNIT)?;
                self.push(pattern, ch)?;
                self.collect_all(&child, 0, pattern, subkey, out, budget, depth + 1)?;
                pattern.pop();
            }
        }
        if node.value_count > 0 {
            let mut steps = 0;
            let matched = fnmatch_counted(pattern, subkey, &mut steps);
            self.spend(budget, steps / WORK_UNIT)?;
            if matched {
                for v in self.values(node) {
                    insert_by_priority(out, v?)?;
                }
            }
        }
        pattern.truncate(pattern.len() - pushed);
        Ok(())
    }

    /// Calls `f(key, value)` for every stored value, in trie order
    /// (what `modprobe -c` dumps).
    pub fn for_each(&self, f: &mut dyn FnMut(&[u8], Value<'a>)) -> Result<()> {
        let mut budget = self.data.len() + BUDGET_FLOOR;
        let mut key: heapless::Vec<u8, MAX_PATTERN> = heapless::Vec::new();
        if let Some(root) = self.node(self.root)? {
            self.dump(&root, &mut key, f, &mut budget, 0)?;
        }
        Ok(())
    }

    fn dump(
        &self,
        node: &Node<'a>,
        key: &mut heapless::Vec<u8, MAX_PATTERN>,
        f: &mut dyn FnMut(&[u8], Value<'a>),
        budget: &mut usize,
        depth: usize,
    ) -> Result<()> {
        if depth > MAX_DEPTH {
            return Err(self.fault(IndexFault::TooDeep));
        }
        self.spend(budget, 1 + node.prefix.len() / WORK_UNIT)?;
        for &ch in node.prefix {
            self.push(key, ch)?;
        }
        for v in self.values(node) {
            // Values count against the budget too: a node with many values
            // reached through many shared paths would otherwise emit
            // (paths x values) lines from a small file.
            self.spend(budget, 1 + key.len() / WORK_UNIT)?;
            f(key, v?);
        }
        if !node.children.is_empty() {
            for ch in node.first..=node.last {
                if let Some(child) = self.node(node.child_word(ch))? {
                    // Parsing it read its prefix.
                    self.spend(budget, 1 + child.prefix.len() / WORK_UNIT)?;
                    self.push(key, ch)?;
                    self.dump(&child, key, f, budget, depth + 1)?;
                    key.pop();
                }
            }
        }
        key.truncate(key.len() - node.prefix.len());
        Ok(())
    }
}

impl Index<'_> {
    fn push(&self, buf: &mut heapless::Vec<u8, MAX_PATTERN>, b: u8) -> Result<()> {
        buf.push(b).map_err(|_| self.fault(IndexFault::KeyTooLong))
    }

    fn spend(&self, budget: &mut usize, units: usize) -> Result<()> {
        *budget = budget
            .checked_sub(units)
            .ok_or(self.fault(IndexFault::NodeBudget))?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The golden vector from shared/notes/kmod-formats.md (pre-order layout).
    pub(crate) fn golden() -> heapless::Vec<u8, 256> {
        let hex = "b007f45700020001 2000000c 616f 2000004a 00000000 00000000 00000000 00000000 00000000 00000000 00000000 00000000 00000000 00000000 00000000 00000000 00000000 e000006c \
                   7374 c0000054 c0000060 6b00 00000001 00000000 4100 6500 00000001 00000001 4200 \
                   6e00 6365 c0000086 00000000 40000092 00000001 00000002 4300 \
                   6500 00000001 00000003 4400 00000001 00000004 4500";
        let mut v = heapless::Vec::new();
        let digits: heapless::Vec<u8, 512> =
            hex.bytes().filter(|b| b.is_ascii_hexdigit()).collect();
        for pair in digits.chunks(2) {
            let s = core::str::from_utf8(pair).unwrap();
            v.push(u8::from_str_radix(s, 16).unwrap()).unwrap();
        }
        v
    }

    #[test]
    fn golden_vector_exact() {
        let data = golden();
        assert_eq!(data.len(), 156);
        let idx = Index::new(&data).unwrap();
        assert_eq!(idx.exact(b"ask").unwrap(), Some(&b"A"[..]));
        assert_eq!(idx.exact(b"ate").unwrap(), Some(&b"B"[..]));
        assert_eq!(idx.exact(b"on").unwrap(), Some(&b"C"[..]));
        assert_eq!(idx.exact(b"once").unwrap(), Some(&b"D"[..]));
        assert_eq!(idx.exact(b"one").unwrap(), Some(&b"E"[..]));
        assert_eq!(idx.exact(b"o").unwrap(), None);
        assert_eq!(idx.exact(b"as").unwrap(), None);
        assert_eq!(idx.exact(b"asks").unwrap(), None);
        assert_eq!(idx.exact(b"").unwrap(), None);
        let mut all: heapless::Vec<(heapless::String<8>, u32), 8> = heapless::Vec::new();
        idx.for_each(&mut |k, v| {
            let mut s = heapless::String::new();
            s.push_str(core::str::from_utf8(k).unwrap()).unwrap();
            all.push((s, v.priority)).unwrap();
        })
        .unwrap();
        let keys: heapless::Vec<&str, 8> = all.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(&keys[..], &["ask", "ate", "on", "once", "one"]);
    }

    #[test]
    fn golden_vector_wildcard_is_exact_without_patterns() {
        let data = golden();
        let idx = Index::new(&data).unwrap();
        let mut out: heapless::Vec<Value, 8> = heapless::Vec::new();
        idx.wildcard(b"once", &mut out).unwrap();
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].value, b"D");
        assert_eq!(out[0].priority, 3);
    }

    #[test]
    fn empty_index_is_empty() {
        // depmod's empty index: the flagless root sits at the end of the file.
        let data = [0xb0, 0x07, 0xf4, 0x57, 0, 2, 0, 1, 0, 0, 0, 0x0c];
        let idx = Index::new(&data).unwrap();
        assert_eq!(idx.exact(b"x"), Ok(None));
        let mut out: heapless::Vec<Value<'_>, 4> = heapless::Vec::new();
        idx.wildcard(b"x", &mut out).unwrap();
        assert!(out.is_empty());
        let mut n = 0;
        idx.for_each(&mut |_, _| n += 1).unwrap();
        assert_eq!(n, 0);
        // A root with parts cannot sit at the end.
        let mut bad = data;
        bad[8] = 0x40;
        assert!(Index::new(&bad).and_then(|i| i.exact(b"x")).is_err());
    }

    #[test]
    fn header_errors() {
        assert_eq!(
            Index::new(&[0; 11]).unwrap_err(),
            Error::Index("", IndexFault::TooShort)
        );
        let mut d = golden();
        d[0] = 0;
        assert!(matches!(
            Index::named(&d, "modules.dep.bin"),
            Err(Error::Index("modules.dep.bin", IndexFault::BadMagic(_)))
        ));
        let mut d = golden();
        d[5] = 3;
        assert!(matches!(
            Index::new(&d),
            Err(Error::Index(_, IndexFault::BadVersion(_)))
        ));
    }

    #[test]
    fn truncations_never_panic() {
        let data = golden();
        for len in 12..data.len() {
            let idx = Index::new(&data[..len]).unwrap();
            for key in [&b"ask"[..], b"ate", b"on", b"once", b"one", b"x"] {
                let _ = idx.exact(key);
                let mut out: heapless::Vec<Value, 8> = heapless::Vec::new();
                let _ = idx.wildcard(key, &mut out);
            }
            let _ = idx.for_each(&mut |_, _| {});
        }
    }

    #[test]
    fn every_byte_flip_is_bounded() {
        let data = golden();
        for i in 8..data.len() {
            for bit in 0..8 {
                let mut d = data.clone();
                d[i] ^= 1 << bit;
                let idx = Index::new(&d).unwrap();
                for key in [&b"ask"[..], b"once", b"one", b"zz"] {
                    let _ = idx.exact(key);
                    let mut out: heapless::Vec<Value, 8> = heapless::Vec::new();
                    let _ = idx.wildcard(key, &mut out);
                }
                let _ = idx.for_each(&mut |_, _| {});
            }
        }
    }

    #[test]
    fn self_loop_is_an_error() {
        // Root at 12 with a '*' child pointing back at itself.
        let mut d: heapless::Vec<u8, 64> = heapless::Vec::new();
        d.extend_from_slice(&[0xb0, 0x07, 0xf4, 0x57, 0, 2, 0, 1, 0x20, 0, 0, 12])
            .unwrap();
        d.extend_from_slice(&[b'*', b'*', 0x20, 0, 0, 12]).unwrap();
        let idx = Index::new(&d).unwrap();
        let mut out: heapless::Vec<Value, 8> = heapless::Vec::new();
        assert!(idx.wildcard(b"abc", &mut out).is_err());
        assert!(idx.for_each(&mut |_, _| {}).is_err());
        // Exact lookups of keys made of the arc byte stay bounded by the key.
        assert_eq!(idx.exact(b"***").unwrap(), None);
    }

    #[test]
    fn absurd_value_count() {
        let mut d: heapless::Vec<u8, 64> = heapless::Vec::new();
        d.extend_from_slice(&[0xb0, 0x07, 0xf4, 0x57, 0, 2, 0, 1, 0x40, 0, 0, 12])
            .unwrap();
        d.extend_from_slice(&[0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0, b'A', 0])
            .unwrap();
        let idx = Index::new(&d).unwrap();
        assert!(matches!(
            idx.exact(b""),
            Err(Error::Index(_, IndexFault::BadValueCount(_)))
        ));
    }

    extern crate std;
    use std::vec::Vec;

    /// A hand-made index: nodes `(prefix, children (arc byte, node), values)`
    /// laid out after the header in order, node 0 the root. Any node may
    /// point at any other, so loops and shared subtrees are expressible.
    type TestNode = (Vec<u8>, Vec<(u8, usize)>, Vec<Vec<u8>>);
    fn build(nodes: &[TestNode]) -> Vec<u8> {
        let size = |n: &TestNode| {
            let p = if n.0.is_empty() { 0 } else { n.0.len() + 1 };
            let c = match (n.1.iter().map(|c| c.0).min(), n.1.iter().map(|c| c.0).max()) {
                (Some(lo), Some(hi)) => 2 + 4 * (usize::from(hi - lo) + 1),
                _ => 0,
            };
            let v = if n.2.is_empty() {
                0
            } else {
                4 + n.2.iter().map(|v| 5 + v.len()).sum::<usize>()
            };
            p + c + v
        };
        let mut offs = Vec::new();
        let mut at = 12;
        for n in nodes {
            offs.push(at);
            at += size(n);
        }
        let word = |i: usize| {
            let n = &nodes[i];
            let mut w = offs[i] as u32;
            if !n.0.is_empty() {
                w |= FLAG_PREFIX;
            }
            if !n.1.is_empty() {
                w |= FLAG_CHILDS;
            }
            if !n.2.is_empty() {
                w |= FLAG_VALUES;
            }
            w
        };
        let mut out = Vec::new();
        out.extend_from_slice(&MAGIC.to_be_bytes());
        out.extend_from_slice(&0x0002_0001u32.to_be_bytes());
        out.extend_from_slice(&word(0).to_be_bytes());
        for n in nodes {
            if !n.0.is_empty() {
                out.extend_from_slice(&n.0);
                out.push(0);
            }
            if let (Some(lo), Some(hi)) =
                (n.1.iter().map(|c| c.0).min(), n.1.iter().map(|c| c.0).max())
            {
                out.extend_from_slice(&[lo, hi]);
                for ch in lo..=hi {
                    let w = n.1.iter().find(|c| c.0 == ch).map_or(0, |c| word(c.1));
                    out.extend_from_slice(&w.to_be_bytes());
                }
            }
            if !n.2.is_empty() {
                out.extend_from_slice(&(n.2.len() as u32).to_be_bytes());
                for v in &n.2 {
                    out.extend_from_slice(&0u32.to_be_bytes());
                    out.extend_from_slice(v);
                    out.push(0);
                }
            }
        }
        out
    }

    /// A chain of `depth` nodes below the root, one `a` arc each, every
    /// node holding a value: keys `a`, `aa`, ... — a valid (tree) index.
    fn chain(depth: usize) -> Vec<u8> {
        let mut v: Vec<TestNode> = (0..depth)
            .map(|i| {
                (
                    Vec::new(),
                    std::vec![(b'a', i + 1)],
                    std::vec![b"m".to_vec()],
                )
            })
            .collect();
        v[0].2.clear();
        v.push((Vec::new(), Vec::new(), std::vec![b"m".to_vec()]));
        build(&v)
    }

    /// A trie exactly as deep as the bound is read; one level more is a
    /// named error. A key as long as the key bound is read; one byte more
    /// is a named error. (The walks recurse once per level: some 400 bytes
    /// of stack each optimized, several KB unoptimized; hence the thread.)
    #[test]
    fn depth_and_key_length_at_and_over_their_bounds() {
        std::thread::Builder::new()
            .stack_size(64 << 20)
            .spawn(deep_chain)
            .unwrap()
            .join()
            .unwrap();
    }

    fn deep_chain() {
        let data = chain(MAX_DEPTH);
        let idx = Index::named(&data, "modules.alias.bin").unwrap();
        let mut n = 0;
        idx.for_each(&mut |k, _| {
            n += 1;
            assert_eq!(k.len(), n);
        })
        .unwrap();
        assert_eq!(n, MAX_DEPTH);
        let key = std::vec![b'a'; MAX_DEPTH];
        assert_eq!(idx.exact(&key).unwrap(), Some(&b"m"[..]));
        let mut out: heapless::Vec<Value, 4> = heapless::Vec::new();
        idx.wildcard(&key, &mut out).unwrap();
        assert_eq!(out.len(), 1);
        // One level more: named.
        let data = chain(MAX_DEPTH + 1);
        let idx = Index::named(&data, "modules.alias.bin").unwrap();
        assert_eq!(
            idx.for_each(&mut |_, _| {}),
            Err(Error::Index("modules.alias.bin", IndexFault::TooDeep))
        );
        // A key of MAX_PATTERN bytes in one node under `*` (walked by every
        // wildcard lookup and by the dump), then one byte more.
        for (len, ok) in [(MAX_PATTERN, true), (MAX_PATTERN + 1, false)] {
            let mut leaf: TestNode = (
                std::vec![b'k'; len - 1],
                Vec::new(),
                std::vec![b"m".to_vec()],
            );
            leaf.0[0] = b'k';
            let data = build(&[(Vec::new(), std::vec![(b'*', 1)], Vec::new()), leaf]);
            let idx = Index::named(&data, "modules.alias.bin").unwrap();
            let mut out: heapless::Vec<Value, 4> = heapless::Vec::new();
            let key = std::vec![b'k'; MAX_PATTERN - 1];
            let want = if ok {
                Ok(())
            } else {
                Err(Error::Index("modules.alias.bin", IndexFault::KeyTooLong))
            };
            assert_eq!(idx.wildcard(&key, &mut out), want);
            assert_eq!(out.len(), usize::from(ok));
            assert_eq!(idx.for_each(&mut |_, _| {}), want);
        }
    }

    /// Every child of every node points at the same next node: 255^40
    /// paths through a 40 KB file. Each walk stops at the node budget.
    #[test]
    fn exponential_fan_out_stops_at_the_budget() {
        let mut v: Vec<TestNode> = (0..40)
            .map(|i| {
                (
                    Vec::new(),
                    (1..=255u8).map(|c| (c, i + 1)).collect(),
                    Vec::new(),
                )
            })
            .collect();
        v.push((Vec::new(), Vec::new(), std::vec![b"m".to_vec()]));
        let data = build(&v);
        let idx = Index::new(&data).unwrap();
        let fault = Err(Error::Index("", IndexFault::NodeBudget));
        assert_eq!(idx.for_each(&mut |_, _| {}), fault);
        // A wildcard walk stops at the budget, or earlier when the many
        // patterns that match (`*` runs) fill the output.
        let mut out: heapless::Vec<Value, 4> = heapless::Vec::new();
        let e = idx.wildcard(b"abc", &mut out).unwrap_err();
        assert!(
            matches!(
                e,
                Error::Index("", IndexFault::NodeBudget | IndexFault::TooManyMatches(4))
            ),
            "{e:?}"
        );
        let mut out: heapless::Vec<Value, 4> = heapless::Vec::new();
        assert_eq!(idx.wildcard(b"", &mut out), fault);
        // The exact path exists and is found: exact lookups never branch.
        assert_eq!(idx.exact(&[b'x'; 40]).unwrap(), Some(&b"m"[..]));
    }

    /// Many paths onto one node with many values: a dump emits no more
    /// values than the file has bytes (values count against the budget),
    /// instead of paths x values.
    #[test]
    fn shared_value_nodes_cannot_multiply_the_output() {
        let values: Vec<Vec<u8>> = (0..20_000)
            .map(|i| std::format!("v{i}").into_bytes())
            .collect();
        let v: Vec<TestNode> = std::vec![
            (
                Vec::new(),
                (1..=255u8).map(|c| (c, 1)).collect(),
                Vec::new()
            ),
            (
                Vec::new(),
                (1..=255u8).map(|c| (c, 2)).collect(),
                Vec::new()
            ),
            (Vec::new(), Vec::new(), values),
        ];
        let data = build(&v);
        let idx = Index::new(&data).unwrap();
        let mut n = 0usize;
        assert_eq!(
            idx.for_each(&mut |_, _| n += 1),
            Err(Error::Index("", IndexFault::NodeBudget))
        );
        assert!(
            n <= data.len() + BUDGET_FLOOR,
            "{n} values from {} bytes",
            data.len()
        );
    }

    #[test]
    fn equal_priorities_come_out_newest_first() {
        let mut out: heapless::Vec<Value, 4> = heapless::Vec::new();
        insert_by_priority(
            &mut out,
            Value {
                priority: 0,
                value: b"a",
            },
        )
        .unwrap();
        insert_by_priority(
            &mut out,
            Value {
                priority: 0,
                value: b"b",
            },
        )
        .unwrap();
        insert_by_priority(
            &mut out,
            Value {
                priority: 1,
                value: b"c",
            },
        )
        .unwrap();
        insert_by_priority(
            &mut out,
            Value {
                priority: 0,
                value: b"d",
            },
        )
        .unwrap();
        let v: heapless::Vec<&[u8], 4> = out.iter().map(|v| v.value).collect();
        assert_eq!(&v[..], &[&b"d"[..], b"b", b"a", b"c"]);
        assert_eq!(
            insert_by_priority(
                &mut out,
                Value {
                    priority: 9,
                    value: b"e"
                }
            ),
            Err(Error::Capacity("modules matching one name", 4))
        );
    }
}
