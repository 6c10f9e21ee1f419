// The build scripts' shared code: flspec-tch's `build.rs` and the root package's `build.rs`
// both `include!` this file (one source for both: `cargo:rustc-link-arg` applies only to the
// targets of the package whose build script prints it, so each package needs its own script).
// With the `torch` feature, it bakes an rpath to libtorch's `lib/` folder into the package's
// examples, tests and benches, so that they start without `LD_LIBRARY_PATH`.
//
// The folder is `$LIBTORCH/lib`; `.cargo/config.toml` points `LIBTORCH` at the project-local
// `.libtorch/` that `scripts/setup-libtorch.sh` creates. (torch-sys, which reads the same
// variable, adds the folder to the link search path, but not to the binaries' run-time path.)
// Plain `//` comments: an included file may not hold inner doc comments. A change here rebuilds
// and so reruns both scripts (cargo tracks a build script's own sources).

use std::env;
use std::path::PathBuf;

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-env-changed=LIBTORCH");
    println!("cargo:rerun-if-env-changed=LIBTORCH_LIB");
    println!("cargo:rerun-if-env-changed=LIBTORCH_USE_PYTORCH");
    // With LIBTORCH_USE_PYTORCH, torch-sys ignores LIBTORCH and the user sets the run-time path.
    if env::var_os("CARGO_FEATURE_TORCH").is_none() || env::var_os("LIBTORCH_USE_PYTORCH").is_some()
    {
        return;
    }
    let target_os = env::var("CARGO_CFG_TARGET_OS").unwrap_or_default();
    if target_os != "linux" && target_os != "macos" {
        return;
    }
    // torch-sys takes the library folder from LIBTORCH_LIB when set, else from LIBTORCH.
    let Some(base) = env::var_os("LIBTORCH_LIB").or_else(|| env::var_os("LIBTORCH")) else {
        // A system libtorch (/usr/lib): no rpath needed.
        return;
    };
    let lib = PathBuf::from(base).join("lib");
    let lib = lib.canonicalize().unwrap_or(lib);
    // For every linked target of this package (examples, tests, benches, the lib's unit tests).
    // Not `rustc-link-arg-tests` etc.: cargo rejects those while the package has no such target.
    println!("cargo:rustc-link-arg=-Wl,-rpath,{}", lib.display());
}
