//! earlymod for the host: the applets of earlymod (`modprobe`,
//! `insmod`, `rmmod`, `lsmod`, `modinfo`) on std's runtime, the same code
//! as the static binary. The applet comes from `argv[0]` (`/sbin/modprobe` →
//! modprobe) or the first argument (`earlymod modprobe`).

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let mut argv: Vec<&str> = args.iter().map(String::as_str).collect();
    let argv0 = argv.first().copied().unwrap_or("earlymod");
    let (applet, rest) = match earlymod::applet_of(argv0) {
        Some(a) => (a, argv.get_mut(1..).unwrap_or(&mut [])),
        None => match argv.get(1).copied() {
            Some(a) => (a, &mut argv[2..]),
            None => {
                eprintln!(
                    "usage: earlymod APPLET [ARGS]   (applets: modprobe, insmod, rmmod, lsmod, modinfo)"
                );
                std::process::exit(1);
            }
        },
    };
    let modprobe_options = std::env::var("MODPROBE_OPTIONS").ok();
    let pwd = std::env::var("PWD").ok();
    let env = earlymod::Env {
        modprobe_options: modprobe_options.as_deref(),
        pwd: pwd.as_deref(),
    };
    let code = earlymod::dispatch(applet, rest, env).unwrap_or_else(|| {
        eprintln!("earlymod: unknown applet '{applet}'");
        1
    });
    std::process::exit(code);
}
