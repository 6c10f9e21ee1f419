//! The root package of the flspec workspace. It has no library code of its own: it owns the
//! examples (`cargo run --example NAME`) and the cross-crate integration tests under `tests/`.
//!
//! Its library holds what the examples share: the MNIST loader ([`mnist`], no libtorch needed)
//! and, with the `torch` feature (on by default; run `scripts/setup-libtorch.sh` once), the CNN
//! of the SecAgg MNIST example (`model`).
#![warn(missing_docs)]

pub mod mnist;
#[cfg(feature = "torch")]
pub mod model;
#[cfg(feature = "torch")]
pub mod secagg_mnist;

/// The README's code blocks, compiled and run as doctests.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;
