//! Helpers shared by the unit tests.

use std::path::{Path, PathBuf};

/// A scratch directory removed when dropped.
pub struct TempDir(PathBuf);

impl TempDir {
    /// A fresh directory named after `tag`, the process and the thread.
    pub fn new(tag: &str) -> TempDir {
        let p = std::env::temp_dir().join(format!(
            "earlymod-{tag}-{}-{:?}",
            std::process::id(),
            std::thread::current().id()
        ));
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir_all(&p).unwrap();
        TempDir(p)
    }

    /// The directory.
    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}
