//! `earlymod-pack`: build an initramfs image for earlymod.

use std::path::PathBuf;
use std::process::ExitCode;

use earlymod_core::getopt::{self, Opt};
use earlymod_initrd::pack::{PackOptions, pack};

const PROG: &str = "earlymod-pack";

const OPTS: &[Opt] = &[
    Opt::new(Some('b'), &["basedir"], true, "basedir"),
    Opt::new(Some('k'), &["kver"], true, "kver"),
    Opt::new(Some('c'), &["config"], true, "config"),
    Opt::new(Some('o'), &["output"], true, "output"),
    Opt::new(Some('m'), &["module"], true, "module"),
    Opt::new(None, &["host-only"], false, "host-only"),
    Opt::new(None, &["no-keyboard"], false, "no-keyboard"),
    Opt::new(None, &["keep-compression"], false, "keep"),
    Opt::new(None, &["compress"], true, "compress"),
    Opt::new(None, &["kernel-config"], true, "kconfig"),
    Opt::new(None, &["earlymod"], true, "earlymod"),
    Opt::new(None, &["indexes-only"], true, "indexes-only"),
    Opt::new(Some('f'), &["firmware-dir"], true, "firmware-dir"),
    Opt::new(None, &["no-firmware"], false, "no-firmware"),
    Opt::new(None, &["strict"], false, "strict"),
    Opt::new(None, &["force"], false, "force"),
    Opt::new(None, &["report"], true, "report"),
    Opt::new(None, &["microcode"], true, "microcode"),
    Opt::new(Some('j'), &["jobs"], true, "jobs"),
    Opt::new(Some('q'), &["quiet"], false, "quiet"),
    Opt::new(Some('h'), &["help"], false, "help"),
    Opt::new(Some('V'), &["version"], false, "version"),
];

