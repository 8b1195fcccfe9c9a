//! earlymod-pack's target checks on a tree made from the cached Debian
//! kernels: a 6.1 module and an arm64 module injected into a 6.12 tree are
//! refused (one error line each, naming the module and the reason) unless
//! `--force`; a module the 6.12 kernel has built in is never packed, even
//! when the tree also has a file of that name.

use std::fs;
use std::path::{Path, PathBuf};

use earlymod_initrd::cpio::read_image;
use earlymod_initrd::pack::{PackOptions, pack};
use earlymod_tests::cache_dir;

struct Fixture {
    dir: PathBuf,
    kver: String,
    builtin: String,
}

impl Drop for Fixture {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.dir);
    }
}

fn kver(name: &str) -> Option<String> {
    fs::read_to_string(cache_dir().join(name).join("kver"))
        .ok()
        .map(|k| k.trim().to_string())
}

fn copy(from: &Path, to: &Path) {
    fs::create_dir_all(to.parent().unwrap()).unwrap();
    fs::copy(from, to).unwrap_or_else(|e| panic!("{}: {e}", from.display()));
}

/// A 6.12 tree with r8169 and its dependencies, `oldmod` (6.1's dummy),
/// `armmod` (arm64's dummy) and a file named like the first builtin.
fn fixture(tag: &str) -> Option<Fixture> {
    let (k612, k61, karm) = (kver("k612")?, kver("k61")?, kver("karm64")?);
    let src = |k: &str, v: &str| cache_dir().join(k).join("root/lib/modules").join(v);
    let dir = std::env::temp_dir().join(format!("earlymod-target-{tag}-{}", std::process::id()));
    let _ = fs::remove_dir_all(&dir);
    let moddir = dir.join("lib/modules").join(&k612);
    let full = src("k612", &k612);
    let dep = fs::read_to_string(full.join("modules.dep")).unwrap();
    let line = dep
        .lines()
        .find(|l| l.contains("/r8169.ko"))
        .expect("r8169 in modules.dep");
    for rel in line.split([':', ' ']).filter(|w| !w.is_empty()) {
        copy(&full.join(rel), &moddir.join(rel));
    }
    for f in [
        "modules.builtin",
        "modules.builtin.modinfo",
        "modules.order",
    ] {
        copy(&full.join(f), &moddir.join(f));
    }
    let builtin_text = fs::read_to_string(full.join("modules.builtin")).unwrap();
    let builtin = builtin_text
        .lines()
        .find_map(|l| l.rsplit('/').next()?.strip_suffix(".ko"))
        .unwrap()
        .replace('-', "_");
    let dummy = |k: &str, v: &str| {
        let d = fs::read_to_string(src(k, v).join("modules.dep")).unwrap();
        let rel = d
            .lines()
            .filter_map(|l| l.split_once(':').map(|(p, _)| p.to_string()))
            .find(|p| p.contains("/dummy.ko"))
            .unwrap();
        src(k, v).join(rel)
    };
    copy(&dummy("k61", &k61), &moddir.join("extra/oldmod.ko"));
    copy(&dummy("karm64", &karm), &moddir.join("extra/armmod.ko.xz"));
    copy(
        &dummy("k612", &k612),
        &moddir.join(format!("extra/{builtin}.ko.xz")),
    );
    let cfg = format!("boot/config-{k612}");
    copy(&cache_dir().join("k612/root").join(&cfg), &dir.join(&cfg));
    let st = std::process::Command::new("depmod")
        .arg("-b")
        .arg(&dir)
        .arg(&k612)
        .status()
        .unwrap();
    assert!(st.success(), "depmod");
    Some(Fixture {
        dir,
        kver: k612,
        builtin,
    })
}

fn options(f: &Fixture, force: bool) -> PackOptions {
    PackOptions {
        root: f.dir.clone(),
        load: ["r8169", "oldmod", "armmod", &f.builtin]
            .iter()
            .map(|s| s.to_string())
            .collect(),
        // any x86_64 executable passes the machine check: this test's own
        earlymod: std::env::current_exe().unwrap(),
        jobs: 2,
        quiet: true,
        firmware_dirs: vec![f.dir.join("lib/firmware")],
        force,
        report: Some(f.dir.join("report.txt")),
        ..PackOptions::new(f.kver.clone(), f.dir.join("initrd.img"))
    }
}

