//! `program` and `hook` in a pack config, end to end on the host's own
//! `ldd`: two programs sharing their libraries pack each library once, a
//! hook lands in its stage's directory with mode 0755, a missing program
//! is one error line naming it, and the same inputs give the same bytes.

use std::fs;
use std::path::PathBuf;

use earlymod_initrd::compress::Compression;
use earlymod_initrd::cpio::read_image;
use earlymod_initrd::pack::{PackOptions, pack};
use earlymod_initrd::program::interpreter;

struct Dir(PathBuf);

impl Drop for Dir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

#[test]
fn programs_share_libraries_and_hooks_go_to_their_stage() {
    // This test binary: dynamically linked on a glibc host.
    let exe = std::env::current_exe().unwrap();
    let Ok(Some(interp)) = interpreter(&fs::read(&exe).unwrap()) else {
        return; // a static build: nothing to share
    };
    let d = Dir(std::env::temp_dir().join(format!("earlymod-programs-{}", std::process::id())));
    let _ = fs::remove_dir_all(&d.0);
    let kver = "0.0-test";
    fs::create_dir_all(d.0.join("lib/modules").join(kver)).unwrap();
    fs::write(d.0.join("lib/modules").join(kver).join("modules.dep"), "").unwrap();
    fs::write(d.0.join("10-open.sh"), "#!/bin/sh\necho hi\n").unwrap();
    let conf = d.0.join("pack.conf");
    fs::write(
        &conf,
        format!(
            "program {0} usr/bin/one\nprogram {0} /usr/sbin/two\n\
             hook pre-mount 10-open.sh\nhook pre-switch 10-open.sh\n\
             program /nonexistent/tool\n",
            exe.display()
        ),
    )
    .unwrap();
    let o = |out: &str| PackOptions {
        root: d.0.clone(),
        configs: vec![conf.clone()],
        earlymod: d.0.join("10-open.sh"),
        compress: Some(Compression::None),
        quiet: true,
        no_firmware: true,
        ..PackOptions::new(kver.into(), d.0.join(out))
    };
    let r = pack(&o("a.img")).unwrap();
    assert_eq!(
        r.errors,
        ["program /nonexistent/tool: No such file or directory (os error 2)"]
    );
    let a = fs::read(d.0.join("a.img")).unwrap();
    pack(&o("b.img")).unwrap();
    assert_eq!(a, fs::read(d.0.join("b.img")).unwrap(), "not reproducible");

    let entries = read_image(&a).unwrap();
    let count = |p: &str| entries.iter().filter(|e| e.path == p).count();
    let mode = |p: &str| {
        entries
            .iter()
            .find(|e| e.path == p)
            .map(|e| e.mode & 0o7777)
    };
    for p in ["usr/bin/one", "usr/sbin/two"] {
        assert_eq!(count(p), 1, "{p}");
        assert_eq!(mode(p), Some(0o755), "{p}");
    }
    let hook = "lib/earlymod/hooks/pre-mount/10-open.sh";
    assert_eq!(mode(hook), Some(0o755));
    assert_eq!(
        mode("lib/earlymod/hooks/pre-switch/10-open.sh"),
        Some(0o755)
    );
    // the interpreter (and libc) once, whatever the number of programs
    assert_eq!(count(&interp[1..]), 1, "{interp}");
    let libc: Vec<&str> = entries
        .iter()
        .map(|e| e.path.as_str())
        .filter(|p| p.rsplit('/').next().unwrap().starts_with("libc.so"))
        .collect();
    assert_eq!(libc.len(), 1, "{libc:?}");
}
