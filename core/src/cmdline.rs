//! The kernel command line: module options and blacklists as libkmod reads
//! them (`mod.param=value`, `modprobe.blacklist=a,b`), and the boot
//! parameters initramfs tools read (`modules_load=`, `rd.modules_load=`,
//! `rd.driver.pre=`, `rd.driver.blacklist=`).

use crate::config::Config;
use crate::error::{Error, Result};
use crate::name::underscores;

/// Longest command line read (the kernel's `COMMAND_LINE_SIZE` on x86 is 2048;
/// libkmod reads up to 4095 bytes).
pub const MAX_CMDLINE: usize = 4095;
/// Bound on entries of one command line, and on each list of
/// [`BootParams`] (a 4095-byte line holds at most ~1000 `mod.param`s, but
/// up to 2047 comma-separated names).
pub const MAX_ITEMS: usize = 1024;
/// Byte range in the command line (it is at most [`MAX_CMDLINE`] long).
type Range = (u16, u16);

#[derive(Clone, Copy, PartialEq, Eq)]
enum State {
    Ignore,
    ModName,
    Param,
    Value,
}

/// A recognised `mod.param[=value]` or blacklist entry, as byte ranges.
#[derive(Clone, Copy)]
enum Item {
    Option { name: Range, param: Range },
    Blacklist { list: Range },
    BadName { name: Range },
}

fn range(a: usize, b: usize) -> Range {
    (a as u16, b as u16)
}

/// Applies the kernel command line to `cfg` the way libkmod does after
/// reading the config files: `mod.param=v` appends `options mod param=v`,
/// `modprobe.blacklist=a,b` appends blacklist entries (not normalized).
/// `text` is parsed in place (names are normalized, quotes re-placed).
/// `bad` receives module names that could not be normalized. An entry
/// that does not fit its bound is dropped and the rest still applied (a
/// full options list does not lose the blacklist); the first such bound is
/// the error.
pub fn apply_kernel_cmdline<'a>(
    cfg: &mut Config<'a>,
    text: &'a mut [u8],
    bad: &mut dyn FnMut(&str),
) -> Result<()> {
    let len = text.len().min(MAX_CMDLINE);
    let text = &mut text[..len];
    let mut items: heapless::Vec<Item, MAX_ITEMS> = heapless::Vec::new();
    scan(text, &mut items)?;
    let text: &'a [u8] = text;
    let s = |(a, b): Range| {
        core::str::from_utf8(&text[usize::from(a)..usize::from(b)]).map_err(|_| Error::NotUtf8)
    };
    let mut full = Ok(());
    let mut note = |e: Error| {
        if full.is_ok() {
            full = Err(e);
        }
    };
    for item in items {
        match item {
            Item::Option { name, param } => {
                let (Ok(n), Ok(p)) = (s(name), s(param)) else {
                    continue;
                };
                if cfg.options.push((n, p)).is_err() {
                    note(Error::Capacity(
                        "config options",
                        crate::config::MAX_OPTIONS,
                    ));
                }
            }
            Item::Blacklist { list } => {
                let Ok(l) = s(list) else { continue };
                for entry in l.split(',') {
                    if cfg.blacklist.push(entry).is_err() {
                        note(Error::Capacity(
                            "config blacklist entries",
                            crate::config::MAX_BLACKLIST,
                        ));
                    }
                }
            }
            Item::BadName { name } => bad(s(name).unwrap_or("?")),
        }
    }
    full
}

/// libkmod's `kmod_config_parse_kcmdline` state machine over `b`
/// (an implicit NUL follows the last byte).
fn scan(b: &mut [u8], items: &mut heapless::Vec<Item, MAX_ITEMS>) -> Result<()> {
    let len = b.len();
    let mut state = State::ModName;
    let mut quoted = false;
    let mut quote_start: Option<usize> = None;
    let (mut modname, mut name_end, mut param, mut value) = (0usize, 0usize, None::<usize>, 0usize);
    let mut p = 0usize;
    let mut stop = false;
    while p <= len {
        let c = if p < len { b[p] } else { 0 };
        let mut complete = false;
        match c {
            b'"' => {
                quoted = !quoted;
                if quoted && state == State::ModName && p == modname {
                    quote_start = Some(p);
                    modname = p + 1;
                } else if state != State::Value {
                    state = State::Ignore;
                }
            }
            0 | b' ' | b'\n' | b'\t' | 0x0b | 0x0c | b'\r' => {
                if quoted && state == State::Value {
                } else if quoted {
                    state = State::Ignore;
                } else if state == State::Value || state == State::Param {
                    complete = true;
                } else {
                    modname = p + 1;
                    state = State::ModName;
                    quote_start = None;
                }
                // An embedded NUL ends the line, as in C.
                stop = c == 0 && p < len;
            }
            b'.' => {
                if state == State::ModName {
                    name_end = p;
                    param = Some(p + 1);
                    state = State::Param;
                } else if state == State::Param {
                    state = State::Ignore;
                }
            }
            b'=' => {
                if state == State::Param {
                    value = p + 1;
                    state = State::Value;
                } else if state == State::ModName {
                    state = State::Ignore;
                }
            }
            _ => {}
        }
        if complete {
            finish(
                b,
                items,
                quote_start,
                modname,
                &mut name_end,
                param,
                &mut value,
                p,
            )?;
            modname = p + 1;
            state = State::ModName;
            quote_start = None;
            param = None;
        }
        if stop {
            return Ok(());
        }
        p += 1;
    }
    Ok(())
}

