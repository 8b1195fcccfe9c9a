//! Module-name and alias normalization, as libkmod does it.

use crate::error::{Error, Result};

/// Longest module name (the kernel's `MODULE_NAME_LEN` is 56 with the NUL).
pub const MAX_NAME: usize = 64;
/// Longest alias accepted from a user or a config file.
pub const MAX_ALIAS: usize = 1024;

/// An owned, normalized module name.
pub type ModName = heapless::String<MAX_NAME>;
/// An owned, normalized alias.
pub type AliasBuf = heapless::String<MAX_ALIAS>;

/// `-` → `_` outside `[...]`; an unbalanced `]` or `[` is an error
/// (libkmod's `alias_normalize`).
pub fn normalize_alias(input: &str, out: &mut AliasBuf) -> Result<()> {
    out.clear();
    let b = input.as_bytes();
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'-' => push(out, '_')?,
            b']' => return Err(Error::InvalidAlias),
            b'[' => {
                let close = b[i..]
                    .iter()
                    .position(|&c| c == b']')
                    .ok_or(Error::InvalidAlias)?;
                out.push_str(&input[i..=i + close])
                    .map_err(|_| Error::TooLong("alias", MAX_ALIAS))?;
                i += close;
            }
            _ => {
                let start = i;
                while i + 1 < b.len() && !matches!(b[i + 1], b'-' | b'[' | b']') {
                    i += 1;
                }
                out.push_str(&input[start..=i])
                    .map_err(|_| Error::TooLong("alias", MAX_ALIAS))?;
            }
        }
        i += 1;
    }
    Ok(())
}

fn push(out: &mut AliasBuf, c: char) -> Result<()> {
    out.push(c).map_err(|_| Error::TooLong("alias", MAX_ALIAS))
}

/// In-place form of [`normalize_alias`] used on config text (libkmod's `underscores`).
pub fn underscores(s: &mut [u8]) -> Result<()> {
    let mut i = 0;
    while i < s.len() {
        match s[i] {
            b'-' => s[i] = b'_',
            b']' => return Err(Error::InvalidAlias),
            b'[' => {
                i += s[i..]
                    .iter()
                    .position(|&c| c == b']')
                    .ok_or(Error::InvalidAlias)?;
            }
            _ => {}
        }
        i += 1;
    }
    Ok(())
}

/// True when [`normalize_alias`] would accept `s`.
pub fn alias_is_valid(s: &str) -> bool {
    let b = s.as_bytes();
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b']' => return false,
            b'[' => match b[i..].iter().position(|&c| c == b']') {
                Some(p) => i += p,
                None => return false,
            },
            _ => {}
        }
        i += 1;
    }
    true
}

/// Module name from a name or file name: `-` → `_`, cut at the first `.`.
pub fn modname(input: &str) -> Result<ModName> {
    let end = input.find('.').unwrap_or(input.len());
    let stem = &input[..end];
    let mut out = ModName::new();
    out.push_str(stem)
        .map_err(|_| Error::TooLong("module name", MAX_NAME))?;
    if stem.contains('-') {
        let fixed: ModName = stem
            .chars()
            .map(|c| if c == '-' { '_' } else { c })
            .collect();
        return Ok(fixed);
    }
    Ok(out)
}

/// Module name of a module path (`kernel/fs/ext4/ext4.ko.xz` → `ext4`).
pub fn modname_from_path(path: &str) -> Result<ModName> {
    modname(path.rsplit('/').next().unwrap_or(path))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn alias_normalization() {
        let mut out = AliasBuf::new();
        normalize_alias("snd-hda-intel", &mut out).unwrap();
        assert_eq!(out, "snd_hda_intel");
        normalize_alias("a-[x-y]-b", &mut out).unwrap();
        assert_eq!(out, "a_[x-y]_b");
        assert_eq!(normalize_alias("a]", &mut out), Err(Error::InvalidAlias));
        assert_eq!(normalize_alias("a[b", &mut out), Err(Error::InvalidAlias));
        let mut s = *b"a-[x-y]-b";
        underscores(&mut s).unwrap();
        assert_eq!(&s, b"a_[x-y]_b");
        assert!(alias_is_valid("a-[x]"));
        assert!(!alias_is_valid("a-[x"));
    }

    #[test]
    fn module_names() {
        assert_eq!(modname("snd-hda-intel.ko.xz").unwrap(), "snd_hda_intel");
        assert_eq!(modname_from_path("kernel/fs/ext4/ext4.ko").unwrap(), "ext4");
        let long = "x".repeat(65);
        assert_eq!(modname(&long), Err(Error::TooLong("module name", MAX_NAME)));
    }
}
