//! systemd `modules-load.d` files: one module per line, `#` and `;` comments.

/// The module names listed in one `modules-load.d/*.conf` file, in order.
pub fn modules_load_names(text: &str) -> impl Iterator<Item = &str> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#') && !l.starts_with(';'))
}

/// The directories systemd reads, in precedence order.
pub const MODULES_LOAD_DIRS: [&str; 4] = [
    "/etc/modules-load.d",
    "/run/modules-load.d",
    "/usr/local/lib/modules-load.d",
    "/usr/lib/modules-load.d",
];

#[cfg(test)]
mod tests {
    #[test]
    fn names() {
        let v: heapless::Vec<&str, 4> =
            super::modules_load_names("# c\n; c\n\n ext4 \nvirtio_blk\n").collect();
        assert_eq!(&v[..], &["ext4", "virtio_blk"]);
    }
}
