//! Build script of flspec-tch: with the `torch` feature, bake an rpath to libtorch's `lib/`
//! folder into the crate's tests and examples, so that they start without `LD_LIBRARY_PATH`.
//! The code is in `build_rpath.rs`, which the root package's build script includes too.

include!("build_rpath.rs");
