//! Server-side aggregation of parameter vectors.
//!
//! The module splits aggregators by what they need to see, and the type system enforces it:
//!
//! - [`WeightedSum`] holds only the (weighted) sum of the updates and the total weight. It is
//!   what a secure-aggregation round can produce, and all that a mean ([`WeightedSum::mean_into`]),
//!   FedAvgM ([`FedAvgM`]) and the FedOpt server optimizers ([`FedOpt`]: FedAdam, FedYogi,
//!   FedAdagrad) need.
//! - [`Individual`] holds each collaborator's update. The robust aggregators ([`Median`],
//!   [`TrimmedMean`], [`Krum`], [`Bulyan`]) implement [`RobustAggregator`], whose only method
//!   takes `&Individual`; given a `WeightedSum` they do not compile:
//!
//! ```compile_fail,E0308
//! use flspec::fl::aggregate::{Median, RobustAggregator, WeightedSum};
//! let mut sum = WeightedSum::new(2);
//! sum.add(&[1.0, 2.0], 1.0).unwrap();
//! let mut out = [0.0f32; 2];
//! Median.aggregate(&sum, &mut out).unwrap(); // a SecAgg sum has no individual updates
//! ```
//!
//! Definitions and parameter names follow Flower 1.42 (`flwr/server/strategy/aggregate.py`,
//! `fedopt.py`, `fedadam.py`, `fedyogi.py`, `fedadagrad.py`, `fedavgm.py`); the tests pin
//! values computed with Flower's own functions (`scripts/reference/flower_aggregate.py`).
//!
//! Sums accumulate in `f64`: weights are sample counts (tens of thousands) and sums run over
//! many collaborators, where `f32` would lose about 3 digits; the conversion and the
//! multiply-add vectorise, and aggregation stays bound by reading the `f32` inputs.
//!
//! Source layout, one concept per file, everything re-exported here: `mean.rs` (the means and
//! [`WeightedSum`]), `individual.rs` ([`Individual`], [`RobustAggregator`]), `coordinate.rs`
//! ([`Median`], [`TrimmedMean`]), `krum.rs` ([`Krum`], Multi-Krum, [`Bulyan`]), `server_opt.rs`
//! ([`ServerOptimizer`], [`FedOpt`], [`FedAvgM`]).

mod coordinate;
mod individual;
mod kernel;
mod krum;
mod mean;
mod server_opt;

pub use coordinate::{Median, TrimmedMean};
pub use individual::{Individual, RobustAggregator};
pub use krum::{Bulyan, Krum};
pub use mean::{WeightedSum, mean_into, weighted_mean_into};
pub use server_opt::{
    FedAvgM, FedAvgMState, FedOpt, FedOptConfig, FedOptKind, FedOptState, ServerOptimizer,
};

/// What is wrong with an aggregation's input.
#[derive(Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum AggregateError {
    /// An update's length differs from the model's.
    #[error(
        "update {index} has {found} values but the model has {expected}; send updates of the same model"
    )]
    LengthMismatch {
        /// Position of the update among those given (0-based).
        index: usize,
        /// The model's number of values.
        expected: usize,
        /// The update's number of values.
        found: usize,
    },
    /// No update was given.
    #[error("no updates to aggregate; wait for at least one collaborator's update")]
    Empty,
    /// The total weight is zero, negative or not finite.
    #[error(
        "total weight is {total}, it must be positive and finite; give each update a positive weight (e.g. its sample count)"
    )]
    NonPositiveWeight {
        /// The offending total weight.
        total: f64,
    },
    /// A single weight is negative or not finite.
    #[error("update {index} has a negative or non-finite weight; use its sample count or 1.0")]
    InvalidWeight {
        /// Position of the update.
        index: usize,
    },
    /// An update holds NaN or an infinity (robust aggregators reject it rather than spreading it).
    #[error("update {index} holds a non-finite value; drop that collaborator's update")]
    NonFinite {
        /// Position of the update.
        index: usize,
    },
    /// Too many Byzantine collaborators for the rule's guarantee.
    #[error(
        "{rule} with f = {f} Byzantine collaborators needs at least {required} updates, got {n}; lower f or wait for more updates"
    )]
    TooManyByzantine {
        /// The rule (`"Krum"`, `"Bulyan"`).
        rule: &'static str,
        /// The assumed number of Byzantine collaborators.
        f: usize,
        /// Updates given.
        n: usize,
        /// Updates needed.
        required: usize,
    },
    /// A hyper-parameter is out of its range.
    #[error("{name} = {value} is out of range: {expected}")]
    InvalidParameter {
        /// The parameter's name (Flower's).
        name: &'static str,
        /// Its value.
        value: f64,
        /// The allowed range.
        expected: &'static str,
    },
}

/// Result of an aggregation.
pub type Result<T> = std::result::Result<T, AggregateError>;

fn check_len(index: usize, expected: usize, found: usize) -> Result<()> {
    if expected == found {
        Ok(())
    } else {
        Err(AggregateError::LengthMismatch {
            index,
            expected,
            found,
        })
    }
}

fn check_weight(index: usize, w: f64) -> Result<()> {
    if w.is_finite() && w >= 0.0 {
        Ok(())
    } else {
        Err(AggregateError::InvalidWeight { index })
    }
}

fn check_total(total: f64) -> Result<()> {
    if total.is_finite() && total > 0.0 {
        Ok(())
    } else {
        Err(AggregateError::NonPositiveWeight { total })
    }
}

/// Prints the message, as flspec's errors do, so that `fn main() -> Result<(), AggregateError>` shows
/// what went wrong rather than the variant's fields.
impl core::fmt::Debug for AggregateError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        crate::error::write_chain(self, f)
    }
}
