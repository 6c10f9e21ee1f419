//! Running `cargo build` from inside a test.

use std::process::Command;

/// Removes the variables `cargo test` sets for this test's package (`CARGO_PKG_NAME`,
/// `CARGO_MANIFEST_DIR`, `OUT_DIR`, ...) from a command that runs `cargo build`, directly or
/// through a script: inherited, they differ from a plain build's, and build scripts that watch
/// them (ring's `rerun-if-env-changed=CARGO_PKG_NAME`) run again, so the nested build and the
/// next plain one rebuild those crates.
pub fn without_package_env(command: &mut Command) -> &mut Command {
    for (key, _) in std::env::vars_os() {
        let k = key.to_string_lossy();
        let inherited = [
            "CARGO_PKG_",
            "CARGO_MANIFEST_",
            "CARGO_CRATE_",
            "CARGO_BIN_",
            "CARGO_PRIMARY_",
        ]
        .iter()
        .any(|p| k.starts_with(p))
            || k == "OUT_DIR"
            || k == "CARGO_TARGET_TMPDIR";
        if inherited {
            command.env_remove(&key);
        }
    }
    command
}
