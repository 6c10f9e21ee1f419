//! The step identifiers that `#[flow]` generates.

use std::fmt;
use std::hash::Hash;
use std::str::FromStr;

/// A step of a flow, as the enum that `#[flow]` generates (`train` becomes `MyFlowStep::Train`).
///
/// Step names exist as strings only on the wire and in checkpoints; they become this type at once
/// through [`FromStr`], or an [`UnknownStep`] error.
pub trait StepId:
    Copy + Eq + Hash + fmt::Debug + fmt::Display + FromStr<Err = UnknownStep> + Send + Sync + 'static
{
    /// The first step of every flow.
    const START: Self;
    /// The last step of every flow.
    const END: Self;
    /// The step's name, as written in the flow.
    fn as_str(self) -> &'static str;
    /// The step's position in [`Graph::steps`](crate::Graph::steps).
    fn index(self) -> usize;
    /// The step at a position of [`Graph::steps`](crate::Graph::steps).
    fn from_index(index: usize) -> Option<Self>;
}

/// A step name that is not a step of the flow. `Debug` prints the message, as
/// [`Error`](crate::Error)'s does.
#[derive(Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown step `{name}` in flow `{flow}`")]
pub struct UnknownStep {
    /// The flow's name.
    pub flow: &'static str,
    /// The name that was given.
    pub name: String,
}

impl fmt::Debug for UnknownStep {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        crate::error::write_chain(self, f)
    }
}