fn packed_modules(f: &Fixture) -> Vec<String> {
    let data = fs::read(f.dir.join("initrd.img")).unwrap();
    let mut names: Vec<String> = read_image(&data)
        .unwrap()
        .into_iter()
        .filter(|e| e.path.contains(".ko"))
        .map(|e| {
            let base = e.path.rsplit('/').next().unwrap().to_string();
            base.split(".ko").next().unwrap().to_string()
        })
        .collect();
    names.sort();
    names
}

#[test]
fn foreign_modules_are_refused_and_builtins_never_packed() {
    let Some(f) = fixture("refuse") else {
        assert!(std::env::var_os("CI").is_none(), "no cached trees");
        return;
    };
    let r = pack(&options(&f, false)).unwrap();
    let old = r
        .errors
        .iter()
        .filter(|e| e.starts_with("oldmod: "))
        .collect::<Vec<_>>();
    assert_eq!(old.len(), 1, "{:?}", r.errors);
    assert!(old[0].contains("vermagic '6.1.") && old[0].contains(&format!("not {}", f.kver)));
    assert!(old[0].ends_with(": not packed"), "{}", old[0]);
    let arm = r
        .errors
        .iter()
        .filter(|e| e.starts_with("armmod: "))
        .collect::<Vec<_>>();
    assert_eq!(
        arm,
        vec![&format!(
            "armmod: built for aarch64, but kernel {} is x86_64: not packed",
            f.kver
        )]
    );
    assert_eq!(r.errors.len(), 2, "{:?}", r.errors);
    let b = format!("{}: built into Linux {}: not packed", f.builtin, f.kver);
    assert!(r.warnings.contains(&b), "{:?}", r.warnings);
    assert_eq!(
        r.refused
            .iter()
            .map(|(n, _)| n.as_str())
            .collect::<Vec<_>>(),
        vec!["armmod", "oldmod"]
    );
    assert_eq!(packed_modules(&f), vec!["libphy", "mdio_devres", "r8169"]);

    let r = pack(&options(&f, true)).unwrap();
    assert!(r.errors.is_empty(), "{:?}", r.errors);
    assert!(
        r.warnings
            .iter()
            .any(|w| w.starts_with("oldmod: vermagic") && w.ends_with("(--force)"))
    );
    assert!(
        r.warnings
            .iter()
            .any(|w| w.starts_with("armmod: built for aarch64"))
    );
    assert!(r.warnings.contains(&b));
    assert_eq!(
        packed_modules(&f),
        vec!["armmod", "libphy", "mdio_devres", "oldmod", "r8169"]
    );
}

#[test]
fn missing_firmware_is_a_warning_or_with_strict_an_error() {
    let Some(f) = fixture("strict") else {
        assert!(std::env::var_os("CI").is_none(), "no cached trees");
        return;
    };
    let mut o = options(&f, true);
    o.load = vec!["r8169".into()];
    let r = pack(&o).unwrap();
    let missing: Vec<&String> = r
        .warnings
        .iter()
        .filter(|w| {
            w.starts_with("r8169: firmware rtl_nic/") && w.contains(" not found (searched ")
        })
        .collect();
    assert!(!missing.is_empty(), "{:?}", r.warnings);
    assert!(r.errors.is_empty(), "{:?}", r.errors);
    let report = fs::read_to_string(f.dir.join("report.txt")).unwrap();
    assert_eq!(
        report
            .lines()
            .filter(|l| l.starts_with("firmware r8169 ") && l.ends_with(": missing"))
            .count(),
        missing.len()
    );
    o.strict = true;
    let r = pack(&o).unwrap();
    assert_eq!(
        r.errors
            .iter()
            .filter(|e| e.starts_with("r8169: firmware rtl_nic/"))
            .count(),
        missing.len(),
        "{:?}",
        r.errors
    );
    // A firmware tree with one of the files: that one is packed, as is.
    let name = missing[0]
        .split("firmware ")
        .nth(1)
        .unwrap()
        .split(' ')
        .next()
        .unwrap()
        .to_string();
    let fw = f.dir.join("lib/firmware").join(&name);
    fs::create_dir_all(fw.parent().unwrap()).unwrap();
    fs::write(&fw, b"blob").unwrap();
    o.strict = false;
    let r = pack(&o).unwrap();
    let q = r.firmware.iter().find(|q| q.name == name).unwrap();
    assert_eq!(q.stored, vec![format!("lib/firmware/{name}")]);
    let data = fs::read(f.dir.join("initrd.img")).unwrap();
    let entry = read_image(&data)
        .unwrap()
        .into_iter()
        .find(|e| e.path == q.stored[0])
        .unwrap();
    assert_eq!(entry.data, b"blob");
}
