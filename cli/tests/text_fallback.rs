//! The text fallbacks (`modules.dep`, `modules.alias`, `modules.symbols`,
//! `modules.builtin`) must answer exactly like the `.bin` indexes. On each
//! real Debian tree, a copy of the module directory without the `.bin` files
//! is resolved by earlymod and compared with the original: `-D` of every
//! module and `-R` of a sample of aliases, in batches (`-a`).

use std::path::{Path, PathBuf};
use std::process::Command;

fn cache() -> PathBuf {
    PathBuf::from(std::env::var("EARLYMOD_CACHE").unwrap_or_else(|_| "/var/cache/earlymod".into()))
}

fn run(moddir_root: &Path, kver: &str, flags: &[&str], names: &[String]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_earlymod"))
        .arg("modprobe")
        .arg("-d")
        .arg(moddir_root)
        .args(["-S", kver, "-C", "/nonexistent", "-q", "-a"])
        .args(flags)
        .arg("--")
        .args(names)
        .output()
        .expect("run earlymod");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Module names and a sample of concrete alias strings of a tree.
fn queries(moddir: &Path) -> (Vec<String>, Vec<String>) {
    let dep = std::fs::read_to_string(moddir.join("modules.dep")).unwrap();
    let names = dep
        .lines()
        .filter_map(|l| l.split(':').next())
        .map(|p| {
            p.rsplit('/')
                .next()
                .unwrap()
                .split('.')
                .next()
                .unwrap()
                .replace('-', "_")
        })
        .collect();
    let alias = std::fs::read_to_string(moddir.join("modules.alias")).unwrap();
    let aliases = alias
        .lines()
        .step_by(13)
        .filter_map(|l| l.split_whitespace().nth(1))
        .map(|p| p.replace('*', "").replace('?', "1"))
        .filter(|p| !p.contains('['))
        .collect();
    (names, aliases)
}

#[test]
fn text_indexes_answer_like_binary_indexes() {
    let mut checked = 0;
    for tree in ["k61", "k612"] {
        let base = cache().join(tree);
        let Ok(kver) = std::fs::read_to_string(base.join("kver")) else {
            assert_ne!(
                std::env::var("CI").as_deref(),
                Ok("true"),
                "{tree}: test kernel tree missing under CI"
            );
            eprintln!("SKIP {tree}: no cached tree (run scripts/setup.sh)");
            continue;
        };
        let kver = kver.trim();
        let root = base.join("root");
        let moddir = root.join("lib/modules").join(kver);
        // A twin tree holding only the text indexes (and builtin.alias.bin,
        // which depmod writes in binary form only).
        let twin =
            std::env::temp_dir().join(format!("earlymod-text-{tree}-{}", std::process::id()));
        let twin_moddir = twin.join("lib/modules").join(kver);
        std::fs::create_dir_all(&twin_moddir).unwrap();
        for f in [
            "modules.dep",
            "modules.alias",
            "modules.symbols",
            "modules.builtin",
            "modules.softdep",
            "modules.builtin.alias.bin",
            "kernel",
        ] {
            let _ = std::os::unix::fs::symlink(moddir.join(f), twin_moddir.join(f));
        }
        let (names, aliases) = queries(&moddir);
        for (flags, list) in [
            (&["-D"][..], &names),
            (&["-R"][..], &aliases),
            (&["-D"][..], &aliases),
        ] {
            for chunk in list.chunks(2000) {
                let want =
                    run(&root, kver, flags, chunk).replace(&root.display().to_string(), "ROOT");
                let got =
                    run(&twin, kver, flags, chunk).replace(&twin.display().to_string(), "ROOT");
                assert!(!want.is_empty(), "{tree}: no output for {flags:?}");
                if want != got {
                    let line = want.lines().zip(got.lines()).find(|(a, b)| a != b);
                    panic!(
                        "{tree} {flags:?}: text fallback differs from .bin; first difference: {line:?}"
                    );
                }
                checked += chunk.len();
            }
        }
        std::fs::remove_dir_all(&twin).unwrap();
        println!(
            "text fallback {tree}: {} -D names, {} aliases identical to .bin",
            names.len(),
            aliases.len()
        );
    }
    println!("text fallback: {checked} queries checked");
}
