fn main() {
    // The static binary starts at origin's `_start`, not libc's.
    println!("cargo:rustc-link-arg-bin=earlymod-static=-nostartfiles");
    // No unwind tables: see noeh.ld.
    let dir = std::env::var("CARGO_MANIFEST_DIR").unwrap_or_else(|_| ".".into());
    println!("cargo:rustc-link-arg-bin=earlymod-static=-Wl,--no-eh-frame-hdr");
    println!("cargo:rustc-link-arg-bin=earlymod-static=-Wl,-T,{dir}/noeh.ld");
    println!("cargo:rerun-if-changed=noeh.ld");
    println!("cargo:rerun-if-changed=build.rs");
    // `userspace_decoders`: at least one of the gzip/xz/zstd features.
    println!("cargo::rustc-check-cfg=cfg(userspace_decoders)");
    if ["GZIP", "XZ", "ZSTD"]
        .iter()
        .any(|f| std::env::var_os(format!("CARGO_FEATURE_{f}")).is_some())
    {
        println!("cargo:rustc-cfg=userspace_decoders");
    }
}
