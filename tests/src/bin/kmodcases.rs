//! kmod's own testsuite as a source of cases: the scenarios of kmod's
//! `testsuite/` (test-modprobe, test-modinfo, test-blacklist,
//! test-dependencies, test-weakdep, test-multi-softdep, the
//! kernel-command-line cases and their rootfs-pristine trees) rebuilt as
//! generated fixtures — module files written by `earlymod_tests::elfmod`,
//! indexed by kmod 30's depmod for the kmod 30 run and by kmod 34's depmod
//! (in a separate copy) for the kmod 34 run — plus the neighbouring cases
//! the README of `tests/` lists. Every command runs for earlymod and for
//! kmod with the same arguments inside a private user + mount namespace
//! whose /proc/cmdline is the fixture's; loads are dry runs only.
//!
//! kmodcases --earlymod out/earlymod-static [--only TEXT] [--show N]
//!           [--jobs N] [--keep] [--list]

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};
use std::time::Instant;

use earlymod_tests::elfmod::{self, ModSpec, Signature};
use earlymod_tests::{Outcome, Scratch, default_workers, normalize_stderr, par_map, shell_join};

// ---------------------------------------------------------------------------
// Fixture description

/// A module file of a fixture: where it goes and what it contains.
struct Module {
    /// `M/...` under the module directory, `X/...` under the fixture's
    /// external directory (outside the root).
    path: String,
    spec: ModSpec,
    /// Sign as kbuild's sign-file does (PKCS#7 by `openssl cms`): digest
    /// name, and whether the signer is named by its subject key id instead
    /// of issuer and serial.
    pkcs7: Option<(&'static str, bool)>,
}

/// Builder of a module spec with the fields every real module has.
struct Mb(ModSpec, Option<(&'static str, bool)>);

fn module(name: &str) -> Mb {
    Mb(
        ModSpec {
            modinfo: vec![
                "license=GPL".into(),
                format!("name={}", name.replace('-', "_")),
                "vermagic=4.4.4 SMP preempt mod_unload ".into(),
            ],
            ..ModSpec::default()
        },
        None,
    )
}

impl Mb {
    /// A PKCS#7 signature made with `openssl cms` (digest, by key id).
    fn pkcs7(mut self, digest: &'static str, keyid: bool) -> Self {
        self.1 = Some((digest, keyid));
        self
    }
    fn info(mut self, rec: &str) -> Self {
        self.0.modinfo.push(rec.to_string());
        self
    }
    fn exports(mut self, syms: &[&str]) -> Self {
        self.0.exports.extend(syms.iter().map(|s| s.to_string()));
        self
    }
    fn imports(mut self, syms: &[&str]) -> Self {
        self.0.imports.extend(syms.iter().map(|s| s.to_string()));
        self
    }
    fn crcs(mut self) -> Self {
        self.0.export_crcs = true;
        self
    }
    /// `__versions` with `module_layout` and every import, CRCs from
    /// [`elfmod::crc_of`].
    fn versions(mut self) -> Self {
        let mut v = vec![(0x1234_5678u64, "module_layout".to_string())];
        for i in &self.0.imports {
            v.push((u64::from(elfmod::crc_of(i)), i.clone()));
        }
        self.0.versions = v;
        self
    }
    fn signed(mut self) -> Self {
        self.0.signature = Some(Signature {
            algo: 1,
            hash: 4,
            id_type: 1,
            signer: "earlymod test key".into(),
            key_id: vec![0xde, 0xad, 0xbe, 0xef, 0x01, 0x02, 0x03, 0x04],
            sig: (0u8..40).collect(),
        });
        self
    }
}

/// How kmod 30 relates to kmod 34 for a case.
#[derive(Clone, Copy, PartialEq, Eq)]
enum K30 {
    /// Both must equal earlymod.
    Same,
    /// kmod 30 behaves differently; earlymod follows kmod 34.
    Differs(&'static str),
    /// The two depmods index the tree differently; earlymod must answer
    /// like each kmod over its own index.
    Depmod(&'static str),
}

struct Case {
    tool: &'static str,
    args: Vec<String>,
    /// Replaces the fixture's /proc/cmdline.
    cmdline: Option<String>,
    cwd: Option<String>,
    k30: K30,
    /// earlymod differs from both kmods on purpose, as its README says.
    divergence: Option<&'static str>,
}

impl Case {
    fn divergence(mut self, why: &'static str) -> Self {
        self.divergence = Some(why);
        self
    }
    fn k30(mut self, why: &'static str) -> Self {
        self.k30 = K30::Differs(why);
        self
    }
    fn depmod30(mut self, why: &'static str) -> Self {
        self.k30 = K30::Depmod(why);
        self
    }
    fn cmdline(mut self, text: &str) -> Self {
        self.cmdline = Some(text.to_string());
        self
    }
    fn cwd(mut self, dir: &str) -> Self {
        self.cwd = Some(dir.to_string());
        self
    }
}

fn sv(args: &[&str]) -> Vec<String> {
    args.iter().map(|s| s.to_string()).collect()
}

/// `modprobe -C {conf} -d {root} -S {kver} ARGS`
fn mp(args: &[&str]) -> Case {
    let mut a = sv(&["-C", "{conf}", "-d", "{root}", "-S", "{kver}"]);
    a.extend(sv(args));
    Case {
        tool: "modprobe",
        args: a,
        cmdline: None,
        cwd: None,
        k30: K30::Same,
        divergence: None,
    }
}

/// `modinfo -b {root} -k {kver} ARGS`
fn mi(args: &[&str]) -> Case {
    let mut a = sv(&["-b", "{root}", "-k", "{kver}"]);
    a.extend(sv(args));
    Case {
        tool: "modinfo",
        args: a,
        cmdline: None,
        cwd: None,
        k30: K30::Same,
        divergence: None,
    }
}

/// The tool with exactly these arguments.
fn raw(tool: &'static str, args: &[&str]) -> Case {
    Case {
        tool,
        args: sv(args),
        cmdline: None,
        cwd: None,
        k30: K30::Same,
        divergence: None,
    }
}

enum Edit {
    Write(String, Vec<u8>),
    Remove(String),
}

struct Fixture {
    group: &'static str,
    name: &'static str,
    kver: &'static str,
    modules: Vec<Module>,
    /// Files written before depmod: `M/` module dir, `C/` modprobe.d
    /// (the `-C` directory), `D/` depmod.d, `R/` root, `X/` external dir.
    files: Vec<(String, Vec<u8>)>,
    /// Changes after depmod (hand-written, emptied or removed indexes).
    after: Vec<Edit>,
    cmdline: String,
    /// Without modules.builtin and modules.builtin.modinfo, as most of
    /// kmod's trees: depmod then writes 0-byte builtin indexes. Otherwise
    /// empty ones are supplied when the fixture has none.
    bare: bool,
    /// kmod 30 writes other messages for the whole fixture (stderr
    /// differences on the kmod 30 run are expected, not warned about).
    k30_stderr: Option<&'static str>,
    /// A fake /sys/module (bind-mounted in the namespace): (name,
    /// initstate or "" for a directory without one, refcnt, holders).
    live: Vec<Live>,
    cases: Vec<Case>,
}

/// One entry of the fake /sys/module.
struct Live {
    name: &'static str,
    initstate: &'static str,
    refcnt: u32,
    holders: &'static [&'static str],
}

const DEFAULT_CMDLINE: &str = "BOOT_IMAGE=/boot/vmlinuz root=/dev/vda1 ro quiet\n";

impl Fixture {
    fn new(group: &'static str, name: &'static str, kver: &'static str) -> Self {
        Fixture {
            group,
            name,
            kver,
            modules: Vec::new(),
            files: Vec::new(),
            after: Vec::new(),
            cmdline: DEFAULT_CMDLINE.into(),
            bare: false,
            k30_stderr: None,
            live: Vec::new(),
            cases: Vec::new(),
        }
    }
    fn live(
        mut self,
        name: &'static str,
        initstate: &'static str,
        refcnt: u32,
        holders: &'static [&'static str],
    ) -> Self {
        self.live.push(Live {
            name,
            initstate,
            refcnt,
            holders,
        });
        self
    }
    fn k30_stderr(mut self, why: &'static str) -> Self {
        self.k30_stderr = Some(why);
        self
    }
    fn bare(mut self) -> Self {
        self.bare = true;
        self
    }
    fn m(mut self, path: &str, b: Mb) -> Self {
        self.modules.push(Module {
            path: path.to_string(),
            spec: b.0,
            pkcs7: b.1,
        });
        self
    }
    fn file(mut self, path: &str, text: &str) -> Self {
        self.files
            .push((path.to_string(), text.as_bytes().to_vec()));
        self
    }
    fn conf(self, name: &str, text: &str) -> Self {
        self.file(&format!("C/{name}"), text)
    }
    fn write_after(mut self, path: &str, data: &[u8]) -> Self {
        self.after
            .push(Edit::Write(path.to_string(), data.to_vec()));
        self
    }
    fn remove_after(mut self, path: &str) -> Self {
        self.after.push(Edit::Remove(path.to_string()));
        self
    }
    fn cmdline(mut self, text: &str) -> Self {
        self.cmdline = format!("{text}\n");
        self
    }
    fn cases(mut self, cases: Vec<Case>) -> Self {
        self.cases.extend(cases);
        self
    }
}

/// A valid index with no keys: header and an empty root node.
const EMPTY_INDEX: &[u8] = &[
    0xb0, 0x07, 0xf4, 0x57, 0x00, 0x02, 0x00, 0x01, 0x00, 0x00, 0x00, 0x0c,
];

// ---------------------------------------------------------------------------
// The scenarios

/// mod-simple, mod-loop-a (needs mod-loop-b's printB), mod-loop-b:
/// kmod's show-depends tree.
fn loop_modules(fx: Fixture) -> Fixture {
    fx.m(
        "M/kernel/mod-simple.ko",
        module("mod-simple")
            .info("author=Earlymod Tests <tests@example.org>")
            .info("description=dummy test module"),
    )
    .m(
        "M/kernel/mod-loop-a.ko",
        module("mod-loop-a")
            .info("depends=mod-loop-b")
            .exports(&["printA"])
            .imports(&["printB"]),
    )
    .m(
        "M/kernel/mod-loop-b.ko",
        module("mod-loop-b").exports(&["printB"]),
    )
}

// One push per scenario reads better than one vec![] of 60 entries.
#[allow(clippy::vec_init_then_push)]
fn fixtures() -> Vec<Fixture> {
    let mut v = Vec::new();

    // test-modprobe: show-depends, show-depends2, show_depends_no_load.
    v.push(
        loop_modules(Fixture::new("show-depends", "show-depends", "4.4.4")).cases(vec![
            mp(&["--show-depends", "mod-loop-a"]),
            mp(&["--show-depends", "mod-simple"]),
            mp(&["-D", "mod_loop_a"]),
            mp(&["-D", "-a", "mod-simple", "mod-loop-a", "mod-loop-b"]),
            mp(&["-n", "-v", "mod-loop-a"]),
            mp(&["-n", "mod-loop-a"]),
            mp(&["-n", "-v", "-a", "mod-loop-b", "mod-loop-a"]),
            mp(&["-n", "-v", "-a", "mod-simple", "mod-missing", "mod-loop-b"]),
            mp(&[
                "--dry-run",
                "--verbose",
                "--all",
                "mod-simple",
                "mod-loop-b",
            ]),
            mp(&["--show-depends", "--quiet", "mod-missing"]),
            mp(&["--resolve-alias", "mod_loop_b"]),
            mp(&["-R", "mod-loop-a"]),
            mp(&["-R", "symbol:printA"]),
            mp(&["-D", "symbol:printB"]),
            mp(&["-R", "symbol:print*"]),
            mp(&["-D", "mod-missing"]),
            mp(&["-n", "-q", "mod-missing"]),
            mp(&["-c"]),
            mp(&["-n", "-v", "--first-time", "mod-simple"]),
            mp(&["-n", "-r", "mod-loop-a"]),
            mp(&["-n", "-v", "-r", "mod-loop-a"]),
            mp(&["-n", "-r", "--first-time", "mod-loop-a"]),
            mp(&["-n", "-r", "-q", "mod-missing"]),
            mp(&["-n", "-r", "mod-missing"]),
            mp(&["-n", "-r", "-a", "mod-loop-a", "mod-simple"]),
        ]),
    );

    // The same tree as kmod ships it: no modules.builtin, so depmod writes
    // 0-byte modules.builtin.bin and modules.builtin.alias.bin.
    v.push(
        loop_modules(Fixture::new("show-depends", "show-depends-bare", "4.4.4"))
            .bare()
            .cases(vec![
                mp(&["--show-depends", "mod-loop-a"]),
                mp(&["--show-depends", "mod-simple"]),
                mp(&["-n", "-v", "mod-loop-a"]),
                mp(&["-R", "mod-simple"]),
                mp(&["-c"]),
                mi(&["-F", "filename", "mod-simple"]),
            ]),
    );

    // test-modprobe show_depends with loaded modules (test-loaded,
    // test-initstate, test-remove): a fake /sys/module in the namespace.
    v.push(
        loop_modules(Fixture::new("loaded", "loaded", "4.4.4"))
            .m("M/kernel/kc-builtin-dir.ko", module("kc-builtin-dir"))
            .m("M/kernel/kc-coming.ko", module("kc-coming"))
            .m(
                "M/kernel/kc-needs-simple.ko",
                module("kc-needs-simple").imports(&["kc_simple_sym"]),
            )
            .m(
                "M/kernel/kc-simple-exp.ko",
                module("kc-simple-exp").exports(&["kc_simple_sym"]),
            )
            .conf(
                "loaded.conf",
                "softdep kc-needs-simple pre: mod-loop-a post: kc-coming\n\
                 install kc-coming /bin/echo installing-coming\n",
            )
            .live("mod_loop_b", "live", 1, &["mod_loop_a"])
            .live("mod_loop_a", "live", 0, &[])
            .live("kc_coming", "coming", 0, &[])
            .live("kc_builtin_dir", "", 0, &[])
            .live("kc_simple_exp", "going", 0, &[])
            .cases(vec![
                mp(&["--show-depends", "mod-loop-a"]),
                mp(&["-n", "-v", "mod-loop-a"]),
                mp(&["-n", "-v", "mod-loop-b"]),
                mp(&["-n", "-v", "--first-time", "mod-loop-a"]),
                mp(&["-n", "-v", "--first-time", "mod-loop-b"]),
                mp(&["-n", "-v", "kc-coming"]),
                mp(&["-n", "-v", "kc-builtin-dir"]),
                mp(&["-n", "-v", "kc-simple-exp"]),
                mp(&["-n", "-v", "kc-needs-simple"]),
                mp(&["-D", "kc-needs-simple"]),
                mp(&["-n", "-v", "mod-simple"]),
                mp(&["-n", "-v", "-r", "mod-loop-a"]),
                mp(&["-n", "-v", "-r", "mod-loop-b"]),
                mp(&["-n", "-v", "-r", "-a", "mod-loop-a", "mod-loop-b"]),
                mp(&["-n", "-v", "-r", "--first-time", "mod-simple"]),
                mp(&["-n", "-v", "-r", "kc-coming"]),
                mp(&["-n", "-v", "-r", "kc-builtin-dir"]),
            ]),
    );

    // test-dependencies: a module depending on three in other directories;
    // chains, a diamond, and modules.order listing them in reverse.
    v.push(
        Fixture::new("dependencies", "dependencies", "4.0.20-kmod")
            .m(
                "M/kernel/fs/foo/mod-foo-b.ko",
                module("mod-foo-b").exports(&["print_fooB"]),
            )
            .m(
                "M/kernel/mod-foo-c.ko",
                module("mod-foo-c").exports(&["print_fooC"]),
            )
            .m(
                "M/kernel/lib/mod-foo-a.ko",
                module("mod-foo-a").exports(&["print_fooA"]),
            )
            .m(
                "M/kernel/fs/mod-foo.ko",
                module("mod-foo")
                    .info("depends=mod-foo-b,mod-foo-a,mod-foo-c")
                    .imports(&["print_fooA", "print_fooB", "print_fooC"]),
            )
            .m(
                "M/kernel/chain/kc-chain-4.ko",
                module("kc-chain-4").exports(&["kc_c4"]),
            )
            .m(
                "M/kernel/chain/kc-chain-3.ko",
                module("kc-chain-3").exports(&["kc_c3"]).imports(&["kc_c4"]),
            )
            .m(
                "M/kernel/chain/kc-chain-2.ko",
                module("kc-chain-2").exports(&["kc_c2"]).imports(&["kc_c3"]),
            )
            .m(
                "M/kernel/chain/kc-chain-1.ko",
                module("kc-chain-1").imports(&["kc_c2"]),
            )
            .m(
                "M/kernel/dia/kc-dia-bottom.ko",
                module("kc-dia-bottom").exports(&["kc_bottom"]),
            )
            .m(
                "M/kernel/dia/kc-dia-left.ko",
                module("kc-dia-left")
                    .exports(&["kc_left"])
                    .imports(&["kc_bottom"]),
            )
            .m(
                "M/kernel/dia/kc-dia-right.ko",
                module("kc-dia-right")
                    .exports(&["kc_right"])
                    .imports(&["kc_bottom"]),
            )
            .m(
                "M/kernel/dia/kc-dia-top.ko",
                module("kc-dia-top")
                    .imports(&["kc_left", "kc_right", "kc_bottom"])
                    .info("alias=kc-shared-alias"),
            )
            .m(
                "M/kernel/dia/kc-dia-other.ko",
                module("kc-dia-other")
                    .imports(&["kc_right"])
                    .info("alias=kc-shared-alias")
                    .info("alias=kc-glob-*"),
            )
            .file(
                "M/modules.order",
                "kernel/dia/kc-dia-other.ko\nkernel/dia/kc-dia-top.ko\n\
                 kernel/dia/kc-dia-right.ko\nkernel/dia/kc-dia-left.ko\n\
                 kernel/dia/kc-dia-bottom.ko\nkernel/chain/kc-chain-1.ko\n\
                 kernel/chain/kc-chain-2.ko\nkernel/chain/kc-chain-3.ko\n\
                 kernel/chain/kc-chain-4.ko\nkernel/fs/mod-foo.ko\n",
            )
            .cases(vec![
                mp(&["-D", "mod-foo"]),
                mp(&["-n", "-v", "mod-foo"]),
                mp(&["-D", "kc-chain-1"]),
                mp(&["-D", "kc-chain-3"]),
                mp(&["-n", "-v", "kc-chain-1"]),
                mp(&["-D", "kc-dia-top"]),
                mp(&["-n", "-v", "kc-dia-top"]),
                mp(&["-D", "-a", "kc-dia-other", "kc-dia-top"]),
                mp(&["-R", "kc-shared-alias"]),
                mp(&["-D", "kc-shared-alias"]),
                mp(&["-n", "-v", "kc-shared-alias"]),
                mp(&["-R", "kc-glob-anything"]),
                mp(&["-R", "symbol:kc_bottom"]),
                mp(&["-c"]),
                mi(&["-F", "depends", "mod-foo"]),
                mi(&["-F", "depends", "kc-dia-top"]),
                mi(&["kc-shared-alias"]),
                mi(&["-F", "name", "kc-shared-alias"]),
            ]),
    );

    // test-modprobe softdep-loop and test-multi-softdep; softdeps to
    // nothing, pre loops, softdeps from the module's own .modinfo.
    v.push(
        loop_modules(Fixture::new("softdep", "softdep-loop", "4.4.4"))
            .conf("dumb-softdep.conf", "softdep mod-loop-b post: mod-loop-a\n")
            .cases(vec![
                mp(&["-n", "-v", "mod-loop-b"]),
                mp(&["-D", "mod-loop-b"]),
                mp(&["-D", "mod-loop-a"]),
                mp(&["-n", "-v", "mod-loop-a"]),
                mp(&["-c"]),
            ]),
    );
    v.push(
        Fixture::new("softdep", "multi-softdep", "4.4.4")
            .m("M/kernel/mod-foo-b.ko", module("mod-foo-b"))
            .m("M/kernel/mod-foo-c.ko", module("mod-foo-c"))
            .m("M/kernel/mod-foo-a.ko", module("mod-foo-a"))
            .m("M/kernel/mod-softdep-b.ko", module("mod-softdep-b"))
            .m("M/kernel/mod-softdep-a.ko", module("mod-softdep-a"))
            .m("M/kernel/kc-pre-x.ko", module("kc-pre-x"))
            .m("M/kernel/kc-pre-y.ko", module("kc-pre-y"))
            .m(
                "M/kernel/kc-self-softdep.ko",
                module("kc-self-softdep").info("softdep=pre: mod-foo-a post: mod-foo-c"),
            )
            .conf(
                "dumb-softdep.conf",
                "softdep\tmod-softdep-a\tpre: mod-foo-a\nsoftdep\tmod-softdep-a\tpre: mod-foo-b\n\
                 softdep\tmod-softdep-a\tpost: mod-foo-c\nsoftdep\tmod-softdep-b\tpre: mod-foo-a\n",
            )
            .conf(
                "dumb-softdep2.conf",
                "softdep\tmod-softdep-b\tpost: mod-foo-b mod-foo-c\n\
                 softdep kc-pre-x pre: kc-pre-y\nsoftdep kc-pre-y pre: kc-pre-x\n\
                 softdep mod-simple pre: kc-nothing post: kc-nothing-either\n\
                 softdep mod-foo-a pre: kc-nothing mod-foo-b post: mod-foo-c kc-gone\n",
            )
            .cases(vec![
                mp(&["-n", "-v", "mod-softdep-a"]),
                mp(&["-D", "mod-softdep-a"]),
                mp(&["-n", "-v", "mod-softdep-b"]),
                mp(&["-D", "mod-softdep-b"]),
                mp(&["-n", "-v", "kc-pre-x"]),
                mp(&["-D", "kc-pre-y"]),
                mp(&["-n", "-v", "mod-foo-a"]),
                mp(&["-D", "mod-foo-a"]),
                mp(&["-n", "-v", "mod-simple"]),
                mp(&["-D", "kc-self-softdep"]),
                mp(&["-n", "-v", "kc-self-softdep"]),
                mp(&["-c"]),
                mi(&["-F", "softdep", "kc-self-softdep"]),
            ]),
    );

    // test-weakdep / weakdep-loop: weakdeps are printed by -c, never loaded.
    v.push(
        loop_modules(Fixture::new("weakdep", "weakdep", "4.4.4"))
            .k30_stderr("kmod 30 rejects weakdep lines: 'ignoring bad line starting with weakdep'")
            .m(
                "M/kernel/mod-weakdep.ko",
                module("mod-weakdep").info("weakdep=mod-simple"),
            )
            .conf(
                "dumb-weakdep.conf",
                "weakdep mod-loop-a \t\nweakdep mod-loop-b mod-loop-a mod-simple\n",
            )
            .cases(vec![
                mp(&["-n", "-v", "mod-loop-b"]),
                mp(&["-D", "mod-loop-b"]),
                mp(&["-n", "-v", "mod-weakdep"]),
                mp(&["-D", "mod-weakdep"]),
                mp(&["-c"]).k30("kmod 30 knows no weakdep: no weakdep lines in -c"),
                mi(&["-F", "weakdep", "mod-weakdep"]),
            ]),
    );

    // test-modprobe install-cmd-loop; install/remove commands and -i.
    v.push(
        loop_modules(Fixture::new("install", "install-cmd-loop", "4.4.4"))
            .conf(
                "dumb-instal-loop.conf",
                "install mod-loop-b $MODPROBE --ignore-install mod-loop-b && { $MODPROBE --quiet mod-loop-a ; }\n\
                 install kc-virtual /bin/echo kc-virtual-install $CMDLINE_OPTS\n\
                 options kc-virtual opt=1\n\
                 remove mod-simple /bin/echo removing mod-simple\n\
                 install mod-simple /bin/true\n\
                 install kc-self /sbin/modprobe --ignore-install kc-self\n",
            )
            .cases(vec![
                mp(&["-n", "-v", "mod-loop-a"]),
                mp(&["-D", "mod-loop-a"]),
                mp(&["-n", "-v", "mod-loop-b"]),
                mp(&["-n", "-v", "-i", "mod-loop-a"]),
                mp(&["-D", "-i", "mod-loop-b"]),
                mp(&["-n", "-v", "kc-virtual"]),
                mp(&["-n", "-v", "kc-virtual", "extra=2"]),
                mp(&["-D", "kc-virtual"]),
                mp(&["-R", "kc-virtual"]),
                mp(&["-n", "-v", "-i", "kc-virtual"]),
                mp(&["-n", "-v", "mod-simple"]),
                mp(&["-n", "-v", "--ignore-install", "mod-simple"]),
                mp(&["-n", "-v", "-r", "mod-simple"]),
                mp(&["-n", "-v", "-r", "-i", "mod-simple"]),
                mp(&["-n", "-v", "kc-self"]),
                mp(&["-c"]),
            ]),
    );

    // test-modprobe alias-to-none, test-new-module from_alias; config
    // alias chains and globs.
    v.push(
        loop_modules(Fixture::new("alias", "alias-to-none", "4.4.4"))
            .m(
                "M/kernel/kc-aliased.ko",
                module("kc-aliased")
                    .info("alias=pci:v00001AF4d00001000sv*sd*bc*sc*i*")
                    .info("alias=kc-dev-[0-9]*")
                    .info("alias=kc-dash-alias"),
            )
            .m(
                "M/kernel/kc-aliased-too.ko",
                module("kc-aliased-too").info("alias=pci:v00001AF4d*sv*sd*bc*sc*i*"),
            )
            .conf(
                "bogus.conf",
                "alias mod-simple deaddood\n\
                 alias kc-chain-a kc-chain-b\nalias kc-chain-b mod-loop-b\n\
                 alias kc-glob-* mod-loop-b\nalias kc-glob-x* mod-loop-a\n\
                 alias ext4.* kc-aliased\n\
                 alias kc-to-builtin-none kc-nothing-at-all\n\
                 alias kc_under kc-aliased-too\n",
            )
            .cases(vec![
                mp(&["--show-depends", "--ignore-install", "mod-simple"]),
                mp(&["-R", "mod-simple"]),
                mp(&["-n", "-v", "mod-simple"]),
                mp(&["-D", "deaddood"]),
                mp(&["-R", "kc-chain-a"]),
                mp(&["-D", "kc-chain-a"]),
                mp(&["-R", "kc-chain-b"]),
                mp(&["-R", "kc-glob-xyz"]),
                mp(&["-D", "kc-glob-xyz"]),
                mp(&["-R", "kc-glob-abc"]),
                mp(&["-R", "ext4.foo"]),
                mp(&["-D", "ext4.foo"]),
                mp(&["-R", "kc-to-builtin-none"]),
                mp(&["-n", "-v", "kc-to-builtin-none"]),
                mp(&["-R", "kc-under"]),
                mp(&["-R", "kc_under"]),
                mp(&[
                    "-R",
                    "pci:v00001AF4d00001000sv00001AF4sd00000001bc02sc00i00",
                ]),
                mp(&[
                    "-D",
                    "pci:v00001AF4d00001000sv00001AF4sd00000001bc02sc00i00",
                ]),
                mp(&[
                    "-R",
                    "pci:v00001AF4d00001001sv00001AF4sd00000001bc02sc00i00",
                ]),
                mp(&["-R", "kc-dev-7"]),
                mp(&["-R", "kc_dash_alias"]),
                mp(&["-R", "kc-dash-alias"]),
                mp(&["-c"]),
                mi(&["-F", "alias", "kc-aliased"]),
                mi(&["-F", "filename", "kc-dev-7"]),
                mi(&["mod-simple"]),
            ]),
    );

    // test-modprobe builtin, test-modinfo builtin: builtin-only names,
    // builtin aliases (modules.builtin.modinfo), a softdep on a builtin.
    let builtin_modinfo: &[&str] = &[
        "kc_unix.license=GPL",
        "kc_unix.alias=net-pf-1",
        "kc_unix.alias=kc-unix-alias",
        "kc_uncore.license=GPL",
        "kc_uncore.file=arch/x86/events/intel/kc-uncore",
        "kc_uncore.description=Support for Intel uncore performance events",
        "kc_uncore.parm=uncore_no_discover:Don't enable the Intel uncore PerfMon discovery mechanism (default: enable the discovery mechanism).",
        "kc_uncore.parmtype=uncore_no_discover:bool",
        "kc_rapl.license=GPL",
        "kc_rapl.file=arch/x86/events/rapl",
        "kc_rapl.alias=cpu:type:x86,ven*fam*mod*:feature:*01AA*",
        "kc_both.license=GPL",
        "kc_both.alias=kc-both-alias",
    ];
    let mut bmi = Vec::new();
    for r in builtin_modinfo {
        bmi.extend_from_slice(r.as_bytes());
        bmi.push(0);
    }
    let mut builtin = Fixture::new("builtin", "builtin", "4.4.4")
        .m("M/kernel/mod-simple.ko", module("mod-simple"))
        .m(
            "M/kernel/kc-user.ko",
            module("kc-user").info("alias=kc-both-alias"),
        )
        .file(
            "M/modules.builtin",
            "kernel/net/unix/kc-unix.ko\narch/x86/events/intel/kc-uncore.ko\n\
             arch/x86/events/kc-rapl.ko\nkernel/kc-both.ko\n",
        )
        .conf(
            "builtin.conf",
            "softdep mod-simple pre: kc-unix post: kc_uncore\n",
        );
    builtin
        .files
        .push(("M/modules.builtin.modinfo".into(), bmi));
    v.push(builtin.cases(vec![
        mp(&["-n", "kc-unix"]),
        mp(&["-n", "-v", "kc-unix"]),
        mp(&["-R", "kc-unix"]),
        mp(&["-D", "kc-unix"]),
        mp(&["-D", "kc_uncore"]),
        mp(&["-R", "net-pf-1"]),
        mp(&["-D", "net-pf-1"]),
        mp(&["-n", "-v", "net-pf-1"]),
        mp(&["-R", "kc-unix-alias"]),
        mp(&["-R", "cpu:type:x86,ven0000fam0006mod003F:feature:,01AA,"]),
        mp(&["-R", "kc-both-alias"]),
        mp(&["-D", "kc-both-alias"]),
        mp(&["-n", "-v", "mod-simple"]),
        mp(&["-D", "mod-simple"]),
        mp(&["-n", "-v", "-r", "kc-unix"]),
        mp(&["-c"]),
        mi(&["kc_uncore"]),
        mi(&["kc-uncore"]),
        mi(&["kc-unix"]),
        mi(&["-F", "parm", "kc_uncore"]),
        mi(&["-p", "kc_uncore"]),
        mi(&["-F", "filename", "kc_unix"]),
        mi(&["net-pf-1"]),
        mi(&["kc-both-alias"]),
        mi(&["-0", "kc_uncore"]),
    ]));

    // test-modprobe external, test-modinfo external: modules outside the
    // module directory (depmod.d `external`, absolute paths in modules.dep);
    // module-from-abspath / -relpath (kmod >= 33).
    v.push(
        Fixture::new("external", "external", "4.4.4")
            .k30_stderr("kmod 30 takes a path as a module name: other messages")
            .m(
                "X/mod-ext-simple.ko",
                module("mod-ext-simple").exports(&["kc_ext_sym"]),
            )
            .m(
                "M/kernel/kc-uses-ext.ko",
                module("kc-uses-ext").imports(&["kc_ext_sym"]),
            )
            .m("M/kernel/mod-simple.ko", module("mod-simple"))
            .file("D/external.conf", "external * {ext}\n")
            .cases(vec![
                mp(&["-n", "-v", "mod-ext-simple"]),
                mp(&["-D", "mod-ext-simple"]),
                mp(&["-D", "kc-uses-ext"]),
                mp(&["-n", "-v", "kc-uses-ext"]),
                mp(&["-R", "symbol:kc_ext_sym"]),
                mi(&["-F", "filename", "mod-ext-simple"]),
                mi(&["mod-ext-simple"]),
                mp(&["-n", "-v", "{ext}/mod-ext-simple.ko"])
                    .k30("kmod 30 takes a path as a module name (kmod 33 loads module files)"),
                mp(&["-D", "{moddir}/kernel/mod-simple.ko"])
                    .k30("kmod 30 takes a path as a module name (kmod 33 loads module files)"),
                mp(&["-n", "-v", "{moddir}/kernel/kc-uses-ext.ko"])
                    .k30("kmod 30 takes a path as a module name (kmod 33 loads module files)"),
                mp(&["-n", "-v", "./mod-simple.ko"])
                    .cwd("{moddir}/kernel")
                    .k30("kmod 30 takes a path as a module name (kmod 33 loads module files)"),
                mp(&["-n", "-v", "{ext}/kc-absent.ko"]),
                mi(&["{ext}/mod-ext-simple.ko"]),
                mi(&["-F", "name", "./mod-simple.ko"]).cwd("{moddir}/kernel"),
            ]),
    );

    // test-modinfo: fields of one module by path and by name, signatures,
    // the one-letter flags, -F, -0, -m, parameters, long keys.
    let rich = module("mod-simple")
        .info("author=Lucas De Marchi <lucas.demarchi@intel.com>")
        .info("author=Second Author <second@example.org>")
        .info("description=dummy test module")
        .info("parm=debug:enable debugging")
        .info("parmtype=debug:bool")
        .info("parmtype=count:int")
        .info("parm=nodesc_type_only_missing:only a description")
        .info("parm=count:how many")
        .info("parm=bad_param_without_colon")
        .info("alias=kc-rich-alias")
        .info("srcversion=0123456789ABCDEF012345")
        .info("retpoline=Y")
        .info("intree=Y")
        .info("empty_value=")
        .info("depends=");
    v.push(
        Fixture::new("modinfo", "modinfo", "4.4.4")
            .m("M/kernel/mod-simple.ko", rich.signed())
            .m(
                "M/kernel/mod-unsigned.ko",
                module("mod-unsigned").info("description=no signature"),
            )
            .m(
                "X/mod-path-only.ko",
                module("mod-path-only").info("author=Path Only"),
            )
            .m(
                "M/kernel/kc-pkcs7-sha256.ko",
                module("kc-pkcs7-sha256").pkcs7("sha256", false),
            )
            .m(
                "M/kernel/kc-pkcs7-sha512.ko",
                module("kc-pkcs7-sha512").pkcs7("sha512", false),
            )
            .m(
                "M/kernel/kc-pkcs7-sha1.ko",
                module("kc-pkcs7-sha1").pkcs7("sha1", false),
            )
            .m(
                "M/kernel/kc-pkcs7-keyid.ko",
                module("kc-pkcs7-keyid").pkcs7("sha256", true),
            )
            .m(
                "M/kernel/kc-pkcs7-xz.ko.xz",
                module("kc-pkcs7-xz").pkcs7("sha384", false),
            )
            .m(
                "M/kernel/kc-longkey.ko",
                module("kc-longkey")
                    .info("x_a_very_long_field_name=long key value")
                    .info("exactly_15_char=fifteen")
                    .info("sixteen_chars_xx=sixteen"),
            )
            .cases(vec![
                mi(&["-F", "filename", "{moddir}/kernel/mod-simple.ko"]),
                mi(&["-F", "author", "{moddir}/kernel/mod-simple.ko"]),
                mi(&["-F", "license", "{moddir}/kernel/mod-simple.ko"]),
                mi(&["-F", "description", "{moddir}/kernel/mod-simple.ko"]),
                mi(&["-F", "parm", "{moddir}/kernel/mod-simple.ko"]),
                mi(&["-F", "depends", "{moddir}/kernel/mod-simple.ko"]),
                mi(&["-F", "signer", "{moddir}/kernel/mod-simple.ko"]),
                mi(&["-F", "sig_key", "{moddir}/kernel/mod-simple.ko"]),
                mi(&["-F", "sig_hashalgo", "{moddir}/kernel/mod-simple.ko"]),
                mi(&["-F", "sig_id", "{moddir}/kernel/mod-simple.ko"]),
                mi(&["-F", "signature", "{moddir}/kernel/mod-simple.ko"]),
                mi(&["kc-pkcs7-sha256"]),
                mi(&["kc-pkcs7-sha512"]),
                mi(&["kc-pkcs7-sha1"]),
                mi(&["kc-pkcs7-keyid"]),
                mi(&["kc-pkcs7-xz"]),
                mi(&["-F", "signer", "kc-pkcs7-sha256"]),
                mi(&["-F", "sig_key", "kc-pkcs7-sha256"]),
                mi(&["-F", "sig_hashalgo", "kc-pkcs7-sha512"]),
                mi(&["-F", "signature", "kc-pkcs7-sha1"]),
                mi(&["-F", "sig_id", "kc-pkcs7-keyid"]),
                mi(&["-0", "kc-pkcs7-sha256"]),
                mi(&["-F", "x_a_very_long_field_name", "kc-longkey"]),
                mi(&["kc-longkey"]).k30("kmod 30 pads a key longer than 15 characters with spaces"),
                mi(&["{moddir}/kernel/kc-longkey.ko"])
                    .k30("kmod 30 pads a key longer than 15 characters with spaces"),
                mi(&["-F", "empty_value", "mod-simple"]),
                mi(&["-F", "vermagic", "mod-simple"]),
                mi(&["-F", "name", "mod-simple"]),
                mi(&["-F", "nosuchfield", "mod-simple"]),
                mi(&["mod-simple"]),
                mi(&["{moddir}/kernel/mod-simple.ko"]),
                mi(&["mod-unsigned"]),
                mi(&["-a", "mod-simple"]),
                mi(&["-d", "mod-simple"]),
                mi(&["-l", "mod-simple"]),
                mi(&["-p", "mod-simple"]),
                mi(&["-n", "mod-simple"]),
                mi(&["-0", "-F", "author", "mod-simple"]),
                mi(&["-0", "-p", "mod-simple"]),
                mi(&["-0", "mod-unsigned"]),
                mi(&["-m", "mod-simple"]),
                mi(&["-m", "kc-rich-alias"]),
                mi(&["kc-rich-alias"]),
                mi(&["-F", "filename", "mod-simple", "mod-unsigned"]),
                mi(&["-F", "filename", "mod-missing"]),
                mi(&["mod-missing"]),
                mi(&["{ext}/mod-path-only.ko"]),
                mi(&["-F", "author", "{ext}/mod-path-only.ko"]),
                mi(&["-n", "{ext}/mod-path-only.ko"]),
                mi(&["{ext}/absent.ko"]),
                mi(&["mod-path-only"]),
                mi(&["--field=author", "--null", "mod-simple"]),
                mi(&["-F", "author", "-F", "license", "mod-simple"]),
                mi(&["--author", "--license", "mod-simple"]),
                mi(&["--filename", "--modname", "mod-simple"]),
                raw(
                    "modinfo",
                    &[
                        "--basedir={root}",
                        "--set-version={kver}",
                        "--parameters",
                        "mod-simple",
                    ],
                ),
                raw(
                    "modinfo",
                    &[
                        "--basedir",
                        "{root}",
                        "-k{kver}",
                        "-F",
                        "sig_key",
                        "mod-simple",
                    ],
                ),
            ]),
    );

    // modprobe --show-exports / --show-modversions (__crc_ symbols,
    // __ksymtab_strings, __versions).
    v.push(
        Fixture::new("exports", "show-exports", "4.4.4")
            .m(
                "M/kernel/mod-loop-a.ko",
                module("mod-loop-a")
                    .exports(&["printA", "printA2"])
                    .crcs()
                    .imports(&["printB", "printk"])
                    .versions(),
            )
            .m(
                "M/kernel/mod-loop-b.ko",
                module("mod-loop-b").exports(&["printB"]).versions(),
            )
            .m("M/kernel/mod-simple.ko", module("mod-simple"))
            .cases(vec![
                mp(&["--show-exports", "{moddir}/kernel/mod-loop-a.ko"]),
                mp(&["--show-exports", "mod-loop-b"]),
                mp(&["--show-exports", "mod-loop-a"]),
                mp(&["--show-exports", "mod-simple"]),
                mp(&["--show-modversions", "{moddir}/kernel/mod-loop-a.ko"]),
                mp(&["--show-modversions", "mod-loop-a"]),
                mp(&["--dump-modversions", "mod-loop-b"]),
                mp(&["--show-modversions", "mod-simple"]),
                mp(&["--show-exports", "mod-missing"]),
                mp(&["-D", "mod-loop-a"]),
                mp(&["-R", "symbol:printA2"]),
                mp(&["-n", "-v", "--force-modversion", "mod-loop-a"]),
            ]),
    );

    // test-modprobe module-param-kcmdline 1..9 and option quoting.
    let kc = |name: &'static str, cmdline: &'static str| {
        loop_modules(Fixture::new("cmdline", name, "4.4.4")).cmdline(cmdline)
    };
    v.push(
        kc(
            "kcmdline1",
            "initrd=\\initramfs-linux.img mod_simple.foo mod_simple.bar=1 root=/dev/sda2 rootfstype=ext4 add_efi_memmap quiet rw",
        )
        .cases(vec![
            mp(&["--show-depends", "mod-simple"]),
            mp(&["-n", "-v", "mod-simple"]),
            mp(&["-n", "-v", "mod-simple", "baz=2"]),
            mp(&["-c"]),
        ]),
    );
    for (name, line) in [
        ("kcmdline2", "psmouse.foo psmouse.bar=1 quiet rw"),
        (
            "kcmdline3",
            "BOOT_IMAGE=/boot/vmlinuz-3.12.12-57.g5f654cf-default initrd=\\initramfs-linux.img psmouse.foo psmouse.bar=1 root=/dev/sda2 rootfstype=ext4 add_efi_memmap quiet rw",
        ),
        ("kcmdline4", "testmodule.testparam=1.5G"),
        (
            "kcmdline5",
            "psmouse.foo psmouse.bar=1 psmouse.foobar=\"test 1\" psmouse.\"invalid option\" \" notamodule\" \"noteamodule2 \" notamodule3 quiet rw",
        ),
        (
            "kcmdline6",
            "psmouse.foo=2 ivrs_acpihid[14:00.5]=AMD0020:00 psmouse.bar=1 psmouse.zinga=test",
        ),
        (
            "kcmdline7",
            "psmouse.foo parport.dyndbg=\"file drivers/parport/ieee1284_ops.c +mpf\" quiet rw",
        ),
        (
            "kcmdline8",
            "psmouse.foo \"parport.dyndbg=file drivers/parport/ieee1284_ops.c +mpf\" quiet rw",
        ),
        (
            "kcmdline9",
            "modprobe.blacklist=foo,bar modprobe.blacklist=foo2 quiet modprobe.blacklist=bar2 rw modprobe.blacklist=foobar",
        ),
    ] {
        v.push(kc(name, line).cases(vec![mp(&["-c"])]));
    }
    v.push(
        Fixture::new("cmdline", "kcmdline-quoting", "4.4.4")
            .m("M/kernel/mod-simple.ko", module("mod-simple"))
            .m("M/kernel/kc-dashed-name.ko", module("kc-dashed-name"))
            .m(
                "M/kernel/kc-black.ko",
                module("kc-black").info("alias=kc-black-alias"),
            )
            .m(
                "M/kernel/kc-black2.ko",
                module("kc-black2").info("alias=kc-black-alias"),
            )
            .cmdline(
                "mod-simple.p=\"a b\" mod_simple.q='c' mod_simple.r=\"x\"y kc-dashed-name.opt=1 kc_dashed_name.two=\"2 2\" modprobe.blacklist=kc-black modprobe.blacklist=kc_black2,mod-simple quiet",
            )
            .cases(vec![
                mp(&["-n", "-v", "mod-simple"]),
                mp(&["-D", "mod-simple"]),
                mp(&["-n", "-v", "mod-simple", "s=\"x y\"", "t=1"]),
                mp(&["-n", "-v", "kc-dashed-name"]),
                mp(&["-n", "-v", "kc-black-alias"]),
                mp(&["-n", "-v", "-b", "kc-black-alias"]),
                mp(&["-D", "-b", "kc-black-alias"]),
                mp(&["-R", "-b", "kc-black-alias"]),
                mp(&["-n", "-v", "-b", "kc-black"]),
                mp(&["-c"]),
            ]),
    );

    // Options from modprobe.d, the command line and aliases.
    v.push(
        loop_modules(Fixture::new("options", "options", "4.4.4"))
            .conf(
                "options.conf",
                "options mod-simple a=\"x y\" b=1\noptions mod_simple c='q'\n\
                 options mod-loop-b dep_opt=1\n\
                 alias kc-opt-alias mod-simple\noptions kc-opt-alias via_alias=1\n\
                 options mod-loop-a   spaced=1\t tabbed=2  \n\
                 options mod-simple d=a\\\n   e=continued\n",
            )
            .conf(
                "second.conf",
                "options mod-simple second=\"2 2\"\ninstall mod-loop-b /bin/echo second $CMDLINE_OPTS\n",
            )
            .cmdline("mod_simple.k=from_cmdline mod-loop-b.kb=\"c d\"")
            .cases(vec![
                mp(&["-n", "-v", "mod-simple"]),
                mp(&["-D", "mod-simple"]),
                mp(&["-n", "-v", "mod-simple", "z=\"last one\"", "w"]),
                mp(&["-n", "-v", "mod-loop-a"]),
                mp(&["-D", "mod-loop-a"]),
                mp(&["-n", "-v", "kc-opt-alias"]),
                mp(&["-n", "-v", "kc-opt-alias", "cl=1"]),
                mp(&["-n", "-v", "-a", "mod-simple", "mod-loop-b"]),
                mp(&["-c"]),
                raw(
                    "modprobe",
                    &[
                        "-C",
                        "{conf}/options.conf",
                        "-C",
                        "{conf}/second.conf",
                        "-d",
                        "{root}",
                        "-S",
                        "{kver}",
                        "-n",
                        "-v",
                        "mod-simple",
                    ],
                ),
                raw(
                    "modprobe",
                    &[
                        "--config={conf}/second.conf",
                        "--dirname={root}",
                        "--set-version={kver}",
                        "--dry-run",
                        "--verbose",
                        "mod-simple",
                        "cl=\"quoted value\"",
                    ],
                ),
            ]),
    );

    // test-blacklist: blacklist lines in modprobe.d and, with -b, for
    // targets reached through an alias.
    v.push(
        Fixture::new("blacklist", "blacklist", "4.4.4")
            .m(
                "M/kernel/kc-pcspkr.ko",
                module("kc-pcspkr").info("alias=platform:kc-pcspkr"),
            )
            .m(
                "M/kernel/kc-pcspkr2.ko",
                module("kc-pcspkr2").info("alias=platform:kc-pcspkr"),
            )
            .m(
                "M/kernel/kc-floppy.ko",
                module("kc-floppy")
                    .info("alias=block-major-2-*")
                    .exports(&["kc_floppy_sym"]),
            )
            .m(
                "M/kernel/kc-ext4.ko",
                module("kc-ext4")
                    .imports(&["kc_floppy_sym"])
                    .info("alias=fs-kc-ext4"),
            )
            .conf(
                "modprobe.conf",
                "blacklist kc-floppy\nblacklist kc_pcspkr\n",
            )
            .cases(vec![
                mp(&["-n", "-v", "kc-floppy"]),
                mp(&["-n", "-v", "-b", "kc-floppy"]),
                mp(&["-n", "-v", "-b", "block-major-2-0"]),
                mp(&["-n", "-v", "block-major-2-0"]),
                mp(&["-D", "-b", "block-major-2-0"]),
                mp(&["-n", "-v", "-b", "platform:kc-pcspkr"]),
                mp(&["-R", "-b", "platform:kc-pcspkr"]),
                mp(&["-D", "-b", "platform:kc-pcspkr"]),
                mp(&["-n", "-v", "-b", "fs-kc-ext4"]),
                mp(&["-n", "-v", "-b", "-a", "kc-pcspkr", "kc-pcspkr2", "kc-ext4"]),
                mp(&["-c"]),
                mp(&["-c"]).cmdline("modprobe.blacklist=kc-pcspkr2 modprobe.blacklist=kc_ext4,x"),
                mp(&["-n", "-v", "-b", "platform:kc-pcspkr"])
                    .cmdline("modprobe.blacklist=kc-pcspkr2 modprobe.blacklist=kc_ext4,x"),
                mp(&["-n", "-v", "-b", "fs-kc-ext4"])
                    .cmdline("modprobe.blacklist=kc-pcspkr2 modprobe.blacklist=kc_ext4,x"),
                mp(&["-n", "-v", "-b", "platform:kc-pcspkr"])
                    .cmdline("modprobe.blacklist=kc-pcspkr2,kc-ext4"),
            ]),
    );

    // Force flags and old-kernel trees (test-modprobe force*,
    // oldkernel*): dry runs only.
    for (name, kver) in [("force", "4.4.4"), ("oldkernel", "3.3.3")] {
        v.push(
            Fixture::new("force", name, kver)
                .m(
                    "M/kernel/mod-simple.ko",
                    module("mod-simple").imports(&["printk"]).versions(),
                )
                .cases(vec![
                    mp(&["-n", "-v", "--force", "mod-simple"]),
                    mp(&["-n", "-v", "-f", "mod-simple"]),
                    mp(&["-n", "-v", "--force-modversion", "mod-simple"]),
                    mp(&["-n", "-v", "--force-vermagic", "mod-simple"]),
                    mp(&["-D", "--force", "mod-simple"]),
                    mp(&["-n", "-v", "mod-simple"]),
                    mi(&["-F", "vermagic", "mod-simple"]),
                ]),
        );
    }

    // Combinations the testsuite touches one at a time: softdeps on
    // blacklisted, builtin and install-command modules, config aliases to
    // builtins, options and install commands of dependencies, -i with
    // softdeps, dashes and underscores in file names.
    let mut combos = loop_modules(Fixture::new("combos", "combos", "4.4.4"))
        .m(
            "M/kernel/kc-top.ko",
            module("kc-top")
                .imports(&["printA"])
                .info("alias=kc-top-alias")
                .info("alias=kc-two-*"),
        )
        .m(
            "M/kernel/kc-two.ko",
            module("kc-two").info("alias=kc-two-*"),
        )
        .m("M/kernel/kc-soft-black.ko", module("kc-soft-black"))
        .m("M/kernel/kc_dash-mix.ko", module("kc_dash-mix"))
        .file("M/modules.builtin", "kernel/kc-bi.ko\n")
        .conf(
            "combos.conf",
            "softdep kc-top pre: kc-soft-black kc-bi post: mod-simple kc-nowhere\n\
             blacklist kc-soft-black\nblacklist kc-two\n\
             alias kc-cfg-builtin kc-bi\nalias kc-cfg-mixed kc-bi\nalias kc-cfg-mixed mod-simple\n\
             install mod-loop-b /bin/echo dep-install $CMDLINE_OPTS\n\
             options mod-loop-b from_conf=1\noptions kc-top top=1\n\
             options kc-dash_mix d=1\n",
        );
    combos.files.push((
        "M/modules.builtin.modinfo".into(),
        b"kc_bi.license=GPL\0kc_bi.alias=kc-bi-alias\0".to_vec(),
    ));
    v.push(combos.cases(vec![
        mp(&["-n", "-v", "kc-top"]),
        mp(&["-D", "kc-top"]),
        mp(&["-n", "-v", "-b", "kc-top-alias"]),
        mp(&["-n", "-v", "-i", "kc-top"]),
        mp(&["-n", "-v", "kc-top", "cl=2"]),
        mp(&["-n", "-v", "-b", "kc-two-x"]),
        mp(&["-n", "-v", "kc-two-x"]),
        mp(&["-R", "kc-two-x"]),
        mp(&["-R", "-b", "kc-two-x"]),
        mp(&["-n", "-v", "kc-cfg-builtin"]),
        mp(&["-R", "kc-cfg-builtin"]),
        mp(&["-D", "kc-cfg-mixed"]),
        mp(&["-n", "-v", "kc-cfg-mixed"]),
        mp(&["-n", "-v", "kc-bi-alias"]),
        mp(&["-n", "-v", "--first-time", "kc-bi"]),
        mp(&["-n", "-v", "mod-loop-a"]),
        mp(&["-n", "-v", "mod-loop-a", "x=1"]),
        mp(&["-n", "-v", "-i", "mod-loop-a"]),
        mp(&["-n", "-v", "-a", "-q", "mod-loop-b", "mod-missing", "kc-bi"]),
        mp(&["-n", "-v", "kc-dash-mix"]),
        mp(&["-n", "-v", "kc_dash_mix"]),
        mp(&["-D", "kc-dash_mix"]),
        mp(&["-R", "kc_dash-mix"]),
        mp(&["-c"]),
        mi(&["-F", "filename", "kc-dash-mix"]),
        mi(&["kc-bi-alias"]),
        mi(&["kc-two-x"]),
    ]));

    // Compressed module files (xz as Debian ships them, zstd): depmod,
    // modprobe and modinfo read them through kmod's decompressors.
    v.push(
        Fixture::new("compressed", "compressed", "4.4.4")
            .m(
                "M/kernel/mod-xz-base.ko.xz",
                module("mod-xz-base")
                    .exports(&["kc_xz_base"])
                    .crcs()
                    .info("alias=kc-xz-alias"),
            )
            .m(
                "M/kernel/mod-zst-user.ko.zst",
                module("mod-zst-user")
                    .imports(&["kc_xz_base"])
                    .versions()
                    .info("depends=mod-xz-base")
                    .info("softdep=post: mod-plain"),
            )
            .m(
                "M/kernel/mod-plain.ko",
                module("mod-plain").imports(&["kc_xz_base"]),
            )
            .m(
                "M/kernel/mod-zst-nosize.ko.zst",
                module("mod-zst-nosize").imports(&["kc_xz_base"]),
            )
            .cases(vec![
                mp(&["-D", "mod-zst-user"]),
                mp(&["-n", "-v", "mod-zst-user"]),
                mp(&["-D", "mod-plain"]),
                mp(&["-R", "kc-xz-alias"]),
                mp(&["-D", "kc-xz-alias"]),
                mp(&["-R", "symbol:kc_xz_base"]),
                mp(&["-c"]),
                mp(&["--show-exports", "{moddir}/kernel/mod-xz-base.ko.xz"]),
                mp(&["--show-modversions", "{moddir}/kernel/mod-zst-user.ko.zst"]),
                mi(&["mod-xz-base"]),
                mi(&["mod-zst-user"]),
                mi(&["-F", "filename", "mod-zst-user"]),
                mi(&["{moddir}/kernel/mod-zst-user.ko.zst"]),
                mi(&["-F", "depends", "{moddir}/kernel/mod-xz-base.ko.xz"]),
                mp(&["-D", "mod-zst-nosize"])
                    .depmod30("depmod 34 cannot read the module, so its modules.dep line is empty"),
                mi(&["mod-zst-nosize"]).k30(
                    "kmod 34 refuses a zstd frame without its content size; kmod 30 streams it",
                ),
                mp(&[
                    "--show-modversions",
                    "{moddir}/kernel/mod-zst-nosize.ko.zst",
                ])
                .k30("kmod 34 refuses a zstd frame without its content size; kmod 30 streams it"),
            ]),
    );

    // Index files: empty (12 bytes), 0 bytes and absent, each kind; kmod's
    // trees ship 0-byte modules.builtin.bin and builtin.alias.bin.
    let index_cases = || {
        vec![
            mp(&["-D", "mod-loop-a"]),
            mp(&["-n", "-v", "mod-loop-a"]),
            mp(&["-R", "kc-idx-alias"]),
            mp(&["-D", "kc-idx-alias"]),
            mp(&["-R", "symbol:printB"]),
            mp(&["-n", "-v", "kc-idx-builtin"]),
            mp(&["-R", "kc-idx-builtin"]),
            mp(&["-R", "kc-idx-builtin-alias"]),
            mp(&["-D", "mod-missing"]),
            mp(&["-c"]),
            mi(&["-F", "filename", "mod-loop-a"]),
            mi(&["-F", "filename", "kc-idx-alias"]),
            mi(&["kc-idx-alias"]),
            mp(&["-n", "-v", "kc-idx-alias"]),
            mi(&["kc-idx-builtin"]),
        ]
    };
    let index_tree = |name: &'static str| {
        let mut fx = loop_modules(Fixture::new("indexes", name, "4.4.4"))
            .m(
                "M/kernel/kc-idx.ko",
                module("kc-idx").info("alias=kc-idx-alias"),
            )
            .file("M/modules.builtin", "kernel/kc-idx-builtin.ko\n");
        fx.files.push((
            "M/modules.builtin.modinfo".into(),
            b"kc_idx_builtin.license=GPL\0kc_idx_builtin.alias=kc-idx-builtin-alias\0".to_vec(),
        ));
        fx
    };
    v.push(index_tree("complete").cases(index_cases()));
    let kinds = ["dep", "alias", "symbols", "builtin", "builtin.alias"];
    let names_zero = [
        "zero-dep",
        "zero-alias",
        "zero-symbols",
        "zero-builtin",
        "zero-builtin.alias",
    ];
    let names_empty = [
        "empty-dep",
        "empty-alias",
        "empty-symbols",
        "empty-builtin",
        "empty-builtin.alias",
    ];
    let names_absent = [
        "absent-dep",
        "absent-alias",
        "absent-symbols",
        "absent-builtin",
        "absent-builtin.alias",
    ];
    let names_fallback = [
        "text-only-dep",
        "text-only-alias",
        "text-only-symbols",
        "text-only-builtin",
        "text-only-builtin.alias",
    ];
    let text_of = |k: &str| match k {
        "dep" => Some("M/modules.dep"),
        "alias" => Some("M/modules.alias"),
        "symbols" => Some("M/modules.symbols"),
        "builtin" => Some("M/modules.builtin"),
        _ => None,
    };
    for (i, k) in kinds.iter().enumerate() {
        let bin = format!("M/modules.{k}.bin");
        v.push(
            index_tree(names_zero[i])
                .write_after(&bin, b"")
                .cases(index_cases()),
        );
        v.push(
            index_tree(names_empty[i])
                .write_after(&bin, EMPTY_INDEX)
                .cases(index_cases()),
        );
        let mut absent = index_tree(names_absent[i]).remove_after(&bin);
        if let Some(text) = text_of(k) {
            absent = absent.remove_after(text);
        }
        v.push(absent.cases(index_cases()));
        // Only the .bin absent, the text file still there: earlymod reads
        // the text file, kmod does not (README: "text fallbacks when a
        // .bin is absent").
        if text_of(k).is_some() {
            let why = "earlymod falls back to the text index when the .bin is absent; kmod reads only the .bin";
            v.push(
                index_tree(names_fallback[i]).remove_after(&bin).cases(
                    index_cases()
                        .into_iter()
                        .map(|c| c.divergence(why))
                        .collect(),
                ),
            );
        }
    }
    // kmod's test-init-load-resources-empty-builtin-aliases-bin and the
    // trees where every index but the builtin one is empty.
    v.push(
        index_tree("all-empty")
            .write_after("M/modules.dep.bin", EMPTY_INDEX)
            .write_after("M/modules.alias.bin", EMPTY_INDEX)
            .write_after("M/modules.symbols.bin", EMPTY_INDEX)
            .write_after("M/modules.builtin.alias.bin", EMPTY_INDEX)
            .write_after("M/modules.dep", b"")
            .cases(index_cases()),
    );
    v.push(
        index_tree("all-absent")
            .remove_after("M/modules.dep.bin")
            .remove_after("M/modules.alias.bin")
            .remove_after("M/modules.symbols.bin")
            .remove_after("M/modules.builtin.bin")
            .remove_after("M/modules.builtin.alias.bin")
            .remove_after("M/modules.softdep")
            .remove_after("M/modules.dep")
            .remove_after("M/modules.alias")
            .remove_after("M/modules.symbols")
            .remove_after("M/modules.builtin")
            .cases(index_cases()),
    );
    v.push(Fixture::new("indexes", "no-moddir", "4.4.4").cases(vec![
        mp(&["-D", "mod-simple"]),
        mp(&["-n", "-v", "mod-simple"]),
        mp(&["-R", "mod-simple"]),
        mp(&["-c"]),
        mi(&["mod-simple"]),
    ]));
    v
}

// ---------------------------------------------------------------------------
// Running

struct Opts {
    earlymod: PathBuf,
    only: Vec<String>,
    show: usize,
    jobs: usize,
    keep: bool,
    list: bool,
    kmods: bool,
    /// Some(true) --syscalls, Some(false) --no-syscalls, None: when strace
    /// works here.
    syscalls: Option<bool>,
}

const USAGE: &str = "\
usage: kmodcases --earlymod PATH [--only TEXT] [--show N] [--jobs N] [--keep]
                 [--list] [--kmods] [--syscalls | --no-syscalls]

  --only TEXT    run only the fixtures whose group or name holds TEXT (repeatable)
  --show N       print the first N differences (default 10)
  --jobs N       parallel comparisons (default: cores + 1)
  --keep         keep the generated trees in /tmp/earlymod-kmodcases-PID
  --list         list the cases and exit
  --kmods        also list the cases where kmod 30 and kmod 34 disagree
  --syscalls     run earlymod under strace: any init_module, finit_module or
                 delete_module call (every case is a dry run) is a failure
                 (the default when strace works here)
  --no-syscalls  do not watch system calls";

fn usage() -> ! {
    eprintln!("{USAGE}");
    std::process::exit(2)
}

fn parse_args() -> Result<Opts, String> {
    let mut o = Opts {
        earlymod: PathBuf::new(),
        only: Vec::new(),
        show: 10,
        jobs: default_workers(),
        keep: false,
        list: false,
        kmods: false,
        syscalls: None,
    };
    let mut earlymod = None;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let (flag, inline) = match a.split_once('=') {
            Some((f, v)) if f.starts_with("--") => (f.to_string(), Some(v.to_string())),
            _ => (a.clone(), None),
        };
        let mut val = || inline.clone().or_else(|| args.next());
        let num = |v: Option<String>, what: &str| -> Result<usize, String> {
            v.and_then(|s| s.parse().ok())
                .filter(|&n: &usize| n > 0)
                .ok_or_else(|| format!("{what} needs a positive number"))
        };
        match flag.as_str() {
            "--earlymod" => earlymod = Some(PathBuf::from(val().ok_or("--earlymod PATH")?)),
            "--only" => o.only.push(val().ok_or("--only TEXT")?),
            "--show" => o.show = num(val(), "--show")?,
            "--jobs" | "-j" => o.jobs = num(val(), "--jobs")?,
            "--keep" => o.keep = true,
            "--list" => o.list = true,
            "--kmods" => o.kmods = true,
            "--syscalls" => o.syscalls = Some(true),
            "--no-syscalls" => o.syscalls = Some(false),
            "-h" | "--help" => usage(),
            _ => return Err(format!("unknown argument {a:?}")),
        }
    }
    o.earlymod = match earlymod {
        Some(p) => p,
        None if o.list => PathBuf::new(),
        None => return Err("--earlymod PATH is required".into()),
    };
    Ok(o)
}

/// One kmod release: its tools.
struct Kmod {
    label: &'static str,
    modprobe: PathBuf,
    modinfo: PathBuf,
    depmod: PathBuf,
}

fn kmods() -> [Kmod; 2] {
    let k34 = earlymod_tests::cache_dir().join("kmod34/bin");
    [
        Kmod {
            label: "30",
            modprobe: "/usr/sbin/modprobe".into(),
            modinfo: ["/usr/sbin/modinfo", "/usr/bin/modinfo", "/sbin/modinfo"]
                .iter()
                .map(PathBuf::from)
                .find(|p| p.exists())
                .unwrap_or_else(|| "/usr/sbin/modinfo".into()),
            depmod: "/usr/sbin/depmod".into(),
        },
        Kmod {
            label: "34",
            modprobe: k34.join("modprobe"),
            modinfo: k34.join("modinfo"),
            depmod: k34.join("depmod"),
        },
    ]
}

/// The directories of one fixture built for one kmod.
struct Built {
    dir: PathBuf,
    root: PathBuf,
    moddir: PathBuf,
    conf: PathBuf,
    ext: PathBuf,
    cmdline: PathBuf,
}

impl Built {
    fn subst(&self, s: &str, kver: &str) -> String {
        s.replace("{root}", &self.root.to_string_lossy())
            .replace("{moddir}", &self.moddir.to_string_lossy())
            .replace("{conf}", &self.conf.to_string_lossy())
            .replace("{ext}", &self.ext.to_string_lossy())
            .replace("{kver}", kver)
    }
    fn path(&self, p: &str) -> PathBuf {
        let (area, rest) = p.split_at(2);
        let base = match area {
            "M/" => self.moddir.clone(),
            "C/" => self.conf.clone(),
            "D/" => self.dir.join("depmod.d"),
            "R/" => self.root.clone(),
            "X/" => self.ext.clone(),
            _ => panic!("bad fixture path {p}"),
        };
        base.join(rest)
    }
}

fn write(path: &Path, data: &[u8]) -> Result<(), String> {
    if let Some(d) = path.parent() {
        fs::create_dir_all(d).map_err(|e| format!("{}: {e}", d.display()))?;
    }
    fs::write(path, data).map_err(|e| format!("{}: {e}", path.display()))
}

/// `module` with a PKCS#7 signature appended as kbuild's sign-file does:
/// a detached, attribute-less CMS signature without certificates (DER),
/// then the `module_signature` trailer (id_type 2, only sig_len set) and
/// the magic. The key and certificate are made once per run under `base`.
fn sign_pkcs7(module: &[u8], digest: &str, keyid: bool, base: &Path) -> Result<Vec<u8>, String> {
    if Command::new("openssl")
        .arg("version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_err()
    {
        eprintln!("kmodcases: no openssl: PKCS#7-signed fixtures are written unsigned");
        return Ok(module.to_vec());
    }
    let dir = base.join("signing");
    let key = dir.join("key.pem");
    let cert = dir.join("cert.pem");
    let openssl = |args: &[&str]| -> Result<Vec<u8>, String> {
        let o = Command::new("openssl")
            .args(args)
            .stdin(Stdio::null())
            .output()
            .map_err(|e| format!("openssl: {e}"))?;
        if o.status.success() {
            Ok(o.stdout)
        } else {
            Err(format!(
                "openssl {} failed: {}",
                args.first().unwrap_or(&""),
                String::from_utf8_lossy(&o.stderr).trim()
            ))
        }
    };
    if !cert.is_file() {
        fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        openssl(&[
            "req",
            "-new",
            "-x509",
            "-nodes",
            "-newkey",
            "rsa:2048",
            "-days",
            "3650",
            "-subj",
            "/O=earlymod tests/CN=earlymod test signing key/emailAddress=tests@example.org",
            "-set_serial",
            "0x5a3c0ffee01",
            "-keyout",
            &key.to_string_lossy(),
            "-out",
            &cert.to_string_lossy(),
        ])?;
    }
    let input = dir.join(format!("in-{digest}-{keyid}-{}", module.len()));
    fs::write(&input, module).map_err(|e| format!("{}: {e}", input.display()))?;
    let mut args = vec![
        "cms",
        "-sign",
        "-binary",
        "-noattr",
        "-nocerts",
        "-nosmimecap",
        "-outform",
        "DER",
        "-md",
        digest,
    ];
    if keyid {
        args.push("-keyid");
    }
    let (key_s, cert_s, in_s) = (
        key.to_string_lossy().into_owned(),
        cert.to_string_lossy().into_owned(),
        input.to_string_lossy().into_owned(),
    );
    args.extend(["-signer", &cert_s, "-inkey", &key_s, "-in", &in_s]);
    let sig = openssl(&args)?;
    let mut out = module.to_vec();
    out.extend_from_slice(&sig);
    out.extend_from_slice(&[0, 0, 2, 0, 0, 0, 0, 0]);
    out.extend_from_slice(&(sig.len() as u32).to_be_bytes());
    out.extend_from_slice(b"~Module signature appended~\n");
    Ok(out)
}

/// `data` through a compressor's stdin.
fn compress(argv: &[&str], data: &[u8]) -> Result<Vec<u8>, String> {
    use std::io::Write;
    let mut child = Command::new(argv[0])
        .args(&argv[1..])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("{}: {e}", argv[0]))?;
    let mut stdin = child.stdin.take().expect("piped stdin");
    let input = data.to_vec();
    let feeder = std::thread::spawn(move || stdin.write_all(&input));
    let out = child
        .wait_with_output()
        .map_err(|e| format!("{}: {e}", argv[0]))?;
    let _ = feeder.join();
    if out.status.success() {
        Ok(out.stdout)
    } else {
        Err(format!(
            "{} failed: {}",
            argv[0],
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

/// Writes the fixture's tree for `kmod` under `base` and indexes it with
/// that kmod's depmod.
fn build(fx: &Fixture, kmod: &Kmod, base: &Path) -> Result<Built, String> {
    let dir = base.join(format!("{}-{}", fx.name, kmod.label));
    let root = dir.join("root");
    let b = Built {
        moddir: root.join("lib/modules").join(fx.kver),
        root,
        conf: dir.join("modprobe.d"),
        ext: dir.join("ext"),
        cmdline: dir.join("cmdline"),
        dir,
    };
    for d in [&b.conf, &b.ext, &b.dir.join("depmod.d")] {
        fs::create_dir_all(d).map_err(|e| format!("{}: {e}", d.display()))?;
    }
    write(&b.cmdline, fx.cmdline.as_bytes())?;
    for l in &fx.live {
        let d = b.dir.join("sysmodule").join(l.name);
        fs::create_dir_all(d.join("holders")).map_err(|e| format!("{}: {e}", d.display()))?;
        for h in l.holders {
            fs::create_dir_all(d.join("holders").join(h))
                .map_err(|e| format!("{}: {e}", d.display()))?;
        }
        if !l.initstate.is_empty() {
            write(
                &d.join("initstate"),
                format!("{}\n", l.initstate).as_bytes(),
            )?;
            write(&d.join("refcnt"), format!("{}\n", l.refcnt).as_bytes())?;
        }
    }
    if !fx.bare && !fx.modules.is_empty() {
        for f in ["M/modules.builtin", "M/modules.builtin.modinfo"] {
            if !fx.files.iter().any(|(p, _)| p == f) {
                write(&b.path(f), b"")?;
            }
        }
    }
    for m in &fx.modules {
        let mut elf = elfmod::build(&m.spec);
        if let Some((digest, keyid)) = m.pkcs7 {
            elf = sign_pkcs7(&elf, digest, keyid, base)?;
        }
        let data = if m.path.ends_with(".xz") {
            compress(&["xz", "-c", "--check=crc32"], &elf)?
        } else if m.path.ends_with(".zst") && m.path.contains("nosize") {
            // A zstd frame without the content size (compressed from a pipe).
            compress(&["zstd", "-q", "-c"], &elf)?
        } else if m.path.ends_with(".zst") {
            // As kbuild compresses a file: the frame states its size.
            let size = format!("--stream-size={}", elf.len());
            compress(&["zstd", "-q", "-c", &size], &elf)?
        } else {
            elf
        };
        write(&b.path(&m.path), &data)?;
    }
    for (p, data) in &fx.files {
        let text = String::from_utf8_lossy(data);
        let data = if p.starts_with("D/") {
            b.subst(&text, fx.kver).into_bytes()
        } else {
            data.clone()
        };
        write(&b.path(p), &data)?;
    }
    if !fx.modules.is_empty() {
        let o = Command::new(&kmod.depmod)
            .arg("-b")
            .arg(&b.root)
            .arg("-C")
            .arg(b.dir.join("depmod.d"))
            .arg(fx.kver)
            .env("LC_ALL", "C")
            .stdin(Stdio::null())
            .output()
            .map_err(|e| format!("{}: {e}", kmod.depmod.display()))?;
        if !o.status.success() {
            return Err(format!(
                "depmod {} failed on {}: {}",
                kmod.label,
                fx.name,
                String::from_utf8_lossy(&o.stderr).trim()
            ));
        }
    }
    for e in &fx.after {
        match e {
            Edit::Write(p, data) => write(&b.path(p), data)?,
            Edit::Remove(p) => {
                let p = b.path(p);
                fs::remove_file(&p).map_err(|e| format!("{}: {e}", p.display()))?
            }
        }
    }
    Ok(b)
}

/// How to enter a private namespace with our own /proc/cmdline.
#[derive(Clone, Copy)]
enum Ns {
    /// `unshare --user --map-root-user --mount`: no capability in the
    /// initial namespace, so nothing could be loaded even by mistake.
    User,
    /// `unshare --mount` (root only).
    Mount,
}

/// Runs `argv` in a new namespace where `cmdline` is /proc/cmdline and, if
/// given, `sysmodule` is /sys/module.
fn run_ns(
    ns: Ns,
    argv: &[String],
    cmdline: &Path,
    sysmodule: Option<&Path>,
    cwd: Option<&Path>,
) -> Outcome {
    let mut c = Command::new("unshare");
    if let Ns::User = ns {
        c.arg("--user").arg("--map-root-user");
    }
    c.arg("--mount")
        .arg("sh")
        .arg("-c")
        .arg(
            r#"mount --bind "$0" /proc/cmdline && { [ "$1" = - ] || mount --bind "$1" /sys/module; } && shift && exec "$@""#,
        )
        .arg(cmdline)
        .arg(sysmodule.map_or(Path::new("-"), |p| p))
        .args(argv)
        .env_remove("MODPROBE_OPTIONS")
        .env("LC_ALL", "C")
        .env_remove("LANGUAGE")
        .stdin(Stdio::null());
    if let Some(d) = cwd {
        c.current_dir(d);
    }
    Outcome::of(c.output(), "unshare")
}

/// Which namespace works here (probe: our cmdline must be visible).
fn pick_ns(base: &Path) -> Result<Ns, String> {
    let probe = base.join("cmdline-probe");
    let text = "earlymod.kmodcases=probe\n";
    fs::write(&probe, text).map_err(|e| e.to_string())?;
    let cat = ["cat".to_string(), "/proc/cmdline".to_string()];
    let mut why = String::new();
    for ns in [Ns::User, Ns::Mount] {
        let o = run_ns(ns, &cat, &probe, None, None);
        if o.code == 0 && o.stdout == text.as_bytes() {
            return Ok(ns);
        }
        why = format!(
            "exit {}: {}",
            o.code,
            String::from_utf8_lossy(&o.stderr).trim()
        );
    }
    Err(format!(
        "neither unshare --user --mount nor unshare --mount can bind-mount /proc/cmdline ({why})"
    ))
}

/// A dry-run/query flag every modprobe case must carry: nothing loads.
fn is_safe(c: &Case) -> bool {
    if c.tool == "modinfo" {
        return true;
    }
    c.args.iter().any(|a| {
        matches!(
            a.as_str(),
            "-n" | "--dry-run"
                | "-D"
                | "--show-depends"
                | "-R"
                | "--resolve-alias"
                | "-c"
                | "--show-exports"
                | "--show-modversions"
                | "--dump-modversions"
        )
    })
}

/// Stderr for comparison: program-name prefixes of either tool mapped to
/// `modprobe: ` (as difftest does).
fn norm_err(stderr: &[u8], names: &[String]) -> Vec<u8> {
    let text = String::from_utf8_lossy(stderr);
    let mut pre = String::new();
    for line in text.split_inclusive('\n') {
        let mut l = line;
        for n in names {
            for p in [format!("{n} modinfo: "), format!("{n} modprobe: ")] {
                if let Some(rest) = l.strip_prefix(p.as_str()) {
                    l = rest;
                    pre.push_str("modprobe: ");
                }
            }
        }
        match l.strip_prefix("modinfo: ") {
            Some(rest) => {
                pre.push_str("modprobe: ");
                pre.push_str(rest);
            }
            None => pre.push_str(l),
        }
    }
    // kmod 34 logs `libkmod: LEVEL: function: message`; kmod 30
    // `libkmod: LEVEL file.c:line function: message` (normalize_stderr
    // handles that one).
    let mut out = String::new();
    for line in pre.split_inclusive('\n') {
        let kmod34 = line.strip_prefix("libkmod: ").and_then(|rest| {
            let (level, rest) = rest.split_once(": ")?;
            let (func, msg) = rest.split_once(": ")?;
            let ident =
                !func.is_empty() && func.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
            let lvl = level.bytes().all(|b| b.is_ascii_uppercase());
            (ident && lvl).then(|| format!("modprobe: {level}: {msg}"))
        });
        match kmod34 {
            Some(l) => out.push_str(&l),
            None => out.push_str(line),
        }
    }
    normalize_stderr(out.as_bytes(), names)
}

/// A case's arguments without the `-C/-d/-S` or `-b/-k` prefix.
fn short_args(c: &Case) -> &[String] {
    let skip = match (c.tool, c.args.first().map(String::as_str)) {
        ("modprobe", Some("-C")) => 6,
        ("modinfo", Some("-b")) => 4,
        _ => 0,
    };
    &c.args[skip.min(c.args.len())..]
}

/// One comparison: a case of a fixture for one kmod.
struct Item {
    fx: usize,
    case: usize,
    kmod: usize,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Verdict {
    Identical,
    /// kmod 30 differs as the case says it does.
    Expected30,
    /// The case says kmod 30 differs, but it does not.
    StaleMark,
    /// earlymod differs on purpose (its README documents it).
    Divergence,
    Fail,
    /// earlymod called init_module, finit_module or delete_module in a
    /// dry run (--syscalls).
    Syscall,
}

/// Per group: comparisons and identical ones per kmod (30, 34), expected
/// kmod 30 differences, documented divergences.
#[derive(Default)]
struct Tally {
    total: [usize; 2],
    ok: [usize; 2],
    expected30: usize,
    divergences: usize,
}

struct Res {
    verdict: Verdict,
    stderr_ok: bool,
    argv: Vec<String>,
    expected: Outcome,
    got: Outcome,
    /// Module system calls earlymod made (with --syscalls).
    module_calls: Vec<String>,
}

fn excerpt(bytes: &[u8], max_lines: usize) -> String {
    let text = String::from_utf8_lossy(bytes);
    let lines: Vec<&str> = text.split_inclusive('\n').collect();
    let mut s = String::new();
    for l in lines.iter().take(max_lines) {
        s.push_str("    | ");
        s.push_str(&l.strip_suffix('\n').unwrap_or(l).escape_debug().to_string());
        s.push('\n');
    }
    if lines.len() > max_lines {
        s.push_str(&format!(
            "    | ... ({} more lines)\n",
            lines.len() - max_lines
        ));
    }
    if lines.is_empty() {
        s.push_str("    (empty)\n");
    }
    s
}

fn main() -> ExitCode {
    let started = Instant::now();
    let opts = match parse_args() {
        Ok(o) => o,
        Err(e) => {
            eprintln!("kmodcases: {e}");
            usage()
        }
    };
    let ci = std::env::var("CI").is_ok_and(|v| v == "true");

    let mut fixtures = fixtures();
    if !opts.only.is_empty() {
        fixtures.retain(|f| {
            opts.only
                .iter()
                .any(|t| f.group.contains(t.as_str()) || f.name.contains(t.as_str()))
        });
    }
    for f in &fixtures {
        for c in &f.cases {
            assert!(
                is_safe(c),
                "kmodcases: case {} of {} could load a module: {:?}",
                c.args.join(" "),
                f.name,
                c.args
            );
        }
    }
    if opts.list {
        for f in &fixtures {
            for c in &f.cases {
                println!("{} {}: {} {}", f.group, f.name, c.tool, shell_join(&c.args));
            }
        }
        return ExitCode::SUCCESS;
    }

    let kmods = kmods();
    let mut absent = Vec::new();
    for k in &kmods {
        for p in [&k.modprobe, &k.modinfo, &k.depmod] {
            if !p.exists() {
                absent.push(format!("kmod {}: {} is missing", k.label, p.display()));
            }
        }
    }
    if !earlymod_tests::cache_dir().join("kmod34/.done").is_file() {
        absent.push("kmod 34 is not set up (run scripts/setup.sh)".into());
    }
    if !absent.is_empty() {
        for a in &absent {
            println!("kmodcases: {a}");
        }
        if ci {
            println!("kmodcases: FAIL: reference kmod missing and CI=true");
            println!("0 passed, 1 failed");
            return ExitCode::FAILURE;
        }
        println!("SKIP: kmod 30/34 are absent (run scripts/setup.sh); nothing compared");
        return ExitCode::SUCCESS;
    }
    if !opts.earlymod.is_file() {
        println!(
            "kmodcases: earlymod binary not found at {} (make out/earlymod-static)",
            opts.earlymod.display()
        );
        println!("0 passed, 1 failed");
        return ExitCode::FAILURE;
    }
    let earlymod = fs::canonicalize(&opts.earlymod).unwrap_or(opts.earlymod.clone());

    let scratch = match Scratch::new("kmodcases", opts.keep) {
        Ok(s) => s,
        Err(e) => {
            println!("kmodcases: cannot create a scratch directory: {e}");
            return ExitCode::FAILURE;
        }
    };
    let base = scratch.path().to_path_buf();

    let ns = match pick_ns(&base) {
        Ok(ns) => ns,
        Err(e) => {
            if ci {
                println!("kmodcases: FAIL: {e}");
                println!("0 passed, 1 failed");
                return ExitCode::FAILURE;
            }
            println!("kmodcases: {e}");
            println!("SKIP: no private namespace for /proc/cmdline; nothing compared");
            return ExitCode::SUCCESS;
        }
    };

    // Watch earlymod's module system calls with strace when it works here.
    let strace_works = || {
        let out = base.join("strace-probe");
        let argv: Vec<String> = [
            "strace",
            "-f",
            "-qq",
            "-e",
            "trace=delete_module",
            "-o",
            &out.to_string_lossy(),
            "true",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        run_ns(ns, &argv, &base.join("cmdline-probe"), None, None).code == 0 && out.is_file()
    };
    let syscalls = match opts.syscalls {
        Some(false) => false,
        Some(true) => {
            if !strace_works() {
                println!("kmodcases: --syscalls: strace does not work here");
                println!("0 passed, 1 failed");
                return ExitCode::FAILURE;
            }
            true
        }
        None => {
            let ok = strace_works();
            if !ok {
                eprintln!("kmodcases: strace unusable here: module system calls not watched");
            }
            ok
        }
    };

    // Build every fixture for both kmods.
    let mut built: Vec<Vec<Option<Built>>> = Vec::new();
    let mut setup_failures = Vec::new();
    for f in &fixtures {
        let mut row = Vec::new();
        for k in &kmods {
            match build(f, k, &base) {
                Ok(b) => row.push(Some(b)),
                Err(e) => {
                    setup_failures.push(e);
                    row.push(None);
                }
            }
        }
        built.push(row);
    }

    let mut items = Vec::new();
    for (fi, f) in fixtures.iter().enumerate() {
        for ci in 0..f.cases.len() {
            for (ki, _) in kmods.iter().enumerate() {
                if built[fi][ki].is_some() {
                    items.push(Item {
                        fx: fi,
                        case: ci,
                        kmod: ki,
                    });
                }
            }
        }
    }
    eprintln!(
        "kmodcases: {} fixtures, {} comparisons, {} workers",
        fixtures.len(),
        items.len(),
        opts.jobs
    );

    let names: Vec<String> = ["earlymod-static", "earlymod"]
        .iter()
        .map(|s| s.to_string())
        .chain(
            earlymod
                .file_name()
                .map(|n| n.to_string_lossy().into_owned()),
        )
        .collect();
    let results = par_map(
        &items,
        opts.jobs,
        |it| {
            let f = &fixtures[it.fx];
            let c = &f.cases[it.case];
            let k = &kmods[it.kmod];
            let b = built[it.fx][it.kmod].as_ref().unwrap();
            let args: Vec<String> = c.args.iter().map(|a| b.subst(a, f.kver)).collect();
            let cmdline = match &c.cmdline {
                Some(text) => {
                    let p = b.dir.join(format!("cmdline-{}", it.case));
                    let _ = fs::write(&p, format!("{text}\n"));
                    p
                }
                None => b.cmdline.clone(),
            };
            let cwd = c.cwd.as_ref().map(|d| PathBuf::from(b.subst(d, f.kver)));
            let prog = if c.tool == "modinfo" {
                &k.modinfo
            } else {
                &k.modprobe
            };
            let mut kargv = vec![prog.to_string_lossy().into_owned()];
            kargv.extend(args.iter().cloned());
            let mut eargv = Vec::new();
            let trace = b.dir.join(format!("strace-{}", it.case));
            if syscalls {
                eargv.extend(
                    [
                        "strace",
                        "-f",
                        "-qq",
                        "-e",
                        "trace=init_module,finit_module,delete_module",
                    ]
                    .map(String::from),
                );
                eargv.push("-o".into());
                eargv.push(trace.to_string_lossy().into_owned());
            }
            eargv.push(earlymod.to_string_lossy().into_owned());
            eargv.push(c.tool.to_string());
            eargv.extend(args.iter().cloned());
            let sysmod = (!f.live.is_empty()).then(|| b.dir.join("sysmodule"));
            let expected = run_ns(ns, &kargv, &cmdline, sysmod.as_deref(), cwd.as_deref());
            let got = run_ns(ns, &eargv, &cmdline, sysmod.as_deref(), cwd.as_deref());
            let module_calls = if syscalls {
                fs::read_to_string(&trace)
                    .map(|t| {
                        t.lines()
                            .filter(|l| l.contains("_module("))
                            .map(str::to_string)
                            .collect::<Vec<_>>()
                    })
                    .unwrap_or_else(|e| vec![format!("no strace output: {e}")])
            } else {
                Vec::new()
            };
            let same = expected.stdout == got.stdout && expected.code == got.code;
            let stderr_ok = norm_err(&expected.stderr, &names) == norm_err(&got.stderr, &names)
                || (k.label == "30" && f.k30_stderr.is_some());
            let marked = k.label == "30" && matches!(c.k30, K30::Differs(_));
            let verdict = match (same, marked) {
                (true, false) => Verdict::Identical,
                (true, true) => Verdict::StaleMark,
                (false, true) => Verdict::Expected30,
                (false, false) if c.divergence.is_some() => Verdict::Divergence,
                (false, false) => Verdict::Fail,
            };
            let verdict = if module_calls.is_empty() {
                verdict
            } else {
                Verdict::Syscall
            };
            let mut shown = vec![c.tool.to_string()];
            shown.extend(args);
            Res {
                verdict,
                stderr_ok,
                argv: shown,
                expected,
                got,
                module_calls,
            }
        },
        |_| {},
    );

    // Per group: (total, identical) per kmod, expected kmod 30 differences.
    let mut groups: BTreeMap<&str, Tally> = BTreeMap::new();
    let mut order: Vec<&str> = Vec::new();
    for f in &fixtures {
        if !order.contains(&f.group) {
            order.push(f.group);
        }
    }
    for (it, r) in items.iter().zip(&results) {
        let g = groups.entry(fixtures[it.fx].group).or_default();
        g.total[it.kmod] += 1;
        match r.verdict {
            Verdict::Identical | Verdict::StaleMark => g.ok[it.kmod] += 1,
            Verdict::Expected30 => g.expected30 += 1,
            Verdict::Divergence => g.divergences += 1,
            Verdict::Fail | Verdict::Syscall => {}
        }
    }
    for g in &order {
        if let Some(Tally {
            total: tot,
            ok,
            expected30: exp,
            divergences: div,
        }) = groups.get(g)
        {
            let mut extra = String::new();
            if *exp > 0 {
                extra.push_str(&format!(", {exp} kmod 30 differs (expected)"));
            }
            if *div > 0 {
                extra.push_str(&format!(", {div} documented divergences"));
            }
            println!(
                "kmodcases: {g} {}/{} identical (kmod 30) {}/{} (kmod 34){extra}",
                ok[0], tot[0], ok[1], tot[1]
            );
        }
    }

    let describe = |it: &Item, r: &Res| -> String {
        let f = &fixtures[it.fx];
        let c = &f.cases[it.case];
        let mut s = format!(
            "[kmod {} {} {}] {}",
            kmods[it.kmod].label,
            f.group,
            f.name,
            shell_join(&r.argv)
        );
        let cl = c.cmdline.as_deref().unwrap_or(f.cmdline.trim_end());
        if cl != DEFAULT_CMDLINE.trim_end() {
            s.push_str(&format!("\n  with /proc/cmdline = {cl:?}"));
        }
        if let Some(d) = &c.cwd {
            s.push_str(&format!("\n  in {d}"));
        }
        s
    };

    let expected30: Vec<usize> = (0..results.len())
        .filter(|&i| results[i].verdict == Verdict::Expected30)
        .collect();
    if !expected30.is_empty() {
        println!("\nkmod 30 differs (expected), earlymod follows kmod 34:");
        for &i in &expected30 {
            let it = &items[i];
            let why = match fixtures[it.fx].cases[it.case].k30 {
                K30::Differs(w) | K30::Depmod(w) => w,
                K30::Same => "",
            };
            println!("  {}: {why}", describe(it, &results[i]).replace('\n', " "));
        }
    }
    let divergences: Vec<usize> = (0..results.len())
        .filter(|&i| results[i].verdict == Verdict::Divergence)
        .collect();
    if !divergences.is_empty() {
        println!("\nearlymod differs from kmod by design (documented, not counted as failures):");
        for &i in &divergences {
            let it = &items[i];
            let why = fixtures[it.fx].cases[it.case].divergence.unwrap_or("");
            let r = &results[i];
            println!(
                "  {}: {why}; kmod: exit {}, {} stdout lines; earlymod: exit {}, {} stdout lines",
                describe(it, r).replace('\n', " "),
                r.expected.code,
                r.expected.stdout.split(|&b| b == b'\n').count() - 1,
                r.got.code,
                r.got.stdout.split(|&b| b == b'\n').count() - 1
            );
        }
    }
    for (i, r) in results.iter().enumerate() {
        if r.verdict == Verdict::StaleMark {
            println!(
                "note: marked as a kmod 30 difference but identical: {}",
                describe(&items[i], r).replace('\n', " ")
            );
        }
    }

    let warn: Vec<usize> = (0..results.len())
        .filter(|&i| {
            !matches!(results[i].verdict, Verdict::Fail | Verdict::Syscall) && !results[i].stderr_ok
        })
        .filter(|&i| {
            !matches!(
                results[i].verdict,
                Verdict::Expected30 | Verdict::Divergence
            )
        })
        .collect();
    if !warn.is_empty() {
        println!(
            "\n{} stderr differences (warnings); first {}:",
            warn.len(),
            opts.show.min(warn.len())
        );
        for &i in warn.iter().take(opts.show) {
            let r = &results[i];
            println!("WARN {}", describe(&items[i], r));
            print!("  expected stderr:\n{}", excerpt(&r.expected.stderr, 6));
            print!("  got stderr:\n{}", excerpt(&r.got.stderr, 6));
        }
    }

    let fails: Vec<usize> = (0..results.len())
        .filter(|&i| matches!(results[i].verdict, Verdict::Fail | Verdict::Syscall))
        .collect();
    if !fails.is_empty() {
        println!(
            "\n{} differences in stdout/exit code; first {}:",
            fails.len(),
            opts.show.min(fails.len())
        );
        for &i in fails.iter().take(opts.show) {
            let r = &results[i];
            println!("FAIL {}", describe(&items[i], r));
            for call in &r.module_calls {
                println!("  module system call in a dry run: {call}");
            }
            print!(
                "  expected (exit {}):\n{}",
                r.expected.code,
                excerpt(&r.expected.stdout, 12)
            );
            if !r.expected.stderr.is_empty() {
                print!("  expected stderr:\n{}", excerpt(&r.expected.stderr, 4));
            }
            print!(
                "  got (exit {}):\n{}",
                r.got.code,
                excerpt(&r.got.stdout, 12)
            );
            if !r.got.stderr.is_empty() {
                print!("  got stderr:\n{}", excerpt(&r.got.stderr, 4));
            }
        }
    }
    for e in &setup_failures {
        println!("kmodcases: setup: {e}");
    }

    if opts.kmods {
        // kmod 30 against kmod 34 (tree paths made equal).
        let mut by_case: BTreeMap<(usize, usize), [Option<usize>; 2]> = BTreeMap::new();
        for (i, it) in items.iter().enumerate() {
            by_case.entry((it.fx, it.case)).or_default()[it.kmod] = Some(i);
        }
        let mut n = 0;
        println!("\nkmod 30 and kmod 34 disagree (stdout or exit code):");
        for ((fi, ci), pair) in &by_case {
            let (Some(a), Some(b)) = (pair[0], pair[1]) else {
                continue;
            };
            let f = &fixtures[*fi];
            let from = format!("/{}-30/", f.name);
            let to = format!("/{}-34/", f.name);
            let e30 = String::from_utf8_lossy(&results[a].expected.stdout).replace(&from, &to);
            let e34 = String::from_utf8_lossy(&results[b].expected.stdout);
            if e30 != e34 || results[a].expected.code != results[b].expected.code {
                n += 1;
                let c = &f.cases[*ci];
                println!(
                    "  {} {}: {} {} ({})",
                    f.group,
                    f.name,
                    c.tool,
                    shell_join(short_args(c)),
                    match c.k30 {
                        K30::Differs(w) | K30::Depmod(w) => w,
                        K30::Same => "NOT MARKED",
                    }
                );
            }
        }
        println!("  {n} cases");
    }

    let failed = fails.len() + setup_failures.len();
    let passed = results.len() - fails.len();
    eprintln!(
        "kmodcases: {} comparisons in {:.1} s",
        results.len(),
        started.elapsed().as_secs_f64()
    );
    println!("{passed} passed, {failed} failed");
    if failed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}
