//! The error type of the tch side of the toolkit (models, training, parameter vectors).

/// The error type of this crate's libtorch-backed parts.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A flat parameter vector of the wrong length.
    #[error("a flat parameter vector of this model has {expected} values, got {found}")]
    ParameterCount {
        /// The model's number of parameters.
        expected: usize,
        /// The length given.
        found: usize,
    },
    /// Training on no samples (the mean loss would divide by zero).
    #[error("cannot train on an empty dataset")]
    EmptyDataset,
    /// A batch size of 0.
    #[error("the batch size must be at least 1")]
    ZeroBatchSize,
    /// A FedProx `mu` that is negative, infinite or NaN.
    #[error("FedProx's mu must be a finite number >= 0 (0 is plain FedAvg), got {0}")]
    ProximalMu(f64),
    /// Parameters given to a FedProx term that are not as many as the global model's.
    #[error(
        "the FedProx term got {found} parameter tensors, but its global model has {expected}; \
         pass the parameters of the model the snapshot was taken from"
    )]
    ProximalCount {
        /// The global model's number of tensors.
        expected: usize,
        /// The number given.
        found: usize,
    },
    /// A parameter given to a FedProx term whose shape is not the global model's.
    #[error(
        "the FedProx term got parameter {index} of shape {found:?}, but the global model's is \
         {expected:?}; pass the parameters in the model's order"
    )]
    ProximalShape {
        /// The parameter's position.
        index: usize,
        /// The global model's shape.
        expected: Vec<i64>,
        /// The shape given.
        found: Vec<i64>,
    },
    /// libtorch reported an error.
    #[error("libtorch error")]
    Torch(#[from] tch::TchError),
}

/// This crate's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;
