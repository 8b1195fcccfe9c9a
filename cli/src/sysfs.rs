//! The running kernel's module state from `/sys/module`.

use earlymod_core::probe::{InitState, KernelState};

/// Reads `/sys/module/NAME/initstate`.
pub struct SysfsState;

impl KernelState for SysfsState {
    fn initstate(&self, name: &str) -> InitState {
        let dir = format!("/sys/module/{name}");
        match std::fs::read(format!("{dir}/initstate")) {
            Ok(s) if s == b"live\n" => InitState::Live,
            Ok(_) => InitState::Transient,
            Err(_) if std::path::Path::new(&dir).is_dir() => InitState::Transient,
            Err(_) => InitState::Absent,
        }
    }
}