const HELP: &str = "\
Usage: earlymod-pack [options] -c CONFIG -o IMAGE
Build an initramfs image: the module closure of CONFIG, subset indexes kmod
reads, modules stored in a form the target kernel loads, a reproducible cpio.

  -b, --basedir ROOT      module tree root (ROOT/lib/modules/KVER; default /)
  -k, --kver KVER         kernel release (default: the running kernel's)
  -c, --config FILE       pack config (see config/pack/README.md); repeatable
  -o, --output IMAGE      image to write
  -m, --module NAME       also include and load NAME (module or alias); repeatable
      --host-only         also include what this machine needs: the block device
                          chains of /, /usr and swap (drivers, dm, md), the root
                          filesystem, the keyboards' chains, and every device
                          on a bus or in the input class (its MODALIAS=)
      --no-keyboard       with --host-only: no keyboard chains
      --keep-compression  keep modules compressed (earlymod decompresses them)
      --compress KIND     main member compression: none, gzip, zstd (default gzip)
      --kernel-config F   the target kernel's config (default ROOT/boot/config-KVER)
      --earlymod PATH     the earlymod binary (default: earlymod beside this program)
      --indexes-only DIR  write only the set's depmod files (indexes, modules.dep,
                          ...) into DIR: no module files, no image
  -f, --firmware-dir DIR  a firmware tree standing for /lib/firmware; repeatable,
                          searched in order (default ROOT/lib/firmware, then
                          /lib/firmware when packing for the running kernel)
      --no-firmware       pack no firmware (default: every firmware= file of
                          every packed module, as the target kernel looks for it)
      --strict            missing firmware is an error (default: a warning)
      --force             pack modules the target checks refuse (another
                          machine, another kernel's vermagic), with a warning
      --microcode WHICH   CPU microcode first in the image, for the kernel's early
                          loader: auto (default: the host CPU's own with
                          --host-only, else all that the firmware trees have),
                          intel, amd (an error when there is none), none
      --report FILE       write the pack report: why each module is in, what
                          each request (and host device) resolved to, where
                          each firmware file went (config/pack/README.md)
  -j, --jobs N            threads for transcoding and compression (default: CPUs)
  -q, --quiet             no progress line, no summary
  -h, --help, -V, --version

Entries get mtime $SOURCE_DATE_EPOCH (default 0): same inputs, same bytes.
Problems with single modules or files are reported one per line; the image
is still written and the exit status is 1.
";

fn fail(msg: &str) -> ExitCode {
    eprintln!("{PROG}: {msg}");
    ExitCode::from(2)
}

fn mb(n: u64) -> String {
    format!("{:.1} MB", n as f64 / 1e6)
}

fn main() -> ExitCode {
    let argv: Vec<String> = std::env::args().skip(1).collect();
    let mut args: Vec<&str> = argv.iter().map(String::as_str).collect();
    let p = getopt::parse(&mut args, OPTS);
    if let Some(e) = p.error {
        eprintln!("{}", e.show(PROG, OPTS));
        return ExitCode::from(2);
    }
    let jobs = std::thread::available_parallelism().map_or(1, |n| n.get());
    let mut o = PackOptions {
        root: PathBuf::from("/"),
        earlymod: std::env::current_exe()
            .ok()
            .and_then(|e| Some(e.parent()?.join("earlymod")))
            .unwrap_or_else(|| PathBuf::from("earlymod")),
        jobs,
        ..PackOptions::new(String::new(), PathBuf::new())
    };
    for h in p.hits.iter() {
        let v = h.value.unwrap_or("");
        match h.id {
            "basedir" => o.root = PathBuf::from(v),
            "kver" => o.kver = v.to_string(),
            "config" => o.configs.push(PathBuf::from(v)),
            "output" => o.output = PathBuf::from(v),
            "module" => o.load.push(v.to_string()),
            "host-only" => o.host_only = true,
            "no-keyboard" => o.no_keyboard = true,
            "keep" => o.keep_compression = true,
            "compress" => match v.parse() {
                Ok(c) => o.compress = Some(c),
                Err(_) => return fail(&format!("--compress: unknown compression '{v}'")),
            },
            "kconfig" => o.kernel_config = Some(PathBuf::from(v)),
            "earlymod" => o.earlymod = PathBuf::from(v),
            "jobs" => match v.parse::<usize>() {
                Ok(n) if n > 0 => o.jobs = n,
                _ => return fail(&format!("--jobs: bad number '{v}'")),
            },
            "quiet" => o.quiet = true,
            "indexes-only" => o.indexes_only = Some(PathBuf::from(v)),
            "firmware-dir" => o.firmware_dirs.push(PathBuf::from(v)),
            "no-firmware" => o.no_firmware = true,
            "strict" => o.strict = true,
            "force" => o.force = true,
            "report" => o.report = Some(PathBuf::from(v)),
            "microcode" => match v.parse() {
                Ok(c) => o.microcode = c,
                Err(e) => return fail(&format!("--microcode: {e}")),
            },
            "help" => {
                print!("{HELP}");
                return ExitCode::SUCCESS;
            }
            "version" => {
                println!("{PROG} {}", env!("CARGO_PKG_VERSION"));
                return ExitCode::SUCCESS;
            }
            _ => {}
        }
    }
    if let Some(extra) = p.operands.first() {
        return fail(&format!("unexpected argument '{extra}' (see --help)"));
    }
    if o.output.as_os_str().is_empty() && o.indexes_only.is_none() {
        return fail("no output image (-o IMAGE)");
    }
    if o.kver.is_empty() {
        match std::fs::read_to_string("/proc/sys/kernel/osrelease") {
            Ok(k) => o.kver = k.trim().to_string(),
            Err(e) => return fail(&format!("cannot tell the running kernel (use -k): {e}")),
        }
    }
    if let Ok(s) = std::env::var("SOURCE_DATE_EPOCH") {
        match s.trim().parse::<u32>() {
            Ok(t) => o.mtime = t,
            Err(_) => return fail(&format!("SOURCE_DATE_EPOCH: bad value '{s}'")),
        }
    }
    let r = match pack(&o) {
        Ok(r) => r,
        Err(e) => return fail(&e),
    };
    for w in &r.warnings {
        eprintln!("{PROG}: warning: {w}");
    }
    for e in &r.errors {
        eprintln!("{PROG}: error: {e}");
    }
    if !o.quiet && o.indexes_only.is_some() {
        eprintln!(
            "{PROG}: depmod files for {} modules ({} bytes) in {:.3} s",
            r.modules,
            r.image_len,
            r.elapsed.as_secs_f64()
        );
    } else if !o.quiet {
        let missing = r.firmware.iter().filter(|q| q.stored.is_empty()).count();
        let ucode: String = r
            .microcode
            .iter()
            .map(|(p, f, n)| format!(", microcode {p} ({} files, {})", f.len(), mb(*n as u64)))
            .collect();
        eprintln!(
            "{PROG}: {} modules ({} builtin needed none, {} decompressed for a kernel that {}), \
             modules {} -> {}, firmware {} files {} ({} of {} requests missing){ucode}, \
             image {} ({} entries) in {:.2} s: {}",
            r.modules,
            r.builtin,
            r.transcoded,
            r.kernel_decompresses
                .map_or("takes plain modules only".to_string(), |k| format!(
                    "decompresses {k}"
                )),
            mb(r.bytes_before),
            mb(r.bytes_after),
            r.firmware_files,
            mb(r.firmware_bytes),
            missing,
            r.firmware.len(),
            mb(r.image_len),
            r.image.entries,
            r.elapsed.as_secs_f64(),
            o.output.display()
        );
    }
    if r.errors.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
}
