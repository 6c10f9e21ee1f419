//! Build script of the root package: with the `torch` feature, bake an rpath to libtorch's `lib/`
//! folder into the examples, tests and benches, so that they start without `LD_LIBRARY_PATH`.
//! The code is flspec-tch's `build_rpath.rs`, shared by both packages' build scripts
//! (`cargo:rustc-link-arg` applies only to the package whose build script prints it).

include!("flspec-tch/build_rpath.rs");
