//! The root package of the flspec workspace. It has no library code of its own: it owns the
//! examples (`cargo run --example NAME`) and the cross-crate integration tests under `tests/`.
//!
//! Its library holds only what the examples, tests and benches share: the SecAgg MNIST flow
//! (`secagg_mnist`) and the plain FedAvg MNIST flow with a choice of aggregator and Byzantine
//! collaborators (`fedavg_mnist`) with the same run as a hand-written tch loop that its benches
//! and tests compare it to (`hand_loop`), all with the `torch` feature (on by default; run
//! `scripts/setup-libtorch.sh` once), and the examples' common plumbing (`example_support`:
//! loading MNIST, progress bars, tables, histories, charts). Data sets, models and local
//! training are the toolkit's: `flspec-tch` (and `flspec::fl` on the server side).
#![warn(missing_docs)]

#[cfg(feature = "torch")]
pub mod example_support;
#[cfg(feature = "torch")]
pub mod fedavg_mnist;
#[cfg(feature = "torch")]
pub mod hand_loop;
#[cfg(feature = "torch")]
pub mod secagg_mnist;

/// The README's code blocks, compiled and run as doctests.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;
