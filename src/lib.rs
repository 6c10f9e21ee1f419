//! The root package of the flspec workspace. It has no library code of its own: it owns the
//! examples (`cargo run --example NAME`) and the cross-crate integration tests under `tests/`.
