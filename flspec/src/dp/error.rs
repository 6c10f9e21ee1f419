//! The one error type of the differential-privacy module.

/// Everything that can go wrong in [`crate::dp`]: a parameter out of range, a vector that
/// cannot be clipped, or a privacy target that no setting of a knob can meet.
///
/// Messages say what is wrong and what to do. They never contain an update's values: only
/// parameter values, lengths and indices.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum DpError {
    /// A parameter is out of range.
    #[error("invalid differential-privacy parameter `{name}`: {problem}; {fix}")]
    InvalidParameter {
        /// The parameter to change.
        name: &'static str,
        /// What is wrong with it.
        problem: String,
        /// What to do.
        fix: String,
    },
    /// The vector to clip holds a NaN or an infinity: its norm is undefined.
    #[error(
        "the update to clip has a non-finite value at index {index}; \
         drop this update (or fix the training step that produced it) instead of clipping it"
    )]
    NonFinite {
        /// The first non-finite coordinate.
        index: usize,
    },
    /// A privacy target cannot be met within the searched range of a knob.
    #[error("cannot reach {target}: {problem}; {fix}")]
    Unreachable {
        /// The target, e.g. `epsilon 1 at delta 1e-5 over 10 rounds`.
        target: String,
        /// Why not.
        problem: String,
        /// The knob to turn, and which way.
        fix: String,
    },
}

/// The result type of [`crate::dp`].
pub type Result<T, E = DpError> = std::result::Result<T, E>;

/// An [`DpError::InvalidParameter`].
pub(crate) fn invalid(
    name: &'static str,
    problem: impl Into<String>,
    fix: impl Into<String>,
) -> DpError {
    DpError::InvalidParameter {
        name,
        problem: problem.into(),
        fix: fix.into(),
    }
}
