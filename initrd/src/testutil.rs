//! Helpers shared by the unit tests.

use std::io::Write;
use std::path::Path;
use std::process::{Command, Output, Stdio};

/// Runs `cmd args` in `dir` with `input` on stdin; panics unless it exits 0.
pub fn run(cmd: &str, args: &[&str], dir: Option<&Path>, input: &[u8]) -> Output {
    let mut c = Command::new(cmd);
    c.args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    if let Some(dir) = dir {
        c.current_dir(dir);
    }
    let mut child = c
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {cmd}: {e}"));
    let mut stdin = child.stdin.take().expect("piped stdin");
    let input = input.to_vec();
    let writer = std::thread::spawn(move || stdin.write_all(&input));
    let out = child.wait_with_output().expect("wait");
    writer.join().expect("writer").expect("write stdin");
    assert!(
        out.status.success(),
        "{cmd} {args:?}: {}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    out
}
