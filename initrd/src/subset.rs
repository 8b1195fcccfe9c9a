//! depmod's files for a subset of a tree: the five binary indexes (kmod ≥ 34
//! pre-order layout) and the text `modules.dep`, `modules.order`,
//! `modules.builtin`, `modules.softdep`, so that kmod's modprobe and
//! earlymod answer over the subset exactly as over the full tree for every
//! included module and its aliases.
//!
//! Values keep their key, priority and order from the full tree's indexes
//! (priorities need not be dense: only their order matters to readers).
//! The builtin indexes are kernel-wide facts and are kept whole.

use std::collections::{BTreeSet, HashMap};

use earlymod_core::db::{DepLine, ModuleDb, Source};
use earlymod_core::name::{AliasBuf, modname, modname_from_path, normalize_alias};

use crate::index_write::IndexBuilder;
use crate::tree::Tree;

/// One included module: its name, path in the full tree and path in the
/// subset (which differs once transcoded).
#[derive(Debug, Clone)]
pub struct Member {
    /// Module name.
    pub name: String,
    /// Path in the full tree (as `modules.dep` spells it).
    pub src_rel: String,
    /// Path in the subset.
    pub rel: String,
}

type Entry = (Vec<u8>, u32, Vec<u8>);

/// Every (key, priority, value) of an index source, in file order.
fn entries(src: &Source<'_>, what: &str) -> Result<Vec<Entry>, String> {
    let mut out = Vec::new();
    match src {
        Source::Bin(i) => i
            .for_each(&mut |k, v| out.push((k.to_vec(), v.priority, v.value.to_vec())))
            .map_err(|e| format!("{what}: {e}"))?,
        Source::Corrupt(e) => return Err(format!("{what}: {e}")),
        Source::Missing => {}
        // Text `modules.alias` / `modules.symbols`: `alias KEY MODULE`.
        Source::Text(t) => {
            let mut key = AliasBuf::new();
            for (n, line) in t.split(|&b| b == b'\n').enumerate() {
                let line = String::from_utf8_lossy(line);
                let w: Vec<&str> = line.split_ascii_whitespace().collect();
                if w.len() == 3 && w[0] == "alias" && normalize_alias(w[1], &mut key).is_ok() {
                    out.push((key.as_bytes().to_vec(), n as u32, w[2].as_bytes().to_vec()));
                }
            }
        }
    }
    Ok(out)
}

fn build(entries: impl Iterator<Item = Entry>, what: &str) -> Result<Vec<u8>, String> {
    let mut b = IndexBuilder::new();
    for (k, p, v) in entries {
        b.insert(&k, &v, p).map_err(|e| format!("{what}: {e}"))?;
    }
    b.to_bytes().map_err(|e| format!("{what}: {e}"))
}

/// The subset's files: (file name, contents), in a fixed order.
pub fn subset_files(tree: &Tree, members: &[Member]) -> Result<Vec<(String, Vec<u8>)>, String> {
    let db: ModuleDb<'_> = tree.db();
    let names: BTreeSet<&str> = members.iter().map(|m| m.name.as_str()).collect();
    let new_path: HashMap<&str, &str> = members
        .iter()
        .map(|m| (m.src_rel.as_str(), m.rel.as_str()))
        .collect();

    // Priorities: from modules.dep.bin, else the rank in modules.order.
    let mut prio: HashMap<String, u32> = HashMap::new();
    if let Source::Bin(_) = db.dep {
        for (k, p, _) in entries(&db.dep, "modules.dep.bin")? {
            prio.insert(String::from_utf8_lossy(&k).into_owned(), p);
        }
    } else if let Some(order) = &tree.order {
        for (i, l) in order.lines().enumerate() {
            if let Ok(n) = modname_from_path(l.trim()) {
                prio.entry(n.to_string()).or_insert(i as u32);
            }
        }
    }
    let unknown = u32::try_from(prio.len()).unwrap_or(u32::MAX);

    // modules.dep: paths renamed, order by priority then name.
    let mut deps: Vec<(u32, &str, String)> = Vec::new();
    for m in members {
        let line = db
            .dep_line(&m.name)
            .map_err(|e| format!("modules.dep: {}: {e}", m.name))?
            .and_then(DepLine::parse)
            .ok_or_else(|| format!("modules.dep: {}: no entry", m.name))?;
        let mut v = format!("{}:", m.rel);
        for d in line.deps() {
            v.push(' ');
            v.push_str(new_path.get(d).copied().unwrap_or(d));
        }
        let p = prio.get(&m.name).copied().unwrap_or(unknown);
        deps.push((p, &m.name, v));
    }
    deps.sort();
    let mut files = Vec::new();
    files.push((
        "modules.dep.bin".to_string(),
        build(
            deps.iter()
                .map(|(p, n, v)| (n.as_bytes().to_vec(), *p, v.as_bytes().to_vec())),
            "modules.dep.bin",
        )?,
    ));
    let keep = |e: &Entry| std::str::from_utf8(&e.2).is_ok_and(|v| names.contains(v));
    for (file, src) in [
        ("modules.alias.bin", &db.alias),
        ("modules.symbols.bin", &db.symbols),
    ] {
        let kept = entries(src, file)?.into_iter().filter(keep);
        files.push((file.to_string(), build(kept, file)?));
    }
    // modules.builtin.bin: from the binary index, else the text list.
    let builtin = match db.builtin {
        Source::Text(t) => t
            .split(|&b| b == b'\n')
            .filter_map(|l| modname_from_path(std::str::from_utf8(l).ok()?.trim()).ok())
            .map(|n| (n.as_bytes().to_vec(), 0, Vec::new()))
            .collect(),
        _ => entries(&db.builtin, "modules.builtin.bin")?,
    };
    files.push((
        "modules.builtin.bin".to_string(),
        build(builtin.into_iter(), "modules.builtin.bin")?,
    ));
    files.push((
        "modules.builtin.alias.bin".to_string(),
        build(
            entries(&db.builtin_alias, "modules.builtin.alias.bin")?.into_iter(),
            "modules.builtin.alias.bin",
        )?,
    ));

    let mut text = String::new();
    for (_, _, v) in &deps {
        text.push_str(v);
        text.push('\n');
    }
    files.push(("modules.dep".to_string(), text.into_bytes()));
    if let Some(order) = &tree.order {
        let kept: String = order
            .lines()
            .filter(|l| modname_from_path(l.trim()).is_ok_and(|n| names.contains(n.as_str())))
            .flat_map(|l| [l, "\n"])
            .collect();
        files.push(("modules.order".to_string(), kept.into_bytes()));
    }
    if let Some(b) = tree.builtin_text() {
        files.push(("modules.builtin".to_string(), b.to_vec()));
    }
    if let Some(m) = &tree.builtin_modinfo {
        files.push(("modules.builtin.modinfo".to_string(), m.clone()));
    }
    if let Some(sd) = &tree.softdep {
        files.push(("modules.softdep".to_string(), filter_softdep(sd, &names)));
    }
    Ok(files)
}

/// Keeps comments and the `softdep` lines of included modules.
fn filter_softdep(text: &[u8], names: &BTreeSet<&str>) -> Vec<u8> {
    let mut out = Vec::new();
    for line in String::from_utf8_lossy(text).lines() {
        let w: Vec<&str> = line.split_ascii_whitespace().collect();
        let ours = match w.as_slice() {
            ["softdep", m, ..] => modname(m).is_ok_and(|n| names.contains(n.as_str())),
            _ => line.trim_start().starts_with('#'),
        };
        if ours {
            out.extend_from_slice(line.as_bytes());
            out.push(b'\n');
        }
    }
    out
}
