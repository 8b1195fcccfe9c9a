//! kmod index reader: exact and wildcard lookups and a full dump over
//! arbitrary bytes. Input: one length byte, that many key bytes, the index.
#![no_main]

use earlymod_core::index::{Index, Value};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&n, rest)) = data.split_first() else {
        return;
    };
    let n = usize::from(n).min(rest.len());
    let (key, file) = rest.split_at(n);
    let Ok(idx) = Index::new(file) else { return };
    let _ = idx.exact(key);
    let mut out: heapless::Vec<Value<'_>, 64> = heapless::Vec::new();
    let _ = idx.wildcard(key, &mut out);
    let mut count = 0usize;
    let _ = idx.for_each(&mut |_, _| count += 1);
});
