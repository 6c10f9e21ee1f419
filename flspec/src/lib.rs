//! flspec: federated-learning workflows as typed Rust state machines.
//!
//! A flow is a state struct and an `impl` block whose methods are steps: `#[aggregator]` steps
//! run on the coordinating participant, `#[collaborator]` steps on each site of a fan-out.
//! [`macro@flow`] compiles the steps into a typed state machine, checks the step graph at compile
//! time and implements [`Flow`]. A [`Runtime`] runs the flow: `flspec-local` simulates the whole
//! federation in one process; the federated runtime runs it across sites.
//!
//! ```
//! use flspec::prelude::*;
//!
//! /// Flow state: travels between participants as the transitions say.
//! #[derive(Clone, Default, Serialize, Deserialize)]
//! pub struct Count {
//!     visits: u32,
//!     total: u32,
//! }
//!
//! #[flow]
//! impl Count {
//!     #[aggregator]
//!     fn start(&mut self, ctx: &Ctx) -> Next<Self> {
//!         next!(self.visit, foreach = ctx.collaborators())
//!     }
//!
//!     #[collaborator]
//!     fn visit(&mut self) -> Next<Self> {
//!         self.visits += 1;
//!         next!(self.join)
//!     }
//!
//!     #[aggregator]
//!     fn join(&mut self, inputs: Inputs<Self>) -> Next<Self> {
//!         self.total = inputs.iter().map(|i| i.visits).sum();
//!         next!(self.end)
//!     }
//!
//!     #[aggregator]
//!     fn end(&mut self) {}
//! }
//!
//! assert_eq!(Count::NAME, "Count");
//! assert_eq!(CountStep::Visit.as_str(), "visit");
//! assert_eq!("join".parse::<CountStep>().unwrap(), CountStep::Join);
//! ```
#![warn(missing_docs)]

// Lets the macros' `::flspec::` paths resolve inside this crate's own tests.
extern crate self as flspec;

mod addressed;
pub mod checkpoint;
pub mod codec;
mod ctx;
pub mod dp;
pub mod driver;
mod error;
pub mod fl;
mod flow;
pub mod graph;
mod inputs;
mod next;
mod role;
pub mod runtime;
pub mod secagg;
mod step;

pub use addressed::{Addressed, PerCollaborator};
pub use ctx::Ctx;
pub use error::{BoxError, Dropout, Error, ParticipantName, Result, StepError};
pub use flow::{Flow, FlowSteps, PrivateStates, StepOutcome};
pub use graph::{FieldFilter, Graph, StepInfo, TransitionId, TransitionInfo};
pub use inputs::{Input, Inputs};
pub use next::{FanOutList, Next};
pub use role::Role;
pub use runtime::{Event, Observer, Runtime};
pub use step::{StepId, UnknownStep};

#[doc = include_str!("docs/flow.md")]
#[doc = include_str!("flow_checks.md")]
pub use flspec_macros::flow;

#[doc = include_str!("docs/aggregator.md")]
pub use flspec_macros::aggregator;

#[doc = include_str!("docs/collaborator.md")]
pub use flspec_macros::collaborator;

/// Builds the transition a step returns. Only valid inside a step of a `#[flow]` impl, where
/// `#[flow]` rewrites it; anywhere else it is a compile error.
///
/// Forms:
/// - `next!(self.step)`: continue with `step` on the same participant;
/// - `next!(self.step, foreach = names)`: fan out from the aggregator to the collaborators
///   `names` (any `IntoIterator` of `AsRef<str>`, e.g. `ctx.collaborators()` or
///   `inputs.names()`), each getting its own copy of the state;
/// - `exclude = [field, ..]` or `include = [field, ..]` (not both): the fields the transition
///   carries. A field it does not carry arrives with its value in `Self::default()`. In a fan-out
///   the filter applies to the collaborators' copies: the aggregator keeps its whole state for the
///   join. On a transition to the same participant, the fields it does not carry are reset.
///
/// ```compile_fail
/// fn outside() { flspec::next!(self.train); }
/// ```
#[macro_export]
macro_rules! next {
    ($($tt:tt)*) => {
        ::core::compile_error!("`next!` can only be used inside a step of a `#[flow]` impl block")
    };
}

/// What a flow needs in scope: `use flspec::prelude::*;`.
pub mod prelude {
    pub use crate::{
        Ctx, Dropout, Flow, Input, Inputs, Next, PerCollaborator, Role, Runtime, StepId,
    };
    pub use crate::{aggregator, collaborator, flow, next};
    pub use serde::{Deserialize, Serialize};
}

/// Items the generated code names. Not a public API.
#[doc(hidden)]
pub mod __private {
    pub use crate::error::BoxError;
    pub use crate::flow::checks::*;
    pub use crate::{
        Ctx, FieldFilter, Flow, FlowSteps, Graph, Inputs, Next, PrivateStates, Role, StepError,
        StepId, StepInfo, StepOutcome, TransitionId, TransitionInfo, UnknownStep,
    };
    pub use serde;

    /// Turns what a step returned into a [`StepOutcome`].
    #[diagnostic::on_unimplemented(
        message = "a step returns `Next<Self>`, `Result<Next<Self>, E>`, or for `end` `()`; found `{Self}`",
        label = "this step's return type"
    )]
    pub trait IntoStepOutcome<F: Flow> {
        /// The conversion.
        fn into_step_outcome(self) -> StepOutcome<F>;
    }

    impl<F: Flow> IntoStepOutcome<F> for Next<F> {
        fn into_step_outcome(self) -> StepOutcome<F> {
            Ok(Some(self))
        }
    }

    impl<F: Flow> IntoStepOutcome<F> for () {
        fn into_step_outcome(self) -> StepOutcome<F> {
            Ok(None)
        }
    }

    impl<F: Flow, T: IntoStepOutcome<F>, E: Into<BoxError>> IntoStepOutcome<F>
        for ::core::result::Result<T, E>
    {
        fn into_step_outcome(self) -> StepOutcome<F> {
            match self {
                Ok(v) => v.into_step_outcome(),
                Err(e) => Err(StepError::Failed(e.into())),
            }
        }
    }

    /// Collects a `foreach` list ([`FanOutList::Roster`](crate::FanOutList::Roster) for the
    /// run's own list).
    pub fn collect_names<I, S>(names: I) -> crate::FanOutList
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        crate::next::collect_fan_out(names)
    }

    /// Asserts at compile time that the flow state has the traits a flow needs.
    pub fn assert_flow_state<
        T: Clone + Default + serde::Serialize + serde::de::DeserializeOwned + Send + 'static,
    >() {
    }

    /// Takes the part of an addressed field for one collaborator.
    pub fn take_for<T: crate::Addressed>(field: &mut T, name: &str) -> T {
        field.take_for(name)
    }

    /// Writes an error as flspec's errors print in `Debug`: the message, then `Caused by:` and
    /// the sources the message does not quote. For the other crates of the workspace, whose
    /// errors print the same way.
    ///
    /// # Errors
    /// Only those of the formatter.
    pub fn debug_error_chain(
        error: &(dyn std::error::Error + 'static),
        f: &mut ::core::fmt::Formatter<'_>,
    ) -> ::core::fmt::Result {
        crate::error::write_chain(error, f)
    }

    /// Swaps two values (used by the generated field filters).
    pub fn swap<T>(a: &mut T, b: &mut T) {
        ::core::mem::swap(a, b)
    }
}
