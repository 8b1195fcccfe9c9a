fn main() {
    // The static binary starts at origin's `_start`, not libc's.
    println!("cargo:rustc-link-arg-bin=earlymod-static=-nostartfiles");
}
