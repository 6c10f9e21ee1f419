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
//! - [`params`]: a model's parameters (a `VarStore`, or tensors in order) as one flat `f32`
//!   vector and back, names and shapes checked ([`params::Layout`]).
//! - [`device`]: `--device auto|cpu|cuda|cuda:N` ([`device::DeviceChoice`]) and its libtorch
//!   device.
//! - [`export`]: a model's parameters as a safetensors file that PyTorch loads, under the seed's
//!   `state_dict()` names ([`export::save_net`]), and back.
//!
//! Everything but [`datasets`] and [`device`]'s parsing needs the `torch` feature (on by
//! default), which links libtorch: run `scripts/setup-libtorch.sh` (`make libtorch`) once in a
//! checkout of the repository.
//! The server-side toolkit (aggregation, partitions, sampling, schedules, history) is
//! `flspec::fl`, which needs no libtorch.
#![warn(missing_docs)]
// Without `torch` the modules the docs above link to are not compiled.
#![cfg_attr(not(feature = "torch"), allow(rustdoc::broken_intra_doc_links))]

pub mod datasets;
pub mod device;
#[cfg(feature = "torch")]
mod error;
#[cfg(feature = "torch")]
pub mod export;
#[cfg(feature = "torch")]
pub mod fedprox;
#[cfg(feature = "torch")]
pub mod models;
#[cfg(feature = "torch")]
pub mod params;
#[cfg(feature = "torch")]
pub mod threads;
#[cfg(feature = "torch")]
pub mod train;

#[cfg(feature = "torch")]
pub use error::{Error, Result};