/// Records one complete `mod.param[=value]` ending at `end`.
#[allow(clippy::too_many_arguments)]
fn finish(
    b: &mut [u8],
    items: &mut heapless::Vec<Item, MAX_ITEMS>,
    quote_start: Option<usize>,
    mut modname: usize,
    name_end: &mut usize,
    param: Option<usize>,
    value: &mut usize,
    end: usize,
) -> Result<()> {
    let Some(mut param) = param else {
        return Ok(());
    };
    if let Some(q) = quote_start.filter(|&q| q < modname) {
        // "mod.param=a b" → mod.param="a b": shift name and param left over
        // the opening quote and put it back in front of the value.
        if *value > modname {
            b.copy_within(modname..*value, q);
            *value -= 1;
            b[*value] = b'"';
        }
        modname -= 1;
        param -= 1;
        *name_end -= 1;
    }
    let name = range(modname, *name_end);
    let param_r = range(param, end);
    let push = |items: &mut heapless::Vec<Item, MAX_ITEMS>, it| {
        items
            .push(it)
            .map_err(|_| Error::Capacity("kernel command-line entries", MAX_ITEMS))
    };
    if &b[modname..*name_end] == b"modprobe" && b[param..end].starts_with(b"blacklist=") {
        push(
            items,
            Item::Blacklist {
                list: range(param + 10, end),
            },
        )?;
    } else if underscores(&mut b[modname..*name_end]).is_err() {
        push(items, Item::BadName { name })?;
    } else {
        push(
            items,
            Item::Option {
                name,
                param: param_r,
            },
        )?;
    }
    Ok(())
}

/// Splits a command line into words the way the kernel does: whitespace
/// separates, double quotes group (and are removed from the key=value view).
pub fn words(cmdline: &str) -> impl Iterator<Item = &str> {
    let b = cmdline.as_bytes();
    let mut i = 0usize;
    core::iter::from_fn(move || {
        while i < b.len() && b[i].is_ascii_whitespace() {
            i += 1;
        }
        if i >= b.len() {
            return None;
        }
        let start = i;
        let mut quoted = false;
        while i < b.len() && (quoted || !b[i].is_ascii_whitespace()) {
            if b[i] == b'"' {
                quoted = !quoted;
            }
            i += 1;
        }
        Some(&cmdline[start..i])
    })
}

/// `key=value` of a command-line word, quotes around the value removed.
pub fn key_value(word: &str) -> (&str, Option<&str>) {
    let word = word
        .strip_prefix('"')
        .map(|w| w.strip_suffix('"').unwrap_or(w))
        .unwrap_or(word);
    match word.split_once('=') {
        Some((k, v)) => (k, Some(v.trim_matches('"'))),
        None => (word, None),
    }
}

/// The initramfs boot parameters earlymod honours, in command-line order.
#[derive(Debug, Default)]
pub struct BootParams<'a> {
    /// `rd.driver.pre=` modules, loaded first.
    pub driver_pre: heapless::Vec<&'a str, MAX_ITEMS>,
    /// `modules_load=` and `rd.modules_load=` modules.
    pub modules_load: heapless::Vec<&'a str, MAX_ITEMS>,
    /// `rd.driver.post=` modules, loaded after coldplug settled.
    pub driver_post: heapless::Vec<&'a str, MAX_ITEMS>,
    /// `rd.driver.blacklist=` and `modprobe.blacklist=` modules.
    pub blacklist: heapless::Vec<&'a str, MAX_ITEMS>,
}

impl<'a> BootParams<'a> {
    /// Collects the lists from a command line (comma-separated values,
    /// repeated keys accumulate). A list that fills its bound
    /// ([`MAX_ITEMS`]) keeps its first entries and the other lists are
    /// still collected whole; the first list that filled is the error
    /// (an overflow never drops the rest of the command line).
    pub fn parse(cmdline: &'a str) -> (Self, Result<()>) {
        let mut bp = BootParams::default();
        let mut full = Ok(());
        for w in words(cmdline) {
            let (k, Some(v)) = key_value(w) else { continue };
            let (list, what) = match k {
                "rd.driver.pre" => (&mut bp.driver_pre, "rd.driver.pre modules"),
                "rd.driver.post" => (&mut bp.driver_post, "rd.driver.post modules"),
                "modules_load" | "rd.modules_load" | "modules-load" | "rd.modules-load" => {
                    (&mut bp.modules_load, "modules_load modules")
                }
                "rd.driver.blacklist" | "modprobe.blacklist" => {
                    (&mut bp.blacklist, "rd.driver.blacklist modules")
                }
                _ => continue,
            };
            for m in v.split(',').filter(|m| !m.is_empty()) {
                if list.push(m).is_err() && full.is_ok() {
                    full = Err(Error::Capacity(what, MAX_ITEMS));
                }
            }
        }
        (bp, full)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn apply<'a>(cfg: &mut Config<'a>, text: &'a mut [u8]) {
        apply_kernel_cmdline(cfg, text, &mut |_| {}).unwrap();
    }

