//! `fnmatch(pattern, string, 0)` as glibc implements it in the C locale:
//! `*`, `?`, bracket expressions with `!`/`^` negation, ranges and POSIX
//! classes, and backslash escapes. No flags: `/` and leading `.` are ordinary.

/// Returns true when `text` matches the glob `pattern` (flags 0).
pub fn fnmatch(pattern: &[u8], text: &[u8]) -> bool {
    fnmatch_counted(pattern, text, &mut 0)
}

/// [`fnmatch`], adding the work it did to `steps` (pattern positions
/// visited, bracket bytes scanned): at most about `pattern.len() *
/// text.len()`, usually `pattern.len() + text.len()`. Callers running many
/// matches over untrusted patterns budget with it.
pub fn fnmatch_counted(pattern: &[u8], text: &[u8], steps: &mut usize) -> bool {
    let (mut p, mut t) = (0usize, 0usize);
    // Position after the last `*` seen and the text position it is retried from.
    let mut star: Option<(usize, usize)> = None;
    loop {
        *steps += 1;
        if p < pattern.len() {
            match pattern[p] {
                b'*' => {
                    while p < pattern.len() && pattern[p] == b'*' {
                        p += 1;
                    }
                    if p == pattern.len() {
                        return true;
                    }
                    star = Some((p, t));
                    continue;
                }
                b'?' if t < text.len() => {
                    p += 1;
                    t += 1;
                    continue;
                }
                b'[' if t < text.len() => match bracket(pattern, p, text[t], steps) {
                    Bracket::Match(next) => {
                        p = next;
                        t += 1;
                        continue;
                    }
                    Bracket::NoMatch => {}
                    Bracket::Literal if text[t] == b'[' => {
                        p += 1;
                        t += 1;
                        continue;
                    }
                    Bracket::Literal => {}
                },
                b'\\' if p + 1 < pattern.len() && t < text.len() && text[t] == pattern[p + 1] => {
                    p += 2;
                    t += 1;
                    continue;
                }
                b'\\' if p + 1 < pattern.len() => {}
                c if t < text.len() && c == text[t] => {
                    p += 1;
                    t += 1;
                    continue;
                }
                _ => {}
            }
        } else if t == text.len() {
            return true;
        }
        // Mismatch: let the last `*` swallow one more byte, if there is one.
        match star {
            Some((sp, st)) if st < text.len() => {
                star = Some((sp, st + 1));
                p = sp;
                t = st + 1;
            }
            _ => return false,
        }
    }
}

enum Bracket {
    /// The byte is in the set; the pattern continues at this index.
    Match(usize),
    NoMatch,
    /// No closing `]`: the `[` is an ordinary character.
    Literal,
}

/// Matches byte `c` against the bracket expression starting at `pattern[open] == b'['`.
fn bracket(pattern: &[u8], open: usize, c: u8, steps: &mut usize) -> Bracket {
    let mut i = open + 1;
    let negate = matches!(pattern.get(i), Some(b'!') | Some(b'^'));
    if negate {
        i += 1;
    }
    let mut matched = false;
    let mut first = true;
    loop {
        *steps += 1;
        let Some(&b) = pattern.get(i) else {
            return Bracket::Literal;
        };
        if b == b']' && !first {
            i += 1;
            break;
        }
        first = false;
        // (No let-chain: the workspace builds on Rust 1.85.)
        let class = match b == b'[' && pattern.get(i + 1) == Some(&b':') {
            true => class_name(pattern, i + 2),
            false => None,
        };
        if let Some((class_end, name)) = class {
            match class_matches(name, c) {
                Some(hit) => matched |= hit,
                None => return Bracket::NoMatch,
            }
            i = class_end;
            continue;
        }
        let (lo, after_lo) = match escaped(pattern, i) {
            Some(v) => v,
            None => return Bracket::Literal,
        };
        if pattern.get(after_lo) == Some(&b'-')
            && pattern.get(after_lo + 1).is_some_and(|&n| n != b']')
        {
            let Some((hi, after_hi)) = escaped(pattern, after_lo + 1) else {
                return Bracket::Literal;
            };
            if lo <= c && c <= hi {
                matched = true;
            }
            i = after_hi;
        } else {
            if lo == c {
                matched = true;
            }
            i = after_lo;
        }
    }
    if matched != negate {
        Bracket::Match(i)
    } else {
        Bracket::NoMatch
    }
}

/// One possibly backslash-escaped byte inside a bracket expression.
fn escaped(pattern: &[u8], i: usize) -> Option<(u8, usize)> {
    match pattern.get(i)? {
        b'\\' => pattern.get(i + 1).map(|&b| (b, i + 2)),
        &b => Some((b, i + 1)),
    }
}

/// Finds `name:]` starting at `start`; returns the index after `]` and the name.
fn class_name(pattern: &[u8], start: usize) -> Option<(usize, &[u8])> {
    let rest = pattern.get(start..)?;
    let end = rest.windows(2).position(|w| w == b":]")?;
    Some((start + end + 2, &rest[..end]))
}

