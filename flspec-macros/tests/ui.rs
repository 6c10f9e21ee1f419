//! Compile-fail and pass tests of `#[flow]`: every compile error the macro reports has a case
//! under `ui/fail/<category>/`, each with the `.stderr` it must produce.
//!
//! The `.stderr` files follow rustc's wording, so they are checked on one pinned toolchain;
//! regenerate them with `TRYBUILD=overwrite cargo test -p flspec-macros --test ui` and read the
//! diff.

#[test]
fn ui() {
    let t = trybuild::TestCases::new();
    t.compile_fail("tests/ui/fail/**/*.rs");
    t.pass("tests/ui/pass/*.rs");
}
