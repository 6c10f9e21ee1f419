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
    /// libtorch reported an error.
    #[error("libtorch error")]
    Torch(#[from] tch::TchError),
}

/// This crate's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;