    #[test]
    fn options_and_blacklist() {
        let mut t =
            *b"ro snd-hda-intel.model=x a.b c.d=1 modprobe.blacklist=e1000,nvme x.y.z=1 =q quiet\n";
        let mut cfg = Config::new();
        apply(&mut cfg, &mut t);
        assert_eq!(
            &cfg.options[..],
            &[("snd_hda_intel", "model=x"), ("a", "b"), ("c", "d=1")]
        );
        assert_eq!(&cfg.blacklist[..], &["e1000", "nvme"]);
    }

    /// Options that do not fit are dropped; the blacklist after them still
    /// applies, and the error names the bound.
    #[test]
    fn a_full_options_list_keeps_the_blacklist() {
        let mut text = *b"a.b=1 modprobe.blacklist=x,y c.d=2";
        let mut cfg = Config::new();
        for _ in 0..crate::config::MAX_OPTIONS {
            cfg.options.push(("m", "p=1")).unwrap();
        }
        let r = apply_kernel_cmdline(&mut cfg, &mut text, &mut |_| {});
        assert_eq!(
            r,
            Err(Error::Capacity(
                "config options",
                crate::config::MAX_OPTIONS
            ))
        );
        assert_eq!(&cfg.blacklist[..], &["x", "y"]);
        assert_eq!(cfg.options.len(), crate::config::MAX_OPTIONS);
    }

    #[test]
    fn a_full_length_command_line_fits() {
        let mut t = [b' '; MAX_CMDLINE];
        for chunk in t.chunks_mut(4) {
            if chunk.len() == 4 {
                chunk[..3].copy_from_slice(b"a.b");
            }
        }
        let mut cfg = Config::new();
        apply(&mut cfg, &mut t);
        assert_eq!(cfg.options.len(), MAX_CMDLINE / 4);
    }

    #[test]
    fn quotes() {
        let mut t = *b"\"parport.dyndbg=file drivers/x.c +mpf\" m.p=\"a b\" n.\"q\"=1\n";
        let mut cfg = Config::new();
        apply(&mut cfg, &mut t);
        assert_eq!(
            &cfg.options[..],
            &[
                ("parport", "dyndbg=\"file drivers/x.c +mpf\""),
                ("m", "p=\"a b\"")
            ]
        );
    }

    #[test]
    fn boot_params() {
        let (bp, full) = BootParams::parse(
            "rd.driver.pre=a,b modules_load=c rd.modules_load=\"d,e\" rd.driver.blacklist=f rd.driver.post=g,h",
        );
        assert_eq!(full, Ok(()));
        assert_eq!(&bp.driver_post[..], &["g", "h"]);
        assert_eq!(&bp.driver_pre[..], &["a", "b"]);
        assert_eq!(&bp.modules_load[..], &["c", "d", "e"]);
        assert_eq!(&bp.blacklist[..], &["f"]);
    }

    /// One list over its bound keeps its first MAX_ITEMS names and names
    /// the bound; every other rd.* parameter still counts (they used to be
    /// dropped together).
    #[test]
    fn an_overfull_boot_param_list_keeps_the_others() {
        extern crate std;
        let mut line = std::string::String::from("rd.driver.pre=p rd.driver.blacklist=b1 ");
        line.push_str("rd.modules_load=");
        for i in 0..MAX_ITEMS + 5 {
            line.push_str(&std::format!("m{i},"));
        }
        line.push_str(" modprobe.blacklist=b2 rd.modules_load=late");
        let (bp, full) = BootParams::parse(&line);
        assert_eq!(
            full,
            Err(Error::Capacity("modules_load modules", MAX_ITEMS))
        );
        assert_eq!(
            std::format!("{}", full.unwrap_err()),
            "too many modules_load modules (limit 1024)"
        );
        assert_eq!(&bp.driver_pre[..], &["p"]);
        assert_eq!(&bp.blacklist[..], &["b1", "b2"]);
        assert_eq!(bp.modules_load.len(), MAX_ITEMS);
        assert_eq!(bp.modules_load[MAX_ITEMS - 1], "m1023");
        // At the bound: no error.
        let mut line = std::string::String::from("rd.modules_load=");
        for i in 0..MAX_ITEMS {
            line.push_str(&std::format!("m{i},"));
        }
        let (bp, full) = BootParams::parse(&line);
        assert_eq!((bp.modules_load.len(), full), (MAX_ITEMS, Ok(())));
    }
}