fn class_matches(name: &[u8], c: u8) -> Option<bool> {
    Some(match name {
        b"alnum" => c.is_ascii_alphanumeric(),
        b"alpha" => c.is_ascii_alphabetic(),
        b"blank" => c == b' ' || c == b'\t',
        b"cntrl" => c.is_ascii_control(),
        b"digit" => c.is_ascii_digit(),
        b"graph" => c.is_ascii_graphic(),
        b"lower" => c.is_ascii_lowercase(),
        b"print" => c.is_ascii_graphic() || c == b' ',
        b"punct" => c.is_ascii_punctuation(),
        b"space" => matches!(c, b' ' | b'\t' | b'\n' | b'\r' | 0x0b | 0x0c),
        b"upper" => c.is_ascii_uppercase(),
        b"xdigit" => c.is_ascii_hexdigit(),
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::fnmatch;

    fn m(p: &str, t: &str) -> bool {
        fnmatch(p.as_bytes(), t.as_bytes())
    }

    #[test]
    fn literals_and_wildcards() {
        assert!(m("abc", "abc"));
        assert!(!m("abc", "abd"));
        assert!(!m("abc", "abcd"));
        assert!(m("a*", "a"));
        assert!(m("a*c", "abbbc"));
        assert!(m("*", ""));
        assert!(m("a?c", "abc"));
        assert!(!m("a?c", "ac"));
        assert!(m(
            "pci:v00008086d*sv*sd*bc02sc00i*",
            "pci:v00008086d0000100Esv0000sd0000bc02sc00i00"
        ));
        assert!(m("*a*b*c", "xxaybzzc"));
        assert!(!m("*a*b*c", "xxaybzzd"));
        assert!(m("a/b*", "a/b/c"));
        assert!(m("*", ".hidden"));
    }

    #[test]
    fn brackets() {
        assert!(m("[abc]", "b"));
        assert!(!m("[abc]", "d"));
        assert!(m("[a-c]x", "bx"));
        assert!(m("[!a-c]", "d"));
        assert!(m("[^a-c]", "d"));
        assert!(!m("[!a-c]", "a"));
        assert!(m("[]]", "]"));
        assert!(m("[!]]", "a"));
        assert!(m("[a-]", "-"));
        assert!(m("[[:digit:]]x", "7x"));
        assert!(!m("[[:alpha:]]", "7"));
        assert!(m("[", "["));
        assert!(m("a[b", "a[b"));
        assert!(m("dmi*:rvn[Ll][Ee][Nn]*", "dmi:bvn:rvnLENOVO"));
    }

    #[test]
    fn escapes() {
        assert!(m("a\\*", "a*"));
        assert!(!m("a\\*", "ab"));
        assert!(m("[\\]]", "]"));
    }
}

/// True unless no pattern that starts with `prefix` can match `text`:
/// the literal segments of `prefix` (split at `*`, with `?` matching any
/// byte) must occur in `text` in order, the first one at the start. Used to
/// skip index subtrees. Conservative: any `[` or `\` answers true.
pub fn prefix_may_match(prefix: &[u8], text: &[u8]) -> bool {
    prefix_may_match_counted(prefix, text, &mut 0)
}

/// [`prefix_may_match`], adding the work it did to `steps` (bytes
/// compared, at most `prefix.len() * text.len()`).
pub fn prefix_may_match_counted(prefix: &[u8], text: &[u8], steps: &mut usize) -> bool {
    *steps += prefix.len();
    if prefix.iter().any(|&b| b == b'[' || b == b'\\') {
        return true;
    }
    let mut segments = prefix.split(|&b| b == b'*');
    let first = segments.next().unwrap_or(&[]);
    // The part before the first `*` is anchored at the start of the text.
    if !seg_matches_at(first, text, 0) {
        return false;
    }
    let mut pos = first.len();
    for seg in segments {
        match (pos..=text.len().saturating_sub(seg.len())).find(|&i| {
            *steps += seg.len().max(1);
            seg_matches_at(seg, text, i)
        }) {
            Some(i) if i + seg.len() <= text.len() => pos = i + seg.len(),
            _ => return false,
        }
    }
    true
}

fn seg_matches_at(seg: &[u8], text: &[u8], at: usize) -> bool {
    text.len() >= at + seg.len()
        && seg
            .iter()
            .zip(&text[at..])
            .all(|(&p, &t)| p == b'?' || p == t)
}

#[cfg(test)]
mod prefix_tests {
    use super::{fnmatch, prefix_may_match};

    #[test]
    fn prefix_pruning_is_sound() {
        let text = b"pci:v00008086d0000100Esv00001AF4sd00001100bc02sc00i00";
        assert!(prefix_may_match(b"*d*sv*sd*bc02", text));
        assert!(!prefix_may_match(b"*d*sv*sd*bc0C", text));
        assert!(prefix_may_match(b"pci:v0000", text));
        assert!(!prefix_may_match(b"pci:v0001", text));
        assert!(prefix_may_match(b"*i0", text));
        assert!(prefix_may_match(b"[x", text));
        // Every pattern that matches implies its prefixes may match.
        let patterns: [&[u8]; 6] = [
            b"pci:v*d*sv*sd*bc02sc*i*",
            b"*",
            b"pci:v00008086d*",
            b"p?i:*i00",
            b"*00",
            b"pci:v*bc02sc00i00",
        ];
        for p in patterns {
            assert!(fnmatch(p, text));
            for n in 0..=p.len() {
                assert!(
                    prefix_may_match(&p[..n], text),
                    "{:?}",
                    core::str::from_utf8(&p[..n])
                );
            }
        }
        // Exhaustive cross-check on short strings over a tiny alphabet.
        let alpha = [b'a', b'b', b'*', b'?'];
        let mut pat = [0u8; 4];
        for n in 0..4usize.pow(4) {
            let mut k = n;
            for c in pat.iter_mut() {
                *c = alpha[k % 4];
                k /= 4;
            }
            for t in [&b"ab"[..], b"ba", b"aab", b"b", b""] {
                for len in 0..=4 {
                    if fnmatch(&pat[..len], t) {
                        for m in 0..=len {
                            assert!(prefix_may_match(&pat[..m], t));
                        }
                    }
                }
            }
        }
    }
}
