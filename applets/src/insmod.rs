//! The `insmod` applet: `insmod [-f] FILE [PARAMS...]`, loading one file the
//! way modprobe loads a module (kernel decompression when it can).

use crate::kernel::Live;
use crate::log::{LOG_ERR, Log};
use crate::sys::CPath;
use earlymod_core::load::{self, InsertFlags, Kernel, Params};

/// Runs `insmod` with `args` (without `argv[0]`).
pub fn main(prog: &str, args: &mut [&str]) -> i32 {
    let (force, operands) = match crate::force_options(
        prog,
        args,
        "filename [args]",
        "DANGEROUS: forces a module load, may cause data corruption and crash your machine",
    ) {
        Ok(r) => r,
        Err(code) => return code,
    };
    let flags = InsertFlags {
        ignore_modversions: force,
        ignore_vermagic: force,
    };
    let log = Log {
        prog,
        verbose: crate::log::LOG_WARNING,
    };
    let Some((file, rest)) = operands.split_first() else {
        log.say(LOG_ERR, &[&"missing filename."]);
        return 1;
    };
    // The kernel takes the parameters as one C string.
    let mut opts: heapless::String<{ load::MAX_PARAMS }> = heapless::String::new();
    for (i, a) in rest.iter().enumerate() {
        if (i > 0 && opts.push(' ').is_err())
            || opts.push_str(a).is_err()
            || opts.len() >= load::MAX_PARAMS
        {
            log.say(
                LOG_ERR,
                &[
                    &"could not insert module ",
                    file,
                    &": parameters too long (limit ",
                    &(load::MAX_PARAMS - 1),
                    &" bytes)",
                ],
            );
            return 1;
        }
    }
    let Some(path) = CPath::join(&[file]) else {
        log.say(
            LOG_ERR,
            &[
                &"could not insert module ",
                &crate::modprobe::Short(file),
                &": path too long (limit ",
                &(load::MAX_PATH - 1),
                &" bytes)",
            ],
        );
        return 1;
    };
    let mut kernel = Live::new();
    let compression = kernel.kernel_compression();
    let result = Params::from_text(&opts).and_then(|mut params| {
        let c = params.as_cstr()?;
        load::insert_file(&mut kernel, path.as_cstr(), c, flags, compression)
    });
    match result {
        Ok(_) => 0,
        Err(e) => {
            log.say(LOG_ERR, &[&"could not insert module ", file, &": ", &e]);
            1
        }
    }
}
