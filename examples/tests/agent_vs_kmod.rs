//! The agent example's dry run (`agent -n`, which ignores the running
//! kernel as `modprobe -D` does) against kmod's `modprobe -D` on the cached
//! Debian trees: for every name, the same modules in the same order, the
//! same builtins, and "not found" where kmod finds nothing. Names: every
//! 40th module of `modules.dep`, the first builtins, aliases, and misses.
use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Stdio};

fn cache() -> PathBuf {
    std::env::var_os("EARLYMOD_CACHE")
        .filter(|v| !v.is_empty())
        .map_or_else(|| PathBuf::from("/var/cache/earlymod"), PathBuf::from)
}

/// kmod's plan for `name`: module names (`insmod` paths' stems, `builtin`
/// names, `install` as the module), or "not found".
fn kmod_plan(root: &str, kver: &str, name: &str) -> Vec<String> {
    let out = Command::new("modprobe")
        .args(["-d", root, "-S", kver, "-D", "--", name])
        .output()
        .expect("kmod's modprobe runs");
    if !out.status.success() {
        return vec!["not found".into()];
    }
    let text = String::from_utf8_lossy(&out.stdout);
    text.lines()
        .filter_map(|l| {
            let mut w = l.split_whitespace();
            match w.next()? {
                "insmod" => {
                    let file = w.next()?.rsplit('/').next()?;
                    Some(file.split(".ko").next()?.replace('-', "_"))
                }
                "builtin" => Some(format!("{} builtin", w.next()?)),
                _ => None,
            }
        })
        .collect()
}

#[test]
fn agent_dry_run_matches_modprobe_show_depends() {
    let mut compared = 0;
    for tree in ["k61", "k612"] {
        let base = cache().join(tree);
        let Ok(kver) = std::fs::read_to_string(base.join("kver")) else {
            assert!(
                std::env::var_os("CI").is_none(),
                "{tree}: no cached tree under CI"
            );
            continue;
        };
        let (root, kver) = (base.join("root"), kver.trim().to_string());
        let moddir = root.join("lib/modules").join(&kver);
        let dep = std::fs::read_to_string(moddir.join("modules.dep")).expect("modules.dep");
        let builtin = std::fs::read_to_string(moddir.join("modules.builtin")).unwrap_or_default();
        let stem = |l: &str| {
            let f = l
                .split(':')
                .next()
                .unwrap_or("")
                .rsplit('/')
                .next()
                .unwrap_or("");
            f.split(".ko").next().unwrap_or("").to_string()
        };
        let mut names: Vec<String> = dep.lines().step_by(40).map(stem).collect();
        names.extend(builtin.lines().take(20).map(stem));
        names.extend(
            [
                "fs-ext4",
                "fs-xfs",
                "snd-hda-intel",
                "no_such_module",
                "pci:v00008086d0000100Esv*",
            ]
            .map(String::from),
        );
        let root_s = root.to_str().unwrap();
        let mut child = Command::new(env!("CARGO_BIN_EXE_agent"))
            .args(["-d", root_s, "-S", &kver, "-n"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("the agent runs");
        child
            .stdin
            .take()
            .unwrap()
            .write_all(names.join("\n").as_bytes())
            .unwrap();
        let out = child.wait_with_output().unwrap();
        assert!(out.status.success());
        let text = String::from_utf8(out.stdout).unwrap();
        for name in &names {
            let prefix = format!("{name}: ");
            let ours: Vec<String> = text
                .lines()
                .filter_map(|l| l.strip_prefix(&prefix))
                .map(|l| l.trim_end_matches(" would load").to_string())
                .collect();
            assert_eq!(ours, kmod_plan(root_s, &kver, name), "{tree}: {name}");
            compared += 1;
        }
    }
    println!("agent vs kmod modprobe -D: {compared} names, all the same");
}
