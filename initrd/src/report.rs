//! The pack report (`earlymod-pack --report FILE`): one line per fact, so
//! both a person and `grep` read it.
//!
//! ```text
//! module NAME PATH: WHY          in the image (PATH under lib/modules/KVER);
//!                                WHY: requested (REQ) | device MODALIAS |
//!                                root filesystem (fs-TYPE) | root device
//!                                chain (REQ) | keyboard (REQ) | dependency of M |
//!                                softdep of M | weakdep of M
//! builtin NAME                   needed, built into the kernel: not packed
//! refused NAME: REASON           left out by the target checks
//! request ORIGIN REQ: OUTCOME    ORIGIN: config | rootchain | rootfs |
//!                                keyboard | device; OUTCOME:
//!                                the modules serving it | built in: M |
//!                                no driver | blacklisted: M | failed: WHY
//! firmware MODULE NAME: PATH...  stored at these image paths (links first)
//! firmware MODULE NAME: missing  in no firmware tree
//! microcode PATH: FILE...        an early-member bundle and its source files
//! ```

use std::fmt::Write;

use crate::pack::Report;

/// The report of one packing run, for kernel `kver`.
pub fn render(r: &Report, kver: &str, image: &str) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "# earlymod-pack report: {image} for Linux {kver}: {} modules, {} builtin, {} refused, \
         {} firmware requests ({} missing)",
        r.modules,
        r.builtins.len(),
        r.refused.len(),
        r.firmware.len(),
        r.firmware.iter().filter(|q| q.stored.is_empty()).count()
    );
    for (name, rel, why) in &r.packed {
        let _ = writeln!(out, "module {name} {rel}: {why}");
    }
    for name in &r.builtins {
        let _ = writeln!(out, "builtin {name}");
    }
    for (name, why) in &r.refused {
        let _ = writeln!(out, "refused {name}: {why}");
    }
    for a in &r.answers {
        let _ = writeln!(
            out,
            "request {} {}: {}",
            a.origin.word(),
            a.request,
            a.outcome
        );
    }
    for (path, files, _) in &r.microcode {
        let list: Vec<String> = files.iter().map(|f| f.display().to_string()).collect();
        let _ = writeln!(out, "microcode {path}: {}", list.join(" "));
    }
    for q in &r.firmware {
        let at = if q.stored.is_empty() {
            "missing".to_string()
        } else {
            q.stored.join(" ")
        };
        let _ = writeln!(out, "firmware {} {}: {at}", q.module, q.name);
    }
    out
}
