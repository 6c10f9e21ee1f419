//! The libtorch side of flspec's federated-learning toolkit, for the steps of flows that train
//! models with [`tch`]: data sets, models, local training, and (with `flspec::fl` for the
//! server side) what a collaborator needs to take part in federated learning.
//!
//! - [`datasets`]: data sets and their loaders ([`datasets::mnist`] needs no libtorch).
//! - [`models`]: models, e.g. the seed tutorial's MNIST CNN ([`models::mnist_cnn::Net`]).
//! - [`train`]: one local epoch of training and validation, as the seed tutorial does them.
//! - [`fedprox`]: FedProx's proximal term `mu/2 * ||w - w_global||^2`, added to a loss in one
//!   call (or to every batch by [`train::train_one_epoch_with`]).
//! - [`threads`]: libtorch's CPU threads, shared among collaborators that train at once.
//!
//! Everything but [`datasets`] needs the `torch` feature (on by default), which links libtorch:
//! run `scripts/setup-libtorch.sh` (`make libtorch`) once in a checkout of the repository.
//! The server-side toolkit (aggregation, partitions, sampling, schedules, history) is
//! `flspec::fl`, which needs no libtorch.
#![warn(missing_docs)]

pub mod datasets;
#[cfg(feature = "torch")]
mod error;
#[cfg(feature = "torch")]
pub mod fedprox;
#[cfg(feature = "torch")]
pub mod models;
#[cfg(feature = "torch")]
pub mod threads;
#[cfg(feature = "torch")]
pub mod train;

#[cfg(feature = "torch")]
pub use error::{Error, Result};
