//! `Context::info` (modinfo as data) against kmod's `modinfo -F FIELD` on
//! the cached Debian trees: for a handful of modules (a plain one, aliases,
//! a builtin), every value of each field, in order.
use std::process::Command;

use earlymod::context::{ConfigStore, Context};
use earlymod::moddir::{self, ModDir};
use earlymod::modinfo::Resolved;

#[test]
fn info_matches_kmod_modinfo_fields() {
    let mut compared = 0;
    let (trees, missing) = earlymod_tests::default_trees();
    assert!(
        std::env::var_os("CI").is_none() || missing.is_empty(),
        "{missing:?}"
    );
    for t in &trees {
        let (tree, kver) = (&t.label, t.kver.as_str());
        let root_s = t.root.to_str().unwrap();
        let dir = ModDir::open(moddir::dirname_for(Some(root_s), Some(kver)));
        let mut store = ConfigStore::new();
        let ctx = Context::open(&dir, &moddir::DEFAULT_CONFIG_PATHS, &mut store, &mut |_| {});
        for name in [
            "ext4",
            "fs-xfs",
            "e1000",
            "virtio_blk",
            "snd-hda-intel",
            "zbud",
        ] {
            for field in [
                "license", "depends", "alias", "vermagic", "name", "parm", "sig_key",
            ] {
                let mut ours: Vec<String> = Vec::new();
                let n = ctx
                    .info(name, &mut |m, entries| {
                        // modinfo shows a builtin's name, which
                        // modules.builtin.modinfo does not list.
                        if let (Resolved::Builtin(n), "name") = (m, field) {
                            ours.push(n.clone());
                        }
                        for e in entries.expect("readable module") {
                            let parm = field == "parm" && e.key == b"parmtype";
                            if e.key == field.as_bytes() || parm {
                                ours.push(String::from_utf8_lossy(&e.value).into_owned());
                            }
                        }
                    })
                    .expect("lookup");
                assert_eq!(n, 1, "{tree}: {name}");
                let kmod = Command::new("modinfo")
                    .args(["-b", root_s, "-k", kver, "-F", field, name])
                    .output()
                    .expect("kmod's modinfo runs");
                let text = String::from_utf8_lossy(&kmod.stdout);
                // `-F parm` prints "name:description (type)" merged from
                // parm and parmtype: compare the parameters' names.
                let (ours, theirs): (Vec<String>, Vec<String>) = if field == "parm" {
                    let mut o: Vec<String> = ours
                        .iter()
                        .map(|p| p.split(':').next().unwrap().into())
                        .collect();
                    let mut t: Vec<String> = text
                        .lines()
                        .map(|p| p.split(':').next().unwrap().into())
                        .collect();
                    o.sort();
                    o.dedup();
                    t.sort();
                    (o, t)
                } else {
                    (ours, text.lines().map(String::from).collect())
                };
                assert_eq!(ours, theirs, "{tree}: {name} -F {field}");
                compared += 1;
            }
        }
    }
    println!("Context::info vs kmod modinfo -F: {compared} fields the same");
}
