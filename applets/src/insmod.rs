//! The `insmod` applet: `insmod [-f] FILE [PARAMS...]`, loading one file the
//! way modprobe loads a module (kernel decompression when it can).

use crate::kernel::Live;
use crate::log::{LOG_ERR, Log};
use crate::sys::{CPath, Out};
use core::fmt::Write;
use earlymod_core::getopt::{self, Opt};
use earlymod_core::load::{self, InsertFlags, Kernel, Params};

const OPTS: &[Opt] = &[
    Opt {
        short: Some('f'),
        long: &["force"],
        arg: false,
        id: "force",
    },
    Opt {
        short: Some('s'),
        long: &["syslog"],
        arg: false,
        id: "syslog",
    },
    Opt {
        short: Some('v'),
        long: &["verbose"],
        arg: false,
        id: "verbose",
    },
    Opt {
        short: Some('V'),
        long: &["version"],
        arg: false,
        id: "version",
    },
    Opt {
        short: Some('h'),
        long: &["help"],
        arg: false,
        id: "help",
    },
];

/// Runs `insmod` with `args` (without argv[0]).
pub fn main(prog: &str, args: &mut [&str]) -> i32 {
    let p = getopt::parse(args, OPTS);
    let mut flags = InsertFlags::default();
    for h in p.hits.iter() {
        match h.id {
            "force" => {
                flags = InsertFlags {
                    ignore_modversions: true,
                    ignore_vermagic: true,
                }
            }
            "help" => {
                let _ = writeln!(
                    Out::stdout(),
                    "Usage:\n\t{prog} [options] filename [args]\nOptions:\n\t-f, --force       DANGEROUS: forces a module load, may cause data corruption and crash your machine\n\t-v, --verbose     print messages\n\t-V, --version     show version\n\t-h, --help        show this help"
                );
                return 0;
            }
            "version" => {
                let _ = writeln!(
                    Out::stdout(),
                    "earlymod version {}",
                    env!("CARGO_PKG_VERSION")
                );
                return 0;
            }
            _ => {}
        }
    }
    if let Some(e) = p.error {
        let _ = writeln!(Out::stderr(), "{}", e.show(prog, OPTS));
        return 1;
    }
    let log = Log {
        prog,
        verbose: crate::log::LOG_WARNING,
    };
    let Some((file, rest)) = p.operands.split_first() else {
        log.log(LOG_ERR, format_args!("missing filename."));
        return 1;
    };
    let mut opts: heapless::String<4096> = heapless::String::new();
    for (i, a) in rest.iter().enumerate() {
        if (i > 0 && opts.push(' ').is_err()) || opts.push_str(a).is_err() {
            log.log(
                LOG_ERR,
                format_args!("could not insert module {file}: parameters too long"),
            );
            return 1;
        }
    }
    let Some(path) = CPath::join(&[file]) else {
        log.log(
            LOG_ERR,
            format_args!("could not insert module {file}: path too long"),
        );
        return 1;
    };
    let mut params = Params::from_text(&opts);
    let mut kernel = Live::new();
    let compression = kernel.kernel_compression();
    let result = params
        .as_cstr()
        .and_then(|c| load::insert_file(&mut kernel, path.as_cstr(), c, flags, compression));
    match result {
        Ok(_) => 0,
        Err(e) => {
            log.log(LOG_ERR, format_args!("could not insert module {file}: {e}"));
            1
        }
    }
}
