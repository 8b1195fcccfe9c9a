//! The agent example's dry run (`agent -n`, which ignores the running
//! kernel as `modprobe -D` does) against kmod's `modprobe -D` on the cached
//! Debian trees: for every name, the same modules in the same order, the
//! same builtins, and "not found" where kmod finds nothing. Names: every
//! 40th module of `modules.dep`, the first builtins, aliases, and misses.
use std::io::Write;
use std::process::{Command, Stdio};

use earlymod_tests::{builtin_names, dep_module_names, module_name_from_path};

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
                "insmod" => Some(module_name_from_path(w.next()?)),
                "builtin" => Some(format!("{} builtin", w.next()?)),
                _ => None,
            }
        })
        .collect()
}

#[test]
fn agent_dry_run_matches_modprobe_show_depends() {
    let mut compared = 0;
    let (trees, missing) = earlymod_tests::default_trees();
    assert!(
        std::env::var_os("CI").is_none() || missing.is_empty(),
        "{missing:?}"
    );
    for t in &trees {
        let (tree, root, kver) = (&t.label, &t.root, &t.kver);
        let dep = dep_module_names(t).expect("modules.dep");
        let mut names: Vec<String> = dep.into_iter().step_by(40).collect();
        names.extend(builtin_names(t).unwrap_or_default().into_iter().take(20));
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
            .args(["-d", root_s, "-S", kver, "-n"])
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
            assert_eq!(ours, kmod_plan(root_s, kver, name), "{tree}: {name}");
            compared += 1;
        }
    }
    println!("agent vs kmod modprobe -D: {compared} names, all the same");
}
