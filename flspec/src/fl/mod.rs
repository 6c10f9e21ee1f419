//! The federated-learning toolkit: what a flow's steps call to do federated learning rather
//! than workflow. Plain functions and types over `f32` parameter vectors, with no libtorch and
//! no async runtime, so that they work in any step on any runtime.
//!
//! - [`aggregate`]: server-side aggregation. Means and the FedOpt server optimizers need only
//!   the sum of the updates, so they compose with secure aggregation; the robust aggregators
//!   (median, trimmed mean, Krum, Bulyan) need each update and take them by a type that a
//!   secure-aggregation sum cannot be.
//! - [`partition`]: splitting a data set across sites (IID, Dirichlet label skew, shards,
//!   quantity skew), seeded and reproducible.
//! - [`sampling`]: choosing the collaborators of a round.
//! - [`schedule`]: the client learning rate and local epochs per round (step, exponential,
//!   cosine, warm-up, piecewise), parsed from one-line strings such as `cosine:0.1,rounds=20`.
//! - [`history`]: a run's metrics per round and per collaborator, written as JSON lines, CSV,
//!   TensorBoard event files and (feature `plot`) SVG/PNG charts.

pub mod aggregate;
pub mod history;
pub mod partition;
pub mod sampling;
pub mod schedule;
